"""The OpenAI-compatible HTTP API of llm_service, under ``/openai/v1`` (the gateway exposes it
to signed-in users as ``/v1/llm/...``; the official ``openai`` client works against it).

Requests are validated with llama-cpp-python's own server types
(``llama_cpp.server.types``: ``CreateChatCompletionRequest``, ``CreateCompletionRequest``,
``CreateEmbeddingRequest``) and answered by ``Llama``'s OpenAI-shaped methods, as
llama-cpp-python's server does; streams are Server-Sent Events of chunks ending with
``data: [DONE]`` (OpenAI's format).

Concurrency: ``LLM_SLOTS`` requests decode at once; up to ``LLM_MAX_QUEUE`` more wait at
most ``LLM_QUEUE_TIMEOUT_S``; beyond that, 503 ``llm_busy`` with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from llama_cpp.server.types import (  # route annotations must be module globals (postponed annotations)
    CreateChatCompletionRequest,
    CreateCompletionRequest,
    CreateEmbeddingRequest,
)
from starlette.concurrency import run_in_threadpool

from mediafleet.common.errors import BadRequest, ServiceUnavailable

#: Fields of the request types llama-cpp-python's server drops before calling Llama.
_EXCLUDE = {"n", "best_of", "logit_bias_type", "user", "min_tokens"}
_END = object()


class Busy(ServiceUnavailable):
    """Every slot is taken and the wait queue is full, or the wait timed out (503 + Retry-After)."""

    code = "llm_busy"


class SlotGate:
    """``slots`` requests at once, ``max_queue`` waiting at most ``timeout_s`` each."""

    def __init__(self, slots: int, max_queue: int, timeout_s: float):
        self.slots, self.max_queue, self.timeout_s = slots, max_queue, timeout_s
        self.running = 0
        self.waiting = 0
        self._sem: asyncio.Semaphore | None = None

    def retry_after(self) -> int:
        return max(1, math.ceil(self.timeout_s / 2))

    async def acquire(self) -> None:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.slots)
        if self._sem.locked() and self.waiting >= self.max_queue:
            raise Busy(
                f"all {self.slots} LLM slot(s) busy and {self.waiting} request(s) waiting",
                details={"retry_after_s": self.retry_after()},
            )
        self.waiting += 1
        try:
            await asyncio.wait_for(self._sem.acquire(), self.timeout_s)
        except TimeoutError as exc:
            raise Busy(
                f"no LLM slot free within {self.timeout_s:g} s", details={"retry_after_s": self.retry_after()}
            ) from exc
        finally:
            self.waiting -= 1
        self.running += 1

    def release(self) -> None:
        self.running -= 1
        assert self._sem is not None
        self._sem.release()


def _sse(chunks: Iterator[dict[str, Any]], gate: SlotGate) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        try:
            while True:
                chunk = await run_in_threadpool(next, chunks, _END)
                if chunk is _END:
                    break
                yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()
            yield b"data: [DONE]\n\n"
        finally:
            await run_in_threadpool(getattr(chunks, "close", lambda: None))
            gate.release()

    return gen()


def build_router(runner: Any) -> APIRouter:
    """Routes over ``runner.engine`` (a loaded :class:`LlamaEngine`) and ``runner.gate``."""
    router = APIRouter(prefix="/openai/v1", tags=["openai"])
    engine, gate, settings = runner.engine, runner.gate, runner.settings

    def kwargs_of(body: Any) -> dict[str, Any]:
        kwargs = body.model_dump(exclude=_EXCLUDE | {"stream", "model"}, exclude_none=True)
        kwargs.setdefault("seed", settings.seed)
        return kwargs

    async def answer(kind: str, body: Any) -> Any:
        await gate.acquire()
        if getattr(body, "stream", False):
            chunks = engine.stream(kind, **kwargs_of(body))
            return StreamingResponse(_sse(chunks, gate), media_type="text/event-stream")
        try:
            fn = engine.chat if kind == "chat" else engine.complete
            result = await run_in_threadpool(lambda: fn(**kwargs_of(body)))
        except ValueError as exc:  # llama.cpp refuses the request (prompt longer than the context ...)
            raise BadRequest(str(exc), code="invalid_request") from exc
        finally:
            if not getattr(body, "stream", False):
                gate.release()
        return {**result, "model": settings.model_alias}

    @router.get("/models")
    def list_models() -> dict[str, Any]:
        """OpenAI's model list: the one loaded model, under ``LLM_MODEL_ALIAS``."""
        return {
            "object": "list",
            "data": [
                {
                    "id": settings.model_alias,
                    "object": "model",
                    "owned_by": "mediafleet",
                    "created": 0,
                    "catalogue_model": engine.model,
                    "model_version": engine.model_version,
                    "context_tokens": engine.context_tokens,
                    "chat_template": engine.has_chat_template,
                }
            ],
        }

    @router.post("/chat/completions")
    async def chat_completions(body: CreateChatCompletionRequest) -> Any:
        """OpenAI's chat completion (``stream: true`` for Server-Sent Events)."""
        return await answer("chat", body)

    @router.post("/completions")
    async def completions(body: CreateCompletionRequest) -> Any:
        """OpenAI's (legacy) text completion (``stream: true`` for Server-Sent Events)."""
        return await answer("completion", body)

    @router.post("/embeddings")
    async def embeddings(body: CreateEmbeddingRequest) -> Any:
        """OpenAI's embeddings (mean-pooled by llama.cpp; not normalised)."""
        await gate.acquire()
        try:
            result = await run_in_threadpool(lambda: engine.embed(input=body.input))
        finally:
            gate.release()
        return {**result, "model": settings.model_alias}

    return router
