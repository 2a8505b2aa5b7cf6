"""Media probing and decoding: the real content type from the bytes, never the file name.

Images only for now (Pillow). Audio and video join when their services exist.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mediafleet.common.errors import InvalidMedia, UnsupportedMediaType

#: Pillow formats we accept, with their MIME type and the file extension we store.
IMAGE_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("image/jpeg", ".jpg"),
    "PNG": ("image/png", ".png"),
    "TIFF": ("image/tiff", ".tif"),
    "WEBP": ("image/webp", ".webp"),
    "BMP": ("image/bmp", ".bmp"),
    "GIF": ("image/gif", ".gif"),
}

#: Refuse decompression bombs well before Pillow's own warning threshold.
MAX_PIXELS = 80_000_000


@dataclass(frozen=True)
class MediaProbe:
    """What the bytes are: ``kind`` ("image"), ``mime``, pixel ``width``/``height``, stored ``extension``."""

    kind: str
    mime: str
    width: int
    height: int
    extension: str


def probe_image(path: str | Path) -> MediaProbe:
    """Identify and fully decode an image file.

    Raises:
        InvalidMedia: empty file, truncated or corrupt data of a known format.
        UnsupportedMediaType: bytes that are not an image format we accept.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise InvalidMedia("file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                fmt = img.format
                width, height = img.size
                if fmt not in IMAGE_FORMATS:
                    raise UnsupportedMediaType(f"image format {fmt} is not supported")
                if width * height > MAX_PIXELS:
                    raise InvalidMedia(f"image is too large to decode: {width}x{height} pixels")
                img.load()  # full decode: catches truncated and corrupt data
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaType(
            "content is not a supported image (JPEG, PNG, TIFF, WebP, BMP, GIF)"
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidMedia(f"image refused as a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidMedia(f"image data cannot be decoded: {exc}") from exc
    mime, ext = IMAGE_FORMATS[fmt]
    return MediaProbe(kind="image", mime=mime, width=width, height=height, extension=ext)


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image to an RGB array, shape (H, W, 3), dtype uint8, EXIF orientation ignored.

    Raises InvalidMedia / UnsupportedMediaType like :func:`probe_image`.
    """
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaType(f"{path}: not a supported image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidMedia(f"{path}: image data cannot be decoded: {exc}") from exc
