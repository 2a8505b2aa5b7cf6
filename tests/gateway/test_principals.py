"""The principal cache (mediafleet.gateway.principals): reads skip the database's token check,
and every way a token dies still reaches every gateway process at once.

Two apps on one database and one Redis stand for two gateway processes (uvicorn workers or
Swarm replicas): a token is read through both (cached in both), revoked through one, and
refused by the other on its next read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import event, text

from mediafleet.common.settings import CoreSettings
from mediafleet.gateway.app import create_app
from mediafleet.gateway.settings import AdminSettings, GatewaySettings
from tests.api_helpers import ADMIN, FIRST_PASSWORD, admin_token, assert_envelope, auth, create_user, login

SECRET = "test-secret-key-with-enough-length-0123456789"


def make_settings(url: str, redis_url: str, tmp_path: Path, cache_s: float = 5.0) -> GatewaySettings:
    return GatewaySettings(
        core=CoreSettings(database_url=url, redis_url=redis_url, media_dir=tmp_path / "media"),
        secret_key=SecretStr(SECRET),
        admin=AdminSettings(username=ADMIN, password=SecretStr(FIRST_PASSWORD)),
        principal_cache_s=cache_s,
    )


@pytest.fixture
def two(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    """Two gateway apps ("processes") on one PostgreSQL database and one Redis."""
    settings = make_settings(pg_url, redis_url, tmp_path)
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        yield a, b


def statements(app: FastAPI) -> Callable[[], int]:
    """A counter of the SQL statements ``app`` sends from now on."""
    seen = [0]

    def count(*_args: object) -> None:
        seen[0] += 1

    event.listen(app.state.ctx.db, "before_cursor_execute", count)
    return lambda: seen[0]


def refused(client: TestClient, token: str, code: str, timeout_s: float = 2.0) -> None:
    """``GET /v1/jobs`` with ``token`` answers 401 ``code`` (the change crosses Redis pub/sub:
    allowed ``timeout_s`` to arrive)."""
    deadline = time.monotonic() + timeout_s
    while True:
        resp = client.get("/v1/jobs", headers=auth(token))
        if resp.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert_envelope(resp, 401, code)


def test_a_cached_read_asks_the_database_one_query_less(two: tuple[TestClient, TestClient]) -> None:
    a, _ = two
    token = admin_token(a)
    assert a.get("/v1/jobs", headers=auth(token)).status_code == 200  # the token is now cached
    count = statements(a.app)  # type: ignore[arg-type]
    for _ in range(5):
        assert a.get("/v1/jobs", headers=auth(token)).status_code == 200
    cached = count()
    a.app.state.ctx.principals.clear()  # type: ignore[attr-defined]
    before = count()
    assert a.get("/v1/jobs", headers=auth(token)).status_code == 200
    uncached = count() - before
    assert cached == 5 * (uncached - 1), (cached, uncached)  # the user + sign-in query is skipped


def test_sign_out_password_change_and_disabling_reach_the_other_process(
    two: tuple[TestClient, TestClient],
) -> None:
    a, b = two
    admin = admin_token(a)
    bob = create_user(a, admin, "bob", "bobs-password-123")
    for client in (a, b):  # cached in both
        assert client.get("/v1/jobs", headers=auth(bob)).status_code == 200

    # sign-out through a: b refuses the sign-in's access token
    pair = login(a, "bob", "bobs-password-123")
    assert b.get("/v1/jobs", headers=auth(pair["access_token"])).status_code == 200
    assert a.post("/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code == 204
    refused(b, pair["access_token"], "invalid_token")

    # a password change through b revokes every earlier token, cached in a
    assert a.get("/v1/jobs", headers=auth(bob)).status_code == 200
    changed = b.post("/v1/auth/password", headers=auth(bob),
                     json={"current_password": "bobs-password-123", "new_password": "bobs-password-456"})  # fmt: skip
    assert changed.status_code == 200, changed.text
    refused(a, bob, "invalid_token")
    fresh = changed.json()["access_token"]

    # an admin disables bob through a: b refuses bob's new token at once
    assert b.get("/v1/jobs", headers=auth(fresh)).status_code == 200
    bob_id = b.get("/v1/users/me", headers=auth(fresh)).json()["id"]
    assert a.patch(f"/v1/users/{bob_id}", headers=auth(admin), json={"disabled": True}).status_code == 200
    refused(b, fresh, "invalid_token")


def test_a_revoked_api_key_and_a_reused_refresh_token_reach_the_other_process(
    two: tuple[TestClient, TestClient],
) -> None:
    a, b = two
    admin = admin_token(a)
    key = a.post("/v1/api-keys", headers=auth(admin), json={"name": "script", "scopes": ["read"]})
    assert key.status_code == 201, key.text
    secret, key_id = key.json()["key"], key.json()["id"]
    assert b.get("/v1/jobs", headers=auth(secret)).status_code == 200
    assert a.delete(f"/v1/api-keys/{key_id}", headers=auth(admin)).status_code == 204
    refused(b, secret, "invalid_token")

    pair = login(a, ADMIN, "a-much-better-password")
    assert b.get("/v1/jobs", headers=auth(pair["access_token"])).status_code == 200
    assert a.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 200
    # the same refresh token again (a thief's copy): the whole sign-in dies, in b too
    reused = a.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert_envelope(reused, 401, "token_reused")
    refused(b, pair["access_token"], "invalid_token")


def test_a_change_outside_the_gateway_is_seen_within_the_ttl_and_writes_always_check(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """What no gateway process commits (SQL run by hand) is not published: reads see it once
    the entry ends (``GATEWAY_PRINCIPAL_CACHE_S``); a write asks the database every time."""
    with TestClient(create_app(make_settings(pg_url, redis_url, tmp_path, cache_s=1.0))) as c:
        token = admin_token(c)
        assert c.get("/v1/jobs", headers=auth(token)).status_code == 200
        with c.app.state.ctx.db.begin() as conn:  # type: ignore[attr-defined]
            conn.execute(text("UPDATE users SET token_version = token_version + 1"))
        assert c.get("/v1/jobs", headers=auth(token)).status_code == 200  # the cached entry
        write = c.post("/v1/jobs", headers=auth(token), json={"media_id": "m", "tasks": ["ocr"]})
        assert_envelope(write, 401, "invalid_token")
        time.sleep(1.1)
        assert_envelope(c.get("/v1/jobs", headers=auth(token)), 401, "invalid_token")


def test_no_cache_when_turned_off(sqlite_url: str, redis_url: str, tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(sqlite_url, redis_url, tmp_path, cache_s=0))) as c:
        token = admin_token(c)
        count = statements(c.app)  # type: ignore[arg-type]
        for _ in range(3):
            before = count()
            assert c.get("/v1/jobs", headers=auth(token)).status_code == 200
            assert count() - before >= 2  # the token check and the page, every time
