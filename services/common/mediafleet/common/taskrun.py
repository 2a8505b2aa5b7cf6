"""The one task function every AI worker runs, whatever its capability.

Payload (built by job_manager)::

    {"task", "task_id", "job_id", "media_id", "media_kind", "duration_s", "storage_path",
     "media_url" (optional), "options": {...}, "inputs": {dependency task: its result},
     "trace" (optional): the W3C trace context and request id (mediafleet.common.tracing)}

An image task given a video (``media_kind`` "video") runs on its sampled frames
(:mod:`mediafleet.common.pipeline.frames`).

The worker that runs the job provides the loaded runner: :class:`ModelWorker` binds its
:class:`Runtime` for the duration of each job (a context variable, so nothing is set at
import time and a second worker object in the same process has its own runtime).

Returns a :class:`~mediafleet.common.outcome.TaskOutcome` as a dict: ``ok=True`` with the
result, or ``ok=False`` for errors no retry can fix (4xx errors: bad options, undecodable
or unreachable media). Anything else raises, and RQ retries the task with backoff.
"""

from __future__ import annotations

import contextvars
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import structlog
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import ValidationError
from rq.timeouts import BaseTimeoutException

from mediafleet.common import events, tracing
from mediafleet.common.capability import Capability, Runner
from mediafleet.common.errors import MediafleetError
from mediafleet.common.media_access import open_media
from mediafleet.common.metrics import TASK_DURATION
from mediafleet.common.outcome import TaskCrashed, TaskOutcome
from mediafleet.common.pipeline import run as pipeline

log = structlog.get_logger("mediafleet.taskrun")


@dataclass
class Runtime:
    """What a worker process holds for its jobs: the capability, its loaded runner, Redis."""

    capability: Capability
    runner: Runner
    redis: redis.Redis
    media_dir: Path
    #: ``cpu`` or ``cuda`` (``MEDIAFLEET_WORKER_DEVICE``), returned with each result
    device: str = "cpu"


_current: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar("mediafleet_runtime", default=None)


@contextmanager
def bound_runtime(runtime: Runtime) -> Iterator[None]:
    token = _current.set(runtime)
    try:
        yield
    finally:
        _current.reset(token)


def current_runtime() -> Runtime:
    rt = _current.get()
    if rt is None:
        raise RuntimeError(
            "no runtime bound: tasks run on a worker started by `mediafleet-service NAME worker`"
        )
    return rt


def run_task(payload: dict[str, Any]) -> dict[str, Any]:
    """Run the payload's task on the bound runtime (:mod:`mediafleet.common.pipeline.run`).

    Traced as ``task.run``, a consumer span continuing the payload's ``trace``
    (:data:`mediafleet.common.tracing.Carrier`, job_manager's ``task.enqueue``); its log lines
    carry the job's request id, ``job_id`` and ``task_id``."""
    task, job_id, task_id = payload["task"], payload["job_id"], payload["task_id"]
    attributes = {"mediafleet.task": task, "mediafleet.job_id": job_id, "mediafleet.task_id": task_id}
    with (
        structlog.contextvars.bound_contextvars(job_id=job_id, task_id=task_id),
        tracing.span("task.run", payload.get("trace"), SpanKind.CONSUMER, attributes) as current,
    ):
        start = time.perf_counter()
        outcome = _run_task(payload)
        code = None if outcome.get("ok") else str((outcome.get("error") or {}).get("code"))
        if code is not None:
            current.set_status(Status(StatusCode.ERROR, code))
        log.info("task_done", task=task, error=code, seconds=round(time.perf_counter() - start, 3))
        return outcome


def _run_task(payload: dict[str, Any]) -> dict[str, Any]:
    rt = current_runtime()
    task, job_id, task_id = payload["task"], payload["job_id"], payload["task_id"]
    engine = str((payload.get("options") or {}).get("engine") or "default")
    model = str((payload.get("options") or {}).get("model") or "default")

    def progress(fraction: float, message: str = "") -> None:
        events.publish(
            rt.redis,
            job_id,
            task=task,
            task_id=task_id,
            progress=round(min(max(fraction, 0.0), 1.0), 3),
            message=message,
        )

    start = time.perf_counter()
    try:
        prepared = pipeline.prepare(rt.capability, task, payload.get("options"))
        events.publish(rt.redis, job_id, task=task, task_id=task_id, task_status="running")
        with open_media(payload, rt.media_dir) as path:
            result = pipeline.execute(
                prepared,
                rt.runner,
                path,
                media_kind=payload.get("media_kind", "image"),
                inputs=payload.get("inputs") or {},
                duration_s=payload.get("duration_s"),
                progress=progress,
            )
    except MediafleetError as exc:
        if exc.code == "model_not_available":  # no retry provisions weights: fail at once, say how
            TASK_DURATION.labels(task, engine, model, "rejected").observe(time.perf_counter() - start)
            return TaskOutcome.failure("models_missing", exc.message).model_dump(mode="json")
        if exc.status_code >= 500:
            TASK_DURATION.labels(task, engine, model, "error").observe(time.perf_counter() - start)
            log.error("task_error", task=task, job_id=job_id, task_id=task_id, error=exc.message)
            raise TaskCrashed(f"{task} failed on the worker: {exc.message}") from exc
        TASK_DURATION.labels(task, engine, model, "rejected").observe(time.perf_counter() - start)
        return TaskOutcome.failure(exc.code, exc.message, exc.status_code).model_dump(mode="json")
    except BaseTimeoutException:  # RQ's time limit: job_manager words it for the user
        TASK_DURATION.labels(task, engine, model, "error").observe(time.perf_counter() - start)
        raise
    except Exception as exc:  # retried by RQ; users read a line without class names or paths
        TASK_DURATION.labels(task, engine, model, "error").observe(time.perf_counter() - start)
        log.exception("task_crashed", task=task, job_id=job_id, task_id=task_id)
        raise TaskCrashed(
            f"{task} failed on the worker {socket.gethostname()} (internal error; its log has the "
            f"details under task_id {task_id})"
        ) from exc
    used = getattr(result, "engine", None) or engine
    used_model = getattr(result, "model", None) or model
    TASK_DURATION.labels(task, used, used_model, "ok").observe(time.perf_counter() - start)
    return TaskOutcome.success(result, device=rt.device).model_dump(mode="json")


#: The function a worker runs for a capability's synchronous query (gateway -> worker).
QUERY_FUNCTION = "mediafleet.common.taskrun.run_query"


def run_query(payload: dict[str, Any]) -> dict[str, Any]:
    """Answer ``{"query": name, "input": {...}}`` with the runner's ``query``.

    Returns a TaskOutcome dict like :func:`run_task` (``ok=False`` for a bad query or input).
    """
    rt = current_runtime()
    name = payload.get("query", "")
    start = time.perf_counter()
    try:
        spec = rt.capability.query(name)
    except KeyError:
        return TaskOutcome.failure(
            "unknown_query", f"{rt.capability.name} answers no query {name!r}"
        ).model_dump(mode="json")
    try:
        body = spec.input.model_validate(payload.get("input") or {})
        answer = spec.output.model_validate(rt.runner.query(name, body))
    except ValidationError as exc:
        return TaskOutcome.failure("invalid_query", str(exc).splitlines()[0]).model_dump(mode="json")
    except MediafleetError as exc:
        if exc.code == "model_not_available":
            return TaskOutcome.failure("models_missing", exc.message).model_dump(mode="json")
        if exc.status_code >= 500:
            TASK_DURATION.labels(f"query:{name}", "default", "default", "error").observe(
                time.perf_counter() - start
            )
            log.error("query_error", query=name, error=exc.message)
            raise TaskCrashed(f"{name} failed on the worker: {exc.message}") from exc
        return TaskOutcome.failure(exc.code, exc.message, exc.status_code).model_dump(mode="json")
    TASK_DURATION.labels(f"query:{name}", "default", "default", "ok").observe(time.perf_counter() - start)
    return TaskOutcome.success(answer).model_dump(mode="json")
