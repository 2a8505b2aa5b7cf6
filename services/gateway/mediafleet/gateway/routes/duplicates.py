"""``/v1/media/{id}/duplicates`` and ``/v1/duplicates``: the caller's near-duplicate files, as
the fingerprint task's rule finds them (``TaskSpec.likeness``; kept by the recorder in
:mod:`mediafleet.common.store.duplicates`). Only the caller's own files are ever compared."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from mediafleet.common.errors import NotFound
from mediafleet.common.store import Media, MediaOwner
from mediafleet.common.store.duplicates import duplicate_groups, duplicates_of
from mediafleet.gateway.deps import CurrentUser, SessionDep
from mediafleet.gateway.routes.media import public_media
from mediafleet.gateway.schemas import (
    DuplicateGroupPublic,
    DuplicateGroups,
    DuplicateHit,
    DuplicateLink,
    DuplicateList,
    MediaPublic,
)

router = APIRouter(tags=["media"])


def _owned_media(session: Session, user_id: int, ids: Iterable[str]) -> dict[str, MediaPublic]:
    """media id -> its public form, for the ids the user owns."""
    rows = session.execute(
        select(Media, MediaOwner)
        .join(MediaOwner, MediaOwner.media_id == Media.id)
        .where(MediaOwner.user_id == user_id, Media.id.in_(list(set(ids))))
    ).all()
    return {m.id: public_media(m, o, True) for m, o in rows}


@router.get("/v1/media/{media_id}/duplicates", response_model=DuplicateList)
def media_duplicates(
    media_id: str, user: CurrentUser, session: SessionDep, response: Response
) -> DuplicateList:
    """The caller's other files that are near-duplicates of this one, most similar first.

    Found when a job runs the ``fingerprint`` task: a resized, re-encoded or slightly cropped
    copy of an image; a video re-encoded at another bit rate (its sampled frames and its sound
    compared, black frames never counted); the same recording of sound. The list is empty
    until the file (and its copies) have been fingerprinted. 404 unknown media."""
    response.headers["Cache-Control"] = "no-store"
    if session.get(MediaOwner, (media_id, user.id)) is None:
        raise NotFound(f"media {media_id} not found", code="media_not_found")
    pairs = duplicates_of(session, user.id, media_id)
    media = _owned_media(session, user.id, (p.other_id for p in pairs))
    data = [
        DuplicateHit(
            media=media[p.other_id], similarity=p.similarity, method=p.method, detail=p.detail, task=p.task
        )
        for p in pairs
        if p.other_id in media
    ]
    return DuplicateList(media_id=media_id, data=data, count=len(data))


@router.get("/v1/duplicates", response_model=DuplicateGroups)
def list_duplicates(
    user: CurrentUser,
    session: SessionDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DuplicateGroups:
    """The caller's near-duplicate files in groups (files linked by duplicate pairs), the
    largest group first; each group's files with the most links first, and its links."""
    response.headers["Cache-Control"] = "no-store"
    groups = duplicate_groups(session, user.id)
    page = groups[offset : offset + limit]
    media = _owned_media(session, user.id, (m for g in page for m in g.media_ids))
    data = [
        DuplicateGroupPublic(
            media=[media[m] for m in g.media_ids if m in media],
            links=[
                DuplicateLink(
                    media_id=p.media_id,
                    other_id=p.other_id,
                    similarity=p.similarity,
                    method=p.method,
                    detail=p.detail,
                )
                for p in g.pairs
            ],
        )
        for g in page
    ]
    return DuplicateGroups(data=data, count=len(groups), limit=limit, offset=offset)
