"""Redis keys and RQ queue names shared by gateway, job_manager and workers.

Each capability has one family of queues named after it, ``<capability>:high|normal|low``;
every task of the capability goes there and the generic task function
:func:`mediafleet.common.taskrun.run_task` runs it. Its workers also drain the queues of the
names it had before (``Capability.former_queues``: ``ocr``, ``pose``, ``clip`` until 2026-12),
so tasks queued before an upgrade still run.

GPU workers (``MEDIAFLEET_WORKER_DEVICE=cuda``) listen first on ``<capability>:gpu:high|normal|low``,
where job_manager sends a task while a GPU worker of its capability is alive and ready, then on
the CPU queues; a task no GPU worker took in time goes back to the CPU queue (job_manager).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis

from mediafleet.common.schemas import Priority

if TYPE_CHECKING:
    from mediafleet.common.capability import Capability

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


def priority_queues(cap: Capability, priority: Priority | str) -> list[str]:
    """The queues a worker of ``cap`` drains at ``priority``: its own, then its former names'."""
    level = Priority(priority).value
    return [f"{name}:{level}" for name in (cap.queue, *cap.former_queues)]


def gpu_queues(cap: Capability) -> list[str]:
    """The GPU queues of ``cap``, highest priority first: ``<queue>:gpu:high|normal|low``."""
    return [f"{cap.queue}:gpu:{p.value}" for p in PRIORITY_ORDER]


def family_queues(cap: Capability, device: str = "cpu") -> list[str]:
    """Every queue a worker of ``cap`` on ``device`` (``cpu``, ``cuda``) listens on, in its
    listening order: a GPU worker's GPU queues first; then highest priority first, and at one
    priority the current name before former ones."""
    cpu = [q for p in PRIORITY_ORDER for q in priority_queues(cap, p)]
    return gpu_queues(cap) + cpu if device == "cuda" else cpu


def is_gpu_queue(name: str) -> bool:
    return ":gpu:" in name


def queue_name(task: str, priority: Priority | str, gpu: bool = False) -> str:
    """RQ queue new work for ``task`` at ``priority`` goes to: ``<capability>:<priority>``, or
    ``<capability>:gpu:<priority>`` for a GPU worker."""
    from mediafleet.common.registry import capability_of

    return f"{capability_of(task).queue}:{'gpu:' if gpu else ''}{Priority(priority).value}"


def all_queue_names() -> list[str]:
    """Every queue of every installed capability, GPU queues and former names included (depth
    metrics, job_manager's reaper and scheduler)."""
    from mediafleet.common.registry import capabilities

    return [q for cap in capabilities().values() for q in family_queues(cap, "cuda")]


def job_events_key(job_id: str) -> str:
    """Redis stream holding a job's progress events (entries with one field ``data``: JSON)."""
    return f"mediafleet:job:{job_id}:events"


def redis_problem(exc: redis.RedisError) -> str:
    """One line for people on why Redis refused or could not be reached (no class names):
    refused credentials, a permission the role's ACL user lacks, an untrusted TLS certificate,
    or the connection error as the client saw it."""
    text = str(exc)
    if isinstance(exc, redis.AuthenticationError) or "WRONGPASS" in text or "NOAUTH" in text:
        return (
            "Redis refused this service's credentials: check the user and password in "
            "MEDIAFLEET_REDIS_URL (redis://USER:PASSWORD@HOST:PORT/0)"
        )
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return f"Redis denied a command to this service's user: {text}"
    if "Hostname mismatch" in text:
        return (
            "Redis's TLS certificate does not name the host in MEDIAFLEET_REDIS_URL: add that name "
            "to REDIS_TLS_SAN on the fleet's host and let it make a new certificate (docs/worker-hosts.md)"
        )
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (
            "Redis's TLS certificate is not trusted: give the fleet's Redis certificate with "
            "?ssl_ca_certs=/path/to/redis-ca.crt in MEDIAFLEET_REDIS_URL (make redis-ca on the fleet's host)"
        )
    return f"Redis cannot be reached: {text}"
