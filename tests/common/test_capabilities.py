"""The capability contract: discovery, light contracts, the generic service app and task glue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mediafleet.common import registry
from mediafleet.common.capability import Capability, TaskSpec, import_object
from mediafleet.common.service_app import create_service_app
from mediafleet.common.taskrun import run_task
from tests.conftest import ROOT, sample
from tests.echo_capability.contract import EchoOptions, EchoResult

ML_MODULES = ("torch", "onnxruntime", "ultralytics", "ctranslate2", "llama_cpp", "cv2")


def test_every_contract_and_the_control_plane_import_no_ml_library(tmp_path: Path) -> None:
    code = f"""
import json, sys
from mediafleet.common import registry
caps = registry.capabilities()
import mediafleet.gateway.app, mediafleet.job_manager.manager, mediafleet.cli.main, mediafleet.cli.embedded
from mediafleet.gateway.app import create_app
create_app()  # builds the typed routes from every contract
print(json.dumps({{"caps": sorted(caps), "ml": [m for m in {ML_MODULES!r} if m in sys.modules]}}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEDIAFLEET_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"ocr_detection", "echo"} <= set(found["caps"])
    assert found["ml"] == []


def test_ocr_is_found_through_its_entry_point() -> None:
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group=registry.GROUP)}
    assert "ocr_detection" in names
    assert registry.capability_of("ocr").queue == "ocr_detection"
    # ticked in the upload view / run by `mediafleet analyze FILE` when ready, per media kind
    assert set(registry.default_tasks("image")) == {
        "ocr",
        "pose",
        "faces",
        "nsfw",
        "clip",
        "metadata",
        "fingerprint",
    }
    assert set(registry.default_tasks("audio")) == {"transcribe", "metadata", "fingerprint"}
    assert set(registry.default_tasks("video")) == {"pose", "faces", "transcribe", "metadata", "fingerprint"}


def test_each_capability_s_settings_read_its_env_prefix() -> None:
    """One prefix per capability: the one its contract declares (HTTP endpoint variables,
    `mediafleet-service --list`) is the one its settings class reads."""
    for cap in registry.capabilities().values():
        settings_class = import_object(cap.settings)
        assert settings_class.model_config.get("env_prefix") == cap.env_prefix, cap.name


def test_service_list_names_every_capability() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mediafleet.common.service", "--list"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
    assert rows["ocr_detection"] == ["ocr_detection", "8101", "OCR_"] and rows["echo"] == [
        "echo",
        "8199",
        "ECHO_",
    ]
    bad = subprocess.run(
        [sys.executable, "-m", "mediafleet.common.service", "nope"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown capability 'nope'" in bad.stderr


def _cap(name: str, former: tuple[str, ...], *specs: TaskSpec) -> Capability:
    return Capability(
        name=name,
        title="",
        tasks=specs,
        runner="x:y",
        settings="x:y",
        http_port=1,
        env_prefix="X_",
        former_queues=former,
    )


def _spec(name: str, *deps: str) -> TaskSpec:
    return TaskSpec(name=name, options=EchoOptions, result=EchoResult, summary=str, depends_on=deps)


def test_registry_refuses_clashes_and_unknown_dependencies() -> None:
    with pytest.raises(registry.RegistryError, match="task 'a' is declared by one and two"):
        registry._check({"one": _cap("one", (), _spec("a")), "two": _cap("two", (), _spec("a"))})
    # a former queue name is still drained: no other capability may take it
    with pytest.raises(registry.RegistryError, match="two and one both use queue 'one'"):
        registry._check({"one": _cap("one", (), _spec("a")), "two": _cap("two", ("one",), _spec("b"))})
    with pytest.raises(registry.RegistryError, match="unknown task"):
        registry._check({"one": _cap("one", (), _spec("a", "ghost"))})


def test_dependencies_are_added_first() -> None:
    assert registry.with_dependencies(["echo_upper"]) == ["echo", "echo_upper"]
    assert registry.with_dependencies(["echo_upper", "ocr", "echo"]) == ["echo", "echo_upper", "ocr"]
    with pytest.raises(KeyError):
        registry.with_dependencies(["telepathy"])


@pytest.fixture
def echo_app() -> TestClient:
    cap = registry.get("echo")
    runner = cap.build_runner()
    runner.preload()
    return TestClient(create_service_app(cap, runner))


def test_generic_app_predicts_each_task(echo_app: TestClient) -> None:
    data = sample("english.png").read_bytes()
    resp = echo_app.post(
        "/v1/predict", files={"file": ("a.png", data)}, data={"task": "echo", "options": '{"text": "hi"}'}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["text"] == "hi" and resp.json()["size_bytes"] == len(data)
    upper = echo_app.post(
        "/v1/predict",
        files={"file": ("a.png", data)},
        data={"task": "echo_upper", "inputs": json.dumps({"echo": resp.json()})},
    )
    assert upper.status_code == 200 and upper.json()["text"] == "HI"
    assert echo_app.get("/readyz").status_code == 200
    assert echo_app.get("/v1/models").json()["data"][0]["engine"] == "echo"
    schema = echo_app.get("/openapi.json").json()
    assert {"EchoResult", "UpperResult"} <= set(schema["components"]["schemas"])


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"task": "telepathy"}, "unknown_task"),
        ({"task": "echo", "options": "{not json"}, "invalid_option"),
        ({"task": "echo", "options": "[1]"}, "invalid_option"),
        ({"task": "echo", "options": '{"reject": true}'}, "echo_rejected"),
    ],
)
def test_generic_app_bad_requests_get_the_envelope(echo_app: TestClient, form: dict, code: str) -> None:
    data = sample("english.png").read_bytes()
    resp = echo_app.post("/v1/predict", files={"file": ("a.png", data)}, data=form)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == code


def test_predict_takes_the_jobs_path_media_kind_and_video_frames(echo_app: TestClient) -> None:
    """/v1/predict runs a task as a job's task does (pipeline.run): an image task on a video
    runs on its sampled frames, media it does not take is refused, bytes that are no media
    are refused before any engine sees them."""
    video = sample("short_hamilton_clip.mp4").read_bytes()  # 10 s
    resp = echo_app.post("/v1/predict", files={"file": ("v.mp4", video)}, data={"task": "echo"})
    assert resp.status_code == 200, resp.text
    frames = resp.json()["frames"]
    assert len(frames) >= 2 and frames[0]["t"] == 0.0
    assert all(f["result"]["engine"] == "echo" and f["result"]["size_bytes"] > 0 for f in frames)
    assert frames[0]["result"]["media_sha256"] != frames[1]["result"]["media_sha256"]  # different frames
    audio = echo_app.post(
        "/v1/predict", files={"file": ("a.mp3", sample("hotwords.mp3").read_bytes())}, data={"task": "echo"}
    )
    assert audio.status_code == 422 and audio.json()["error"]["code"] == "unsupported_media_kind"
    junk = echo_app.post("/v1/predict", files={"file": ("a.png", b"x" * 100)}, data={"task": "echo"})
    assert junk.status_code in (415, 422) and junk.json()["error"]["code"] in (
        "unsupported_media_type",
        "invalid_media",
    )


def test_task_function_needs_a_worker_runtime() -> None:
    with pytest.raises(RuntimeError, match="no runtime bound"):
        run_task({"task": "echo", "job_id": "j", "task_id": "t"})


def test_an_ai_services_port_answers_the_fleet_only() -> None:
    """MEDIAFLEET_INTERNAL_TOKEN set: /v1/predict and /v1/models of any capability's service
    need it (a local process cannot run models or read what is loaded); probes stay open."""
    from pydantic import SecretStr

    from mediafleet.common.settings import CoreSettings

    cap = registry.get("echo")
    runner = cap.build_runner(
        cap.load_settings(core=CoreSettings(internal_token=SecretStr("t0k3n-of-the-fleet")))
    )
    runner.preload()
    with TestClient(create_service_app(cap, runner)) as c:
        data = {"task": "echo", "options": '{"text": "hi"}'}
        files = {"file": ("a.png", sample("english.png").read_bytes())}
        assert c.post("/v1/predict", files=files, data=data).status_code == 401
        assert c.get("/v1/models").status_code == 401
        ok = c.post(
            "/v1/predict", files=files, data=data, headers={"Authorization": "Bearer t0k3n-of-the-fleet"}
        )
        assert ok.status_code == 200 and ok.json()["text"] == "hi"
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
