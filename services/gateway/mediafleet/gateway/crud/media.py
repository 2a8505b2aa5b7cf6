"""Media and who owns them (an upload of the same bytes by two users is one media, two owners)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from mediafleet.common.schemas import JobStatus
from mediafleet.common.store import Job, Media, MediaOwner, Task


def media_page(
    session: Session,
    *,
    user_id: int,
    limit: int,
    offset: int,
    kind: str | None = None,
    task: str | None = None,
    taken_from: dt.date | None = None,
    taken_to: dt.date | None = None,
    place: str | None = None,
) -> tuple[list[tuple[Media, MediaOwner]], int]:
    """One page of the user's media, newest upload first, and how many match in all;
    ``task``: only media with a succeeded task of that name in the user's jobs;
    ``taken_from`` / ``taken_to``: the file's own local date within these days (inclusive);
    ``place``: its place label contains this text (case-insensitive), or its country code is it."""
    where: list[ColumnElement[bool]] = [MediaOwner.user_id == user_id]
    if kind is not None:
        where.append(Media.kind == kind)
    if taken_from is not None:
        where.append(Media.taken_at >= dt.datetime.combine(taken_from, dt.time.min))
    if taken_to is not None:
        where.append(Media.taken_at < dt.datetime.combine(taken_to + dt.timedelta(days=1), dt.time.min))
    if place is not None:
        escaped = place.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(or_(Media.place.ilike(f"%{escaped}%", escape="\\"), Media.country_code == place.upper()))
    if task is not None:
        where.append(
            exists().where(
                Job.media_id == Media.id, Job.user_id == user_id, Task.job_id == Job.id,
                Task.name == task, Task.status == JobStatus.succeeded,
            )
        )  # fmt: skip
    rows = session.execute(
        select(Media, MediaOwner, func.count().over())
        .join(MediaOwner, MediaOwner.media_id == Media.id)
        .where(*where)
        .order_by(MediaOwner.created_at.desc(), Media.id)
        .limit(limit)
        .offset(offset)
    ).all()
    if rows:
        return [(m, o) for m, o, _ in rows], int(rows[0][2])
    count = session.scalar(
        select(func.count())
        .select_from(Media)
        .join(MediaOwner, MediaOwner.media_id == Media.id)
        .where(*where)
    )
    return [], count or 0


def filenames(session: Session, *, user_id: int, media_ids: Iterable[str]) -> dict[str, str | None]:
    """media id -> the user's filename, for the media of ``media_ids`` the user owns."""
    return dict(
        session.execute(
            select(MediaOwner.media_id, MediaOwner.filename).where(
                MediaOwner.user_id == user_id, MediaOwner.media_id.in_(list(media_ids))
            )
        ).all()
    )
