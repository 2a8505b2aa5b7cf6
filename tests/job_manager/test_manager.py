"""job_manager's reconciliation in process, with an in-process RQ worker, on PostgreSQL and SQLite."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr
from rq import Queue

from mediafleet.common.queues import family_queues
from mediafleet.common.registry import get as get_capability
from mediafleet.common.settings import CoreSettings
from mediafleet.common.store import create_db_engine, session_factory
from mediafleet.common.taskrun import Runtime
from mediafleet.common.worker import ModelWorker
from mediafleet.job_manager.manager import JobManager
from mediafleet.job_manager.settings import JobManagerSettings
from mediafleet.ocr_detection.runner import OcrRunner
from mediafleet.ocr_detection.settings import OcrSettings
from tests.api_helpers import auth, upload
from tests.conftest import sample
from tests.echo_capability.runner import EchoRunner, EchoSettings


@pytest.fixture(params=["postgresql", "sqlite"])
def core(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> CoreSettings:
    url = (
        f"sqlite:///{tmp_path / 'jm.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    )
    return CoreSettings(database_url=url, redis_url=redis_url, media_dir=tmp_path / "media")


@pytest.fixture
def manager(core: CoreSettings, api) -> JobManager:
    engine = create_db_engine(core.database_url)
    return JobManager(
        JobManagerSettings(core=core), session_factory(engine), redis.Redis.from_url(core.redis_url)
    )


def _run_worker(core: CoreSettings, capability: str = "echo") -> None:
    """One burst of an in-process worker of ``capability`` (echo, or OCR on its real models)."""
    conn = redis.Redis.from_url(core.redis_url)
    cap = get_capability(capability)
    runner = (
        OcrRunner(OcrSettings(core=core))
        if capability == "ocr_detection"
        else EchoRunner(EchoSettings(core=core))
    )
    ModelWorker(family_queues(cap), connection=conn, runtime=Runtime(cap, runner, conn, core.media_dir)).work(
        burst=True
    )


def _new_job(api, name: str = "english.png", priority: str = "normal", task: str = "echo") -> str:
    client, token = api
    media_id = upload(client, token, sample(name)).json()["media_id"]
    resp = client.post(
        "/v1/jobs", json={"media_id": media_id, "tasks": [task], "priority": priority}, headers=auth(token)
    )
    return resp.json()["job_id"]


def test_plan_run_collect_search(api, manager: JobManager, core: CoreSettings) -> None:
    client, token = api
    job_id = _new_job(api, priority="low", task="ocr")
    assert manager.reconcile() == 1
    low = Queue("ocr_detection:low", connection=manager.redis)
    assert low.count == 1 and Queue("ocr_detection:normal", connection=manager.redis).count == 0
    payload = low.jobs[0].args[0]
    assert payload["job_id"] == job_id and payload["storage_path"].endswith(".png")
    assert manager.reconcile() == 0  # idempotent: nothing queued twice

    _run_worker(core, "ocr_detection")
    manager.reconcile()
    job = client.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()
    assert job["status"] == "succeeded" and job["tasks"][0]["attempts"] == 1
    assert "Clean hands with soap and water" in job["results"]["ocr"]["text"].splitlines()
    hits = client.get("/v1/search", params={"q": "coronavirus infection"}, headers=auth(token)).json()["data"]
    assert hits[0]["matches"][0]["text"] == "Reduce your risk of coronavirus infection:"


def test_task_lost_by_redis_is_queued_again(api, manager: JobManager, core: CoreSettings) -> None:
    client, token = api
    job_id = _new_job(api, name="phototest.tif")
    manager.reconcile()
    manager.redis.flushall()  # Redis lost everything (no persistence)
    manager.reconcile()  # finds the task's RQ job missing and enqueues it again
    assert Queue("echo:normal", connection=manager.redis).count == 1
    _run_worker(core)
    manager.reconcile()
    assert client.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()["status"] == "succeeded"


def test_a_task_queued_under_the_former_queue_name_still_runs(
    api, manager: JobManager, core: CoreSettings
) -> None:
    """Before 2026-12 the OCR queues were ``ocr:*``: a task an older job_manager queued there is
    run by this version's workers, which drain the former names after their own."""
    client, token = api
    job_id = _new_job(api, name="phototest.tif", task="ocr")
    manager.reconcile()
    current, former = (Queue(f"{name}:normal", connection=manager.redis) for name in ("ocr_detection", "ocr"))
    rq_job = current.jobs[0]
    current.remove(rq_job)
    former.enqueue_job(rq_job)
    assert (current.count, former.count) == (0, 1)
    _run_worker(core, "ocr_detection")
    manager.reconcile()
    assert former.count == 0
    assert client.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()["status"] == "succeeded"


def test_canceled_job_leaves_the_queue(api, manager: JobManager) -> None:
    client, token = api
    job_id = _new_job(api, name="phototest.tif")
    manager.reconcile()
    queue = Queue("echo:normal", connection=manager.redis)
    assert queue.count == 1
    assert client.delete(f"/v1/jobs/{job_id}", headers=auth(token)).json()["status"] == "canceled"
    manager.reconcile()
    assert queue.count == 0
    assert client.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()["status"] == "canceled"


def test_a_waiting_tasks_media_url_is_signed_again_before_it_expires(api, core: CoreSettings) -> None:
    """Issue 24: a worker elsewhere whose task waited past its signed URL's lifetime fails that
    attempt (MediaUrlExpired, retried); job_manager renews the URL of every waiting task with less
    than half its lifetime left, so the retry (or the first run) carries a valid one."""
    from mediafleet.common.media_access import sign_media_url, url_expires, verify_media_signature

    secret = "media-url-secret-for-the-manager-test-0123"
    core = core.model_copy(
        update={"media_url_base": "https://fleet.example/api", "media_url_secret": SecretStr(secret),
                "media_url_ttl_s": 3600}
    )  # fmt: skip
    manager = JobManager(
        JobManagerSettings(core=core), session_factory(create_db_engine(core.database_url)),
        redis.Redis.from_url(core.redis_url),
    )  # fmt: skip
    _new_job(api)
    manager.reconcile()
    queue = Queue("echo:normal", connection=manager.redis)
    fresh = queue.jobs[0].args[0]["media_url"]
    assert url_expires(fresh) is not None
    manager.reconcile()
    assert queue.jobs[0].args[0]["media_url"] == fresh  # a fresh URL is left as it is

    # the task has waited: its URL expired 10 s ago
    rq_job = queue.jobs[0]
    media_id = rq_job.args[0]["media_id"]
    expired = sign_media_url(core.media_url_base, media_id, secret, 60, now=time.time() - 70)
    rq_job.args = ({**rq_job.args[0], "media_url": expired},)
    manager.redis.hset(rq_job.key, "data", rq_job.data)
    assert queue.jobs[0].args[0]["media_url"] == expired
    manager.reconcile()
    renewed = queue.jobs[0].args[0]["media_url"]
    expires = url_expires(renewed)
    assert renewed != expired and expires is not None and expires > time.time() + 3000
    sig = renewed.rsplit("sig=", 1)[1]
    verify_media_signature(secret, media_id, expires, sig)  # raises when it does not verify
