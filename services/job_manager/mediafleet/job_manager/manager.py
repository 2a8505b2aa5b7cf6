"""Reconciliation of the SQL store (source of truth for jobs) with the RQ queues.

One pass, idempotent, safe to run any number of times and after any crash:

1. Reap: ``StartedJobRegistry.cleanup()`` on every task queue retries (with backoff)
   or fails tasks whose worker stopped renewing its lease (see common.worker); and
   schedule: retries whose backoff has passed go back on their queue. job_manager is
   the fleet's one RQ scheduler (workers run none: RQ's scheduler is a forked child
   that outlives a SIGKILLed worker).
2. Collect: results of finished RQ jobs are stored on their task, their text segments
   indexed for search (the capability contract's ``segments``) and remembered by the
   result cache, their vectors queued for vector_db (:mod:`mediafleet.job_manager.vectors`);
   failures keep their error; the job's status is derived from its tasks;
   every change is published as a progress event.
3. Plan: a queued task without an RQ job waits for the tasks it depends on; when they
   succeeded it is served from the result cache or enqueued, with their results as
   ``inputs``, on its capability's queue at the job's priority, with a retry policy
   (``MEDIAFLEET_TASK_MAX_RETRIES``, exponential backoff from
   ``MEDIAFLEET_TASK_RETRY_BACKOFF_S``); when one failed it fails with the reason.
   Independent tasks are enqueued together and run in parallel on their queues. An RQ
   job that went missing (Redis lost its data) is enqueued again.
   A job's ``device`` picks the queue family: ``auto`` sends a task to its capability's GPU
   queue (``<queue>:gpu:<priority>``) while a GPU worker of the capability is alive and has
   the task ready (its RQ registration and status, :func:`mediafleet.common.worker.gpu_workers_ready`),
   or always for the capabilities in ``gpu_on_demand`` (GPU workers scaled from zero);
   ``gpu`` always; ``cpu`` never.
   Fallback: an ``auto`` task waiting on a GPU queue moves to the CPU queue of its priority,
   as the same RQ job (its retries and attempts kept), once it waited ``gpu_wait_s`` or at
   once when no GPU worker is alive and ready (one died: its abandoned task came back from
   the reaper to the GPU queue). The move is one transaction watching the GPU list: a GPU
   worker that popped the task first keeps it, so it never runs twice.
   Orphans: a worker dequeues with a blocking pop, so one that popped a task and died (or
   froze) before marking it started leaves it QUEUED on no list, where no lease covers it.
   Every ``orphan_check_s`` the waiting tasks are compared with their queues' lists; one
   missing for ``2 x MEDIAFLEET_TASK_LEASE_S`` and still QUEUED is put back on its queue.
4. Cancel: RQ jobs of canceled tasks are removed from their queue or stopped.
5. Webhooks: a job that ended with a ``webhook_url`` gets a pending delivery
   (sent by :func:`mediafleet.job_manager.webhooks.deliver_due`).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import redis
import structlog
from opentelemetry.trace import SpanKind
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mediafleet.common import events, registry, tracing
from mediafleet.common.media_access import sign_media_url, url_expires
from mediafleet.common.outcome import TaskOutcome, failure_message
from mediafleet.common.pipeline.record import record
from mediafleet.common.queues import TASK_FUNCTION, all_queue_names, is_gpu_queue, queue_name
from mediafleet.common.schemas import JobStatus
from mediafleet.common.settings import retry_intervals
from mediafleet.common.store import Job, Media, Task
from mediafleet.common.store.models import utcnow
from mediafleet.common.worker import gpu_workers_ready
from mediafleet.job_manager import cache, vectors, webhooks
from mediafleet.job_manager.settings import JobManagerSettings

log = structlog.get_logger("mediafleet.job_manager")

ACTIVE = (JobStatus.queued, JobStatus.running)


def rq_job_id(task_id: str) -> str:
    return f"task-{task_id}"


class JobManager:
    #: seconds between two looks for tasks a worker popped and never started (one LRANGE per queue)
    orphan_check_s: float = 10.0

    def __init__(self, settings: JobManagerSettings, sessions: sessionmaker[Session], conn: redis.Redis):
        self.settings = settings
        self.sessions = sessions
        self.redis = conn
        self.queues = {name: Queue(name, connection=conn) for name in all_queue_names()}
        self.scheduler = RQScheduler(list(self.queues), connection=conn)
        #: task -> live GPU workers with it ready, counted once per pass
        self._gpu_ready: dict[str, int] = {}
        #: QUEUED tasks seen this pass; RQ job id -> when it was first missing from its list
        self._waiting: list[RQJob] = []
        self._missing: dict[str, float] = {}
        self._orphans_checked = 0.0

    # -- one pass -------------------------------------------------------------------
    def reconcile(self) -> int:
        """Run one reconciliation pass; returns the number of tasks whose state changed."""
        self.reap()
        self._gpu_ready, self._waiting = {}, []
        changed = 0
        with self.sessions() as session:
            tasks = session.scalars(
                select(Task).join(Job).where(Task.status.in_(ACTIVE)).order_by(Task.created_at)
            ).all()
            for task in tasks:
                if task.queue_job_id is not None:
                    with tracing.use(task.job.trace_context):
                        changed += self._collect(session, task)
            # Planning a task can finish it (cache hit, failed dependency) and so release its
            # dependents: plan until nothing moves.
            waiting = [t for t in tasks if t.queue_job_id is None]
            while waiting:
                moved = [
                    t for t in waiting if t.status == JobStatus.queued and self._plan_in_trace(session, t)
                ]
                if not moved:
                    break
                changed += len(moved)
                waiting = [t for t in waiting if t.queue_job_id is None and t.status == JobStatus.queued]
            self._requeue_orphans()
            changed += self._cancel_canceled(session)
            changed += self._queue_webhooks(session)
            session.commit()
        return changed

    def reap(self) -> None:
        for queue in self.queues.values():
            StartedJobRegistry(queue=queue).cleanup()
        # Locks make one job_manager the scheduler when several run.
        if self.scheduler.acquire_locks():  # type: ignore[no-untyped-call]
            self.scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]

    # -- steps ----------------------------------------------------------------------
    def _plan_in_trace(self, session: Session, task: Task) -> int:
        """:meth:`_plan` in the trace of the request that created the task's job."""
        with tracing.use(task.job.trace_context):
            return self._plan(session, task)

    def _plan(self, session: Session, task: Task) -> int:
        """Wait, fail, serve from cache or enqueue ``task``; returns 1 when its state moved."""
        job = task.job
        deps = {t.name: t for t in job.tasks if t.name in (task.depends_on or [])}
        broken = [t for t in deps.values() if t.status in (JobStatus.failed, JobStatus.canceled)]
        if broken:
            dep = broken[0]
            return self._finish(
                task, JobStatus.failed, error=f"dependency {dep.name} {dep.status}: {dep.error}"
            )
        if any(t.status != JobStatus.succeeded for t in deps.values()):
            return 0  # runs when its dependencies have succeeded
        inputs = {name: t.result for name, t in deps.items()}
        options = (job.options or {}).get(task.name, {})
        if job.use_cache:
            hit = cache.lookup(session, self.redis, cache.Work(job.media_id, task.name, options, inputs))
            if hit is not None:
                task.result, task.cached = hit.result, True
                self._index(session, task)
                log.info("task_cached", job_id=job.id, task=task.name, source_task_id=hit.source_task_id)
                return self._finish(task, JobStatus.succeeded)
        return self._enqueue(session, task, inputs)

    def _finish(self, task: Task, status: JobStatus, error: str | None = None) -> int:
        task.status, task.error, task.finished_at = status, error, utcnow()
        self._refresh_job(task.job)
        events.publish(
            self.redis,
            task.job_id,
            task=task.name,
            task_status=status,
            cached=task.cached,
            error=error,
            status=task.job.status,
        )
        return 1

    def _enqueue(self, session: Session, task: Task, inputs: dict[str, Any] | None = None) -> int:
        job = task.job
        media = session.get(Media, job.media_id)
        if media is None:  # cannot happen: jobs.media_id is a foreign key to media.id
            raise LookupError(f"media {job.media_id} of job {job.id} is gone")
        core = self.settings.core
        if inputs is None:
            inputs = {t.name: t.result for t in job.tasks if t.name in (task.depends_on or [])}
        payload = {
            "task": task.name,
            "task_id": task.id,
            "job_id": job.id,
            "media_id": job.media_id,
            "media_kind": media.kind,
            "duration_s": media.duration_s,
            "storage_path": media.storage_path,
            "options": (job.options or {}).get(task.name, {}),
            "inputs": inputs,
        }
        if core.media_url_base and core.media_url_secret:
            payload["media_url"] = self._media_url(job.media_id)
        queue = self.queues[queue_name(task.name, job.priority, gpu=self._wants_gpu(task))]
        rq_id = rq_job_id(task.id)
        with tracing.span(
            "task.enqueue", kind=SpanKind.PRODUCER, attributes=_span_attributes(task, queue.name)
        ):
            payload["trace"] = tracing.carrier()  # the worker's task.run continues this span
            self._put(queue, rq_id, payload, task, media.duration_s)
        task.queue_job_id = rq_id
        session.flush()
        log.info("task_enqueued", job_id=job.id, task=task.name, queue=queue.name)
        events.publish(self.redis, job.id, task=task.name, task_status=JobStatus.queued, queue=queue.name)
        return 1

    def _queue(self, name: str) -> Queue:
        """The RQ queue ``name`` (one of this version's, or a name an RQ job still carries)."""
        return self.queues.get(name) or Queue(name, connection=self.redis)

    def _on_demand(self, task: str) -> bool:
        """Whether ``task``'s capability has GPU workers that start on demand (``gpu_on_demand``)."""
        return registry.capability_of(task).name in self.settings.gpu_on_demand

    def _gpu_workers(self, task: str) -> int:
        """Live GPU workers that have ``task`` ready (counted once per reconciliation pass)."""
        if task not in self._gpu_ready:
            self._gpu_ready[task] = gpu_workers_ready(self.redis, registry.capability_of(task), task)
        return self._gpu_ready[task]

    def _wants_gpu(self, task: Task) -> bool:
        device = task.job.device or "auto"
        if device != "auto":
            return device == "gpu"
        return self._on_demand(task.name) or self._gpu_workers(task.name) > 0

    def _fall_back_to_cpu(self, task: Task, rq_job: RQJob) -> None:
        """Move an ``auto`` task waiting on a GPU queue to the CPU queue when no GPU worker took it
        within ``gpu_wait_s``, or at once when no GPU worker is alive and ready (and its
        capability's GPU workers do not start on demand)."""
        enqueued = rq_job.enqueued_at
        if enqueued is None:
            return
        if enqueued.tzinfo is None:
            enqueued = enqueued.replace(tzinfo=dt.UTC)
        waited = (dt.datetime.now(dt.UTC) - enqueued).total_seconds()
        ready = self._gpu_workers(task.name)
        if waited < self.settings.gpu_wait_s and (ready or self._on_demand(task.name)):
            return
        gpu_queue = self._queue(rq_job.origin)
        cpu_queue = self.queues[queue_name(task.name, task.job.priority)]
        # One transaction, watched: off the GPU list and onto the CPU one together, or not at
        # all when a GPU worker popped it (or the list changed) in between; then the next pass
        # looks again. A crash between the two cannot leave it on neither list.
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(gpu_queue.key)  # type: ignore[no-untyped-call]
                if pipe.lpos(gpu_queue.key, rq_job.id) is None:
                    return  # a GPU worker took it: it runs there
                pipe.multi()
                pipe.lrem(gpu_queue.key, 1, rq_job.id)
                cpu_queue.enqueue_job(rq_job, pipeline=pipe)
                pipe.execute()
            except redis.WatchError:
                return
        why = (
            f"no GPU worker took it within {self.settings.gpu_wait_s:g} s"
            if ready
            else "no GPU worker is ready"
        )
        log.info(
            "task_to_cpu", job_id=task.job_id, task=task.name, queue=cpu_queue.name,
            waited_s=round(waited, 1), gpu_workers=ready,
        )  # fmt: skip
        events.publish(
            self.redis, task.job_id, task=task.name, task_status=JobStatus.queued, queue=cpu_queue.name,
            message=f"{why}: it runs on CPU",
        )  # fmt: skip

    def _requeue_orphans(self) -> None:
        """Put back on its queue a task that stayed QUEUED but off its queue's list for
        ``2 x task_lease_s``: a worker popped it and died before starting it (module docstring)."""
        now = time.monotonic()
        if now - self._orphans_checked < self.orphan_check_s:
            return
        self._orphans_checked = now
        listed: set[str] = set()
        for name in {j.origin for j in self._waiting}:
            listed.update(self._queue(name).get_job_ids())
        missing: dict[str, float] = {}
        for rq_job in self._waiting:
            if rq_job.id in listed:
                continue
            first = self._missing.get(rq_job.id, now)
            if now - first < 2 * self.settings.core.task_lease_s:
                missing[rq_job.id] = first
                continue
            if rq_job.get_status(refresh=True) != RQStatus.QUEUED:
                continue  # a worker started it after all
            queue = self._queue(rq_job.origin)
            queue.enqueue_job(rq_job)
            log.warning(
                "task_requeued", rq_job_id=rq_job.id, queue=queue.name, missing_s=round(now - first, 1),
                reason="a worker took it off its queue and never started it",
            )  # fmt: skip
        self._missing = missing

    def _media_url(self, media_id: str) -> str:
        core = self.settings.core
        assert core.media_url_base and core.media_url_secret  # checked by the callers
        return sign_media_url(
            core.media_url_base, media_id, core.media_url_secret.get_secret_value(), core.media_url_ttl_s
        )

    def _keep_media_url_fresh(self, rq_job: RQJob) -> None:
        """A waiting task whose signed media URL has less than half its lifetime left gets a new
        one (a worker elsewhere that met an expired URL failed the attempt; its retry then
        carries this one). Only the job's ``data`` field is written: a worker that dequeued it
        meanwhile still holds a URL valid for the other half."""
        core = self.settings.core
        if not (core.media_url_base and core.media_url_secret) or not rq_job.args:
            return
        payload = rq_job.args[0]
        if not isinstance(payload, dict) or "media_url" not in payload:
            return
        expires = url_expires(str(payload["media_url"]))
        if expires is not None and expires - time.time() > core.media_url_ttl_s / 2:
            return
        payload = {**payload, "media_url": self._media_url(str(payload["media_id"]))}
        rq_job.args = (payload,)
        self.redis.hset(rq_job.key, "data", rq_job.data)
        log.info("media_url_renewed", task_id=payload.get("task_id"), job_id=payload.get("job_id"))

    def _put(
        self, queue: Queue, rq_id: str, payload: dict[str, Any], task: Task, duration_s: float | None
    ) -> None:
        """Enqueue ``payload`` as RQ job ``rq_id`` unless one of that id exists already."""
        core = self.settings.core
        intervals = retry_intervals(core)
        try:
            RQJob.fetch(rq_id, connection=self.redis)
            exists = True
        except NoSuchJobError:
            exists = False
        if not exists:
            queue.enqueue(
                TASK_FUNCTION,
                payload,
                job_id=rq_id,
                job_timeout=task_timeout_s(core.task_timeout_s, task.name, duration_s),
                result_ttl=self.settings.result_ttl_s,
                failure_ttl=self.settings.result_ttl_s,
                retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
                description=f"{task.name} of job {task.job_id}",
            )

    def _collect(self, session: Session, task: Task) -> int:
        if task.queue_job_id is None:
            return self._enqueue(session, task)
        try:
            rq_job = RQJob.fetch(task.queue_job_id, connection=self.redis)
        except NoSuchJobError:
            # Redis lost the job (restarted without persistence): queue it again.
            log.warning("task_lost_requeued", task_id=task.id)
            task.queue_job_id = None
            return self._enqueue(session, task)
        status = rq_job.get_status(refresh=False)
        retries_left = rq_job.retries_left if rq_job.retries_left is not None else 0
        attempts = 1 + max(len(retry_intervals(self.settings.core)) - retries_left, 0)
        before = (task.status, task.attempts)
        if status == RQStatus.STARTED:
            task.status = JobStatus.running
            task.attempts = attempts
            task.started_at = task.started_at or utcnow()
        elif status in (RQStatus.QUEUED, RQStatus.SCHEDULED, RQStatus.DEFERRED):
            # waiting, possibly for a retry after a failed or abandoned attempt
            task.status = JobStatus.queued
            task.attempts = attempts - 1
            if status == RQStatus.QUEUED and is_gpu_queue(rq_job.origin) and task.job.device == "auto":
                self._fall_back_to_cpu(task, rq_job)
            self._keep_media_url_fresh(rq_job)
            if status == RQStatus.QUEUED:
                self._waiting.append(rq_job)
        elif status == RQStatus.FINISHED:
            self._store_result(session, task, rq_job.return_value())
            task.attempts = max(task.attempts, attempts)
        elif status == RQStatus.FAILED:
            task.status = JobStatus.failed
            task.attempts = attempts
            raw = rq_job.exc_info
            task.error = failure_message(raw, rq_job.timeout)
            log.warning(
                "task_failed", task_id=task.id, job_id=task.job_id, task=task.name, cause=_last_line(raw)
            )
            task.finished_at = utcnow()
        elif status in (RQStatus.CANCELED, RQStatus.STOPPED):
            task.status = JobStatus.canceled
            task.finished_at = utcnow()
        if (task.status, task.attempts) == before:
            return 0
        self._refresh_job(task.job)
        events.publish(
            self.redis,
            task.job_id,
            task=task.name,
            task_status=task.status,
            attempts=task.attempts,
            error=task.error,
            status=task.job.status,
        )
        return 1

    def _store_result(self, session: Session, task: Task, value: dict[str, Any] | None) -> None:
        with tracing.span("task.store_result", attributes=_span_attributes(task)):
            self._store_outcome(session, task, value)

    def _store_outcome(self, session: Session, task: Task, value: dict[str, Any] | None) -> None:
        task.finished_at = utcnow()
        outcome = TaskOutcome.model_validate(value) if value else TaskOutcome(ok=False)
        if not outcome.ok or outcome.result is None:
            task.status = JobStatus.failed
            task.error = outcome.describe_error()
            return
        task.status = JobStatus.succeeded
        task.result = outcome.result
        task.device = outcome.device
        task.error = None
        self._index(session, task)
        job = task.job
        inputs = {t.name: t.result for t in job.tasks if t.name in (task.depends_on or [])}
        options = (job.options or {}).get(task.name, {})
        work = cache.Work(job.media_id, task.name, options, inputs)
        cache.store(session, self.redis, work, outcome.result, task.id)

    def _index(self, session: Session, task: Task) -> None:
        """Index the result's text segments and store its faces (the common recorder), and queue
        its vectors for vector_db (job_manager's sync thread)."""
        derived = record(session, task)
        if derived is not None:
            vectors.queue_sync(task, len(derived.vectors))

    def _refresh_job(self, job: Job) -> None:
        if job.status == JobStatus.canceled:
            return
        statuses = [JobStatus(t.status) for t in job.tasks]
        if all(s == JobStatus.succeeded for s in statuses):
            job.status = JobStatus.succeeded
        elif all(s.terminal for s in statuses):
            job.status = JobStatus.failed
            job.error = "; ".join(f"{t.name}: {t.error}" for t in job.tasks if t.status == JobStatus.failed)
        elif any(s != JobStatus.queued for s in statuses):
            job.status = JobStatus.running
        else:
            job.status = JobStatus.queued
        if JobStatus(job.status).terminal:
            job.finished_at = utcnow()
            webhooks.queue_delivery(job)
        job.updated_at = utcnow()

    def _queue_webhooks(self, session: Session) -> int:
        """Deliveries for jobs that ended outside this loop (canceled through the API)."""
        jobs = session.scalars(
            select(Job).where(
                Job.webhook_url.is_not(None),
                Job.status.in_([JobStatus.succeeded, JobStatus.failed, JobStatus.canceled]),
                ~Job.webhook.has(),
            )
        ).all()
        return sum(webhooks.queue_delivery(job) for job in jobs)

    def _cancel_canceled(self, session: Session) -> int:
        """Stop the RQ work of tasks canceled through the API (queued: removed; running: stopped)."""
        tasks = session.scalars(
            select(Task).where(
                Task.status == JobStatus.canceled, Task.queue_job_id.is_not(None), Task.error.is_(None)
            )
        ).all()
        for task in tasks:
            if task.queue_job_id is None:
                continue
            try:
                rq_job = RQJob.fetch(task.queue_job_id, connection=self.redis)
                status = rq_job.get_status(refresh=False)
                if status == RQStatus.STARTED:
                    send_stop_job_command(self.redis, rq_job.id)
                elif status in (RQStatus.QUEUED, RQStatus.SCHEDULED, RQStatus.DEFERRED):
                    rq_job.cancel()
            except (NoSuchJobError, InvalidJobOperation):
                pass  # nothing left to stop
            task.error = "canceled by user"
        return len(tasks)


def _span_attributes(task: Task, queue: str | None = None) -> dict[str, str]:
    """The attributes of a task's spans (``messaging.destination.name``: OpenTelemetry's
    messaging conventions, for the RQ queue)."""
    out = {"mediafleet.task": task.name, "mediafleet.task_id": task.id, "mediafleet.job_id": task.job_id}
    if queue is not None:
        out["messaging.system"] = "rq"
        out["messaging.destination.name"] = queue
    return out


def _last_line(text: str | None) -> str | None:
    if not text:
        return None
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:2000] if lines else None


def task_timeout_s(base_s: int, task: str, duration_s: float | None) -> int:
    """RQ timeout of one task: ``base_s`` plus the task's ``timeout_per_media_s`` x media seconds."""
    spec = registry.tasks().get(task)
    per_s = spec[1].timeout_per_media_s if spec else 0.0
    if spec and spec[1].on_frames("video") and duration_s:
        per_s += 0.2  # an image task on a video decodes every frame to find scene changes
    return int(base_s + per_s * (duration_s or 0.0))
