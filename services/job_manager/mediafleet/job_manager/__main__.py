"""``mediafleet-job-manager``: the reconciliation loop, woken by Redis events, plus health/metrics."""

from __future__ import annotations

import functools
import signal
import threading
import time

import redis
import structlog
from fastapi import FastAPI
from prometheus_client import Gauge
from rq import Queue
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from mediafleet.common.errors import install_error_handlers
from mediafleet.common.logging import configure_logging
from mediafleet.common.observability import (
    database_check,
    health_router,
    internal_headers,
    redis_check,
    serve_in_thread,
)
from mediafleet.common.queues import (
    JOB_MANAGER_HEARTBEAT_KEY,
    JOB_MANAGER_HEARTBEAT_TTL_S,
    NEW_JOBS_KEY,
    TASK_EVENTS_KEY,
    redis_problem,
)
from mediafleet.common.store import create_db_engine, migrate, session_factory
from mediafleet.common.tracing import FASTAPI_TELEMETRY, configure_tracing
from mediafleet.common.vectors import VectorDbClient
from mediafleet.job_manager import rq_metrics
from mediafleet.job_manager.manager import JobManager
from mediafleet.job_manager.settings import JobManagerSettings
from mediafleet.job_manager.vectors import sync_due
from mediafleet.job_manager.webhooks import deliver_due

log = structlog.get_logger("mediafleet.job_manager")

QUEUE_DEPTH = Gauge("mediafleet_queue_depth", "Tasks waiting in an RQ queue", ["queue"])


def health_app(manager: JobManager, db: Engine, conn: redis.Redis) -> FastAPI:
    app = FastAPI(title="mediafleet job_manager", telemetry=FASTAPI_TELEMETRY)
    install_error_handlers(app)
    app.include_router(health_router({"database": database_check(db), "redis": redis_check(conn)}))
    for name, queue in manager.queues.items():
        QUEUE_DEPTH.labels(name).set_function(functools.partial(_safe_count, queue))
    rq_metrics.register(conn, manager.queues)
    return app


def _safe_count(queue: Queue) -> float:
    try:
        return float(queue.count)
    except redis.RedisError:
        return float("nan")


def main() -> None:
    settings = JobManagerSettings()
    configure_logging(settings.core.log_level, settings.core.log_format)
    configure_tracing("job_manager")  # when OTEL_EXPORTER_OTLP_ENDPOINT is set
    db = create_db_engine(settings.core.database_url)
    _migrate_when_reachable(db)
    conn = redis.Redis.from_url(settings.core.redis_url, socket_timeout=settings.reconcile_interval_s + 10)
    manager = JobManager(settings, session_factory(db), conn)
    serve_in_thread(health_app(manager, db, conn), settings.http_host, settings.http_port)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Webhooks go out from their own thread: a slow receiver never delays reconciliation.
    threading.Thread(target=_webhook_loop, args=(manager, stop), name="webhooks", daemon=True).start()
    if settings.core.vector_db_url:
        threading.Thread(target=_vector_loop, args=(manager, stop), name="vectors", daemon=True).start()
    else:
        log.warning(
            "vector_db_not_configured", hint="set MEDIAFLEET_VECTOR_DB_URL; embeddings wait in the store"
        )
    log.info("job_manager_started", queues=list(manager.queues))
    db_backoff = 1.0
    while not stop.is_set():
        try:
            manager.reconcile()
            conn.set(JOB_MANAGER_HEARTBEAT_KEY, f"{time.time():.3f}", ex=JOB_MANAGER_HEARTBEAT_TTL_S)
            # Sleep until an event arrives (new job, task finished, cancel) or the interval passes.
            if conn.blpop([NEW_JOBS_KEY, TASK_EVENTS_KEY], timeout=settings.reconcile_interval_s):
                # One pass serves every pending event: each is pushed after the state it
                # announces is saved, and the pass that follows reads that state.
                conn.delete(NEW_JOBS_KEY, TASK_EVENTS_KEY)
            db_backoff = 1.0
        except redis.RedisError as exc:
            log.warning("redis_unavailable", error=redis_problem(exc))
            stop.wait(1.0)
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            # the database is away (restart, SIGKILL): wait for it in process, with backoff;
            # nothing is lost (the store is the truth, the next pass picks up where it was)
            log.warning("database_unavailable", error=str(exc).splitlines()[0][:200], retry_in_s=db_backoff)
            stop.wait(db_backoff)
            db_backoff = min(db_backoff * 2, 30.0)
    log.info("job_manager_stopped")


def _migrate_when_reachable(db: Engine) -> None:
    """Migrate, waiting with backoff (1, 2, 4 ... 30 s) while the database cannot be reached."""
    backoff = 1.0
    while True:
        try:
            migrate(db)
            return
        except (OperationalError, InterfaceError) as exc:
            log.warning("database_unavailable", error=str(exc).splitlines()[0][:200], retry_in_s=backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, 30.0)


def _webhook_loop(manager: JobManager, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            sent = deliver_due(manager.sessions, manager.settings.core)
        except Exception as exc:  # the database restarting: try again on the next tick
            log.warning("webhook_pass_failed", error=f"{type(exc).__name__}: {exc}")
            sent = 0
        if not sent:
            stop.wait(0.5)


def _vector_loop(manager: JobManager, stop: threading.Event) -> None:
    core = manager.settings.core
    client = VectorDbClient(
        core.vector_db_url or "", core.vector_timeout_s, core.vector_index, headers=internal_headers(core)
    )
    while not stop.is_set():
        try:
            done = sync_due(manager.sessions, core, client)
        except Exception as exc:  # the database restarting: try again on the next tick
            log.warning("vector_pass_failed", error=f"{type(exc).__name__}: {exc}")
            done = 0
        if not done:
            stop.wait(0.5)
    client.close()


if __name__ == "__main__":
    main()
