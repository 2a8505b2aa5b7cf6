"""Small media files the tests write themselves, with the tags a phone or camera would leave."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_video(path: Path, tags: dict[str, str], frames: int = 10, fmt: str | None = None) -> Path:
    """A 64x48 MPEG-4 video at 10 fps, ``frames`` grey frames getting brighter, with container
    ``tags`` (``location``, ``creation_time``, ``make``...); ``fmt="mov"`` for QuickTime."""
    out = av.open(str(path), "w", format=fmt)
    out.metadata.update(tags)
    stream = out.add_stream("mpeg4", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
        out.mux(stream.encode(frame))
    out.mux(stream.encode())
    out.close()
    return path


def _scene(seed: int, t: float, size: tuple[int, int]) -> np.ndarray:
    """An RGB frame of a smooth random picture (``seed``) panning right as ``t`` grows."""
    from PIL import Image

    w, h = size
    base = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(base).resize((w * 2, h), Image.Resampling.BICUBIC))
    x = int(t * 20) % w
    return np.ascontiguousarray(big[:, x : x + w])


def _audio_blocks(source: Path, seconds: float) -> list[np.ndarray]:
    """The first ``seconds`` of ``source`` as 16 kHz mono float32 blocks of 1024 samples, shape (1, 1024)."""
    with av.open(str(source)) as src:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        pcm = [
            out.to_ndarray().reshape(-1) for frame in src.decode(audio=0) for out in resampler.resample(frame)
        ]
    samples = np.concatenate(pcm)[: int(seconds * 16000)].astype(np.float32)
    return [samples[i : i + 1024].reshape(1, -1) for i in range(0, len(samples) - 1023, 1024)]


def write_clip(
    path: Path,
    seed: int,
    black_s: float = 2.0,
    content_s: float = 4.0,
    bit_rate: int = 1_000_000,
    audio_from: Path | None = None,
    audio_bit_rate: int = 96_000,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
) -> Path:
    """An MPEG-4 Part 2 video in MP4: ``black_s`` seconds of black, then ``content_s`` seconds of a
    panning picture drawn from ``seed`` (two seeds: two different clips), at ``bit_rate`` bit/s;
    with ``audio_from``, the first ``black_s + content_s`` seconds of that file's sound as AAC."""
    out = av.open(str(path), "w")
    video = out.add_stream("mpeg4", rate=fps)
    video.width, video.height, video.pix_fmt, video.bit_rate = size[0], size[1], "yuv420p", bit_rate
    audio = None
    if audio_from is not None:
        audio = out.add_stream("aac", rate=16000)
        audio.bit_rate, audio.layout = audio_bit_rate, "mono"
    total = int((black_s + content_s) * fps)
    for i in range(total):
        t = i / fps
        rgb = np.zeros((size[1], size[0], 3), np.uint8) if t < black_s else _scene(seed, t - black_s, size)
        out.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
    out.mux(video.encode())
    if audio is not None and audio_from is not None:
        for n, block in enumerate(_audio_blocks(audio_from, black_s + content_s)):
            frame = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
            frame.sample_rate, frame.pts = 16000, n * 1024
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    out.close()
    return path


def transcode(source: Path, path: Path, bit_rate: int, audio_bit_rate: int = 32_000) -> Path:
    """``source`` decoded and encoded again: its video as MPEG-4 Part 2 at ``bit_rate`` bit/s, its
    sound (if any) as AAC at ``audio_bit_rate`` (the same clip as another service would re-encode it)."""
    with av.open(str(source)) as src:
        out = av.open(str(path), "w")
        vin = src.streams.video[0] if src.streams.video else None
        ain = src.streams.audio[0] if src.streams.audio else None
        vout = aout = None
        if vin is not None:
            vout = out.add_stream("mpeg4", rate=vin.average_rate or 25)
            vout.width, vout.height, vout.pix_fmt = (
                vin.codec_context.width,
                vin.codec_context.height,
                "yuv420p",
            )
            vout.bit_rate = bit_rate
        if ain is not None:
            aout = out.add_stream("aac", rate=ain.codec_context.sample_rate)
            aout.bit_rate = audio_bit_rate
            # AAC takes planar float in frames of 1024 samples
            resampler = av.AudioResampler(
                format="fltp",
                layout=ain.codec_context.layout.name,
                rate=ain.codec_context.sample_rate,
                frame_size=1024,
            )
        for frame in src.decode(*(s for s in (vin, ain) if s is not None)):
            if isinstance(frame, av.VideoFrame) and vout is not None:
                out.mux(
                    vout.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24"))
                )
            elif isinstance(frame, av.AudioFrame) and aout is not None:
                frame.pts = None
                for chunk in resampler.resample(frame):
                    out.mux(aout.encode(chunk))
        for stream in (vout, aout):
            if stream is not None:
                out.mux(stream.encode())
        out.close()
    return path
