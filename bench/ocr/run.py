"""OCR benchmark: RapidOCR and easyocr side by side on the shared corpus's OCR images.

For each engine and image: character error rate (CER, see
``mediafleet.ocr_detection.evaluation``) against the ground truth of
``../shared/media/MANIFEST.md`` (``bench/ocr/ground_truth.json``), and p50/p95
latency of ``engine.predict`` over ``--runs`` runs after one warm-up run, in one
process, one engine after the other.

For chinese.jpg and korean.png the manifest lists the words in no reading order,
so their CER is computed on the lines sorted alphabetically ("order-free").

easyocr runs on its real weights from the model catalogue (``easyocr-en``: CRAFT +
the English generation-2 recogniser), provisioned into ``--models-dir`` by
``mediafleet models pull easyocr-en`` (``make bench-ocr`` does it). Only the English
recogniser is catalogued, so easyocr reads every image with ``en``: its French loses
accents and its Chinese/Korean figures measure a Latin-only reader.

    python bench/ocr/run.py [--runs 5] [--media ../shared/media] [--models-dir DIR] [--json out.json]
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
sys.path.insert(0, str(ROOT))

from mediafleet.common.catalogue import catalogue, missing_files  # noqa: E402
from mediafleet.common.media import load_rgb  # noqa: E402
from mediafleet.common.provision import default_cache_dir  # noqa: E402
from mediafleet.common.settings import CoreSettings  # noqa: E402
from mediafleet.ocr_detection.evaluation import cer  # noqa: E402
from mediafleet.ocr_detection.runner import OcrRunner  # noqa: E402
from mediafleet.ocr_detection.settings import OcrSettings  # noqa: E402

IMAGES = {  # image -> languages asked of each engine
    "english.png": {"rapidocr": ["en"], "easyocr": ["en"]},
    "phototest.tif": {"rapidocr": ["en"], "easyocr": ["en"]},
    "french.jpg": {"rapidocr": ["en"], "easyocr": ["en"]},
    "chinese.jpg": {"rapidocr": ["zh", "en"], "easyocr": ["en"]},
    "korean.png": {"rapidocr": ["en"], "easyocr": ["en"]},
}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100])."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def order_free(text: str) -> str:
    return "\n".join(sorted(line.strip() for line in text.splitlines() if line.strip()))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("MEDIAFLEET_TEST_MODELS_DIR") or default_cache_dir() / "test-models"),
        help="models directory holding easyocr-en (mediafleet models pull easyocr-en --models-dir DIR)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    truth = json.loads((Path(__file__).parent / "ground_truth.json").read_text())

    missing = missing_files(catalogue()["easyocr-en"], args.models_dir)
    if missing:
        print(
            f"bench/ocr: {missing} missing from {args.models_dir}: run "
            f"`mediafleet models pull easyocr-en --models-dir {args.models_dir}`",
            file=sys.stderr,
        )
        return 1
    runner = OcrRunner(OcrSettings(core=CoreSettings(models_dir=args.models_dir)))

    rows = []
    for engine in ("rapidocr", "easyocr"):
        eng = runner.engine(engine)
        t0 = time.perf_counter()
        eng.load()
        print(f"# {engine}: loaded in {time.perf_counter() - t0:.2f} s", flush=True)
        for name, langs in IMAGES.items():
            path = args.media / name
            image = load_rgb(path)
            languages = langs[engine]
            result = eng.predict(image, languages)  # warm-up (and easyocr's per-language Reader)
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                result = eng.predict(image, languages)
                times.append((time.perf_counter() - start) * 1000)
            ref = truth[name]
            hyp, gold = (
                (order_free(result.text), order_free(ref["text"]))
                if ref.get("order_free")
                else (result.text, ref["text"])
            )
            rows.append(
                {
                    "engine": engine,
                    "image": name,
                    "languages": languages,
                    "cer": round(cer(hyp, gold), 4),
                    "p50_ms": round(statistics.median(times), 1),
                    "p95_ms": round(percentile(times, 95), 1),
                    "lines": len(result.lines),
                    "model_version": result.model_version,
                }
            )
            r = rows[-1]
            print(
                f"{engine:9s} {name:14s} CER {r['cer']:.3f}  p50 {r['p50_ms']:8.1f} ms  p95 {r['p95_ms']:8.1f} ms"
                f"  lines {r['lines']}",
                flush=True,
            )

    print("\n| image | RapidOCR CER | RapidOCR p50 / p95 ms | easyocr CER | easyocr p50 / p95 ms |")
    print("|---|---|---|---|---|")
    for name in IMAGES:
        a = next(r for r in rows if r["engine"] == "rapidocr" and r["image"] == name)
        b = next(r for r in rows if r["engine"] == "easyocr" and r["image"] == name)
        b_cer = f"{b['cer']:.3f}"
        print(
            f"| {name} | {a['cer']:.3f} | {a['p50_ms']:.0f} / {a['p95_ms']:.0f} | {b_cer} | "
            f"{b['p50_ms']:.0f} / {b['p95_ms']:.0f} |"
        )
    ra = [r["p50_ms"] for r in rows if r["engine"] == "rapidocr"]
    ea = [r["p50_ms"] for r in rows if r["engine"] == "easyocr"]
    print(
        f"\nmedian of per-image p50: rapidocr {statistics.median(ra):.0f} ms, easyocr {statistics.median(ea):.0f} ms,"
        f" easyocr/rapidocr = {statistics.median(ea) / statistics.median(ra):.2f}x ({args.runs} runs per image)"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
