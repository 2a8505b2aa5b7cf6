"""The ``ocr`` task as RQ runs it on an ocr_detection worker.

The worker process sets the runtime once (:func:`set_runtime`) before it takes any
job, so every job reuses the engines loaded at start.

Payload (built by job_manager): ``{"task_id", "job_id", "media_id", "storage_path", "options"}``.
Returns ``{"ok": True, "result": OcrResult}`` or, for errors no retry can fix (bad
options, undecodable media), ``{"ok": False, "error": {"code", "message"}}``. Anything
else raises, and RQ retries the task with backoff.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis

from mediafleet.common import events
from mediafleet.common.errors import MediafleetError
from mediafleet.common.observability import TASK_DURATION
from mediafleet.ocr_detection.runner import OcrRunner


@dataclass
class Runtime:
    runner: OcrRunner
    redis: redis.Redis


_runtime: Runtime | None = None


def set_runtime(runtime: Runtime) -> None:
    global _runtime
    _runtime = runtime


def get_runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("ocr runtime not initialised: run tasks through `mediafleet-ocr-detection worker`")
    return _runtime


def run_ocr_task(payload: dict[str, Any]) -> dict[str, Any]:
    rt = get_runtime()
    job_id, task_id = payload["job_id"], payload["task_id"]
    events.publish(rt.redis, job_id, task="ocr", task_id=task_id, task_status="running")
    path = rt.runner.settings.core.media_dir / payload["storage_path"]
    start = time.perf_counter()
    engine = (payload.get("options") or {}).get("engine") or rt.runner.settings.default_engine
    try:
        result = rt.runner.analyze(path, payload.get("options"))
    except MediafleetError as exc:
        if exc.status_code >= 500:
            TASK_DURATION.labels("ocr", engine, "error").observe(time.perf_counter() - start)
            raise
        TASK_DURATION.labels("ocr", engine, "rejected").observe(time.perf_counter() - start)
        return {"ok": False, "error": {"code": exc.code, "message": exc.message}}
    TASK_DURATION.labels("ocr", result.engine, "ok").observe(time.perf_counter() - start)
    return {"ok": True, "result": result.model_dump()}
