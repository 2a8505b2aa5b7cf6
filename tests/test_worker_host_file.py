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
