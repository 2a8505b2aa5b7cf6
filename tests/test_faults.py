"""Faults on the running fleet: a worker killed mid-task, a task that keeps failing, a gateway restart."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest
import redis
from PIL import Image
from rq.job import Job as RQJob
from rq.registry import StartedJobRegistry
from rq.results import Result
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from mediafleet.common.store import Task, TextSegmentRow
from tests.api_helpers import admin_token, assert_envelope, auth, create_job, upload, wait_job
from tests.conftest import sample

pytestmark = pytest.mark.slow


def _big_page(path: Path, tiles: int = 4) -> Path:
    """english.png tiled 4x4 (3620x1920): a few seconds of OCR, long enough to kill a worker mid-task."""
    src = Image.open(sample("english.png")).convert("RGB")
    big = Image.new("RGB", (src.width * tiles, src.height * tiles), "white")
    for i in range(tiles):
        for j in range(tiles):
            big.paste(src, (i * src.width, j * src.height))
    big.save(path)
    return path


def test_worker_killed_mid_task_is_retried_once_to_completion(fleet, tmp_path: Path) -> None:
    r = redis.Redis.from_url(fleet.env["MEDIAFLEET_REDIS_URL"])
    with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
        token = admin_token(client)
        media_id = upload(client, token, _big_page(tmp_path / "page.png")).json()["media_id"]
        job_id = client.post(
            "/v1/jobs", json={"media_id": media_id, "tasks": ["ocr"]}, headers=auth(token)
        ).json()["job_id"]
        engine = create_engine(fleet.env["MEDIAFLEET_DATABASE_URL"])
        with Session(engine) as s:
            task_id = s.scalar(select(Task.id).where(Task.job_id == job_id))
        rq_id = f"task-{task_id}"

        # Wait until the worker has started this very task, then SIGKILL it.
        registry = StartedJobRegistry("ocr_detection:normal", connection=r)
        deadline = time.monotonic() + 60
        while not any(e.startswith(rq_id) for e in registry.get_job_ids()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert any(e.startswith(rq_id) for e in registry.get_job_ids()), "task never started"
        time.sleep(0.3)
        fleet.stop("ocr", signal.SIGKILL)

        # With no worker the task cannot finish; job_manager reaps it after the 3 s lease.
        time.sleep(5)
        job = client.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()
        assert job["status"] in ("queued", "running") and job["results"] == {}
        assert RQJob.fetch(rq_id, connection=r).retries_left == 1  # one retry spent on the abandoned run

        fleet.start("ocr")
        job = wait_job(client, token, job_id, timeout=120)
    assert job["status"] == "succeeded", job
    assert job["tasks"][0]["attempts"] == 2
    ocr = job["results"]["ocr"]
    assert "soap" in ocr["text"].split()
    # Ran to completion exactly once, and its lines were indexed once.
    rq_job = RQJob.fetch(rq_id, connection=r)
    assert [res.type for res in rq_job.results()].count(Result.Type.SUCCESSFUL) == 1
    with Session(engine) as s:
        assert s.scalar(
            select(func.count()).select_from(TextSegmentRow).where(TextSegmentRow.media_id == media_id)
        ) == len(ocr["lines"])
    engine.dispose()


def test_a_missing_model_fails_at_once_with_the_command(fleet) -> None:
    """easyocr has no weights in this fleet's models directory: no retry can provision them, so
    the task fails on its first attempt (it was retried 3 times, ~14 s), naming the command.
    (A task that raises is still retried: tests/test_readiness.py.)"""
    with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
        token = admin_token(client)
        media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
        job_id = create_job(client, token, media_id, options={"ocr": {"engine": "easyocr"}})
        job = wait_job(client, token, job_id, timeout=60)
        assert job["status"] == "failed"
        task = job["tasks"][0]
        assert task["status"] == "failed" and task["attempts"] == 1, task
        assert task["error"].startswith("models_missing: the model easyocr-en is not installed"), task[
            "error"
        ]
        assert "run `mediafleet models pull easyocr-en`" in task["error"] and "ocr:" in job["error"]
        # The fleet keeps working: a rapidocr job right after succeeds.
        ok = client.post(
            "/v1/jobs", json={"media_id": media_id, "tasks": ["ocr"]}, headers=auth(token)
        ).json()
        assert wait_job(client, token, ok["job_id"])["status"] == "succeeded"


def test_a_language_no_engine_reads_is_refused_at_creation(fleet) -> None:
    """Korean: RapidOCR (the fleet's default) reads en/zh, easyocr here English only. The job is
    refused by the OCR contract when it is made (it was accepted and failed in the worker)."""
    with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
        token = admin_token(client)
        media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
        resp = client.post("/v1/jobs", json={"media_id": media_id, "tasks": ["ocr"],
                                             "options": {"ocr": {"languages": ["ko"]}}}, headers=auth(token))  # fmt: skip
        error = assert_envelope(resp, 422, "unsupported_language")
        assert "cannot read ['ko']" in error["message"]
        assert client.get("/v1/jobs", headers=auth(token)).json()["count"] == 0


def test_gateway_restart_between_upload_and_job(fleet) -> None:
    with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
        token = admin_token(client)
        media_id = upload(client, token, sample("french.jpg")).json()["media_id"]
    fleet.stop("gateway")
    fleet.start("gateway")
    with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
        assert client.get(f"/v1/media/{media_id}", headers=auth(token)).status_code == 200
        job_id = client.post(
            "/v1/jobs", json={"media_id": media_id, "tasks": ["ocr"]}, headers=auth(token)
        ).json()["job_id"]
        job = wait_job(client, token, job_id)
        assert job["status"] == "succeeded" and "LOUVRE" in job["results"]["ocr"]["text"].upper()
        hits = client.get("/v1/search", params={"q": "louvre"}, headers=auth(token)).json()
        assert hits["data"][0]["media_id"] == media_id


def test_killed_worker_stops_counting_as_capacity(fleet) -> None:
    """/readyz of the gateway reports OCR capacity; a SIGKILLed worker drops out within its TTL (30 s)."""
    ready = lambda: httpx.get(fleet.url("gateway") + "/readyz").json()["capabilities"]["ocr"]  # noqa: E731
    assert ready() == "ready: 1 worker ready"
    fleet.stop("ocr", signal.SIGKILL)
    deadline = time.monotonic() + 45
    while not ready().startswith("no_worker:") and time.monotonic() < deadline:
        time.sleep(1)
    assert ready() == "no_worker: no worker runs: jobs needing it wait in the queue"


def test_gateway_reports_whether_job_manager_runs(fleet) -> None:
    """Before: job_manager could be dead while the gateway's /readyz said ready (jobs stayed
    queued). Its heartbeat (every reconciliation pass, 15-s expiry) is reported."""
    report = lambda: httpx.get(fleet.url("gateway") + "/readyz").json()["checks"]["job_manager"]  # noqa: E731
    assert report() == "ok"
    fleet.stop("job_manager", signal.SIGKILL)
    deadline = time.monotonic() + 30
    while report() == "ok" and time.monotonic() < deadline:
        time.sleep(1)
    assert report().startswith("no heartbeat"), report()
    # not ready: jobs would be accepted and never run (uploads and reads still answer)
    ready = httpx.get(fleet.url("gateway") + "/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
    assert httpx.get(fleet.url("gateway") + "/healthz").status_code == 200  # alive
    fleet.start("job_manager")
    deadline = time.monotonic() + 30
    while report() != "ok" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert report() == "ok"
