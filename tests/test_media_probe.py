"""Media probing refuses what it cannot decode, judging by the bytes, not the name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mediafleet.common.errors import InvalidMedia, UnsupportedMediaType
from mediafleet.common.media import iter_audio, load_rgb, probe_image, probe_media
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


def test_png_and_jpeg_are_checked_without_a_full_decode(tmp_path: Path) -> None:
    """PNG: chunk CRCs through to IEND; JPEG: every byte read at 1/8 scale. Broken files of
    both are still refused, whole ones still probed with their true size."""
    png = sample("english.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(png[: len(png) - 200])
    with pytest.raises(InvalidMedia, match="decoded"):
        probe_image(tmp_path / "cut.png")
    flipped = bytearray(png)
    idat = png.index(b"IDAT") + 100
    flipped[idat] ^= 0xFF  # a damaged byte inside the image data: its chunk's CRC fails
    (tmp_path / "flipped.png").write_bytes(bytes(flipped))
    with pytest.raises(InvalidMedia, match="decoded"):
        probe_image(tmp_path / "flipped.png")
    jpeg = sample("french.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) - 2000])
    with pytest.raises(InvalidMedia, match="decoded"):
        probe_image(tmp_path / "cut.jpg")
    for name in ("english.png", "french.jpg"):
        probe = probe_image(sample(name))
        with Image.open(sample(name)) as img:
            assert (probe.width, probe.height) == img.size


def test_load_rgb_shape_and_dtype() -> None:
    img = load_rgb(sample("phototest.tif"))  # 1-bit TIFF -> RGB
    assert img.shape == (480, 640, 3) and img.dtype == np.uint8


# --- audio and video (PyAV) ------------------------------------------------------------

#: Durations, codecs and sizes from ../shared/media/MANIFEST.md (integrity table).
AV_CORPUS = [
    ("jfk.flac", "audio", "audio/flac", 11.0, [("audio", "flac")], None),
    ("multilingual.mp3", "audio", "audio/mpeg", 59.9, [("audio", "mp3float")], None),
    ("fleurs-de-000.ogg", "audio", "audio/ogg", 17.95, [("audio", "opus")], None),
    (
        "short_hamilton_clip.mp4",
        "video",
        "video/mp4",
        10.02,
        [("video", "h264"), ("audio", "aac")],
        (640, 360),
    ),
    ("mmpose_demo.mp4", "video", "video/mp4", 1.0, [("video", "h264")], (960, 540)),
]


@pytest.mark.parametrize(("name", "kind", "mime", "duration", "streams", "size"), AV_CORPUS)
def test_probe_media_reads_audio_and_video(name, kind, mime, duration, streams, size) -> None:  # noqa: ANN001
    probe = probe_media(sample(name))
    assert (probe.kind, probe.mime) == (kind, mime)
    assert probe.duration_s == pytest.approx(duration, abs=0.01)
    assert [(s["type"], s["codec"]) for s in probe.streams] == streams
    assert (probe.width, probe.height) == (size or (None, None))
    audio = [s for s in probe.streams if s["type"] == "audio"]
    assert all(s["sample_rate"] in (24_000, 44_100, 48_000) and s["channels"] in (1, 2) for s in audio)


def test_probe_media_still_reads_images_with_pillow() -> None:
    png = probe_media(sample("english.png"))
    assert (png.kind, png.mime, png.width, png.height, png.duration_s, png.streams) == (
        "image", "image/png", 905, 480, None, [],
    )  # fmt: skip


def test_probe_media_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp3"
    text.write_text("[00:01.00] lyrics, not audio\n")  # FFmpeg reads this as an LRC subtitle
    with pytest.raises(UnsupportedMediaType, match="not a supported image .* reads it as 'lrc'"):
        probe_media(text)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(sample("jfk.flac").read_bytes()[:300_000])
    with pytest.raises(InvalidMedia, match=r"truncated: its header says 11\.0 s, its data ends at 2\.\d s"):
        probe_media(cut)
    with pytest.raises(InvalidMedia) as too_long:
        probe_media(sample("multilingual.mp3"), max_duration_s=30)
    assert too_long.value.code == "media_too_long" and too_long.value.details["duration_s"] == 59.9
    empty_wav = tmp_path / "empty.wav"  # a valid WAV header and no samples
    import wave

    with wave.open(str(empty_wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16_000)  # fmt: skip
    with pytest.raises(InvalidMedia, match="no decodable samples"):
        probe_media(empty_wav)
    odd = tmp_path / "odd.wav"  # a WAV whose codec tag FFmpeg has no decoder for
    data = bytearray()
    import struct

    body = b"\x00" * 32_000
    data += (
        b"RIFF"
        + struct.pack("<I", 36 + len(body))
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 0x3039, 1, 16_000, 32_000, 2, 16)
    )
    data += b"data" + struct.pack("<I", len(body)) + body
    odd.write_bytes(bytes(data))
    with pytest.raises(UnsupportedMediaType, match="stream 0: codec None cannot be decoded"):
        probe_media(odd)


def test_iter_audio_mixes_or_splits_and_bounds_blocks() -> None:
    blocks = list(iter_audio(sample("jfk.flac"), "mix", block_s=4.0))
    assert [b.shape for b in blocks] == [(1, 64_000), (1, 64_000), (1, 48_000)]  # 11 s at 16 kHz
    assert all(b.dtype == np.float32 for b in blocks)
    split = np.concatenate(list(iter_audio(sample("jfk.flac"), "split", block_s=4.0)), axis=1)
    mixed = np.concatenate(blocks, axis=1)
    assert split.shape == (2, 176_000)
    # FFmpeg's stereo -> mono downmix is the scaled sum of the two channels
    corr = np.corrcoef(mixed[0], split.sum(axis=0))[0, 1]
    assert corr > 0.999
    with pytest.raises(InvalidMedia) as no_audio:
        next(iter_audio(sample("mmpose_demo.mp4")))
    assert no_audio.value.code == "no_audio"


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK"])
def test_load_rgb_converts_in_bands_to_the_same_pixels(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are converted to RGB a band at a time (a lower peak); the pixels are those of one
    whole-image conversion, across band boundaries (bands of 3 rows here)."""
    from mediafleet.common import media

    rng = np.random.default_rng(0)
    channels = {"1": 1, "L": 1, "LA": 2, "P": 1, "RGB": 3, "RGBA": 4, "CMYK": 4}[mode]
    data = rng.integers(0, 256, size=(37, 23, channels), dtype=np.uint8)
    img = Image.fromarray(data[..., 0] if channels == 1 else data, mode=None if mode != "CMYK" else "CMYK")
    img = img.convert(mode) if img.mode != mode else img
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    monkeypatch.setattr(media, "_BAND_BYTES", 23 * 4 * 3)
    with Image.open(path) as again:
        expected = np.asarray(again.convert("RGB"), dtype=np.uint8)
    got = load_rgb(path)
    assert got.shape == (37, 23, 3) and got.dtype == np.uint8
    assert np.array_equal(got, expected)


def test_load_rgb_peak_memory_of_a_huge_png(tmp_path: Path) -> None:
    """8940 x 8940 RGBA (80 MP): peak RSS 1129 MiB when the whole image was converted at once,
    650 MiB in bands (the decoded RGBA image, 305 MiB, plus the array, 229 MiB)."""
    import subprocess
    import sys

    path = tmp_path / "huge.png"
    Image.new("RGBA", (8940, 8940)).save(path, compress_level=9)
    # VmHWM (peak RSS of this address space): ru_maxrss would carry the forking parent's over exec
    code = ("import re, sys; from mediafleet.common.media import load_rgb; a = load_rgb(sys.argv[1]); "
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
            "print(a.shape, int(hwm) // 1024)")  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    ).stdout
    shape, peak_mib = out.strip().rsplit(" ", 1)
    assert shape == "(8940, 8940, 3)"
    print(f"load_rgb of an 80-MP RGBA PNG: peak RSS {peak_mib} MiB")
    assert int(peak_mib) < 850, peak_mib
