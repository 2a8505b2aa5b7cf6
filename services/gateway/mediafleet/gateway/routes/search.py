"""``/v1/search``: full-text search of the caller's media by the text any capability found in them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from mediafleet.common.store import MediaOwner
from mediafleet.common.store.search import search_text
from mediafleet.gateway.deps import CurrentUser, SessionDep
from mediafleet.gateway.schemas import SearchHit, SearchResults

router = APIRouter(tags=["search"])


@router.get("/v1/search", response_model=SearchResults)
def search(
    response: Response,
    q: Annotated[str, Query(min_length=1, max_length=256)],
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SearchResults:
    """Media whose indexed text (OCR lines, transcripts ...) holds every word of ``q``.

    Case-insensitive; each hit lists its matching segments with their task and their box
    (images) or time span (audio, video).
    """
    # Jobs finishing in the background add results: cached answers stay fresh for 15 s at most.
    response.headers["Cache-Control"] = "private, max-age=15"
    hits = search_text(session, q, user_id=user.id, limit=limit)
    names = dict(
        session.execute(
            select(MediaOwner.media_id, MediaOwner.filename).where(
                MediaOwner.user_id == user.id, MediaOwner.media_id.in_([h["media_id"] for h in hits])
            )
        ).all()
    )
    data = [SearchHit(filename=names.get(h["media_id"]), **h) for h in hits]
    return SearchResults(query=q, data=data, count=len(data))
