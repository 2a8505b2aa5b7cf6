"""Webhook delivery: job summaries POSTed with an HMAC-SHA256 signature, retried with backoff.

job_manager queues a delivery when a job with ``webhook_url`` ends; :func:`deliver_due`
(run by a thread of job_manager) sends those that are due. Attempt ``n`` that fails
(connection error, time-out, non-2xx) is retried after ``backoff * 2**(n-1)`` seconds plus
up to 10 % jitter, until ``MEDIAFLEET_WEBHOOK_MAX_ATTEMPTS``; every attempt is logged on the
delivery (``GET /v1/jobs/{id}`` shows it).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
from typing import Any

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mediafleet.common import webhooks
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


def deliver_due(sessions: sessionmaker[Session], core: CoreSettings, limit: int = 20) -> int:
    """Send every pending delivery whose time has come; returns how many were attempted."""
    with sessions() as session:
        due = session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= utcnow())
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        ).all()
        for delivery in due:
            _attempt(session, delivery, core)
            session.commit()
        return len(due)


def _attempt(session: Session, delivery: WebhookDelivery, core: CoreSettings) -> None:
    job = delivery.job
    user = session.get(User, job.user_id)
    body = json.dumps(job_summary(job), separators=(",", ":")).encode()
    entry: dict[str, Any] = {"attempt": delivery.attempts + 1, "at": utcnow().isoformat()}
    start = time.perf_counter()
    try:
        webhooks.check_target(delivery.url, core.webhook_allow_private_targets)
        if user is None or not user.webhook_secret:
            raise ValidationFailed("the job's owner has no webhook secret", code="no_webhook_secret")
        resp = httpx.post(
            delivery.url,
            content=body,
            timeout=core.webhook_timeout_s,
            follow_redirects=False,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "mediafleet-webhook/1",
                "X-Mediafleet-Event": f"job.{job.status}",
                "X-Mediafleet-Delivery": job.id,
                webhooks.SIGNATURE_HEADER: webhooks.sign(user.webhook_secret, body),
            },
        )
        entry["status_code"] = resp.status_code
        ok = 200 <= resp.status_code < 300
        if not ok:
            entry["error"] = f"HTTP {resp.status_code}"
        permanent = False
    except ValidationFailed as exc:  # refused target or no secret: retrying cannot help
        entry["error"], ok, permanent = exc.message, False, True
    except httpx.HTTPError as exc:
        entry["error"], ok, permanent = f"{type(exc).__name__}: {exc}", False, False
    entry["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 1)
    delivery.attempts += 1
    delivery.attempts_log = [*delivery.attempts_log, entry]
    if ok:
        delivery.state, delivery.next_attempt_at = "delivered", None
    elif permanent or delivery.attempts >= core.webhook_max_attempts:
        delivery.state, delivery.next_attempt_at = "failed", None
    else:
        wait = core.webhook_backoff_s * 2 ** (delivery.attempts - 1)
        delivery.next_attempt_at = utcnow() + dt.timedelta(seconds=wait * (1 + 0.1 * random.random()))
    log.info("webhook_attempt", job_id=job.id, state=delivery.state, **entry)
