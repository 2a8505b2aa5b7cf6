"""Redis keys and RQ queue names shared by gateway, job_manager and workers."""

from __future__ import annotations

from mediafleet.common.schemas import Priority

#: Tasks each AI service can run, by the service's capability queue.
TASK_QUEUES = {"ocr": "ocr"}
#: The function a worker runs for each task (import path; job_manager never imports it).
TASK_FUNCTIONS = {"ocr": "mediafleet.ocr_detection.tasks.run_ocr_task"}

#: Priorities in the order workers drain them.
PRIORITY_ORDER = (Priority.high, Priority.normal, Priority.low)

#: Redis list the gateway pushes new job ids onto; job_manager pops it.
NEW_JOBS_KEY = "mediafleet:jobs:new"
#: Redis list workers push task ids onto when a task changes state; wakes job_manager.
TASK_EVENTS_KEY = "mediafleet:tasks:events"


def queue_name(task: str, priority: Priority | str) -> str:
    """RQ queue of ``task`` at ``priority``, e.g. ``ocr:high``."""
    return f"{TASK_QUEUES[task]}:{Priority(priority).value}"


def queue_names(task: str) -> list[str]:
    """All queues of ``task``, highest priority first (the order a worker listens in)."""
    return [queue_name(task, p) for p in PRIORITY_ORDER]


def job_channel(job_id: str) -> str:
    """Redis pub/sub channel carrying a job's progress events (JSON)."""
    return f"mediafleet:job:{job_id}:events"
