"""Speech benchmark (real weights: Whisper base for CTranslate2, catalogue ``whisper-base``).

Every run is a fresh child process (its peak RSS, VmHWM, is the run's alone), side by side
in one invocation:

- the service's runner (streaming blocks, VAD windows, language per window) per compute
  type (``int8``, ``float32`` on CPU) on 1 minute and 10 minutes of speech
  (``multilingual.mp3`` once and ten times), beam 5: RTF (processing s / audio s), peak
  RSS, segments, WER of jfk.flac;
- faster-whisper's own ``transcribe(path)`` (whole file decoded into memory, one language)
  on the same files at int8: the baseline of the memory claim; and at 10 minutes with
  ``multilingual=True`` (its language detection per 30-s segment), the like-for-like
  baseline of the runner's language per window;
- ratios: RSS 10 min / 1 min (flat memory means ~1.0), RTF float32 / int8, the plain
  call's RSS over the runner's at 10 minutes, and the runner's RTF over each plain call's.

    python bench/asr/run.py [--media ../shared/media] [--models-dir DIR] [--compute int8 float32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, re, sys, time
from pathlib import Path
mode, compute, path, models = sys.argv[1:5]
def hwm():
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024
t0 = time.perf_counter()
if mode == "runner":
    from mediafleet.whisper_transcriber.runner import WhisperRunner
    from mediafleet.whisper_transcriber.settings import WhisperSettings
    r = WhisperRunner(WhisperSettings(core={"models_dir": models}, compute_type=compute, cpu_threads=0))
    r.preload()
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = r.run("transcribe", Path(path), {}, {}, lambda *a: None)
    seconds, duration, text, n = time.perf_counter() - t1, res.duration_s, res.text, len(res.segments)
    langs = sorted({s.language for s in res.segments})
else:
    from faster_whisper import WhisperModel
    m = WhisperModel(str(Path(models) / "whisper/base"), device="cpu", compute_type=compute, local_files_only=True)
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    segs, info = m.transcribe(path, beam_size=5, multilingual=mode == "plain-ml")
    segs = list(segs)
    seconds, duration, n = time.perf_counter() - t1, info.duration, len(segs)
    text = " ".join(s.text for s in segs)
    langs = sorted({getattr(s, "language", None) or info.language for s in segs}) or [info.language]
print(json.dumps({"load_s": load_s, "seconds": seconds, "duration": duration, "rss_mib": hwm(),
                  "segments": n, "languages": langs, "text": text}))
"""


def write_wav(path: Path, audio: np.ndarray) -> Path:
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(pcm.tobytes())
    return path


def child(mode: str, compute: str, path: Path, models: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, compute, str(path), str(models)],
        capture_output=True, text=True, check=True, env=env,
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    from mediafleet.common.media import iter_audio
    from mediafleet.common.provision import default_cache_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("MEDIAFLEET_TEST_MODELS_DIR") or default_cache_dir() / "test-models"),
    )
    parser.add_argument("--compute", nargs="+", default=["int8", "float32"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    speech = np.concatenate(list(iter_audio(args.media / "multilingual.mp3")), axis=1)[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "1 min": write_wav(Path(tmp) / "1min.wav", speech),
            "10 min": write_wav(Path(tmp) / "10min.wav", np.tile(speech, 10)),
        }
        plan = [("runner", c, label) for c in args.compute for label in files]
        plan += [("faster-whisper call", "int8", label) for label in files]
        plan += [("faster-whisper multilingual", "int8", "10 min")]
        for mode, compute, label in plan:
            started = time.perf_counter()
            kind = {"runner": "runner", "faster-whisper call": "plain"}.get(mode, "plain-ml")
            r = child(kind, compute, files[label], args.models_dir)
            rows.append(
                {
                    "mode": mode,
                    "compute": compute,
                    "audio": label,
                    **r,
                    "wall_s": time.perf_counter() - started,
                }
            )
            print(
                f"  {mode:27s} {compute:8s} {label:6s} RTF {r['seconds'] / r['duration']:.3f}  "
                f"peak RSS {r['rss_mib']:.0f} MiB  {r['segments']} segments  languages {r['languages']}",
                flush=True,
            )

    def get(mode: str, compute: str, label: str) -> dict:
        return next(r for r in rows if (r["mode"], r["compute"], r["audio"]) == (mode, compute, label))

    print("\nspeech on multilingual.mp3 (59.9 s, English then German) x1 and x10, beam 5, CPU")
    print(
        f"{'mode':27s} {'compute':8s} {'audio':6s} {'RTF':>6s} {'peak RSS MiB':>13s} {'segments':>9s}  languages"
    )
    for r in rows:
        print(
            f"{r['mode']:27s} {r['compute']:8s} {r['audio']:6s} {r['seconds'] / r['duration']:6.3f} "
            f"{r['rss_mib']:13.0f} {r['segments']:9d}  {','.join(r['languages'])}"
        )
    print()
    for c in args.compute:
        a, b = get("runner", c, "1 min"), get("runner", c, "10 min")
        print(f"runner {c}: peak RSS 10 min / 1 min = {b['rss_mib'] / a['rss_mib']:.2f}x")
    if {"int8", "float32"} <= set(args.compute):
        i8, f32 = get("runner", "int8", "10 min"), get("runner", "float32", "10 min")
        print(
            f"RTF float32 / int8 (10 min): {(f32['seconds'] / f32['duration']) / (i8['seconds'] / i8['duration']):.2f}x"
        )
    plain, ours = get("faster-whisper call", "int8", "10 min"), get("runner", "int8", "10 min")
    print(f"peak RSS faster-whisper call / runner (10 min, int8): {plain['rss_mib'] / ours['rss_mib']:.2f}x")
    ml = get("faster-whisper multilingual", "int8", "10 min")

    def rtf(r: dict) -> float:
        return float(r["seconds"] / r["duration"])

    print(
        f"RTF runner / faster-whisper call (10 min, int8): {rtf(ours) / rtf(plain):.2f}x; "
        f"runner / faster-whisper multilingual=True (language per 30-s segment): {rtf(ours) / rtf(ml):.2f}x"
    )
    pa = get("faster-whisper call", "int8", "1 min")
    print(f"faster-whisper call: peak RSS 10 min / 1 min = {plain['rss_mib'] / pa['rss_mib']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
