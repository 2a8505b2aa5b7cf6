"""docker-compose.worker.yml (deploy/worker-host/render.py): every AI service of the fleet, as
the fleet runs it, with nothing but the models volume, the certificates and Redis over TLS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_file_is_rendered_from_the_compose_file() -> None:
    done = subprocess.run([sys.executable, "deploy/worker-host/render.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_each_ai_service_runs_as_in_the_fleet_with_only_what_a_second_host_has() -> None:
    fleet = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    worker = yaml.safe_load((ROOT / "docker-compose.worker.yml").read_text())
    ai = {name for name, s in fleet.items() if "ai" in (s.get("profiles") or [])}
    assert set(worker["services"]) == ai | {"models"}
    for name in ai:
        mine, theirs = worker["services"][name], fleet[name]
        for key in ("image", "mem_limit", "cpus", "stop_grace_period"):
            assert mine[key] == theirs[key], (name, key)
        assert "ports" not in mine and "depends_on" not in mine
        assert [v.rsplit(":", 2)[-2] for v in mine["volumes"]] == ["/models", "/run/mediafleet"]
        env = mine["environment"]
        assert env["MEDIAFLEET_REDIS_URL"].startswith("rediss://worker:")
        assert env["MEDIAFLEET_REDIS_URL"].endswith("?ssl_ca_certs=/run/mediafleet/redis-ca.crt")
        assert "MEDIAFLEET_DATABASE_URL" not in env and "MEDIAFLEET_INTERNAL_TOKEN" not in env
        own = {k for k in theirs["environment"] if k.split("_")[0] not in ("MEDIAFLEET", "OTEL")}
        assert own <= set(env), (name, own - set(env))
    assert set(worker["volumes"]) == {"models"}


def test_the_gpu_overlay_makes_gpu_workers_of_the_gpu_images() -> None:
    """docker-compose.worker-gpu.yml (make run-worker-host GPU=1): every service with a :gpu image,
    a GPU reservation and MEDIAFLEET_WORKER_DEVICE=cuda, nothing built on the worker host; it
    merges with the worker host's file into a valid compose configuration."""
    overlay = yaml.safe_load((ROOT / "docker-compose.worker-gpu.yml").read_text())["services"]
    with_gpu_image = {p.parent.name for p in ROOT.glob("services/*/Dockerfile.gpu")}
    assert set(overlay) == with_gpu_image
    for name, service in overlay.items():
        assert service["image"] == f"mediafleet/{name}:gpu" and "build" not in service
        assert service["environment"]["MEDIAFLEET_WORKER_DEVICE"] == "cuda"
        assert service["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    env = ROOT / "worker.env.example"
    merged = subprocess.run(
        ["docker-compose", "--env-file", str(env), "-f", "docker-compose.worker.yml",
         "-f", "docker-compose.worker-gpu.yml", "config"],
        cwd=ROOT, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "REDIS_WORKER_PASSWORD": "x"},
    )  # fmt: skip
    assert merged.returncode == 0, merged.stderr
    config = yaml.safe_load(merged.stdout)["services"]["pose_estimation"]
    assert config["image"] == "mediafleet/pose_estimation:gpu"
    assert config["environment"]["MEDIAFLEET_REDIS_URL"].startswith("rediss://worker:x@")
