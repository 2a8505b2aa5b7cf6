"""The images install exactly what uv.lock pins, and each AI image only what its engines need."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_image_requirements_match_the_lock(tmp_path: Path) -> None:
    env = {**os.environ, "OUT_DIR": str(tmp_path)}
    subprocess.run(
        ["bash", "scripts/export-requirements.sh"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.txt"))
    assert Path("docker/requirements-core.txt") in fresh
    assert Path("services/ocr_detection/requirements/rapidocr.txt") in fresh
    for rel in fresh:
        assert (ROOT / rel).read_text() == (tmp_path / rel).read_text(), (
            f"{rel} is stale: run scripts/export-requirements.sh"
        )


def test_rapidocr_image_carries_no_pytorch() -> None:
    reqs = ROOT / "services" / "ocr_detection" / "requirements"
    rapid = (reqs / "rapidocr.txt").read_text()
    assert "rapidocr-onnxruntime==" in rapid and "onnxruntime==" in rapid
    assert "torch==" not in rapid and "easyocr==" not in rapid
    assert "torch==" in (reqs / "all.txt").read_text() and "easyocr==" in (reqs / "all.txt").read_text()
    core = (ROOT / "docker" / "requirements-core.txt").read_text()
    assert "torch==" not in core and "onnxruntime==" not in core


def test_compose_memory_limits_fit_the_smallest_vps() -> None:
    """Every service's default ``mem_limit`` (``${VAR:-default}`` taken at its default) adds
    up to at most 7 GiB: the whole fleet on an 8 GB VPS, 1 GB left to the host."""
    import re

    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    total = 0
    for name, service in compose["services"].items():
        raw = str(service.get("mem_limit", ""))
        value = re.fullmatch(r"(?:\$\{\w+:-)?(\d+)([kmg])\}?", raw.lower())
        assert value, f"{name}: mem_limit {raw!r} is missing or not <number><k|m|g>"
        total += int(value.group(1)) * units[value.group(2)]
    print(f"compose memory limits: {total >> 20} MiB in all")
    assert total <= 7 << 30, total >> 20


def test_web_ui_client_is_generated_from_the_gateways_current_openapi() -> None:
    """services/ui's typed client comes from src/api/openapi.json (make ui-api); this fails when
    the gateway's schema moved on without it (`make ui-test` checks schema.d.ts against the file).
    Run as a user runs it: without the tests' extra capabilities."""
    from mediafleet.common.registry import EXTRA_ENV

    env = {k: v for k, v in os.environ.items() if k != EXTRA_ENV}
    out = subprocess.run([sys.executable, "scripts/export-openapi.py", "--check"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    committed = (ROOT / "services/ui/src/api/openapi.json").read_text()
    assert '"/v1/jobs/{job_id}/events/token"' in committed and '"/v1/admin/services"' in committed
