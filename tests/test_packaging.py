"""The images install exactly what uv.lock pins."""

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
    for name in ("requirements-core.txt", "requirements-ai.txt"):
        fresh = (tmp_path / name).read_text()
        assert (ROOT / "docker" / name).read_text() == fresh, (
            f"docker/{name} is stale: run scripts/export-requirements.sh"
        )
    ai = (ROOT / "docker" / "requirements-ai.txt").read_text()
    assert "torch==" in ai and "rapidocr-onnxruntime==" in ai and "easyocr==" in ai
    assert "torch==" not in (ROOT / "docker" / "requirements-core.txt").read_text()
