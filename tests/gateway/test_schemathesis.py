"""Schemathesis (every check) against a real gateway process, on SQLite and on PostgreSQL:
no 5xx, no status or header the OpenAPI document does not declare, responses that match
their schemas, schema-violating requests refused.

Two runs per backend. The first covers every operation except those that need a service
this test does not start (the LLM, vector_db, a face worker): with all checks but
``positive_data_acceptance``, since "schema-valid" bytes are rarely a decodable image or
a password long enough for ``GATEWAY_MIN_PASSWORD_LENGTH``, which no schema can say. The
second covers those operations without ``not_a_server_error``: their documented answer
without the service is 503. ``/v1/auth/password`` and ``/v1/auth/logout`` would revoke the
token the run uses. Before this test: NUL bytes and huge integers gave 500s, 405 named the
wrong methods, SQLite datetimes came back without their offset.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.api_helpers import admin_token, upload
from tests.conftest import sample

pytestmark = pytest.mark.slow

NEED_SERVICES = [
    "/v1/llm/models",
    "/v1/llm/models/{model}",
    "/v1/llm/chat/completions",
    "/v1/llm/completions",
    "/v1/llm/embeddings",
    # synchronous routes: without a worker their wait ends in 504 (GATEWAY_SYNC_TIMEOUT_S, 2 s here)
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/echo/sync",
    "/v1/ask",
    "/v1/search",
    "/v1/media/{media_id}/similar",
    "/v1/faces/verify",
]
REVOKE_TOKEN = ["/v1/auth/password", "/v1/auth/logout"]


def schemathesis(url: str, token: str, *args: str) -> subprocess.CompletedProcess:
    st = Path(sys.executable).parent / "st"
    cmd = [str(st), "run", f"{url}/openapi.json", "-H", f"Authorization: Bearer {token}", "--checks", "all",
           "--max-examples", "15", "--seed", "7", "--request-timeout", "20", "--no-color", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_schemathesis_finds_nothing(
    backend: str, tmp_path: Path, redis_url: str, request: pytest.FixtureRequest
) -> None:
    from tests.fleet import Fleet

    db = f"sqlite:///{tmp_path / 'g.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    fleet = Fleet(tmp_path, db, redis_url)
    try:
        fleet.start("gateway", env={"GATEWAY_SYNC_TIMEOUT_S": "2"})
        fleet.start("job_manager")  # else /readyz is 503 (not ready: nothing would run jobs)
        url = fleet.url("gateway")
        with httpx.Client(base_url=url, timeout=30) as client:
            token = admin_token(client)
            assert upload(client, token, sample("english.png")).status_code == 201
        excluded = [a for p in NEED_SERVICES + REVOKE_TOKEN for a in ("--exclude-path", p)]
        first = schemathesis(url, token, "--exclude-checks", "positive_data_acceptance", *excluded)
        included = [a for p in NEED_SERVICES for a in ("--include-path", p)]
        second = schemathesis(
            url, token, "--exclude-checks", "positive_data_acceptance,not_a_server_error", *included
        )
        for name, run in (("all operations", first), ("operations needing services", second)):
            summary = run.stdout[run.stdout.find("SUMMARY") :]
            print(f"{backend}, {name}:\n{summary}")
            assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert "unhandled_error" not in fleet.logs["gateway"].read_text()  # no 500 anywhere in the runs
    finally:
        fleet.stop_all()
