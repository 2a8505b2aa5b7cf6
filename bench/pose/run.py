"""Pose benchmark: YOLO11n-pose on PyTorch (.pt) and on ONNX Runtime (its ultralytics export), side by side.

Per thread count (``--threads 1,2``: both runtimes get the same, PyTorch's intra-op threads
and ONNX Runtime's), and per runtime, in one process, one after the other:
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


def measure(runner: PoseRunner, images: dict, runs: int, batches: list[int]) -> dict:
    """Per runtime: p50/p95 per image at batch 1, the median of the p50s and of the p95s, and
    images/s at each batch size."""
    report: dict = {}
    for runtime in ("pt", "onnx"):
        engine = runner.engines[runtime]
        per_image = {}
        for name, im in images.items():
            engine.predict(im)  # warm-up
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                people = len(engine.predict(im).people)
                times.append((time.perf_counter() - t) * 1000)
            per_image[name] = {
                "p50": statistics.median(times),
                "p95": percentile(times, 0.95),
                "people": people,
            }
        throughput = {}
        for b in batches:
            batch = [list(images.values())[i % len(images)] for i in range(b)]
            engine.predict_batch(batch)
            n_rounds = max(2, runs // b)
            t = time.perf_counter()
            for _ in range(n_rounds):
                engine.predict_batch(batch)
            throughput[b] = b * n_rounds / (time.perf_counter() - t)
        report[runtime] = {
            "images": per_image,
            "p50": statistics.median(v["p50"] for v in per_image.values()),
            "p95": statistics.median(v["p95"] for v in per_image.values()),
            "throughput_ips": throughput,
        }
    return report


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
        default="1,2",
        help="thread counts to compare, each given to both runtimes (POSE_THREADS; 0: the CPU limit)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    images = {n: load_rgb(args.media / n) for n in IMAGES if (args.media / n).is_file()}
    batches = [int(x) for x in args.batches.split(",")]
    import torch

    from mediafleet.common.resources import cpu_limit

    print(
        f"bench/pose: {len(images)} images, {args.runs} runs each, CPU limit {cpu_limit()}, cpu count {os.cpu_count()}"
    )
    report: dict = {}
    for threads in (int(x) for x in args.threads.split(",")):
        runner = PoseRunner(
            PoseSettings(
                core=CoreSettings(models_dir=args.models_dir), preload=["onnx", "pt"], threads=threads
            )
        )
        runner.preload()
        if runner.ready():
            print(f"bench/pose: {runner.ready()}", file=sys.stderr)
            return 1
        onnx_threads = runner.engines["onnx"].onnx_threads()  # type: ignore[attr-defined]
        print(
            f"# threads {threads}: torch {torch.get_num_threads()}, onnxruntime intra-op {onnx_threads}",
            flush=True,
        )
        report[threads] = measure(runner, images, args.runs, batches)
        pt, ox = report[threads]["pt"], report[threads]["onnx"]
        print(f"\n{'image':<24}{'people':>7}  {'pt p50/p95 ms':>16}  {'onnx p50/p95 ms':>16}  {'pt/onnx':>8}")
        for name in images:
            a, b = pt["images"][name], ox["images"][name]
            print(
                f"{name:<24}{b['people']:>7}  {a['p50']:>7.1f}/{a['p95']:>7.1f}  "
                f"{b['p50']:>7.1f}/{b['p95']:>7.1f}  {a['p50'] / b['p50']:>7.2f}x"
            )
        print(flush=True)

    print("| threads (both runtimes) | .pt p50 / p95 | ONNX p50 / p95 | pt/onnx (p50) | batch "
          + " / ".join(map(str, batches)) + " images/s, pt | onnx |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for threads, r in report.items():
        pt, ox = r["pt"], r["onnx"]
        faster = "ONNX faster" if pt["p50"] > ox["p50"] else "PyTorch faster"
        tp = " / ".join(f"{pt['throughput_ips'][b]:.1f}" for b in batches)
        to = " / ".join(f"{ox['throughput_ips'][b]:.1f}" for b in batches)
        print(
            f"| {threads} | {pt['p50']:.1f} / {pt['p95']:.1f} ms | {ox['p50']:.1f} / {ox['p95']:.1f} ms | "
            f"{pt['p50'] / ox['p50']:.2f}x ({faster}) | {tp} | {to} |"
        )
    print("(p50 / p95: median over the images of each image's p50 / p95)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
