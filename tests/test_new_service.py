"""`make new-service`: a generated capability passes its own tests unchanged, in under 100 lines."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ROOT


def test_generated_service_passes_its_own_tests(tmp_path: Path) -> None:
    (tmp_path / "services").mkdir()
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copytree(ROOT / "services" / "ocr_detection", tmp_path / "services" / "ocr_detection")
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
    assert block["environment"]["MEDIAFLEET_REDIS_URL"] == "redis://redis:6379/0"  # the shared anchors
    assert list(compose["services"])[-1] == "nginx"

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
