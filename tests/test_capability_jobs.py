"""Jobs over many tasks, on the test-only echo capability and real OCR: dependencies,
parallel queues, the result cache, typed results, search over any capability's text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from mediafleet.common.settings import CoreSettings
from mediafleet.common.store import create_db_engine, session_factory
from mediafleet.gateway.app import create_app
from mediafleet.gateway.settings import AdminSettings, GatewaySettings
from mediafleet.job_manager.manager import JobManager
from mediafleet.job_manager.settings import JobManagerSettings
from tests.api_helpers import FIRST_PASSWORD, admin_token, auth, upload
from tests.conftest import sample
from tests.jobs_inprocess import queued, run_worker


class Stack:
    def __init__(self, client: TestClient, token: str, manager: JobManager, core: CoreSettings):
        self.client, self.token, self.manager, self.core = client, token, manager, core
        self.redis = manager.redis

    def media(self, name: str = "english.png") -> str:
        return upload(self.client, self.token, sample(name)).json()["media_id"]

    def create(self, media_id: str, tasks: list[str], **fields) -> str:
        resp = self.client.post(
            "/v1/jobs", json={"media_id": media_id, "tasks": tasks, **fields}, headers=auth(self.token)
        )
        assert resp.status_code == 202, resp.text
        return resp.json()["job_id"]

    def job(self, job_id: str) -> dict:
        return self.client.get(f"/v1/jobs/{job_id}", headers=auth(self.token)).json()

    def task(self, job_id: str, name: str) -> dict:
        return next(t for t in self.job(job_id)["tasks"] if t["name"] == name)


def make_stack(core: CoreSettings, **gateway: object) -> Iterator[Stack]:
    settings = GatewaySettings(
        core=core,
        secret_key=SecretStr("capability-jobs-secret-0123456789abcdef"),
        admin=AdminSettings(password=SecretStr(FIRST_PASSWORD)),
        **gateway,
    )
    with TestClient(create_app(settings)) as client:
        token = admin_token(client)
        manager = JobManager(
            JobManagerSettings(core=core),
            session_factory(create_db_engine(core.database_url)),
            redis.Redis.from_url(core.redis_url),
        )
        yield Stack(client, token, manager, core)


@pytest.fixture(params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Iterator[Stack]:
    url = f"sqlite:///{tmp_path / 'j.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    yield from make_stack(CoreSettings(database_url=url, redis_url=redis_url, media_dir=tmp_path / "media"))


def test_dependent_task_runs_after_and_receives_the_result(stack: Stack) -> None:
    media_id = stack.media()
    job_id = stack.create(media_id, ["echo_upper"], options={"echo": {"text": "clean hands"}})
    job = stack.job(job_id)
    assert [(t["name"], t["depends_on"]) for t in job["tasks"]] == [("echo", []), ("echo_upper", ["echo"])]

    stack.manager.reconcile()
    assert queued(stack.redis, "echo:normal") == 1  # only the dependency: echo_upper waits
    assert stack.task(job_id, "echo_upper")["status"] == "queued"
    run_worker(stack.core, "echo")
    stack.manager.reconcile()  # collects echo, then enqueues echo_upper with echo's result
    assert stack.task(job_id, "echo")["status"] == "succeeded"
    assert queued(stack.redis, "echo:normal") == 1
    run_worker(stack.core, "echo")
    stack.manager.reconcile()

    job = stack.job(job_id)
    assert job["status"] == "succeeded"
    assert job["results"]["echo"]["media_sha256"] == media_id  # the worker read the stored bytes
    assert job["results"]["echo_upper"]["text"] == "CLEAN HANDS"
    hits = stack.client.get("/v1/search", params={"q": "hands"}, headers=auth(stack.token)).json()["data"]
    assert [(m["task"], m["ref"], m["box"]) for m in hits[0]["matches"]] in (
        [("echo", "text", None), ("echo_upper", "text", None)],
        [("echo_upper", "text", None), ("echo", "text", None)],
    )


def test_failed_dependency_fails_its_dependents_with_the_reason(stack: Stack) -> None:
    job_id = stack.create(stack.media(), ["echo_upper"], options={"echo": {"reject": True}})
    stack.manager.reconcile()
    run_worker(stack.core, "echo")
    stack.manager.reconcile()
    job = stack.job(job_id)
    assert job["status"] == "failed"
    assert stack.task(job_id, "echo")["error"] == "echo_rejected: echo was asked to reject this"
    upper = stack.task(job_id, "echo_upper")
    assert upper["status"] == "failed" and upper["attempts"] == 0
    assert upper["error"].startswith("dependency echo failed: echo_rejected")
    assert queued(stack.redis, "echo:normal") == 0  # never enqueued


def test_independent_tasks_go_to_their_queues_at_once(stack: Stack) -> None:
    job_id = stack.create(stack.media("phototest.tif"), ["ocr", "echo"], priority="high")
    stack.manager.reconcile()
    assert queued(stack.redis, "ocr_detection:high") == 1 and queued(stack.redis, "echo:high") == 1
    run_worker(stack.core, "echo")
    stack.manager.reconcile()
    assert stack.job(job_id)["status"] == "running"  # echo done, OCR still queued
    run_worker(stack.core, "ocr_detection")
    stack.manager.reconcile()
    job = stack.job(job_id)
    assert job["status"] == "succeeded"
    assert "quick brown dog" in job["results"]["ocr"]["text"]


def test_identical_work_is_served_from_the_cache(stack: Stack) -> None:
    media_id = stack.media()
    first = stack.create(media_id, ["echo"], options={"echo": {"text": "once"}})
    stack.manager.reconcile()
    run_worker(stack.core, "echo")
    stack.manager.reconcile()
    assert stack.task(first, "echo")["cached"] is False

    again = stack.create(media_id, ["echo"], options={"echo": {"text": "once"}})
    stack.manager.reconcile()
    assert queued(stack.redis, "echo:normal") == 0  # nothing to run
    job = stack.job(again)
    assert job["status"] == "succeeded" and job["tasks"][0]["cached"] is True
    assert job["results"]["echo"] == stack.job(first)["results"]["echo"]

    # other options, or the cache turned off, run again
    stack.create(media_id, ["echo"], options={"echo": {"text": "twice"}})
    stack.create(media_id, ["echo"], options={"echo": {"text": "once"}}, use_cache=False)
    stack.manager.reconcile()
    assert queued(stack.redis, "echo:normal") == 2
    run_worker(stack.core, "echo")
    stack.manager.reconcile()

    # a worker with a new model version: the stored result is stale
    run_worker(stack.core, "echo", model_version="2")
    newer = stack.create(media_id, ["echo"], options={"echo": {"text": "once"}})
    stack.manager.reconcile()
    assert queued(stack.redis, "echo:normal") == 1
    run_worker(stack.core, "echo", model_version="2")
    stack.manager.reconcile()
    assert stack.job(newer)["results"]["echo"]["model_version"] == "2"
    assert stack.task(newer, "echo")["cached"] is False
    latest = stack.create(media_id, ["echo"], options={"echo": {"text": "once"}})
    stack.manager.reconcile()
    assert stack.task(latest, "echo")["cached"] is True


def test_cache_serves_a_dependency_and_its_dependent(stack: Stack) -> None:
    media_id = stack.media()
    for _ in range(2):
        run_worker(stack.core, "echo")
        stack.manager.reconcile()
    first = stack.create(media_id, ["echo_upper"], options={"echo": {"text": "abc"}})
    for _ in range(2):
        stack.manager.reconcile()
        run_worker(stack.core, "echo")
    stack.manager.reconcile()
    assert stack.job(first)["status"] == "succeeded"
    second = stack.create(media_id, ["echo_upper"], options={"echo": {"text": "abc"}})
    stack.manager.reconcile()  # both tasks served in one pass
    job = stack.job(second)
    assert job["status"] == "succeeded" and [t["cached"] for t in job["tasks"]] == [True, True]
    assert job["results"]["echo_upper"]["text"] == "ABC"


def test_results_are_typed_per_task_in_openapi(stack: Stack) -> None:
    schema = stack.client.get("/openapi.json").json()["components"]["schemas"]
    props = schema["JobResults"]["properties"]
    assert {"ocr", "echo", "echo_upper"} <= set(props)
    refs = {name: str(p) for name, p in props.items()}
    assert "OcrResult" in refs["ocr"] and "EchoResult" in refs["echo"] and "UpperResult" in refs["echo_upper"]
    assert "JobResults" in str(schema["JobPublic"]["properties"]["results"])


def test_media_kind_and_unknown_tasks_are_refused(stack: Stack) -> None:
    media_id = stack.media()
    resp = stack.client.post(
        "/v1/jobs", json={"media_id": media_id, "tasks": ["telepathy"]}, headers=auth(stack.token)
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "unknown_task"
    resp = stack.client.post(
        "/v1/jobs",
        json={"media_id": media_id, "tasks": ["echo"], "options": {"echo": {"colour": "red"}}},
        headers=auth(stack.token),
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "validation_error"
