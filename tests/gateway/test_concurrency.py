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
            job = client.post("/v1/jobs", json={"media_id": media_id, "tasks": ["echo"]}, headers=auth(token))
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


def test_event_streams_are_bounded_per_user_and_share_one_reader(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    """Before: each open event stream polled Redis and re-read the job every second on its own
    (1,500 idle streams of one user: 92 % of a core). Now one account holds at most
    GATEWAY_MAX_STREAMS_PER_USER streams per process (the next is 429 with the envelope, another
    account is not affected), the streams of one job share one reader, every one of them gets
    each event, and an idle stream costs next to no CPU."""
    import threading

    import redis as redislib

    from mediafleet.common import events
    from tests.api_helpers import assert_envelope, create_user, upload
    from tests.conftest import sample
    from tests.fleet import Fleet

    fleet = Fleet(tmp_path, pg_url, redis_url, GATEWAY_MAX_STREAMS_PER_USER="8")
    fleet.start("gateway")  # no job_manager: the job stays queued, its streams stay open
    try:
        base = fleet.url("gateway")
        with httpx.Client(base_url=base, timeout=30) as c:
            token = admin_token(c)
            media_id = upload(c, token, sample("phototest.tif")).json()["media_id"]
            job_id = c.post(
                "/v1/jobs", json={"media_id": media_id, "tasks": ["echo"]}, headers=auth(token)
            ).json()["job_id"]
            bob = create_user(c, token, "bob", "bobs-password-123")
            bobs_media = upload(c, bob, sample("phototest.tif")).json()["media_id"]
            bobs_job = c.post(
                "/v1/jobs", json={"media_id": bobs_media, "tasks": ["echo"]}, headers=auth(bob)
            ).json()["job_id"]
        received: list[list[str]] = [[] for _ in range(8)]
        stop = threading.Event()
        opened = threading.Barrier(9)

        def listen(i: int) -> None:
            with (
                httpx.Client(base_url=base, timeout=30) as own,
                own.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth(token)) as resp,
            ):
                assert resp.status_code == 200
                opened.wait()
                for line in resp.iter_lines():
                    if line.startswith("data: ") and "marker" in line:
                        received[i].append(line)
                        return
                    if stop.is_set():
                        return

        threads = [threading.Thread(target=listen, args=(i,), daemon=True) for i in range(8)]
        for t in threads:
            t.start()
        opened.wait(timeout=30)
        with httpx.Client(base_url=base, timeout=30) as c:
            assert_envelope(c.get(f"/v1/jobs/{job_id}/events", headers=auth(token)), 429, "too_many_streams")
            with c.stream("GET", f"/v1/jobs/{bobs_job}/events", headers=auth(bob)) as other:
                assert other.status_code == 200  # another account is not affected
        stat = Path(f"/proc/{fleet.procs['gateway'].pid}/stat")

        def cpu() -> int:  # utime + stime, clock ticks
            return sum(int(x) for x in stat.read_text().split()[13:15])

        before = cpu()
        time.sleep(5)
        idle_ticks = cpu() - before  # clock ticks (1/100 s) over 5 s with 8 open streams
        print(f"\n8 idle streams of one job: {idle_ticks / 5:.1f} % of a core")
        assert idle_ticks < 50, idle_ticks  # under 10 % of a core
        events.publish(redislib.Redis.from_url(redis_url), job_id, note="marker")
        for t in threads:
            t.join(timeout=15)
        stop.set()
        assert all(len(r) == 1 for r in received), received  # every stream got the event once
        with (
            httpx.Client(base_url=base, timeout=30) as c,  # the streams closed: room again
            c.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth(token)) as again,
        ):
            assert again.status_code == 200
    finally:
        fleet.stop_all()
