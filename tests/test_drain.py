"""A worker told to stop (SIGTERM: ``docker stop``, ``make upgrade``'s restart, a scale-down)
finishes the task it is running, reports it, and exits 0 without taking another; the next task
waits in its queue for the next worker (issue 25.6). Nothing is lost and nothing runs twice."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest
import redis
from rq.registry import StartedJobRegistry

from tests.api_helpers import admin_token, auth, upload, wait_job
from tests.conftest import sample

pytestmark = pytest.mark.slow


def test_sigterm_drains_the_running_task_and_takes_no_new_one(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    from tests.fleet import Fleet

    # a lease shorter than the task: were the worker gone mid-task, job_manager would retry it
    fleet = Fleet(tmp_path, pg_url, redis_url, MEDIAFLEET_TASK_LEASE_S="3")
    try:
        fleet.start("gateway")
        fleet.start("job_manager")
        worker = fleet.start("echo")
        with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
            token = admin_token(client)
            media_id = upload(client, token, sample("english.png")).json()["media_id"]

            def echo_job(sleep_s: float) -> str:
                body = {"media_id": media_id, "tasks": ["echo"], "use_cache": False,
                        "options": {"echo": {"sleep_s": sleep_s}}}  # fmt: skip
                resp = client.post("/v1/jobs", json=body, headers=auth(token))
                assert resp.status_code == 202, resp.text
                return str(resp.json()["job_id"])

            running = echo_job(5)
            started = StartedJobRegistry("echo:normal", connection=redis.Redis.from_url(redis_url))
            deadline = time.monotonic() + 30
            while not started.get_job_ids():
                assert time.monotonic() < deadline, "the task never started:\n" + fleet.log_text("echo")
                time.sleep(0.05)
            worker.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            waiting = echo_job(0)  # enqueued after the signal: this worker must leave it
            time.sleep(1.5)
            assert worker.poll() is None, "it exited mid-task:\n" + fleet.log_text("echo")
            assert worker.wait(30) == 0, fleet.log_text("echo")
            ran_s = time.monotonic() - signalled

            job = wait_job(client, token, running, timeout=30)
            assert job["status"] == "succeeded", job
            assert job["tasks"][0]["attempts"] == 1  # finished by the stopping worker, not retried
            later = client.get(f"/v1/jobs/{waiting}", headers=auth(token)).json()
            assert later["status"] == "queued", later  # no worker took it
            fleet.procs.pop("echo")
            fleet.start("echo")  # the next worker (the upgraded image) takes it
            assert wait_job(client, token, waiting, timeout=60)["status"] == "succeeded"
        print(f"[drain] the worker exited 0 {ran_s:.1f} s after SIGTERM, its 5-s task done once")
    finally:
        fleet.stop_all()
