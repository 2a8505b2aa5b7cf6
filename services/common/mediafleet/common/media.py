"""Media probing and decoding: the real content type from the bytes, never the file name.

Images only for now (Pillow). Audio and video join when their services exist.
"""

from __future__ import annotations

import contextlib
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


def load_rgb(path: str | Path, exif_transpose: bool = False) -> np.ndarray:
    """Decode an image to an RGB array, shape (H, W, 3), dtype uint8.

    ``exif_transpose``: rotate/flip to the displayed orientation (EXIF tag 0x0112), so
    coordinates computed on the array match what a viewer shows; otherwise the stored
    orientation. Animated images give their first frame; grayscale, palette, RGBA, CMYK and
    16-bit images are converted to 8-bit RGB (alpha dropped). A broken EXIF block is ignored.

    Raises InvalidMedia / UnsupportedMediaType like :func:`probe_image`.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", message="(?i).*corrupt exif", category=UserWarning)
            img = Image.open(path)
        with img:
            if img.width * img.height > MAX_PIXELS:  # checked on the header, before any decoding
                raise InvalidMedia(f"{path}: image is too large to decode: {img.width}x{img.height} pixels")
            if exif_transpose:
                # unreadable EXIF: keep the stored orientation (Pillow warns, then may raise)
                with (
                    warnings.catch_warnings(),
                    contextlib.suppress(OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error),
                ):
                    warnings.simplefilter("ignore", UserWarning)
                    img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grey: scale, do not clip
                arr = np.asarray(img, dtype=np.float64)
                top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
                grey = np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaType(f"{path}: not a supported image") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidMedia(f"{path}: image refused as a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidMedia(f"{path}: image data cannot be decoded: {exc}") from exc
