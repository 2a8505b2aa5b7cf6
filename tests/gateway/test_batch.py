"""POST /v1/batch: order, identity, de-duplication, cache, priorities, retries, limits, statistics.

The gateway runs in process on real SQLite and Redis. A few test-only routes are added
to the same app (a counter, a flaky route, a slow route) so the batch's effects can be
counted; the batch reaches them, like every route, through the app itself.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI, Query, Response
from fastapi.testclient import TestClient
from pydantic import SecretStr

from mediafleet.common.settings import CoreSettings
from mediafleet.gateway.app import create_app
from mediafleet.gateway.batch.executor import priority_of
from mediafleet.gateway.deps import CurrentUser
from mediafleet.gateway.settings import AdminSettings, GatewaySettings
from tests.api_helpers import FIRST_PASSWORD, admin_token, assert_envelope, auth, create_user, upload
from tests.conftest import sample


class Probe:
    """Counts and orders the calls the test routes receive."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = defaultdict(int)
        self.order: list[str] = []

    def router(self) -> APIRouter:
        r = APIRouter()

        @r.get("/v1/probe/counter")
        def counter(user: CurrentUser, key: str = "k") -> dict:
            self.calls[key] += 1
            self.order.append(key)
            return {"user": user.username, "key": key, "count": self.calls[key]}

        @r.post("/v1/probe/counter")
        def bump(user: CurrentUser, key: str = "k") -> dict:
            self.calls[f"post:{key}"] += 1
            return {"user": user.username}

        @r.get("/v1/probe/flaky")
        def flaky(response: Response, user: CurrentUser, key: str, fail: int) -> dict:
            self.calls[key] += 1
            if self.calls[key] <= fail:
                response.status_code = 503
                return {"error": {"code": "unavailable", "message": "try again", "details": None}}
            return {"ok": True, "calls": self.calls[key]}

        @r.post("/v1/probe/flaky")
        def flaky_post(response: Response, user: CurrentUser) -> dict:
            self.calls["post-flaky"] += 1
            response.status_code = 503
            return {"error": {"code": "unavailable", "message": "try again", "details": None}}

        @r.get("/v1/probe/slow")
        def slow(user: CurrentUser, ms: int = Query(ge=0, le=5000)) -> dict:
            time.sleep(ms / 1000)
            return {"slept_ms": ms}

        return r


@pytest.fixture
def probe() -> Probe:
    return Probe()


def batch_app(database_url: str, redis_url: str, tmp_path: Path, probe: Probe) -> FastAPI:
    """A gateway on ``database_url`` with the probe's test-only routes."""
    settings = GatewaySettings(
        core=CoreSettings(database_url=database_url, redis_url=redis_url, media_dir=tmp_path / "media"),
        secret_key=SecretStr("batch-test-secret-0123456789abcdefgh"),
        admin=AdminSettings(password=SecretStr(FIRST_PASSWORD)),
    )
    app = create_app(settings)
    app.include_router(probe.router())
    return app


@pytest.fixture
def client(sqlite_url: str, redis_url: str, tmp_path: Path, probe: Probe) -> Iterator[TestClient]:
    with TestClient(batch_app(sqlite_url, redis_url, tmp_path, probe)) as c:
        yield c


@pytest.fixture
def token(client: TestClient) -> str:
    return admin_token(client)


def batch(client: TestClient, token: str, requests: list, **options) -> dict:
    resp = client.post("/v1/batch", json={"requests": requests, "options": options}, headers=auth(token))
    assert resp.status_code == 200, resp.text
    return resp.json()


def get(rid: str, path: str, **query) -> dict:
    return {"id": rid, "method": "GET", "path": path, "query": query}


def test_responses_in_request_order_with_stats(client: TestClient, token: str) -> None:
    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    out = batch(
        client,
        token,
        [
            get("a", f"/v1/media/{media_id}"),
            get("b", "/v1/jobs"),
            get("c", "/v1/media/" + "0" * 64),
            {
                "id": "d",
                "method": "POST",
                "path": "/v1/jobs",
                "body": {"media_id": media_id, "tasks": ["echo"]},
            },
            get("e", "/v1/search", q="anything"),
        ],
    )
    assert [r["id"] for r in out["responses"]] == ["a", "b", "c", "d", "e"]
    assert [r["status"] for r in out["responses"]] == [200, 200, 404, 202, 200]
    assert out["responses"][0]["body"]["media_id"] == media_id
    assert out["responses"][2]["body"]["error"]["code"] == "media_not_found"  # a failure stays in its item
    assert out["responses"][3]["body"]["status"] == "queued"
    stats = out["stats"]
    assert set(stats) == {
        "total_duration",
        "average_duration",
        "cache_hit_rate",
        "deduplication_rate",
        "requests_per_second",
    }
    assert stats["total_duration"] > 0 and stats["requests_per_second"] == pytest.approx(
        5 / stats["total_duration"], rel=0.01
    )
    assert stats["cache_hit_rate"] == 0 and stats["deduplication_rate"] == 0


def test_sub_requests_carry_the_callers_identity(client: TestClient, token: str) -> None:
    assert_envelope(client.post("/v1/batch", json={"requests": [get("a", "/v1/jobs")]}), 401, "missing_token")
    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    job_id = client.post(
        "/v1/jobs", json={"media_id": media_id, "tasks": ["echo"]}, headers=auth(token)
    ).json()["job_id"]
    bob = create_user(client, token, "bob", "bobs-password-1")
    out = batch(
        client,
        bob,
        [
            get("mine", "/v1/users/me"),
            get("theirs", f"/v1/jobs/{job_id}"),
            {
                "id": "admin-only",
                "method": "POST",
                "path": "/v1/users",
                "body": {"username": "eve", "password": "eves-password-1"},
            },
        ],
    )
    assert out["responses"][0]["body"]["username"] == "bob"
    assert out["responses"][1]["status"] == 404  # exactly what bob could do directly
    assert out["responses"][2]["status"] == 403


def test_cached_responses_are_never_shared_between_users(
    client: TestClient, token: str, probe: Probe
) -> None:
    first = batch(client, token, [get("a", "/v1/probe/counter", key="shared")])
    again = batch(client, token, [get("a", "/v1/probe/counter", key="shared")])
    assert first["responses"][0]["cached"] is False and again["responses"][0]["cached"] is True
    assert again["stats"]["cache_hit_rate"] == 1.0 and probe.calls["shared"] == 1
    bob = create_user(client, token, "bob", "bobs-password-1")
    theirs = batch(client, bob, [get("a", "/v1/probe/counter", key="shared")])
    assert theirs["responses"][0]["cached"] is False
    assert theirs["responses"][0]["body"]["user"] == "bob" and probe.calls["shared"] == 2


def test_identical_idempotent_requests_run_once(client: TestClient, token: str, probe: Probe) -> None:
    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    job = {"method": "POST", "path": "/v1/jobs", "body": {"media_id": media_id, "tasks": ["echo"]}}
    out = batch(
        client,
        token,
        [
            get("a", "/v1/probe/counter", key="dup"),
            get("b", "/v1/probe/counter", key="dup"),
            get("c", "/v1/probe/counter", key="other"),
            get("d", "/v1/probe/counter", key="dup"),
            {"id": "e", **job},
            {"id": "f", **job},
        ],
        cache=False,
    )
    assert probe.calls["dup"] == 1 and probe.calls["other"] == 1
    flags = [r["deduplicated"] for r in out["responses"]]
    assert flags == [False, True, False, True, False, False]
    assert out["responses"][1]["body"] == out["responses"][0]["body"] and out["responses"][1]["id"] == "b"
    assert out["stats"]["deduplication_rate"] == pytest.approx(2 / 6, abs=1e-4)
    # POST is not idempotent: both job creations ran
    assert out["responses"][4]["body"]["job_id"] != out["responses"][5]["body"]["job_id"]


def test_writes_invalidate_cached_reads(client: TestClient, token: str, probe: Probe) -> None:
    batch(client, token, [get("a", "/v1/probe/counter", key="w")])
    assert batch(client, token, [get("a", "/v1/probe/counter", key="w")])["responses"][0]["cached"] is True
    # a write to the same resource in the same batch: the read is not served from the cache
    out = batch(
        client,
        token,
        [
            get("a", "/v1/probe/counter", key="w"),
            {"id": "b", "method": "POST", "path": "/v1/probe/counter", "query": {"key": "w"}},
        ],
    )
    assert out["responses"][0]["cached"] is False and probe.calls["w"] == 2
    # ... and in a later batch the entry written before is gone
    assert batch(client, token, [get("a", "/v1/probe/counter", key="w")])["responses"][0]["cached"] is False
    # a write made directly, outside any batch, invalidates too
    assert batch(client, token, [get("a", "/v1/probe/counter", key="w")])["responses"][0]["cached"] is True
    client.post("/v1/probe/counter?key=w", headers=auth(token))
    assert batch(client, token, [get("a", "/v1/probe/counter", key="w")])["responses"][0]["cached"] is False


def test_real_resources_cache_by_their_rules(client: TestClient, token: str) -> None:
    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    read = [get("m", f"/v1/media/{media_id}"), get("l", "/v1/jobs")]
    batch(client, token, read)
    out = batch(client, token, read)
    assert out["responses"][0]["cached"] is True  # media metadata never changes
    assert (
        out["responses"][1]["cached"] is False
    )  # job listings say no-store: statuses change in the background
    upload(client, token, sample("french.jpg"))  # a direct write to /v1/media
    assert batch(client, token, read)["responses"][0]["cached"] is False


def test_search_stays_cached_across_batches_until_a_write_feeds_it(client: TestClient, token: str) -> None:
    """Before: every batch call (a POST) cleared the caller's cached searches."""
    search = [get("s", "/v1/search", q="soap")]
    assert batch(client, token, search)["responses"][0]["cached"] is False
    assert batch(client, token, search)["responses"][0]["cached"] is True
    upload(client, token, sample("french.jpg"))  # new media: search may answer differently
    assert batch(client, token, search)["responses"][0]["cached"] is False


def test_priority_order_within_bounded_concurrency(client: TestClient, token: str, probe: Probe) -> None:
    assert priority_of("POST", "/v1/auth/refresh") == 0
    assert priority_of("POST", "/v1/jobs") == 0 and priority_of("GET", "/v1/jobs/abc") == 0
    assert priority_of("GET", "/v1/search") == 1 and priority_of("GET", "/v1/jobs") == 1
    assert priority_of("GET", "/v1/media/abc") == 2 and priority_of("DELETE", "/v1/jobs/abc") == 2
    out = batch(
        client, token, [get(str(i), "/v1/probe/counter", key=f"o{i}") for i in range(6)], concurrency=1
    )
    assert probe.order == [f"o{i}" for i in range(6)]  # same priority: request order
    assert [r["id"] for r in out["responses"]] == [str(i) for i in range(6)]


def test_transient_failures_retried_only_when_idempotent(
    client: TestClient, token: str, probe: Probe
) -> None:
    out = batch(
        client,
        token,
        [
            get("recovers", "/v1/probe/flaky", key="r", fail=2),
            get("gives-up", "/v1/probe/flaky", key="g", fail=9),
            {"id": "post", "method": "POST", "path": "/v1/probe/flaky"},
        ],
        max_retries=2,
        cache=False,
    )
    recovers, gives_up, post = out["responses"]
    assert (recovers["status"], recovers["attempts"], recovers["body"]["calls"]) == (200, 3, 3)
    assert (gives_up["status"], gives_up["attempts"], probe.calls["g"]) == (503, 3, 3)
    assert (post["status"], post["attempts"], probe.calls["post-flaky"]) == (503, 1, 1)


def test_timeout_is_a_504_item_not_a_failed_batch(client: TestClient, token: str) -> None:
    out = batch(
        client,
        token,
        # 2 s: room for the fast item on a loaded machine (0.2 s once timed it out too)
        [get("slow", "/v1/probe/slow", ms=5000), get("fast", "/v1/users/me")],
        timeout_s=2.0,
        max_retries=0,
    )
    slow, fast = out["responses"]
    assert slow["status"] == 504 and slow["body"]["error"]["code"] == "timeout" and slow["attempts"] == 1
    assert fast["status"] == 200


def test_concurrency_runs_sub_requests_in_parallel(client: TestClient, token: str) -> None:
    """8 sub-requests that each sleep 1 s: one after another they take 8 s, overlapped about
    1 s plus the batch's own work (0.5 s here idle; with 300-ms sleeps CI once took 2.2 s of
    a 2.4-s bound on a busy machine, so the sleeps are long and the bound is half of 8 s)."""
    requests = [get(str(i), "/v1/probe/slow", ms=1000) for i in range(8)]
    start = time.perf_counter()
    out = batch(client, token, requests, concurrency=8, deduplicate=False, cache=False)
    elapsed = time.perf_counter() - start
    assert all(r["status"] == 200 for r in out["responses"])
    assert elapsed < 4.0  # half the 8 s these take one after another: they overlapped


def test_limits(client: TestClient, token: str) -> None:
    too_many = [get(str(i), "/v1/users/me") for i in range(51)]
    assert_envelope(
        client.post("/v1/batch", json={"requests": too_many}, headers=auth(token)), 422, "batch_too_large"
    )
    big = {"id": "x", "method": "POST", "path": "/v1/jobs", "body": {"pad": "x" * (1024 * 1024)}}
    assert_envelope(
        client.post("/v1/batch", json={"requests": [big]}, headers=auth(token)), 413, "payload_too_large"
    )
    assert_envelope(client.post("/v1/batch", json={"requests": []}, headers=auth(token)), 422)
    out = batch(
        client,
        token,
        [
            get("nested", "/v1/batch"),
            get("outside", "/metrics"),
            get("escape", "/v1/../metrics"),
            get("absolute", "http://example.com/v1/jobs"),
            {"id": "no-path", "method": "GET"},
            {"id": "verb", "method": "FETCH", "path": "/v1/jobs"},
            "not an object",
            {"id": "heavy", "method": "POST", "path": "/v1/jobs", "body": {"pad": "x" * 300_000}},
            get("stream", "/v1/jobs/abc/events"),
            get("control", "/v1/users/me\x00"),  # made the whole batch a 500
            get("newline", "/v1/jobs/a\nb"),
            get("ok", "/v1/users/me"),
            get("ok", "/v1/users/me"),
        ],
    )
    codes = [
        (r["id"], r["status"], r["body"]["error"]["code"] if r["status"] >= 400 else None)
        for r in out["responses"]
    ]
    assert codes == [
        ("nested", 400, "nested_batch"),
        ("outside", 400, "path_not_allowed"),
        ("escape", 400, "path_not_allowed"),
        ("absolute", 400, "path_not_allowed"),
        ("no-path", 400, "malformed_item"),
        ("verb", 400, "malformed_item"),
        (None, 400, "malformed_item"),
        ("heavy", 413, "payload_too_large"),
        ("stream", 400, "streaming_not_supported"),
        ("control", 400, "malformed_item"),
        ("newline", 400, "malformed_item"),
        ("ok", 200, None),
        ("ok", 400, "malformed_item"),  # ids must be unique
    ]


def test_batch_is_in_the_openapi_schema(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/batch" in spec["paths"]
    assert "BatchResponse" in spec["components"]["schemas"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_many_items_cut_off_at_once_leave_the_pool_whole(
    backend: str, request: pytest.FixtureRequest, redis_url: str, tmp_path: Path, probe: Probe
) -> None:
    """40 items that read the database, cut off by a 1-ms deadline wherever they are (before,
    inside or after a dependency's thread, while the session opens its connection): every item
    is a 200 or a 504, never a 500, and afterwards no connection is left checked out. Before: a
    cancelled item's session raised IllegalStateChangeError on close (a 500 item, seen in CI)."""
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    app = batch_app(url, redis_url, tmp_path, probe)
    with TestClient(app) as c:
        token = admin_token(c)
        for deadline in (0.001, 0.005, 0.02):
            items = [get(str(i), "/v1/users/me" if i % 2 else "/v1/jobs") for i in range(40)]
            out = batch(c, token, items, timeout_s=deadline, max_retries=0, cache=False, deduplicate=False,
                        concurrency=20)  # fmt: skip
            statuses = {r["status"] for r in out["responses"]}
            assert statuses <= {200, 504}, statuses
        pool = app.state.ctx.db.pool
        assert pool.checkedout() == 0, pool.status()
        assert c.get("/v1/users/me", headers=auth(token)).status_code == 200  # the pool still serves
