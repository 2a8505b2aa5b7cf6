"""Embeddings to vector_db: the items of each succeeded task, written by a job_manager thread.

A succeeded task whose contract hands over vectors (``TaskSpec.vectors``) gets a pending
:class:`~mediafleet.common.store.VectorSync` in the same transaction as its result, so no
result is stored without its sync and a restart loses none. :func:`sync_due` writes the
items of due syncs (owner = the job's user); a failure (vector_db down, refused) is retried
after ``vector_backoff_s * 2**(n-1)`` seconds (at most 300 s) until
``MEDIAFLEET_VECTOR_SYNC_MAX_ATTEMPTS``, then the sync is ``failed`` with its error. Each
attempt is a ``vectors.sync`` span in the trace of the job's request.
"""

from __future__ import annotations

import datetime as dt

import structlog
from opentelemetry.trace import SpanKind
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mediafleet.common import registry, tracing
from mediafleet.common.capability import VectorItem
from mediafleet.common.metrics import VECTOR_SYNCS
from mediafleet.common.settings import CoreSettings
from mediafleet.common.store import Task, VectorSync
from mediafleet.common.store.models import utcnow
from mediafleet.common.vectors import VectorDbClient, VectorDbError

log = structlog.get_logger("mediafleet.job_manager.vectors")


def task_vectors(task: Task) -> list[VectorItem]:
    """The vectors a succeeded task's result holds (its contract says which); [] when none."""
    try:
        _, spec = registry.tasks()[task.name]
    except KeyError:
        return []
    if task.result is None:
        return []
    return spec.derive(task.result).vectors


def queue_sync(task: Task, items: int) -> bool:
    """Give a task that just succeeded a pending sync when its result holds ``items`` vectors
    (> 0; counted by the recorder, :func:`mediafleet.common.pipeline.record.record`)."""
    if items <= 0:
        return False
    if task.vector_sync is None:
        task.vector_sync = VectorSync(state="pending", items=items, attempts=0, next_attempt_at=utcnow())
    else:
        sync = task.vector_sync
        sync.state, sync.items, sync.attempts, sync.error = "pending", items, 0, None
        sync.next_attempt_at = utcnow()
    return True


def sync_due(
    sessions: sessionmaker[Session], core: CoreSettings, client: VectorDbClient, limit: int = 50
) -> int:
    """Write every pending sync whose time has come; returns how many were attempted."""
    with sessions() as session:
        due = session.scalars(
            select(VectorSync)
            .where(VectorSync.state == "pending", VectorSync.next_attempt_at <= utcnow())
            .order_by(VectorSync.next_attempt_at)
            .limit(limit)
        ).all()
        for sync in due:
            job = sync.task.job
            attributes: dict[str, str | int] = {
                "mediafleet.task_id": sync.task_id,
                "mediafleet.job_id": job.id,
                "mediafleet.items": sync.items,
            }
            with tracing.span("vectors.sync", job.trace_context, SpanKind.CLIENT, attributes):
                _attempt(sync, core, client)
            session.commit()
        return len(due)


def _attempt(sync: VectorSync, core: CoreSettings, client: VectorDbClient) -> None:
    task = sync.task
    job = task.job
    sync.attempts += 1
    try:
        items = task_vectors(task)
        written = client.upsert(str(job.user_id), job.media_id, task.name, items)
    except (VectorDbError, ValueError) as exc:
        sync.error = str(exc)[:2000]
        if sync.attempts >= core.vector_sync_max_attempts:
            sync.state, sync.next_attempt_at = "failed", None
            VECTOR_SYNCS.labels("failed").inc()
            log.error("vector_sync_failed", task_id=task.id, attempts=sync.attempts, error=sync.error)
        else:
            delay = min(core.vector_backoff_s * 2 ** (sync.attempts - 1), 300.0)
            sync.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
            VECTOR_SYNCS.labels("retry").inc()
            log.warning(
                "vector_sync_retry", task_id=task.id, attempt=sync.attempts, in_s=delay, error=sync.error
            )
        return
    sync.state, sync.error, sync.synced_at, sync.next_attempt_at = "synced", None, utcnow(), None
    VECTOR_SYNCS.labels("synced").inc()
    log.info("vector_sync_done", task_id=task.id, media_id=job.media_id, task=task.name, items=written)
