"""Result cache by content: identical work is served from a stored result instead of running again.

Identity of a piece of work: the media's SHA-256 (``media_id``), the task, its *effective*
options (the request's options over the defaults the task's workers advertise), the
results of its dependencies, and the model version that made it. Workers advertise, per
task, their default options and the model version of each loaded engine
(``ADVERTS_KEY``, written at worker start). A stored result is served only when the engine
it names is advertised at the same model version: a new model version misses, and so does
any task while no worker has ever advertised (nothing to compare with).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from sqlalchemy.orm import Session

from mediafleet.common.queues import ADVERTS_KEY
from mediafleet.common.store import CachedResult

log = structlog.get_logger("mediafleet.job_manager.cache")


def advert(conn: redis.Redis, task: str) -> dict[str, Any] | None:
    """``{"default_options", "model_versions"}`` advertised for ``task``, or None."""
    try:
        raw = conn.hget(ADVERTS_KEY, task)
    except redis.RedisError:
        return None
    return json.loads(raw) if raw else None


def effective_options(options: dict[str, Any], adv: dict[str, Any]) -> dict[str, Any]:
    given = {k: v for k, v in (options or {}).items() if v is not None}
    return {**adv.get("default_options", {}), **given}


@dataclass(frozen=True)
class Work:
    """A piece of work as the cache sees it: media, task, requested options, dependency results."""

    media_id: str
    task: str
    options: dict[str, Any]
    inputs: dict[str, Any]

    def key(self, adv: dict[str, Any]) -> str:
        """SHA-256 hex of the canonical JSON of (media, task, effective options, dependency results)."""
        blob = json.dumps(
            [self.media_id, self.task, effective_options(self.options, adv), self.inputs],
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def lookup(session: Session, conn: redis.Redis, work: Work) -> CachedResult | None:
    """The stored result of identical work made by the currently advertised model, or None."""
    adv = advert(conn, work.task)
    if adv is None:
        return None
    row = session.get(CachedResult, work.key(adv))
    if row is None or row.model_version is None:
        return None
    current = adv.get("model_versions", {}).get(row.engine or "")
    if current != row.model_version:
        log.info("cache_stale", task=work.task, engine=row.engine, stored=row.model_version, current=current)
        return None
    return row


def store(
    session: Session, conn: redis.Redis, work: Work, result: dict[str, Any], source_task_id: str
) -> None:
    """Remember ``result`` (which names its ``engine`` and ``model_version``) for identical work."""
    adv = advert(conn, work.task)
    if adv is None or not result.get("model_version"):
        return
    key = work.key(adv)
    row = session.get(CachedResult, key) or CachedResult(key=key, media_id=work.media_id, task=work.task)
    row.engine = result.get("engine")
    row.model_version = str(result["model_version"])
    row.result = result
    row.source_task_id = source_task_id
    session.merge(row)
