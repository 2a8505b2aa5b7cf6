"""Render the Docker Swarm stack file (deploy/swarm/stack.yml) from docker-compose.yml (issue 24.4).

    python deploy/swarm/render.py                 # writes deploy/swarm/stack.yml
    python deploy/swarm/render.py --check         # exit 1 when the committed file differs
    python deploy/swarm/render.py --unpublished   # to stdout, without published ports

``docker stack deploy`` reads Compose file format 3 and refuses what the fleet's 2.4 file uses
(``mem_limit``, ``cpus``, ``profiles``, ``depends_on`` conditions, ``build``), so the stack file
is made from it rather than written beside it: the same images, commands, environment (its
``${VAR}`` interpolation kept: ``docker stack deploy`` fills it from the shell's environment),
volumes, health checks and grace periods; limits under ``deploy.resources``; overlay networks
(``internal`` stays without a way out; both attachable, so a one-off container can join them);
nginx's ports and Redis's TLS port (for worker hosts outside the swarm) published on the node
that runs each (``mode: host``; Swarm cannot bind one address: they listen on every interface,
so keep the firewall of scripts/bootstrap-vps.sh).
Every service is found by DNS round robin (``endpoint_mode: dnsrr``), not through a virtual IP:
a virtual IP needs the kernel's IPVS, which hosts like our CI VM lack (a service's VIP answered
"No route to host" there while its task's own address answered), and the fleet's services are
single endpoints or queue consumers that nobody connects to. The monitoring profile
and one-shot tools are left out. Swarm starts services in any order; every service waits for
what it needs itself (the gateway and job_manager for the database, the workers for Redis).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
STACK = Path(__file__).resolve().parent / "stack.yml"
#: compose keys a Swarm service takes as they are
KEPT = ("image", "command", "entrypoint", "user", "environment", "volumes", "networks", "healthcheck",
        "stop_grace_period")  # fmt: skip
LEFT_OUT_PROFILES = {"tools", "monitoring", "grafana"}
_PORT = re.compile(r"^(?:\$\{[A-Z_]+:-[^}]*\}:)?(\$\{[A-Z_]+:-\d+\}|\d+):(\d+)$")


def render(published: bool = True) -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services: dict[str, Any] = {}
    for name, s in compose["services"].items():
        if LEFT_OUT_PROFILES & set(s.get("profiles") or []):
            continue
        out = {key: s[key] for key in KEPT if key in s}
        if published and "ports" in s:
            out["ports"] = []
            for spec in s["ports"]:
                m = _PORT.match(spec)
                if not m:
                    raise ValueError(f"{name}: port {spec!r}")
                out["ports"].append(
                    {"target": int(m.group(2)), "published": m.group(1), "protocol": "tcp", "mode": "host"}
                )
        out["deploy"] = {
            "endpoint_mode": "dnsrr",
            "resources": {"limits": {"memory": s["mem_limit"], "cpus": str(s["cpus"])}},
            "restart_policy": {"condition": "any", "delay": "5s"},
        }
        services[name] = out
    used = {n for s in services.values() for n in s.get("networks", [])}
    networks = {
        name: {
            "driver": "overlay",
            "attachable": True,
            **({"internal": True} if spec.get("internal") else {}),
        }
        for name, spec in compose["networks"].items()
        if name in used
    }
    volumes = {v.split(":", 1)[0] for s in services.values() for v in s.get("volumes", [])}
    return {
        "version": "3.8",
        "services": services,
        "networks": networks,
        "volumes": {name: {} for name in sorted(volumes) if not name.startswith((".", "/"))},
    }


HEADER = (
    "# Rendered by deploy/swarm/render.py from docker-compose.yml: edit that, not this file.\n"
    "# set -a; . ./.env; set +a; docker stack deploy -c deploy/swarm/stack.yml mediafleet\n"
)


def text(published: bool = True) -> str:
    return HEADER + yaml.safe_dump(render(published), sort_keys=False, width=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed file differs")
    parser.add_argument("--unpublished", action="store_true", help="to stdout, no published ports")
    args = parser.parse_args()
    if args.unpublished:
        sys.stdout.write(text(published=False))
        return 0
    if args.check:
        if not STACK.is_file() or STACK.read_text() != text():
            print(
                "render.py: deploy/swarm/stack.yml is out of date (run python deploy/swarm/render.py)",
                file=sys.stderr,
            )
            return 1
        return 0
    STACK.write_text(text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
