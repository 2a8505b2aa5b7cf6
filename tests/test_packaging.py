"""The images install exactly what uv.lock pins, and each AI image only what its engines need."""

from __future__ import annotations

import os
import subprocess
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
