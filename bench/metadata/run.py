"""Metadata benchmark: what reading where and when costs per file, and the KD-tree against a brute-force search.

In one process, one after the other:
- GeoNames load: seconds and resident memory added (144,563 cities into scipy's KD-tree);
- ``runner.run("metadata", file)`` p50/p95 over ``--runs`` runs after one warm-up, per file of the
  shared corpus (a JPEG with EXIF and GPS, JPEGs without, a PNG, a TIFF, MP4, MP3, FLAC, Ogg);
- the nearest city to ``--points`` random positions: the KD-tree (``engine.nearest``) against
  the haversine distance to every city (NumPy, vectorised), p50 each and the ratio; both must
  agree on every point.

Data: ``mediafleet models pull geonames-cities1000`` into ``--models-dir`` (``make bench-metadata``).

    python bench/metadata/run.py [--runs 20] [--points 200] [--media ../shared/media] [--models-dir DIR]
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import time
from datetime import date
from pathlib import Path

import numpy as np

from mediafleet.common.provision import default_cache_dir
from mediafleet.common.settings import CoreSettings
from mediafleet.media_metadata.runner import MetadataRunner
from mediafleet.media_metadata.settings import MediaMetadataSettings

ROOT = Path(__file__).resolve().parents[2]
FILES = [
    "bus.jpg",
    "obama.jpg",
    "zidane.jpg",
    "english.png",
    "phototest.tif",
    "mmpose_demo.mp4",
    "multilingual.mp3",
    "jfk.flac",
    "fleurs-fr-000.ogg",
]


def rss_mib() -> float:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    parser.add_argument("--models-dir", type=Path, default=default_cache_dir() / "test-models")
    args = parser.parse_args()
    print(
        f"== media_metadata, {date.today()}, {platform.processor() or platform.machine()}, {args.runs} runs per file"
    )

    runner = MetadataRunner(MediaMetadataSettings(core=CoreSettings(models_dir=args.models_dir)))
    before, start = rss_mib(), time.perf_counter()
    runner.preload()
    print(
        f"GeoNames load: {time.perf_counter() - start:.2f} s, +{rss_mib() - before:.0f} MiB RSS ({rss_mib():.0f} MiB in all)"
    )

    print(f"{'file':24} {'p50 ms':>8} {'p95 ms':>8}  found")
    for name in FILES:
        path = args.media / name
        result = runner.run("metadata", path, {}, {}, lambda *_: None)
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            runner.run("metadata", path, {}, {}, lambda *_: None)
            times.append((time.perf_counter() - t) * 1000)
        found = (
            ", ".join(
                k
                for k in ("taken_at", "camera", "exposure", "gps", "place")
                if getattr(result, k) is not None
            )
            or "nothing"
        )
        print(f"{name:24} {statistics.median(times):8.2f} {percentile(times, 0.95):8.2f}  {found}")

    engine = runner.geonames
    lat = np.radians(engine._lat)
    lon = np.radians(engine._lon)
    rng = random.Random(1)
    tree_ms, brute_ms = [], []
    for _ in range(args.points):
        qlat, qlon = rng.uniform(-60, 70), rng.uniform(-180, 180)
        t = time.perf_counter()
        city, _ = engine.nearest(qlat, qlon)
        tree_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        p, q = math.radians(qlat), math.radians(qlon)
        a = np.sin((lat - p) / 2) ** 2 + np.cos(p) * np.cos(lat) * np.sin((lon - q) / 2) ** 2
        brute = engine.city(int(np.argmin(a)))
        brute_ms.append((time.perf_counter() - t) * 1000)
        assert city == brute, (qlat, qlon, city, brute)
    t50, b50 = statistics.median(tree_ms), statistics.median(brute_ms)
    print(
        f"nearest city, {args.points} random positions ({len(engine)} cities), same answer on all: "
        f"KD-tree p50 {t50:.3f} ms, brute force p50 {b50:.2f} ms: {b50 / t50:.0f}x"
    )


if __name__ == "__main__":
    main()
