"""Gateway API in process, on real PostgreSQL and Redis: auth, uploads, jobs, errors, isolation."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from mediafleet.common import events
from mediafleet.common.queues import NEW_JOBS_KEY, job_events_key
from mediafleet.common.settings import CoreSettings
from mediafleet.common.store import Job, Media, MediaOwner, Task
from mediafleet.common.store.models import utcnow
from mediafleet.common.tokens import create_token
from mediafleet.gateway.app import create_app
from mediafleet.gateway.settings import AdminSettings, GatewaySettings
from tests.api_helpers import (
    ADMIN,
    FIRST_PASSWORD,
    NEW_PASSWORD,
    admin_token,
    assert_envelope,
    auth,
    create_user,
    login,
    upload,
)
from tests.conftest import sample

SECRET = "test-secret-key-with-enough-length-0123456789"


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every gateway test runs on PostgreSQL (the fleet) and on SQLite (the native default)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(
        core=CoreSettings(database_url=database_url, redis_url=redis_url, media_dir=tmp_path / "media"),
        secret_key=SecretStr(SECRET),
        admin=AdminSettings(username=ADMIN, password=SecretStr(FIRST_PASSWORD)),
        max_upload_bytes=2_000_000,
    )


@pytest.fixture
def client(settings: GatewaySettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def token(client: TestClient) -> str:
    return admin_token(client)


def _second_user(client: TestClient, token: str) -> str:
    return create_user(client, token, "bob", "bobs-password-123")


def _stored_files(settings: GatewaySettings) -> list[Path]:
    return [p for p in settings.core.media_dir.rglob("*") if p.is_file()]


def _count(settings: GatewaySettings, model) -> int:
    engine = create_engine(settings.core.database_url)
    with Session(engine) as s:
        n = s.scalar(select(func.count()).select_from(model))
    engine.dispose()
    return n


# -- auth ---------------------------------------------------------------------------
def test_first_admin_must_change_password(client: TestClient) -> None:
    first = login(client, ADMIN, FIRST_PASSWORD)
    assert first["must_change_password"] is True and first["token_type"] == "bearer"
    assert_envelope(
        client.get("/v1/jobs", headers=auth(first["access_token"])), 403, "password_change_required"
    )
    weak = client.post(
        "/v1/auth/password",
        json={"current_password": FIRST_PASSWORD, "new_password": "short"},
        headers=auth(first["access_token"]),
    )
    assert_envelope(weak, 400, "weak_password")
    new = client.post(
        "/v1/auth/password",
        json={"current_password": FIRST_PASSWORD, "new_password": NEW_PASSWORD},
        headers=auth(first["access_token"]),
    ).json()
    assert new["must_change_password"] is False
    assert client.get("/v1/jobs", headers=auth(new["access_token"])).status_code == 200
    # the old token was revoked by the password change, the old password no longer works
    assert_envelope(client.get("/v1/jobs", headers=auth(first["access_token"])), 401, "invalid_token")
    assert_envelope(client.post("/v1/auth/token", data={"username": ADMIN, "password": FIRST_PASSWORD}), 401)


def test_refresh_token_gives_new_access_token(client: TestClient, token: str) -> None:
    pair = login(client, ADMIN, NEW_PASSWORD)
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200
    assert (
        client.get("/v1/users/me", headers=auth(refreshed.json()["access_token"])).json()["username"] == ADMIN
    )
    # an access token is not a refresh token
    assert_envelope(client.post("/v1/auth/refresh", json={"refresh_token": pair["access_token"]}), 401)


def test_missing_expired_and_tampered_tokens(client: TestClient, token: str) -> None:
    assert_envelope(client.get("/v1/jobs"), 401, "missing_token")
    expired = create_token(SECRET, 1, "access", 1, dt.timedelta(seconds=-5))
    assert_envelope(client.get("/v1/jobs", headers=auth(expired)), 401, "token_expired")
    head, body, sig = token.split(".")
    tampered = f"{head}.{body}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}"
    assert_envelope(client.get("/v1/jobs", headers=auth(tampered)), 401, "invalid_token")
    forged = create_token("another-secret-another-secret-0000", 1, "access", 1, dt.timedelta(minutes=5))
    assert_envelope(client.get("/v1/jobs", headers=auth(forged)), 401, "invalid_token")
    assert_envelope(client.post("/v1/auth/token", data={"username": ADMIN, "password": "wrong"}), 401)


@pytest.mark.parametrize("environment", ["production", "test"])
def test_placeholder_secrets_refused_outside_development(environment: str) -> None:
    prod = CoreSettings(environment=environment)
    with pytest.raises(ValueError, match="GATEWAY_SECRET_KEY"):
        GatewaySettings(core=prod, admin=AdminSettings(password=SecretStr("a-real-admin-password")))
    with pytest.raises(ValueError, match="GATEWAY_ADMIN__PASSWORD"):
        GatewaySettings(core=prod, secret_key=SecretStr(SECRET))
    with pytest.raises(ValueError, match="GATEWAY_SECRET_KEY"):  # the .env.example value
        GatewaySettings(
            core=prod,
            secret_key=SecretStr("change-me-to-32-or-more-random-characters"),
            admin=AdminSettings(password=SecretStr("a-real-admin-password")),
        )
    ok = GatewaySettings(
        core=prod, secret_key=SecretStr(SECRET), admin=AdminSettings(password=SecretStr("real-pass-42"))
    )
    assert ok.core.environment == environment
    GatewaySettings(core=CoreSettings(environment="development"))  # development only warns


def test_admin_only_user_creation(client: TestClient, token: str) -> None:
    bob = _second_user(client, token)
    resp = client.post(
        "/v1/users", json={"username": "eve", "password": "eves-password-1"}, headers=auth(bob)
    )
    assert_envelope(resp, 403, "forbidden")
    dup = client.post(
        "/v1/users", json={"username": "bob", "password": "another-pass-1"}, headers=auth(token)
    )
    assert_envelope(dup, 409, "user_exists")


# -- uploads ------------------------------------------------------------------------
def test_upload_is_stored_once_by_sha256(client: TestClient, token: str, settings: GatewaySettings) -> None:
    first = upload(client, token, sample("phototest.tif"))
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["mime"] == "image/tiff" and (body["width"], body["height"]) == (640, 480)
    assert (
        body["media_id"] == "d2241a1eb6d6cd2eb6544b8e228c2862c852b7467d16ed636caa32179b780692"
    )  # MANIFEST sha256
    again = upload(client, token, sample("phototest.tif"), name="renamed.bin")
    assert again.json()["media_id"] == body["media_id"] and again.json()["deduplicated"] is True
    assert len(_stored_files(settings)) == 1 and _count(settings, Media) == 1
    assert client.get(f"/v1/media/{body['media_id']}", headers=auth(token)).status_code == 200


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"%PDF-1.4 not an image at all\n", 415, "unsupported_media_type"),
        (b"", 422, "invalid_media"),
        ("truncated", 422, "invalid_media"),
        ("oversize", 413, "payload_too_large"),
    ],
)
def test_bad_uploads_leave_nothing_behind(
    client: TestClient, token: str, settings: GatewaySettings, content: bytes | str, status: int, code: str
) -> None:
    upload(client, token, sample("chinese.jpg"))  # something already stored must survive
    if content == "truncated":
        data = sample("french.jpg").read_bytes()
        content = data[: len(data) // 3]
    elif content == "oversize":
        content = sample("english.png").read_bytes()  # 1.74 MB > limit set below
        client.app.state.ctx.media.max_bytes = 1_000_000
    resp = client.post("/v1/media", files={"file": ("x.jpg", content)}, headers=auth(token))
    assert_envelope(resp, status, code)
    assert len(_stored_files(settings)) == 1 and _count(settings, Media) == 1
    assert client.get("/healthz").status_code == 200  # still serving
    assert upload(client, token, sample("phototest.tif")).status_code == 201


def test_body_over_the_limit_is_refused_before_parsing(
    client: TestClient, token: str, settings: GatewaySettings
) -> None:
    big = b"\0" * (settings.max_upload_bytes + 200_000)
    resp = client.post("/v1/media", files={"file": ("big.png", big)}, headers=auth(token))
    assert_envelope(resp, 413, "payload_too_large")
    assert _stored_files(settings) == []


# -- jobs ---------------------------------------------------------------------------
def test_job_creation_queues_and_hands_off(client: TestClient, token: str, settings: GatewaySettings) -> None:
    media_id = upload(client, token, sample("english.png")).json()["media_id"]
    resp = client.post(
        "/v1/jobs",
        json={
            "media_id": media_id,
            "tasks": ["ocr"],
            "options": {"ocr": {"engine": "rapidocr", "languages": ["en"]}},
            "priority": "high",
        },
        headers=auth(token),
    )
    assert resp.status_code == 202 and resp.json()["status"] == "queued"
    job_id = resp.json()["job_id"]
    r = redis.Redis.from_url(settings.core.redis_url)
    assert r.lrange(NEW_JOBS_KEY, 0, -1) == [job_id.encode()]
    job = client.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()
    assert job["status"] == "queued" and job["priority"] == "high"
    assert job["options"] == {"ocr": {"engine": "rapidocr", "languages": ["en"]}}
    assert [t["name"] for t in job["tasks"]] == ["ocr"] and job["results"] == {}


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"tasks": ["telepathy"]}, 422, "unknown_task"),
        ({"tasks": ["ocr"], "options": {"ocr": {"engine": "paddleocr"}}}, 422, "validation_error"),
        ({"tasks": ["ocr"], "options": {"pose": {}}}, 422, "unknown_option"),
        ({"tasks": ["ocr"], "priority": "urgent"}, 422, "validation_error"),
        ({"tasks": []}, 422, "validation_error"),
        # languages no engine that would run reads: refused at creation, from the OCR contract
        ({"tasks": ["ocr"], "options": {"ocr": {"languages": ["ko"]}}}, 422, "unsupported_language"),
        (
            {"tasks": ["ocr"], "options": {"ocr": {"model": "pp-ocrv4", "languages": ["ja"]}}},
            422,
            "unsupported_language",
        ),
        # a choice the engine does not have (model is RapidOCR's, layout Tesseract's)
        (
            {"tasks": ["ocr"], "options": {"ocr": {"engine": "tesseract", "model": "pp-ocrv4"}}},
            422,
            "invalid_option",
        ),
        (
            {"tasks": ["ocr"], "options": {"ocr": {"engine": "easyocr", "languages": ["zh"]}}},
            422,
            "unsupported_language",
        ),
    ],
)
def test_bad_job_requests(client: TestClient, token: str, payload: dict, status: int, code: str) -> None:
    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    assert_envelope(
        client.post("/v1/jobs", json={"media_id": media_id, **payload}, headers=auth(token)), status, code
    )
    assert client.get("/v1/jobs", headers=auth(token)).json()["count"] == 0


def test_unknown_media_and_other_users_things(
    client: TestClient, token: str, settings: GatewaySettings
) -> None:
    assert_envelope(
        client.post("/v1/jobs", json={"media_id": "0" * 64, "tasks": ["echo"]}, headers=auth(token)),
        404,
        "media_not_found",
    )
    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    job_id = client.post(
        "/v1/jobs", json={"media_id": media_id, "tasks": ["echo"]}, headers=auth(token)
    ).json()["job_id"]
    bob = _second_user(client, token)
    assert_envelope(client.get(f"/v1/jobs/{job_id}", headers=auth(bob)), 404, "job_not_found")
    assert_envelope(client.delete(f"/v1/jobs/{job_id}", headers=auth(bob)), 404, "job_not_found")
    assert_envelope(client.get(f"/v1/jobs/{job_id}/events", headers=auth(bob)), 404, "job_not_found")
    assert_envelope(client.get(f"/v1/media/{media_id}", headers=auth(bob)), 404, "media_not_found")
    assert_envelope(  # bob cannot run jobs on media he never uploaded
        client.post("/v1/jobs", json={"media_id": media_id, "tasks": ["echo"]}, headers=auth(bob)), 404
    )
    assert client.get("/v1/jobs", headers=auth(bob)).json()["count"] == 0
    assert client.get(f"/v1/jobs/{job_id}", headers=auth(token)).status_code == 200


def test_a_retried_submission_with_its_idempotency_key_makes_one_job(client: TestClient, token: str) -> None:
    media_id = upload(client, token, sample("english.png")).json()["media_id"]
    body = {"media_id": media_id, "tasks": ["echo"], "priority": "high"}
    first = client.post("/v1/jobs", json=body, headers={**auth(token), "Idempotency-Key": "order-42"})
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    again = client.post("/v1/jobs", json=body, headers={**auth(token), "Idempotency-Key": "order-42"})
    assert again.status_code == 202 and again.json()["job_id"] == first.json()["job_id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = {**body, "priority": "low"}  # the same key with another request
    assert_envelope(client.post("/v1/jobs", json=other, headers={**auth(token), "Idempotency-Key": "order-42"}),
                    422, "idempotency_key_reused")  # fmt: skip
    assert client.get("/v1/jobs", headers=auth(token)).json()["count"] == 1
    # keys are per user: another user's same key is their own
    bob = _second_user(client, token)
    bobs = upload(client, bob, sample("english.png")).json()["media_id"]
    mine = client.post(
        "/v1/jobs", json={**body, "media_id": bobs}, headers={**auth(bob), "Idempotency-Key": "order-42"}
    )
    assert mine.status_code == 202 and mine.json()["job_id"] != first.json()["job_id"]
    assert_envelope(
        client.post("/v1/jobs", json=body, headers={**auth(token), "Idempotency-Key": "bad key"}), 422
    )


def test_list_is_paginated_newest_first(client: TestClient, token: str) -> None:
    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    ids = [
        client.post("/v1/jobs", json={"media_id": media_id, "tasks": ["echo"]}, headers=auth(token)).json()[
            "job_id"
        ]
        for _ in range(5)
    ]
    page1 = client.get("/v1/jobs?limit=2", headers=auth(token)).json()
    page3 = client.get("/v1/jobs?limit=2&offset=4", headers=auth(token)).json()
    assert page1["count"] == 5 and len(page1["data"]) == 2 and len(page3["data"]) == 1
    seen = (
        [j["job_id"] for j in page1["data"]]
        + [j["job_id"] for j in client.get("/v1/jobs?limit=2&offset=2", headers=auth(token)).json()["data"]]
        + [j["job_id"] for j in page3["data"]]
    )
    assert sorted(seen) == sorted(ids)
    assert_envelope(client.get("/v1/jobs?limit=1000", headers=auth(token)), 422)


def test_cancel_then_cancel_again(client: TestClient, token: str, settings: GatewaySettings) -> None:
    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    job_id = client.post(
        "/v1/jobs", json={"media_id": media_id, "tasks": ["echo"]}, headers=auth(token)
    ).json()["job_id"]
    resp = client.delete(f"/v1/jobs/{job_id}", headers=auth(token))
    assert resp.status_code == 200 and resp.json()["status"] == "canceled"
    assert resp.json()["tasks"][0]["status"] == "canceled"
    assert_envelope(client.delete(f"/v1/jobs/{job_id}", headers=auth(token)), 409, "job_finished")
    assert client.get("/v1/jobs?status=canceled", headers=auth(token)).json()["count"] == 1


def test_events_of_a_finished_job_end_with_its_snapshot(client: TestClient, token: str) -> None:
    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    job_id = client.post(
        "/v1/jobs", json={"media_id": media_id, "tasks": ["echo"]}, headers=auth(token)
    ).json()["job_id"]
    client.delete(f"/v1/jobs/{job_id}", headers=auth(token))
    with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth(token)) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        body = "".join(resp.iter_text())
    events = [blk for blk in body.split("\r\n\r\n") if blk.strip()]
    assert events[0].startswith("event: job")
    data = json.loads(events[-1].split("data: ", 1)[1])
    assert data["job_id"] == job_id and data["status"] == "canceled"


def _events_until_finished(
    client: TestClient, token: str, settings: GatewaySettings, job_id: str, headers: dict | None = None
) -> list[tuple[str, str | None, dict]]:
    """Open the job's SSE stream; 1 s later a 'worker' finishes the job in the store."""

    def finish() -> None:
        time.sleep(1.0)
        with Session(create_engine(settings.core.database_url)) as session:
            session.get(Job, job_id).status = "succeeded"
            session.commit()

    worker = threading.Thread(target=finish)
    worker.start()
    try:
        with client.stream(
            "GET", f"/v1/jobs/{job_id}/events", headers={**auth(token), **(headers or {})}
        ) as resp:
            assert resp.status_code == 200
            body = "".join(resp.iter_text())
    finally:
        worker.join()
    out = []
    for block in (b for b in body.split("\r\n\r\n") if b.strip()):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        out.append((fields["event"], fields.get("id"), json.loads(fields["data"])))
    return out


def test_events_published_before_the_client_connects_are_replayed(
    client: TestClient, token: str, settings: GatewaySettings
) -> None:
    """A fast task's events that precede the SSE connection still reach the client, in order,
    and a reconnect with Last-Event-ID resumes after the last event it saw."""
    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    job_id = client.post(
        "/v1/jobs", json={"media_id": media_id, "tasks": ["echo"]}, headers=auth(token)
    ).json()["job_id"]
    r = redis.Redis.from_url(settings.core.redis_url)
    events.publish(r, job_id, task="echo", task_status="running")
    events.publish(r, job_id, task="echo", progress=0.5)

    seen = _events_until_finished(client, token, settings, job_id)
    kinds = [kind for kind, _, _ in seen]
    assert kinds[0] == "job" and kinds[-1] == "job" and seen[-1][2]["status"] == "succeeded"
    progress = [(eid, data) for kind, eid, data in seen if kind == "progress"]
    assert [d.get("task_status") or d.get("progress") for _, d in progress] == ["running", 0.5]
    assert all(eid for eid, _ in progress) and progress[0][0] < progress[1][0]

    # Resume: a second job, reconnecting after its first event, gets only the second.
    job2 = client.post(
        "/v1/jobs", json={"media_id": media_id, "tasks": ["echo"], "use_cache": False}, headers=auth(token)
    ).json()["job_id"]
    events.publish(r, job2, task="echo", task_status="running")
    events.publish(r, job2, task="echo", progress=0.25)
    first_id = r.xrange(job_events_key(job2))[0][0].decode()
    resumed = _events_until_finished(client, token, settings, job2, {"Last-Event-ID": first_id})
    assert [d.get("progress") for kind, _, d in resumed if kind == "progress"] == [0.25]
    # A malformed Last-Event-ID is ignored: the whole history again.
    job3 = client.post(
        "/v1/jobs", json={"media_id": media_id, "tasks": ["echo"], "use_cache": False}, headers=auth(token)
    ).json()["job_id"]
    events.publish(r, job3, task="echo", task_status="running")
    again = _events_until_finished(client, token, settings, job3, {"Last-Event-ID": "junk"})
    assert [d.get("task_status") for kind, _, d in again if kind == "progress"] == ["running"]
    assert 0 < r.ttl(job_events_key(job3)) <= events.EVENTS_TTL_S


def test_search_requires_words_and_is_scoped(client: TestClient, token: str) -> None:
    assert_envelope(client.get("/v1/search?q=%20%21", headers=auth(token)), 400, "empty_query")
    assert client.get("/v1/search?q=louvre", headers=auth(token)).json() == {
        "query": "louvre",
        "data": [],
        "count": 0,
    }


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    # HEAD answers as GET does, without a body (load balancers, curl -I); not in the OpenAPI
    head = client.head("/healthz")
    assert (
        head.status_code == 200 and head.content == b"" and head.headers["content-type"] == "application/json"
    )
    assert client.head("/readyz").status_code == 503  # as GET below: no job_manager here
    assert not {"head"} & {m for ops in client.get("/openapi.json").json()["paths"].values() for m in ops}
    resp = client.get("/readyz")
    ready = resp.json()
    # no job_manager runs in this test: jobs would wait for ever, so the gateway is not ready
    assert resp.status_code == 503 and ready["status"] == "not_ready"
    assert ready["checks"]["database"] == "ok" and ready["checks"]["redis"] == "ok"
    assert ready["checks"]["job_manager"].startswith("no heartbeat")
    assert ready["capabilities"]["ocr"].startswith("no_worker:")  # no OCR worker runs in this test
    client.get("/v1/jobs")
    metrics = client.get("/metrics").text
    assert (
        'mediafleet_http_requests_total{method="GET",route="/v1/jobs",service="gateway",status="401"}'
        in metrics
    )
    assert "mediafleet_http_request_duration_seconds_bucket" in metrics


@pytest.mark.parametrize(("environment", "token"), [("production", None), ("test", "internals-token-123")])
def test_metrics_and_docs_need_the_internals_token_outside_development(
    environment: str, token: str | None, settings: GatewaySettings
) -> None:
    """/metrics, /docs, /redoc and /openapi.json: open in development (the other tests), else
    a 404 without GATEWAY_INTERNALS_TOKEN, a 401 without it in the request, 200 with it."""
    guarded = settings.model_copy(update={
        "core": settings.core.model_copy(update={"environment": environment}),
        "internals_token": SecretStr(token) if token else None,
        "secret_key": SecretStr("a-real-secret-key-for-this-test-0123456789"),
        "admin": settings.admin.model_copy(update={"password": SecretStr("a-real-first-password-1")}),
    })  # fmt: skip
    with TestClient(create_app(guarded)) as c:
        for path in ("/metrics", "/docs", "/redoc", "/openapi.json"):
            if token is None:
                assert_envelope(c.get(path), 404, "not_found")
                continue
            assert_envelope(c.get(path), 401, "missing_token")
            assert_envelope(c.get(path, headers=auth("wrong")), 401)
            assert c.get(path, headers=auth(token)).status_code == 200, path
        assert c.get("/healthz").status_code == 200  # probes stay open


def test_openapi_lists_the_api(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/auth/token",
        "/v1/media",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/events",
        "/v1/search",
    ):
        assert path in paths
    # every operation documents the error body for the 4xx/5xx it may answer: the envelope, or
    # OpenAI's on the OpenAI-compatible routes (the LLM's, the audio API)
    openai_style = {"/v1/audio/transcriptions", "/v1/audio/translations"}
    for path, ops in paths.items():
        body = (
            "OpenAIErrorEnvelope" if path in openai_style or path.startswith("/v1/llm/") else "ErrorEnvelope"
        )
        for method, op in ops.items():
            for status in ("401", "404", "422", "500"):
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": f"#/components/schemas/{body}"}, (method, path, status)
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}


def test_proxied_openai_routes_are_typed(client: TestClient) -> None:
    """The LLM's OpenAI-compatible routes, one path each with the request and answer models of
    its contract (passed through unparsed; the service validates them), all resolvable."""
    doc = client.get("/openapi.json").json()
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    assert {p for p in paths if p.startswith("/v1/llm/")} == {
        "/v1/llm/models", "/v1/llm/models/{model}", "/v1/llm/chat/completions", "/v1/llm/completions",
        "/v1/llm/embeddings",
    }  # fmt: skip
    chat = paths["/v1/llm/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletionRequest"
    }
    answer = chat["responses"]["200"]["content"]
    assert answer["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletion"}
    assert "ChatCompletionChunk" in answer["text/event-stream"]["schema"]["description"]
    assert schemas["ChatCompletionRequest"]["properties"]["messages"]["minItems"] == 1
    one = paths["/v1/llm/models/{model}"]["get"]
    assert [p["name"] for p in one["parameters"]] == ["model"] and one["parameters"][0]["in"] == "path"
    refs = {m.group(1) for m in re.finditer(r'"#/components/schemas/([^"]+)"', json.dumps(doc))}
    assert refs <= set(schemas), refs - set(schemas)


def test_media_survives_in_the_database(settings: GatewaySettings, client: TestClient, token: str) -> None:
    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    assert _count(settings, MediaOwner) == 1 and _count(settings, Job) == 0
    assert (settings.core.media_dir / media_id[:2] / media_id[2:4] / f"{media_id}.tif").is_file()


def test_hostile_values_get_the_envelope_never_a_500(client: TestClient, token: str) -> None:
    """NUL bytes (PostgreSQL cannot store them), an offset past int64, huge option lists."""
    for resp in (
        client.get("/v1/jobs/abc%00def", headers=auth(token)),
        client.get("/v1/media/abc%00def", headers=auth(token)),
        client.post("/v1/auth/token", data={"username": "ad\x00min", "password": "x" * 12}),
    ):
        assert resp.status_code in (400, 401, 404), resp.text
        assert resp.json()["error"]["code"] in (
            "invalid_input",
            "job_not_found",
            "media_not_found",
            "invalid_credentials",
        )
    assert_envelope(
        client.get("/v1/jobs?offset=9223372036854775808", headers=auth(token)), 422, "validation_error"
    )

    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    resp = client.post(
        "/v1/jobs",
        json={
            "media_id": media_id,
            "tasks": ["ocr"],
            "options": {"ocr": {f"k{i}": "v" * 50 for i in range(5000)}},
        },
        headers=auth(token),
    )
    err = assert_envelope(resp, 422, "validation_error")
    assert len(err["details"]) == 21 and err["details"][-1]["msg"] == "4980 more errors not shown"
    assert len(resp.content) < 10_000 and "vvvvv" not in resp.text  # the input is never echoed


def test_filenames_lose_path_parts_and_control_characters(client: TestClient, token: str) -> None:
    long = "../../etc/" + "x" * 300 + ".tif"
    assert upload(client, token, sample("phototest.tif"), long).json()["filename"] == "x" * 251 + ".tif"
    # raw multipart: clients percent-encode control characters, an attacker need not
    boundary = "mf-test-boundary"
    name = "C:\\Users\\me\\sc\x01an\x7f\u202e.png"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + sample("english.png").read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    resp = client.post(
        "/v1/media",
        content=body,
        headers={**auth(token), "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["filename"] == "scan.png"


def test_unhandled_errors_are_enveloped_with_the_request_id(settings: GatewaySettings) -> None:
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    with TestClient(app, raise_server_exceptions=False) as c:
        resp = c.get("/boom", headers={"X-Request-ID": "req-123"})
        fresh = c.get("/boom")
        ok = c.get("/healthz")
    err = assert_envelope(resp, 500, "internal_error")
    assert err["details"] == {"request_id": "req-123"} and resp.headers["x-request-id"] == "req-123"
    assert "secret internal detail" not in resp.text
    assert len(fresh.json()["error"]["details"]["request_id"]) == 32  # a new id when none is given
    assert len(ok.headers["x-request-id"]) == 32


def test_stale_upload_parts_are_removed_at_start(settings: GatewaySettings) -> None:
    tmp = settings.core.media_dir / ".tmp"
    tmp.mkdir(parents=True)
    old, young = tmp / "old.part", tmp / "young.part"
    old.write_bytes(b"x")
    young.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    with TestClient(create_app(settings)):
        pass
    assert not old.exists() and young.exists()  # a young part may be another gateway's upload


def test_admin_fleet_view_is_for_admins(client: TestClient, token: str) -> None:
    """GET /v1/admin/services: every installed capability with no worker running here."""
    bob_token = _second_user(client, token)
    assert_envelope(client.get("/v1/admin/services", headers=auth(bob_token)), 403, "forbidden")
    assert_envelope(client.get("/v1/admin/services"), 401, "missing_token")
    fleet = client.get("/v1/admin/services", headers=auth(token)).json()
    assert fleet["job_manager"] != "ok"  # no job_manager runs in this test
    ocr = next(c for c in fleet["capabilities"] if c["capability"] == "ocr_detection")
    assert ocr == {"capability": "ocr_detection", "queue": "ocr_detection", "tasks": ["ocr"], "workers": 0,
                   "devices": {}, "queued": {"high": 0, "normal": 0, "low": 0}, "oldest_wait_s": 0.0,
                   "failed_last_hour": 0, "model_versions": {},
                   "readiness": {"ocr": {"state": "no_worker", "workers": 0, "ready_workers": 0,
                                         "message": "no worker runs: jobs needing it wait in the queue"}}}  # fmt: skip
    # tasks that failed in the last hour count, older failures do not (all users' tasks)
    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    for _ in range(2):
        body = {"media_id": media_id, "tasks": ["ocr"], "use_cache": False}
        assert client.post("/v1/jobs", json=body, headers=auth(token)).status_code == 202
    ctx = client.app.state.ctx
    with ctx.sessions() as session:
        recent, old = session.scalars(select(Task).where(Task.name == "ocr")).all()
        recent.status, recent.finished_at = "failed", utcnow() - dt.timedelta(minutes=59)
        old.status, old.finished_at = "failed", utcnow() - dt.timedelta(minutes=61)
        session.commit()
    fleet = client.get("/v1/admin/services", headers=auth(token)).json()
    by_name = {c["capability"]: c for c in fleet["capabilities"]}
    assert by_name["ocr_detection"]["failed_last_hour"] == 1 and by_name["face_reid"]["failed_last_hour"] == 0


def test_tasks_describe_what_the_fleet_can_run(client: TestClient, token: str) -> None:
    """GET /v1/tasks: every installed task with its kinds, defaults, options schema and readiness
    (no worker runs in this test: none is ready, and the upload view ticks nothing)."""
    assert_envelope(client.get("/v1/tasks"), 401, "missing_token")
    tasks = {t["name"]: t for t in client.get("/v1/tasks", headers=auth(token)).json()["data"]}
    assert {"ocr", "pose", "faces", "nsfw", "clip", "transcribe", "summarize"} <= set(tasks)
    ocr = tasks["ocr"]
    assert ocr["capability"] == "ocr_detection" and ocr["media_kinds"] == ["image", "video"]
    assert ocr["default_for"] == ["image"] and ocr["exports"] == []
    assert set(ocr["options_schema"]["properties"]) == {"engine", "model", "languages", "layout"}
    assert ocr["readiness"] == {"state": "no_worker", "workers": 0, "ready_workers": 0,
                                "message": "no worker runs: jobs needing it wait in the queue"}  # fmt: skip
    assert tasks["transcribe"]["default_for"] == ["audio", "video"]
    assert {"srt", "vtt"} <= set(tasks["transcribe"]["exports"])
    assert tasks["summarize"]["default_for"] == []


def test_sync_route_runs_a_job_and_waits_for_it(
    client: TestClient, token: str, settings: GatewaySettings
) -> None:
    """A contract's sync route (echo's /v1/echo/sync): the upload becomes the caller's media and
    a job; no worker runs here, so the wait ends at GATEWAY_SYNC_TIMEOUT_S with 504 naming the
    job, which stays queued for a worker to run."""
    client.app.state.ctx.settings.sync_timeout_s = 1.0
    resp = client.post(
        "/v1/echo/sync",
        files={"file": ("english.png", sample("english.png").read_bytes())},
        data={"text": "hello", "tags[]": ["a", "b"]},
        headers=auth(token),
    )
    error = assert_envelope(resp, 504, "job_still_running")
    job_id = error["details"]["job_id"]
    job = client.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()
    assert job["status"] == "queued" and job["options"] == {
        "echo": {"text": "hello", "embed": False, "sleep_s": 0.0, "reject": False, "crash": False}
    }
    assert job["media_id"] in {
        m["media_id"] for m in client.get("/v1/media", headers=auth(token)).json()["data"]
    }
    # the form is checked before anything is stored or queued
    assert_envelope(
        client.post("/v1/echo/sync", data={"text": "x"}, headers=auth(token)), 400, "missing_file"
    )
    bad = client.post(
        "/v1/echo/sync",
        files={"file": ("english.png", b"png?")},
        data={"tags[]": ["1", "2", "3", "4", "5"]},
        headers=auth(token),
    )
    assert assert_envelope(bad, 422, "validation_error")["details"][0]["loc"] == ["tags"]
    assert len(client.get("/v1/jobs", headers=auth(token)).json()["data"]) == 1
    assert_envelope(client.post("/v1/echo/sync", files={"file": ("a.png", b"x")}), 401)
