"""Fixtures: real Redis and PostgreSQL (fresh database per test), corpus files, API clients."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.servers import PostgresServer, RedisServer

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SHARED_MEDIA = ROOT.parent / "shared" / "media"


def sample(name: str) -> Path:
    """A committed sample (Apache-2.0 files of the shared corpus), else the shared corpus itself."""
    for base in (SAMPLES, SHARED_MEDIA):
        if (base / name).is_file():
            return base / name
    raise FileNotFoundError(f"{name} is neither in samples/ nor in ../shared/media")


#: Real weights the tests use; `make test` provisions them (mediafleet models pull, cached).
TEST_MODELS = ("easyocr-en",)


@pytest.fixture(scope="session")
def real_models_dir() -> Path:
    """The models directory `make test` provisioned (``MEDIAFLEET_TEST_MODELS_DIR``).

    Missing weights fail the test that needs them (no skip): run ``make test-models``.
    """
    import os

    from mediafleet.common.catalogue import catalogue, missing_files
    from mediafleet.common.provision import default_cache_dir

    models = Path(os.environ.get("MEDIAFLEET_TEST_MODELS_DIR") or default_cache_dir() / "test-models")
    missing = {name: missing_files(catalogue()[name], models) for name in TEST_MODELS}
    missing = {k: v for k, v in missing.items() if v}
    if missing:
        pytest.fail(f"real weights missing from {models}: {missing}; run `make test-models`")
    return models


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    return pg_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mediafleet.db'}"


@pytest.fixture
def fleet(tmp_path: Path, pg_url: str, redis_url: str):  # noqa: ANN201
    """gateway + job_manager + ocr worker as real processes on real PostgreSQL and Redis."""
    from tests.fleet import Fleet

    f = Fleet(tmp_path, pg_url, redis_url)
    try:
        f.start_all()
        yield f
    finally:
        f.stop_all()
