"""Contract of the whisper_transcriber capability (light: pydantic and mediafleet.common only).

One task, ``transcribe``: speech of audio or of a video's audio track to text with
faster-whisper (CTranslate2). Times are seconds from media start; languages ISO 639-1.
Exports: ``txt``, ``srt`` (SubRip), ``vtt`` (WebVTT), ``json``.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from mediafleet.common.capability import Capability, ExportFormat, SyncRoute, TaskSpec, TextSegment
from mediafleet.whisper_transcriber import openai_audio

#: Whisper's own task names: ``translate`` gives English text whatever the spoken language.
WhisperTask = Literal["transcribe", "translate"]
#: A sampling temperature (0: beam search / greedy).
Temperature = Annotated[float, Field(ge=0, le=2)]


class TranscribeOptions(BaseModel):
    """Options of ``transcribe``; ``None`` takes the service's default (``WHISPER_*`` settings)."""

    model_config = ConfigDict(extra="forbid")

    task: WhisperTask | None = Field(default=None, description="transcribe (default) or translate to English")
    language: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2,3}$",
        description="ISO 639-1 code of the spoken language; unset: detected per window of speech",
    )
    language_detection: Literal["window", "first"] | None = Field(
        default=None,
        description="unset language: detect it in every window of speech (code-switching; default) "
        "or once on the first window",
    )
    beam_size: int | None = Field(default=None, ge=1, le=10)
    temperature: list[Temperature] | None = Field(
        default=None,
        min_length=1,
        max_length=10,
        description="decoding temperatures tried in turn: a window whose text compresses too well "
        "(a loop: compression ratio > WHISPER_COMPRESSION_RATIO_THRESHOLD, 2.4) or whose average "
        "log-probability is below -1 is decoded again at the next one (Whisper's fallback; default "
        "[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]); [0.0]: greedy/beam search only",
    )
    vad_filter: bool | None = Field(
        default=None, description="drop non-speech (Silero VAD) before decoding; default true"
    )
    word_timestamps: bool | None = Field(default=None, description="words with start/end and probability")
    initial_prompt: str | None = Field(
        default=None, max_length=1000, description="context text for the first window"
    )
    hotwords: str | None = Field(default=None, max_length=500, description="words to favour (names, jargon)")
    channels: Literal["auto", "mix", "split"] | None = Field(
        default=None,
        description="auto (default): each channel on its own when they carry different speech (a "
        "call recorded one side per channel), else mixed; mix: averaged to mono; split: each channel",
    )


class Word(BaseModel):
    start: float = Field(ge=0, description="seconds from media start")
    end: float = Field(ge=0)
    word: str
    probability: float = Field(ge=0, le=1)


class Segment(BaseModel):
    """One decoded segment (Whisper's unit: a phrase, usually under 30 s)."""

    id: int
    start: float = Field(ge=0, description="seconds from media start")
    end: float = Field(ge=0)
    text: str
    language: str = Field(description="ISO 639-1 of the window this segment was decoded in")
    language_probability: float | None = Field(
        default=None, ge=0, le=1, description="None when the caller set it"
    )
    channel: int | None = Field(default=None, description="0-based channel with channels=split, else None")
    avg_logprob: float
    no_speech_prob: float = Field(ge=0, le=1)
    compression_ratio: float = Field(description="gzip ratio of the text: above 2.4 suggests a loop")
    temperature: float = Field(default=0.0, ge=0, description="the fallback temperature that decoded it")
    words: list[Word] = Field(default_factory=list)


class LanguageShare(BaseModel):
    language: str
    speech_s: float = Field(ge=0, description="seconds of the segments decoded in this language")


class TranscriptResult(BaseModel):
    """Result of ``transcribe``.

    ``language`` is the language with the most speech (``languages`` lists each with its
    seconds); ``language_probability`` is the detector's probability for it in the first
    window where it won (None when the caller named the language). ``rtf`` = processing
    seconds / audio seconds. An audio track without speech gives no segments and
    ``language`` None (not an error).
    """

    engine: str
    model: str
    model_version: str
    compute_type: str
    device: str
    task: WhisperTask
    language: str | None
    language_probability: float | None
    languages: list[LanguageShare]
    duration_s: float = Field(ge=0, description="decoded audio, seconds")
    speech_s: float = Field(ge=0, description="seconds the VAD kept (duration_s without VAD)")
    channels: Literal["mix", "split"] = Field(description="how the channels were transcribed")
    channels_note: str = Field(default="", description="why, when the option was auto")
    segments: list[Segment]
    text: str
    elapsed_ms: float
    rtf: float = Field(description="real-time factor: processing time / audio duration")


def _clock(seconds: float, sep: str) -> str:
    ms = max(int(round(seconds * 1000)), 0)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cue_text(seg: Segment) -> str:
    text = " ".join(seg.text.split())
    return f"[{seg.channel}] {text}" if seg.channel is not None else text


def to_srt(result: TranscriptResult) -> str:
    """SubRip: numbered cues ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` (the format's de-facto spec,
    as the ``srt`` library parses it), cut for reading (:mod:`.subtitles`: at most 2 lines of
    42 characters, 7 s); channel-split cues start with ``[channel]``."""
    from mediafleet.whisper_transcriber.subtitles import cues

    return "\n".join(
        f"{i}\n{_clock(c.start, ',')} --> {_clock(c.end, ',')}\n{c.text}\n"
        for i, c in enumerate(cues(result), start=1)
    )


def to_vtt(result: TranscriptResult) -> str:
    """WebVTT (W3C WebVTT: ``WEBVTT`` header, ``HH:MM:SS.mmm`` cue times), cut for reading as
    :func:`to_srt`; each cue's text is a cue language span ``<lang xx>...</lang>`` of its
    segment's language (ISO 639-1, a BCP 47 tag); ``&``, ``<`` and ``-->`` in text are escaped."""
    from mediafleet.whisper_transcriber.subtitles import cues

    def escaped(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace("-->", "--&gt;")

    body = "\n".join(
        f"{_clock(c.start, '.')} --> {_clock(c.end, '.')}\n<lang {c.language}>{escaped(c.text)}</lang>\n"
        for c in cues(result)
    )
    return "WEBVTT\n\n" + body


def to_txt(result: TranscriptResult) -> str:
    return "\n".join(_cue_text(s) for s in result.segments if s.text.strip()) + "\n"


def to_json(result: TranscriptResult) -> str:
    return json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2)


def segments(result: TranscriptResult) -> list[TextSegment]:
    return [
        TextSegment(text=s.text.strip(), ref=f"segments[{i}]", start=s.start, end=s.end)
        for i, s in enumerate(result.segments)
        if s.text.strip()
    ]


def summary(r: TranscriptResult) -> str:
    if not r.segments:
        return f"no speech in {r.duration_s:.1f} s"
    langs = ", ".join(f"{x.language} {x.speech_s:.0f} s" for x in r.languages)
    text = " ".join(r.text.split())
    return (
        f"{len(r.segments)} segments ({langs}), RTF {r.rtf:.2f}: {text[:80]}{'...' if len(text) > 80 else ''}"
    )


CAPABILITY = Capability(
    name="whisper_transcriber",
    title="Speech to text with faster-whisper: segments, words, language per window, SRT/VTT",
    http_port=8114,
    env_prefix="WHISPER_",
    runner="mediafleet.whisper_transcriber.runner:WhisperRunner",
    settings="mediafleet.whisper_transcriber.settings:WhisperSettings",
    tasks=(
        TaskSpec(
            name="transcribe",
            options=TranscribeOptions,
            result=TranscriptResult,
            summary=summary,
            media_kinds=("audio", "video"),
            streams=("audio",),
            segments=segments,
            exports={
                "json": ExportFormat("application/json", ".json", to_json),
                "txt": ExportFormat("text/plain; charset=utf-8", ".txt", to_txt),
                "srt": ExportFormat("application/x-subrip; charset=utf-8", ".srt", to_srt),
                "vtt": ExportFormat("text/vtt; charset=utf-8", ".vtt", to_vtt),
            },
            # RTF 0.11-0.2 measured with base int8 on 2 cores: 1 s per second leaves room
            # for a busy machine and larger models
            timeout_per_media_s=1.0,
            description="speech to text: language, segments and words with times (seconds)",
            default=True,
        ),
    ),
    sync_routes=(
        SyncRoute(
            path="/v1/audio/transcriptions",
            task="transcribe",
            form=openai_audio.TranscriptionForm,
            options=openai_audio.transcription_options,
            render=openai_audio.render,
            summary="OpenAI-compatible transcription (multipart file): text, srt, vtt, json, verbose_json",
            description=openai_audio.DESCRIPTION,
        ),
        SyncRoute(
            path="/v1/audio/translations",
            task="transcribe",
            form=openai_audio.TranslationForm,
            options=openai_audio.translation_options,
            render=openai_audio.render,
            summary="OpenAI-compatible translation of speech to English text (multipart file)",
            description=openai_audio.DESCRIPTION,
        ),
    ),
)
