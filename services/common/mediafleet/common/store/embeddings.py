"""Whole-media embeddings kept in stored results: what "similar media" compares.

A task whose contract hands over vectors (``TaskSpec.vectors``) stores them in its result;
the one with ``ref == MEDIA_REF`` describes the whole media. The gateway's
``/v1/media/{id}/similar`` and the CLI's ``mediafleet similar`` both start from it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mediafleet.common import registry
from mediafleet.common.capability import MEDIA_REF, VectorItem, no_vectors
from mediafleet.common.schemas import JobStatus
from mediafleet.common.store.models import Job, Task


def embedding_tasks() -> list[str]:
    """Installed tasks whose results hold vectors, sorted."""
    return sorted(name for name, (_, spec) in registry.tasks().items() if spec.vectors is not no_vectors)


def media_embedding(session: Session, *, user_id: int, media_id: str, tasks: list[str]) -> VectorItem | None:
    """The whole-media vector (``ref == MEDIA_REF``) of the latest succeeded task among
    ``tasks`` in ``user_id``'s jobs on ``media_id``; None when none holds one."""
    rows = session.scalars(
        select(Task)
        .join(Job)
        .where(
            Job.user_id == user_id,
            Job.media_id == media_id,
            Task.status == JobStatus.succeeded,
            Task.name.in_(tasks),
        )
        .order_by(Task.finished_at.desc())
    ).all()
    known = registry.tasks()
    for row in rows:
        if row.result is None or row.name not in known:
            continue
        for item in known[row.name][1].derive(row.result).vectors:
            if item.ref == MEDIA_REF:
                return item
    return None
