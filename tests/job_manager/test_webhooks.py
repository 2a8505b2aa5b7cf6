"""Webhooks: SSRF guard, per-user secret shown once, signed delivery, retries with backoff, the log."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

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
            def do_POST(self) -> None:
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
        "http://100.100.100.200/latest/meta-data",  # shared address space: a cloud metadata service
        "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
        "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
        "ftp://example.org/hook",
        "http://user:pw@example.org/hook",
    ],
)
def test_internal_targets_are_refused_by_default(url: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        webhooks.check_target(url)
    assert info.value.code == "webhook_url_refused"


# IANA's special-purpose registries (iana-ipv4-special-registry, iana-ipv6-special-registry),
# every entry with its "globally reachable" column: False (or N/A) must be refused, True allowed.
IANA_SPECIAL = [
    ("0.0.0.0/8", False), ("0.0.0.0/32", False), ("10.0.0.0/8", False), ("100.64.0.0/10", False),
    ("127.0.0.0/8", False), ("169.254.0.0/16", False), ("172.16.0.0/12", False), ("192.0.0.0/24", False),
    ("192.0.0.0/29", False), ("192.0.0.8/32", False), ("192.0.0.9/32", True), ("192.0.0.10/32", True),
    ("192.0.0.170/32", False), ("192.0.0.171/32", False), ("192.0.2.0/24", False), ("192.31.196.0/24", True),
    ("192.52.193.0/24", True), ("192.88.99.0/24", False), ("192.168.0.0/16", False), ("192.175.48.0/24", True),
    ("198.18.0.0/15", False), ("198.51.100.0/24", False), ("203.0.113.0/24", False), ("240.0.0.0/4", False),
    ("255.255.255.255/32", False),
    ("::1/128", False), ("::/128", False), ("::ffff:0:0/96", False), ("64:ff9b:1::/48", False),
    ("100::/64", False), ("2001::/23", False), ("2001::/32", False), ("2001:1::1/128", True),
    ("2001:1::2/128", True), ("2001:1::3/128", True), ("2001:2::/48", False), ("2001:3::/32", True),
    ("2001:4:112::/48", True), ("2001:10::/28", False), ("2001:20::/28", True), ("2001:30::/28", True),
    ("2001:db8::/32", False), ("2002::/16", False), ("2620:4f:8000::/48", True), ("3fff::/20", False),
    ("5f00::/16", False), ("fc00::/7", False), ("fe80::/10", False),
]  # fmt: skip


@pytest.mark.parametrize(("network", "reachable"), IANA_SPECIAL)
def test_every_iana_special_purpose_range(network: str, reachable: bool) -> None:
    import ipaddress

    net = ipaddress.ip_network(network)
    for addr in {net.network_address, net[-1], net[min(2, net.num_addresses - 1)]}:
        why = webhooks.refusal(addr)
        assert (why is None) == reachable, (addr, why)


def test_global_addresses_pass_and_nat64_of_a_global_one_too() -> None:
    import ipaddress

    for text in ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "64:ff9b::5db8:d70e"):
        assert webhooks.refusal(ipaddress.ip_address(text)) is None, text
    assert "224.0.0.0/4" in (webhooks.refusal(ipaddress.ip_address("239.1.2.3")) or "")


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
    # Standard Webhooks, checked by the specification's reference verifier (standardwebhooks)
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert Webhook(secret).verify(body, headers)["job_id"] == job_id
    assert headers["webhook-id"] == job_id and {r[0]["webhook-id"] for r in receiver.requests} == {job_id}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_secret()).verify(body, headers)
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


class DripReceiver:
    """A hostile receiver: answers one byte every ``every_s`` seconds, or a huge body at once."""

    def __init__(self, mode: str, every_s: float = 1.0):
        import socket as socketlib

        self.mode, self.every_s = mode, every_s
        self.sent = 0
        self.sock = socketlib.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import time as timelib

        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    if self.mode == "drip":
                        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                            if self._stop.is_set():
                                break
                            conn.sendall(bytes([byte]))
                            self.sent += 1
                            timelib.sleep(self.every_s)
                    else:  # 300 MB of body behind a 200
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 314572800\r\n\r\n")
                        chunk = b"x" * (1 << 20)
                        for _ in range(300):
                            conn.sendall(chunk)
                            self.sent += len(chunk)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def test_no_receiver_holds_job_manager(tmp_path: Path, redis_url: str) -> None:
    """Before: a receiver sending one byte every 4 s held the single delivery thread for 584 s,
    and a 300 MB answer took job_manager from 117 to 707 MB. Now deliveries run side by side
    within a total deadline (MEDIAFLEET_WEBHOOK_TIMEOUT_S, 2 s here) and at most 4 KB of an answer
    is read: the well-behaved receiver is served at once, the others fail their attempt."""
    import os
    import time

    from tests.gateway.test_memory import RssPeak

    core = _core(tmp_path, redis_url, webhook_allow_private_targets=True, webhook_backoff_s=0,
                 webhook_timeout_s=2.0)  # fmt: skip
    drip, huge, good = DripReceiver("drip"), DripReceiver("huge"), Receiver([200])
    try:
        for s in make_stack(core):
            s.client.post("/v1/users/me/webhook-secret", headers=auth(s.token))
            jobs = {name: s.create(s.media(), ["echo"], webhook_url=r.url)
                    for name, r in (("drip", drip), ("huge", huge), ("good", good))}  # fmt: skip
            s.manager.reconcile()
            run_worker(core, "echo")
            s.manager.reconcile()
            start = time.monotonic()
            with RssPeak(os.getpid()) as peak:  # job_manager's delivery runs in this process here
                assert deliver_due(s.manager.sessions, core) == 3
            took, grown_mib = time.monotonic() - start, peak.growth
            hooks = {name: s.job(job_id)["webhook"] for name, job_id in jobs.items()}
    finally:
        drip.close(), huge.close(), good.close()
    print(
        f"\nthree deliveries in {took:.1f} s; RSS grew {grown_mib:.1f} MiB; huge receiver sent {huge.sent >> 20} MiB"
    )
    assert took < 6, took  # all three within one 2-s deadline (plus set-up), not one after another
    assert hooks["good"]["state"] == "delivered"
    assert hooks["drip"]["log"][0]["error"] == "no complete answer within 2 s" and drip.sent < 10
    assert hooks["huge"]["log"][0]["status_code"] == 200  # its status counts; its body was not read
    assert grown_mib < 50, grown_mib
