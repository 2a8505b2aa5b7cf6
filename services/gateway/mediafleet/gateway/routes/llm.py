"""The LLM for signed-in users: llm_service's OpenAI-compatible API under ``/v1/llm``, and
``POST /v1/ask``, answers over the caller's own library with citations.

``/v1/llm/models``, ``/v1/llm/chat/completions``, ``/v1/llm/completions``,
``/v1/llm/embeddings`` are passed to llm_service (``MEDIAFLEET_LLM_URL``) as they are,
streams included, so the official ``openai`` client works with
``OpenAI(base_url="https://HOST/api/v1/llm", api_key=ACCESS_TOKEN)``.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from mediafleet.common.errors import GatewayTimeout, NotFound, ServiceUnavailable
from mediafleet.common.store.search import search_text
from mediafleet.gateway.deps import ContextDep, CurrentUser, SessionDep
from mediafleet.gateway.routes.search import filenames

router = APIRouter(tags=["llm"])

#: What the gateway passes on to llm_service (nothing else of its HTTP app is reachable).
PROXIED = {"models": "GET", "chat/completions": "POST", "completions": "POST", "embeddings": "POST"}
#: Response headers passed back.
_KEEP = ("content-type", "retry-after", "cache-control")

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

ASK_SYSTEM = (
    "Answer the question using only the numbered passages from the user's own media. "
    "Cite the passages you use as [1], [2]. If the passages do not contain the answer, say so."
)


def _llm_url(ctx: Any) -> str:
    url = ctx.settings.core.llm_url
    if not url:
        raise ServiceUnavailable(
            "no LLM service is configured (MEDIAFLEET_LLM_URL)", code="llm_not_configured"
        )
    return url.rstrip("/")


_PROXY_DOC = {200: {"description": "llm_service's OpenAI-compatible answer (JSON or text/event-stream)"}}


@router.get("/v1/llm/{path:path}", responses=_PROXY_DOC)
async def llm_get(path: str, request: Request, user: CurrentUser, ctx: ContextDep) -> Response:
    """OpenAI-compatible ``GET /v1/llm/models`` (llama.cpp in llm_service)."""
    return await llm_proxy(path, request, ctx)


@router.post("/v1/llm/{path:path}", responses=_PROXY_DOC)
async def llm_post(path: str, request: Request, user: CurrentUser, ctx: ContextDep) -> Response:
    """OpenAI-compatible ``chat/completions``, ``completions``, ``embeddings`` (llama.cpp in
    llm_service; ``"stream": true`` for Server-Sent Events). 503 ``llm_busy`` with
    ``Retry-After`` when its slots and queue are full; 503 ``llm_not_configured`` without
    ``MEDIAFLEET_LLM_URL``."""
    return await llm_proxy(path, request, ctx)


async def llm_proxy(path: str, request: Request, ctx: Any) -> Response:
    method = PROXIED.get(path)
    if method is None or method != request.method:
        raise NotFound(f"no LLM endpoint {request.method} /v1/llm/{path}", code="not_found")
    base = _llm_url(ctx)
    client = httpx.AsyncClient(timeout=httpx.Timeout(ctx.settings.core.llm_timeout_s, connect=5.0))
    body = await request.body() if method == "POST" else None
    try:
        upstream = await client.send(
            client.build_request(
                method, f"{base}/openai/v1/{path}", content=body, headers={"content-type": "application/json"}
            ),
            stream=True,
        )
    except httpx.TimeoutException as exc:
        await client.aclose()
        raise GatewayTimeout(f"the LLM service did not answer: {exc}") from exc
    except httpx.HTTPError as exc:
        await client.aclose()
        raise ServiceUnavailable(f"the LLM service is unreachable: {exc}", code="llm_unavailable") from exc

    async def close() -> None:
        await upstream.aclose()
        await client.aclose()

    headers = {k: v for k, v in upstream.headers.items() if k.lower() in _KEEP}
    headers["X-Accel-Buffering"] = "no"  # nginx passes streamed chunks on at once
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers=headers,
        background=BackgroundTask(close),
    )


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)
    passages: int = Field(default=6, ge=1, le=20, description="passages retrieved for the answer")
    max_tokens: int = Field(default=256, ge=16, le=2048)


class Citation(BaseModel):
    n: int = Field(description="the number the answer cites as [n]")
    media_id: str
    filename: str | None
    task: str
    ref: str
    text: str
    box: list[float] | None
    start: float | None
    end: float | None


class AskAnswer(BaseModel):
    question: str
    answer: str | None = Field(description="null when nothing in the library matches the question")
    citations: list[Citation] = Field(description="the passages given to the model, numbered")
    model: str | None
    usage: dict[str, int] | None = None


def keywords(question: str) -> str:
    words = [w for w in re.findall(r"\w+", question.lower()) if w not in STOPWORDS and len(w) > 1]
    return " ".join(dict.fromkeys(words))


@router.post("/v1/ask", response_model=AskAnswer)
async def ask(body: AskRequest, user: CurrentUser, ctx: ContextDep, session: SessionDep) -> AskAnswer:
    """An answer over the caller's own library: passages retrieved from OCR text, transcripts and
    summaries (full-text, any keyword of the question, ranked), numbered and given to the LLM,
    which cites them. Only the caller's media are searched. No passage: ``answer`` null and no
    LLM call."""
    base = _llm_url(ctx)
    query = keywords(body.question)
    hits = search_text(session, query, user.id, limit=body.passages, match="any") if query else []
    passages = [(hit["media_id"], m) for hit in hits for m in hit["matches"][:2]][: body.passages]
    if not passages:
        return AskAnswer(question=body.question, answer=None, citations=[], model=None)
    names = filenames(session, user.id, {media_id for media_id, _ in passages})
    citations = [
        Citation(n=i, media_id=media_id, filename=names.get(media_id), **m_fields(m))
        for i, (media_id, m) in enumerate(passages, start=1)
    ]
    context = "\n".join(
        f"[{c.n}] ({c.filename or c.media_id[:12]}, {c.task}"
        + (f", {c.start:.0f} s" if c.start is not None else "")
        + f"): {c.text}"
        for c in citations
    )
    payload = {
        "messages": [
            {"role": "system", "content": ASK_SYSTEM},
            {"role": "user", "content": f"Passages:\n{context}\n\nQuestion: {body.question}"},
        ],
        "temperature": 0.0,
        "max_tokens": body.max_tokens,
    }
    try:
        async with httpx.AsyncClient(timeout=ctx.settings.core.llm_timeout_s) as client:
            resp = await client.post(f"{base}/openai/v1/chat/completions", json=payload)
    except httpx.TimeoutException as exc:
        raise GatewayTimeout(f"the LLM service did not answer: {exc}") from exc
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"the LLM service is unreachable: {exc}", code="llm_unavailable") from exc
    if resp.status_code == 503:
        raise ServiceUnavailable(
            "the LLM is busy",
            code="llm_busy",
            details={"retry_after_s": int(resp.headers.get("retry-after", "1"))},
        )
    if resp.status_code != 200:
        raise ServiceUnavailable(f"the LLM service answered {resp.status_code}", code="llm_unavailable")
    out = resp.json()
    return AskAnswer(
        question=body.question,
        answer=(out["choices"][0]["message"]["content"] or "").strip(),
        citations=citations,
        model=out.get("model"),
        usage={k: int(v) for k, v in (out.get("usage") or {}).items() if isinstance(v, int)},
    )


def m_fields(match: dict[str, Any]) -> dict[str, Any]:
    return {k: match[k] for k in ("task", "ref", "text", "box", "start", "end")}
