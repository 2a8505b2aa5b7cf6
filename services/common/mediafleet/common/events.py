"""Progress events: JSON entries on a job's Redis stream, replayed and relayed to SSE clients.

A stream (not pub/sub) so that a client that connects late, or reconnects with
``Last-Event-ID``, still receives every event since the job was created: a pub/sub message
published before the gateway subscribed was lost, and a fast task's ``running`` event
never reached the client. Each job's stream keeps at most ``MAX_EVENTS`` entries and
expires ``EVENTS_TTL_S`` after its last event.
"""

from __future__ import annotations

import json
from typing import Any

import redis
import structlog

from mediafleet.common.queues import job_events_key

log = structlog.get_logger("mediafleet.events")

MAX_EVENTS = 1000
EVENTS_TTL_S = 7 * 24 * 3600


def publish(client: redis.Redis, job_id: str, **event: Any) -> None:
    """Append ``{"job_id", **event}`` to the job's stream.

    A Redis error is logged, never raised: events are advisory, the store holds the truth.
    """
    key = job_events_key(job_id)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.xadd(
            key,
            {"data": json.dumps({"job_id": job_id, **event}, default=str)},
            maxlen=MAX_EVENTS,
            approximate=True,
        )
        pipe.expire(key, EVENTS_TTL_S)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("event_publish_failed", job_id=job_id, error=str(exc))
