"""Contract of the whisper_transcriber capability (light: pydantic and mediafleet.common only).

One task, ``transcribe``: speech of audio or of a video's audio track to text with
faster-whisper (CTranslate2). Times are seconds from media start; languages ISO 639-1.
Exports: ``txt``, ``srt`` (SubRip), ``vtt`` (WebVTT), ``json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from mediafleet.common.capability import Capability, ExportFormat, SyncRoute, TaskSpec, TextSegment
from mediafleet.whisper_transcriber import openai_audio

#: Whisper's own task names: ``translate`` gives English text whatever the spoken language.
WhisperTask = Literal["transcribe", "translate"]
#: Most speakers a transcript tells apart (the ``speakers`` option's bound).
MAX_SPEAKERS = 20
#: A speaker's name set by a user: at most this many characters.
MAX_SPEAKER_NAME = 64
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
    diarize: bool | None = Field(
        default=None,
        description="who spoke when: a speaker on every segment and word, the speakers with their "
        "talk time and the turns (Resemblyzer voice embeddings, clustered); default false "
        "(WHISPER_DIARIZE)",
    )
    speakers: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SPEAKERS,
        description="the number of speakers, when known (implies diarize); unset: estimated",
    )

    @field_validator("speakers")
    @classmethod
    def _speakers_need_diarize(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("diarize") is False:
            raise ValueError("speakers needs diarize (leave diarize unset or true)")
        return value


class Word(BaseModel):
    start: float = Field(ge=0, description="seconds from media start")
    end: float = Field(ge=0)
    word: str
    probability: float = Field(ge=0, le=1)
    speaker: int | None = Field(default=None, ge=1, description="1-based speaker (diarize), else None")


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
    speaker: int | None = Field(
        default=None, ge=1, description="the speaker with the most speech in the segment (diarize), else None"
    )


class Speaker(BaseModel):
    """One speaker told apart by diarization, numbered 1, 2, ... in order of first speech."""

    id: int = Field(ge=1)
    name: str | None = Field(
        default=None, max_length=MAX_SPEAKER_NAME, description="set by the user; None: 'Speaker <id>'"
    )
    talk_s: float = Field(ge=0, description="seconds of speech attributed to this speaker")
    turns: int = Field(ge=0, description="turns (stretches of speech) of this speaker")


class SpeakerTurn(BaseModel):
    """A stretch of one speaker's speech (pauses under 1 s inside it), seconds from media start."""

    speaker: int = Field(ge=1)
    start: float = Field(ge=0)
    end: float = Field(ge=0)


class DiarizationInfo(BaseModel):
    """How the speakers were told apart."""

    engine: str = Field(description="voice encoder engine (resemblyzer: GE2E LSTM, 256-d embeddings)")
    model: str
    model_version: str
    method: str = Field(description="clustering of the 1.6-s partial embeddings")
    speakers_estimated: bool = Field(description="false when the caller gave the number of speakers")
    threshold: float | None = Field(description="cosine distance where clusters stop merging (estimated)")
    partials: int = Field(ge=0, description="partial embeddings clustered")
    elapsed_ms: float = Field(ge=0, description="time spent on embeddings and clustering")


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
    speakers: list[Speaker] = Field(default_factory=list, description="diarize: each speaker, by id")
    turns: list[SpeakerTurn] = Field(
        default_factory=list, description="diarize: who spoke when, in time order"
    )
    diarization: DiarizationInfo | None = None
    elapsed_ms: float
    rtf: float = Field(description="real-time factor: processing time / audio duration")


def _clock(seconds: float, sep: str) -> str:
    ms = max(int(round(seconds * 1000)), 0)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cue_text(seg: Segment, names: dict[int, str]) -> str:
    text = " ".join(seg.text.split())
    if seg.speaker is not None and seg.speaker in names:
        text = f"{names[seg.speaker]}: {text}"
    return f"[{seg.channel}] {text}" if seg.channel is not None else text


def to_srt(result: TranscriptResult) -> str:
    """SubRip: numbered cues ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` (the format's de-facto spec,
    as the ``srt`` library parses it), cut for reading (:mod:`.subtitles`: at most 2 lines of
    42 characters, 7 s); channel-split cues start with ``[channel]``, diarized ones with the
    speaker's name (or "Speaker N") and a colon."""
    from mediafleet.whisper_transcriber.subtitles import cues

    return "\n".join(
        f"{i}\n{_clock(c.start, ',')} --> {_clock(c.end, ',')}\n{c.text}\n"
        for i, c in enumerate(cues(result), start=1)
    )


def to_vtt(result: TranscriptResult) -> str:
    """WebVTT (W3C WebVTT: ``WEBVTT`` header, ``HH:MM:SS.mmm`` cue times), cut for reading as
    :func:`to_srt`; each cue's text is a cue language span ``<lang xx>...</lang>`` of its
    segment's language (ISO 639-1, a BCP 47 tag), inside a voice span ``<v Speaker 1>`` (the
    speaker's name when the user gave one) when diarized; ``&``, ``<`` and ``-->`` in text, and
    ``&``, ``<``, ``>`` in a voice's name, are escaped."""
    from mediafleet.whisper_transcriber.subtitles import cues

    def escaped(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace("-->", "--&gt;")

    def voice(name: str | None) -> str:
        if not name:
            return ""
        return (
            "<v "
            + " ".join(name.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            + ">"
        )

    body = "\n".join(
        f"{_clock(c.start, '.')} --> {_clock(c.end, '.')}\n"
        f"{voice(c.speaker)}<lang {c.language}>{escaped(c.text)}</lang>{'</v>' if c.speaker else ''}\n"
        for c in cues(result, speaker_prefix=False)
    )
    return "WEBVTT\n\n" + body


def to_txt(result: TranscriptResult) -> str:
    """One line per segment; ``[channel]`` and "<speaker>: " prefixes when they apply."""
    from mediafleet.whisper_transcriber.subtitles import speaker_names

    names = speaker_names(result)
    return "\n".join(_cue_text(s, names) for s in result.segments if s.text.strip()) + "\n"


def to_json(result: TranscriptResult) -> str:
    return json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2)


def segments(result: TranscriptResult) -> list[TextSegment]:
    return [
        TextSegment(text=s.text.strip(), ref=f"segments[{i}]", start=s.start, end=s.end)
        for i, s in enumerate(result.segments)
        if s.text.strip()
    ]


def rename_speakers(result: TranscriptResult, names: Mapping[str, str | None]) -> TranscriptResult:
    """``result`` with ``speakers[].name`` set from ``names`` (speaker id as a string -> name;
    None or blank removes the name; whitespace collapsed). Raises ValueError for an id the
    transcript has no speaker for, or a name longer than :data:`MAX_SPEAKER_NAME`."""
    by_id = {str(s.id): s for s in result.speakers}
    updated = {s.id: s for s in result.speakers}
    for key, name in names.items():
        if key not in by_id:
            known = ", ".join(by_id) or "none (the transcript was not diarized)"
            raise ValueError(f"no speaker {key!r} in this transcript (speakers: {known})")
        clean = " ".join((name or "").split()) or None
        if clean is not None and len(clean) > MAX_SPEAKER_NAME:
            raise ValueError(f"a speaker's name has at most {MAX_SPEAKER_NAME} characters")
        updated[by_id[key].id] = by_id[key].model_copy(update={"name": clean})
    return result.model_copy(update={"speakers": [updated[s.id] for s in result.speakers]})


def summary(r: TranscriptResult) -> str:
    if not r.segments:
        return f"no speech in {r.duration_s:.1f} s"
    langs = ", ".join(f"{x.language} {x.speech_s:.0f} s" for x in r.languages)
    if r.diarization is not None:
        langs += f"; {len(r.speakers)} speaker{'s' if len(r.speakers) != 1 else ''}"
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
            rename=rename_speakers,
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
