"""The whisper_transcriber runner (follows mediafleet.common.capability.Runner).

Audio streams through in blocks (``WHISPER_BLOCK_S``, PyAV -> 16 kHz float32), so memory
does not grow with the duration. Each block is cut into *windows* of at most 30 s (Whisper's
context): with the VAD filter, consecutive Silero speech regions grouped while they fit and
are less than 2 s apart; without it, 30-s slices cut at the quietest 20 ms of their last
3 s. Speech that reaches the end of a block is carried into the next one, so no word is cut
at a block boundary. Each window is decoded on its own with the language detected *in that
window* (``language_detection="window"``): code-switched audio comes back with each part in
its own language, where one call of faster-whisper keeps the first window's language for the
whole file (``multilingual.mp3``: the German half came back as an English paraphrase).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mediafleet.common.capability import ProgressFn
from mediafleet.common.engine import Engine, EngineRunner
from mediafleet.common.errors import BadRequest, InvalidMedia
from mediafleet.common.media import AUDIO_RATE, iter_audio, open_av
from mediafleet.whisper_transcriber.contract import (
    DiarizationInfo,
    LanguageShare,
    Segment,
    Speaker,
    SpeakerTurn,
    TranscribeOptions,
    TranscriptResult,
    Word,
)
from mediafleet.whisper_transcriber.diarize import THRESHOLD, Diarization, Diarizer
from mediafleet.whisper_transcriber.engines.faster_whisper_engine import FasterWhisperEngine
from mediafleet.whisper_transcriber.engines.resemblyzer_engine import VoiceEncoder
from mediafleet.whisper_transcriber.settings import WhisperSettings

SR = AUDIO_RATE
#: VAD regions further apart than this start a new window (no long silence inside a window).
MAX_GAP_S = 2.0
#: Speech ending this close to a block's end may go on in the next block: it is carried over.
TAIL_S = 1.0


def media_duration_s(path: Path) -> float:
    """Duration of the container (seconds; 0.0 when it does not say). Raises InvalidMedia."""
    with open_av(path) as container:
        if not container.streams.audio:
            raise InvalidMedia("the media has no audio stream", code="no_audio")
        return container.duration / 1_000_000 if container.duration else 0.0


def quiet_cut(audio: np.ndarray, lo: int, hi: int, frame: int = 320) -> int:
    """Sample index in [lo, hi) at the centre of the 20-ms frame of least energy."""
    span = audio[lo:hi]
    n = len(span) // frame
    if n == 0:
        return hi
    energy = np.square(span[: n * frame].reshape(n, frame)).sum(axis=1)
    return lo + int(np.argmin(energy)) * frame + frame // 2


#: A window's span in a buffer: (start, end, [(start, end) of its speech]), samples.
Span = tuple[int, int, list[tuple[int, int]]]


@dataclass(frozen=True)
class Window:
    """Audio decoded at once: ``at`` its absolute first sample, ``audio`` float32 16 kHz mono,
    ``speech`` the VAD's speech regions in it [(start, end)] in samples from ``audio[0]``
    (the whole window without VAD)."""

    at: int
    audio: np.ndarray
    speech: list[tuple[int, int]]


@dataclass
class ChannelStream:
    """One channel's audio between blocks: what is not decoded yet, and where it starts."""

    vad: bool
    window: int  # samples
    regions: Any  # (audio) -> [(start, end)] speech regions in samples
    buf: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    buf_start: int = 0  # absolute sample index of buf[0]
    speech: int = 0  # samples kept by the VAD
    language: str | None = None
    language_probability: float | None = None

    def feed(self, samples: np.ndarray | None) -> list[Window]:
        """Windows ready to decode after adding ``samples`` (None: the audio ended)."""
        final = samples is None
        buf = self.buf if final else np.concatenate([self.buf, samples])
        spans, keep_from = self._plan_vad(buf, final) if self.vad else self._plan_fixed(buf, final)
        out = [
            Window(self.buf_start + s, buf[s:e], [(a - s, b - s) for a, b in speech])
            for s, e, speech in spans
            if e - s >= SR // 10
        ]
        self.buf = buf[keep_from:].copy()
        self.buf_start += keep_from
        return out

    def _plan_vad(self, buf: np.ndarray, final: bool) -> tuple[list[Span], int]:
        regions = self.regions(buf) if len(buf) else []
        keep_from = len(buf)
        if not final:
            if regions and regions[-1][1] >= len(buf) - TAIL_S * SR:
                keep_from = regions.pop()[0]
            else:
                keep_from = max(len(buf) - int(TAIL_S * SR), regions[-1][1] if regions else 0)
        self.speech += sum(e - s for s, e in regions)
        windows: list[Span] = []
        for s, e in regions:
            if windows and e - windows[-1][0] <= self.window and s - windows[-1][1] <= MAX_GAP_S * SR:
                windows[-1] = (windows[-1][0], e, windows[-1][2] + [(s, e)])
            else:
                windows.append((s, e, [(s, e)]))
        return windows, keep_from

    def _plan_fixed(self, buf: np.ndarray, final: bool) -> tuple[list[Span], int]:
        windows: list[Span] = []
        pos = 0
        while len(buf) - pos > self.window or (final and pos < len(buf)):
            end = min(pos + self.window, len(buf))
            if end < len(buf):
                end = quiet_cut(buf, max(end - 3 * SR, pos + SR), end)
            windows.append((pos, end, [(pos, end)]))
            pos = end
        self.speech += pos
        return windows, pos


def channel_mode(block: np.ndarray, frame_s: float = 0.03) -> tuple[Literal["split", "mix"], str]:
    """``("split" | "mix", why)`` for audio of shape (C, N) at 16 kHz: split when the channels
    carry different speech, i.e. in more than half of the frames where anything is heard
    (30-ms frames louder than -40 dBFS) one channel is 15 dB louder than every other (one
    speaker per channel, as call recordings are). Mixed speech from two sides in one 30-s
    window loses a side: the window is decoded in one language. Else (one channel, or channels
    that hear the same sound) the channels are averaged."""
    channels, n = block.shape
    if channels < 2:
        return "mix", ""
    step = int(frame_s * SR)
    frames = n // step
    if frames == 0:
        return "mix", "too short to compare the channels: mixed"
    rms = np.sqrt((block[:, : frames * step].reshape(channels, frames, step) ** 2).mean(axis=2)) + 1e-9
    db = 20 * np.log10(rms)
    heard = db.max(axis=0) > -40.0
    if not heard.any():
        return "mix", "silent: mixed"
    ordered = np.sort(db[:, heard], axis=0)
    dominant = float(((ordered[-1] - ordered[-2]) > 15.0).mean())
    if dominant > 0.5:
        return (
            "split",
            f"channels carry different speech ({dominant:.0%} of the heard frames one-sided): each transcribed",
        )
    return "mix", f"channels hear the same sound ({dominant:.0%} of the heard frames one-sided): mixed"


class WhisperRunner(EngineRunner[Engine]):
    def __init__(self, settings: WhisperSettings):
        self.settings = settings
        self.engine = FasterWhisperEngine(
            settings.core.models_dir,
            settings.model,
            settings.device,
            settings.compute_type,
            settings.cpu_threads,
        )
        self.voice = VoiceEncoder(settings.core.models_dir, settings.voice_model)
        self.engines = {self.engine.name: self.engine, self.voice.name: self.voice}

    def _default_engines(self) -> list[str]:
        """faster-whisper, and the voice encoder when transcripts are diarized by default."""
        return [self.engine.name] + ([self.voice.name] if self.settings.diarize else [])

    def preload_names(self) -> list[str]:
        return self._default_engines() if self.settings.preload else []

    def task_engines(self, task: str) -> list[str]:
        return self._default_engines()  # loaded on first use when not preloaded; ready once they load

    def options(self, options: dict[str, Any]) -> TranscribeOptions:
        """``options`` (valid ``TranscribeOptions``, checked by the pipeline) with the
        service's defaults filled in."""
        s = self.settings
        given = TranscribeOptions.model_construct(**options)
        defaults = {
            "task": s.task,
            "language_detection": s.language_detection,
            "beam_size": s.beam_size,
            "temperature": s.temperature,
            "vad_filter": s.vad_filter,
            "word_timestamps": s.word_timestamps,
            "channels": s.channels,
            "diarize": s.diarize or given.speakers is not None,
        }
        return given.model_copy(update={k: v for k, v in defaults.items() if getattr(given, k) is None})

    def default_options(self, task: str) -> dict[str, Any]:
        return self.options({}).model_dump(exclude_none=True)

    def run(
        self, task: str, media: Path, options: dict[str, Any], inputs: dict[str, Any], progress: ProgressFn
    ) -> TranscriptResult:
        if task != "transcribe":
            raise BadRequest(f"whisper_transcriber does not run {task!r}", code="unknown_task")
        return self.transcribe(media, self.options(options), progress)

    def transcribe(self, media: Path, opts: TranscribeOptions, progress: ProgressFn) -> TranscriptResult:
        """Transcribe the first audio stream of ``media``. Raises InvalidMedia (no audio stream,
        undecodable data, longer than ``WHISPER_MAX_DURATION_S``) and BadRequest (unknown language)."""
        start = time.perf_counter()
        total_s = media_duration_s(media)
        if total_s > self.settings.max_duration_s:
            raise InvalidMedia(
                f"audio is {total_s:.0f} s long; this service takes at most {self.settings.max_duration_s:.0f} s",
                code="media_too_long",
            )
        self.engine.check_language(opts.language)
        window = int(self.settings.window_s * SR)

        def regions(audio: np.ndarray) -> list[tuple[int, int]]:
            return self.engine.speech_regions(audio, self.settings.window_s)

        streams: list[ChannelStream] = []
        segments: list[Segment] = []
        diarizer = Diarizer(self.voice) if opts.diarize else None
        if diarizer is not None:
            self.voice.load()  # a missing model fails the job now, not after the transcription
        diarize_s = 0.0
        decoded = 0
        mode, note = opts.channels or "auto", ""
        decode_as = "split" if mode == "auto" else mode
        for block in iter_audio(media, decode_as, self.settings.block_s):
            if mode == "auto":  # decided on the first block (block_s seconds)
                mode, note = channel_mode(block)
            if mode == "mix" and block.shape[0] > 1:
                block = block.mean(axis=0, keepdims=True)
            if not streams:
                streams = [
                    ChannelStream(bool(opts.vad_filter), window, regions) for _ in range(block.shape[0])
                ]
            for channel, stream in enumerate(streams):
                for w in stream.feed(block[channel]):
                    segments += self._decode(
                        stream, w.at, w.audio, opts, channel if len(streams) > 1 else None
                    )
                    if diarizer is not None:
                        t0 = time.perf_counter()
                        diarizer.add(w.at, w.audio, w.speech)
                        diarize_s += time.perf_counter() - t0
            decoded += block.shape[1]
            if total_s > 0:
                progress(min(decoded / SR / total_s, 0.99), f"{decoded / SR:.0f} of {total_s:.0f} s")
        for channel, stream in enumerate(streams):
            for w in stream.feed(None):
                segments += self._decode(stream, w.at, w.audio, opts, channel if len(streams) > 1 else None)
                if diarizer is not None:
                    t0 = time.perf_counter()
                    diarizer.add(w.at, w.audio, w.speech)
                    diarize_s += time.perf_counter() - t0
        if not streams:
            raise InvalidMedia("the audio stream has no samples", code="no_audio")
        segments.sort(key=lambda s: (s.start, s.channel or 0))
        for i, seg in enumerate(segments):
            seg.id = i
        speakers: list[Speaker] = []
        turns: list[SpeakerTurn] = []
        info: DiarizationInfo | None = None
        if diarizer is not None:
            t0 = time.perf_counter()
            found = diarizer.finish(opts.speakers)
            speakers, turns = self._attribute(found, segments)
            info = DiarizationInfo(
                engine=self.voice.name,
                model=self.voice.model,
                model_version=self.voice.model_version,
                method="agglomerative clustering, cosine distance, average linkage",
                speakers_estimated=found.estimated,
                threshold=THRESHOLD if found.estimated else None,
                partials=found.partials,
                elapsed_ms=round((diarize_s + time.perf_counter() - t0) * 1000, 2),
            )
        shares: dict[str, float] = defaultdict(float)
        for seg in segments:
            shares[seg.language] += seg.end - seg.start
        language = max(shares, key=shares.__getitem__) if shares else None
        first = next((s for s in segments if s.language == language), None)
        duration = decoded / SR
        elapsed = time.perf_counter() - start
        return TranscriptResult(
            engine=self.engine.name,
            model=self.engine.model,
            model_version=self.engine.model_version,
            compute_type=self.engine.compute_type,
            device=self.engine.device,
            task=opts.task or self.settings.task,
            language=language,
            language_probability=first.language_probability if first else None,
            languages=[LanguageShare(language=k, speech_s=round(v, 2)) for k, v in shares.items()],
            duration_s=round(duration, 3),
            speech_s=round(max(s.speech for s in streams) / SR, 3),
            channels="split" if len(streams) > 1 else "mix",
            channels_note=note,
            segments=segments,
            text=" ".join(s.text.strip() for s in segments if s.text.strip()),
            speakers=speakers,
            turns=turns,
            diarization=info,
            elapsed_ms=round(elapsed * 1000, 2),
            rtf=round(elapsed / duration, 4) if duration > 0 else 0.0,
        )

    @staticmethod
    def _attribute(found: Diarization, segments: list[Segment]) -> tuple[list[Speaker], list[SpeakerTurn]]:
        """Speakers on ``segments`` (in place: each word by its middle, each segment by the
        most speech inside it), and the speakers and turns of the result."""
        for seg in segments:
            for word in seg.words:
                word.speaker = found.speaker_at((word.start + word.end) / 2)
            seg.speaker = found.speaker_of(seg.start, seg.end)
        turns = [
            SpeakerTurn(speaker=t.speaker, start=round(t.start, 3), end=round(t.end, 3)) for t in found.turns
        ]
        counts: dict[int, int] = defaultdict(int)
        for t in turns:
            counts[t.speaker] += 1
        speakers = [
            Speaker(id=k, talk_s=round(found.talk_s[k], 2), turns=counts[k]) for k in sorted(found.talk_s)
        ]
        return speakers, turns

    def _looped(self, raw: list[Any]) -> bool:
        """True when a segment still compresses above the threshold after the fallback
        (Whisper's sign of a repetition loop): every temperature failed the check, and
        faster-whisper kept the attempt of best log-probability, whichever temperature made it
        (a loop at 0.4, ratio 3.28, seen on an AMD EPYC 2026-12-06; at 1.0, ratio 10.1, before)."""
        limit = self.settings.compression_ratio_threshold
        return any(seg.compression_ratio > limit for seg in raw)

    @staticmethod
    def _worst_ratio(raw: list[Any]) -> float:
        return max((seg.compression_ratio for seg in raw), default=0.0)

    def _decode(
        self, stream: ChannelStream, at: int, audio: np.ndarray, opts: TranscribeOptions, channel: int | None
    ) -> list[Segment]:
        language = opts.language
        if language is None and opts.language_detection == "first":
            language = stream.language
        args = {
            "language": language,
            "task": opts.task,
            "beam_size": opts.beam_size,
            "word_timestamps": opts.word_timestamps,
            "initial_prompt": opts.initial_prompt,
            "hotwords": opts.hotwords,
            "compression_ratio_threshold": self.settings.compression_ratio_threshold,
        }
        temperatures = opts.temperature or [0.0]
        raw, info = self.engine.decode(audio, temperature=temperatures, **args)
        if len(temperatures) > 1 and self._looped(raw):
            # Every temperature failed the compression check, and faster-whisper then keeps the
            # attempt of best log-probability: on speech that really repeats itself (jfk.flac
            # three times: ratio 2.48 for the right text) that was, now and then, a sampled
            # loop (199 words in 30 s, ratio 10.1). Decode once more at the first temperature
            # and keep whichever compresses less.
            again, again_info = self.engine.decode(audio, temperature=temperatures[:1], **args)
            if self._worst_ratio(again) <= self._worst_ratio(raw):
                raw, info = again, again_info
        if opts.language is not None:
            probability = None
        elif language is not None:  # "first": reused
            probability = stream.language_probability
        else:
            probability = float(info.language_probability)
            if stream.language is None:
                stream.language, stream.language_probability = info.language, probability
        offset = at / SR
        limit = offset + len(audio) / SR
        out = []
        for seg in raw:
            words = [
                Word(
                    start=round(min(w.start + offset, limit), 3),
                    end=round(min(w.end + offset, limit), 3),
                    word=w.word,
                    probability=round(min(max(w.probability, 0.0), 1.0), 4),
                )
                for w in seg.words or []
            ]
            out.append(
                Segment(
                    id=0,
                    start=round(min(seg.start + offset, limit), 3),
                    end=round(min(seg.end + offset, limit), 3),
                    text=seg.text,
                    language=info.language,
                    language_probability=None if probability is None else round(probability, 4),
                    channel=channel,
                    avg_logprob=round(seg.avg_logprob, 4) if math.isfinite(seg.avg_logprob) else -99.0,
                    no_speech_prob=round(seg.no_speech_prob, 4),
                    compression_ratio=round(seg.compression_ratio, 4),
                    temperature=round(seg.temperature or 0.0, 2),
                    words=words,
                )
            )
        return out
