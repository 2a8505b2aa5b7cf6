"""Media probing refuses what it cannot decode, judging by the bytes, not the name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mediafleet.common.errors import InvalidMedia, UnsupportedMediaType
from mediafleet.common.media import load_rgb, probe_image
from tests.conftest import sample


def test_probe_reads_real_formats_and_sizes() -> None:
    # Sizes from ../shared/media/MANIFEST.md (integrity table).
    assert probe_image(sample("english.png")) == probe_image(sample("english.png"))
    png = probe_image(sample("english.png"))
    assert (png.mime, png.width, png.height) == ("image/png", 905, 480)
    tif = probe_image(sample("phototest.tif"))
    assert (tif.mime, tif.width, tif.height) == ("image/tiff", 640, 480)
    jpg = probe_image(sample("french.jpg"))
    assert (jpg.mime, jpg.width, jpg.height) == ("image/jpeg", 692, 1024)


def test_name_does_not_decide_the_type(tmp_path: Path) -> None:
    disguised = tmp_path / "photo.txt"
    disguised.write_bytes(sample("chinese.jpg").read_bytes())
    assert probe_image(disguised).mime == "image/jpeg"
    text = tmp_path / "fake.png"
    text.write_text("this is not an image\n")
    with pytest.raises(UnsupportedMediaType):
        probe_image(text)


def test_empty_and_truncated_files_are_invalid(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(InvalidMedia, match="empty"):
        probe_image(empty)
    data = sample("french.jpg").read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidMedia, match="decoded"):
        probe_image(truncated)


def test_load_rgb_shape_and_dtype() -> None:
    img = load_rgb(sample("phototest.tif"))  # 1-bit TIFF -> RGB
    assert img.shape == (480, 640, 3) and img.dtype == np.uint8
