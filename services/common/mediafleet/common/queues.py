"""Redis keys and RQ queue names shared by gateway, job_manager and workers.

Each capability has one family of queues, ``<queue>:high|normal|low`` (its contract names
``queue``); every task of the capability goes there and the generic task function
:func:`mediafleet.common.taskrun.run_task` runs it.
"""

from __future__ import annotations

import redis

from mediafleet.common.schemas import Priority

#: The one function every worker runs (import path; job_manager never imports it).
TASK_FUNCTION = "mediafleet.common.taskrun.run_task"

#: Priorities in the order workers drain them.
PRIORITY_ORDER = (Priority.high, Priority.normal, Priority.low)

#: Redis list the gateway pushes new job ids onto; job_manager pops it.
NEW_JOBS_KEY = "mediafleet:jobs:new"
#: Redis list workers push task ids onto when a task changes state; wakes job_manager.
TASK_EVENTS_KEY = "mediafleet:tasks:events"
#: Redis hash: task name -> JSON ``{"default_options", "model_versions"}`` written by workers at start.
ADVERTS_KEY = "mediafleet:adverts"
#: Redis string per worker process (``<prefix><hostname>:<pid>``, the RQ worker's own fields):
#: JSON :class:`mediafleet.common.worker.WorkerStatus`, rewritten every few seconds and expiring
#: soon after the process stops. What readiness, the admin page and ``GET /v1/tasks`` read.
WORKER_STATUS_PREFIX = "mediafleet:worker:"
#: Redis string: unix seconds of job_manager's last reconciliation pass (expires when it stops).
JOB_MANAGER_HEARTBEAT_KEY = "mediafleet:job_manager:heartbeat"
#: Seconds without a pass after which job_manager counts as down.
JOB_MANAGER_HEARTBEAT_TTL_S = 15


def job_manager_liveness(client: redis.Redis) -> str:
    """``"ok"`` while job_manager reconciles, else why not (for /readyz reports)."""
    import time

    beat = client.get(JOB_MANAGER_HEARTBEAT_KEY)
    if beat is None:
        return f"no heartbeat in the last {JOB_MANAGER_HEARTBEAT_TTL_S} s: jobs wait until job_manager runs"
    return "ok" if time.time() - float(beat) <= JOB_MANAGER_HEARTBEAT_TTL_S else "heartbeat is stale"


def family_queues(family: str) -> list[str]:
    """The queues of a capability's queue family, highest priority first (a worker's listening order)."""
    return [f"{family}:{p.value}" for p in PRIORITY_ORDER]


def queue_name(task: str, priority: Priority | str) -> str:
    """RQ queue of ``task`` at ``priority``, e.g. ``ocr:high``."""
    from mediafleet.common.registry import capability_of

    return f"{capability_of(task).queue}:{Priority(priority).value}"


def all_queue_names() -> list[str]:
    """Every queue of every installed capability."""
    from mediafleet.common.registry import capabilities

    return [q for cap in capabilities().values() for q in family_queues(cap.queue)]


def job_events_key(job_id: str) -> str:
    """Redis stream holding a job's progress events (entries with one field ``data``: JSON)."""
    return f"mediafleet:job:{job_id}:events"
