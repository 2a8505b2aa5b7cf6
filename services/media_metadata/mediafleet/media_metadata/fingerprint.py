"""Perceptual fingerprints of images, video frames and sound (the ``fingerprint`` task).

- Images and frames: pHash (DCT of a 32 x 32 grey image, 8 x 8 low frequencies against their
  median) and dHash (sign of horizontal gradients of a 9 x 8 grey image), 64 bits each, by
  the ``imagehash`` library (Zauner, "Implementation and Benchmarking of Perceptual Image
  Hash Functions", 2010; Krawetz, "Looks Like It", hackerfactor.com, 2011). Uniform bars
  along the edges (letterbox, pillarbox) are cut first, so a letter-boxed copy hashes like
  its original.
- Sound: Chromaprint (:mod:`mediafleet.media_metadata.engines.chromaprint`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mediafleet.common.media import FrameSampling, load_rgb_fitted, sample_frames
from mediafleet.media_metadata.contract import FrameHash

#: Grey standard deviation (0-255) under which a frame is flat and never compared.
FLAT_STD = 8.0
#: Video: at most this many frames are hashed, at least this far apart (seconds).
MAX_FRAMES = 120
MIN_STEP_S = 0.5
#: Pixels the image or frame is reduced to before hashing (the hashes read 32 x 32 at most).
HASH_SIDE = 256


def _bars(grey: np.ndarray) -> int:
    """How many leading rows of ``grey`` (H, W float32) are a uniform bar of the first row's tone."""
    first = float(grey[0].mean())
    flat = (grey.std(axis=1) < 3.0) & (np.abs(grey.mean(axis=1) - first) < 8.0)
    return int(np.argmin(flat)) if not flat.all() else len(flat)


def trim_bars(img: Image.Image) -> tuple[Image.Image, list[int]]:
    """``img`` without uniform bars along its edges, and the pixels cut [left, top, right,
    bottom]. Nothing is cut when the bars would leave less than a fifth of either side (a
    flat image stays whole)."""
    grey = np.asarray(img.convert("L"), dtype=np.float32)
    h, w = grey.shape
    top, bottom = _bars(grey), _bars(grey[::-1])
    left, right = _bars(grey.T), _bars(grey.T[::-1])
    if top + bottom > 0.8 * h or left + right > 0.8 * w or not (top or bottom or left or right):
        return img, [0, 0, 0, 0]
    return img.crop((left, top, w - right, h - bottom)), [left, top, right, bottom]


def image_hashes(img: Image.Image) -> tuple[str, str, bool]:
    """(pHash hex, dHash hex, informative) of an RGB image: 16 hex digits each; informative
    is False for a flat image (grey std < :data:`FLAT_STD`)."""
    import imagehash

    small = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float32)
    return str(imagehash.phash(img)), str(imagehash.dhash(img)), float(small.std()) >= FLAT_STD


@dataclass(frozen=True)
class ImageHashes:
    """An image's hashes (16 hex digits each), whether it is flat, the bars cut before hashing
    ([left, top, right, bottom], pixels of the full image) and its size after EXIF orientation."""

    phash: str
    dhash: str
    flat: bool
    trimmed: list[int]
    width: int
    height: int


def hash_image(path: Path) -> ImageHashes:
    """The hashes of the image at ``path``. Raises InvalidMedia, or UnsupportedMediaType when it
    is not an image."""
    fitted = load_rgb_fitted(path, max_side=HASH_SIDE * 2, exif_transpose=True)
    img, cut = trim_bars(Image.fromarray(fitted.pixels))
    phash, dhash, informative = image_hashes(img)
    return ImageHashes(
        phash, dhash, not informative, [c * fitted.scale for c in cut], fitted.width, fitted.height
    )


def hash_frames(path: Path, duration_s: float | None) -> tuple[float, list[FrameHash], int, int]:
    """(step, hashes, width, height) of up to :data:`MAX_FRAMES` frames sampled every
    ``step = max(MIN_STEP_S, duration / MAX_FRAMES)`` seconds. Raises InvalidMedia."""
    step = max(MIN_STEP_S, (duration_s or 0.0) / MAX_FRAMES)
    sampling = FrameSampling(every_s=step, scene_threshold=0.0, max_frames=MAX_FRAMES, min_gap_s=0.0)
    out, width, height = [], 0, 0
    for t, rgb in sample_frames(path, sampling, max_side=HASH_SIDE):
        height, width = rgb.shape[:2]
        img, _ = trim_bars(Image.fromarray(rgb))
        phash, dhash, informative = image_hashes(img)
        out.append(FrameHash(t=t, phash=phash, dhash=dhash, informative=informative))
    return step, out, width, height
