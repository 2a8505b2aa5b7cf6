"""GATEWAY_STRIP_LOCATION's rewriting (mediafleet.gateway.location): the position goes, nothing
else changes. Checked with readers we did not write (Pillow's EXIF, FFmpeg's tags through
PyAV) and by decoding the pixels and frames before and after."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

from mediafleet.gateway.location import write_without_location
from tests.conftest import SHARED_MEDIA
from tests.media_files import write_video

B, G = ExifTags.Base, ExifTags.GPS
XMP_WITH_GPS = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description exif:GPSLatitude="48,51.18N"/></x:xmpmeta>'
)


def gps_of(path: Path) -> dict[int, object]:
    with Image.open(path) as img:
        return dict(img.getexif().get_ifd(ExifTags.IFD.GPSInfo))


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_the_shared_iphone_photo_loses_its_gps_and_nothing_else(tmp_path: Path) -> None:
    source, out = SHARED_MEDIA / "bus.jpg", tmp_path / "bus.jpg"
    assert gps_of(source)[G.GPSLatitude]  # the shared file has a position (Madrid)
    assert write_without_location(source, out, "image/jpeg") is True
    assert gps_of(out) == {}
    with Image.open(source) as a, Image.open(out) as b:
        ea, eb = a.getexif(), b.getexif()
        assert (eb[B.Make], eb[B.Model]) == ("Apple", "iPhone XS")
        sub_a, sub_b = ea.get_ifd(ExifTags.IFD.Exif), eb.get_ifd(ExifTags.IFD.Exif)
        assert sub_b[B.DateTimeOriginal] == sub_a[B.DateTimeOriginal] == "2019:03:01 13:06:33"
        assert (
            a.info["icc_profile"] == b.info["icc_profile"] and a.info["xmp"] == b.info["xmp"]
        )  # no GPS in it
    assert out.stat().st_size == source.stat().st_size  # same length: values zeroed in place
    assert np.array_equal(pixels(source), pixels(out))


def test_gps_in_xmp_is_left_out_and_a_file_without_a_position_is_unchanged(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[B.Make] = "Canon"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps.update(
        {G.GPSLatitudeRef: "S", G.GPSLatitude: (IFDRational(33, 1), IFDRational(51, 1), IFDRational(0, 1))}
    )
    source = tmp_path / "in.jpg"
    Image.new("RGB", (32, 24), (10, 200, 30)).save(source, exif=exif, xmp=XMP_WITH_GPS)
    out = tmp_path / "out.jpg"
    assert write_without_location(source, out, "image/jpeg") is True
    data = out.read_bytes()
    assert b"GPSLatitude" not in data and gps_of(out) == {}
    with Image.open(out) as img:
        assert img.getexif()[B.Make] == "Canon" and "xmp" not in img.info
    assert np.array_equal(pixels(source), pixels(out))

    plain = tmp_path / "plain.jpg"
    Image.new("RGB", (32, 24)).save(plain)
    again = tmp_path / "again.jpg"
    assert write_without_location(plain, again, "image/jpeg") is False
    assert again.read_bytes() == plain.read_bytes()


def frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_mp4_and_mov_positions_are_blanked(tmp_path: Path) -> None:
    for name, fmt in (("clip.mp4", None), ("clip.mov", "mov")):
        source = write_video(
            tmp_path / name, {"location": "+40.6892-074.0445+010.000/", "title": "harbour"}, fmt=fmt
        )
        out = tmp_path / f"out-{name}"
        assert write_without_location(source, out, "video/mp4") is True
        with av.open(str(source)) as a, av.open(str(out)) as b:
            assert a.metadata["location"].startswith("+40.6892")
            assert not any(v.strip() for k, v in b.metadata.items() if "location" in k)
            assert b.metadata["title"] == "harbour"
        assert out.stat().st_size == source.stat().st_size
        assert all(np.array_equal(x, y) for x, y in zip(frames(source), frames(out), strict=True))


def test_other_formats_are_copied_as_they_are(tmp_path: Path) -> None:
    source = SHARED_MEDIA / "english.png"
    out = tmp_path / "english.png"
    assert write_without_location(source, out, "image/png") is False
    assert out.read_bytes() == source.read_bytes()
