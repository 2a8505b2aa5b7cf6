"""The OpenAI-compatible HTTP API of llm_service, under ``/openai/v1`` (the gateway exposes it
to signed-in users as ``/v1/llm/...``; the official ``openai`` client works against it).

Requests are validated with llama-cpp-python's own server types
(``llama_cpp.server.types``: ``CreateChatCompletionRequest``, ``CreateCompletionRequest``,
``CreateEmbeddingRequest``) and answered by ``Llama``'s OpenAI-shaped methods, as
llama-cpp-python's server does; streams are Server-Sent Events of chunks ending with
``data: [DONE]`` (OpenAI's format). Where OpenAI's API is stricter than those types, so is
this one: ``messages`` is required and non-empty (400 without); ``encoding_format``
``base64`` returns each embedding as the base64 of its little-endian float32 bytes, as
OpenAI does (its clients ask for it by default); ``stream_options.include_usage`` adds the
final usage chunk (``choices: []``) OpenAI sends; ``logprobs``/``top_logprobs`` are refused
(400 ``logprobs_not_supported``: llama.cpp returns them only from a context that keeps every
token's logits). Errors take OpenAI's shape (``HttpApi.error_style``).

Concurrency: ``LLM_SLOTS`` requests decode at once; up to ``LLM_MAX_QUEUE`` more wait at
most ``LLM_QUEUE_TIMEOUT_S``; beyond that, 503 ``llm_busy`` with ``Retry-After``. Every
generation runs in a thread of its own and stops within one token when its client goes away
(a stream closed, a connection dropped, the gateway's time-out): the slot is given back when
that thread ends, whatever way the request ended. ``max_tokens`` defaults to
``LLM_DEFAULT_MAX_TOKENS`` and may not exceed ``LLM_MAX_TOKENS``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal

import llama_cpp
import numpy as np
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from llama_cpp.server.types import (  # route annotations must be module globals (postponed annotations)
    CreateChatCompletionRequest,
    CreateCompletionRequest,
    CreateEmbeddingRequest,
)
from prometheus_client import Gauge
from pydantic import Field

from mediafleet.common.errors import BadRequest, NotFound, ServiceUnavailable

if TYPE_CHECKING:
    from mediafleet.llm_service.runner import LlmRunner

log = structlog.get_logger("mediafleet.llm_service")

#: Fields of the request types llama-cpp-python's server drops before calling Llama.
_EXCLUDE = {"n", "best_of", "logit_bias_type", "user", "min_tokens"}
_END = object()


class ChatCompletionRequest(CreateChatCompletionRequest):
    """llama-cpp-python's chat request with ``messages`` required and non-empty, as OpenAI's
    API has it (llama-cpp-python defaults it to an empty list and answers 200)."""

    messages: list[llama_cpp.ChatCompletionRequestMessage] = Field(
        min_length=1, description="the conversation so far, at least one message"
    )


class EmbeddingRequest(CreateEmbeddingRequest):
    """llama-cpp-python's embedding request plus OpenAI's ``encoding_format``."""

    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="base64: the little-endian float32 bytes of each vector, base64-encoded"
    )


def as_base64(vector: list[float]) -> str:
    """OpenAI's ``encoding_format: base64``: the vector as little-endian float32 bytes, base64."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


SLOTS_BUSY = Gauge("mediafleet_llm_slots_busy", "LLM slots decoding a request now")
SLOTS_WAITING = Gauge("mediafleet_llm_requests_waiting", "LLM requests waiting for a slot")
SLOTS_TOTAL = Gauge("mediafleet_llm_slots", "LLM slots (LLM_SLOTS)")


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
        SLOTS_TOTAL.set(slots)

    def retry_after(self) -> int:
        return max(1, math.ceil(self.timeout_s / 2))

    def state(self) -> dict[str, int]:
        """``{"slots", "busy", "waiting"}``: what ``/readyz`` and the metrics report."""
        return {"slots": self.slots, "busy": self.running, "waiting": self.waiting}

    async def acquire(self) -> None:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.slots)
        if self._sem.locked() and self.waiting >= self.max_queue:
            raise Busy(
                f"all {self.slots} LLM slot(s) busy and {self.waiting} request(s) waiting",
                details={"retry_after_s": self.retry_after()},
            )
        self.waiting += 1
        SLOTS_WAITING.set(self.waiting)
        try:
            await asyncio.wait_for(self._sem.acquire(), self.timeout_s)
        except TimeoutError as exc:
            raise Busy(
                f"no LLM slot free within {self.timeout_s:g} s", details={"retry_after_s": self.retry_after()}
            ) from exc
        finally:
            self.waiting -= 1
            SLOTS_WAITING.set(self.waiting)
        self.running += 1
        SLOTS_BUSY.set(self.running)

    def release(self) -> None:
        """Give a slot back (on the event loop's thread)."""
        self.running -= 1
        SLOTS_BUSY.set(self.running)
        if self._sem is not None:
            self._sem.release()


class Generation:
    """One generation holding one slot: its work runs in a thread of its own; :meth:`stop` makes
    it end within one token; the slot is released when the thread ends, never before (two
    generations never share the model) and always (any error, any way the client left)."""

    def __init__(self, gate: SlotGate, work: Callable[[threading.Event], Any]):
        self.stop = threading.Event()
        self.loop = asyncio.get_running_loop()
        self.future: Future[Any] = Future()
        self.gate = gate

        def run() -> None:
            try:
                self.future.set_result(work(self.stop))
            except BaseException as exc:  # handed to the awaiting side
                self.future.set_exception(exc)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown): nothing to free
                    self.loop.call_soon_threadsafe(gate.release)

        threading.Thread(target=run, name="llm-generation", daemon=True).start()

    async def result(self, request: Request | None = None) -> Any:
        """The work's result; stops it when the request is cancelled or its client disconnects."""
        wrapped = asyncio.wrap_future(self.future)
        try:
            while True:
                done, _ = await asyncio.wait({wrapped}, timeout=0.25)
                if done:
                    return wrapped.result()
                if request is not None and await request.is_disconnected():
                    self.stop.set()
                    log.info("llm_client_gone", note="generation stopped")
                    raise ClientGone
        except BaseException:
            self.stop.set()
            raise


class ClientGone(Exception):
    """The client disconnected before the answer: nobody reads a response any more."""


def _sse(gen: Generation, chunks: asyncio.Queue[Any]) -> AsyncIterator[bytes]:
    async def stream() -> AsyncIterator[bytes]:
        try:
            while True:
                chunk = await chunks.get()
                if chunk is _END:
                    break
                if isinstance(chunk, BaseException):  # headers are sent: say it in the stream
                    err = {"error": {"message": str(chunk) or "generation failed", "type": "server_error"}}
                    yield f"data: {json.dumps(err)}\n\n".encode()
                    break
                yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()
            yield b"data: [DONE]\n\n"
        finally:  # the stream ended, the client left (cancelled here) or the body was dropped
            gen.stop.set()

    return stream()


def build_router(runner: LlmRunner) -> APIRouter:
    """Routes over ``runner.engine`` (a loaded :class:`LlamaEngine`) and ``runner.gate``."""
    router = APIRouter(prefix="/openai/v1", tags=["openai"])
    engine, gate, settings = runner.engine, runner.gate, runner.settings

    def check_model(name: str | None) -> None:
        """A request naming a model other than ``LLM_MODEL_ALIAS``: 404 ``model_not_found``
        (OpenAI's answer), unless ``LLM_ACCEPT_ANY_MODEL`` (clients that hard-code a name)."""
        if name and name != settings.model_alias and not settings.accept_any_model:
            raise NotFound(
                f"the model {name!r} is not served here; GET /v1/llm/models lists {settings.model_alias!r}",
                code="model_not_found",
            )

    def kwargs_of(
        body: CreateChatCompletionRequest | CreateCompletionRequest, raw: dict[str, Any]
    ) -> dict[str, Any]:
        check_model(body.model)
        if (body.n or 1) != 1:
            raise BadRequest(
                f"n={body.n}: this service returns one choice per request; send {body.n} requests",
                code="n_not_supported",
            )
        if isinstance(body, CreateChatCompletionRequest):
            wants_logprobs = bool(body.logprobs) or body.top_logprobs is not None
        else:
            wants_logprobs = body.logprobs is not None
        if wants_logprobs:
            raise BadRequest(
                "this service does not return log-probabilities (llama.cpp would have to keep every "
                "token's logits, n_ctx x vocabulary floats per slot); leave logprobs out",
                code="logprobs_not_supported",
                details={"param": "logprobs"},
            )
        options = raw.get("stream_options")
        if options is not None and (not body.stream or not isinstance(options, dict)):
            raise BadRequest(
                "stream_options is an object, allowed only with stream: true",
                code="invalid_request",
                details={"param": "stream_options"},
            )
        kwargs: dict[str, Any] = body.model_dump(exclude=_EXCLUDE | {"stream", "model"}, exclude_none=True)
        kwargs.setdefault("seed", settings.seed)
        asked = body.max_tokens if "max_tokens" in body.model_fields_set else None
        if isinstance(raw.get("max_completion_tokens"), int):  # OpenAI's current name wins
            asked = raw["max_completion_tokens"]
            kwargs["max_tokens"] = asked
        elif raw.get("max_completion_tokens") is not None:
            raise BadRequest("max_completion_tokens must be an integer", code="invalid_request")
        if asked is None:
            kwargs["max_tokens"] = settings.default_max_tokens
        elif asked > settings.max_tokens:
            raise BadRequest(
                f"max_tokens {asked} is above this service's limit of {settings.max_tokens} (LLM_MAX_TOKENS)",
                code="max_tokens_too_large",
                details={"max_tokens": settings.max_tokens},
            )
        return kwargs

    async def answer(
        kind: str, body: CreateChatCompletionRequest | CreateCompletionRequest, request: Request
    ) -> Any:
        raw = await request.json()  # FastAPI read it already (cached): fields llama's types lack
        kwargs = kwargs_of(body, raw if isinstance(raw, dict) else {})  # a refused request never takes a slot
        await gate.acquire()
        if body.stream:
            loop = asyncio.get_running_loop()
            chunks: asyncio.Queue[Any] = asyncio.Queue()
            # OpenAI's stream_options.include_usage: every chunk has "usage": null, and one more
            # chunk, with no choices, carries the request's usage before [DONE]
            usage: dict[str, int] | None = (
                {} if (raw.get("stream_options") or {}).get("include_usage") else None
            )
            seen: dict[str, Any] = {}

            def emit(item: Any) -> None:
                loop.call_soon_threadsafe(chunks.put_nowait, item)

            def chunk(c: dict[str, Any]) -> None:
                seen.update(id=c.get("id"), object=c.get("object"), created=c.get("created"))
                emit({**c, "model": settings.model_alias} | ({"usage": None} if usage is not None else {}))

            def work(stop: threading.Event) -> None:
                try:
                    engine.generate(kind, stop, emit=chunk, usage=usage, **kwargs)
                    if usage is not None and not stop.is_set():
                        total = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
                        emit(
                            {
                                **seen,
                                "model": settings.model_alias,
                                "choices": [],
                                "usage": usage | {"total_tokens": total},
                            }
                        )
                except Exception as exc:
                    emit(exc)
                finally:
                    emit(_END)

            gen = Generation(gate, work)
            return StreamingResponse(_sse(gen, chunks), media_type="text/event-stream")
        gen = Generation(gate, lambda stop: engine.generate(kind, stop, **kwargs))
        try:
            result = await gen.result(request)
        except ValueError as exc:  # llama.cpp refuses the request (prompt longer than the context ...)
            raise BadRequest(str(exc), code="invalid_request") from exc
        except ClientGone:
            return StreamingResponse(iter(()), status_code=499)  # nobody reads it
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

    @router.get("/models/{model_id}")
    def get_model(model_id: str) -> dict[str, Any]:
        """OpenAI's model object of ``model_id``; 404 ``model_not_found`` for any other name."""
        if model_id != settings.model_alias:
            raise NotFound(
                f"the model {model_id!r} is not served here; GET /v1/llm/models lists {settings.model_alias!r}",
                code="model_not_found",
            )
        data: dict[str, Any] = list_models()["data"][0]
        return data

    @router.post("/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        """OpenAI's chat completion (``stream: true`` for Server-Sent Events)."""
        return await answer("chat", body, request)

    @router.post("/completions")
    async def completions(body: CreateCompletionRequest, request: Request) -> Any:
        """OpenAI's (legacy) text completion (``stream: true`` for Server-Sent Events)."""
        return await answer("completion", body, request)

    @router.post("/embeddings")
    async def embeddings(body: EmbeddingRequest, request: Request) -> Any:
        """OpenAI's embeddings (mean-pooled by llama.cpp; not normalised); ``encoding_format``
        ``float`` (default) or ``base64``."""
        check_model(body.model)
        await gate.acquire()
        gen = Generation(gate, lambda stop: engine.embed(input=body.input))
        try:
            result = await gen.result(request)
        except ClientGone:
            return StreamingResponse(iter(()), status_code=499)
        if body.encoding_format == "base64":
            result = {
                **result,
                "data": [{**d, "embedding": as_base64(d["embedding"])} for d in result["data"]],
            }
        return {**result, "model": settings.model_alias}

    return router
