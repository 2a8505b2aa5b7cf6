"""Run one task on one media file: the single path every executor takes.

The RQ task function (:func:`mediafleet.common.taskrun.run_task`), a service's synchronous
``POST /v1/predict`` (:mod:`mediafleet.common.service_app`) and the CLI's embedded mode
(``mediafleet analyze`` without ``--api``) all call :func:`prepare` then :func:`execute`, so a
task is checked and run the same way wherever it runs:

1. :func:`prepare`: the task is the capability's, its options are validated once (strictly,
   against the contract's options model; ``None`` values dropped, the service's defaults fill
   them in the runner).
2. :func:`execute`: the media kind is one the task takes, then the whole file goes to the
   runner, or, for an image task given a video, each sampled frame does
   (:func:`mediafleet.common.pipeline.frames.run_on_frames`, one ``FramesResult``).

Streams a task needs (``TaskSpec.streams``) are checked when a job is planned
(:func:`mediafleet.common.registry.plan_for_media`), before any executor sees the media.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mediafleet.common.capability import Capability, ProgressFn, Runner, TaskSpec
from mediafleet.common.errors import BadRequest, ValidationFailed
from mediafleet.common.pipeline.frames import run_on_frames, sampling_from


def _no_progress(fraction: float, message: str = "") -> None:
    return None


@dataclass(frozen=True)
class Prepared:
    """A task of ``capability`` with options that passed its contract's schema."""

    capability: Capability
    spec: TaskSpec
    options: dict[str, Any]


def prepare(capability: Capability, task: str, options: dict[str, Any] | None) -> Prepared:
    """Check that ``capability`` runs ``task`` and validate ``options`` (the only validation
    of a task's options on its way to a runner).

    Raises:
        BadRequest: ``unknown_task`` (another capability's task, or none's), ``invalid_option``
            (the first field that fails the task's options model).
    """
    if task not in capability.task_names:
        raise BadRequest(
            f"{capability.name} runs {', '.join(capability.task_names)}, not {task!r}", code="unknown_task"
        )
    return Prepared(capability, capability.task(task), capability.validate_options(task, options or {}))


def execute(
    prepared: Prepared,
    runner: Runner,
    media: Path,
    *,
    media_kind: str,
    inputs: dict[str, Any] | None = None,
    duration_s: float | None = None,
    progress: ProgressFn = _no_progress,
) -> BaseModel:
    """Run a prepared task on ``media`` (a local file) of ``media_kind`` ("image", "audio",
    "video"): the task's result model, or a ``FramesResult`` for an image task on a video.

    ``inputs`` are the results of the task's dependencies (JSON dicts, by task name);
    ``duration_s`` (seconds, audio/video) is recorded in a ``FramesResult``.

    Raises:
        ValidationFailed: ``unsupported_media_kind`` when the task does not take this kind.
        Whatever the runner raises (MediafleetError subclasses for the user's errors).
    """
    spec = prepared.spec
    if not spec.accepts(media_kind):
        raise ValidationFailed(
            f"task {spec.name} takes {'/'.join(spec.kinds())}, not {media_kind}",
            code="unsupported_media_kind",
        )
    if spec.on_frames(media_kind):
        core = getattr(runner.settings, "core", None)
        return run_on_frames(
            runner, spec, media, prepared.options, inputs or {}, progress, sampling_from(core), duration_s
        )
    return runner.run(spec.name, media, prepared.options, inputs or {}, progress)
