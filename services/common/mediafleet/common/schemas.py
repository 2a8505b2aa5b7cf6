"""Enumerations shared by the gateway, job_manager and workers.

Result schemas belong to each capability's contract. Conventions for them: boxes are
``xyxy`` in source-image pixels, polygons lists of ``[x, y]`` pixel points, scores in
[0, 1], times in seconds from media start, durations in milliseconds where the name says
``_ms``.
"""

from __future__ import annotations

from enum import StrEnum


class Priority(StrEnum):
    high = "high"
    normal = "normal"
    low = "low"


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)


class DeviceChoice(StrEnum):
    """Where a job's tasks may run (``JobCreate.device``).

    ``auto``: on a GPU worker of the task's capability when one is alive and ready, else on CPU;
    a task no GPU worker took within job_manager's ``GPU_WAIT_S`` (or whose GPU worker died)
    moves to the CPU queue. ``gpu``: only on a GPU worker (it waits for one). ``cpu``: never
    waits for a GPU (the CPU queue, which GPU workers also drain when their own is empty).
    """

    auto = "auto"
    gpu = "gpu"
    cpu = "cpu"
