"""OpenAI's audio endpoints on the ``transcribe`` task: ``POST /v1/audio/transcriptions`` and
``POST /v1/audio/translations`` (platform.openai.com/docs/api-reference/audio), as
:class:`~mediafleet.common.capability.SyncRoute` entries of the contract: the gateway stores
the upload as the caller's media, runs a ``transcribe`` job (queued, retried and scaled like
any other) and answers when it ends, so the official ``openai`` client works unchanged.

Differences from OpenAI's: ``model`` may be any name (the loaded Whisper model answers);
``verbose_json`` gives ``language`` as its ISO 639-1 code (OpenAI: the English name) and
``tokens`` empty; no ``stream`` (OpenAI streams only its gpt-4o models, not whisper-1).
Light, as the contract: pydantic and the contract's exports only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # the contract imports this module: no import of it at load time
    from mediafleet.whisper_transcriber.contract import TranscriptResult

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]

#: What the API reference says about both routes.
DESCRIPTION = (
    "OpenAI-compatible (the official clients work unchanged): a multipart `file` and form fields. "
    "The file is stored as your media and a `transcribe` job runs it (queued and retried like any "
    "job; `X-Mediafleet-Job-Id` names it); the answer comes when it ends, or 504 `job_still_running` "
    "after GATEWAY_SYNC_TIMEOUT_S with the job to follow. Differences from OpenAI: any `model` name "
    "is answered by the loaded Whisper model; `verbose_json` gives `language` as its ISO 639-1 code "
    "and empty `tokens`; no `stream`."
)


class TranslationForm(BaseModel):
    """The form fields of ``/v1/audio/translations`` besides ``file`` (speech to English text)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=128, description="any name: the loaded Whisper model answers")
    prompt: str | None = Field(default=None, max_length=1000, description="context text for the first window")
    response_format: ResponseFormat = "json"
    temperature: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="0: Whisper's fallback schedule (0, 0.2 ... 1.0 when a window's text loops); "
        "above 0: sampling at that temperature only",
    )


class TranscriptionForm(TranslationForm):
    """The form fields of ``/v1/audio/transcriptions`` besides ``file``."""

    language: str | None = Field(
        default=None, pattern=r"^[a-z]{2,3}$", description="ISO 639-1 code; unset: detected"
    )
    timestamp_granularities: list[Literal["word", "segment"]] = Field(
        default=["segment"],
        max_length=2,
        description="verbose_json: words (with their times) and/or segments; sent as timestamp_granularities[]",
    )
    stream: bool = Field(default=False, description="not supported: false only (400 stream_not_supported)")


def _options(form: TranslationForm, task: Literal["transcribe", "translate"]) -> dict[str, Any]:
    options: dict[str, Any] = {"task": task, "initial_prompt": form.prompt}
    if form.temperature > 0:
        options["temperature"] = [form.temperature]
    if isinstance(form, TranscriptionForm):
        if form.stream:
            from mediafleet.common.errors import BadRequest

            raise BadRequest(
                "stream is not supported for Whisper transcriptions", code="stream_not_supported"
            )
        options["language"] = form.language
        if "word" in form.timestamp_granularities:
            options["word_timestamps"] = True
    return {k: v for k, v in options.items() if v is not None}


def transcription_options(form: TranscriptionForm) -> dict[str, Any]:
    """The ``transcribe`` task's options for a transcription request. Raises BadRequest
    (``stream_not_supported``)."""
    return _options(form, "transcribe")


def translation_options(form: TranslationForm) -> dict[str, Any]:
    """The ``transcribe`` task's options for a translation request (Whisper's ``translate``)."""
    return _options(form, "translate")


def render(result: TranscriptResult, form: TranslationForm) -> tuple[str | dict[str, Any], str]:
    """The answer in ``form.response_format``: ``(body, media type)``.

    ``json``: ``{"text", "usage": {"type": "duration", "seconds"}}``; ``text``: the text;
    ``srt``/``vtt``: the subtitles; ``verbose_json``: task, language, duration (s), text,
    segments (id, seek, start, end, text, tokens, temperature, avg_logprob,
    compression_ratio, no_speech_prob) and, with the ``word`` granularity, words.
    """
    from mediafleet.whisper_transcriber.contract import to_srt, to_vtt

    usage = {"type": "duration", "seconds": math.ceil(result.duration_s)}
    fmt = form.response_format
    if fmt == "text":
        return result.text + "\n", "text/plain; charset=utf-8"
    if fmt == "srt":
        return to_srt(result), "text/plain; charset=utf-8"
    if fmt == "vtt":
        return to_vtt(result), "text/vtt; charset=utf-8"
    if fmt == "json":
        return {"text": result.text, "usage": usage}, "application/json"
    body: dict[str, Any] = {
        "task": result.task,
        "language": result.language or "",
        "duration": result.duration_s,
        "text": result.text,
        "segments": [
            {
                "id": s.id,
                "seek": 0,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": [],
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
            }
            for s in result.segments
        ],
        "usage": usage,
    }
    if isinstance(form, TranscriptionForm) and "word" in form.timestamp_granularities:
        body["words"] = [
            {"word": w.word, "start": w.start, "end": w.end} for s in result.segments for w in s.words
        ]
    return body, "application/json"
