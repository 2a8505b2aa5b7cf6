"""GPU routing with CPU fallback (issue 24.3) in process: job_manager's planning on real Redis and
PostgreSQL, a GPU worker labelled ``cuda`` on this CPU machine (the test-only stand-in the issue
allows; its engines run on the CPU), and the echo capability's real workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from rq import Queue

from mediafleet.common import device
from mediafleet.common.device import cuda_problem
from mediafleet.common.queues import family_queues
from mediafleet.common.registry import get as get_capability
from mediafleet.common.settings import CoreSettings
from mediafleet.common.store import create_db_engine, session_factory
from mediafleet.common.taskrun import Runtime
from mediafleet.common.worker import ModelWorker, publish_status, status_key
from mediafleet.job_manager.manager import JobManager
from mediafleet.job_manager.settings import JobManagerSettings
from tests.api_helpers import auth, upload
from tests.conftest import sample
from tests.echo_capability.runner import EchoRunner, EchoSettings

ROOT = Path(__file__).resolve().parents[2]
CAP = get_capability("echo")


@pytest.fixture
def core(tmp_path: Path, redis_url: str, pg_url: str) -> CoreSettings:
    return CoreSettings(database_url=pg_url, redis_url=redis_url, media_dir=tmp_path / "media")


def manager(core: CoreSettings, **settings: object) -> JobManager:
    return JobManager(
        JobManagerSettings(core=core, **settings),
        session_factory(create_db_engine(core.database_url)),
        redis.Redis.from_url(core.redis_url),
    )


class Worker:
    """An echo worker on ``device``: registered with RQ and its status published, as a started
    ``mediafleet-service`` is, but working only when asked (``work``)."""

    def __init__(self, core: CoreSettings, device: str) -> None:
        self.conn = redis.Redis.from_url(core.redis_url)
        self.runner = EchoRunner(EchoSettings(core=core))
        self.runner.preload()
        runtime = Runtime(CAP, self.runner, self.conn, core.media_dir, device=device)
        self.rq = ModelWorker(family_queues(CAP, device), connection=self.conn, runtime=runtime)
        self.device = device

    def start(self) -> Worker:
        self.rq.register_birth()
        publish_status(self.conn, CAP, self.runner, ttl_s=60, device=self.device)
        return self

    def stop(self) -> None:
        self.rq.register_death()
        self.conn.delete(status_key(self.rq.hostname, self.rq.pid))

    def work(self) -> None:
        self.rq.register_death()  # work() registers it again
        self.rq.work(burst=True)


def new_job(api: tuple[TestClient, str], device: str | None = None) -> str:
    client, token = api
    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    body: dict[str, object] = {"media_id": media_id, "tasks": ["echo"], "use_cache": False}
    if device is not None:
        body["device"] = device
    resp = client.post("/v1/jobs", json=body, headers=auth(token))
    assert resp.status_code == 202, resp.text
    return str(resp.json()["job_id"])


def job(api: tuple[TestClient, str], job_id: str) -> dict:
    client, token = api
    return dict(client.get(f"/v1/jobs/{job_id}", headers=auth(token)).json())


def depths(conn: redis.Redis) -> tuple[int, int]:
    """Tasks waiting on (the GPU queue, the CPU queue) of echo at normal priority."""
    return Queue("echo:gpu:normal", connection=conn).count, Queue("echo:normal", connection=conn).count


def test_auto_runs_on_a_ready_gpu_worker(api, core: CoreSettings) -> None:
    jm, gpu = manager(core), Worker(core, "cuda").start()
    job_id = new_job(api)
    jm.reconcile()
    assert depths(jm.redis) == (1, 0)
    gpu.work()
    jm.reconcile()
    done = job(api, job_id)
    assert done["status"] == "succeeded" and done["device"] == "auto", done
    assert done["tasks"][0]["device"] == "cuda" and done["tasks"][0]["attempts"] == 1, done


def test_auto_without_a_gpu_worker_runs_on_cpu(api, core: CoreSettings) -> None:
    jm = manager(core)
    job_id = new_job(api)
    jm.reconcile()
    assert depths(jm.redis) == (0, 1)
    Worker(core, "cpu").start().work()
    jm.reconcile()
    assert job(api, job_id)["tasks"][0]["device"] == "cpu"


def test_a_gpu_worker_that_takes_nothing_in_time_hands_the_task_to_cpu(api, core: CoreSettings) -> None:
    jm = manager(core, gpu_wait_s=1.0)
    Worker(core, "cuda").start()  # alive and ready, but busy elsewhere: it takes nothing
    job_id = new_job(api)
    jm.reconcile()
    assert depths(jm.redis) == (1, 0)
    rq_id = Queue("echo:gpu:normal", connection=jm.redis).job_ids[0]
    jm.reconcile()
    assert depths(jm.redis) == (1, 0)  # within GPU_WAIT_S it waits for the GPU
    time.sleep(1.1)
    jm.reconcile()
    assert depths(jm.redis) == (0, 1)
    assert Queue("echo:normal", connection=jm.redis).job_ids == [rq_id]  # the same RQ job
    Worker(core, "cpu").start().work()
    jm.reconcile()
    done = job(api, job_id)
    assert done["status"] == "succeeded" and done["tasks"][0]["device"] == "cpu", done
    assert done["tasks"][0]["attempts"] == 1, done  # moved, not failed and retried


def test_a_gpu_worker_that_went_away_hands_its_waiting_tasks_to_cpu_at_once(api, core: CoreSettings) -> None:
    jm = manager(core, gpu_wait_s=3600)
    gpu = Worker(core, "cuda").start()
    new_job(api)
    jm.reconcile()
    assert depths(jm.redis) == (1, 0)
    gpu.stop()
    jm.reconcile()
    assert depths(jm.redis) == (0, 1)


def test_a_task_a_gpu_worker_popped_is_not_moved(api, core: CoreSettings) -> None:
    """The move is an LREM: a GPU worker that popped the task between job_manager's read and its
    move keeps it, so the task is never on two workers."""
    jm = manager(core, gpu_wait_s=0)
    Worker(core, "cuda").start()
    new_job(api)
    jm.reconcile()
    assert jm.redis.lpop("rq:queue:echo:gpu:normal") is not None  # what a GPU worker's dequeue does
    jm.reconcile()
    assert depths(jm.redis) == (0, 0)


def test_device_gpu_waits_for_a_gpu_worker(api, core: CoreSettings) -> None:
    jm = manager(core, gpu_wait_s=0)
    job_id = new_job(api, device="gpu")
    jm.reconcile()
    Worker(core, "cpu").start().work()  # a CPU worker does not take it
    jm.reconcile()
    assert depths(jm.redis) == (1, 0) and job(api, job_id)["status"] == "queued"
    Worker(core, "cuda").start().work()
    jm.reconcile()
    done = job(api, job_id)
    assert done["device"] == "gpu" and done["tasks"][0]["device"] == "cuda", done


def test_device_cpu_never_waits_for_a_gpu(api, core: CoreSettings) -> None:
    jm = manager(core)
    Worker(core, "cuda").start()
    new_job(api, device="cpu")
    jm.reconcile()
    assert depths(jm.redis) == (0, 1)


def test_on_demand_gpu_workers_get_the_task_first_then_cpu(api, core: CoreSettings) -> None:
    """GPU workers that KEDA starts from zero on the GPU queue's length: with none running the
    task still goes there, and moves to CPU after GPU_WAIT_S."""
    jm = manager(core, gpu_wait_s=1.0, gpu_on_demand={"echo"})
    new_job(api)
    jm.reconcile()
    jm.reconcile()
    assert depths(jm.redis) == (1, 0)
    time.sleep(1.1)
    jm.reconcile()
    assert depths(jm.redis) == (0, 1)


def test_an_unknown_device_is_refused(api) -> None:
    client, token = api
    media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
    resp = client.post("/v1/jobs", json={"media_id": media_id, "tasks": ["echo"], "device": "tpu"},
                       headers=auth(token))  # fmt: skip
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "validation_error", resp.json()


def test_no_cuda_here_is_said(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine has no NVIDIA driver: that is the answer, whatever the builds. With a device
    (the driver stubbed), the answer follows the image's builds: a CUDA build of one library
    will do, CPU builds only are named."""
    assert cuda_problem() == device.cuda_devices()
    assert str(cuda_problem()).startswith("no NVIDIA driver is visible")
    monkeypatch.setattr(device, "cuda_devices", lambda: 1)
    monkeypatch.setattr(device, "BUILDS", {"PyTorch": lambda: False, "CTranslate2": lambda: None})
    assert cuda_problem() == "1 NVIDIA device(s) visible, but this image has CPU builds only (PyTorch): " \
        "use the :gpu image (make images GPU=1)"  # fmt: skip
    monkeypatch.setattr(device, "BUILDS", {"PyTorch": lambda: False, "ONNX Runtime": lambda: True})
    assert cuda_problem() is None


def test_a_gpu_worker_without_cuda_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "MEDIAFLEET_WORKER_DEVICE": "cuda", "MEDIAFLEET_REDIS_URL": "redis://127.0.0.1:1/0",
           "MEDIAFLEET_MODELS_DIR": str(tmp_path)}  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "mediafleet.common.service", "ocr_detection"],
                         env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert out.returncode == 1, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "mediafleet-service ocr_detection: MEDIAFLEET_WORKER_DEVICE=cuda but no CUDA"
    ), out
    assert "Traceback" not in out.stderr and "worker_started" not in out.stderr + out.stdout, out


def test_a_task_a_worker_popped_and_never_started_goes_back_on_its_queue(api, core: CoreSettings) -> None:
    """RQ's multi-queue dequeue is a blocking pop: a worker that popped a task and died before
    marking it started leaves it QUEUED on no list. After 2 x the lease job_manager puts it back
    (the same RQ job), and a worker runs it once."""
    core = core.model_copy(update={"task_lease_s": 2})
    jm = manager(core)
    jm.orphan_check_s = 0.0
    job_id = new_job(api)
    jm.reconcile()
    assert jm.redis.lpop("rq:queue:echo:normal") is not None  # popped by a worker that then died
    jm.reconcile()
    assert depths(jm.redis) == (0, 0)  # within 2 x lease: maybe a worker about to start it
    time.sleep(4.2)
    jm.reconcile()
    assert depths(jm.redis) == (0, 1)
    Worker(core, "cpu").start().work()
    jm.reconcile()
    done = job(api, job_id)
    assert done["status"] == "succeeded" and done["tasks"][0]["attempts"] == 1, done
