"""The fleet's Prometheus metrics, in one place (names follow Prometheus' naming guide: base
units, ``_total`` counters, ``_seconds`` histograms).

Importing this module turns off prometheus_client's ``*_created`` series (a timestamp per
counter, histogram and summary child, which doubles the series and no dashboard reads); every
module that creates a counter or a histogram imports its objects from here, so the switch is
set before any of them exists.

- ``mediafleet_http_requests_total`` / ``mediafleet_http_request_duration_seconds``: every
  service's HTTP API (method, route template, status).
- ``mediafleet_task_duration_seconds{task,engine,model,outcome}``: one task's run time on a
  worker (outcome ``ok``, ``rejected``: bad input or missing weights, ``error``: retried).
- ``mediafleet_vector_syncs_total{outcome}``: job_manager's writes of embeddings to vector_db.
- ``mediafleet_model_loaded{engine,model}`` (1 once loaded) and
  ``mediafleet_model_load_seconds{engine,model}``: set when an engine loads its weights.
- ``gen_ai_server_time_to_first_token_seconds`` and ``gen_ai_server_time_per_output_token_seconds``
  ``{model}``: the LLM's latency, named after OpenTelemetry's GenAI semantic conventions
  (``gen_ai.server.time_to_first_token``, ``gen_ai.server.time_per_output_token``, both in s)
  with their recommended buckets.
- ``mediafleet_storage_available_bytes{volume}`` / ``mediafleet_storage_size_bytes{volume}``: the
  file system holding a service's data folder (the gateway's ``media``, vector_db's ``vectors``),
  read at scrape time (``shutil.disk_usage``: what an unprivileged process may still write, as
  ``df``'s *Avail*); the "disk nearly full" alert divides one by the other.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client 0.26 leaves it unannotated

HTTP_REQUESTS = Counter(
    "mediafleet_http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "mediafleet_http_request_duration_seconds",
    "HTTP request latency, seconds",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TASK_DURATION = Histogram(
    "mediafleet_task_duration_seconds",
    "Run time of one task on a worker, seconds",
    ["task", "engine", "model", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
VECTOR_SYNCS = Counter(
    "mediafleet_vector_syncs_total", "Writes of a task's embeddings to vector_db", ["outcome"]
)
MODEL_LOADED = Gauge("mediafleet_model_loaded", "1 when the engine has loaded the model", ["engine", "model"])
MODEL_LOAD_SECONDS = Gauge(
    "mediafleet_model_load_seconds", "Seconds the engine took to load the model", ["engine", "model"]
)
#: OpenTelemetry GenAI: gen_ai.server.time_to_first_token (recommended bucket boundaries, s).
LLM_TIME_TO_FIRST_TOKEN = Histogram(
    "gen_ai_server_time_to_first_token_seconds",
    "Time from the LLM engine taking a request to its first output token, seconds",
    ["model"],
    buckets=(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
)
#: OpenTelemetry GenAI: gen_ai.server.time_per_output_token (recommended bucket boundaries, s).
LLM_TIME_PER_OUTPUT_TOKEN = Histogram(
    "gen_ai_server_time_per_output_token_seconds",
    "Mean time per output token after the first, per request, seconds",
    ["model"],
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5),
)


class StorageCollector(Collector):
    """``mediafleet_storage_{available,size}_bytes{volume}`` of each folder, at scrape time.

    ``folders`` maps a volume name (a label value) to a folder on that file system; a folder that
    does not exist (yet) or cannot be read yields no sample for it, never a failed scrape.
    """

    def __init__(self, folders: Mapping[str, str | os.PathLike[str]]):
        self.folders = dict(folders)

    def collect(self) -> Iterator[Metric]:
        available = GaugeMetricFamily(
            "mediafleet_storage_available_bytes",
            "Bytes an unprivileged process may still write on the volume's file system",
            labels=["volume"],
        )
        size = GaugeMetricFamily(
            "mediafleet_storage_size_bytes", "Size of the volume's file system, bytes", labels=["volume"]
        )
        for volume, folder in self.folders.items():
            try:
                usage = shutil.disk_usage(folder)
            except OSError:
                continue
            available.add_metric([volume], usage.free)
            size.add_metric([volume], usage.total)
        yield available
        yield size


_storage: StorageCollector | None = None


def register_storage(folders: Mapping[str, str | os.PathLike[str]]) -> StorageCollector:
    """Report these folders' file systems on this process's ``/metrics`` (replacing the folders
    registered before, so an app built twice in one process, as the tests do, reports once)."""
    global _storage
    if _storage is not None:
        REGISTRY.unregister(_storage)
    _storage = StorageCollector(folders)
    REGISTRY.register(_storage)
    return _storage
