"""Media probing and decoding: the real content type from the bytes, never the file name.

Images with Pillow; audio and video with PyAV (FFmpeg's libraries inside the wheel, no
system ffmpeg): :func:`probe_media` identifies any of them, :func:`iter_audio` streams an
audio track decoded to 16 kHz float32 blocks of bounded size.
"""

from __future__ import annotations

import contextlib
import re
import struct
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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

#: Memory an image worker has beside its own for decoding one image, bytes: the smallest
#: room of the fleet's image workers, its compose ``mem_limit`` (896 MiB) less its peak
#: under the compose tests (645 MiB); which worker and its figures: README, "Security".
DECODE_HEADROOM_BYTES = (896 - 645) << 20
#: Peak bytes per pixel of :func:`load_rgb_fitted` above the process's own, for the worst
#: format: a PNG is decoded whole (Pillow holds RGB and RGBA at 4 bytes per pixel), then
#: reduced in bands; 6000 x 6000 RGBA fitted to 1280 (pose, CLIP, NudeNet): 194 MiB. A JPEG
#: is decoded at 1/2 to 1/8 scale and costs far less (8940 x 8940 to 1280: 58 MiB).
DECODE_BYTES_PER_PIXEL = 5.4
#: Largest image accepted, width x height, checked on the header before any decoding (the
#: gateway refuses larger uploads): set from memory, the headroom over the bytes per pixel,
#: 48.7 M pixels (8000 x 6000 fits). tests/common/test_media_probe.py measures the peak at this size.
MAX_PIXELS = int(DECODE_HEADROOM_BYTES / DECODE_BYTES_PER_PIXEL)


_PATH = re.compile(r"""['"]?(?<![\w.])/(?:[^\s'"/]+/)+[^\s'"]*['"]?""")


def _no_paths(exc: BaseException) -> str:
    """A library's error text without file paths (Pillow and FFmpeg name the file they read: a
    server path users must not see, in the upload's temporary folder or the media volume)."""
    return _PATH.sub("<file>", str(exc)).strip() or type(exc).__name__


@dataclass(frozen=True)
class MediaProbe:
    """What the bytes are: ``kind`` (image/audio/video), ``mime``, stored ``extension``.

    ``width``/``height``: pixels of an image or of a video's first video stream (None for
    audio). ``duration_s``: seconds of audio/video (None for images). ``streams``: one dict
    per audio/video stream (``index``, ``type``, ``codec``, and ``sample_rate``/``channels``
    or ``width``/``height``/``fps``), empty for images.
    """

    kind: str
    mime: str
    width: int | None
    height: int | None
    extension: str
    duration_s: float | None = None
    streams: list[dict[str, Any]] = field(default_factory=list)


#: Full decodes of :func:`probe_image` at once in one process (the formats without a cheap
#: check: TIFF, WebP, BMP, GIF); more wait their turn, so parallel uploads cannot add up.
_FULL_DECODES = threading.BoundedSemaphore(2)


def probe_image(path: str | Path) -> MediaProbe:
    """Identify an image file and check that all of its data is there, decoding as little as
    the format allows: JPEG at 1/8 scale (Pillow's DCT draft: every byte is still read, a
    64th of the pixels made), PNG by its chunk CRCs through to IEND (``verify``: no pixel
    is made), other formats fully (at most 2 at once per process). An 8940 x 8940 RGBA PNG
    of 311 KB once cost the gateway 303 MB per upload when every image was decoded.

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
                if fmt == "JPEG":
                    img.draft("RGB", (max(width // 8, 1), max(height // 8, 1)))
                    img.load()  # reads every byte: catches truncated and corrupt data
                elif fmt == "PNG":
                    img.verify()  # every chunk's CRC, through to IEND
                else:
                    with _FULL_DECODES:
                        img.load()  # full decode: catches truncated and corrupt data
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaType(
            "content is not a supported image (JPEG, PNG, TIFF, WebP, BMP, GIF)"
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidMedia(f"image refused as a decompression bomb: {_no_paths(exc)}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidMedia(f"image data cannot be decoded: {_no_paths(exc)}") from exc
    mime, ext = IMAGE_FORMATS[fmt]
    return MediaProbe(kind="image", mime=mime, width=width, height=height, extension=ext)


#: Bytes of decoded source rows converted to RGB at a time by :func:`_rgb_array`.
_BAND_BYTES = 16 << 20


def _rgb_array(img: Image.Image) -> np.ndarray:
    """``img`` (decoded here) as an RGB array (H, W, 3) uint8, converted in bands of rows.

    The same pixels as ``np.asarray(img.convert("RGB"))`` (each conversion to RGB is per
    pixel), at a lower peak: the decoded image plus the array, where the whole-image
    conversion also held the RGB copy and its bytes twice (an 8940 x 8940 RGBA PNG: peak RSS
    1129 MiB that way).
    """
    img.load()
    width, height = img.size
    out = np.empty((height, width, 3), dtype=np.uint8)
    step = max(1, _BAND_BYTES // max(width * 4, 1))
    for top in range(0, height, step):
        band = img.crop((0, top, width, min(top + step, height)))
        out[top : top + band.height] = np.asarray(band.convert("RGB"), dtype=np.uint8)
    return out


def _load_array(img: Image.Image, exif_transpose: bool = False) -> np.ndarray:
    """An opened image as RGB (H, W, 3) uint8 (:func:`load_rgb`'s conversions)."""
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
    return _rgb_array(img)


def load_rgb(path: str | Path, exif_transpose: bool = False) -> np.ndarray:
    """Decode an image to an RGB array, shape (H, W, 3), dtype uint8.

    ``exif_transpose``: rotate/flip to the displayed orientation (EXIF tag 0x0112), so
    coordinates computed on the array match what a viewer shows; otherwise the stored
    orientation. Animated images give their first frame; grayscale, palette, RGBA, CMYK and
    16-bit images are converted to 8-bit RGB (alpha dropped). A broken EXIF block is ignored.

    Raises InvalidMedia / UnsupportedMediaType like :func:`probe_image`.
    """
    with open_image(path) as img:
        return _load_array(img, exif_transpose)


@contextlib.contextmanager
def open_image(path: str | Path) -> Iterator[Image.Image]:
    """``path`` opened by Pillow (lazily: nothing is decoded until pixels are read), its size
    checked against MAX_PIXELS on the header; Pillow's errors while it is open become
    InvalidMedia / UnsupportedMediaType (messages without server paths)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", message="(?i).*corrupt exif", category=UserWarning)
            img = Image.open(path)
        with img:
            if img.width * img.height > MAX_PIXELS:
                raise InvalidMedia(f"image is too large to decode: {img.width}x{img.height} pixels")
            yield img
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaType("not a supported image") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidMedia(f"image refused as a decompression bomb: {_no_paths(exc)}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidMedia(f"image data cannot be decoded: {_no_paths(exc)}") from exc


def _reduced_rgb(img: Image.Image, max_side: int) -> tuple[Image.Image, int]:
    """``img`` (decoded here) as RGB, shrunk by the smallest integer factor ``k`` that brings
    its longer side to at most ``max_side`` (each output pixel the mean of a k x k block:
    ``Image.reduce``, OpenCV's INTER_AREA for integer factors). Made in bands of rows, so
    there is no second full-size copy: Pillow's resize of RGBA first makes a premultiplied
    one (a 6000 x 6000 PNG fitted to 2560 that way: 430 MiB peak; loaded whole: 351).
    Returns the image and ``k``."""
    img.load()
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # needs the whole image's range: rare
        img = Image.fromarray(_load_array(img))
    width, height = img.size
    k = -(-max(width, height) // max_side)
    if k == 1:
        return img, 1
    out = Image.new("RGB", (-(-width // k), -(-height // k)))
    step = max(k, (_BAND_BYTES // max(width * 4, 1)) // k * k)
    for top in range(0, height, step):
        band = img.crop((0, top, width, min(top + step, height))).convert("RGB")
        out.paste(band.reduce(k), (0, top // k))
    out.info = img.info  # EXIF orientation, for exif_transpose
    return out, k


@dataclass(frozen=True)
class FittedImage:
    """An image decoded to fit ``max_side`` (see :func:`load_rgb_fitted`).

    ``pixels``: RGB array (h, w, 3) uint8, its longer side at most the ``max_side`` asked
    for. ``width``/``height``: the full image's pixels (after EXIF orientation when asked),
    the frame results are reported in. ``scale``: full-image pixels per pixel of
    ``pixels`` (an integer >= 1, the same on both axes: pixel ``i`` of ``pixels`` covers full
    pixels ``i * scale`` to ``(i + 1) * scale``); multiply coordinates measured on
    ``pixels`` by it.
    """

    pixels: np.ndarray
    width: int
    height: int
    scale: int = 1

    def to_full(self, x: float, y: float) -> tuple[float, float]:
        """A point of ``pixels`` in full-image pixels, clipped to the image."""
        return min(x * self.scale, float(self.width)), min(y * self.scale, float(self.height))


#: EXIF orientations (tag 0x0112) that swap width and height (5-8: transposed, rotated 90/270).
_SWAPS_SIDES = frozenset({5, 6, 7, 8})


def load_rgb_fitted(path: str | Path, max_side: int, exif_transpose: bool = False) -> FittedImage:
    """Decode an image to RGB with its longer side at most ``max_side`` pixels.

    For engines that work at a fixed input size (YOLO at 640, CLIP at 224, NudeNet at 320):
    a larger image costs memory and time and changes little. A JPEG is decoded directly at
    1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, Pillow ``draft``), other formats fully;
    then the image is shrunk by the smallest integer factor that fits (block means, in bands
    of rows: no second full-size copy), so the longer side ends between ``max_side / 2`` and
    ``max_side``. An image already small enough comes back as :func:`load_rgb` makes it (the
    same pixels).

    Args:
        max_side: pixels, >= 1.
        exif_transpose: as in :func:`load_rgb`; ``width``/``height`` are then the displayed
            image's.

    Raises InvalidMedia / UnsupportedMediaType like :func:`load_rgb`; ValueError for a
    ``max_side`` below 1.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    with open_image(path) as img:
        width, height = img.size
        scale = 1
        if max(width, height) > max_side:  # else decoded as load_rgb does, below
            ratio = max_side / max(width, height)
            target = (max(1, round(width * ratio)), max(1, round(height * ratio)))
            img.draft("RGB", target)  # JPEG: decode at the smallest DCT scale >= target
            drafted = round(width / img.size[0])  # libjpeg scales by 1/1, 1/2, 1/4, 1/8
            img, k = _reduced_rgb(img, max_side)
            scale = drafted * k
        orientation = 1
        if exif_transpose:
            with contextlib.suppress(Exception):
                orientation = int(img.getexif().get(0x0112, 1))
        if orientation in _SWAPS_SIDES:
            width, height = height, width
        return FittedImage(pixels=_load_array(img, exif_transpose), width=width, height=height, scale=scale)


# --- audio and video (PyAV) -------------------------------------------------------------

#: FFmpeg demuxers we accept -> (audio MIME, video MIME, audio extension, video extension).
AV_FORMATS: dict[str, tuple[str, str, str, str]] = {
    "flac": ("audio/flac", "audio/flac", ".flac", ".flac"),
    "mp3": ("audio/mpeg", "audio/mpeg", ".mp3", ".mp3"),
    "ogg": ("audio/ogg", "video/ogg", ".ogg", ".ogv"),
    "wav": ("audio/wav", "audio/wav", ".wav", ".wav"),
    "aac": ("audio/aac", "audio/aac", ".aac", ".aac"),
    "mov,mp4,m4a,3gp,3g2,mj2": ("audio/mp4", "video/mp4", ".m4a", ".mp4"),
    "matroska,webm": ("audio/webm", "video/webm", ".webm", ".webm"),
    "avi": ("audio/x-msvideo", "video/x-msvideo", ".avi", ".avi"),
}

#: A file whose packets end this much before the duration its header states is truncated.
TRUNCATION_TOLERANCE_S = 1.0

#: Sample rate of :func:`iter_audio` (Whisper's and Silero VAD's input rate).
AUDIO_RATE = 16_000


def probe_media(path: str | Path, max_duration_s: float | None = None) -> MediaProbe:
    """Identify an image (Pillow, fully decoded) or an audio/video file (PyAV).

    Audio/video: the container must be one of :data:`AV_FORMATS` with at least one audio or
    video stream whose codec FFmpeg decodes. Every packet is read (not decoded) to find where
    the data really ends, and the first frames of each stream are decoded.

    Raises:
        InvalidMedia: empty, truncated (data ends > 1 s before the header's duration),
            zero-length (no samples), undecodable, or longer than ``max_duration_s``.
        UnsupportedMediaType: neither an image nor a container/codec we accept.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise InvalidMedia("file is empty (0 bytes)")
    try:
        with Image.open(path) as img:
            img_format = img.format
    except UnidentifiedImageError:
        img_format = None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        img_format = "?"  # an image header Pillow knows, broken: probe_image says why
    if img_format is not None:
        return probe_image(path)
    return _probe_av(path, max_duration_s)


def _probe_av(path: Path, max_duration_s: float | None) -> MediaProbe:
    import av

    accepted = "image (JPEG, PNG, TIFF, WebP, BMP, GIF), audio or video (FLAC, MP3, Ogg, WAV, AAC, MP4, WebM/Matroska, AVI)"
    try:
        container = av.open(str(path))
    except av.error.InvalidDataError as exc:
        raise UnsupportedMediaType(f"content is not a supported {accepted}") from exc
    except av.error.FFmpegError as exc:
        raise InvalidMedia(f"media cannot be opened: {_no_paths(exc)}") from exc
    with container:
        fmt = container.format.name
        if fmt not in AV_FORMATS:
            raise UnsupportedMediaType(f"content is not a supported {accepted} (FFmpeg reads it as {fmt!r})")
        streams = [s for s in container.streams if s.type in ("audio", "video")]
        streams = [s for s in streams if not _is_cover_art(s)]
        if not streams:
            raise UnsupportedMediaType("the file has no audio or video stream")
        for s in streams:
            if s.codec_context is None or s.codec_context.codec is None:
                raise UnsupportedMediaType(
                    f"stream {s.index}: codec {s.codec_context and s.codec_context.name!r} cannot be decoded"
                )
            if s.type == "video":
                _check_video_stream(s)
        header_s = container.duration / 1_000_000 if container.duration else None
        end_s, decoded = _scan_packets(container, streams)
        # PyAV's stream objects must not outlive their container: read everything here
        missing = [s.index for s in streams if not decoded.get(s.index)]
        info = [_stream_info(s) for s in streams]
    if end_s <= 0 or missing:
        what = "samples" if end_s <= 0 else f"data in stream(s) {missing}"
        raise InvalidMedia(f"no decodable {what}: the file is empty or truncated")
    if header_s and end_s < header_s - TRUNCATION_TOLERANCE_S:
        raise InvalidMedia(
            f"the file is truncated: its header says {header_s:.1f} s, its data ends at {end_s:.1f} s"
        )
    duration = round(header_s if header_s else end_s, 3)
    if max_duration_s is not None and duration > max_duration_s:
        raise InvalidMedia(
            f"media is {duration:.0f} s long; the limit is {max_duration_s:.0f} s",
            details={"duration_s": duration, "max_duration_s": max_duration_s},
            code="media_too_long",
        )
    video = next((i for i in info if i["type"] == "video"), None)
    kind = "video" if video else "audio"
    audio_mime, video_mime, audio_ext, video_ext = AV_FORMATS[fmt]
    return MediaProbe(
        kind=kind,
        mime=video_mime if video else audio_mime,
        width=video["width"] if video else None,
        height=video["height"] if video else None,
        extension=video_ext if video else audio_ext,
        duration_s=duration,
        streams=info,
    )


#: Highest frame rate accepted: image tasks decode every frame of a video (scene changes), so
#: a declared 10,000 fps would be a CPU bomb however short the video.
MAX_VIDEO_FPS = 240.0


def _check_video_stream(stream: Any) -> None:
    """Refuse, before any frame is decoded, a video stream whose frames are larger than
    :data:`MAX_PIXELS` (the images' cap) or whose frame rate is above :data:`MAX_VIDEO_FPS`; and
    make its decoder refuse a frame larger than the header said (FFmpeg's ``max_pixels``).
    Raises InvalidMedia (422)."""
    ctx = stream.codec_context
    width, height = ctx.width or 0, ctx.height or 0
    if width * height > MAX_PIXELS:
        raise InvalidMedia(
            f"video frames are too large to decode: {width}x{height} pixels (at most {MAX_PIXELS:,})",
            code="too_many_pixels",
            details={"width": width, "height": height, "max_pixels": MAX_PIXELS},
        )
    rate = stream.average_rate or stream.guessed_rate
    if rate and float(rate) > MAX_VIDEO_FPS:
        raise InvalidMedia(
            f"video frame rate {float(rate):.0f} fps is above {MAX_VIDEO_FPS:.0f} fps",
            code="frame_rate_too_high",
            details={"fps": float(rate), "max_fps": MAX_VIDEO_FPS},
        )
    ctx.options = {**(ctx.options or {}), "max_pixels": str(MAX_PIXELS)}


def _is_cover_art(stream: Any) -> bool:
    import av

    return stream.type == "video" and bool(stream.disposition & av.stream.Disposition.attached_pic)


def _scan_packets(container: Any, streams: list[Any]) -> tuple[float, dict[int, bool]]:
    """(seconds where the packets end, {stream index: a frame decoded}); decodes <= 3 packets a stream."""
    import av

    wanted = {s.index for s in streams}
    end_s = 0.0
    decoded: dict[int, bool] = {}
    tries: dict[int, int] = {}
    try:
        for packet in container.demux(*streams):
            index = packet.stream.index
            if index not in wanted or packet.size == 0:
                continue
            if packet.pts is not None and packet.time_base is not None:
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                start = (
                    float(packet.stream.start_time * packet.time_base) if packet.stream.start_time else 0.0
                )
                end_s = max(end_s, end - start)
            if not decoded.get(index) and tries.get(index, 0) < 3:
                tries[index] = tries.get(index, 0) + 1
                try:
                    decoded[index] = bool(packet.decode())
                except av.error.FFmpegError:
                    decoded[index] = False
    except av.error.FFmpegError as exc:
        raise InvalidMedia(f"media data is corrupt after {end_s:.1f} s: {_no_paths(exc)}") from exc
    return end_s, decoded


def _stream_info(stream: Any) -> dict[str, Any]:
    ctx = stream.codec_context
    info: dict[str, Any] = {"index": stream.index, "type": stream.type, "codec": ctx.name}
    if stream.type == "audio":
        info.update(sample_rate=ctx.sample_rate, channels=ctx.channels)
    else:
        rate = stream.average_rate or stream.guessed_rate
        info.update(width=ctx.width, height=ctx.height, fps=round(float(rate), 3) if rate else None)
    return info


def open_av(path: str | Path) -> Any:
    """A PyAV input container (a context manager). Raises InvalidMedia when FFmpeg cannot open it."""
    import av

    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise InvalidMedia(f"media cannot be opened: {_no_paths(exc)}") from exc


def iter_audio(
    path: str | Path,
    channels: Literal["mix", "split"] = "mix",
    block_s: float = 30.0,
) -> Iterator[np.ndarray]:
    """Decode the first audio stream to :data:`AUDIO_RATE` Hz float32 in blocks of ``block_s``.

    Yields arrays of shape (C, N), values in [-1, 1]: C = 1 for ``"mix"`` (channels averaged
    by FFmpeg's resampler), C = the stream's channel count for ``"split"``; N = block_s *
    16000 samples except the last block. Memory stays bounded by one block whatever the
    duration. Raises InvalidMedia when the file has no audio stream or its data cannot be
    decoded (with the time where decoding failed).
    """
    import av

    step = int(block_s * AUDIO_RATE)
    with open_av(path) as container:
        if not container.streams.audio:
            raise InvalidMedia("the media has no audio stream", code="no_audio")
        stream = container.streams.audio[0]
        n_channels = 1 if channels == "mix" else max(stream.codec_context.channels, 1)
        # planar float: to_ndarray() gives (channels, samples); "mono" mixes the channels down
        layout = "mono" if channels == "mix" else stream.codec_context.layout.name
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=AUDIO_RATE)
        pending: list[np.ndarray] = []
        have = 0
        done_s = 0.0
        try:
            for frame in container.decode(stream):
                done_s = float(frame.time or done_s)
                for out in resampler.resample(frame):
                    pending.append(out.to_ndarray().reshape(n_channels, -1))
                    have += pending[-1].shape[1]
                while have >= step:
                    block = np.concatenate(pending, axis=1)
                    yield np.ascontiguousarray(block[:, :step], dtype=np.float32)
                    pending, have = [block[:, step:]], block.shape[1] - step
            for out in resampler.resample(None):
                pending.append(out.to_ndarray().reshape(n_channels, -1))
        except av.error.FFmpegError as exc:
            raise InvalidMedia(f"audio cannot be decoded after {done_s:.1f} s: {_no_paths(exc)}") from exc
        if pending:
            block = np.concatenate(pending, axis=1)
            if block.shape[1]:
                yield np.ascontiguousarray(block, dtype=np.float32)


@dataclass(frozen=True)
class FrameSampling:
    """Which frames of a video image tasks see: one at least every ``every_s`` seconds, one on
    each scene change (mean absolute difference of 64 x 36 grey thumbnails of consecutive
    frames above ``scene_threshold``, in [0, 1]; 0 turns it off), at most ``max_frames``, never
    two within ``min_gap_s``. The first frame is always taken."""

    every_s: float = 2.0
    scene_threshold: float = 0.3
    max_frames: int = 60
    min_gap_s: float = 0.5


def _fitted_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """``(w, h)`` scaled down (never up) so the longer side is at most ``max_side``; even sizes
    for FFmpeg's scaler."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    k = max_side / max(width, height)
    return max(2, int(width * k) // 2 * 2), max(2, int(height * k) // 2 * 2)


def sample_frames(
    path: str | Path, sampling: FrameSampling, max_side: int | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(t, rgb)`` for the sampled frames of the first video stream: ``t`` seconds from
    the stream's start, ``rgb`` shape (H, W, 3) uint8 in display size, scaled down by FFmpeg to
    a longer side of at most ``max_side`` pixels when given (what an engine reads: no full-size
    RGB copy). Every frame is decoded (for the scene test) but only sampled ones are converted
    to RGB. Raises InvalidMedia (also for frames over the pixel cap or a frame-rate bomb)."""
    import av

    with open_av(path) as container:
        if not container.streams.video:
            raise InvalidMedia("the media has no video stream", code="no_video")
        stream = container.streams.video[0]
        _check_video_stream(stream)
        stream.thread_type = "AUTO"
        start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        taken, last_t, prev = 0, None, None
        try:
            for frame in container.decode(stream):
                t = max(float(frame.time) - start, 0.0) if frame.time is not None else 0.0
                thumb = (
                    frame.reformat(width=64, height=36, format="gray").to_ndarray().astype(np.float32) / 255.0
                )
                scene = (
                    sampling.scene_threshold > 0
                    and prev is not None
                    and float(np.abs(thumb - prev).mean()) > sampling.scene_threshold
                )
                prev = thumb
                due = last_t is None or t - last_t >= sampling.every_s - 1e-6
                if (due or scene) and (last_t is None or t - last_t >= sampling.min_gap_s):
                    w, h = _fitted_size(frame.width, frame.height, max_side)
                    yield round(t, 3), frame.to_ndarray(format="rgb24", width=w, height=h)
                    taken, last_t = taken + 1, t
                    if taken >= sampling.max_frames:
                        return
        except av.error.FFmpegError as exc:
            raise InvalidMedia(
                f"video cannot be decoded after {last_t or 0.0:.1f} s: {_no_paths(exc)}"
            ) from exc


def frame_at(path: str | Path, t: float) -> np.ndarray:
    """The frame of the first video stream shown at ``t`` seconds from its start (the first frame
    at or after it; the last one when ``t`` is past the end): RGB (H, W, 3) uint8, display size.
    Seeks to the keyframe before ``t``, then decodes forward. Raises InvalidMedia."""
    import av

    with open_av(path) as container:
        if not container.streams.video:
            raise InvalidMedia("the media has no video stream", code="no_video")
        stream = container.streams.video[0]
        _check_video_stream(stream)
        base = stream.time_base
        start = float(stream.start_time * base) if stream.start_time and base else 0.0
        last = None
        try:
            if base and t > 0:
                container.seek(int((t + start) / base), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                last = frame
                if frame.time is not None and frame.time - start >= t - 1e-3:
                    break
        except av.error.FFmpegError as exc:
            raise InvalidMedia(f"video cannot be decoded near {t:.1f} s: {_no_paths(exc)}") from exc
        if last is None:
            raise InvalidMedia("the video has no decodable frame", code="invalid_media")
        rgb: np.ndarray = last.to_ndarray(format="rgb24")
        return rgb
