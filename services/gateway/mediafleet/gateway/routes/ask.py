"""``POST /v1/ask``: an answer over the caller's own library, with citations.

The gateway retrieves (the full-text index, the caller's media only) and numbers the
passages; the capability answering ``answer_question`` queries writes the
answer from them, through its worker's ``high`` queue like semantic search's text
embedding. The gateway names no capability and holds no prompt.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from mediafleet.common import registry
from mediafleet.common.capability import Answer, Passage, QuestionQuery
from mediafleet.common.store.search import search_text
from mediafleet.gateway import queries
from mediafleet.gateway.crud.media import filenames
from mediafleet.gateway.deps import ContextDep, CurrentUser, SessionDep
from mediafleet.gateway.schemas import (
    AskAnswer,
    AskRequest,
    Citation,
)

router = APIRouter(tags=["search"])

#: Words a question has that say nothing about its subject (English and German).
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "say",
        "said",
        "says",
        "she",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "about",
        "which",
        "tell",
        "der",
        "die",
        "das",
        "den",
        "dem",
        "des",
        "ein",
        "eine",
        "einer",
        "eines",
        "und",
        "oder",
        "ist",
        "sind",
        "war",
        "was",
        "wer",
        "wie",
        "wo",
        "warum",
        "welche",
        "welcher",
        "mit",
        "von",
        "zu",
        "im",
        "in",
        "auf",
        "für",
        "nicht",
        "ich",
        "du",
        "er",
        "sie",
        "es",
        "wir",
        "ihr",
    ]
)


def keywords(question: str) -> str:
    words = [w for w in re.findall(r"\w+", question.lower()) if w not in STOPWORDS and len(w) > 1]
    return " ".join(dict.fromkeys(words))


def _source(c: Citation) -> str:
    where = f", {c.start:.0f} s" if c.start is not None else ""
    return f"{c.filename or c.media_id[:12]}, {c.task}{where}"[:300]


@router.post("/v1/ask", response_model=AskAnswer)
async def ask(body: AskRequest, user: CurrentUser, ctx: ContextDep, session: SessionDep) -> AskAnswer:
    """An answer over the caller's own library: passages retrieved from the source material, OCR
    text and transcripts (summaries too only with ``include_generated``; full-text, any keyword
    of the question, ranked), numbered and answered by the
    capability that answers ``answer_question`` queries, citing them. Only the caller's media
    are searched. No passage: ``answer`` null and no model call. 503 when no such capability
    or worker runs; 504 after ``MEDIAFLEET_LLM_TIMEOUT_S``."""
    cap, spec = registry.find_query("answer_question")
    query = keywords(body.question)
    generated = () if body.include_generated else [n for n, (_, t) in registry.tasks().items() if t.generated]
    hits = (
        search_text(session, query, user.id, limit=body.passages, match="any", exclude_tasks=generated)
        if query
        else []
    )
    found = [(hit["media_id"], m) for hit in hits for m in hit["matches"][:2]][: body.passages]
    if not found:
        return AskAnswer(question=body.question, answer=None, citations=[], model=None)
    names = filenames(session, user_id=user.id, media_ids={media_id for media_id, _ in found})
    citations = [
        Citation(n=i, media_id=media_id, filename=names.get(media_id), **_match_fields(m))
        for i, (media_id, m) in enumerate(found, start=1)
    ]
    payload = QuestionQuery(
        question=body.question,
        passages=[Passage(n=c.n, source=_source(c), text=c.text[:4000]) for c in citations],
        max_tokens=body.max_tokens,
    )
    endpoint = ctx.endpoints.get(
        cap.name
    )  # a capability with a service: its time-out (MEDIAFLEET_LLM_TIMEOUT_S)
    timeout_s = endpoint.timeout_s if endpoint else ctx.settings.core.query_timeout_s
    raw = await run_in_threadpool(queries.ask, ctx.redis, cap, spec, payload, timeout_s)
    answer = Answer.model_validate(raw.model_dump())  # the answer_question contract's output
    return AskAnswer(
        question=body.question,
        answer=answer.answer,
        citations=citations,
        model=answer.model,
        usage=answer.usage,
    )


def _match_fields(match: dict[str, Any]) -> dict[str, Any]:
    return {k: match[k] for k in ("task", "ref", "text", "box", "start", "end")}
