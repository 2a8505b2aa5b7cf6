"""`make new-service`: a generated capability passes its own tests unchanged, in under 100 lines."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT


def test_generated_service_passes_its_own_tests(tmp_path: Path) -> None:
    (tmp_path / "services").mkdir()
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copytree(ROOT / "services" / "ocr_detection", tmp_path / "services" / "ocr_detection")
    shutil.copytree(ROOT / "monitoring", tmp_path / "monitoring")
    made = subprocess.run(
        [sys.executable, "scripts/new-service.py", "demo_probe", "--root", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    service = tmp_path / "services" / "demo_probe"
    assert {p.name for p in service.iterdir()} >= {
        "pyproject.toml",
        "Dockerfile.cpu",
        "Dockerfile.gpu",
        "tests",
    }
    code = [p for p in (service / "mediafleet").rglob("*.py")]
    lines = sum(len(p.read_text().splitlines()) for p in code)
    assert lines < 100, f"{lines} lines of generated code"
    assert "port 8111" in made.stdout  # next free port above the others

    compose = yaml.safe_load((tmp_path / "docker-compose.yml").read_text())
    block = compose["services"]["demo_probe"]
    assert (
        block["profiles"] == ["ai"] and block["image"] == "mediafleet/demo_probe:${DEMO_PROBE_VARIANT:-cpu}"
    )
    # the shared anchors: the workers' Redis user
    assert block["environment"]["MEDIAFLEET_REDIS_URL"] == compose["x-service-env"]["MEDIAFLEET_REDIS_URL"]
    assert block["environment"]["MEDIAFLEET_REDIS_URL"].startswith("redis://worker:${REDIS_WORKER_PASSWORD:?")
    names = list(compose["services"])
    assert names.index("demo_probe") == names.index("media_metadata") + 1  # at the marker, with its peers
    # the monitoring profile's Prometheus scrapes it (every replica, through Docker's DNS)
    scrape = yaml.safe_load(
        (tmp_path / "monitoring/prometheus/prometheus.yml.in").read_text().replace("@", "")
    )
    ai = next(job for job in scrape["scrape_configs"] if job["job_name"] == "ai")
    assert {"names": ["demo_probe"], "type": "A", "port": 8111} in ai["dns_sd_configs"]

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(service), str(ROOT)]),
        "MEDIAFLEET_EXTRA_CAPABILITIES": "mediafleet.demo_probe.contract:CAPABILITY",
    }
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "--rootdir", str(service), "-c", os.devnull, str(service / "tests")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "3 passed" in tests.stdout

    again = subprocess.run(
        [sys.executable, "scripts/new-service.py", "demo_probe", "--root", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2 and "exists" in again.stderr
    bad = subprocess.run(
        [sys.executable, "scripts/new-service.py", "Bad-Name"], cwd=ROOT, capture_output=True
    )
    assert bad.returncode == 2


#: Files outside the new folder that adding a capability may change: its compose block, the
#: lock (a new workspace member), the pinned image requirements exported from the lock, and the
#: monitoring profile's scrape entry (its DNS name and port), all written by make new-service.
ALLOWED_OUTSIDE = {
    "docker-compose.yml",
    "uv.lock",
    "monitoring/prometheus/prometheus.yml.in",
    # the Kubernetes base, rendered from the compose file: its workload and the lists naming it
    "deploy/kubernetes/base/demo-probe.yaml",
    "deploy/kubernetes/base/kustomization.yaml",
    "deploy/kubernetes/components/servicemonitor/servicemonitors.yaml",
    # the Swarm stack and the worker host's compose file, rendered from it too
    "deploy/swarm/stack.yml",
    "docker-compose.worker.yml",
}


@pytest.mark.slow
def test_a_new_capability_touches_only_compose_the_lock_its_scrape_entry_and_the_kubernetes_base(
    tmp_path: Path,
) -> None:
    """The file-writing steps of ``make new-service`` (scripts/new-service.py, ``uv lock``,
    scripts/export-requirements.sh, deploy/{kubernetes,swarm,worker-host}/render.py; the sync and the new tests write
    no tracked file) in a clone of the committed tree; every changed path outside
    ``services/NAME/`` is listed."""
    scratch = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{ROOT}", str(scratch)], check=True)
    uv = str(ROOT / ".tools" / "bin" / "uv")
    env = {**os.environ, "UV": uv, "UV_PYTHON_DOWNLOADS": "never", "UV_SYSTEM_CERTS": "1"}
    # the new package is importable as make new-service's sync would install it
    installed = {
        **env,
        "PYTHONPATH": str(scratch / "services" / "demo_probe"),
        "MEDIAFLEET_EXTRA_CAPABILITIES": "mediafleet.demo_probe.contract:CAPABILITY",
    }
    for cmd, cmd_env in (
        ([sys.executable, "scripts/new-service.py", "demo_probe"], env),
        ([uv, "lock"], env),
        (["bash", "scripts/export-requirements.sh"], env),
        ([sys.executable, "deploy/kubernetes/render.py"], installed),
        ([sys.executable, "deploy/swarm/render.py"], env),
        ([sys.executable, "deploy/worker-host/render.py"], env),
    ):
        done = subprocess.run(cmd, cwd=scratch, env=cmd_env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=scratch,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    changed = sorted({line[3:] for line in status})
    inside = [p for p in changed if p.startswith("services/demo_probe/")]
    outside = [p for p in changed if not p.startswith("services/demo_probe/")]
    print(f"a new capability: {len(inside)} files in services/demo_probe/, outside it: {outside}")
    assert inside and "services/demo_probe/mediafleet/demo_probe/contract.py" in inside
    assert set(outside) <= ALLOWED_OUTSIDE, outside
    assert "docker-compose.yml" in outside  # its block, which is how the fleet runs it
    assert "deploy/kubernetes/base/demo-probe.yaml" in outside  # and its Deployment, scaled by KEDA
    assert "docker-compose.worker.yml" in outside  # and its block on worker hosts
