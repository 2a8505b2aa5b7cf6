"""Image tasks on videos: run a capability's image path on each sampled frame.

Generic (no capability is named): the worker's task function and the CLI's embedded mode
call :func:`run_on_frames` when a task whose contract takes images is asked to run on a
video (``TaskSpec.on_frames``). Frames are chosen by :func:`mediafleet.common.media.sample_frames`
with the fleet's :class:`~mediafleet.common.media.FrameSampling` (``MEDIAFLEET_VIDEO_*``
settings), so every image task of a job sees the same frames and their results meet at the
same ``t`` on the job's timeline.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

from mediafleet.common.capability import FrameResult, FramesResult, ProgressFn, Runner, TaskSpec, is_frames
from mediafleet.common.media import FrameSampling, sample_frames


def sampling_from(core: Any) -> FrameSampling:
    """The fleet's frame sampling from a :class:`~mediafleet.common.settings.CoreSettings`."""
    if core is None:
        return FrameSampling()
    return FrameSampling(
        every_s=core.video_every_s,
        scene_threshold=core.video_scene_threshold,
        max_frames=core.video_max_frames,
    )


def frame_inputs(inputs: dict[str, Any], t: float) -> dict[str, Any]:
    """Dependencies' results for the frame at ``t`` (a dependency's own frame result there)."""
    out = {}
    for name, value in inputs.items():
        if is_frames(value):
            match = next((f["result"] for f in value["frames"] if abs(f["t"] - t) < 1e-3), None)
            if match is not None:
                out[name] = match
        else:
            out[name] = value
    return out


def run_on_frames(
    runner: Runner,
    spec: TaskSpec,
    media: Path,
    options: dict[str, Any],
    inputs: dict[str, Any],
    progress: ProgressFn,
    sampling: FrameSampling,
    duration_s: float | None = None,
) -> FramesResult:
    """Run ``spec``'s task on each sampled frame of ``media`` (a video).

    Each frame is written losslessly (PNG) to a temporary file, because runners take a file
    path like an upload, at the video's own size: runners report results in the pixels of the
    image they are given, and decode it fitted to their engine themselves. Frames are within
    the pixel cap (checked at upload and again here). Raises what the runner raises, and
    InvalidMedia for a video the decoder cannot read (or without a video stream).
    """
    start = time.perf_counter()
    frames: list[FrameResult] = []
    with tempfile.TemporaryDirectory(prefix="mediafleet-frames-") as tmp:
        for i, (t, rgb) in enumerate(sample_frames(media, sampling)):
            path = Path(tmp) / f"frame-{i:05d}.png"
            Image.fromarray(rgb).save(path, compress_level=1)
            done = i / sampling.max_frames

            def frame_progress(fraction: float, message: str = "", _done: float = done) -> None:
                progress(min(_done + fraction / sampling.max_frames, 0.99), message)

            result = runner.run(spec.name, path, options, frame_inputs(inputs, t), frame_progress)
            frames.append(FrameResult(t=t, result=result.model_dump(mode="json")))
            path.unlink()
            progress(min((i + 1) / sampling.max_frames, 0.99), f"frame at {t:.1f} s")
    return FramesResult(
        duration_s=duration_s,
        sampling={
            "every_s": sampling.every_s,
            "scene_threshold": sampling.scene_threshold,
            "max_frames": sampling.max_frames,
        },
        frames=frames,
        elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
    )
