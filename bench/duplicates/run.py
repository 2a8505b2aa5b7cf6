"""Near-duplicate benchmark: how well the fingerprint task's rule separates copies from different files, and its cost.

In one process, one after the other (the same runner the fleet and the CLI use):
- images: every photo and scan of the shared corpus against copies made here (50 % resize,
  JPEG quality 40, 3 / 5 / 10 % crops, and all of 60 % + 3 % crop + quality 70): recall per
  transform; every pair of different files of the corpus: false duplicates (the corpus'
  manifest names one true pair, obama-480p.jpg and obama.jpg); pHash + dHash distances,
  worst copy against closest different pair;
- sound: the shared recordings against their AAC re-encodes (24 kbit/s) and against each
  other, over their overlap: Chromaprint bit error rates (the rule: <= MAX_AUDIO_BER);
- video: generated clips that share only a 2 s black fade-in (must not be duplicates) and
  the same clips re-encoded at 150 kbit/s (must be);
- cost: fingerprint p50 per file over ``--runs`` runs (an image, a 10 s 720p clip with sound,
  a 30 s 1080p clip).

    python bench/duplicates/run.py [--runs 5] [--media ../shared/media]
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from PIL import Image

from mediafleet.common.settings import CoreSettings
from mediafleet.media_metadata.contract import (
    MAX_AUDIO_BER,
    MAX_HASH_BITS,
    FingerprintResult,
    audio_ber,
    fingerprint_likeness,
    hamming,
)
from mediafleet.media_metadata.runner import MetadataRunner
from mediafleet.media_metadata.settings import MediaMetadataSettings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.media_files import transcode, write_clip  # noqa: E402  (the tests' own media makers)

TRUE_PAIRS = {("obama-480p.jpg", "obama.jpg")}
RECORDINGS = ["jfk.flac", "fleurs-de-000.ogg", "fleurs-fr-000.ogg", "hotwords.mp3", "multilingual.mp3"]


def transforms() -> dict[str, Callable[[Image.Image], Image.Image]]:
    def crop(k: float) -> Callable[[Image.Image], Image.Image]:
        return lambda im: im.crop(
            (
                int(im.width * k),
                int(im.height * k),
                im.width - int(im.width * k),
                im.height - int(im.height * k),
            )
        )

    return {
        "resize 50 %": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
        "JPEG q40": lambda im: im,
        "crop 3 %": crop(0.03),
        "crop 5 %": crop(0.05),
        "crop 10 %": crop(0.10),
        "60 % + crop 3 % + q70": lambda im: crop(0.03)(
            im.resize((int(im.width * 0.6), int(im.height * 0.6)))
        ),
    }


def bits(a: FingerprintResult, b: FingerprintResult) -> int:
    assert a.phash and b.phash and a.dhash and b.dhash
    return hamming(a.phash, b.phash) + hamming(a.dhash, b.dhash)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dup-"))
    runner = MetadataRunner(MediaMetadataSettings(core=CoreSettings(models_dir=tmp / "none")))

    def fp(path: Path) -> FingerprintResult:
        out = runner.run("fingerprint", path, {}, {}, lambda *_: None)
        assert isinstance(out, FingerprintResult)
        return out

    print(f"# near-duplicates, {date.today()}, {platform.node()} ({platform.machine()}), rule: "
          f"pHash+dHash <= {MAX_HASH_BITS} of 128 bits; sound BER <= {MAX_AUDIO_BER}\n")  # fmt: skip
    images = sorted(p for p in args.media.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif"))
    originals = {p.name: fp(p) for p in images}
    print(f"## images ({len(images)} files of the shared corpus)\n")
    print("| copy | found | worst distance (bits) |\n|---|---|---|")
    worst_copy = 0
    for name, make in transforms().items():
        found, worst = 0, 0
        for p in images:
            out = tmp / f"{p.stem}.jpg"
            quality = 40 if name == "JPEG q40" else 70 if "q70" in name else 90
            make(Image.open(p).convert("RGB")).save(out, "JPEG", quality=quality)
            copy = fp(out)
            found += fingerprint_likeness(originals[p.name], copy).duplicate
            worst = max(worst, bits(originals[p.name], copy))
        if "10 %" not in name:
            worst_copy = max(worst_copy, worst)
        print(f"| {name} | {found}/{len(images)} | {worst} |")
    pairs = list(itertools.combinations(sorted(originals), 2))
    false = [
        (a, b)
        for a, b in pairs
        if (a, b) not in TRUE_PAIRS and fingerprint_likeness(originals[a], originals[b]).duplicate
    ]
    closest = min(bits(originals[a], originals[b]) for a, b in pairs if (a, b) not in TRUE_PAIRS)
    true_found = all(fingerprint_likeness(originals[a], originals[b]).duplicate for a, b in TRUE_PAIRS)
    print(f"\ndifferent files: {len(false)} false duplicates of {len(pairs) - len(TRUE_PAIRS)} pairs "
          f"(closest {closest} bits; copies up to a 5 % crop: {worst_copy} bits at worst); "
          f"the manifest's letter-boxed pair found: {true_found}\n")  # fmt: skip

    print("## sound (Chromaprint bit error rate at the best shift)\n")
    same, other = [], []
    prints = {}
    for name in RECORDINGS:
        src = args.media / name
        prints[name] = fp(transcode(src, tmp / f"{name}.m4a", bit_rate=0, audio_bit_rate=64_000))
        low = fp(transcode(src, tmp / f"{name}.24k.m4a", bit_rate=0, audio_bit_rate=24_000))
        same.append(audio_ber(prints[name].audio or [], low.audio or []))
    for a, b in itertools.combinations(RECORDINGS, 2):
        other.append(audio_ber(prints[a].audio or [], prints[b].audio or []))
    print(f"| pairs | n | BER min | BER max |\n|---|---|---|---|\n"
          f"| same recording, AAC 64 vs 24 kbit/s | {len(same)} | {min(same):.3f} | {max(same):.3f} |\n"
          f"| different recordings | {len(other)} | {min(other):.3f} | {max(other):.3f} |\n")  # fmt: skip

    print("## video (generated 6 s clips: 2 s black, then a different picture per seed)\n")
    clips = [write_clip(tmp / f"clip{s}.mp4", seed=s) for s in range(1, 5)]
    lows = [transcode(c, tmp / f"clip{s}-150k.mp4", bit_rate=150_000) for s, c in enumerate(clips, 1)]
    fc, fl = [fp(c) for c in clips], [fp(c) for c in lows]
    shared_fade = sum(fingerprint_likeness(a, b).duplicate for a, b in itertools.combinations(fc, 2))
    reencoded = sum(fingerprint_likeness(a, b).duplicate for a, b in zip(fc, fl, strict=True))
    print(f"clips sharing only the fade-in called duplicates: {shared_fade} of {len(fc) * (len(fc) - 1) // 2}; "
          f"re-encoded at 150 kbit/s found: {reencoded} of {len(fc)}\n")  # fmt: skip

    print(f"## cost (p50 of {args.runs} runs)\n\n| file | p50 ms |\n|---|---|")
    hd = write_clip(tmp / "hd.mp4", seed=9, black_s=1, content_s=29, size=(1920, 1080), bit_rate=4_000_000)
    for path in (args.media / "bus.jpg", args.media / "short_hamilton_clip.mp4", hd):
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            fp(path)
            times.append((time.perf_counter() - t0) * 1000)
        label = "generated 30 s 1080p clip" if path == hd else path.name
        print(f"| {label} | {statistics.median(times):.0f} |")


if __name__ == "__main__":
    main()
