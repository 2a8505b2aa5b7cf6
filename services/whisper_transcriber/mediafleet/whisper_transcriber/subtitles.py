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
"""

from __future__ import annotations

import math
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


def cues(result: TranscriptResult) -> list[Cue]:
    """The transcript's segments (those with text) cut into readable cues, in time order."""
    out: list[Cue] = []
    for seg in result.segments:
        if seg.text.strip():
            out += segment_cues(seg)
    return out


def segment_cues(seg: Segment) -> list[Cue]:
    """One segment's cues (see the module's rules). ``[channel]`` starts each cue's first line
    of a channel-split transcript and counts in its length."""
    prefix = f"[{seg.channel}]" if seg.channel is not None else ""
    timed = [(w.word.strip(), w.start, w.end) for w in seg.words if w.word.strip()]
    if timed and " ".join(t for t, _, _ in timed).split() == seg.text.split():
        return _timed_cues(seg, prefix, timed)
    return _shared_cues(seg, prefix, seg.text.split())


def _cue(seg: Segment, prefix: str, words: list[str], start: float, end: float) -> Cue:
    lines = wrap(prefix.split() + words)
    return Cue(start, max(end, start), tuple(lines), seg.language, seg.channel)


def _timed_cues(seg: Segment, prefix: str, timed: list[tuple[str, float, float]]) -> list[Cue]:
    out: list[Cue] = []
    group: list[tuple[str, float, float]] = []
    for item in timed:
        trial = group + [item]
        if group and (not _fits([t for t, _, _ in trial], prefix) or item[2] - group[0][1] > MAX_CUE_S):
            out.append(_cue(seg, prefix, [t for t, _, _ in group], group[0][1], group[-1][2]))
            trial = [item]
        group = trial
    out.append(_cue(seg, prefix, [t for t, _, _ in group], group[0][1], group[-1][2]))
    return out


def _shared_cues(seg: Segment, prefix: str, words: list[str]) -> list[Cue]:
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
        out.append(_cue(seg, prefix, group, start, seg.start + duration * done / chars))
    return out


def _chars(words: list[str]) -> int:
    return sum(len(w) + 1 for w in words)
