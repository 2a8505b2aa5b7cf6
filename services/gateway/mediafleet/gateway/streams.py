"""Job event streams, shared: one Redis reader and one database snapshot per watched job.

Each open ``GET /v1/jobs/{id}/events`` used to poll Redis and re-read the job from the database
every second on its own: 1,500 idle streams of one user cost 92 % of a core and other requests
took 3.5-44 s. Now a process keeps one :class:`JobWatch` per job that has listeners: it blocks
on the job's Redis stream, fans each event out to every listener's queue, and reads the job's
snapshot only when an event says a status changed (or every :data:`SNAPSHOT_EVERY_S` seconds,
for a job whose events expired or were never written); it stops with its last listener. A
listener replays the history it has not seen itself (one read), then takes the shared events.

Bounds: at most ``GATEWAY_MAX_STREAMS_PER_USER`` open streams per user and process (more: 429),
and a listener that falls :data:`QUEUE_SIZE` events behind is dropped (its client reconnects
with ``Last-Event-ID`` and loses nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis
import structlog

from mediafleet.common.errors import TooManyRequests
from mediafleet.common.queues import job_events_key

log = structlog.get_logger("mediafleet.gateway.streams")

#: Re-read a watched job's snapshot at least this often, seconds (its events may never come).
SNAPSHOT_EVERY_S = 10.0
#: Events a listener may fall behind before it is dropped.
QUEUE_SIZE = 1000
#: Events replayed per Redis read.
BATCH = 100


@dataclass(frozen=True)
class Event:
    """One SSE event: ``event`` name, ``data`` JSON text, ``id`` (progress events: the stream id)."""

    event: str
    data: str
    id: str | None = None

    def sse(self) -> dict[str, str]:
        out = {"event": self.event, "data": self.data}
        if self.id is not None:
            out["id"] = self.id
        return out


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _decoded(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entries(batches: Any) -> list[tuple[str, str]]:
    """``(stream id, data JSON)`` of an ``XREAD`` answer (redis-py's untyped nested lists)."""
    out: list[tuple[str, str]] = []
    for _key, found in batches or []:
        for entry_id, fields in found:
            data = fields.get(b"data", fields.get("data", b"{}"))
            out.append((_decoded(entry_id), _decoded(data)))
    return out


@dataclass
class JobWatch:
    """The one reader of a job's events in this process, and its listeners."""

    job_id: str
    listeners: set[asyncio.Queue[Event | None]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    last_id: str = "0-0"


class Streams:
    """The process's job watches and its per-user stream counts."""

    def __init__(
        self,
        aredis: aioredis.Redis,
        max_per_user: int,
        snapshot_every_s: float = SNAPSHOT_EVERY_S,
    ):
        self.aredis = aredis
        self.max_per_user = max_per_user
        self.snapshot_every_s = snapshot_every_s
        self.watches: dict[str, JobWatch] = {}
        self.open_per_user: Counter[int] = Counter()

    def admit(self, user_id: int) -> None:
        """Count one more open stream of ``user_id``; 429 ``too_many_streams`` above the bound."""
        if self.open_per_user[user_id] >= self.max_per_user:
            raise TooManyRequests(
                f"{self.max_per_user} event streams are open for this account already; close one first",
                code="too_many_streams",
                details={"retry_after_s": 5, "max_streams": self.max_per_user},
            )
        self.open_per_user[user_id] += 1

    def release(self, user_id: int) -> None:
        self.open_per_user[user_id] -= 1
        if self.open_per_user[user_id] <= 0:
            del self.open_per_user[user_id]

    async def replay(self, job_id: str, after: str) -> AsyncIterator[Event]:
        """The job's progress events after stream id ``after`` that are stored now."""
        key = job_events_key(job_id)
        while True:
            try:
                batches = await self.aredis.xread({key: after}, count=BATCH)
            except redis.RedisError as exc:  # progress is advisory: the snapshots still come
                log.warning("events_read_failed", job_id=job_id, error=str(exc))
                return
            entries = _entries(batches)
            for after, data in entries:
                yield Event("progress", data, after)
            if len(entries) < BATCH:
                return

    async def follow(
        self,
        job_id: str,
        after: str,
        snapshot: Callable[[], Awaitable[tuple[str, bool]]],
    ) -> AsyncIterator[Event]:
        """Progress events after ``after``, then the shared ones, and ``job`` snapshots; ends after
        the snapshot of a finished job. ``snapshot()`` returns ``(json, terminal)``."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE)
        watch = self.watches.get(job_id)
        if watch is None:
            watch = self.watches[job_id] = JobWatch(job_id)
        watch.listeners.add(queue)
        if watch.task is None or watch.task.done():
            watch.task = asyncio.create_task(self._watch(watch, snapshot), name=f"job-events-{job_id}")
        try:
            async for event in self.replay(job_id, after):
                after = event.id or after
                yield event
            while True:
                item = await queue.get()
                if item is None:  # dropped (too far behind) or the watch ended abnormally
                    return
                if item.id is not None:
                    if _id_key(item.id) <= _id_key(after):
                        continue  # replayed already
                    after = item.id
                yield item
                if item.event == "job" and json.loads(item.data).get("status") in (
                    "succeeded",
                    "failed",
                    "canceled",
                ):
                    return
        finally:
            watch.listeners.discard(queue)
            if not watch.listeners and watch.task is not None:
                watch.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.shield(watch.task)
                if self.watches.get(job_id) is watch:
                    del self.watches[job_id]

    def _fan_out(self, watch: JobWatch, event: Event) -> None:
        for queue in list(watch.listeners):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # a client that does not read: dropped, it reconnects
                watch.listeners.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(None)

    async def _watch(self, watch: JobWatch, snapshot: Callable[[], Awaitable[tuple[str, bool]]]) -> None:
        key = job_events_key(watch.job_id)
        # start at the stream's end: listeners replay the history themselves
        try:
            info: dict[Any, Any] = await self.aredis.xinfo_stream(key)
            watch.last_id = _decoded(info.get("last-generated-id", info.get(b"last-generated-id", "0-0")))
        except redis.RedisError:
            watch.last_id = "0-0"
        loop = asyncio.get_running_loop()
        next_snapshot = loop.time() + self.snapshot_every_s
        while watch.listeners:
            changed = False
            try:
                block = max(int((next_snapshot - loop.time()) * 1000), 1)
                batches = await self.aredis.xread({key: watch.last_id}, count=BATCH, block=block)
            except redis.RedisError as exc:
                log.warning("events_read_failed", job_id=watch.job_id, error=str(exc))
                await asyncio.sleep(1.0)
                batches, changed = [], True
            for watch.last_id, data in _entries(batches):
                self._fan_out(watch, Event("progress", data, watch.last_id))
                changed = changed or '"status"' in data  # a job or task status moved
            if changed or loop.time() >= next_snapshot:
                text, terminal = await snapshot()
                self._fan_out(watch, Event("job", text))
                next_snapshot = loop.time() + self.snapshot_every_s
                if terminal:
                    return
