"""``/v1/search`` (full text, or semantic through a capability's text embedding) and
``/v1/media/{id}/similar`` (media -> media by their stored embeddings)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from mediafleet.common import registry
from mediafleet.common.capability import MEDIA_REF, TextQuery, VectorItem
from mediafleet.common.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from mediafleet.common.store import MediaOwner
from mediafleet.common.store.embeddings import embedding_tasks, media_embedding
from mediafleet.common.store.search import search_text
from mediafleet.common.vectors import VectorDbClient
from mediafleet.gateway import queries
from mediafleet.gateway.crud.media import filenames
from mediafleet.gateway.deps import ContextDep, CurrentUser, SessionDep
from mediafleet.gateway.schemas import SearchHit, SearchResults, SimilarHit, SimilarResults

router = APIRouter(tags=["search"])


@router.get("/v1/search", response_model=SearchResults | SimilarResults)
def search(
    response: Response,
    q: Annotated[str, Query(min_length=1, max_length=256)],
    user: CurrentUser,
    session: SessionDep,
    ctx: ContextDep,
    mode: Annotated[Literal["text", "semantic"], Query()] = "text",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SearchResults | SimilarResults:
    """Search the caller's media.

    - ``mode=text`` (default): media whose indexed text (OCR lines, transcripts ...) holds
      every word of ``q``, case-insensitive; each hit lists its matching segments with their
      task and their box (images) or time span (audio, video).
    - ``mode=semantic``: ``q`` embedded by the installed capability whose contract answers
      ``semantic_search`` queries, compared with the stored media embeddings of the same
      model; hits best first with their cosine similarity in [-1, 1]. 503 when
      no worker of that capability or no vector_db is running, 504 when the worker does not answer in
      ``MEDIAFLEET_QUERY_TIMEOUT_S``.
    """
    # Jobs finishing in the background add results: cached answers stay fresh for 15 s at most.
    response.headers["Cache-Control"] = "private, max-age=15"
    if mode == "semantic":
        vectors = require_vector_db(ctx.vectors)
        cap, spec = registry.find_query("semantic_search")
        query = queries.ask(ctx.redis, cap, spec, TextQuery(text=q), ctx.settings.core.query_timeout_s)
        if not isinstance(query, VectorItem):  # the contract's output type; never in a working fleet
            raise ServiceUnavailable(
                f"{cap.name} answered semantic_search without a vector", code="query_failed"
            )
        data = _media_hits(session, vectors, user.id, query, limit, exclude=None)
        return SimilarResults(query=q, collection=query.collection, data=data, count=len(data))
    hits = search_text(session, q, user_id=user.id, limit=limit)
    names = filenames(session, user_id=user.id, media_ids=[h["media_id"] for h in hits])
    text_hits = [SearchHit(filename=names.get(h["media_id"]), **h) for h in hits]
    return SearchResults(query=q, data=text_hits, count=len(text_hits))


@router.get("/v1/media/{media_id}/similar", response_model=SimilarResults)
def similar(
    media_id: str,
    user: CurrentUser,
    session: SessionDep,
    ctx: ContextDep,
    task: Annotated[str | None, Query(description="whose embedding to compare (default: the latest)")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SimilarResults:
    """The caller's other media nearest to this one by a whole-media embedding, best first.

    Uses the embedding of the latest succeeded task of the caller's jobs on this media
    whose result holds one (``task`` narrows it). 404 unknown media; 409 when no job of
    the caller embedded it yet (the message names the tasks that do); 503 without vector_db.
    """
    if session.get(MediaOwner, (media_id, user.id)) is None:
        raise NotFound(f"media {media_id} not found", code="media_not_found")
    vectors = require_vector_db(ctx.vectors)
    embedders = embedding_tasks()
    if task is not None and task not in embedders:
        raise BadRequest(f"task {task!r} stores no embeddings; these do: {embedders}", code="unknown_task")
    item = media_embedding(session, user_id=user.id, media_id=media_id, tasks=[task] if task else embedders)
    if item is None:
        raise Conflict(
            f"media {media_id} has no embedding yet: run a job with one of {embedders} on it",
            code="no_embedding",
        )
    data = _media_hits(session, vectors, user.id, item, limit, exclude=media_id)
    return SimilarResults(query=media_id, collection=item.collection, data=data, count=len(data))


def require_vector_db(client: VectorDbClient | None) -> VectorDbClient:
    if client is None:
        raise ServiceUnavailable(
            "vector search is not configured: set MEDIAFLEET_VECTOR_DB_URL", code="vector_db_unavailable"
        )
    return client


def _media_hits(
    session: Session,
    vectors: VectorDbClient,
    user_id: int,
    query: VectorItem,
    limit: int,
    exclude: str | None,
) -> list[SimilarHit]:
    found = vectors.search(query.collection, str(user_id), query.vector, limit + 1, {"ref": MEDIA_REF})
    found = [h for h in found if h["payload"].get("media_id") != exclude][:limit]
    names = filenames(session, user_id=user_id, media_ids=[h["payload"]["media_id"] for h in found])
    return [
        SimilarHit(
            media_id=h["payload"]["media_id"],
            filename=names[h["payload"]["media_id"]],
            similarity=round(float(h["score"]), 6),
            task=h["payload"].get("task", ""),
        )
        for h in found
        if h["payload"]["media_id"] in names  # the caller still owns it
    ]
