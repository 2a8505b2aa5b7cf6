"""Redis dies while a worker runs a task, and comes back: the worker process survives,
reconnects with backoff, and the job completes (before: the OCR worker exited and nothing
restarted it natively; the job stayed queued). A client following the job's event stream
through the outage gets its final snapshot (the stream reads the database while Redis is
away). Its own Redis, so the rest of the suite keeps the shared one."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
import redis
from rq.registry import StartedJobRegistry

from tests.api_helpers import admin_token, auth, sse_events, upload, wait_job
from tests.conftest import sample
from tests.servers import RedisServer

pytestmark = pytest.mark.slow


def test_worker_survives_a_redis_outage_mid_task(tmp_path: Path, pg_url: str) -> None:
    from tests.fleet import Fleet

    own = RedisServer()
    own.start()
    fleet = Fleet(tmp_path, pg_url, own.url, MEDIAFLEET_TASK_LEASE_S="3")
    try:
        fleet.start("gateway")
        fleet.start("job_manager")
        fleet.start("echo")
        with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
            token = admin_token(client)
            media_id = upload(client, token, sample("english.png")).json()["media_id"]
            job_id = client.post("/v1/jobs", json={"media_id": media_id, "tasks": ["echo"],
                                 "options": {"echo": {"sleep_s": 3}}}, headers=auth(token)).json()["job_id"]  # fmt: skip
            started = StartedJobRegistry("echo:normal", connection=redis.Redis.from_url(own.url))
            deadline = time.monotonic() + 30
            while not started.get_job_ids() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert started.get_job_ids(), "the task never started"
            events: list[tuple[str, dict]] = []

            def follow() -> None:
                with httpx.Client(base_url=fleet.url("gateway"), timeout=120) as sse:
                    sse_events(sse, token, job_id, into=events)

            reader = threading.Thread(target=follow, daemon=True)
            reader.start()
            time.sleep(0.5)
            own.stop()  # Redis gone while the task sleeps
            time.sleep(6)
            assert fleet.procs["echo"].poll() is None, "the worker exited:\n" + fleet.log_text("echo")
            own.start()  # same port, its AOF kept the queues
            job = wait_job(client, token, job_id, timeout=90)
            assert job["status"] == "succeeded", job
            assert fleet.procs["echo"].poll() is None
            reader.join(30)
            assert not reader.is_alive(), "the event stream did not end"
            assert events[0][0] == "job" and events[-1][0] == "job"
            assert events[-1][1]["status"] == "succeeded", events[-1]
            assert "redis_lost" in fleet.log_text("echo")
            # and it still takes new work
            again = client.post("/v1/jobs", json={"media_id": media_id, "tasks": ["echo"], "use_cache": False},
                                headers=auth(token)).json()["job_id"]  # fmt: skip
            assert wait_job(client, token, again, timeout=60)["status"] == "succeeded"
    finally:
        fleet.stop_all()
        own.cleanup()
