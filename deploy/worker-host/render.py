"""Render docker-compose.worker.yml, the worker host's compose file, from docker-compose.yml (issue 24.1).

    python deploy/worker-host/render.py           # writes docker-compose.worker.yml and -gpu.yml
    python deploy/worker-host/render.py --check   # exit 1 when the committed file differs

A worker host runs chosen AI workers on another machine (a second VPS, a rented GPU box) for a
fleet elsewhere: the same images, service-specific settings, memory and CPU limits and grace
periods as the fleet's AI services, and nothing else. Each worker reaches only the fleet's Redis
over TLS as the ``worker`` user (services/redis/start.sh) and the fleet's public HTTPS address for
the media of its tasks (URLs job_manager signs: ``MEDIA_URL_BASE``/``MEDIA_URL_SECRET`` on the
fleet); no database, no media volume, no published port. Settings come from ``worker.env``
(worker.env.example); docs/worker-hosts.md walks through it.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "docker-compose.worker.yml"
#: the GPU overlay of a worker host (``make run-worker-host GPU=1``), from docker-compose.gpu.yml
GPU_TARGET = ROOT / "docker-compose.worker-gpu.yml"
#: what every worker on a worker host runs with (the fleet's x-service-env is for its own host)
WORKER_ENV = {
    "MEDIAFLEET_ENVIRONMENT": "${MEDIAFLEET_ENVIRONMENT:-production}",
    "MEDIAFLEET_LOG_FORMAT": "json",
    "MEDIAFLEET_REDIS_URL": (
        "rediss://worker:${REDIS_WORKER_PASSWORD:?set REDIS_WORKER_PASSWORD in worker.env (the fleet's .env has it)}"
        "@${FLEET_REDIS_HOST:?set FLEET_REDIS_HOST in worker.env}:${FLEET_REDIS_TLS_PORT:-6380}/0"
        "?ssl_ca_certs=/run/mediafleet/redis-ca.crt"
    ),
    # no media volume here: each task carries a signed URL of its media at the fleet's gateway
    "MEDIAFLEET_MEDIA_DIR": "/data/media",
    "MEDIAFLEET_MODELS_DIR": "/models",
    "MEDIAFLEET_TASK_LEASE_S": "${MEDIAFLEET_TASK_LEASE_S:-15}",
    "MEDIAFLEET_PULL_COMMAND": "make worker-models MODELS={name}",
    # the fleet's HTTPS certificate when it is self-signed (a file in WORKER_CERTS_DIR); empty:
    # the system's CAs (Let's Encrypt)
    "SSL_CERT_FILE": "${FLEET_HTTPS_CA:-}",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "${OTEL_EXPORTER_OTLP_ENDPOINT:-}",
}
VOLUMES = ["models:/models:ro", "${WORKER_CERTS_DIR:-./var/worker-certs}:/run/mediafleet:ro"]


def render() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    fleet_env = set(compose["x-service-env"])
    services: dict[str, Any] = {}
    for name, s in compose["services"].items():
        if "ai" not in (s.get("profiles") or []):
            continue
        own = {k: v for k, v in s["environment"].items() if k not in fleet_env}
        services[name] = {
            "image": s["image"],
            "environment": {**WORKER_ENV, **own},
            "volumes": list(VOLUMES),
            "stop_grace_period": s["stop_grace_period"],
            "mem_limit": s["mem_limit"],
            "cpus": s["cpus"],
            "restart": "unless-stopped",
        }
    models = compose["services"]["models"]
    services["models"] = {
        key: models[key] for key in ("image", "profiles", "user", "network_mode", "volumes", "entrypoint")
    }
    return {"version": compose["version"], "services": services, "volumes": {"models": {}}}


def render_gpu() -> dict[str, Any]:
    """docker-compose.gpu.yml's services without their ``build`` (a worker host runs images)."""
    gpu = yaml.safe_load((ROOT / "docker-compose.gpu.yml").read_text())
    services = {  # deep copies: no YAML anchors in the output
        name: copy.deepcopy({k: v for k, v in s.items() if k != "build"})
        for name, s in gpu["services"].items()
    }
    return {"version": gpu["version"], "services": services}


GPU_HEADER = """\
# A GPU worker host's overlay: make run-worker-host GPU=1 SERVICES="..." (docs/worker-hosts.md).
# Rendered by deploy/worker-host/render.py from docker-compose.gpu.yml: edit that, not this file.
# The :gpu images as GPU workers (MEDIAFLEET_WORKER_DEVICE=cuda): they take their capability's
# GPU queues first and refuse to start with one line when no CUDA device is usable.
"""


HEADER = """\
# A worker host: AI workers on another machine for a fleet elsewhere (docs/worker-hosts.md).
# Rendered by deploy/worker-host/render.py from docker-compose.yml: edit that, not this file.
#   cp worker.env.example worker.env   # the fleet's Redis address, the worker user's password
#   make run-worker-host SERVICES="pose_estimation face_reid"
# Reaches only the fleet's Redis (TLS, user `worker`) and its public HTTPS address (signed media
# URLs); no database, no media volume, no published port. Stop: make stop-worker-host (SIGTERM:
# a running task finishes first, no new one is taken).
"""


def text() -> str:
    return HEADER + str(yaml.safe_dump(render(), sort_keys=False, width=1000))


def outputs() -> dict[Path, str]:
    return {
        TARGET: text(),
        GPU_TARGET: GPU_HEADER + str(yaml.safe_dump(render_gpu(), sort_keys=False, width=1000)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed file differs")
    args = parser.parse_args()
    stale = [path.name for path, body in outputs().items() if not path.is_file() or path.read_text() != body]
    if args.check:
        if stale:
            print(f"render.py: {', '.join(stale)} out of date (run python deploy/worker-host/render.py)",
                  file=sys.stderr)  # fmt: skip
            return 1
        return 0
    for path, body in outputs().items():
        path.write_text(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
