"""The Docker Compose fleet, brought up once for the compose tests (make test-compose).

Needs the images (make images) and Docker; talks to the fleet only through nginx over
HTTPS on 127.0.0.1, verifying TLS against the certificate nginx generated.
"""

from __future__ import annotations

import os
import secrets
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.api_helpers import auth

ROOT = Path(__file__).resolve().parents[2]
#: The admin's own password after the forced change on first sign-in, for every compose test.
ADMIN_PASSWORD = "compose-admin-password-2"
#: the monitoring profile's images: the public ones by default, the local stand-ins in CI
MONITORING_IMAGES = (
    "PROMETHEUS_IMAGE",
    "REDIS_EXPORTER_IMAGE",
    "POSTGRES_EXPORTER_IMAGE",
    "NGINX_EXPORTER_IMAGE",
    "BLACKBOX_EXPORTER_IMAGE",
)
TINY_CLIP_NAME = "mf-tiny-clip"
#: the Redis users services/redis/start.sh makes (ADMIN: optional, set here)
REDIS_ROLES = ("GATEWAY", "JOB_MANAGER", "WORKER", "EXPORTER", "ADMIN")


def tiny_clip_models(target: Path) -> Path:
    """A models folder with the tiny open_clip checkpoint where clip_nsfw looks for weights."""
    import importlib.util
    import shutil

    path = ROOT / "services/clip_nsfw/tests/tiny_clip.py"
    spec = importlib.util.spec_from_file_location("tiny_clip", path)
    assert spec and spec.loader
    tiny = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tiny)
    assert tiny.NAME == TINY_CLIP_NAME
    (target / "clip").mkdir(parents=True, exist_ok=True)
    tiny.make_checkpoint(target / "clip" / f"{TINY_CLIP_NAME}-seed0.bin")
    shutil.copyfile(tiny.CONFIG, target / "clip" / "tiny-clip.json")
    return target


class ComposeFleet:
    def __init__(self, workdir: Path):
        self.project = os.environ.get("COMPOSE_PROJECT_NAME", "mediafleet-ci")
        self.https_port = int(os.environ.get("CI_HTTPS_PORT", "18443"))
        self.http_port = int(os.environ.get("CI_HTTP_PORT", "18080"))
        self.prometheus_port = int(os.environ.get("CI_PROMETHEUS_PORT", "19090"))
        self.redis_tls_port = int(os.environ.get("CI_REDIS_TLS_PORT", "16380"))
        self.env_file = workdir / "compose.env"
        self.tiny_clip = workdir / "tiny-clip"
        env = {
            "POSTGRES_PASSWORD": secrets.token_hex(16),
            "GATEWAY_SECRET_KEY": secrets.token_hex(32),
            "INTERNAL_TOKEN": secrets.token_hex(32),
            "GATEWAY_ADMIN_PASSWORD": "first-" + secrets.token_hex(8),
            "HTTPS_PORT": str(self.https_port),
            "HTTP_PORT": str(self.http_port),
            # Redis: one user per role; `admin` for the tests' own look inside (redis_cli)
            **{f"REDIS_{role}_PASSWORD": secrets.token_hex(16) for role in REDIS_ROLES},
            "REDIS_TLS_PORT": str(self.redis_tls_port),
            # fast fault detection for the tests (defaults: 15 s lease, 2 s backoff)
            "MEDIAFLEET_TASK_LEASE_S": "4",
            "MEDIAFLEET_TASK_RETRY_BACKOFF_S": "1",
            # GPU routing (test_worker_host.py): a task waits 8 s for a GPU worker (default 30 s)
            "GPU_WAIT_S": "8",
            "OCR_MEM_LIMIT": "3g",
            # no CLIP weights are reachable here: clip_nsfw loads the tiny generated open_clip
            # model from the models volume (tiny_clip_models) through the ViT-B-32 code path
            "CLIP_MODEL": TINY_CLIP_NAME,
            "CLIP_PRETRAINED": "seed0",
            "CLIP_ARCH_CONFIG": "/models/clip/tiny-clip.json",
            # the monitoring profile: Prometheus scrapes the gateway with this token, every 5 s
            # here (15 s by default) so a test sees two samples of a new series within seconds
            "GATEWAY_INTERNALS_TOKEN": secrets.token_hex(32),
            "PROMETHEUS_SCRAPE_INTERVAL": "5s",
            "PROMETHEUS_PORT": str(self.prometheus_port),
            # worker hosts (test_worker_host.py) reach nginx as `nginx` on their own network and
            # fetch media by URLs job_manager signs for that address
            "NGINX_SERVER_NAME": "nginx",
            "MEDIA_URL_BASE": "https://nginx:8443/api",
            "MEDIA_URL_SECRET": secrets.token_hex(32),
            # traces: every service exports to the test's receiver (tests/compose/otlp.yml)
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otlp:4318",
        }
        for key in ("REDIS_IMAGE", "POSTGRES_IMAGE", *MONITORING_IMAGES):
            if os.environ.get(key):
                env[key] = os.environ[key]
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.admin_password = env["GATEWAY_ADMIN_PASSWORD"]
        #: role -> its Redis password
        self.redis_passwords = {role.lower(): env[f"REDIS_{role}_PASSWORD"] for role in REDIS_ROLES}
        #: what the fleet's internal calls carry (vector_db, the AI services' own ports)
        self.internal_token = env["INTERNAL_TOKEN"]
        self.base = f"https://localhost:{self.https_port}"
        self.ca = workdir / "fleet-ca.pem"

    def compose_args(self) -> list[str]:
        return [
            "docker-compose",
            "--project-name",
            self.project,
            "--env-file",
            str(self.env_file),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "-f",
            str(ROOT / "tests" / "compose" / "otlp.yml"),
            "--profile",
            "ai",  # every AI service too
            "--profile",
            "monitoring",  # Prometheus and the exporters (Grafana's own profile is not started)
        ]

    def compose(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        cmd = [*self.compose_args(), *args]
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
            )
        return out

    def load_models(self) -> None:
        """The real weights `make test` provisioned, and the tiny CLIP, into the fleet's
        read-only models volume (as `make models` does for a user)."""
        models = os.environ.get("MEDIAFLEET_TEST_MODELS_DIR") or str(
            Path.home() / ".cache/mediafleet/test-models"
        )
        for folder in (models, str(self.tiny_clip)):
            subprocess.run(
                ["bash", str(ROOT / "scripts/docker.sh"), "load-models", folder, self.project], check=True
            )

    def save_ca(self) -> None:
        """Trust the certificate nginx serves (generated on its first start, in the certs volume)."""
        self.ca.write_text(
            self.compose("exec", "-T", "nginx", "cat", "/etc/nginx/certs/fullchain.pem").stdout
        )

    def compose_command(self) -> str:
        """The compose command line of this fleet, as scripts take it (``COMPOSE=...``)."""
        return " ".join(self.compose_args())

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def health(self, service: str) -> str:
        cid = self.container(service)
        if not cid:
            return "missing"
        out = subprocess.run(
            [
                "docker",
                "inspect",
                "-f",
                "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
                cid,
            ],
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def diagnostics(self) -> str:
        """Each container's state and last health checks, and the services' recent logs."""
        lines = []
        for service in self.services():
            cid = self.container(service)
            if not cid:
                lines.append(f"{service}: no container")
                continue
            out = subprocess.run(
                [
                    "docker",
                    "inspect",
                    "-f",
                    "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}"
                    '{{range .State.Health.Log}} | {{.ExitCode}} {{printf "%.200s" .Output}}{{end}}{{end}}',
                    cid,
                ],
                capture_output=True,
                text=True,
            )
            lines.append(f"{service}: {out.stdout.strip()}")
        logs = self.compose("logs", "--tail", "30", check=False).stdout
        return "\n".join(lines) + "\n" + logs[-8000:]

    def services(self) -> list[str]:
        """Every long-running service this fleet starts, AI services (profile "ai") and the
        monitoring profile included; one-shot tools (profile "tools", e.g. ``models``) left out:
        they exit when done; Grafana (profile "grafana": a public image only) not started.
        (Compose 1.29's ``config --services`` lists every service whatever its profile.)"""
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        return [
            name
            for name, service in compose["services"].items()
            if not {"tools", "grafana"} & set(service.get("profiles") or [])
        ]

    def healthy(self, service: str, state: str) -> bool:
        """Healthy by its health check; an exporter (no shell, no check in its image) by running."""
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        if "healthcheck" not in compose["services"][service] and service.endswith("_exporter"):
            return state == "running"
        return state == "healthy"

    def wait_healthy(self, services: list[str] | None = None, timeout: float = 300) -> float:
        services = services or self.services()
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            states = {s: self.health(s) for s in services}
            if all(self.healthy(s, v) for s, v in states.items()):
                return time.monotonic() - start
            time.sleep(1)
        raise TimeoutError(f"not healthy after {timeout} s: {states}\n{self.diagnostics()}")

    def crash(self, service: str) -> None:
        """SIGKILL the service's main process from the host, as the kernel's OOM killer would:
        Docker sees a crash and applies the restart policy. (``docker kill`` counts as a manual
        stop, after which ``restart: unless-stopped`` does not restart the container.)"""
        deadline = time.monotonic() + 60
        while True:  # a container Docker is restarting has no process yet (Pid 0: never kill that)
            pid = int(
                subprocess.run(
                    ["docker", "inspect", "-f", "{{.State.Pid}}", self.container(service)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
            )
            if pid > 0:
                break
            assert time.monotonic() < deadline, f"{service} has had no process for 60 s"
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)

    def redis_cli(self, *args: str, user: str = "admin") -> str:
        """``redis-cli`` in the Redis container as ``user`` (the tests' admin by default)."""
        login = ["--user", user, "--pass", self.redis_passwords[user], "--no-auth-warning"]
        return self.compose("exec", "-T", "redis", "redis-cli", *login, *args).stdout.strip()

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base + "/api", verify=ssl.create_default_context(cafile=str(self.ca)), timeout=60
        )


def admin(fleet: ComposeFleet, c: httpx.Client) -> str:
    """The admin's token, whichever password the admin has now (the other modules change it)."""
    for password in (ADMIN_PASSWORD, fleet.admin_password):
        resp = c.post("/v1/auth/token", data={"username": "admin", "password": password})
        if resp.status_code == 200 and not resp.json().get("must_change_password"):
            return str(resp.json()["access_token"])
        if resp.status_code == 200:
            changed = c.post(
                "/v1/auth/password",
                json={"current_password": password, "new_password": ADMIN_PASSWORD},
                headers=auth(resp.json()["access_token"]),
            )
            assert changed.status_code == 200, changed.text
            return str(changed.json()["access_token"])
    raise AssertionError("the admin can sign in with neither password")


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeFleet]:
    f = ComposeFleet(tmp_path_factory.mktemp("compose"))
    f.compose("down", "-v", "--remove-orphans", check=False)
    try:  # taken down whatever happens: containers left behind restart with the next dockerd
        f.tiny_clip = tiny_clip_models(tmp_path_factory.mktemp("tiny-clip"))
        f.load_models()
        start = time.monotonic()
        try:
            f.compose("up", "-d", timeout=900)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{f.diagnostics()}") from exc
        waited = f.wait_healthy()
        print(
            f"\n[compose] up -> all {len(f.services())} services healthy in {time.monotonic() - start:.1f} s "
            f"(health wait {waited:.1f} s)"
        )
        f.save_ca()
        yield f
    finally:
        if os.environ.get("KEEP_FLEET") != "1":
            f.compose("down", "-v", "--remove-orphans", check=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """Each phase's report on the item (``rep_call``): the browser tests save the page's HTML
    and console log when their call failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
