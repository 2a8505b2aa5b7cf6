"""OCR benchmark: every engine and RapidOCR model side by side on the shared corpus's OCR images.

Configurations: RapidOCR with each of its models (``pp-ocrv4`` in its wheel, ``pp-ocrv5-mobile``,
``pp-ocrv6-small``, ``pp-ocrv6-tiny`` from the catalogue), Tesseract 5 (Debian's trained data;
``layout`` document for pages, scene for signs) and easyocr (``easyocr-en``). For each and each
image: character error rate (CER, ``mediafleet.ocr_detection.evaluation``) against the ground
truth of ``../shared/media/MANIFEST.md`` (``bench/ocr/ground_truth.json``), and p50/p95 latency
of ``engine.predict`` over ``--runs`` runs after one warm-up run, in one process, one
configuration after the other.

Each configuration is asked for the image's languages it reads (contract.engine_languages),
English where it reads none of them; a CER marked ``*`` is of a reader that could not be asked
for all of the image's languages. For chinese.jpg and korean.png the manifest lists the words in
no reading order, so their CER is computed on the lines sorted alphabetically ("order-free").

The models are provisioned into ``--models-dir`` by ``make test-models`` (``make bench-ocr``
does it).

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
from mediafleet.ocr_detection.contract import engine_languages  # noqa: E402
from mediafleet.ocr_detection.evaluation import cer  # noqa: E402
from mediafleet.ocr_detection.runner import OcrRunner  # noqa: E402
from mediafleet.ocr_detection.settings import OcrSettings  # noqa: E402

IMAGES = {  # image -> (its languages, document or scene)
    "english.png": (["en"], "document"),
    "phototest.tif": (["en"], "document"),
    "french.jpg": (["fr"], "scene"),
    "chinese.jpg": (["zh", "en"], "scene"),
    "korean.png": (["ko", "en"], "scene"),
}
CONFIGS = [  # (label, options without languages)
    ("rapidocr pp-ocrv4", {"engine": "rapidocr", "model": "pp-ocrv4"}),
    ("rapidocr pp-ocrv5-mobile", {"engine": "rapidocr", "model": "pp-ocrv5-mobile"}),
    ("rapidocr pp-ocrv6-small", {"engine": "rapidocr", "model": "pp-ocrv6-small"}),
    ("rapidocr pp-ocrv6-tiny", {"engine": "rapidocr", "model": "pp-ocrv6-tiny"}),
    ("tesseract", {"engine": "tesseract"}),
    ("easyocr", {"engine": "easyocr"}),
]
MODELS = ["pp-ocrv5-mobile", "pp-ocrv6-small", "pp-ocrv6-tiny", "easyocr-en"]


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
        help="models directory holding the catalogued OCR models (make test-models)",
    )
    parser.add_argument("--only", nargs="*", help="labels of the configurations to run (default: all)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    truth = json.loads((Path(__file__).parent / "ground_truth.json").read_text())

    for name in MODELS:
        missing = missing_files(catalogue()[name], args.models_dir)
        if missing:
            print(
                f"bench/ocr: {missing} missing from {args.models_dir}: run "
                f"`mediafleet models pull {name} --models-dir {args.models_dir}`",
                file=sys.stderr,
            )
            return 1
    runner = OcrRunner(OcrSettings(core=CoreSettings(models_dir=args.models_dir)))
    configs = [c for c in CONFIGS if not args.only or c[0] in args.only]

    rows = []
    for label, base in configs:
        eng = runner.engine(base["engine"])
        t0 = time.perf_counter()
        eng.load()
        eng.prepare(runner.resolved_options(base))
        print(f"# {label}: loaded in {time.perf_counter() - t0:.2f} s", flush=True)
        for name, (langs, kind) in IMAGES.items():
            readable = engine_languages(base["engine"], base.get("model"))
            asked = [x for x in langs if x in readable] or ["en"]
            opts = runner.resolved_options(
                {**base, "languages": asked, **({"layout": kind} if base["engine"] == "tesseract" else {})}
            )
            image = load_rgb(args.media / name)
            result = eng.predict(image, opts["languages"], opts)  # warm-up (and easyocr's Reader)
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                result = eng.predict(image, opts["languages"], opts)
                times.append((time.perf_counter() - start) * 1000)
            ref = truth[name]
            hyp, gold = (
                (order_free(result.text), order_free(ref["text"]))
                if ref.get("order_free")
                else (result.text, ref["text"])
            )
            rows.append(
                {
                    "config": label,
                    "image": name,
                    "languages": asked,
                    "all_languages": asked == langs,
                    "cer": round(cer(hyp, gold), 4),
                    "p50_ms": round(statistics.median(times), 1),
                    "p95_ms": round(percentile(times, 95), 1),
                    "lines": len(result.lines),
                    "dropped_lines": result.dropped_lines,
                    "model_version": result.model_version,
                }
            )
            r = rows[-1]
            print(
                f"{label:25s} {name:14s} {'+'.join(asked):6s} CER {r['cer']:.3f}  p50 {r['p50_ms']:8.1f} ms"
                f"  p95 {r['p95_ms']:8.1f} ms  lines {r['lines']} (dropped {r['dropped_lines']})",
                flush=True,
            )

    labels = [c[0] for c in configs]
    print("\n| image | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))

    def cell(label: str, name: str) -> str:
        r = next(r for r in rows if r["config"] == label and r["image"] == name)
        return f"{r['cer']:.3f}{'' if r['all_languages'] else '*'} / {r['p50_ms']:.0f} ms"

    for name in IMAGES:
        print(f"| {name} | " + " | ".join(cell(label, name) for label in labels) + " |")
    means = []
    for label in labels:
        mine = [r for r in rows if r["config"] == label]
        means.append(
            f"{statistics.mean(r['cer'] for r in mine):.3f} / {statistics.median(r['p50_ms'] for r in mine):.0f} ms"
        )
    print("| **mean CER / median p50** | " + " | ".join(means) + " |")
    print(
        f"\nCER / p50 of {args.runs} runs per image after a warm-up; * = not asked for every language of the image"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
