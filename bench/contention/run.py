"""Engines under shared cores: each engine's slowdown when another worker runs beside it.

A fleet on one VPS runs several AI workers on the same cores; each gives its libraries as
many threads as its CPU limit allows (mediafleet.common.resources.cpu_limit), so together
they oversubscribe the cores. Per engine, each in a fresh child process with the threads a
worker gets here: p50 latency over ``--runs`` calls after a warm-up, alone, then again while
a neighbour process runs another engine in a loop (``--neighbour``, default PyTorch pose, the
heaviest steady load), and the ratio beside/alone. Engines whose slowdown is close to the
share of the cores they lose degrade gracefully; a ratio far above 2 on 2 cores means thread
contention (spinning OpenMP threads), which favours other defaults.

Weights: ``make test-models`` (``--models-dir``, default the test models' directory).

    python bench/contention/run.py [--runs 5] [--neighbour pose-pt] [--only ocr-rapidocr ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: label -> (media file of the shared corpus, what it runs)
ENGINES = {
    "ocr-rapidocr": ("english.png", "RapidOCR, default model (ONNX Runtime)"),
    "ocr-tesseract": ("phototest.tif", "Tesseract 5 (OpenMP)"),
    "ocr-easyocr": ("phototest.tif", "easyocr (PyTorch)"),
    "faces-mtcnn": ("t1.jpg", "MTCNN detection (PyTorch)"),
    "faces-dlib": ("t1.jpg", "dlib HOG detection"),
    "pose-pt": ("bus.jpg", "YOLO11n-pose on PyTorch"),
    "pose-onnx": ("bus.jpg", "YOLO11n-pose on ONNX Runtime"),
    "nsfw-nudenet": ("bus.jpg", "NudeNet 320n (ONNX Runtime)"),
    "asr-whisper": ("jfk.flac", "Whisper base int8 (CTranslate2), 11 s of speech"),
}

CHILD = r"""
import json, statistics, sys, time
from pathlib import Path
label, media, models, mode, runs = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], int(sys.argv[5])
from mediafleet.common.media import load_rgb
from mediafleet.common.resources import apply_thread_limits
from mediafleet.common.settings import CoreSettings
threads = apply_thread_limits()
core = CoreSettings(models_dir=models)
if label.startswith("ocr-"):
    from mediafleet.ocr_detection.runner import OcrRunner
    from mediafleet.ocr_detection.settings import OcrSettings
    r = OcrRunner(OcrSettings(core=core))
    engine = label.split("-", 1)[1]
    opts = {"engine": engine, "languages": ["en"]}
    call = lambda: r.analyze(media, opts)
elif label.startswith("faces-"):
    from mediafleet.face_reid.runner import FaceReidRunner
    from mediafleet.face_reid.settings import FaceReidSettings
    r = FaceReidRunner(FaceReidSettings(core=core))
    det = {"mtcnn": "mtcnn", "dlib": "dlib_hog"}[label.split("-", 1)[1]]
    img = load_rgb(media, exif_transpose=True)
    call = lambda: r.detect(img, det, r.settings.min_score[det], r.settings.min_size)
elif label.startswith("pose-"):
    from mediafleet.pose_estimation.runner import PoseRunner
    from mediafleet.pose_estimation.settings import PoseSettings
    runtime = label.split("-", 1)[1]
    r = PoseRunner(PoseSettings(core=core, preload=[runtime]))
    r.preload()
    img = load_rgb(media)
    call = lambda: r.engines[runtime].predict(img)
elif label == "nsfw-nudenet":
    from mediafleet.clip_nsfw.engines.nudenet import NudeNetEngine
    e = NudeNetEngine(models)
    img = load_rgb(media)
    call = lambda: e.detect(img)
else:
    from mediafleet.whisper_transcriber.runner import WhisperRunner
    from mediafleet.whisper_transcriber.settings import WhisperSettings
    r = WhisperRunner(WhisperSettings(core=core))
    call = lambda: r.run("transcribe", media, {}, {}, lambda *a: None)
call()  # load + warm-up
if mode == "spin":
    print("ready", flush=True)
    while True:
        call()
times = []
for _ in range(runs):
    t = time.perf_counter()
    call()
    times.append((time.perf_counter() - t) * 1000)
print(json.dumps({"threads": threads, "p50_ms": statistics.median(times), "max_ms": max(times)}))
"""


def run_child(label: str, media: Path, models: Path, mode: str, runs: int) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1", "MEDIAFLEET_LOG_LEVEL": "WARNING"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, label, str(media), str(models), mode, str(runs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE if mode == "measure" else subprocess.DEVNULL, text=True,
        env=env,
    )  # fmt: skip


def measure(label: str, media: Path, models: Path, runs: int) -> dict[str, float]:
    proc = run_child(label, media, models, "measure", runs)
    out, err = proc.communicate()
    if proc.returncode != 0:
        tail = ["\n".join((err or "").strip().splitlines()[-25:]) or "no message"]
        raise SystemExit(f"bench/contention: {label} failed (exit {proc.returncode}): {tail[0]}")
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> int:
    from mediafleet.common.provision import default_cache_dir
    from mediafleet.common.resources import cpu_limit

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("MEDIAFLEET_TEST_MODELS_DIR") or default_cache_dir() / "test-models"),
    )
    parser.add_argument("--neighbour", default="pose-pt", choices=sorted(ENGINES))
    parser.add_argument("--only", nargs="*", choices=sorted(ENGINES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    print(
        f"bench/contention: CPU limit {cpu_limit()}, {args.runs} runs per engine, neighbour {args.neighbour}"
    )
    rows = {}
    for label in args.only or ENGINES:
        media = args.media / ENGINES[label][0]
        alone = measure(label, media, args.models_dir, args.runs)
        neighbour = run_child(
            args.neighbour, args.media / ENGINES[args.neighbour][0], args.models_dir, "spin", 0
        )
        try:
            assert neighbour.stdout is not None
            for line in neighbour.stdout:  # its libraries may log to stdout first
                if line.strip() == "ready":
                    break
            else:
                raise SystemExit(f"bench/contention: the neighbour {args.neighbour} did not start")
            time.sleep(1.0)
            beside = measure(label, media, args.models_dir, args.runs)
        finally:
            neighbour.kill()
            neighbour.wait()
        rows[label] = {
            "what": ENGINES[label][1],
            "threads": alone["threads"],
            "alone_p50_ms": round(alone["p50_ms"], 1),
            "beside_p50_ms": round(beside["p50_ms"], 1),
            "slowdown": round(beside["p50_ms"] / alone["p50_ms"], 2),
        }
        r = rows[label]
        print(f"{label:15s} alone {r['alone_p50_ms']:8.1f} ms  beside {r['beside_p50_ms']:8.1f} ms  "
              f"{r['slowdown']:.2f}x", flush=True)  # fmt: skip
    print(f"\n| engine | what | threads | p50 alone | p50 beside {args.neighbour} | slowdown |")
    print("|---|---|---|---|---|---|")
    for label, r in sorted(rows.items(), key=lambda kv: kv[1]["slowdown"]):
        print(
            f"| {label} | {r['what']} | {r['threads']} | {r['alone_p50_ms']:.0f} ms | "
            f"{r['beside_p50_ms']:.0f} ms | {r['slowdown']:.2f}x |"
        )
    print(f"median slowdown {statistics.median(r['slowdown'] for r in rows.values()):.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
