"""``mediafleet-ocr-detection [worker|serve]``.

``worker`` (default): RQ worker on the ``ocr:high``, ``ocr:normal``, ``ocr:low`` queues,
with the health/metrics HTTP server in a thread; both share the engines loaded at start.
``serve``: only the HTTP API (``/v1/predict``, ``/v1/models``, health).
"""

from __future__ import annotations

import argparse

import redis
import structlog
import uvicorn

from mediafleet.common.logging import configure_logging
from mediafleet.common.observability import redis_check, serve_in_thread
from mediafleet.common.queues import queue_names
from mediafleet.common.worker import ModelWorker
from mediafleet.ocr_detection.api import create_app
from mediafleet.ocr_detection.runner import OcrRunner
from mediafleet.ocr_detection.settings import OcrSettings
from mediafleet.ocr_detection.tasks import Runtime, set_runtime

log = structlog.get_logger("mediafleet.ocr")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mediafleet-ocr-detection")
    parser.add_argument("mode", nargs="?", choices=("worker", "serve"), default="worker")
    parser.add_argument("--burst", action="store_true", help="worker: exit when the queues are empty")
    args = parser.parse_args(argv)

    settings = OcrSettings()
    configure_logging(settings.core.log_level, settings.core.log_format)
    runner = OcrRunner(settings)
    runner.preload()  # before taking any job: never load a model per job

    if args.mode == "serve":
        uvicorn.run(create_app(runner), host=settings.http_host, port=settings.http_port)
        return

    conn = redis.Redis.from_url(settings.core.redis_url)
    set_runtime(Runtime(runner=runner, redis=conn))
    serve_in_thread(create_app(runner, {"redis": redis_check(conn)}), settings.http_host, settings.http_port)
    ModelWorker.lease_s = settings.core.task_lease_s
    worker = ModelWorker(queue_names("ocr"), connection=conn)
    log.info("ocr_worker_started", queues=queue_names("ocr"), engines=runner.loaded_engines())
    # No scheduler here: job_manager schedules retries (see job_manager.manager).
    worker.work(burst=args.burst)


if __name__ == "__main__":
    main()
