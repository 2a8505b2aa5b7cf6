"""Diarization benchmark: who spoke when, scored by diarization error rate (DER, pyannote.metrics).

A labelled set is built from recordings whose speaker is known, joined with pauses:

- real speech of the shared corpus (../shared/media): jfk.flac (speaker A, English),
  fleurs-de-000.ogg (B, German), fleurs-fr-000.ogg (C, French), in 2- and 3-speaker
  conversations, one where A speaks again after B;
- dialogues of espeak-ng voices (Debian's espeak-ng): 2 and 3 voices taking 6 turns.

The reference speech of each piece is its Silero VAD regions computed on the piece alone (the
runner's VAD and options): the "oracle speech activity" condition, so the DER here scores who
spoke and where turns are placed, not speech detection (no recording here has hand-marked speech;
the energy of the FLEURS files, -43 and -62 dBFS RMS with background noise, does not mark it). Every file runs through the service's runner (``transcribe`` with ``diarize``),
side by side in one run: speakers estimated vs given (``speakers``). DER = (missed + false alarm
+ confusion) / reference speech, with pyannote.metrics' ``DiarizationErrorRate(collar=0.5)``,
i.e. 0.25 s forgiven on each side of every reference boundary (the NIST RT / DIHARD collar),
overlap scored. Diarization RTF = diarization seconds / audio seconds (on top of the
transcription's).

    python bench/asr/diarization.py [--media ../shared/media] [--models-dir DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SR = 16_000
PAUSE_S = 0.7
LINES = [
    "Good morning. Did you finish the report on the quarterly sales figures yesterday?",
    "Yes, I sent it to the whole team last night, together with the charts you asked for.",
    "Great. Then let us meet at three o'clock and go through the numbers together.",
    "Three works for me. I will book the small meeting room on the second floor.",
    "Can someone bring the projector? The one in that room has been broken for a week.",
    "I will ask the front desk to send a new one before the meeting starts.",
]
VOICES = {"A": "en+edward", "B": "en+anika", "C": "en-us+f2"}


def mono(path: Path) -> np.ndarray:
    from mediafleet.common.media import iter_audio

    return np.concatenate([b.mean(axis=0) for b in iter_audio(path, "mix", 60.0)]).astype(np.float32)


def speech_regions(audio: np.ndarray) -> list[tuple[float, float]]:
    """Silero VAD speech regions of one piece on its own (seconds), with the runner's VAD options."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    found = get_speech_timestamps(audio, VadOptions(max_speech_duration_s=30.0))
    return [(r["start"] / SR, r["end"] / SR) for r in found]


def build(pieces: list[tuple[str, np.ndarray]], path: Path) -> list[tuple[str, float, float]]:
    """Write the pieces (speaker, audio) joined with pauses; return the reference turns."""
    from tests.speech import write_audio

    parts, ref, t = [], [], 0.0
    for speaker, audio in pieces:
        ref += [(speaker, t + start, t + end) for start, end in speech_regions(audio)]
        parts += [audio, np.zeros(int(PAUSE_S * SR), np.float32)]
        t += len(audio) / SR + PAUSE_S
    write_audio(path, np.concatenate(parts)[None, :], "flac", "flac")
    return ref


def espeak(voice: str, text: str, folder: Path) -> np.ndarray:
    wav = folder / f"{abs(hash((voice, text)))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True)
    return mono(wav)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    from mediafleet.whisper_transcriber.runner import WhisperRunner
    from mediafleet.whisper_transcriber.settings import WhisperSettings

    work = Path(tempfile.mkdtemp(prefix="bench-diarization-"))
    jfk, de, fr = (mono(args.media / n) for n in ("jfk.flac", "fleurs-de-000.ogg", "fleurs-fr-000.ogg"))
    sets: dict[str, list[tuple[str, np.ndarray]]] = {
        "jfk (1 speaker)": [("A", jfk)],
        "jfk + de": [("A", jfk), ("B", de)],
        "jfk + de + jfk": [("A", jfk), ("B", de), ("A", jfk)],
        "de + fr + jfk": [("B", de), ("C", fr), ("A", jfk)],
        "espeak 2 voices, 6 turns": [
            ("AB"[i % 2], espeak(VOICES["AB"[i % 2]], x, work)) for i, x in enumerate(LINES)
        ],
        "espeak 3 voices, 6 turns": [
            ("ABC"[i % 3], espeak(VOICES["ABC"[i % 3]], x, work)) for i, x in enumerate(LINES)
        ],
    }
    runner = WhisperRunner(WhisperSettings(core={"models_dir": args.models_dir}))
    runner.preload()
    runner.voice.load()
    rows = []
    totals: dict[str, DiarizationErrorRate] = {}
    for name, pieces in sets.items():
        path = work / f"{len(rows)}.flac"
        ref_turns = build(pieces, path)
        reference = Annotation()
        for speaker, start, end in ref_turns:
            reference[Segment(start, end)] = speaker
        truth = len({s for s, _, _ in ref_turns})
        for mode, options in (("estimated", {"diarize": True}), ("given", {"speakers": truth})):
            t0 = time.perf_counter()
            result = runner.run("transcribe", path, options, {}, lambda *a: None)
            seconds = time.perf_counter() - t0
            hypothesis = Annotation()
            for i, turn in enumerate(result.turns):
                hypothesis[Segment(turn.start, turn.end), i] = f"S{turn.speaker}"
            metric = totals.setdefault(mode, DiarizationErrorRate(collar=0.5, skip_overlap=False))
            detail = metric(reference, hypothesis, detailed=True)
            info = result.diarization
            assert info is not None
            rows.append(
                {
                    "set": name,
                    "mode": mode,
                    "duration_s": result.duration_s,
                    "speakers_true": truth,
                    "speakers_found": len(result.speakers),
                    "der": detail["diarization error rate"],
                    "missed": detail["missed detection"] / detail["total"],
                    "false_alarm": detail["false alarm"] / detail["total"],
                    "confusion": detail["confusion"] / detail["total"],
                    "diarization_rtf": info.elapsed_ms / 1000 / result.duration_s,
                    "total_rtf": seconds / result.duration_s,
                }
            )
    when = time.strftime("%Y-%m-%d")
    cpu = platform.processor() or platform.machine()
    print(f"\ndiarization on {when}, {cpu}, {len(sets)} files, Whisper base int8 + Resemblyzer (NumPy)")
    print(
        f"{'set':28} {'speakers':>9} {'mode':>10} {'DER':>6} {'miss':>6} {'FA':>6} {'conf':>6} {'diar RTF':>9} {'RTF':>6}"
    )
    for r in rows:
        print(
            f"{r['set']:28} {r['speakers_found']:>4} / {r['speakers_true']:<2} {r['mode']:>10} {r['der']:6.3f} "
            f"{r['missed']:6.3f} {r['false_alarm']:6.3f} {r['confusion']:6.3f} {r['diarization_rtf']:9.3f} {r['total_rtf']:6.3f}"
        )
    overall = {mode: abs(metric) for mode, metric in totals.items()}
    exact = {
        m: sum(r["speakers_found"] == r["speakers_true"] for r in rows if r["mode"] == m) for m in overall
    }
    print(
        f"\noverall DER: estimated {overall['estimated']:.3f}, given {overall['given']:.3f} "
        f"(ratio {overall['estimated'] / max(overall['given'], 1e-9):.2f}x); "
        f"number of speakers right: {exact['estimated']} of {len(sets)} estimated"
    )
    mean_rtf = float(np.mean([r["diarization_rtf"] for r in rows]))
    print(f"diarization RTF (mean): {mean_rtf:.3f} on top of the transcription")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "der": overall, "date": when, "cpu": cpu}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
