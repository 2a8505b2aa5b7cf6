"""Result cache benchmark: an OCR job, then the same job again, on the real fleet processes.

gateway + job_manager + the ocr_detection worker run as local processes on a real
PostgreSQL and Redis (started here, from Debian's packages, on free ports). Each round
uploads a fresh image (the first job must run OCR), times POST /v1/jobs -> terminal status
for the first job, then for --repeats identical jobs (served from the result cache), and
once more with ``use_cache: false`` (the same work run again, for a fair "second run" time).

    python bench/cache/run.py [--rounds 5] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.api_helpers import admin_token, auth, upload  # noqa: E402
from tests.fleet import Fleet  # noqa: E402
from tests.servers import PostgresServer, RedisServer  # noqa: E402


def timed_job(client: httpx.Client, token: str, media_id: str, use_cache: bool = True) -> tuple[float, dict]:
    start = time.perf_counter()
    resp = client.post(
        "/v1/jobs",
        json={"media_id": media_id, "tasks": ["ocr"], "use_cache": use_cache},
        headers=auth(token),
    )
    job_id = resp.json()["job_id"]
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return time.perf_counter() - start, job
        time.sleep(0.01)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    redis_server, pg = RedisServer(), PostgresServer()
    redis_server.start()
    pg.start()
    work = Path(tempfile.mkdtemp(prefix="mf-bench-cache-"))
    fleet = Fleet(work, pg.create_database("bench_cache"), redis_server.url, MEDIAFLEET_LOG_LEVEL="WARNING")
    first, cached, uncached = [], [], []
    try:
        fleet.start_all()
        with httpx.Client(base_url=fleet.url("gateway"), timeout=60) as client:
            token = admin_token(client)
            src = Image.open(ROOT / "samples" / "english.png").convert("RGB")
            for r in range(args.rounds):
                img = src.copy()
                img.putpixel((0, 0), (r, 7, 7))  # new bytes each round: a new media, a cache miss
                path = work / f"round{r}.png"
                img.save(path)
                media_id = upload(client, token, path).json()["media_id"]
                t, job = timed_job(client, token, media_id)
                assert job["status"] == "succeeded" and not job["tasks"][0]["cached"], job
                first.append(t)
                for _ in range(args.repeats):
                    t, job = timed_job(client, token, media_id)
                    assert job["tasks"][0]["cached"], job
                    cached.append(t)
                t, job = timed_job(client, token, media_id, use_cache=False)
                assert not job["tasks"][0]["cached"]
                uncached.append(t)
    finally:
        fleet.stop_all()
        pg.cleanup()
        redis_server.cleanup()

    def row(name: str, xs: list[float]) -> str:
        p95 = sorted(xs)[max(0, round(0.95 * len(xs)) - 1)]
        return (
            f"{name:<38} n={len(xs):<3} p50 {statistics.median(xs) * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms"
        )

    print("OCR job on english.png (905x480), POST /v1/jobs -> terminal status, real processes")
    print(row("(a) first job (runs OCR)", first))
    print(row("(b) identical job, use_cache=false", uncached))
    print(row("(c) identical job, served from cache", cached))
    print(f"(a)/(c) = {statistics.median(first) / statistics.median(cached):.1f}x")
    print(f"(b)/(c) = {statistics.median(uncached) / statistics.median(cached):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
