"""Readable subtitle cues from a transcript's segments (SRT and WebVTT exports).

A Whisper segment can run 30 s and hundreds of characters; a subtitle that long cannot be
read. Each segment is cut into cues of at most :data:`MAX_LINES` lines of at most
:data:`LINE_CHARS` characters, on screen at most :data:`MAX_CUE_S` seconds: the limits of the
common timed-text style guides (BBC Subtitle Guidelines: about 37-42 characters a line, two
lines; Netflix Timed Text Style Guide for English: 42 characters a line, two lines, a cue at
most 7 s). Cuts fall between words only; a single word longer than a line stays whole.

With word timestamps (``word_timestamps``) a cue runs from its first word's start to its last
word's end. Without them the segment's time is shared among its cues in proportion to their
characters (the speech rate taken as even within a segment) and a cue is shortened, by
characters, until its share is at most :data:`MAX_CUE_S`.

A diarized transcript names the speaker of each cue (``Cue.speaker``: the user's name for the
speaker or "Speaker N"); with word timestamps a cue never holds two speakers' words. SubRip
has no speaker markup: there the name starts the cue's first line ("Speaker 1: ...") and counts
in its length; WebVTT has voice spans (``<v Speaker 1>``), so its lines leave the name out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mediafleet.whisper_transcriber.contract import Segment, TranscriptResult

LINE_CHARS = 42
MAX_LINES = 2
MAX_CUE_S = 7.0


@dataclass(frozen=True)
class Cue:
    """One subtitle: ``start``/``end`` in seconds from the media's start, its ``lines`` (at
    most :data:`MAX_LINES`, each at most :data:`LINE_CHARS` characters unless one word is
    longer), the ISO 639-1 ``language`` of its segment and the ``channel`` (``channels=split``)."""

    start: float
    end: float
    lines: tuple[str, ...]
    language: str
    channel: int | None = None
    #: the speaker's name, or "Speaker N"; None without diarization
    speaker: str | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def wrap(words: list[str], width: int = LINE_CHARS) -> list[str]:
    """``words`` filled greedily into lines of at most ``width`` characters (a longer word
    takes a line of its own)."""
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def _fits(words: list[str], channel_prefix: str) -> bool:
    return len(wrap(channel_prefix.split() + words)) <= MAX_LINES


def speaker_names(result: TranscriptResult) -> dict[int, str]:
    """Each speaker id's label: the user's name, else "Speaker N"."""
    return {s.id: s.name or f"Speaker {s.id}" for s in result.speakers}


def cues(result: TranscriptResult, speaker_prefix: bool = True) -> list[Cue]:
    """The transcript's segments (those with text) cut into readable cues, in time order.
    ``speaker_prefix``: a diarized cue's first line starts with "<speaker>:" (SubRip)."""
    names = speaker_names(result)
    out: list[Cue] = []
    for seg in result.segments:
        if seg.text.strip():
            out += segment_cues(seg, names, speaker_prefix)
    return out


def segment_cues(seg: Segment, names: dict[int, str] | None = None, speaker_prefix: bool = True) -> list[Cue]:
    """One segment's cues (see the module's rules). ``[channel]`` starts each cue's first line
    of a channel-split transcript and counts in its length; so does "<speaker>:" when
    ``speaker_prefix`` and the cue has a speaker in ``names`` (speaker id -> label)."""
    names = names or {}
    channel = f"[{seg.channel}]" if seg.channel is not None else ""

    def label(speaker: int | None) -> str | None:
        return names.get(speaker) if speaker is not None else None

    def prefix(speaker: str | None) -> str:
        who = f"{speaker}:" if speaker and speaker_prefix else ""
        return " ".join(p for p in (channel, who) if p)

    timed = [(w.word.strip(), w.start, w.end, label(w.speaker)) for w in seg.words if w.word.strip()]
    if timed and " ".join(t[0] for t in timed).split() == seg.text.split():
        return _timed_cues(seg, prefix, timed)
    speaker = label(seg.speaker)
    return _shared_cues(seg, prefix(speaker), seg.text.split(), speaker)


def _cue(seg: Segment, prefix: str, words: list[str], start: float, end: float, speaker: str | None) -> Cue:
    lines = wrap(prefix.split() + words)
    return Cue(start, max(end, start), tuple(lines), seg.language, seg.channel, speaker)


def _timed_cues(
    seg: Segment, prefix: Callable[[str | None], str], timed: list[tuple[str, float, float, str | None]]
) -> list[Cue]:
    out: list[Cue] = []
    group: list[tuple[str, float, float, str | None]] = []

    def close(items: list[tuple[str, float, float, str | None]]) -> Cue:
        who = items[0][3]
        return _cue(seg, prefix(who), [t[0] for t in items], items[0][1], items[-1][2], who)

    for item in timed:
        trial = group + [item]
        if group and (
            item[3] != group[0][3]
            or not _fits([t[0] for t in trial], prefix(group[0][3]))
            or item[2] - group[0][1] > MAX_CUE_S
        ):
            out.append(close(group))
            trial = [item]
        group = trial
    out.append(close(group))
    return out


def _shared_cues(seg: Segment, prefix: str, words: list[str], speaker: str | None) -> list[Cue]:
    duration = max(seg.end - seg.start, 0.0)
    chars = sum(len(w) + 1 for w in words)  # a word and the space after it
    # characters a cue may hold so that its share of the segment's time is at most MAX_CUE_S
    per_cue = math.floor(chars * MAX_CUE_S / duration) if duration > MAX_CUE_S else chars
    groups: list[list[str]] = []
    for word in words:
        if groups and _fits(groups[-1] + [word], prefix) and _chars(groups[-1] + [word]) <= per_cue:
            groups[-1].append(word)
        else:
            groups.append([word])
    out: list[Cue] = []
    done = 0
    for group in groups:
        start = seg.start + duration * done / chars
        done += _chars(group)
        out.append(_cue(seg, prefix, group, start, seg.start + duration * done / chars, speaker))
    return out


def _chars(words: list[str]) -> int:
    return sum(len(w) + 1 for w in words)
