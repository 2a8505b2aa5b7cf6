"""Jobs of a user."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mediafleet.common.schemas import JobStatus
from mediafleet.common.store import Job


def job_by_idempotency_key(session: Session, *, user_id: int, key: str) -> Job | None:
    """The user's job made by a request with this ``Idempotency-Key``, or None."""
    return session.scalar(select(Job).where(Job.user_id == user_id, Job.idempotency_key == key))


def jobs_page(
    session: Session,
    *,
    user_id: int,
    limit: int,
    offset: int,
    status: JobStatus | None = None,
    media_id: str | None = None,
) -> tuple[list[Job], int]:
    """One page of the user's jobs, newest first, and how many match in all."""
    where = [Job.user_id == user_id]
    if status is not None:
        where.append(Job.status == status)
    if media_id is not None:
        where.append(Job.media_id == media_id)
    # The total rides on the page's rows (a window over the filtered rows, before LIMIT);
    # only a page past the end needs its own COUNT.
    rows = session.execute(
        select(Job, func.count().over())
        .where(*where)
        .order_by(Job.created_at.desc(), Job.id)
        .limit(limit)
        .offset(offset)
    ).all()
    if rows:
        return [row[0] for row in rows], int(rows[0][1])
    return [], session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
