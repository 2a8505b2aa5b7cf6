"""Batch API benchmark: the replaced system's scenario, measured three ways in one run.

20 requests, 30 % of them duplicates (14 distinct), against an authenticated endpoint
that takes 150 ms (a blocking handler, like a database call), served by the real
gateway app under uvicorn on 127.0.0.1:

  (a) sequentially over HTTP, one keep-alive connection;
  (b) as 20 concurrent HTTP requests from a keep-alive client (httpx.AsyncClient);
  (c) as one POST /v1/batch (cache off, so only de-duplication and concurrency count).

Each way runs --rounds times with fresh request keys; the median total is reported.
The replaced system claimed 3.0 s sequential vs 0.7 s batched (4.3x, "76.7 % faster").

    python bench/batch/run.py [--rounds 5] [--delay-ms 150]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from fastapi import APIRouter
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mediafleet.common.settings import CoreSettings  # noqa: E402
from mediafleet.gateway.app import create_app  # noqa: E402
from mediafleet.gateway.deps import CurrentUser  # noqa: E402
from mediafleet.gateway.settings import AdminSettings, GatewaySettings  # noqa: E402
from tests.servers import free_port, wait_port  # noqa: E402

OLD_SEQUENTIAL_S, OLD_BATCH_S = 3.0, 0.7


def build_app(delay_s: float, workdir: Path):
    settings = GatewaySettings(
        core=CoreSettings(
            database_url=f"sqlite:///{workdir / 'bench.db'}", media_dir=workdir / "media", log_level="WARNING"
        ),
        secret_key=SecretStr("bench-secret-key-0123456789abcdefghij"),
        admin=AdminSettings(password=SecretStr("bench-admin-password")),
    )
    app = create_app(settings)
    router = APIRouter()

    @router.get("/v1/bench/slow")
    def slow(user: CurrentUser, key: str) -> dict:
        time.sleep(delay_s)
        return {"key": key, "user": user.username}

    app.include_router(router)
    return app


def requests_for(round_no: int) -> list[str]:
    """20 keys, 6 of them repeats of earlier ones (30 % duplicates)."""
    distinct = [f"r{round_no}-k{i}" for i in range(14)]
    return distinct + distinct[:6]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--delay-ms", type=float, default=150.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="mf-bench-batch-"))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(args.delay_ms / 1000, workdir), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    wait_port(port)
    base = f"http://127.0.0.1:{port}"

    with httpx.Client(base_url=base, timeout=60) as c:
        first = c.post(
            "/v1/auth/token", data={"username": "admin", "password": "bench-admin-password"}
        ).json()
        token = c.post(
            "/v1/auth/password",
            headers={"Authorization": f"Bearer {first['access_token']}"},
            json={"current_password": "bench-admin-password", "new_password": "bench-admin-password-2"},
        ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    def sequential(keys: list[str]) -> float:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
            c.get("/v1/users/me")  # open the connection before timing
            start = time.perf_counter()
            for k in keys:
                assert c.get("/v1/bench/slow", params={"key": k}).status_code == 200
            return time.perf_counter() - start

    async def concurrent(keys: list[str]) -> float:
        limits = httpx.Limits(max_connections=len(keys), max_keepalive_connections=len(keys))
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as c:
            await asyncio.gather(*(c.get("/v1/users/me") for _ in keys))  # warm the pool
            start = time.perf_counter()
            rs = await asyncio.gather(*(c.get("/v1/bench/slow", params={"key": k}) for k in keys))
            elapsed = time.perf_counter() - start
        assert all(r.status_code == 200 for r in rs)
        return elapsed

    def batched(keys: list[str]) -> tuple[float, dict]:
        body = {
            "requests": [
                {"id": str(i), "method": "GET", "path": "/v1/bench/slow", "query": {"key": k}}
                for i, k in enumerate(keys)
            ],
            "options": {"cache": False},
        }
        with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
            c.get("/v1/users/me")
            start = time.perf_counter()
            out = c.post("/v1/batch", json=body).json()
            elapsed = time.perf_counter() - start
        assert all(r["status"] == 200 for r in out["responses"]), out
        return elapsed, out["stats"]

    seq, conc, bat = [], [], []
    stats = {}
    for r in range(args.rounds):
        seq.append(sequential(requests_for(3 * r)))
        conc.append(asyncio.run(concurrent(requests_for(3 * r + 1))))
        t, stats = batched(requests_for(3 * r + 2))
        bat.append(t)
    server.should_exit = True

    a, b, c = statistics.median(seq), statistics.median(conc), statistics.median(bat)
    print(
        f"20 requests, 6 duplicates (30 %), endpoint {args.delay_ms:.0f} ms, median of {args.rounds} rounds"
    )
    print(f"(a) sequential HTTP        {a:7.3f} s   (rounds: {', '.join(f'{x:.3f}' for x in seq)})")
    print(f"(b) 20 concurrent HTTP     {b:7.3f} s   (rounds: {', '.join(f'{x:.3f}' for x in conc)})")
    print(f"(c) one POST /v1/batch     {c:7.3f} s   (rounds: {', '.join(f'{x:.3f}' for x in bat)})")
    print(f"(a)/(c) = {a / c:5.1f}x   ({(1 - c / a) * 100:.1f} % faster than sequential)")
    print(f"(b)/(c) = {b / c:5.2f}x")
    print(
        f"replaced system's claim: {OLD_SEQUENTIAL_S / OLD_BATCH_S:.1f}x "
        f"({OLD_SEQUENTIAL_S} s vs {OLD_BATCH_S} s, never run); ours: {a / c:.1f}x measured"
    )
    print(f"last batch's stats: {stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
