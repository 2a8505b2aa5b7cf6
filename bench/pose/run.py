"""Pose benchmark: YOLO11n-pose on PyTorch (.pt) and on ONNX Runtime (its ultralytics export), side by side.

Per runtime, in one process, one runtime after the other:
- latency per image at batch 1 (``engine.predict`` on a decoded RGB array: letterbox,
  inference, NMS, keypoint decoding), p50/p95 over ``--runs`` runs per image after one
  warm-up, on the corpus's pose images (``../shared/media``), and the ratio pt/onnx;
- throughput in images/s at batch 1, 4 and 8 (the same images repeated to fill a batch;
  the static ONNX export is batch 1, so ultralytics feeds it one image at a time).

Weights: ``mediafleet models pull yolo11n-pose yolo11n-pose-onnx`` into ``--models-dir``
(``make bench-pose`` does it).

    python bench/pose/run.py [--runs 10] [--media ../shared/media] [--models-dir DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

from mediafleet.common.media import load_rgb  # noqa: E402
from mediafleet.common.provision import default_cache_dir  # noqa: E402
from mediafleet.common.settings import CoreSettings  # noqa: E402
from mediafleet.pose_estimation.runner import PoseRunner  # noqa: E402
from mediafleet.pose_estimation.settings import PoseSettings  # noqa: E402

IMAGES = [
    "bus.jpg",
    "zidane.jpg",
    "coco_000000000785.jpg",
    "coco_000000196141.jpg",
    "human-pose.jpeg",
    "view.jpg",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("MEDIAFLEET_TEST_MODELS_DIR") or default_cache_dir() / "test-models"),
    )
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="PyTorch CPU threads (POSE_THREADS; 0: every core, 1: ultralytics' choice on 2 cores)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    images = {n: load_rgb(args.media / n) for n in IMAGES if (args.media / n).is_file()}
    runner = PoseRunner(
        PoseSettings(
            core=CoreSettings(models_dir=args.models_dir), preload=["onnx", "pt"], threads=args.threads
        )
    )
    runner.preload()
    if runner.ready():
        print(f"bench/pose: {runner.ready()}", file=sys.stderr)
        return 1
    import torch

    print(
        f"bench/pose: {len(images)} images, {args.runs} runs each, torch threads {torch.get_num_threads()}, "
        f"cpu count {os.cpu_count()}"
    )
    report: dict = {"latency_ms": {}, "throughput_ips": {}}
    for runtime in ("pt", "onnx"):
        engine = runner.engines[runtime]
        per_image = {}
        for name, im in images.items():
            engine.predict(im)  # warm-up
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                people = len(engine.predict(im).people)
                times.append((time.perf_counter() - t) * 1000)
            per_image[name] = {
                "p50": statistics.median(times),
                "p95": percentile(times, 0.95),
                "people": people,
            }
        every = [v["p50"] for v in per_image.values()]
        report["latency_ms"][runtime] = {"images": per_image, "p50_of_p50": statistics.median(every)}
        for b in (int(x) for x in args.batches.split(",")):
            batch = [list(images.values())[i % len(images)] for i in range(b)]
            engine.predict_batch(batch)
            n_rounds = max(2, args.runs // b)
            t = time.perf_counter()
            for _ in range(n_rounds):
                engine.predict_batch(batch)
            report["throughput_ips"].setdefault(runtime, {})[b] = b * n_rounds / (time.perf_counter() - t)

    print(f"\n{'image':<24}{'people':>7}  {'pt p50/p95 ms':>16}  {'onnx p50/p95 ms':>16}  {'pt/onnx':>8}")
    for name in images:
        pt = report["latency_ms"]["pt"]["images"][name]
        ox = report["latency_ms"]["onnx"]["images"][name]
        print(
            f"{name:<24}{ox['people']:>7}  {pt['p50']:>7.1f}/{pt['p95']:>7.1f}  "
            f"{ox['p50']:>7.1f}/{ox['p95']:>7.1f}  {pt['p50'] / ox['p50']:>7.2f}x"
        )
    pt_all, ox_all = report["latency_ms"]["pt"]["p50_of_p50"], report["latency_ms"]["onnx"]["p50_of_p50"]
    print(f"{'median of p50':<24}{'':>7}  {pt_all:>16.1f}  {ox_all:>16.1f}  {pt_all / ox_all:>7.2f}x")
    print(f"\n{'batch':<8}{'pt images/s':>12}{'onnx images/s':>15}{'onnx/pt':>9}")
    for b, pt in report["throughput_ips"]["pt"].items():
        ox = report["throughput_ips"]["onnx"][b]
        print(f"{b:<8}{pt:>12.1f}{ox:>15.1f}{ox / pt:>8.2f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
