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

import json
import threading
from typing import Any

import redis
import structlog
from rq import SimpleWorker
from rq.job import Job
from rq.queue import Queue
from rq.worker import WorkerStatus

from mediafleet.common.queues import TASK_EVENTS_KEY
from mediafleet.common.taskrun import QUERY_FUNCTION, Runtime, bound_runtime

log = structlog.get_logger("mediafleet.worker")


class ModelWorker(SimpleWorker):
    lease_s: int = 15

    def __init__(self, *args, runtime: Runtime | None = None, **kwargs):  # noqa: ANN002, ANN003
        #: The loaded runner the generic task function uses (bound around each job).
        self.runtime = runtime
        # Short registration TTL: a worker that vanished stops counting as capacity within
        # about 30 s (RQ's default is 420 s).
        kwargs.setdefault("worker_ttl", max(2 * self.lease_s, 30))
        super().__init__(*args, **kwargs)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return self.lease_s

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:  # noqa: ANN001
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
        self.set_state(WorkerStatus.IDLE)

    def _renew_lease(self, job: Job, execution, stop: threading.Event) -> None:  # noqa: ANN001
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


def capabilities(conn: redis.Redis) -> dict[str, str]:
    """Live workers per task, e.g. ``{"ocr": "2 workers"}`` or ``{"ocr": "no worker ..."}``."""
    from rq import Queue, Worker

    from mediafleet.common.registry import capabilities as installed

    out = {}
    for cap in installed().values():
        workers = Worker.all(connection=conn, queue=Queue(f"{cap.queue}:normal", connection=conn))
        n = len(workers)
        state = f"{n} worker{'s' if n != 1 else ''}" if n else "no worker: jobs needing it wait in the queue"
        for task in cap.task_names:
            out[task] = state
    return out


def fleet_report(conn: redis.Redis) -> list[dict[str, Any]]:
    """Each installed capability as the fleet sees it now: ``{"capability", "queue", "tasks",
    "workers" (live RQ workers), "queued" ({priority: tasks waiting}), "model_versions"
    ({engine: version} the workers advertised at start, empty before a worker ran)}``.
    Raises redis.RedisError when Redis is down."""
    from rq import Queue, Worker

    from mediafleet.common.queues import ADVERTS_KEY, PRIORITY_ORDER
    from mediafleet.common.registry import capabilities as installed

    adverts = conn.hgetall(ADVERTS_KEY)
    out = []
    for cap in installed().values():
        queues = {p.value: Queue(f"{cap.queue}:{p.value}", connection=conn) for p in PRIORITY_ORDER}
        versions: dict[str, str] = {}
        for task in cap.task_names:
            raw = adverts.get(task.encode()) or adverts.get(task)
            if raw:
                versions.update(json.loads(raw).get("model_versions") or {})
        out.append(
            {
                "capability": cap.name,
                "queue": cap.queue,
                "tasks": list(cap.task_names),
                "workers": len(Worker.all(connection=conn, queue=queues["normal"])),
                "queued": {name: q.count for name, q in queues.items()},
                "model_versions": versions,
            }
        )
    return out
