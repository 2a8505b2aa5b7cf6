"""In-process pieces of the job path for tests: the gateway under TestClient, job_manager's
reconciliation called directly, and burst workers of any capability on real Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from rq import Queue

from mediafleet.common import registry
from mediafleet.common.queues import family_queues
from mediafleet.common.service import advertise
from mediafleet.common.settings import CoreSettings
from mediafleet.common.taskrun import Runtime
from mediafleet.common.worker import ModelWorker


def run_worker(core: CoreSettings, capability: str, media_dir: Path | None = None, **settings: Any) -> None:
    """Start a worker of ``capability`` (settings overridden by ``settings``), advertise, drain its queues."""
    cap = registry.get(capability)
    runner = cap.build_runner(cap.load_settings(core=core, **settings))
    runner.preload()
    conn = redis.Redis.from_url(core.redis_url)
    advertise(conn, cap, runner)
    runtime = Runtime(cap, runner, conn, media_dir or core.media_dir)
    ModelWorker(family_queues(cap), connection=conn, runtime=runtime).work(burst=True)


def queued(conn: redis.Redis, queue: str) -> int:
    return Queue(queue, connection=conn).count
