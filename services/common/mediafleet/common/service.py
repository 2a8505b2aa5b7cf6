"""``mediafleet-service NAME [worker|serve]``: the entry point of every AI service.

``worker`` (default): an RQ worker on the capability's queues (``<queue>:high``,
``:normal``, ``:low``; a GPU worker, ``MEDIAFLEET_WORKER_DEVICE=cuda``, its ``<queue>:gpu:*``
first, and it exits with one line when no CUDA device is usable) with the HTTP app (health,
metrics, ``/v1/predict``) in a thread; both share the runner loaded at start, and the worker
binds it for each job.
``serve``: only the HTTP app. ``mediafleet-service --list``: the installed capabilities,
one per line (``name queue http_port env_prefix``), for scripts that iterate over them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mediafleet.common import registry
from mediafleet.common.capability import Capability, Runner

if TYPE_CHECKING:  # the worker's libraries load only when a service runs, not for --list
    import redis
    from rq import SimpleWorker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mediafleet-service", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help=f"capability ({', '.join(registry.capabilities())})")
    parser.add_argument("mode", nargs="?", choices=("worker", "serve"), default="worker")
    parser.add_argument("--burst", action="store_true", help="worker: exit when the queues are empty")
    parser.add_argument("--list", action="store_true", help="print the installed capabilities and exit")
    args = parser.parse_args(argv)
    if args.list:
        for cap in registry.capabilities().values():
            print(cap.name, cap.queue, cap.http_port, cap.env_prefix)
        return 0
    if not args.name:
        parser.error("name a capability (or --list)")
    try:
        cap = registry.get(args.name)
    except KeyError as exc:
        print(f"mediafleet-service: {exc.args[0]}", file=sys.stderr)
        return 2
    run(cap, args.mode, burst=args.burst)
    return 0


def run(cap: Capability, mode: str, burst: bool = False) -> None:
    import redis
    import structlog
    import uvicorn

    from mediafleet.common.logging import configure_logging
    from mediafleet.common.observability import redis_check, serve_in_thread
    from mediafleet.common.queues import family_queues
    from mediafleet.common.resources import apply_thread_limits
    from mediafleet.common.service_app import create_service_app
    from mediafleet.common.taskrun import Runtime
    from mediafleet.common.tracing import configure_tracing
    from mediafleet.common.worker import ModelWorker, keep_status

    threads = apply_thread_limits()  # before any engine imports its library (OpenMP reads it once)
    log = structlog.get_logger(f"mediafleet.{cap.name}")
    settings = cap.load_settings()
    configure_logging(settings.core.log_level, settings.core.log_format)
    device = settings.core.worker_device
    if device == "cuda" and mode == "worker" and not settings.core.test_pretend_cuda:
        from mediafleet.common.device import cuda_problem

        problem = cuda_problem()
        if problem is not None:  # it would take GPU work and run it slowly on the CPU
            raise SystemExit(
                f"mediafleet-service {cap.name}: MEDIAFLEET_WORKER_DEVICE=cuda but no CUDA device is "
                f"usable: {problem}. Start it without MEDIAFLEET_WORKER_DEVICE=cuda to run on the CPU."
            )
    configure_tracing(cap.name)  # when OTEL_EXPORTER_OTLP_ENDPOINT is set
    runner = cap.build_runner(settings)
    runner.preload()  # before taking any job: never load a model per job

    if mode == "serve":
        uvicorn.run(
            create_service_app(cap, runner),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,  # its lines go through structlog's handler, with the request id
            reset_contextvars=True,  # see mediafleet.common.tracing (uvicorn and contextvars)
        )
        return

    conn = redis.Redis.from_url(settings.core.redis_url)
    # what readiness reports (the gateway's /readyz, GET /v1/tasks, the admin page), the retry
    # that loads weights provisioned after the start, and the adverts (once Redis answers)
    keep_status(conn, cap, runner, on_first=lambda: advertise(conn, cap, runner), device=device)
    app = create_service_app(cap, runner, {"redis": redis_check(conn)})
    serve_in_thread(app, settings.http_host, settings.http_port)
    ModelWorker.lease_s = settings.core.task_lease_s
    runtime = Runtime(
        capability=cap, runner=runner, redis=conn, media_dir=settings.core.media_dir, device=device
    )
    queues = family_queues(cap, device)
    log.info(
        "worker_started", capability=cap.name, device=device, queues=queues, threads=threads,
        models=runner.models(),
    )  # fmt: skip
    work_until_done(lambda: ModelWorker(queues, connection=conn, runtime=runtime), conn, burst, log)


def work_until_done(
    make_worker: Callable[[], SimpleWorker],
    conn: redis.Redis,
    burst: bool,
    log: Any,
    max_backoff_s: float = 30.0,
) -> None:
    """Run RQ workers until one ends normally; a lost Redis connection does not end the process.

    RQ retries a failed dequeue by itself, but a connection lost while a task runs (its
    result, heartbeats) raises out of ``work()``: then wait for Redis with exponential backoff
    (1, 2, 4 ... ``max_backoff_s`` s) and start a new worker. The interrupted task's lease
    lapses and job_manager retries it. No RQ scheduler here: job_manager schedules retries.
    """
    import time

    import redis

    from mediafleet.common.queues import redis_problem

    backoff = 1.0
    while True:
        try:
            make_worker().work(burst=burst)
            return
        except redis.RedisError as exc:
            log.warning("redis_lost", error=redis_problem(exc), retry_in_s=backoff)
        while True:
            time.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)
            try:
                conn.ping()
                break
            except redis.RedisError as exc:
                log.warning("redis_unavailable", error=redis_problem(exc), retry_in_s=backoff)
        log.info("redis_back", note="starting a new worker")
        backoff = 1.0


def advertise(conn: redis.Redis, cap: Capability, runner: Runner) -> None:
    """Publish each task's default options and loaded model versions (job_manager's result cache
    compares stored results with them)."""
    from mediafleet.common.queues import ADVERTS_KEY

    conn.hset(ADVERTS_KEY, mapping={t: json.dumps(runner.advertise(t)) for t in cap.task_names})


if __name__ == "__main__":
    sys.exit(main())
