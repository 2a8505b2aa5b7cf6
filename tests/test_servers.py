"""Where the integration tests' Redis and PostgreSQL come from: the fleet's images, or the fallback."""

from __future__ import annotations

import os
import subprocess
import sys

import redis
from sqlalchemy import create_engine, text

from tests.conftest import ROOT
from tests.servers import compose_image


def test_servers_answer(redis_url: str, pg_url: str) -> None:
    assert redis.Redis.from_url(redis_url).ping() is True
    with create_engine(pg_url).connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_ci_takes_the_container_path(servers_mode: tuple[str, str], redis_server, pg_server) -> None:
    mode, why = servers_mode
    assert redis_server.kind == pg_server.kind == mode
    if os.environ.get("CI") == "true":  # a silent fallback must not hide a broken container path
        assert mode == "container", why
    if mode == "container":
        assert redis_server.image == compose_image("REDIS_IMAGE")
        assert pg_server.image == compose_image("POSTGRES_IMAGE")
        assert redis_server.version().split(".")[0] == "7"  # the compose major versions
        assert pg_server.version().split(".")[0] in ("15", "16")


def test_compose_images_are_the_defaults_unless_named(monkeypatch) -> None:
    monkeypatch.delenv("REDIS_IMAGE", raising=False)
    monkeypatch.delenv("POSTGRES_IMAGE", raising=False)
    assert compose_image("REDIS_IMAGE") == "redis:7.2-bookworm"
    assert compose_image("POSTGRES_IMAGE") == "postgres:16-bookworm"
    monkeypatch.setenv("REDIS_IMAGE", "mediafleet-local/redis:7")
    assert compose_image("REDIS_IMAGE") == "mediafleet-local/redis:7"


def test_without_docker_the_suite_falls_back_to_local_processes() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MEDIAFLEET_TEST_SERVERS")}
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "tests/test_servers.py::test_servers_answer",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout[-3000:]
    header = [line for line in out.stdout.splitlines() if line.startswith("test servers:")]
    assert len(header) == 1 and header[0].startswith("test servers: process (no Docker daemon answers")
    assert "falling back to local redis-server/postgres processes" in header[0]
    assert "(local process)" in out.stdout and "1 passed" in out.stdout
