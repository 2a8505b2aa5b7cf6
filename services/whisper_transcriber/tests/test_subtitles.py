"""Subtitle cues cut for reading (issue 26.2): at most 2 lines of 42 characters, at most 7 s,
parsed back by the ``srt`` and ``webvtt-py`` libraries. Expected cues worked out by hand."""

from __future__ import annotations

import io
import itertools

import pytest
import srt
import webvtt

from mediafleet.whisper_transcriber.contract import (
    Segment,
    Speaker,
    TranscriptResult,
    Word,
    rename_speakers,
    to_srt,
    to_txt,
    to_vtt,
)
from mediafleet.whisper_transcriber.subtitles import cues

JFK = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)


def segment(text: str, start: float, end: float, step_s: float | None = None, **kw: object) -> Segment:
    """A segment of ``text``; with ``step_s`` each word i spans [start + i*step, + 0.8*step]."""
    words = []
    if step_s is not None:
        words = [
            Word(
                start=start + i * step_s, end=start + i * step_s + 0.8 * step_s, word=" " + w, probability=0.9
            )
            for i, w in enumerate(text.split())
        ]
    fields: dict[str, object] = {"language": "en", "avg_logprob": -0.2, "no_speech_prob": 0.01}
    fields.update(kw)
    return Segment.model_validate(
        {"id": 0, "start": start, "end": end, "text": " " + text, "words": words, "compression_ratio": 1.3}
        | fields
    )


def transcript(*segments: Segment) -> TranscriptResult:
    return TranscriptResult(
        engine="faster-whisper", model="whisper-base", model_version="x", compute_type="int8", device="cpu",
        task="transcribe", language="en", language_probability=None, languages=[], duration_s=60.0,
        speech_s=60.0, channels="mix", segments=list(segments), text=" ".join(s.text for s in segments),
        elapsed_ms=1.0, rtf=0.1,
    )  # fmt: skip


def test_a_slow_segment_is_cut_at_seven_seconds() -> None:
    """A word every 0.5 s: words 0-13 end by 6.9 s (word 14 would end at 7.4 s)."""
    got = cues(transcript(segment(JFK, 0.0, 11.0, step_s=0.5)))
    assert [(round(c.start, 3), round(c.end, 3), c.lines) for c in got] == [
        (0.0, 6.9, ("And so my fellow Americans, ask not what", "your country can do for you,")),
        (7.0, 10.9, ("ask what you can do for your country.",)),
    ]


def test_a_fast_segment_is_cut_at_two_lines_of_42_characters() -> None:
    """A word every 0.2 s: the time limit never binds; a third line would start at "can"."""
    got = cues(transcript(segment(JFK, 0.0, 4.5, step_s=0.2)))
    assert [(round(c.start, 3), round(c.end, 3), c.lines) for c in got] == [
        (
            0.0,
            3.36,
            ("And so my fellow Americans, ask not what", "your country can do for you, ask what you"),
        ),
        (3.4, 4.36, ("can do for your country.",)),
    ]


def test_without_word_times_the_segment_time_is_shared_by_characters() -> None:
    text = " ".join([JFK] * 3)  # 66 words, 324 characters with their spaces, over 20 s
    got = cues(transcript(segment(text, 10.0, 30.0)))
    assert " ".join(" ".join(c.lines) for c in got) == text
    assert got[0].start == 10.0 and abs(got[-1].end - 30.0) < 1e-9
    assert all(abs(b.start - a.end) < 1e-9 for a, b in itertools.pairwise(got))  # no gap, no overlap
    assert all(c.end - c.start <= 7.0 + 1e-9 for c in got), [(c.start, c.end) for c in got]
    assert all(len(c.lines) <= 2 and max(map(len, c.lines)) <= 42 for c in got)
    assert len(got) >= 4  # 324 characters cannot fit in fewer cues of 2 x 42


def test_srt_and_vtt_parse_and_vtt_marks_the_language() -> None:
    result = transcript(
        segment(JFK, 0.0, 4.5, step_s=0.2, channel=1),
        segment("Ich bin ein Berliner & <stolz>.", 5.0, 7.0, language="de", id=1),
    )
    subs = list(srt.parse(to_srt(result)))
    assert [s.content for s in subs] == [
        "[1] And so my fellow Americans, ask not\nwhat your country can do for you, ask what",
        "[1] you can do for your country.",
        "Ich bin ein Berliner & <stolz>.",
    ]
    assert [(s.start.total_seconds(), s.end.total_seconds()) for s in subs] == [
        (0.0, 3.16), (3.2, 4.36), (5.0, 7.0),
    ]  # fmt: skip
    text = to_vtt(result)
    assert (
        "<lang en>[1] And so my fellow" in text
        and "<lang de>Ich bin ein Berliner &amp; &lt;stolz>.</lang>" in text
    )
    vtt = list(webvtt.from_buffer(io.StringIO(text)))
    assert [c.text for c in vtt] == [s.content.replace("& <stolz>", "&amp; &lt;stolz>") for s in subs]
    assert [(c.start, c.end) for c in vtt] == [
        ("00:00:00.000", "00:00:03.160"), ("00:00:03.200", "00:00:04.360"), ("00:00:05.000", "00:00:07.000"),
    ]  # fmt: skip


def diarized() -> TranscriptResult:
    """JFK's sentence, a word every 0.2 s: words 0-7 by speaker 1 (named "Ada"), the rest by 2."""
    seg = segment(JFK, 0.0, 4.5, step_s=0.2, speaker=1)
    for i, word in enumerate(seg.words):
        word.speaker = 1 if i < 8 else 2
    speakers = [Speaker(id=1, name="Ada", talk_s=1.56, turns=1), Speaker(id=2, talk_s=2.76, turns=1)]
    return transcript(seg).model_copy(update={"speakers": speakers})


def test_a_cue_never_holds_two_speakers_and_srt_names_them() -> None:
    """Cut at the change of speaker; "Ada:" and "Speaker 2:" count in the 42 characters."""
    got = [(round(c.start, 3), round(c.end, 3), c.lines, c.speaker) for c in cues(diarized())]
    assert got == [
        (0.0, 1.56, ("Ada: And so my fellow Americans, ask not", "what"), "Ada"),
        (
            1.6,
            4.36,
            ("Speaker 2: your country can do for you,", "ask what you can do for your country."),
            "Speaker 2",
        ),
    ]
    assert [s.content for s in srt.parse(to_srt(diarized()))] == ["\n".join(g[2]) for g in got]
    assert to_txt(diarized()) == "Ada: " + JFK + "\n"  # a line per segment: its speaker (1)


def test_vtt_puts_each_speaker_in_a_voice_span() -> None:
    text = to_vtt(diarized())
    assert "<v Ada><lang en>And so my fellow Americans, ask not what</lang></v>" in text
    vtt = list(webvtt.from_buffer(io.StringIO(text)))
    assert [(c.voice, c.text) for c in vtt] == [
        ("Ada", "And so my fellow Americans, ask not what"),
        ("Speaker 2", "your country can do for you, ask what you\ncan do for your country."),
    ]
    odd = diarized()
    odd.speakers[0].name = "Dr. <Who> & Co"
    assert "<v Dr. &lt;Who&gt; &amp; Co><lang en>" in to_vtt(odd)


def test_speakers_are_named_by_rename_and_unknown_ids_are_refused() -> None:
    renamed = rename_speakers(diarized(), {"2": "  Bob   Smith ", "1": None})
    assert [(s.id, s.name) for s in renamed.speakers] == [(1, None), (2, "Bob Smith")]
    assert cues(renamed)[0].lines[0].startswith("Speaker 1: And")
    with pytest.raises(ValueError, match="no speaker '3'"):
        rename_speakers(diarized(), {"3": "Eve"})
    with pytest.raises(ValueError, match="at most 64"):
        rename_speakers(diarized(), {"1": "x" * 65})
    with pytest.raises(ValueError, match="not diarized"):
        rename_speakers(transcript(segment(JFK, 0.0, 4.5)), {"1": "Ada"})
