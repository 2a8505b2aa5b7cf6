"""The fleet as a Docker Swarm stack (issue 24.4): deploy/swarm/stack.yml, rendered from the
compose file, deployed with ``docker stack deploy`` on a single-node swarm (created here when
this Docker is not in one, and left again after), on the locally built images:

- every service of the stack runs its replica and every health check passes;
- an OCR job end to end over HTTPS through nginx (a client container on the stack's edge
  network: Swarm publishes ports on every interface, and nothing here may listen beyond
  loopback, so the test deploys the stack without nginx's and Redis's published ports);
- ``ocr_detection`` scaled to 2 replicas: both take tasks of a burst of jobs.

Run by `make test-compose` after the compose tests (marker ``swarm``).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.compose.conftest import TINY_CLIP_NAME, tiny_clip_models

pytestmark = pytest.mark.swarm
ROOT = Path(__file__).resolve().parents[2]
STACK = os.environ.get("SWARM_STACK_NAME", "mfswarm")


def docker(*args: str, check: bool = True, timeout: float = 300, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and out.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args)}: {out.returncode}\n{out.stdout[-2000:]}{out.stderr[-2000:]}"
        )
    return out.stdout


def containers() -> dict[str, list[str]]:
    """service -> the statuses of its running containers (``Up 2 minutes (healthy)``)."""
    out = docker("ps", "--filter", f"label=com.docker.stack.namespace={STACK}",
                 "--format", '{{.Label "com.docker.swarm.service.name"}}\t{{.Status}}')  # fmt: skip
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        name, status = line.split("\t")
        found.setdefault(name.removeprefix(f"{STACK}_"), []).append(status)
    return found


def wait_healthy(services: set[str], replicas: dict[str, int], timeout: float) -> float:
    start = time.monotonic()
    while True:
        state = containers()
        ok = all(
            len([s for s in state.get(name, []) if "(healthy)" in s or ("(" not in s and s.startswith("Up"))])
            >= replicas.get(name, 1)
            for name in services
        )
        if ok:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not healthy after {timeout} s: {state}\n{docker('service', 'ls')}")
        time.sleep(3)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    work = tmp_path_factory.mktemp("swarm")
    joined = docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip() == "active"
    if not joined:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    env = {
        **os.environ,
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "GATEWAY_SECRET_KEY": secrets.token_hex(32),
        "INTERNAL_TOKEN": secrets.token_hex(32),
        "GATEWAY_ADMIN_PASSWORD": "first-" + secrets.token_hex(8),
        **{
            f"REDIS_{role}_PASSWORD": secrets.token_hex(16)
            for role in ("GATEWAY", "JOB_MANAGER", "WORKER", "EXPORTER")
        },
        "NGINX_SERVER_NAME": "nginx",  # the certificate's name, as the client container calls it
        "CLIP_MODEL": TINY_CLIP_NAME,
        "CLIP_PRETRAINED": "seed0",
        "CLIP_ARCH_CONFIG": "/models/clip/tiny-clip.json",
        "AI_STOP_GRACE_PERIOD": "30s",
    }
    stack_file = work / "stack.yml"
    rendered = subprocess.run(
        [sys.executable, str(ROOT / "deploy/swarm/render.py"), "--unpublished"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    stack_file.write_text(rendered.stdout)
    try:
        models = os.environ.get("MEDIAFLEET_TEST_MODELS_DIR") or str(
            Path.home() / ".cache/mediafleet/test-models"
        )
        for folder in (models, str(tiny_clip_models(work / "tiny-clip"))):
            subprocess.run(
                ["bash", str(ROOT / "scripts/docker.sh"), "load-models", folder, STACK], check=True
            )
        start = time.monotonic()
        docker("stack", "deploy", "--resolve-image", "never", "-c", str(stack_file), STACK, env=env)
        services = set(yaml.safe_load(rendered.stdout)["services"])
        waited = wait_healthy(services, {}, timeout=600)
        print(f"\n[swarm] {len(services)} services deployed, all healthy {time.monotonic() - start:.1f} s after "
              f"`docker stack deploy` (health wait {waited:.1f} s)")  # fmt: skip
        nginx = docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={STACK}_nginx").split()[
            0
        ]
        ca_dir = work / "ca"
        ca_dir.mkdir()
        (ca_dir / "ca.pem").write_text(docker("exec", nginx, "cat", "/etc/nginx/certs/fullchain.pem"))
        # the client container runs as the image's unprivileged user
        ca_dir.chmod(0o755)
        (ca_dir / "ca.pem").chmod(0o644)
        env["CA_DIR"] = str(ca_dir)
        yield env
    finally:
        docker("stack", "rm", STACK, check=False)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (
            docker("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={STACK}", check=False).strip()
            or docker(
                "network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={STACK}", check=False
            ).strip()
        ):
            time.sleep(2)
        volumes = docker("volume", "ls", "-q", "--filter", f"name={STACK}_", check=False).split()
        if volumes:
            docker("volume", "rm", *volumes, check=False)
        if not joined:
            docker("swarm", "leave", "--force", check=False)


def client(env: dict[str, str], jobs: int) -> dict[str, object]:
    """tests/swarm/client.py in a container of the job_manager image on the stack's edge network."""
    out = docker(
        "run", "--rm", "--network", f"{STACK}_edge",
        "-v", f"{ROOT / 'tests/swarm/client.py'}:/client.py:ro", "-v", f"{env['CA_DIR']}:/ca:ro",
        "--entrypoint", "python", "mediafleet/job_manager:latest",
        "/client.py", "https://nginx:8443/api", "/ca/ca.pem", env["GATEWAY_ADMIN_PASSWORD"], str(jobs),
        timeout=600,
    )  # fmt: skip
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_a_job_end_to_end_over_https_then_two_ocr_replicas_share_the_work(stack: dict[str, str]) -> None:
    first = client(stack, 1)
    job = first["jobs"][0]  # type: ignore[index]
    assert job["status"] == "succeeded" and "SWARM PAGE" in job["text"].upper(), first
    print(f"[swarm] one OCR job over HTTPS through nginx: {first['seconds']} s, read {job['text']!r}")

    docker("service", "scale", "--detach", f"{STACK}_ocr_detection=2", timeout=60)
    waited = wait_healthy({"ocr_detection"}, {"ocr_detection": 2}, timeout=420)
    print(f"[swarm] ocr_detection scaled to 2 replicas, both healthy after {waited:.1f} s")
    burst = client(stack, 8)
    assert all(j["status"] == "succeeded" for j in burst["jobs"]), burst  # type: ignore[union-attr]
    # which replica ran each task: the task_done lines of each replica's log (docker service logs
    # prefixes a line with "<service>.<slot>.<task id>@<node> | ")
    by_replica: dict[str, int] = {}
    logs = subprocess.run(  # the services log to stderr, which docker service logs keeps apart
        ["docker", "service", "logs", "--no-trunc", f"{STACK}_ocr_detection"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    for line in logs.splitlines():
        prefix, sep, rest = line.partition("| ")
        if sep and rest.startswith("{") and json.loads(rest).get("event") == "task_done":
            replica = prefix.split("@")[0].strip()
            by_replica[replica] = by_replica.get(replica, 0) + 1
    print(f"[swarm] 8 OCR jobs in {burst['seconds']} s; task_done lines per replica: {by_replica}")
    assert len(by_replica) == 2 and all(n >= 1 for n in by_replica.values()), by_replica
