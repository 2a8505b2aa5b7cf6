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
