"""Near-duplicates among one user's files: kept when a fingerprint is recorded, read by the
API, the web UI and the CLI.

When a task whose contract has a ``likeness`` rule (``TaskSpec.likeness``: the
``fingerprint`` task) succeeds for a user's file, :func:`update_duplicates` compares its result
with the same task's latest result on each of the user's other files of the same kind and
keeps the pairs the rule calls duplicates (:class:`~mediafleet.common.store.models.MediaDuplicate`).
Nothing is compared across users. Bounds: the :data:`MAX_CANDIDATES` most recently
fingerprinted files are compared (O(n) per recorded result), and each file keeps its
:data:`MAX_PAIRS_PER_MEDIA` most similar duplicates, so a user uploading thousands of copies
of one photo cannot grow the table quadratically.

Two uploads recorded at the same moment by two recorders do not see each other's result
(each transaction reads the other's before it commits): that pair is found when either file
is fingerprinted again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from mediafleet.common.capability import Likeness, TaskSpec
from mediafleet.common.schemas import JobStatus
from mediafleet.common.store.models import Job, Media, MediaDuplicate, MediaOwner, Task

log = structlog.get_logger("mediafleet.store.duplicates")

#: The most recently fingerprinted files of the same kind a new result is compared with.
MAX_CANDIDATES = 10_000
#: Duplicates kept per recorded file (the most similar first).
MAX_PAIRS_PER_MEDIA = 50
#: Pairs read to build one user's groups (GET /v1/duplicates).
MAX_PAIRS_READ = 100_000


def update_duplicates(session: Session, spec: TaskSpec, task: Task, result: Any) -> int:
    """Replace the user's duplicate pairs of ``task``'s file with those ``spec.likeness`` finds
    between ``result`` (the validated result of ``task``, a succeeded task) and the latest
    result of the same task on each of the user's other files of the same kind. Returns how
    many pairs were kept. The caller commits."""
    rule = spec.likeness
    if rule is None:
        return 0
    job = task.job
    user_id, media_id = job.user_id, job.media_id
    kind = session.scalar(select(Media.kind).where(Media.id == media_id))
    rows = session.execute(
        select(Job.media_id, Task.result)
        .join(Task, Task.job_id == Job.id)
        .join(Media, Media.id == Job.media_id)
        .join(MediaOwner, (MediaOwner.media_id == Job.media_id) & (MediaOwner.user_id == user_id))
        .where(
            Job.user_id == user_id,
            Job.media_id != media_id,
            Media.kind == kind,
            Task.name == task.name,
            Task.status == JobStatus.succeeded,
            Task.result.is_not(None),
        )
        .order_by(Task.finished_at.desc())
        .limit(MAX_CANDIDATES)
    ).all()
    found: dict[str, Likeness] = {}
    for other_id, raw in rows:
        if other_id in found or raw is None:
            continue  # an older result of a file already compared
        try:
            likeness = rule(result, spec.result.model_validate(raw))
        except ValueError as exc:  # a result stored by an older contract: not comparable
            log.warning("likeness_skipped", task=task.name, media_id=other_id, error=str(exc)[:200])
            continue
        found[other_id] = likeness
    session.execute(
        delete(MediaDuplicate).where(
            MediaDuplicate.user_id == user_id,
            MediaDuplicate.task == task.name,
            or_(MediaDuplicate.media_id == media_id, MediaDuplicate.other_id == media_id),
        )
    )
    kept = sorted(((lk.similarity, oid, lk) for oid, lk in found.items() if lk.duplicate), reverse=True)
    for _, other_id, lk in kept[:MAX_PAIRS_PER_MEDIA]:
        a, b = sorted((media_id, other_id))
        session.add(
            MediaDuplicate(
                user_id=user_id, media_id=a, other_id=b, task=task.name,
                similarity=round(lk.similarity, 4), method=lk.method, detail=lk.detail,
            )
        )  # fmt: skip
    return min(len(kept), MAX_PAIRS_PER_MEDIA)


@dataclass(frozen=True)
class DuplicatePair:
    """One kept pair, seen from ``media_id``."""

    media_id: str
    other_id: str
    similarity: float
    method: str
    detail: str
    task: str
    found_at: dt.datetime


def _owned_pairs(
    session: Session, user_id: int, media_id: str | None = None, limit: int = MAX_PAIRS_READ
) -> list[MediaDuplicate]:
    """The user's pairs whose two files the user still owns (one file's when ``media_id``)."""
    mine = select(MediaOwner.media_id).where(MediaOwner.user_id == user_id)
    where = [
        MediaDuplicate.user_id == user_id,
        MediaDuplicate.media_id.in_(mine),
        MediaDuplicate.other_id.in_(mine),
    ]
    if media_id is not None:
        where.append(or_(MediaDuplicate.media_id == media_id, MediaDuplicate.other_id == media_id))
    return list(
        session.scalars(
            select(MediaDuplicate)
            .where(*where)
            .order_by(MediaDuplicate.similarity.desc(), MediaDuplicate.media_id, MediaDuplicate.other_id)
            .limit(limit)
        )
    )


def duplicates_of(session: Session, user_id: int, media_id: str) -> list[DuplicatePair]:
    """The user's files that are near-duplicates of ``media_id``, most similar first."""
    out = []
    for row in _owned_pairs(session, user_id, media_id, limit=MAX_PAIRS_PER_MEDIA * 4):
        other = row.other_id if row.media_id == media_id else row.media_id
        out.append(
            DuplicatePair(media_id, other, row.similarity, row.method, row.detail, row.task, row.created_at)
        )
    return out


@dataclass(frozen=True)
class DuplicateGroup:
    """Files linked by duplicate pairs (a connected component): ``media_ids`` in a stable order
    (the most linked first), ``pairs`` the links among them."""

    media_ids: list[str]
    pairs: list[DuplicatePair]


def duplicate_groups(session: Session, user_id: int) -> list[DuplicateGroup]:
    """The user's near-duplicate files grouped (union-find over the kept pairs), the largest
    group first. Reads at most :data:`MAX_PAIRS_READ` pairs, the most similar first."""
    rows = _owned_pairs(session, user_id)
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for row in rows:
        ra, rb = root(row.media_id), root(row.other_id)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, list[str]] = {}
    links: dict[str, list[DuplicatePair]] = {}
    degree: dict[str, int] = {}
    for row in rows:
        degree[row.media_id] = degree.get(row.media_id, 0) + 1
        degree[row.other_id] = degree.get(row.other_id, 0) + 1
        links.setdefault(root(row.media_id), []).append(
            DuplicatePair(
                row.media_id, row.other_id, row.similarity, row.method, row.detail, row.task, row.created_at
            )
        )
    for x in list(parent):
        members.setdefault(root(x), []).append(x)
    groups = [
        DuplicateGroup(sorted(ids, key=lambda m: (-degree[m], m)), links[r]) for r, ids in members.items()
    ]
    groups.sort(key=lambda g: (-len(g.media_ids), g.media_ids[0]))
    return groups
