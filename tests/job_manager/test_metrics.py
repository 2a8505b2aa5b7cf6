"""Queue, worker and model metrics (issue 25.2) on a real Redis and RQ: ``rq_jobs``,
``rq_workers`` (rq-exporter's names), the age of each queue's oldest task, models loaded, and
no ``*_created`` series anywhere."""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path

import pytest
import redis
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue, Worker

from mediafleet.common.engine import Engine
from mediafleet.common.metrics import HTTP_REQUESTS, TASK_DURATION, StorageCollector
from mediafleet.job_manager.rq_metrics import RqCollector


def scrape(collector: RqCollector) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The collector's families as Prometheus parses its text exposition."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def test_queues_and_workers_as_rq_exporter_names_them(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    ocr, faces = (Queue(n, connection=conn) for n in ("ocr_detection:normal", "face_reid:high"))
    first = ocr.enqueue("builtins.print", "a")
    ocr.enqueue("builtins.print", "b")
    first.enqueued_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=90)
    first.save()
    worker = Worker([ocr, faces], connection=conn, name="ocr-worker-1")
    worker.register_birth()
    worker.set_state("busy")
    got = scrape(RqCollector(conn, {"ocr_detection:normal": ocr, "face_reid:high": faces}))
    jobs = {(lab["queue"], lab["status"]): v for lab, v in got["rq_jobs"]}
    assert jobs[("ocr_detection:normal", "queued")] == 2 and jobs[("face_reid:high", "queued")] == 0
    assert jobs[("ocr_detection:normal", "failed")] == 0 and len(jobs) == 2 * 7
    assert got["rq_workers"] == [
        ({"name": "ocr-worker-1", "queues": "ocr_detection:normal,face_reid:high", "state": "busy"}, 1.0)
    ]
    ages = {lab["queue"]: v for lab, v in got["mediafleet_queue_oldest_task_age_seconds"]}
    assert 90 <= ages["ocr_detection:normal"] < 120 and ages["face_reid:high"] == 0
    worker.register_death()
    assert scrape(RqCollector(conn, {"ocr_detection:normal": ocr}))["rq_workers"] == []


def test_a_scrape_without_redis_gives_empty_families_not_an_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = redis.Redis(port=port, socket_connect_timeout=0.5)
    got = scrape(RqCollector(conn, {"ocr_detection:normal": Queue("ocr_detection:normal", connection=conn)}))
    assert got["rq_jobs"] == [] and got["rq_workers"] == []


class Loads(Engine):
    name = "metrics-test"

    @property
    def model(self) -> str:
        return "tiny-model"

    @property
    def model_version(self) -> str:
        return "1"

    def _load(self) -> None:
        pass


def test_a_loaded_model_and_its_load_time_are_exposed() -> None:
    labels = {"engine": "metrics-test", "model": "tiny-model"}
    assert REGISTRY.get_sample_value("mediafleet_model_loaded", labels) is None
    engine = Loads()
    engine.load()
    assert REGISTRY.get_sample_value("mediafleet_model_loaded", labels) == 1.0
    assert REGISTRY.get_sample_value("mediafleet_model_load_seconds", labels) == pytest.approx(
        engine.load_time_s
    )


def test_no_created_series_and_tasks_carry_their_model() -> None:
    HTTP_REQUESTS.labels("metrics-test", "GET", "/x", "200").inc()
    TASK_DURATION.labels("ocr", "rapidocr", "PP-OCRv4", "ok").observe(0.2)
    text = generate_latest(REGISTRY).decode()
    assert (
        'mediafleet_task_duration_seconds_count{engine="rapidocr",model="PP-OCRv4",outcome="ok",task="ocr"} 1.0'
        in text
    )
    assert "_created" not in text


def test_storage_gauges_report_each_volumes_file_system(tmp_path: Path) -> None:
    """``mediafleet_storage_{available,size}_bytes{volume}`` equal what statvfs(2) says of the
    folder's file system (``f_bavail``/``f_blocks`` x ``f_frsize``, as df computes Avail/Size);
    a folder that does not exist gives no sample and does not fail the scrape."""
    registry = CollectorRegistry()
    registry.register(StorageCollector({"media": tmp_path, "gone": tmp_path / "missing"}))
    st = os.statvfs(tmp_path)
    text = generate_latest(registry).decode()
    got = {
        f.name: {s.labels["volume"]: s.value for s in f.samples} for f in text_string_to_metric_families(text)
    }
    assert got["mediafleet_storage_size_bytes"] == {"media": st.f_blocks * st.f_frsize}
    # the free space may move while the test runs: within 64 MiB of statvfs's figure
    assert abs(got["mediafleet_storage_available_bytes"]["media"] - st.f_bavail * st.f_frsize) < 64 << 20
    assert set(got["mediafleet_storage_available_bytes"]) == {"media"}
