"""A second host (issue 24 items 1, 2, 6): docker-compose.worker.yml as its own compose project on
its own Docker network, sharing no volume with the fleet, reaching only Redis's TLS port and
nginx (both joined to that network under their names): its worker takes the fleet's tasks over
TLS as the Redis user ``worker`` and fetches their media by signed URL."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_helpers import create_job, upload, wait_job
from tests.compose.conftest import ROOT, ComposeFleet, admin
from tests.compose.test_compose_fleet import tiled_page
from tests.conftest import sample

pytestmark = pytest.mark.compose


class WorkerHost:
    def __init__(self, fleet: ComposeFleet, work: Path) -> None:
        self.fleet = fleet
        self.project = f"{fleet.project}-worker"
        self.network = f"{fleet.project}-wan"
        self.env_file = work / "worker.env"
        certs = work / "certs"
        certs.mkdir()
        # what `make redis-ca` and `make https-ca` write on the fleet's host
        (certs / "redis-ca.crt").write_text(
            fleet.compose("exec", "-T", "redis", "cat", "/data/tls/ca.crt").stdout
        )
        (certs / "https-ca.crt").write_text(fleet.ca.read_text())
        self.password = fleet.redis_passwords["worker"]
        self.write_env(self.password)
        self.override = work / "network.yml"
        self.override.write_text(
            f'version: "2.4"\nnetworks:\n  default:\n    external: {{name: {self.network}}}\n'
        )

    def write_env(self, password: str) -> None:
        self.env_file.write_text(
            "FLEET_REDIS_HOST=redis\nFLEET_REDIS_TLS_PORT=6380\n"
            f"REDIS_WORKER_PASSWORD={password}\n"
            f"WORKER_CERTS_DIR={self.env_file.parent / 'certs'}\n"
            "FLEET_HTTPS_CA=/run/mediafleet/https-ca.crt\n"
            "MEDIAFLEET_TASK_LEASE_S=4\nOCR_MEM_LIMIT=3g\nAI_STOP_GRACE_PERIOD=30s\n"
        )

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["docker-compose", "-p", self.project, "--env-file", str(self.env_file),
               "-f", str(ROOT / "docker-compose.worker.yml"), "-f", str(self.override), *args]  # fmt: skip
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        return out

    def container(self, service: str = "ocr_detection") -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def logs(self, service: str = "ocr_detection") -> str:
        return self.compose("logs", "--no-color", service, check=False).stdout

    def wait_log(self, text: str, timeout: float = 60.0, service: str = "ocr_detection") -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in (logs := self.logs(service)):
                return logs
            time.sleep(1)
        raise AssertionError(f"the worker host never logged {text!r}:\n{self.logs(service)[-3000:]}")

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        """Python in the worker's container, with its environment (its Redis URL)."""
        return subprocess.run(["docker", "exec", self.container(), "python", "-c", code],
                              capture_output=True, text=True, timeout=60)  # fmt: skip


@pytest.fixture(scope="module")
def host(fleet: ComposeFleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerHost]:
    h = WorkerHost(fleet, tmp_path_factory.mktemp("worker-host"))
    subprocess.run(["docker", "network", "rm", h.network], capture_output=True)
    subprocess.run(["docker", "network", "create", "--internal", h.network], check=True, capture_output=True)
    for service in ("redis", "nginx"):  # the only two things the second host reaches
        subprocess.run(["docker", "network", "connect", "--alias", service, h.network, fleet.container(service)],
                       check=True, capture_output=True)  # fmt: skip
    models = os.environ.get("MEDIAFLEET_TEST_MODELS_DIR") or str(
        Path.home() / ".cache/mediafleet/test-models"
    )
    subprocess.run(["bash", str(ROOT / "scripts/docker.sh"), "load-models", models, h.project], check=True)
    try:
        yield h
    finally:
        h.compose("down", "-v", check=False)
        for service in ("redis", "nginx"):
            subprocess.run(
                ["docker", "network", "disconnect", h.network, fleet.container(service)], capture_output=True
            )
        subprocess.run(["docker", "network", "rm", h.network], capture_output=True)
        fleet.compose("start", "ocr_detection", check=False)


def ocr_job(fleet: ComposeFleet, c: httpx.Client, token: str, page: Path | None = None) -> str:
    media_id = upload(c, token, page or sample("english.png")).json()["media_id"]
    return create_job(c, token, media_id, use_cache=False)


def test_the_remote_worker_takes_the_fleets_tasks(fleet: ComposeFleet, host: WorkerHost) -> None:
    fleet.compose("stop", "ocr_detection")  # only the second host can do it now
    start = time.monotonic()
    host.compose("up", "-d", "ocr_detection")
    host.wait_log('"event": "worker_started"')
    cid = host.container()
    mounts = json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .Mounts}}", cid],
                                       capture_output=True, text=True, check=True).stdout)  # fmt: skip
    assert sorted(m["Destination"] for m in mounts) == ["/models", "/run/mediafleet"]  # no media, no database
    with fleet.client() as c:
        token = admin(fleet, c)
        job = wait_job(c, token, ocr_job(fleet, c, token), timeout=120)
    print(f"\n[worker host] start to first result {time.monotonic() - start:.1f} s")
    assert job["status"] == "succeeded", job
    assert "Clean hands with soap and water" in job["results"]["ocr"]["text"].splitlines()
    assert '"event": "task_done"' in host.logs()
    # the second host's connections came in on the TLS port, as the worker user
    clients = [
        dict(kv.split("=", 1) for kv in line.split())
        for line in fleet.redis_cli("CLIENT", "LIST").splitlines()
    ]
    tls = [cl for cl in clients if cl["laddr"].endswith(":6380")]
    assert tls and {cl["user"] for cl in tls} == {"worker"}, clients


def test_the_worker_user_may_not_touch_what_is_not_its_own(fleet: ComposeFleet, host: WorkerHost) -> None:
    probe = (
        "import os, redis\n"
        "r = redis.Redis.from_url(os.environ['MEDIAFLEET_REDIS_URL'])\n"
        "for cmd in (['FLUSHALL'], ['CONFIG', 'GET', '*'], ['GET', 'mediafleet:login:ip:x'], ['KEYS', '*'],\n"
        "            ['LPUSH', 'mediafleet:jobs:new', 'forged']):\n"
        "    try:\n"
        "        r.execute_command(*cmd); print(cmd[0], 'ALLOWED')\n"
        "    except redis.exceptions.NoPermissionError:\n"
        "        print(cmd[0], 'refused')\n"
    )
    out = host.python(probe)
    assert out.stdout.split() == ["FLUSHALL", "refused", "CONFIG", "refused", "GET", "refused", "KEYS", "refused",
                                  "LPUSH", "refused"], out.stderr  # fmt: skip
    # Redis logged each refusal under the worker user (redis-cli prints each field and value on a line)
    log = fleet.redis_cli("ACL", "LOG").splitlines()
    users = [log[i + 1] for i, line in enumerate(log[:-1]) if line == "username"]
    assert users and set(users) == {"worker"}, log


def test_sigkill_of_the_remote_worker_mid_task(fleet: ComposeFleet, host: WorkerHost, tmp_path: Path) -> None:
    page = tiled_page(tmp_path / "page.png", 4)
    with fleet.client() as c:
        token = admin(fleet, c)
        job_id = ocr_job(fleet, c, token, page)
        deadline = time.monotonic() + 60
        while fleet.redis_cli("ZCARD", "rq:wip:ocr_detection:normal") == "0" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fleet.redis_cli("ZCARD", "rq:wip:ocr_detection:normal") == "1", "the task never started"
        host.compose("kill", "-s", "SIGKILL", "ocr_detection")
        fleet.compose("start", "ocr_detection")  # elsewhere: the fleet's own worker
        job = wait_job(c, token, job_id, timeout=240)
    assert job["status"] == "succeeded" and job["tasks"][0]["attempts"] == 2, job
    assert "soap" in job["results"]["ocr"]["text"].split()
    fleet.compose("stop", "ocr_detection")


def test_a_cut_network_then_work_again(fleet: ComposeFleet, host: WorkerHost) -> None:
    """The worker host's network cut for 20 s (its container off the network), then back: it takes
    the next task."""
    host.compose("up", "-d", "ocr_detection")
    host.wait_log('"event": "worker_started"')
    cid = host.container()
    done_before = host.logs().count('"event": "task_done"')
    subprocess.run(["docker", "network", "disconnect", host.network, cid], check=True)
    time.sleep(20)
    subprocess.run(["docker", "network", "connect", host.network, cid], check=True)
    with fleet.client() as c:
        token = admin(fleet, c)
        job = wait_job(c, token, ocr_job(fleet, c, token), timeout=180)
    assert job["status"] == "succeeded", (job, host.logs()[-3000:])
    assert host.logs().count('"event": "task_done"') == done_before + 1  # the second host did it


def test_wrong_credentials_are_refused_and_said(fleet: ComposeFleet, host: WorkerHost) -> None:
    host.compose("stop", "ocr_detection")
    host.write_env("wrong" + host.password)
    try:
        host.compose("up", "-d", "--force-recreate", "ocr_detection")
        logs = host.wait_log("Redis refused this service's credentials")
        assert "Traceback" not in logs
    finally:
        host.compose("stop", "ocr_detection")
        host.write_env(host.password)


def test_gpu_routing_and_cpu_fallback(fleet: ComposeFleet, host: WorkerHost, tmp_path: Path) -> None:
    """The remote worker as a GPU worker (``MEDIAFLEET_WORKER_DEVICE=cuda`` with the test-only
    ``MEDIAFLEET_TEST_PRETEND_CUDA``: no GPU here, its engines run on the CPU) and the fleet's own
    CPU worker: a job runs on the GPU worker while it is ready; while it is busy with a long task,
    a new one moves to CPU after GPU_WAIT_S (8 s here); killed mid-task, its task finishes on CPU
    (attempts 2, one result)."""
    gpu = tmp_path / "gpu.yml"
    gpu.write_text('version: "2.4"\nservices:\n  ocr_detection:\n    environment:\n'
                   '      MEDIAFLEET_WORKER_DEVICE: cuda\n      MEDIAFLEET_TEST_PRETEND_CUDA: "true"\n')  # fmt: skip
    fleet.compose("start", "ocr_detection")
    host.compose("-f", str(gpu), "up", "-d", "--force-recreate", "ocr_detection")
    host.wait_log('"event": "worker_started"')
    assert '"device": "cuda"' in host.logs() and "ocr_detection:gpu:high" in host.logs()
    fleet.wait_healthy(["ocr_detection"])
    wip = "rq:wip:ocr_detection:gpu:normal"
    with fleet.client() as c:
        token = admin(fleet, c)
        on_gpu = wait_job(c, token, ocr_job(fleet, c, token), timeout=120)
        assert on_gpu["status"] == "succeeded" and on_gpu["tasks"][0]["device"] == "cuda", on_gpu

        def start_long(n: int) -> str:
            job_id = ocr_job(fleet, c, token, tiled_page(tmp_path / f"page{n}.png", n))
            deadline = time.monotonic() + 60
            while fleet.redis_cli("ZCARD", wip) == "0" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert fleet.redis_cli("ZCARD", wip) == "1", "the GPU worker never started the long task"
            return job_id

        busy_id = start_long(6)
        start = time.monotonic()
        short_id = ocr_job(fleet, c, token)
        short = wait_job(c, token, short_id, timeout=120)
        fallback_s = time.monotonic() - start
        assert short["status"] == "succeeded" and short["tasks"][0]["device"] == "cpu", short
        assert short["tasks"][0]["attempts"] == 1, short  # moved, not retried
        moved = [ln for ln in fleet.compose("logs", "--no-color", "job_manager").stdout.splitlines()
                 if '"event": "task_to_cpu"' in ln and short_id in ln]  # fmt: skip
        assert moved and '"gpu_workers": 1' in moved[0], moved
        print(f"\n[gpu routing] GPU worker busy: a new job done on CPU {fallback_s:.1f} s after submission "
              f"(GPU_WAIT_S=8)")  # fmt: skip

        assert wait_job(c, token, busy_id, timeout=300)["tasks"][0]["device"] == "cuda"

        long_id = start_long(5)
        start = time.monotonic()
        host.compose("kill", "-s", "SIGKILL", "ocr_detection")
        killed = wait_job(c, token, long_id, timeout=300)
        print(f"[gpu routing] GPU worker killed mid-task: done on CPU {time.monotonic() - start:.1f} s later")
    assert killed["status"] == "succeeded", killed
    assert killed["tasks"][0]["attempts"] == 2 and killed["tasks"][0]["device"] == "cpu", killed
    assert "soap" in killed["results"]["ocr"]["text"].split()
