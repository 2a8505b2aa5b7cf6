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
