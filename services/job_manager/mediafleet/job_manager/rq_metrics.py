"""Queue and worker metrics read from Redis at scrape time, named as the RQ ecosystem names them
(rq-exporter's ``rq_jobs`` and ``rq_workers``), so RQ dashboards and KEDA read the same queues.

- ``rq_jobs{queue,status}``: jobs per queue and status (``queued``: waiting in the list,
  ``started``, ``finished``, ``failed``, ``deferred``, ``scheduled``, ``canceled``: RQ's
  registries of that queue);
- ``rq_workers{name,queues,state}``: 1 per live RQ worker (``idle``, ``busy``, ``suspended``...),
  ``queues`` its queues joined by commas;
- ``mediafleet_queue_oldest_task_age_seconds{queue}``: how long the task at the head of the queue
  has waited (0 when the queue is empty), the first sign of a queue nobody drains.

A scrape while Redis is unreachable returns these families without samples (the service's
``/readyz`` says why); it never fails the scrape of the other metrics.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping

import redis
import structlog
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from rq import Queue, Worker

from mediafleet.common.worker import head_wait_s

log = structlog.get_logger("mediafleet.job_manager.metrics")


class RqCollector(Collector):
    def __init__(self, conn: redis.Redis, queues: Mapping[str, Queue]):
        self.conn, self.queues = conn, queues

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("rq_jobs", "RQ jobs by queue and status", labels=["queue", "status"])
        workers = GaugeMetricFamily("rq_workers", "RQ workers (1 each)", labels=["name", "queues", "state"])
        oldest = GaugeMetricFamily(
            "mediafleet_queue_oldest_task_age_seconds",
            "Seconds the task at the head of the queue has waited (0: empty queue)",
            labels=["queue"],
        )
        try:
            now = dt.datetime.now(dt.UTC)
            for name, queue in self.queues.items():
                counts = {
                    "queued": queue.count,
                    "started": queue.started_job_registry.count,
                    "finished": queue.finished_job_registry.count,
                    "failed": queue.failed_job_registry.count,
                    "deferred": queue.deferred_job_registry.count,
                    "scheduled": queue.scheduled_job_registry.count,
                    "canceled": queue.canceled_job_registry.count,
                }
                for status, count in counts.items():
                    jobs.add_metric([name, status], count)
                oldest.add_metric([name], head_wait_s(queue, now))
            for worker in Worker.all(connection=self.conn):
                state = worker.get_state()
                workers.add_metric(
                    [worker.name, ",".join(worker.queue_names()), str(getattr(state, "value", state))], 1
                )
        except redis.RedisError as exc:
            log.warning("rq_metrics_unavailable", error=str(exc))
            jobs.samples.clear()
            workers.samples.clear()
            oldest.samples.clear()
        yield jobs
        yield workers
        yield oldest


_registered: RqCollector | None = None


def register(conn: redis.Redis, queues: Mapping[str, Queue]) -> RqCollector:
    """Register the collector in the default registry (replacing one registered before)."""
    global _registered
    if _registered is not None:
        REGISTRY.unregister(_registered)
    _registered = RqCollector(conn, queues)
    REGISTRY.register(_registered)
    return _registered
