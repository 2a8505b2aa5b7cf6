"""Scale-out benchmark (issue 24.8): jobs per minute with 1 and 2 worker hosts, in one run.

The fleet runs here as local processes (gateway, job_manager) on PostgreSQL and on mediafleet's
Redis (services/redis/start.sh on Debian's redis-server: one user per role, TLS). A worker host
is what ``make run-worker-host`` starts on another machine: worker processes that reach Redis
over TLS as the user ``worker`` and fetch each task's media by a signed URL from the gateway
(no media volume). This machine has 2 cores, so each "host" is pinned to one core
(``taskset``; the worker sizes its thread pools to its affinity: 1): 1 host = core 1; 2 hosts = cores
0 and 1 (the gateway, job_manager, Redis and PostgreSQL stay unpinned and take their share).

For each configuration and capability (``ocr``, ``pose``): the corpus (the shared media's
images, ../shared/media) is submitted ``--rounds`` times without the result cache, all at
once, and the jobs per minute are counted from the first submission to the last result.
Also printed: seconds from a worker host's start (process spawn) to its first finished task
(one job submitted as it starts, no other worker listening).

The fallback delay of GPU routing (issue 24.3), with OCR: a CPU worker host (core 1) and a
worker labelled as a GPU worker (core 0, ``MEDIAFLEET_WORKER_DEVICE=cuda`` with the test-only
``MEDIAFLEET_TEST_PRETEND_CUDA``: no GPU here), job_manager's ``GPU_WAIT_S`` at 5 s. While the GPU
worker is busy with a long task (samples/english.png tiled 4 x 4), timed from submission to result,
``--fallback-runs`` times each: a job with ``device: auto`` (sent to the busy GPU worker's queue,
moved to CPU after GPU_WAIT_S) and one with ``device: cpu`` (never waits); then, the GPU worker
stopped, ``auto`` again (no GPU worker ready: straight to CPU). The delay is the difference of
medians.

    python bench/scale/run.py [--rounds 2] [--tasks ocr,pose] [--fallback-runs 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.api_helpers import admin_token, auth  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
CAPABILITY = {"ocr": "ocr_detection", "pose": "pose_estimation"}
PORT_ENV = {"ocr": "OCR_HTTP_PORT", "pose": "POSE_HTTP_PORT"}


def corpus() -> list[Path]:
    if not MEDIA.is_dir():
        raise SystemExit(f"bench/scale: the shared media are not at {MEDIA}")
    return sorted(p for p in MEDIA.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif"))


#: job_manager's GPU_WAIT_S in this benchmark (the fleet's default is 30 s)
GPU_WAIT_S = 5


def start_host(
    fleet_env: dict[str, str], core: int, task: str, url: str, log: Path, **extra: str
) -> subprocess.Popen[bytes]:
    """One worker host's worker of ``task``: pinned to ``core``, over TLS as ``worker``."""
    from tests.servers import free_port

    env = {
        **fleet_env,
        **extra,
        "MEDIAFLEET_REDIS_URL": url,
        "MEDIAFLEET_MEDIA_DIR": str(Path(tempfile.mkdtemp(prefix="mf-host-media-"))),  # empty: signed URLs
        PORT_ENV[task]: str(free_port()),
    }
    cmd = ["taskset", "-c", str(core), sys.executable, "-m", "mediafleet.common.service", CAPABILITY[task]]
    with log.open("ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_log(log: Path, text: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{log} never said {text!r}:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


def first_task_s(log: Path, spawned: float, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if '"event": "task_done"' in log.read_text(errors="replace"):
            return time.time() - spawned
        time.sleep(0.1)
    raise TimeoutError(f"no task done by {log}:\n{log.read_text(errors='replace')[-2000:]}")


def run_jobs(client: httpx.Client, token: str, media: list[str], task: str, rounds: int) -> tuple[int, float]:
    """Submit every media ``rounds`` times (no cache), wait for all; returns (jobs, seconds)."""
    start = time.monotonic()
    ids = []
    for _ in range(rounds):
        for media_id in media:
            resp = client.post("/v1/jobs", json={"media_id": media_id, "tasks": [task], "use_cache": False},
                               headers=auth(token))  # fmt: skip
            resp.raise_for_status()
            ids.append(resp.json()["job_id"])
    pending = set(ids)
    while pending:
        for job_id in list(pending):
            job = client.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()
            if job["status"] in ("succeeded", "failed", "canceled"):
                if job["status"] != "succeeded":
                    raise RuntimeError(f"job {job_id} {job['status']}: {job.get('error')}")
                pending.discard(job_id)
        time.sleep(0.2)
    return len(ids), time.monotonic() - start


def timed_job(client: httpx.Client, token: str, media_id: str, device: str) -> tuple[float, str]:
    """Seconds from submitting one OCR job on ``device`` to its result, and where its task ran."""
    start = time.monotonic()
    resp = client.post("/v1/jobs", json={"media_id": media_id, "tasks": ["ocr"], "use_cache": False,
                                         "device": device}, headers=auth(token))  # fmt: skip
    resp.raise_for_status()
    job_id = resp.json()["job_id"]
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            if job["status"] != "succeeded":
                raise RuntimeError(f"job {job_id} {job['status']}: {job.get('error')}")
            return time.monotonic() - start, str(job["tasks"][0]["device"])
        time.sleep(0.1)


def fallback(
    client: httpx.Client,
    token: str,
    media_id: str,
    fleet_env: dict[str, str],
    url: str,
    work: Path,
    runs: int,
) -> dict[str, float]:
    """Median seconds to result per case (see the module's docstring); raises when a task ran
    somewhere other than the CPU."""
    from PIL import Image

    # a long task for the GPU worker: samples/english.png tiled 4 x 4 (tens of seconds on one core)
    src = Image.open(ROOT / "samples" / "english.png").convert("RGB")
    big = Image.new("RGB", (src.width * 4, src.height * 4), "white")
    for i in range(16):
        big.paste(src, ((i % 4) * src.width, (i // 4) * src.height))
    big.save(work / "long.png")
    with (work / "long.png").open("rb") as fh:
        long_media = client.post("/v1/media", files={"file": ("long.png", fh)}, headers=auth(token))
    long_media.raise_for_status()
    cpu_log, gpu_log = work / "fallback-cpu.log", work / "fallback-gpu.log"
    cpu = start_host(fleet_env, 1, "ocr", url, cpu_log)
    gpu = start_host(fleet_env, 0, "ocr", url, gpu_log, MEDIAFLEET_WORKER_DEVICE="cuda",
                     MEDIAFLEET_TEST_PRETEND_CUDA="true")  # fmt: skip
    out: dict[str, list[float]] = {"cpu": [], "auto, GPU worker busy": [], "auto, no GPU worker": []}
    try:
        wait_log(cpu_log, '"event": "worker_started"')
        wait_log(gpu_log, '"event": "worker_started"')
        time.sleep(1.0)  # its first status written: job_manager counts it as ready
        for _ in range(runs):
            resp = client.post("/v1/jobs", json={"media_id": long_media.json()["media_id"], "tasks": ["ocr"],
                                                 "use_cache": False}, headers=auth(token))  # fmt: skip
            resp.raise_for_status()
            long_id = resp.json()["job_id"]
            while client.get(f"/v1/jobs/{long_id}", headers=auth(token)).json()["status"] != "running":
                time.sleep(0.1)
            for case, device in (("auto, GPU worker busy", "auto"), ("cpu", "cpu")):
                seconds, ran_on = timed_job(client, token, media_id, device)
                if ran_on != "cpu":
                    raise RuntimeError(f"{case}: the task ran on {ran_on}")
                out[case].append(seconds)
            job = client.get(f"/v1/jobs/{long_id}", headers=auth(token)).json()
            if job["status"] != "running":
                raise RuntimeError("the long task ended before the timed ones: the GPU worker was not busy")
            while job["status"] not in ("succeeded", "failed", "canceled"):
                time.sleep(0.2)
                job = client.get(f"/v1/jobs/{long_id}", headers=auth(token)).json()
        gpu.terminate()
        gpu.wait(60)
        for _ in range(runs):
            seconds, ran_on = timed_job(client, token, media_id, "auto")
            if ran_on != "cpu":
                raise RuntimeError(f"no GPU worker: the task ran on {ran_on}")
            out["auto, no GPU worker"].append(seconds)
    finally:
        for proc in (cpu, gpu):
            proc.terminate()
        for proc in (cpu, gpu):
            proc.wait(60)
    return {case: statistics.median(values) for case, values in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="times each image is submitted per measurement")
    parser.add_argument("--tasks", default="ocr,pose")
    parser.add_argument("--fallback-runs", type=int, default=2, help="0: no fallback measurement")
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    if os.cpu_count() is None or (os.cpu_count() or 0) < 2:
        raise SystemExit("bench/scale needs 2 cores (one per worker host)")

    from tests.fleet import Fleet
    from tests.redis_acl import AclRedis
    from tests.servers import PostgresServer

    models = os.environ.get("MEDIAFLEET_TEST_MODELS_DIR") or str(
        Path.home() / ".cache/mediafleet/test-models"
    )
    work = Path(tempfile.mkdtemp(prefix="mf-bench-scale-"))
    redis_server, pg = AclRedis(work / "redis"), PostgresServer()
    (work / "redis").mkdir()
    redis_server.start()
    pg.start()
    secret = "bench-scale-media-url-secret-0123456789"
    fleet = Fleet(work, pg.create_database("bench_scale"), redis_server.url("gateway"),
                  MEDIAFLEET_LOG_LEVEL="INFO", MEDIAFLEET_MODELS_DIR=models,
                  MEDIAFLEET_MEDIA_URL_SECRET=secret, JOB_MANAGER_RECONCILE_INTERVAL_S="1.0")  # fmt: skip
    fleet.env["MEDIAFLEET_MEDIA_URL_BASE"] = fleet.url("gateway")
    results: dict[tuple[str, int], float] = {}
    first: dict[str, list[float]] = {t: [] for t in tasks}
    hosts: list[subprocess.Popen[bytes]] = []
    try:
        fleet.start("gateway")
        fleet.start("job_manager", env={"MEDIAFLEET_REDIS_URL": redis_server.url("job_manager"),
                                        "JOB_MANAGER_GPU_WAIT_S": str(GPU_WAIT_S)})  # fmt: skip
        worker_url = redis_server.url("worker", tls=True)
        with httpx.Client(base_url=fleet.url("gateway"), timeout=60) as client:
            token = admin_token(client)
            media = []
            for path in corpus():
                with path.open("rb") as fh:
                    resp = client.post("/v1/media", files={"file": (path.name, fh)}, headers=auth(token))
                resp.raise_for_status()
                media.append(resp.json()["media_id"])
            print(f"corpus: {len(media)} images from {MEDIA} (x{args.rounds} per measurement)")
            for task in tasks:
                for n_hosts in (1, 2):
                    cores = [1] if n_hosts == 1 else [0, 1]
                    for i, core in enumerate(cores):
                        log = work / f"{task}-{n_hosts}-{i}.log"
                        spawned = time.time()
                        hosts.append(start_host(fleet.env, core, task, worker_url, log))
                        if n_hosts == 1:  # its first task: one job, and no other worker listening
                            one = client.post("/v1/jobs", json={"media_id": media[0], "tasks": [task],
                                                                "use_cache": False}, headers=auth(token))  # fmt: skip
                            one.raise_for_status()
                            first[task].append(first_task_s(log, spawned))
                        else:
                            wait_log(log, '"event": "worker_started"')
                    jobs, seconds = run_jobs(client, token, media, task, args.rounds)
                    results[(task, n_hosts)] = jobs / seconds * 60
                    print(f"{task}: {n_hosts} worker host(s) (cores {cores}): {jobs} jobs in {seconds:.1f} s = "
                          f"{results[(task, n_hosts)]:.1f} jobs/min", flush=True)  # fmt: skip
                    for proc in hosts:
                        proc.terminate()
                    for proc in hosts:
                        proc.wait(60)
                    hosts.clear()
            delays = fallback(client, token, media[0], fleet.env, worker_url, work, args.fallback_runs) \
                if args.fallback_runs else {}  # fmt: skip
    finally:
        for proc in hosts:
            proc.kill()
        fleet.stop_all()
        redis_server.stop()
        pg.cleanup()
    print("\nsummary (jobs per minute; one core per worker host, one thread per worker)")
    for task in tasks:
        one, two = results[(task, 1)], results[(task, 2)]
        print(f"  {task}: 1 host {one:.1f}, 2 hosts {two:.1f}: {two / one:.2f}x; "
              f"a worker host's start to its first finished task {first[task][0]:.1f} s")  # fmt: skip
    if delays:
        base = delays["cpu"]
        print(f"\nGPU routing, OCR of one image, median of {args.fallback_runs} (GPU_WAIT_S={GPU_WAIT_S} s):")
        for case, seconds in delays.items():
            print(f"  {case}: {seconds:.2f} s to result ({seconds - base:+.2f} s vs cpu)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
