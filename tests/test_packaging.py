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
    """Every long-running service's default ``mem_limit`` (``${VAR:-default}`` taken at its
    default) adds up to at most 7 GiB: the whole fleet on an 8 GB VPS, 1 GB left to the host.
    The total is computed in one place (scripts/compose-limits.py, ``make limits``); wherever
    the docs print it, they print that figure, and no file states another total."""
    import importlib.util
    import re

    spec = importlib.util.spec_from_file_location("compose_limits", ROOT / "scripts/compose-limits.py")
    assert spec and spec.loader
    limits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(limits)
    table = limits.limits()
    total = sum(mem for mem, _ in table.values())
    print(f"compose memory limits: {total >> 20} MiB in all")
    assert total <= 7 << 30, total >> 20
    assert {"gateway", "ocr_detection", "nginx"} <= set(table) and "models" not in table  # a one-shot tool
    figure = limits.total_gib(table)
    quoted = []
    for path in [
        ROOT / "README.md",
        ROOT / ".env.example",
        ROOT / "docker-compose.yml",
        *(ROOT / "docs").rglob("*.md"),
    ]:
        for found in re.findall(r"add up to \*{0,2}([\d.]+ GiB(?: \(\d+ MiB\))?)", path.read_text()):
            quoted.append((path.name, found))
    assert quoted, "no document states the limits' total"
    assert all(found == figure for _, found in quoted), (figure, quoted)
    # the optional monitoring profile is counted apart, and the docs say what it adds
    assert "prometheus" not in table and "grafana" not in table
    monitoring = sum(mem for mem, _ in limits.limits(profiles=("monitoring",)).values()) >> 20
    said = [
        (path.name, int(found))
        for path in (ROOT / "docs").rglob("*.md")
        for found in re.findall(r"monitoring profile adds \*{0,2}(\d+) MiB", path.read_text())
    ]
    assert said and all(found == monitoring for _, found in said), (monitoring, said)
    # .env.example's limits are the defaults: a copied .env must not break the total
    compose = (ROOT / "docker-compose.yml").read_text()
    for name, value in re.findall(r"^(\w+_MEM_LIMIT)=(\S+)", (ROOT / ".env.example").read_text(), re.M):
        assert f"${{{name}:-{value}}}" in compose, (name, value)


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


def test_image_inputs_follow_dockerignore_as_docker_does() -> None:
    """scripts/image-inputs.py hashes what Docker sends: a service's tests, READMEs and the web
    UI's sources are left out (a change there rebuilds no image), services/ui/dist is brought
    back for nginx, and ``*`` stops at ``/`` (Go's filepath.Match, as Docker)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("image_inputs", ROOT / "scripts/image-inputs.py")
    assert spec and spec.loader
    inputs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(inputs)
    patterns = inputs.ignore_patterns()
    left_out = {
        "services/clip_nsfw/tests/tiny_clip.py": True,
        "services/ocr_detection/README.md": True,
        "services/ui/src/App.vue": True,
        "services/ui/node_modules/vue/index.js": True,
        "services/ui/dist/index.html": False,
        "services/common/mediafleet/common/contract.py": False,
        "services/clip_nsfw/pyproject.toml": False,
        "services/ocr_detection/mediafleet/__pycache__/x.pyc": True,
        ".venv/bin/python": True,
    }
    assert {path: inputs.ignored(path, patterns) for path in left_out} == left_out
    assert inputs.ignored("a/b/c", ["a/*"]) and not inputs.ignored("a/b/c", ["a/*/d"])
    assert not inputs.ignored("a/b", ["a", "!a/b"]) and inputs.ignored("a/c", ["a", "!a/b"])
