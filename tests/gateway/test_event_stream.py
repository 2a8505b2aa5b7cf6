"""A job's event stream read by httpx-sse, an SSE client nobody here wrote (issue 26.4): the
``retry`` it announces, every progress event replayed with its ``id``, the final snapshot with
``id: end``, and the 204 that makes an ``EventSource`` stop reconnecting after it (WHATWG HTML,
server-sent events)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from httpx_sse import ServerSentEvent, connect_sse
from pydantic import SecretStr
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from mediafleet.common import events
from mediafleet.common.settings import CoreSettings
from mediafleet.common.store import Job
from mediafleet.gateway.app import create_app
from mediafleet.gateway.settings import AdminSettings, GatewaySettings
from tests.api_helpers import ADMIN, FIRST_PASSWORD, admin_token, auth, upload
from tests.conftest import sample


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(
        core=CoreSettings(
            database_url=f"sqlite:///{tmp_path / 'g.db'}", redis_url=redis_url, media_dir=tmp_path / "media"
        ),
        secret_key=SecretStr("event-stream-secret-0123456789abcdefgh"),
        admin=AdminSettings(username=ADMIN, password=SecretStr(FIRST_PASSWORD)),
    )


@pytest.fixture
def client(settings: GatewaySettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def read(client: TestClient, url: str, headers: dict[str, str]) -> tuple[int, list[ServerSentEvent]]:
    with connect_sse(client, "GET", url, headers=headers) as source:
        if source.response.status_code != 200:
            return source.response.status_code, []
        return 200, list(source.iter_sse())


def test_a_finished_jobs_stream_as_an_sse_client_reads_it(
    client: TestClient, settings: GatewaySettings
) -> None:
    token = admin_token(client)
    media_id = upload(client, token, sample("english.png")).json()["media_id"]
    job_id = client.post(
        "/v1/jobs", json={"media_id": media_id, "tasks": ["echo"]}, headers=auth(token)
    ).json()["job_id"]
    r = redis.Redis.from_url(settings.core.redis_url)
    events.publish(r, job_id, task="echo", task_status="running")
    events.publish(r, job_id, task="echo", progress=0.5)
    with Session(create_engine(settings.core.database_url)) as session:
        session.get(Job, job_id).status = "succeeded"  # a worker and job_manager would, later
        session.commit()

    url = f"/v1/jobs/{job_id}/events"
    status, got = read(client, url, auth(token))
    assert status == 200 and [e.event for e in got] == ["job", "progress", "progress", "job"]
    assert got[0].retry == 3000  # reconnect after 3 s
    progress = [json.loads(e.data) for e in got[1:3]]
    assert progress[0]["task_status"] == "running" and progress[1]["progress"] == 0.5
    assert all(e.id for e in got[1:3]) and got[1].id != got[2].id
    assert got[-1].id == "end" and json.loads(got[-1].data)["status"] == "succeeded"

    # reconnecting after the first progress event: the rest, then the snapshot again
    status, rest = read(client, url, {**auth(token), "Last-Event-ID": got[1].id})
    assert [(e.event, e.id) for e in rest] == [("job", ""), ("progress", got[2].id), ("job", "end")]
    # an EventSource reconnecting after the final event is told to stop: 204 No Content
    assert read(client, url, {**auth(token), "Last-Event-ID": "end"}) == (204, [])
