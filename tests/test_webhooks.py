"""Webhooks: SSRF guard, per-user secret shown once, signed delivery, retries with backoff, the log."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediafleet.common import webhooks
from mediafleet.common.errors import ValidationFailed
from mediafleet.common.settings import CoreSettings
from mediafleet.common.store import WebhookDelivery
from mediafleet.job_manager.webhooks import deliver_due
from tests.api_helpers import auth
from tests.jobs_inprocess import run_worker
from tests.test_capability_jobs import Stack, make_stack


class Receiver:
    """An HTTP server on 127.0.0.1 answering the statuses given, in order, and recording requests."""

    def __init__(self, statuses: list[int]):
        self.statuses = list(statuses)
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _core(tmp_path: Path, redis_url: str, **kw: object) -> CoreSettings:
    return CoreSettings(
        database_url=f"sqlite:///{tmp_path / 'w.db'}", redis_url=redis_url, media_dir=tmp_path / "m", **kw
    )


@pytest.fixture
def open_stack(tmp_path: Path, redis_url: str) -> Iterator[Stack]:
    """Webhooks to private addresses allowed (the receiver runs on loopback); no backoff wait."""
    yield from make_stack(_core(tmp_path, redis_url, webhook_allow_private_targets=True, webhook_backoff_s=0))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/",
        "ftp://example.org/hook",
        "http://user:pw@example.org/hook",
    ],
)
def test_internal_targets_are_refused_by_default(url: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        webhooks.check_target(url)
    assert info.value.code == "webhook_url_refused"


def test_job_with_an_internal_webhook_is_refused_and_nothing_stored(tmp_path: Path, redis_url: str) -> None:
    for s in make_stack(_core(tmp_path, redis_url)):
        media_id = s.media()
        s.client.post("/v1/users/me/webhook-secret", headers=auth(s.token))
        resp = s.client.post(
            "/v1/jobs",
            json={"media_id": media_id, "tasks": ["echo"], "webhook_url": "http://127.0.0.1:8000/x"},
            headers=auth(s.token),
        )
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "webhook_url_refused"
        assert s.client.get("/v1/jobs", headers=auth(s.token)).json()["count"] == 0


def test_secret_is_required_and_shown_once(open_stack: Stack) -> None:
    s = open_stack
    media_id = s.media()
    resp = s.client.post(
        "/v1/jobs",
        json={"media_id": media_id, "tasks": ["echo"], "webhook_url": "http://127.0.0.1:9/x"},
        headers=auth(s.token),
    )
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "no_webhook_secret"
    secret = s.client.post("/v1/users/me/webhook-secret", headers=auth(s.token)).json()["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    me = s.client.get("/v1/users/me", headers=auth(s.token))
    assert me.json()["has_webhook_secret"] is True and secret not in me.text


def test_signed_delivery_retried_until_accepted(open_stack: Stack) -> None:
    s = open_stack
    receiver = Receiver([500, 503, 200])
    try:
        secret = s.client.post("/v1/users/me/webhook-secret", headers=auth(s.token)).json()["secret"]
        job_id = s.create(s.media(), ["echo"], options={"echo": {"text": "hi"}}, webhook_url=receiver.url)
        s.manager.reconcile()
        run_worker(s.core, "echo")
        s.manager.reconcile()  # job ends: its delivery is queued
        for _ in range(3):
            deliver_due(s.manager.sessions, s.core)
    finally:
        receiver.close()
    assert len(receiver.requests) == 3
    headers, body = receiver.requests[-1]
    assert headers["X-Mediafleet-Event"] == "job.succeeded" and headers["X-Mediafleet-Delivery"] == job_id
    assert webhooks.verify(secret, body, headers[webhooks.SIGNATURE_HEADER])
    assert not webhooks.verify("whsec_wrong", body, headers[webhooks.SIGNATURE_HEADER])
    assert not webhooks.verify(secret, body + b" ", headers[webhooks.SIGNATURE_HEADER])
    summary = json.loads(body)
    assert summary["status"] == "succeeded" and summary["tasks"][0]["name"] == "echo"
    hook = s.job(job_id)["webhook"]
    assert hook["state"] == "delivered" and hook["attempts"] == 3
    assert [a["status_code"] for a in hook["log"]] == [500, 503, 200]
    assert deliver_due(s.manager.sessions, s.core) == 0  # nothing left to send


def test_backoff_doubles_and_gives_up(tmp_path: Path, redis_url: str) -> None:
    core = _core(
        tmp_path, redis_url, webhook_allow_private_targets=True, webhook_backoff_s=2, webhook_max_attempts=2
    )
    receiver = Receiver([500, 500])
    try:
        for s in make_stack(core):
            s.client.post("/v1/users/me/webhook-secret", headers=auth(s.token))
            job_id = s.create(s.media(), ["echo"], webhook_url=receiver.url)
            s.manager.reconcile()
            run_worker(core, "echo")
            s.manager.reconcile()
            before = dt.datetime.now(dt.UTC)
            deliver_due(s.manager.sessions, core)
            after = dt.datetime.now(dt.UTC)
            with s.manager.sessions() as session:
                delivery = session.get(WebhookDelivery, job_id)
                due = delivery.next_attempt_at.replace(tzinfo=dt.UTC)
                # 2 s backoff + up to 10 % jitter, counted from the end of the failed attempt
                assert before + dt.timedelta(seconds=2.0) <= due <= after + dt.timedelta(seconds=2.2)
                delivery.next_attempt_at = before  # make the retry due now
                session.commit()
            deliver_due(s.manager.sessions, core)
            hook = s.job(job_id)["webhook"]
            assert hook["state"] == "failed" and hook["attempts"] == 2
    finally:
        receiver.close()


def test_canceled_job_gets_its_webhook(open_stack: Stack) -> None:
    s = open_stack
    receiver = Receiver([200])
    try:
        s.client.post("/v1/users/me/webhook-secret", headers=auth(s.token))
        job_id = s.create(s.media(), ["echo"], webhook_url=receiver.url)
        assert s.client.delete(f"/v1/jobs/{job_id}", headers=auth(s.token)).status_code == 200
        s.manager.reconcile()
        deliver_due(s.manager.sessions, s.core)
    finally:
        receiver.close()
    assert json.loads(receiver.requests[0][1])["status"] == "canceled"
    assert s.job(job_id)["webhook"]["state"] == "delivered"
