"""Many concurrent reads on few threads: no request waits for a database connection while
holding a thread (mediafleet.gateway.deps.get_session's turns).

Before the turns, a request held its session (and a pooled connection) across thread hops;
with ``GATEWAY_THREADS=8`` and 50 users (bench/load), requests holding all 20 connections
waited for a thread while every thread waited for a connection, and every request ended a
500 after SQLAlchemy's 30-s pool timeout.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.api_helpers import admin_token, auth


def test_sixty_concurrent_reads_on_four_threads_all_succeed(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    from tests.fleet import Fleet

    fleet = Fleet(tmp_path, pg_url, redis_url, GATEWAY_THREADS="4")
    fleet.start("gateway")
    try:
        base = fleet.url("gateway")
        with httpx.Client(base_url=base, timeout=60) as client:
            headers = auth(admin_token(client))

        async def burst() -> list[int]:
            limits = httpx.Limits(max_connections=60)
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:
                paths = ["/v1/jobs", "/v1/users/me", "/v1/search?q=soap"] * 20
                return [
                    r.status_code for r in await asyncio.gather(*(c.get(p, headers=headers) for p in paths))
                ]

        start = time.perf_counter()
        codes = asyncio.run(burst())
        elapsed = time.perf_counter() - start
        print(f"60 concurrent reads on 4 threads: {elapsed:.2f} s, statuses {sorted(set(codes))}")
        assert codes == [200] * 60, codes
        assert elapsed < 20, elapsed  # the deadlock lasted the pool's 30-s timeout
    finally:
        fleet.stop_all()


def test_open_event_streams_hold_no_database_turn(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    """With 4 turns (``GATEWAY_DB_CONCURRENCY=4``), 6 job event streams stay open (no worker:
    the job stays queued) while reads keep being answered: a request's session and turn end
    when its endpoint returns, not when its streamed response does."""
    import threading

    from tests.api_helpers import upload
    from tests.conftest import sample
    from tests.fleet import Fleet

    fleet = Fleet(tmp_path, pg_url, redis_url, GATEWAY_DB_CONCURRENCY="4")
    fleet.start("gateway")
    stop = threading.Event()
    try:
        base = fleet.url("gateway")
        with httpx.Client(base_url=base, timeout=60) as client:
            token = admin_token(client)
            media_id = upload(client, token, sample("english.png")).json()["media_id"]
            job = client.post("/v1/jobs", json={"media_id": media_id, "tasks": ["ocr"]}, headers=auth(token))
            assert job.status_code == 202, job.text
            job_id = job.json()["job_id"]
        opened = []

        def follow() -> None:
            try:
                with (
                    httpx.Client(base_url=base, timeout=60) as c,
                    c.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth(token)) as resp,
                ):
                    opened.append(resp.status_code)
                    for _ in resp.iter_lines():
                        if stop.is_set():
                            return
            except httpx.HTTPError:
                if not stop.is_set():  # the gateway stopping at the end cuts the streams
                    raise

        readers = [threading.Thread(target=follow, daemon=True) for _ in range(6)]
        for r in readers:
            r.start()
        deadline = time.monotonic() + 20
        while len(opened) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert opened == [200] * 6, opened
        with httpx.Client(base_url=base, timeout=10) as client:
            start = time.perf_counter()
            codes = [client.get(p, headers=auth(token)).status_code
                     for p in ("/v1/jobs", f"/v1/jobs/{job_id}", f"/v1/media/{media_id}")]  # fmt: skip
            elapsed = time.perf_counter() - start
        print(f"3 reads beside 6 open event streams on 4 turns: {elapsed:.2f} s")
        assert codes == [200, 200, 200] and elapsed < 5, (codes, elapsed)
    finally:
        stop.set()
        fleet.stop_all()
