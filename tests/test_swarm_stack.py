"""deploy/swarm/stack.yml (issue 24.4) is what render.py makes of today's docker-compose.yml, in
Compose file format 3 as ``docker stack deploy`` reads it. Deploying it: tests/swarm (make
test-compose)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_stack_is_what_compose_renders_to() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "deploy/swarm/render.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_every_long_running_service_with_compose_limits_and_no_v2_keys() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    stack = yaml.safe_load((ROOT / "deploy/swarm/stack.yml").read_text())
    assert stack["version"].startswith("3.")
    wanted = {
        n for n, s in compose.items() if not {"tools", "monitoring", "grafana"} & set(s.get("profiles") or [])
    }
    assert set(stack["services"]) == wanted
    for name, service in stack["services"].items():
        # keys Compose format 3 rejects or Swarm ignores
        assert not {"mem_limit", "cpus", "profiles", "depends_on", "build", "restart"} & set(service), name
        limits = service["deploy"]["resources"]["limits"]
        assert (limits["memory"], limits["cpus"]) == (
            compose[name]["mem_limit"],
            str(compose[name]["cpus"]),
        ), name
        assert service["image"] == compose[name]["image"]
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name  # no IPVS needed
    ports = stack["services"]["nginx"]["ports"]
    assert [(p["target"], p["published"]) for p in ports] == [
        (8080, "${HTTP_PORT:-80}"),
        (8443, "${HTTPS_PORT:-443}"),
    ]
    assert stack["networks"]["internal"] == {"driver": "overlay", "attachable": True, "internal": True}
    assert all(re.fullmatch(r"[a-z]+", v) for v in stack["volumes"])
