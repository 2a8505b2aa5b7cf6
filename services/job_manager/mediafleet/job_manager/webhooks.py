"""Webhook delivery: job summaries POSTed with an HMAC-SHA256 signature, retried with backoff.

job_manager queues a delivery when a job with ``webhook_url`` ends; :func:`deliver_due`
(run by a thread of job_manager) sends those that are due. Attempt ``n`` that fails
(connection error, time-out, non-2xx) is retried after ``backoff * 2**(n-1)`` seconds plus
up to 10 % jitter, until ``MEDIAFLEET_WEBHOOK_MAX_ATTEMPTS``; every attempt is logged on the
delivery (``GET /v1/jobs/{id}`` shows it).

No receiver controls job_manager: deliveries go out concurrently (at most
:data:`MAX_CONCURRENT` at once, :data:`PER_RECEIVER` to one host), each within a total deadline
of ``MEDIAFLEET_WEBHOOK_TIMEOUT_S`` (connect, send and the whole answer: a receiver that drips
one byte at a time is cut off), and at most :data:`MAX_RESPONSE_BYTES` of an answer are read.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mediafleet.common import tracing, webhooks
from mediafleet.common.errors import ValidationFailed
from mediafleet.common.settings import CoreSettings
from mediafleet.common.store import Job, User, WebhookDelivery
from mediafleet.common.store.models import utcnow

log = structlog.get_logger("mediafleet.job_manager.webhooks")


def job_summary(job: Job) -> dict[str, Any]:
    return {
        "event": f"job.{job.status}",
        "job_id": job.id,
        "media_id": job.media_id,
        "status": job.status,
        "error": job.error,
        "tasks": [
            {"name": t.name, "status": t.status, "attempts": t.attempts, "cached": t.cached, "error": t.error}
            for t in job.tasks
        ],
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def queue_delivery(job: Job) -> bool:
    """Create the pending delivery of a job that just ended (once per job)."""
    if not job.webhook_url or job.webhook is not None:
        return False
    job.webhook = WebhookDelivery(
        url=job.webhook_url, state="pending", attempts=0, next_attempt_at=utcnow(), attempts_log=[]
    )
    return True


#: Deliveries in flight at once, and to one receiver (host and port) at once.
MAX_CONCURRENT = 8
PER_RECEIVER = 2
#: Bytes of a receiver's answer read at most (its status is what counts).
MAX_RESPONSE_BYTES = 4096


@dataclass
class Attempt:
    """One delivery to make: what to send, and what came of it."""

    delivery_id: str
    url: str
    body: bytes
    headers: dict[str, str]
    allow_private: bool
    #: the job's trace (mediafleet.common.tracing.Carrier): the attempt is its ``webhook.deliver`` span
    trace: dict[str, str] | None = None
    entry: dict[str, Any] = field(default_factory=dict)
    ok: bool = False
    permanent: bool = False


def deliver_due(sessions: sessionmaker[Session], core: CoreSettings, limit: int = 50) -> int:
    """Send every pending delivery whose time has come; returns how many were attempted."""
    with sessions() as session:
        due = session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= utcnow())
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        ).all()
        attempts = [_prepare(session, delivery, core) for delivery in due]
    if not attempts:
        return 0
    asyncio.run(_send_all([a for a in attempts if not a.permanent], core.webhook_timeout_s))
    with sessions() as session:
        for attempt in attempts:
            delivery = session.get(WebhookDelivery, attempt.delivery_id)
            if delivery is not None and delivery.state == "pending":
                with tracing.use(attempt.trace):
                    _record(delivery, attempt, core)
        session.commit()
    return len(attempts)


def _prepare(session: Session, delivery: WebhookDelivery, core: CoreSettings) -> Attempt:
    job = delivery.job
    user = session.get(User, job.user_id)
    body = json.dumps(job_summary(job), separators=(",", ":")).encode()
    attempt = Attempt(
        delivery_id=delivery.job_id, url=delivery.url, body=body, headers={},
        allow_private=core.webhook_allow_private_targets, trace=job.trace_context,
        entry={"attempt": delivery.attempts + 1, "at": utcnow().isoformat()},
    )  # fmt: skip
    if user is None or not user.webhook_secret:  # retrying cannot help
        attempt.entry["error"], attempt.permanent = "the job's owner has no webhook secret", True
        return attempt
    now = int(time.time())
    try:  # Standard Webhooks (webhook-id/-timestamp/-signature), one id for every retry
        standard = webhooks.standard_headers(user.webhook_secret, job.id, body, now)
    except ValueError as exc:  # a secret no verifier can read: retrying cannot help
        attempt.entry["error"], attempt.permanent = f"{exc}; create a new one", True
        return attempt
    attempt.headers = {
        "Content-Type": "application/json",
        "User-Agent": "mediafleet-webhook/1",
        **standard,
        "X-Mediafleet-Event": f"job.{job.status}",
        "X-Mediafleet-Delivery": job.id,  # deprecated with the next header (one release)
        webhooks.SIGNATURE_HEADER: webhooks.sign(user.webhook_secret, body, now),
    }
    return attempt


async def _send_all(attempts: list[Attempt], deadline_s: float) -> None:
    overall = asyncio.Semaphore(MAX_CONCURRENT)
    per_receiver: dict[str, asyncio.Semaphore] = {}
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:

        async def one(attempt: Attempt) -> None:
            key = urlsplit(attempt.url).netloc.lower()
            gate = per_receiver.setdefault(key, asyncio.Semaphore(PER_RECEIVER))
            attributes = {
                "mediafleet.job_id": attempt.delivery_id,
                "mediafleet.attempt": attempt.entry["attempt"],
            }
            async with overall, gate:
                with tracing.span("webhook.deliver", attempt.trace, SpanKind.CLIENT, attributes) as current:
                    start = time.perf_counter()
                    try:
                        await asyncio.wait_for(_send(client, attempt, deadline_s), deadline_s)
                    except TimeoutError:
                        attempt.entry["error"] = f"no complete answer within {deadline_s:g} s"
                    attempt.entry["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 1)
                    if "status_code" in attempt.entry:
                        current.set_attribute("http.response.status_code", attempt.entry["status_code"])
                    if not attempt.ok:
                        current.set_status(Status(StatusCode.ERROR, attempt.entry.get("error")))

        await asyncio.gather(*(one(a) for a in attempts))


async def _send(client: httpx.AsyncClient, attempt: Attempt, timeout_s: float) -> None:
    """POST to the address the target check resolved (not a second DNS answer); read the
    status and at most MAX_RESPONSE_BYTES of the answer."""
    loop = asyncio.get_running_loop()
    try:
        target = await loop.run_in_executor(None, webhooks.check_target, attempt.url, attempt.allow_private)
    except ValidationFailed as exc:  # refused target: retrying cannot help
        attempt.entry["error"], attempt.permanent = exc.message, True
        return
    request = client.build_request(
        "POST",
        target.connect_url(),
        content=attempt.body,
        headers={
            **attempt.headers,
            "Host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
        },
        extensions={"sni_hostname": target.host, "timeout": httpx.Timeout(timeout_s).as_dict()},
    )
    try:
        resp = await client.send(request, stream=True)
        try:
            got = 0
            async for chunk in resp.aiter_raw():
                got += len(chunk)
                if got >= MAX_RESPONSE_BYTES:
                    break
        finally:
            await resp.aclose()
    except httpx.HTTPError as exc:
        attempt.entry["error"] = f"{type(exc).__name__}: {exc}"[:500]
        return
    attempt.entry["status_code"] = resp.status_code
    attempt.ok = 200 <= resp.status_code < 300
    if not attempt.ok:
        attempt.entry["error"] = f"HTTP {resp.status_code}"


def _record(delivery: WebhookDelivery, attempt: Attempt, core: CoreSettings) -> None:
    entry = attempt.entry
    entry.setdefault("elapsed_ms", 0.0)
    delivery.attempts += 1
    delivery.attempts_log = [*delivery.attempts_log, entry]
    if attempt.ok:
        delivery.state, delivery.next_attempt_at = "delivered", None
    elif attempt.permanent or delivery.attempts >= core.webhook_max_attempts:
        delivery.state, delivery.next_attempt_at = "failed", None
    else:
        wait = core.webhook_backoff_s * 2 ** (delivery.attempts - 1)
        delivery.next_attempt_at = utcnow() + dt.timedelta(seconds=wait * (1 + 0.1 * random.random()))
    log.info("webhook_attempt", job_id=delivery.job_id, state=delivery.state, **entry)
