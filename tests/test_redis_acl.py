"""One Redis user per role (issue 24 item 2): the fleet runs end to end with them, a worker
connects over TLS with the narrowest rights RQ allows, and whatever it was not given is refused."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.api_helpers import admin_token, auth, upload, wait_job
from tests.conftest import sample
from tests.fleet import Fleet
from tests.redis_acl import START, AclRedis

SECRET = "media-url-test-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclRedis]:
    server = AclRedis(tmp_path_factory.mktemp("acl-redis"))
    server.start()
    yield server
    server.stop()


def wait_log(fleet: Fleet, name: str, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = fleet.log_text(name)
        if text in log:
            return log
        time.sleep(0.2)
    raise AssertionError(f"{name} never logged {text!r}:\n{fleet.log_text(name)}")


def probe(url: str, timeout: float = 30.0) -> int:
    """The status of ``url`` once something answers there."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=5).status_code
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.slow
def test_fleet_runs_with_one_user_per_role(tmp_path: Path, pg_url: str, acl_redis: AclRedis) -> None:
    admin = acl_redis.client("admin")
    admin.execute_command("ACL", "LOG", "RESET")
    fleet = Fleet(tmp_path, pg_url, acl_redis.url("gateway"), MEDIAFLEET_MEDIA_URL_SECRET=SECRET)
    fleet.env["MEDIAFLEET_MEDIA_URL_BASE"] = fleet.url("gateway")
    elsewhere = tmp_path / "remote-host-media"
    elsewhere.mkdir()
    try:
        fleet.start("gateway")
        fleet.start("job_manager", env={"MEDIAFLEET_REDIS_URL": acl_redis.url("job_manager")})
        # a worker host: over TLS as the worker user, no media volume (signed URLs)
        fleet.start("echo", env={"MEDIAFLEET_REDIS_URL": acl_redis.url("worker", tls=True),
                                 "MEDIAFLEET_MEDIA_DIR": str(elsewhere)})  # fmt: skip
        with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
            token = admin_token(client)
            media_id = upload(client, token, sample("english.png")).json()["media_id"]
            for n in range(2):
                resp = client.post(
                    "/v1/jobs",
                    json={"media_id": media_id, "tasks": ["echo"], "options": {"echo": {"text": f"far {n}"}}},
                    headers=auth(token),
                )
                job = wait_job(client, token, resp.json()["job_id"], timeout=60)
                assert job["status"] == "succeeded", job
                assert job["results"]["echo"]["media_sha256"] == media_id
            ready = client.get("/readyz").json()
            assert ready["capabilities"]["echo"].startswith("ready"), ready
        # every command of every role was within its rights
        assert admin.acl_log() == []
        workers = [c for c in admin.client_list() if c.get("user") == "worker"]
        assert workers and {c["laddr"].rsplit(":", 1)[1] for c in workers} == {str(acl_redis.tls_port)}
    finally:
        fleet.stop_all()


@pytest.mark.parametrize(
    "command",
    [
        ["FLUSHALL"],
        ["FLUSHDB"],
        ["CONFIG", "GET", "requirepass"],
        ["KEYS", "*"],
        ["ACL", "LIST"],
        ["GET", "mediafleet:login:ip:0123"],  # the gateway's sign-in throttle
        ["LPUSH", "mediafleet:jobs:new", "forged"],  # only the gateway creates jobs
        ["SET", "mediafleet:job_manager:heartbeat", "0"],
        ["PUBLISH", "mediafleet:principals:changed", "1"],
    ],
)
def test_the_worker_user_is_refused(acl_redis: AclRedis, command: list[str]) -> None:
    worker = acl_redis.client("worker", tls=True)
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.execute_command(*command)
    entry = acl_redis.client("admin").acl_log(1)[0]
    assert entry["username"] == "worker" and entry["reason"] in ("command", "key", "channel")


def test_the_worker_user_can_do_its_job(acl_redis: AclRedis) -> None:
    worker = acl_redis.client("worker", tls=True)
    worker.lpush("mediafleet:tasks:events", "t1")  # wake job_manager
    worker.xadd("mediafleet:job:j1:events", {"data": "{}"})  # progress events
    worker.set("mediafleet:worker:host:1", "{}", ex=5)  # its status
    assert worker.info("server")["redis_version"]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(f"redis://127.0.0.1:{acl_redis.port}/0").ping()  # `default` is off


@pytest.mark.slow
def test_refused_credentials_and_untrusted_certificates_say_why(
    tmp_path: Path, pg_url: str, acl_redis: AclRedis
) -> None:
    fleet = Fleet(tmp_path, pg_url, acl_redis.url("gateway"))
    try:
        fleet.start(
            "echo",
            wait=False,
            env={"MEDIAFLEET_REDIS_URL": acl_redis.url("worker", tls=True, password="wrong")},
        )
        log = wait_log(fleet, "echo", "Redis refused this service's credentials")
        assert "Traceback" not in log and "AuthenticationError" not in log
        # it keeps retrying: alive, and not ready while Redis refuses it
        assert fleet.procs["echo"].poll() is None
        assert probe(fleet.url("echo") + "/healthz") == 200
        assert httpx.get(fleet.url("echo") + "/readyz", timeout=5).status_code == 503
        fleet.stop("echo")
        fleet.start(
            "echo", wait=False, env={"MEDIAFLEET_REDIS_URL": acl_redis.url("worker", tls=True, ca=False)}
        )
        wait_log(fleet, "echo", "Redis's TLS certificate is not trusted")
    finally:
        fleet.stop_all()


def test_a_missing_password_stops_redis_with_one_line(acl_redis: AclRedis, tmp_path: Path) -> None:
    env = {**acl_redis.env(), "REDIS_WORKER_PASSWORD": "", "REDIS_RUN_DIR": str(tmp_path)}
    out = subprocess.run(["sh", str(START)], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 64
    assert out.stderr.strip() == "redis: set REDIS_WORKER_PASSWORD in .env (make env writes one)"
    env["REDIS_WORKER_PASSWORD"] = "short-and-dashed"
    out = subprocess.run(["sh", str(START)], env=env, capture_output=True, text=True, timeout=30)
    assert out.stderr.strip().endswith("may hold letters and digits only (it goes into redis:// URLs)")


def test_a_restart_keeps_what_workers_wrote_in_transactions(tmp_path: Path) -> None:
    """RQ writes in MULTI/EXEC blocks; Redis replays the append-only file's blocks with the
    `default` user's rights (redis/redis#14541): with `default` off it dropped them at every
    restart (seen in the compose tests: every worker's registration gone after a Redis restart)."""
    server = AclRedis(tmp_path)
    server.start()
    try:
        pipe = server.client("worker", tls=True).pipeline(transaction=True)
        pipe.sadd("rq:workers", "rq:worker:w1")
        pipe.hset("rq:worker:w1", mapping={"state": "idle"})
        pipe.execute()
        server.stop()  # SIGTERM: Redis writes out its append-only file
        server.start()
        admin = server.client("admin")
        assert admin.smembers("rq:workers") == {"rq:worker:w1"}
        assert admin.hgetall("rq:worker:w1") == {"state": "idle"}
        assert admin.acl_log() == []
    finally:
        server.stop()
