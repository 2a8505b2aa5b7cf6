"""RQ worker for model services: loads its engines once and keeps a short lease on running tasks.

- Non-forking (``SimpleWorker``): RQ's forking worker starts a fresh process per job,
  which would reload the model for every job.
- Lease: while a task runs, a heartbeat thread renews its entry in RQ's
  ``StartedJobRegistry`` every ``lease_s / 3`` seconds with a TTL of ``lease_s``.
  If the process dies (SIGKILL, OOM, lost host), the entry expires within
  ``lease_s`` and job_manager's reaper (``StartedJobRegistry.cleanup``) retries the
  task with backoff, or fails it when no retries are left. RQ's own TTL for a
  non-forking worker is the job timeout + 60 s, far too slow to notice a dead worker.
- After each task the worker pushes the task id onto ``TASK_EVENTS_KEY`` so
  job_manager collects the result at once instead of at its next poll.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import redis
import structlog
from pydantic import BaseModel, Field
from redis.client import Pipeline
from rq import SimpleWorker
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.worker import WorkerStatus as RqWorkerState

from mediafleet.common.capability import Capability, NotReady, Runner
from mediafleet.common.queues import TASK_EVENTS_KEY, WORKER_STATUS_PREFIX, redis_problem
from mediafleet.common.taskrun import QUERY_FUNCTION, Runtime, bound_runtime

log = structlog.get_logger("mediafleet.worker")


class ModelWorker(SimpleWorker):
    lease_s: int = 15

    def __init__(self, *args: Any, runtime: Runtime | None = None, **kwargs: Any):
        #: The loaded runner the generic task function uses (bound around each job).
        self.runtime = runtime
        # Short registration TTL: a worker that vanished stops counting as capacity within
        # about 30 s (RQ's default is 420 s).
        kwargs.setdefault("worker_ttl", max(2 * self.lease_s, 30))
        super().__init__(*args, **kwargs)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return self.lease_s

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        # RQ keeps a worker's registration 60 s past its TTL; keep it to the TTL itself, so a
        # killed worker stops counting as capacity (gateway /readyz) within worker_ttl. Idle
        # workers beat every worker_ttl - 15 s, busy ones every lease_s / 3.
        super().heartbeat(self.worker_ttl, pipeline)

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        stop = threading.Event()
        beat = threading.Thread(target=self._renew_lease, args=(job, execution, stop), daemon=True)
        beat.start()
        try:
            if self.runtime is None:
                self.perform_job(job, queue, execution)
            else:
                with bound_runtime(self.runtime):
                    self.perform_job(job, queue, execution)
        finally:
            stop.set()
            beat.join()
            self._notify(job)
        self.set_state(RqWorkerState.IDLE)

    def _renew_lease(self, job: Job, execution: Execution, stop: threading.Event) -> None:
        while not stop.wait(max(self.lease_s / 3, 0.5)):
            try:
                self.maintain_heartbeats(job, execution)
            except redis.RedisError as exc:  # Redis restarting: the next beat retries
                log.warning("lease_renewal_failed", job_id=job.id, error=str(exc))

    def _notify(self, job: Job) -> None:
        if job.func_name == QUERY_FUNCTION:  # a query's caller waits on its result, not job_manager
            return
        try:
            self.connection.lpush(TASK_EVENTS_KEY, job.id)
        except redis.RedisError as exc:  # job_manager's periodic reconciliation still sees it
            log.warning("task_event_failed", job_id=job.id, error=str(exc))


class WorkerStatus(BaseModel):
    """What a worker process says of itself (Redis, ``WORKER_STATUS_PREFIX<hostname>:<pid>``)."""

    capability: str
    #: ``cpu`` or ``cuda`` (``MEDIAFLEET_WORKER_DEVICE``): a ``cuda`` worker takes the GPU queues
    device: str = "cpu"
    #: task -> None when it can run now with its default options, else why not.
    tasks: dict[str, NotReady | None]
    at: float = Field(description="unix seconds when written")


def status_key(hostname: str | None, pid: int | None) -> str:
    return f"{WORKER_STATUS_PREFIX}{hostname}:{pid}"


def task_readiness(runner: Runner, task: str) -> NotReady | None:
    """``runner.task_ready(task)`` where the runner has it, else its whole readiness."""
    check = getattr(runner, "task_ready", None)
    if check is not None:
        result: NotReady | None = check(task)
        return result
    reason = runner.ready()
    return None if reason is None else NotReady(code="load_failed", message=reason)


def publish_status(
    conn: redis.Redis, cap: Capability, runner: Runner, ttl_s: int, device: str = "cpu"
) -> WorkerStatus:
    """Write this process's status (every task's readiness; a missing model is retried to load)."""
    status = WorkerStatus(
        capability=cap.name,
        device=device,
        tasks={t: task_readiness(runner, t) for t in cap.task_names},
        at=time.time(),
    )
    conn.set(status_key(socket.gethostname(), os.getpid()), status.model_dump_json(), ex=ttl_s)
    return status


def keep_status(
    conn: redis.Redis,
    cap: Capability,
    runner: Runner,
    every_s: float = 5.0,
    on_first: Callable[[], None] | None = None,
    device: str = "cpu",
) -> threading.Thread:
    """A daemon thread that republishes the status every ``every_s`` seconds (the key expires 3
    periods after the process stops writing it). ``on_first`` runs after the first status that
    Redis took (the adverts). A Redis error is retried; it is logged when it differs from the
    last one (the main loop logs each reconnection attempt)."""

    def loop() -> None:
        last: dict[str, NotReady | None] | None = None
        first = on_first
        problem = ""
        while True:
            try:
                status = publish_status(conn, cap, runner, ttl_s=max(int(3 * every_s), 5), device=device)
                if first is not None:
                    first()
                    first = None
                problem = ""
                if status.tasks != last:
                    log.info("worker_readiness", capability=cap.name, tasks={
                        t: "ready" if r is None else r.code for t, r in status.tasks.items()})  # fmt: skip
                    last = status.tasks
            except redis.RedisError as exc:
                if redis_problem(exc) != problem:
                    problem = redis_problem(exc)
                    log.warning("status_not_published", error=problem)
            time.sleep(every_s)

    thread = threading.Thread(target=loop, name="worker-status", daemon=True)
    thread.start()
    return thread


TaskState = Literal["ready", "models_missing", "engine_not_installed", "load_failed", "starting", "no_worker"]


class TaskReadiness(BaseModel):
    """Whether a task can run in the fleet now, as the gateway reports it (``/readyz``,
    ``GET /v1/tasks``, the admin page): ``ready`` when a live worker of its capability has
    the task's models loaded."""

    state: TaskState
    workers: int = Field(description="live workers of the task's capability")
    ready_workers: int = Field(description="of those, the ones that can run the task now")
    message: str = Field(description="for people: what is missing and the command that provides it")


NO_WORKER = "no worker runs: jobs needing it wait in the queue"


def _live_statuses(
    conn: redis.Redis, cap: Capability, queue: str | None = None
) -> tuple[int, list[WorkerStatus | None]]:
    """The live RQ workers listening on ``queue`` (default: ``cap``'s normal queue, which every
    worker of it drains) and each one's status (None: not written yet, or unreadable)."""
    from rq import Queue, Worker

    name = queue or f"{cap.queue}:normal"
    workers = Worker.all(connection=conn, queue=Queue(name, connection=conn))
    if not workers:
        return 0, []
    raw = conn.mget([status_key(w.hostname, w.pid) for w in workers])
    statuses: list[WorkerStatus | None] = []
    for value in raw:
        try:
            statuses.append(WorkerStatus.model_validate_json(value) if value else None)
        except ValueError:
            statuses.append(None)
    return len(workers), statuses


def gpu_workers_ready(conn: redis.Redis, cap: Capability, task: str) -> int:
    """Live GPU workers of ``cap`` (registered on its GPU queues, RQ registration alive) whose
    status says ``task`` can run now. Raises redis.RedisError."""
    from mediafleet.common.queues import gpu_queues

    _, statuses = _live_statuses(conn, cap, gpu_queues(cap)[1])
    return sum(
        1
        for s in statuses
        if s is not None and s.device == "cuda" and task in s.tasks and s.tasks[task] is None
    )


def readiness(conn: redis.Redis) -> dict[str, TaskReadiness]:
    """Every installed task's readiness from the live workers' statuses. Raises redis.RedisError."""
    from mediafleet.common.registry import capabilities as installed

    out: dict[str, TaskReadiness] = {}
    for cap in installed().values():
        n, statuses = _live_statuses(conn, cap)
        for task in cap.task_names:
            out[task] = summarise(task, n, statuses)
    return out


def summarise(task: str, workers: int, statuses: list[WorkerStatus | None]) -> TaskReadiness:
    if workers == 0:
        return TaskReadiness(state="no_worker", workers=0, ready_workers=0, message=NO_WORKER)
    known = [s.tasks.get(task) for s in statuses if s is not None and task in s.tasks]
    ready = sum(1 for r in known if r is None)
    plural = "s" if workers != 1 else ""
    if ready:
        return TaskReadiness(
            state="ready", workers=workers, ready_workers=ready,
            message=f"{ready} of {workers} worker{plural} ready" if ready != workers else f"{workers} worker{plural} ready",
        )  # fmt: skip
    problems = [r for r in known if r is not None]
    if not problems:
        return TaskReadiness(
            state="starting", workers=workers, ready_workers=0,
            message=f"{workers} worker{plural} starting (loading models)",
        )  # fmt: skip
    first = problems[0]
    return TaskReadiness(state=first.code, workers=workers, ready_workers=0, message=first.message)


def capabilities(conn: redis.Redis) -> dict[str, str]:
    """Readiness per task for ``/readyz``: ``{"ocr": "ready: 2 workers ready"}``, or the state
    and what is missing (``"models_missing: the model ... is not installed; run ..."``)."""
    return {task: f"{r.state}: {r.message}" for task, r in readiness(conn).items()}


def advertised_defaults(conn: redis.Redis, task: str) -> dict[str, Any]:
    """The default options the workers of ``task`` advertised at start ({} when none has, or
    while Redis is unavailable): what a job without options will run with."""
    from mediafleet.common.queues import ADVERTS_KEY

    try:
        raw = conn.hget(ADVERTS_KEY, task)
    except redis.RedisError:
        return {}
    if not raw:
        return {}
    try:
        value = json.loads(raw).get("default_options") or {}
    except (ValueError, AttributeError):
        return {}
    return value if isinstance(value, dict) else {}


def head_wait_s(queue: Queue, now: dt.datetime) -> float:
    """Seconds since the first job in ``queue`` was enqueued; 0 when the queue is empty (or its
    head job expired between the two reads). Raises redis.RedisError."""
    head = queue.get_job_ids(0, 1)
    job = queue.fetch_job(head[0]) if head else None
    if job is None or job.enqueued_at is None:
        return 0.0
    enqueued = job.enqueued_at if job.enqueued_at.tzinfo else job.enqueued_at.replace(tzinfo=dt.UTC)
    return round(max((now - enqueued).total_seconds(), 0.0), 3)


def fleet_report(conn: redis.Redis) -> list[dict[str, Any]]:
    """Each installed capability as the fleet sees it now: ``{"capability", "queue", "tasks",
    "workers" (live RQ workers), "devices" ({device: live workers}, "unknown" for a worker that
    wrote no status), "queued" ({priority: tasks waiting}), "oldest_wait_s" (seconds the longest
    waiting task has waited, 0 with none), "model_versions" ({engine: version} the workers
    advertised at start, empty before a worker ran), "readiness" ({task: TaskReadiness})}``.
    Raises redis.RedisError when Redis is down."""
    from rq import Queue

    from mediafleet.common.queues import ADVERTS_KEY, PRIORITY_ORDER, gpu_queues, priority_queues
    from mediafleet.common.registry import capabilities as installed

    adverts = conn.hgetall(ADVERTS_KEY)
    out = []
    for cap in installed().values():
        queues = {
            p.value: [Queue(name, connection=conn) for name in [*priority_queues(cap, p), gpu_queues(cap)[i]]]
            for i, p in enumerate(PRIORITY_ORDER)
        }
        versions: dict[str, str] = {}
        for task in cap.task_names:
            raw = adverts.get(task.encode()) or adverts.get(task)
            if raw:
                versions.update(json.loads(raw).get("model_versions") or {})
        n, statuses = _live_statuses(conn, cap)
        devices: dict[str, int] = {}
        for status in statuses:
            device = status.device if status is not None else "unknown"
            devices[device] = devices.get(device, 0) + 1
        now = dt.datetime.now(dt.UTC)
        out.append(
            {
                "capability": cap.name,
                "queue": cap.queue,
                "tasks": list(cap.task_names),
                "workers": n,
                "devices": devices,
                "queued": {level: sum(q.count for q in qs) for level, qs in queues.items()},
                "oldest_wait_s": max(
                    (head_wait_s(q, now) for qs in queues.values() for q in qs), default=0.0
                ),
                "model_versions": versions,
                "readiness": {t: summarise(t, n, statuses).model_dump() for t in cap.task_names},
            }
        )
    return out
