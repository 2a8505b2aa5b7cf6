"""The shapes of llm_service's OpenAI-compatible API as the gateway documents them (OpenAPI),
after OpenAI's API reference (platform.openai.com/docs/api-reference: chat, completions,
embeddings, models), limited to what this service serves.

The service validates requests with llama-cpp-python's own types (``openai_api``); these models
describe them for clients and are checked against that code: ``test_llm_real.py`` validates the
service's real answers with the response models (extra fields forbidden, so an answer that
grows a field fails the test), and every request field here is one the service reads. Light:
pydantic only (the contract imports it; no llama_cpp).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FinishReason = Literal["stop", "length", "tool_calls", "function_call"] | None


class _Request(BaseModel):
    # llama-cpp-python's request types take more sampling fields (top_k, min_p, repeat_penalty ...)
    model_config = ConfigDict(extra="allow")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(BaseModel):
    include_usage: bool = Field(
        default=False, description="one more chunk before [DONE], with no choices and the usage"
    )


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = Field(default=None, description="text, or content parts")
    name: str | None = None


class ChatCompletionRequest(_Request):
    """``POST /v1/llm/chat/completions``."""

    model: str | None = Field(default=None, description="LLM_MODEL_ALIAS (mediafleet-llm); another: 404")
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, description="at most LLM_MAX_TOKENS")
    max_tokens: int | None = Field(default=None, ge=1, description="older name of max_completion_tokens")
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, description="default LLM_SEED: the same request, the same answer")
    stream: bool = Field(default=False, description="text/event-stream of ChatCompletionChunk, then [DONE]")
    stream_options: StreamOptions | None = Field(default=None, description="only with stream: true")
    response_format: dict[str, Any] | None = Field(default=None, description="json_object or json_schema")
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    n: int | None = Field(default=None, description="1 only (400 n_not_supported)")
    logprobs: bool | None = Field(default=None, description="true: 400 logprobs_not_supported")
    top_logprobs: int | None = Field(default=None, description="400 logprobs_not_supported")


class Usage(_Answer):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(ge=0)


class AssistantMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["assistant"]
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChoice(_Answer):
    index: int
    message: AssistantMessage
    logprobs: None = None
    finish_reason: FinishReason


class ChatCompletion(_Answer):
    id: str
    object: Literal["chat.completion"]
    created: int = Field(description="unix seconds")
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChunkChoice(_Answer):
    index: int
    delta: ChatDelta
    logprobs: None = None
    finish_reason: FinishReason


class ChatCompletionChunk(_Answer):
    """One ``data:`` event of a streamed chat; with ``stream_options.include_usage`` every
    chunk has ``usage: null`` and the last, with ``choices: []``, the usage."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class CompletionRequest(_Request):
    """``POST /v1/llm/completions`` (OpenAI's legacy text completion)."""

    model: str | None = None
    prompt: str | list[str] = Field(description="the text to continue")
    max_tokens: int | None = Field(default=None, ge=1, description="default LLM_DEFAULT_MAX_TOKENS")
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    echo: bool | None = None
    suffix: str | None = None
    n: int | None = Field(default=None, description="1 only (400 n_not_supported)")
    logprobs: int | None = Field(default=None, description="any value: 400 logprobs_not_supported")


class CompletionChoice(_Answer):
    index: int
    text: str
    logprobs: None = None
    finish_reason: FinishReason


class Completion(_Answer):
    """A text completion, and each ``data:`` event of a streamed one (``usage`` then absent,
    except in the last event of ``stream_options.include_usage``)."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class EmbeddingRequest(_Request):
    """``POST /v1/llm/embeddings``."""

    model: str | None = None
    input: str | list[str] | list[int] | list[list[int]] = Field(description="text(s), or token ids")
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="base64: each vector's little-endian float32 bytes"
    )


class Embedding(_Answer):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 (encoding_format)")


class EmbeddingList(_Answer):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: Usage


class ModelObject(_Answer):
    id: str = Field(description="LLM_MODEL_ALIAS")
    object: Literal["model"]
    created: int
    owned_by: str
    catalogue_model: str = Field(description="the catalogue entry loaded (mediafleet)")
    model_version: str
    context_tokens: int = Field(description="the context window, tokens")
    chat_template: bool = Field(description="whether the GGUF carries a chat template")


class ModelList(_Answer):
    object: Literal["list"]
    data: list[ModelObject]
