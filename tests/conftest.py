"""Fixtures: real Redis and PostgreSQL (fresh database per test), corpus files, API clients."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.servers import (
    PostgresContainerServer,
    PostgresServer,
    RedisContainerServer,
    RedisServer,
    server_mode,
)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SHARED_MEDIA = ROOT.parent / "shared" / "media"


def sample(name: str) -> Path:
    """A committed sample (Apache-2.0 files of the shared corpus), else the shared corpus itself."""
    for base in (SAMPLES, SHARED_MEDIA):
        if (base / name).is_file():
            return base / name
    raise FileNotFoundError(f"{name} is neither in samples/ nor in ../shared/media")


def working_tree_copy(target: Path) -> Path:
    """Tracked and untracked-but-not-ignored files of this checkout, copied to ``target``."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    )  # fmt: skip
    for rel in filter(None, out.stdout.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            dst = target / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return target


@pytest.fixture(scope="session")
def real_models_dir() -> Path:
    """The models directory `make test` provisioned (``MEDIAFLEET_TEST_MODELS_DIR``) with the
    catalogue's ``tests = true`` models (each capability's models.toml; one list).

    Missing weights fail the test that needs them (no skip): run ``make test-models``.
    """
    import os

    from mediafleet.common.catalogue import catalogue, missing_files
    from mediafleet.common.provision import default_cache_dir

    models = Path(os.environ.get("MEDIAFLEET_TEST_MODELS_DIR") or default_cache_dir() / "test-models")
    missing = {name: missing_files(entry, models) for name, entry in catalogue().items() if entry.tests}
    missing = {k: v for k, v in missing.items() if v}
    if missing:
        pytest.fail(f"real weights missing from {models}: {missing}; run `make test-models`")
    return models


@pytest.fixture(scope="session")
def servers_mode() -> tuple[str, str]:
    """``("container" | "process", why)``: where this session's Redis and PostgreSQL come from."""
    return server_mode()


@pytest.fixture(scope="session")
def redis_server(servers_mode: tuple[str, str]) -> Iterator[RedisServer | RedisContainerServer]:
    server = RedisContainerServer() if servers_mode[0] == "container" else RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer | RedisContainerServer) -> str:
    if not redis_server.running():
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def pg_server(servers_mode: tuple[str, str]) -> Iterator[PostgresServer | PostgresContainerServer]:
    server = PostgresContainerServer() if servers_mode[0] == "container" else PostgresServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(pg_server: PostgresServer | PostgresContainerServer) -> str:
    return pg_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mediafleet.db'}"


@pytest.fixture
def fleet(tmp_path: Path, pg_url: str, redis_url: str):
    """gateway + job_manager + ocr worker as real processes on real PostgreSQL and Redis."""
    from tests.fleet import Fleet

    f = Fleet(tmp_path, pg_url, redis_url)
    try:
        f.start_all()
        yield f
    finally:
        f.stop_all()
