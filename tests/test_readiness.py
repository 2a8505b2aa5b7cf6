"""Readiness that tells the truth: a worker without its weights says so with the command that
provisions them, its tasks fail at once instead of being retried, and weights that arrive
later are picked up without a restart."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
import redis

from mediafleet.common.capability import NotReady
from mediafleet.common.engine import Engine, EngineRunner
from mediafleet.common.errors import EngineError
from mediafleet.common.worker import WorkerStatus, summarise
from tests.api_helpers import admin_token, auth, upload, wait_job
from tests.conftest import sample
from tests.fleet import Fleet


class FileEngine(Engine):
    """Loads when its weights file exists (what every real engine does through the catalogue)."""

    name = "file"

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    @property
    def model(self) -> str:
        return "file"

    @property
    def model_version(self) -> str:
        return "1"

    def _load(self) -> None:
        if not self.path.is_file():
            raise EngineError(
                f"the model file is not installed; run `get {self.path.name}`", code="model_not_available"
            )


class TwoTaskRunner(EngineRunner[FileEngine]):
    retry_load_s: ClassVar[float] = 0.0  # no throttle in the test

    def __init__(self, folder: Path):
        self.engines = {"a": FileEngine(folder / "a.bin"), "b": FileEngine(folder / "b.bin")}

    def task_engines(self, task: str) -> list[str]:
        return [task]


def test_weights_that_arrive_later_are_loaded_by_the_readiness_check(tmp_path: Path) -> None:
    runner = TwoTaskRunner(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"a")
    runner.preload()  # b's weights are missing: not an error at start
    assert runner.task_ready("a") is None
    missing = runner.task_ready("b")
    assert missing == NotReady(
        code="models_missing", message="the model file is not installed; run `get b.bin`"
    )
    assert runner.ready() == missing.message  # the service's own /readyz names it too
    (tmp_path / "b.bin").write_bytes(b"b")  # provisioned while the service runs
    assert runner.task_ready("b") is None and runner.ready() is None


def test_a_missing_model_is_retried_at_most_every_interval(tmp_path: Path) -> None:
    runner = TwoTaskRunner(tmp_path)
    runner.retry_load_s = 3600.0  # type: ignore[misc]
    runner.preload()
    (tmp_path / "a.bin").write_bytes(b"a")
    assert runner.task_ready("a") is not None  # tried at start: not again before the interval
    runner.load_state.tried["a"] = time.monotonic() - 3601
    assert runner.task_ready("a") is None


def status(tasks: dict[str, NotReady | None]) -> WorkerStatus:
    return WorkerStatus(capability="c", tasks=tasks, at=time.time())


def test_fleet_readiness_of_a_task_from_its_workers() -> None:
    gone = NotReady(code="models_missing", message="the model m is not installed; run `make models MODELS=m`")
    assert summarise("t", 0, []).state == "no_worker"
    assert summarise("t", 1, [None]).model_dump() == {
        "state": "starting", "workers": 1, "ready_workers": 0, "message": "1 worker starting (loading models)",
    }  # fmt: skip
    missing = summarise("t", 2, [status({"t": gone}), status({"t": gone})])
    assert (missing.state, missing.ready_workers, missing.message) == ("models_missing", 0, gone.message)
    mixed = summarise("t", 2, [status({"t": gone}), status({"t": None})])
    assert (mixed.state, mixed.ready_workers, mixed.message) == ("ready", 1, "1 of 2 workers ready")


@pytest.mark.slow
def test_worker_without_weights_then_with_them(
    tmp_path: Path, pg_url: str, redis_url: str, real_models_dir: Path
) -> None:
    """clip_nsfw with NudeNet's weights missing: /readyz, GET /v1/tasks and the admin view say
    `models_missing` with the command; an nsfw job fails at once (1 attempt, no retries) with
    that message; the weights copied in while it runs make it ready within seconds; a new job
    succeeds. The container health stays "alive" throughout (/healthz)."""
    fleet = Fleet(tmp_path, pg_url, redis_url, CLIP_PRELOAD=json.dumps(["nudenet"]))
    try:
        fleet.start("gateway")
        fleet.start("job_manager")
        fleet.start("clip", wait=False)
        base = fleet.url("gateway")
        with httpx.Client(base_url=base, timeout=30) as c:
            token = admin_token(c)

            def nsfw() -> dict:
                tasks = c.get("/v1/tasks", headers=auth(token)).json()["data"]
                return next(t for t in tasks if t["name"] == "nsfw")["readiness"]

            deadline = time.monotonic() + 90
            while nsfw()["state"] in ("no_worker", "starting") and time.monotonic() < deadline:
                time.sleep(0.5)
            state = nsfw()
            assert state["state"] == "models_missing" and state["workers"] == 1, state
            assert "nudenet-320n is not installed" in state["message"]
            assert "run `mediafleet models pull nudenet-320n`" in state["message"]
            assert str(tmp_path) not in state["message"]  # no server path
            ready = httpx.get(base + "/readyz").json()
            assert ready["capabilities"]["nsfw"].startswith("models_missing: the model nudenet-320n")
            assert httpx.get(fleet.url("clip") + "/healthz").status_code == 200  # alive, not ready
            assert httpx.get(fleet.url("clip") + "/readyz").status_code == 503
            admin = c.get("/v1/admin/services", headers=auth(token)).json()
            clip = next(x for x in admin["capabilities"] if x["capability"] == "clip_nsfw")
            assert clip["readiness"]["nsfw"]["state"] == "models_missing"

            media_id = upload(c, token, sample("bus.jpg")).json()["media_id"]
            job_id = c.post(
                "/v1/jobs", json={"media_id": media_id, "tasks": ["nsfw"]}, headers=auth(token)
            ).json()["job_id"]
            job = wait_job(c, token, job_id, timeout=60)
            task = job["tasks"][0]
            assert job["status"] == "failed" and task["attempts"] == 1, job
            assert task["error"].startswith("models_missing: the model nudenet-320n is not installed")
            assert "Error" not in task["error"] and "Traceback" not in task["error"]

            # the weights arrive (what `make models` does for the compose fleet's volume)
            shutil.copytree(real_models_dir / "nudenet", tmp_path / "models" / "nudenet")
            arrived = time.monotonic()
            while nsfw()["state"] != "ready" and time.monotonic() - arrived < 30:
                time.sleep(0.5)
            assert nsfw()["state"] == "ready", nsfw()
            print(f"\nnsfw ready {time.monotonic() - arrived:.1f} s after its weights arrived, no restart")
            job_id = c.post(
                "/v1/jobs",
                json={"media_id": media_id, "tasks": ["nsfw"], "use_cache": False},
                headers=auth(token),
            ).json()["job_id"]
            job = wait_job(c, token, job_id, timeout=60)
            assert job["status"] == "succeeded" and job["results"]["nsfw"]["nsfw"]["label"] == "safe", job
            assert httpx.get(fleet.url("clip") + "/readyz").status_code == 200
    finally:
        fleet.stop_all()


@pytest.mark.slow
def test_a_crash_reads_as_a_sentence_not_a_traceback(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    """A task that raises on every attempt: after its retries the job says what failed and where
    to look, with no exception class name and no server path."""
    fleet = Fleet(tmp_path, pg_url, redis_url)  # the echo capability: root conftest.py
    try:
        for name in ("gateway", "job_manager", "echo"):
            fleet.start(name)
        with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as c:
            token = admin_token(c)
            media_id = upload(c, token, sample("phototest.tif")).json()["media_id"]
            job_id = c.post(
                "/v1/jobs", json={"media_id": media_id, "tasks": ["echo"], "options": {"echo": {"crash": True}}},
                headers=auth(token),
            ).json()["job_id"]  # fmt: skip
            job = wait_job(c, token, job_id, timeout=90)
            error = job["tasks"][0]["error"]
            assert job["status"] == "failed" and job["tasks"][0]["attempts"] == 3, job  # 1 + 2 retries here
            assert error.startswith("echo failed on the worker ") and "internal error" in error, error
            assert "RuntimeError" not in error and "Traceback" not in error and "/" not in error, error
            assert "echo was asked to crash" in fleet.log_text("echo")  # the cause is in the worker's log
    finally:
        fleet.stop_all()


def test_worker_status_round_trips_through_redis(redis_url: str) -> None:
    from mediafleet.common.worker import status_key

    conn = redis.Redis.from_url(redis_url)
    gone = NotReady(code="models_missing", message="m")
    conn.set(status_key("host", 7), status({"t": gone, "u": None}).model_dump_json(), ex=10)
    back = WorkerStatus.model_validate_json(conn.get(status_key("host", 7)) or b"")
    assert back.tasks == {"t": gone, "u": None}
