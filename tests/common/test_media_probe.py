"""Media probing refuses what it cannot decode, judging by the bytes, not the name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mediafleet.common.errors import InvalidMedia, UnsupportedMediaType
from mediafleet.common.media import FrameSampling, iter_audio, load_rgb, probe_image, probe_media
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
def test_probe_media_reads_audio_and_video(name, kind, mime, duration, streams, size) -> None:
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


def _peak_mib(tmp_path: Path, call: str, path: Path) -> tuple[str, int, int]:
    """Run ``call`` (on ``p``, the path) in a fresh interpreter; its result's shape, and the
    peak RSS (VmHWM) before and after the call, MiB. ru_maxrss would carry the forking
    parent's peak over exec."""
    import subprocess
    import sys

    code = ("import re, sys; from mediafleet.common.media import load_rgb, load_rgb_fitted; "
            "hwm = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) // 1024; "
            f"p = sys.argv[1]; base = hwm(); a = {call}; "
            "a = getattr(a, 'pixels', a); print(a.shape, base, hwm())")  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    ).stdout
    shape, base, peak = out.strip().rsplit(" ", 2)
    return shape, int(base), int(peak)


@pytest.fixture(scope="module")
def largest_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The largest RGBA PNG accepted: 6981 x 6981 (MAX_PIXELS, 48.7 M pixels)."""
    from mediafleet.common.media import MAX_PIXELS

    side = int(MAX_PIXELS**0.5)
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("RGBA", (side, side)).save(path, compress_level=9)
    return path


def test_load_rgb_peak_memory_of_a_huge_png(largest_png: Path) -> None:
    """An 80-MP RGBA PNG peaked at 1129 MiB (14.8 bytes per pixel) when the whole image was
    converted at once; in bands, the decoded RGBA (4 bytes per pixel) plus the array (3)
    plus the decoder's buffers: 376 MiB above the process's own for 48.7 M pixels."""
    from mediafleet.common.media import MAX_PIXELS

    shape, base, peak = _peak_mib(largest_png.parent, "load_rgb(p)", largest_png)
    assert shape == "(6981, 6981, 3)"
    print(f"load_rgb of the largest RGBA PNG: peak RSS {peak} MiB ({base} before)")
    assert (peak - base) << 20 < 8.5 * MAX_PIXELS, (base, peak)


@pytest.mark.parametrize(("max_side", "service"), [(1280, "pose, CLIP, NudeNet"), (3200, "faces")])
def test_fitted_decode_of_the_largest_png_fits_the_decode_headroom(
    largest_png: Path, max_side: int, service: str
) -> None:
    """What MAX_PIXELS is derived from: decoding the largest image accepted for an engine
    takes at most DECODE_HEADROOM_BYTES above the process's own (the pose worker's room)."""
    from mediafleet.common.media import DECODE_HEADROOM_BYTES

    shape, base, peak = _peak_mib(largest_png.parent, f"load_rgb_fitted(p, {max_side})", largest_png)
    k = -(-6981 // max_side)
    assert shape == f"({-(-6981 // k)}, {-(-6981 // k)}, 3)"
    print(f"load_rgb_fitted(largest RGBA PNG, {max_side}) for {service}: {shape}, "
          f"peak RSS {peak} MiB, {peak - base} above the {base} before")  # fmt: skip
    if max_side == 1280:
        assert (peak - base) << 20 <= DECODE_HEADROOM_BYTES, (base, peak)
    else:  # face_reid: 896 MiB (FACE_MEM_LIMIT), 622 MiB peak measured under compose: 274 left
        assert peak - base <= 896 - 622, (base, peak)


def test_fitted_decode_of_a_huge_jpeg_is_made_at_reduced_scale(tmp_path: Path) -> None:
    """A 6981 x 6981 JPEG fitted to 1280 is decoded by libjpeg at 1/8 scale (873 x 873) and
    reduced by 1: 4 MiB of pixels instead of 186 (decoded whole, load_rgb peaks ~400 MiB)."""
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (6981, 6981), (90, 120, 200)).save(path, quality=85)
    shape, base, peak = _peak_mib(tmp_path, "load_rgb_fitted(p, 1280)", path)
    print(f"load_rgb_fitted(6981 x 6981 JPEG, 1280): {shape}, peak {peak} MiB ({base} before)")
    assert shape == "(873, 873, 3)" and peak - base < 60, (base, peak)


def test_an_image_one_row_over_the_cap_is_refused_on_its_header(tmp_path: Path) -> None:
    from mediafleet.common.media import MAX_PIXELS, load_rgb_fitted

    side = int(MAX_PIXELS**0.5)
    path = tmp_path / "over.png"
    Image.new("L", (side, side + 1)).save(path, compress_level=9)
    for call in (probe_image, load_rgb, lambda p: load_rgb_fitted(p, 1280)):
        with pytest.raises(InvalidMedia, match="too large to decode"):
            call(path)


@pytest.mark.parametrize("name", ["bus.jpg", "zidane.jpg", "english.png", "phototest.tif", "obama.jpg"])
def test_fitted_decode_of_an_image_within_max_side_is_load_rgb(name: str) -> None:
    from mediafleet.common.media import load_rgb_fitted

    for transpose in (False, True):
        want = load_rgb(sample(name), exif_transpose=transpose)
        got = load_rgb_fitted(sample(name), max(want.shape[:2]), exif_transpose=transpose)
        assert got.scale == 1 and (got.height, got.width) == want.shape[:2]
        assert np.array_equal(got.pixels, want)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"])
def test_fitted_decode_is_the_block_mean_of_the_rgb_pixels(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 37 x 23 image of every mode fitted to 10: reduced by k = 4 (ceil(37 / 10)) to
    10 x 6, each pixel the mean of a 4 x 4 block of load_rgb's pixels (rounded; the last
    row and column average what is left), across band boundaries (3-row bands)."""
    from mediafleet.common import media
    from mediafleet.common.media import load_rgb_fitted

    rng = np.random.default_rng(1)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, size=(37, 23), dtype=np.uint16))
    else:
        channels = {"1": 1, "L": 1, "LA": 2, "P": 1, "RGB": 3, "RGBA": 4, "CMYK": 4}[mode]
        data = rng.integers(0, 256, size=(37, 23, channels), dtype=np.uint8)
        img = Image.fromarray(
            data[..., 0] if channels == 1 else data, mode=None if mode != "CMYK" else "CMYK"
        )
        img = img.convert(mode) if img.mode != mode else img
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    full = load_rgb(path).astype(np.float64)
    monkeypatch.setattr(media, "_BAND_BYTES", 23 * 4 * 3)
    got = load_rgb_fitted(path, 10)
    assert got.scale == 4 and got.pixels.shape == (10, 6, 3) and (got.width, got.height) == (23, 37)
    for y in range(10):
        for x in range(6):
            block = full[4 * y : 4 * y + 4, 4 * x : 4 * x + 4].reshape(-1, 3).mean(axis=0)
            assert np.abs(got.pixels[y, x] - block).max() <= 1.0, (y, x, got.pixels[y, x], block)


def test_fitted_decode_keeps_the_displayed_orientation_and_full_size(tmp_path: Path) -> None:
    """A 4000 x 3000 JPEG stored sideways (EXIF orientation 6) fitted to 1000: decoded by
    libjpeg at 1/4 scale (1000 x 750, nothing more to reduce: scale 4); displayed 3000 x
    4000, the blue corner (stored top-left) at the displayed top-right."""
    from mediafleet.common.media import load_rgb_fitted

    img = Image.new("RGB", (4000, 3000), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 400, 300))
    exif = img.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif.tobytes(), quality=90)
    got = load_rgb_fitted(path, 1000, exif_transpose=True)
    assert (got.width, got.height, got.scale) == (3000, 4000, 4) and got.pixels.shape == (1000, 750, 3)
    assert got.pixels[10, -10, 2] > 200 and got.pixels[10, 10, 0] > 200  # blue top-right, red top-left
    assert got.to_full(750, 1000) == (3000.0, 4000.0)
    want = load_rgb(path, exif_transpose=True)
    shrunk = np.asarray(Image.fromarray(want).reduce(4))
    assert np.abs(shrunk.astype(int) - got.pixels.astype(int)).mean() < 2.0


def test_video_streams_have_the_images_pixel_cap_and_a_frame_rate_ceiling(tmp_path: Path) -> None:
    from mediafleet.common.media import MAX_PIXELS, sample_frames
    from tests.gateway.test_memory import mjpeg_mkv

    huge = mjpeg_mkv(tmp_path / "huge.mkv", 7000, 7000)  # 49 MP, one row of blocks over the cap
    assert MAX_PIXELS < 7000 * 7000
    with pytest.raises(InvalidMedia, match="too large to decode") as err:
        probe_media(huge)
    assert err.value.code == "too_many_pixels"
    with pytest.raises(InvalidMedia, match="too large to decode"):  # media stored before the cap
        next(iter(sample_frames(huge, FrameSampling(max_frames=1))))
    fast = mjpeg_mkv(tmp_path / "fast.mkv", 64, 64, fps=1000, frames=3)
    with pytest.raises(InvalidMedia, match="1000 fps is above 240 fps") as err:
        probe_media(fast)
    assert err.value.code == "frame_rate_too_high"
    fine = mjpeg_mkv(tmp_path / "fine.mkv", 640, 360, fps=5, frames=3)
    assert probe_media(fine).width == 640
    t, frame = next(iter(sample_frames(fine, FrameSampling(max_frames=1), max_side=320)))
    assert frame.shape == (180, 320, 3)  # scaled by FFmpeg: no full-size RGB copy (thumbnails)


def test_errors_name_no_server_path(tmp_path: Path) -> None:
    """What a worker or the gateway says about a bad file reaches users: no path of the media
    volume or of the upload's temporary folder (Pillow and FFmpeg name the file they read)."""
    from mediafleet.common.media import _no_paths, load_rgb_fitted

    truncated = tmp_path / "cut.png"
    truncated.write_bytes(sample("english.png").read_bytes()[:5000])
    for call in (lambda: load_rgb_fitted(truncated, 100), lambda: load_rgb(truncated)):
        with pytest.raises(InvalidMedia) as err:
            call()
        assert str(tmp_path) not in err.value.message and "cannot be decoded" in err.value.message
    said = _no_paths(OSError(f"cannot identify image file '{tmp_path / 'x.part'}'"))
    assert said == "cannot identify image file <file>"
    assert _no_paths(ValueError("a 3/4 crop")) == "a 3/4 crop"
