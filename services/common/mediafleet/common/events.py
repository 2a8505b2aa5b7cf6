"""Progress events: JSON on a job's Redis pub/sub channel, relayed to SSE clients by the gateway."""

from __future__ import annotations

import json
from typing import Any

import redis
import structlog

from mediafleet.common.queues import job_channel

log = structlog.get_logger("mediafleet.events")


def publish(client: redis.Redis, job_id: str, **event: Any) -> None:
    """Publish ``{"job_id", **event}``; a Redis error is logged, never raised (events are advisory)."""
    try:
        client.publish(job_channel(job_id), json.dumps({"job_id": job_id, **event}, default=str))
    except redis.RedisError as exc:
        log.warning("event_publish_failed", job_id=job_id, error=str(exc))
