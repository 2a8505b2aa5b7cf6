"""Face benchmark on the shared corpus (real weights: MTCNN from facenet-pytorch, dlib's HOG
detector, 5-point predictor and ResNet descriptor), detectors side by side in one process.

Per detector (``mtcnn``, ``dlib_hog``; embedder ``dlib``):
- verification on every pair of the corpus' single-face identity images (MANIFEST: face
  re-identification): accuracy at the contract's threshold (cosine 0.93), the lowest
  same-person and the highest different-person similarity (the margin around it);
- detection ms per image (p50/p95 over ``--runs`` runs after a warm-up) and embedding ms
  per face; face counts on the count images (t1 6, obama 1, zidane 2, view 0);
- recall by count over those images and the identity images (one face each), and faces found
  beyond the expected count;
- the ratio of the two detectors' p50 detection times.

    python bench/faces/run.py [--runs 3] [--media ../shared/media] [--models-dir DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

from mediafleet.common.media import load_rgb
from mediafleet.common.provision import default_cache_dir
from mediafleet.face_reid.contract import MATCH_THRESHOLDS
from mediafleet.face_reid.runner import FaceReidRunner
from mediafleet.face_reid.settings import FaceReidSettings

ROOT = Path(__file__).resolve().parents[2]
IDENTITIES = {
    "obama.jpg": "obama", "obama2.jpg": "obama", "obama-480p.jpg": "obama",
    "Rob_Lowe_0001.jpg": "rob_lowe", "Rob_Lowe_0002.jpg": "rob_lowe", "biden.jpg": "biden",
    "Nathalie_Baye_0002.jpg": "nathalie_baye", "lin-manuel-miranda.png": "lin_manuel_miranda",
    "alex-lacamoire.png": "alex_lacamoire",
}  # fmt: skip
COUNTS = {"t1.jpg": 6, "obama.jpg": 1, "zidane.jpg": 2, "view.jpg": 0}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def recall(counts: dict[str, int]) -> dict[str, float | int]:
    """Face recall by count (no box ground truth in the manifest): per image min(found, expected)
    summed over the count images and the identity images (one face each), over the faces
    expected; ``extra``: faces found beyond the expected count."""
    expected = {**{n: 1 for n in IDENTITIES}, **COUNTS}
    found = sum(min(counts[n], k) for n, k in expected.items())
    extra = sum(max(counts[n] - k, 0) for n, k in expected.items())
    total = sum(expected.values())
    return {"found": found, "expected": total, "recall": found / total, "extra": extra}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument("--models-dir", type=Path, default=Path(os.environ.get("MEDIAFLEET_TEST_MODELS_DIR")
                        or default_cache_dir() / "test-models"))  # fmt: skip
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    runner = FaceReidRunner(FaceReidSettings(core={"models_dir": args.models_dir}))
    runner.preload()
    if runner.ready():
        raise SystemExit(f"bench/faces: {runner.ready()}")
    images = {n: load_rgb(args.media / n, exif_transpose=True) for n in {*IDENTITIES, *COUNTS}}
    threshold = MATCH_THRESHOLDS["dlib"]
    report: dict[str, dict] = {}
    for detector in ("mtcnn", "dlib_hog"):
        opts = {"detector": detector, "min_score": runner.settings.min_score[detector]}
        det_ms, emb_ms, counts, vecs = [], [], {}, {}
        for name, img in images.items():
            runner.detect(img, detector, opts["min_score"], runner.settings.min_size)  # warm-up
            for _ in range(args.runs):
                t = time.perf_counter()
                found = runner.detect(img, detector, opts["min_score"], runner.settings.min_size)
                det_ms.append((time.perf_counter() - t) * 1000)
            for face in found:
                t = time.perf_counter()
                vec, _, _ = runner.embed(img, face, "dlib")
                emb_ms.append((time.perf_counter() - t) * 1000)
            counts[name] = len(found)
            if name in IDENTITIES and found:
                vecs[name] = runner.embed(img, found[0], "dlib")[0]
        same, diff, correct, total = [], [], 0, 0
        for a, b in itertools.combinations(sorted(vecs), 2):
            sim = float(vecs[a] @ vecs[b])
            is_same = IDENTITIES[a] == IDENTITIES[b]
            (same if is_same else diff).append(sim)
            correct += int((sim >= threshold) == is_same)
            total += 1
        report[detector] = {
            "pairs": total, "accuracy": correct / total if total else float("nan"),
            "min_same": min(same), "max_different": max(diff),
            "detect_ms_p50": pct(det_ms, 50), "detect_ms_p95": pct(det_ms, 95),
            "embed_ms_per_face_p50": pct(emb_ms, 50), "embed_ms_per_face_p95": pct(emb_ms, 95),
            "counts": {n: counts[n] for n in COUNTS}, "counts_expected": COUNTS,
            **recall(counts),
        }  # fmt: skip
    print(f"faces on {len(images)} corpus images, {args.runs} runs each, threshold cosine {threshold} (dlib)")
    print(f"{'detector':<10} {'pairs':>5} {'accuracy':>8} {'min same':>9} {'max diff':>9} "
          f"{'detect p50/p95 ms':>18} {'embed/face p50 ms':>18}  counts (t1, obama, zidane, view)")  # fmt: skip
    for det, r in report.items():
        print(f"{det:<10} {r['pairs']:>5} {r['accuracy']:>8.3f} {r['min_same']:>9.3f} {r['max_different']:>9.3f} "
              f"{r['detect_ms_p50']:>8.0f} / {r['detect_ms_p95']:<7.0f} {r['embed_ms_per_face_p50']:>18.1f}  "
              f"{[r['counts'][n] for n in COUNTS]} (expected {list(COUNTS.values())})")  # fmt: skip
    for det, r in report.items():
        print(f"{det:<10} recall {r['found']}/{r['expected']} = {r['recall']:.3f}, extra faces {r['extra']} "
              "(count images + one face per identity image)")  # fmt: skip
    ratio = report["dlib_hog"]["detect_ms_p50"] / report["mtcnn"]["detect_ms_p50"]
    print(f"detection p50 dlib_hog / mtcnn: {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
