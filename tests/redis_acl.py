"""mediafleet's Redis (services/redis/start.sh, the redis image's entrypoint) as a local process:
Debian's redis-server with one ACL user per role, the `default` user off and a TLS listener."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import redis

from tests.servers import free_port, wait_port

ROOT = Path(__file__).resolve().parents[1]
START = ROOT / "services" / "redis" / "start.sh"
ROLES = ("gateway", "job_manager", "worker", "exporter", "admin")


class AclRedis:
    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None or shutil.which("openssl") is None:
            raise RuntimeError("redis-server and openssl are needed: `make test` installs them")
        self.dir = workdir
        self.port = free_port()
        self.tls_port = free_port()
        self.passwords = {role: secrets.token_hex(12) for role in ROLES}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def ca(self) -> Path:
        return self.dir / "tls" / "ca.crt"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **{f"REDIS_{role.upper()}_PASSWORD": pw for role, pw in self.passwords.items()},
            "REDIS_PORT": str(self.port),
            "REDIS_TLS_PORT": str(self.tls_port),
            "REDIS_DATA_DIR": str(self.dir),
            "REDIS_RUN_DIR": str(self.dir / "run"),
        }

    def start(self) -> None:
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                ["sh", str(START), "--save", ""], env=self.env(), stdout=log, stderr=log
            )
        wait_port(self.port)
        wait_port(self.tls_port)

    def url(self, role: str, tls: bool = False, password: str | None = None, ca: bool = True) -> str:
        secret = self.passwords[role] if password is None else password
        if not tls:
            return f"redis://{role}:{secret}@127.0.0.1:{self.port}/0"
        query = f"?ssl_ca_certs={self.ca}" if ca else ""
        return f"rediss://{role}:{secret}@localhost:{self.tls_port}/0{query}"

    def client(self, role: str, tls: bool = False) -> redis.Redis:
        return redis.Redis.from_url(self.url(role, tls=tls), decode_responses=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
