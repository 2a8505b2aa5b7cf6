"""Who is calling, remembered for a few seconds: the authenticated principal per bearer token.

Every read (GET/HEAD) checked its bearer token against the database: the user, its sign-in
(token family) or API key, in one query of ORM work that was about a fifth of the gateway's
CPU per read (py-spy under ``bench/load``, 2026-12-06). A :class:`PrincipalCache` keeps what
that check found, keyed by the token, for ``GATEWAY_PRINCIPAL_CACHE_S`` (5 s; 0 turns it
off) and never past the token's own expiry. Requests that change anything (POST, PUT,
PATCH, DELETE) always check against the database.

What revokes a token is seen at once, in this process and in every other gateway process:

- :func:`watch_sessions` hooks the gateway's sessions: a commit that changed or deleted a
  ``User``, ``TokenFamily`` or ``ApiKey`` row (password change, sign-out, refresh-token
  reuse, disabling, deleting, key revocation, a new webhook secret) drops the cached
  principals of that user here and publishes the user id on Redis channel
  :data:`CHANNEL`; bulk UPDATEs that bypass the ORM call :meth:`PrincipalCache.changed`.
- :meth:`PrincipalCache.listen` (a task of each gateway process) drops a user's entries
  when the id arrives, and drops everything when its subscription breaks and comes back
  (messages sent meanwhile are lost to it); while Redis is down entries still end after
  the TTL.

A change made outside the gateway (a SQL console, the ``mediafleet`` CLI on the database)
is seen within the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
import structlog
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, sessionmaker

from mediafleet.common.store import ApiKey, TokenFamily, User

log = structlog.get_logger("mediafleet.gateway.principals")

#: Redis pub/sub channel carrying the id of a user whose sign-in state changed.
CHANNEL = "mediafleet:principals:changed"
_PENDING = "mediafleet_principals_changed"  # session.info key: user ids changed in this transaction


@dataclass(frozen=True)
class Principal:
    """What a bearer token proved: a detached copy of the user's row (columns only), the API
    key's scopes (None for a JWT) and the sign-in (token family) link tokens join."""

    user: User
    scopes: tuple[str, ...] | None
    family: str | None


def detached_copy(user: User) -> User:
    """A transient ``User`` with ``user``'s column values (loads any expired ones first), safe
    to share between requests and threads for reading; never added to a session."""
    columns = inspect(User).column_attrs
    return User(**{attr.key: getattr(user, attr.key) for attr in columns})


class PrincipalCache:
    """Token -> :class:`Principal`, at most ``max_entries`` (least recently used dropped first),
    each kept ``ttl_s`` seconds and never past its token's expiry. Thread-safe."""

    def __init__(self, ttl_s: float, max_entries: int = 10_000, publisher: redis.Redis | None = None):
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._publisher = publisher
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()
        #: Bumped by every invalidation: a lookup that started before one does not store its answer.
        self.generation = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def get(self, token: str) -> Principal | None:
        if not self.enabled:
            return None
        now = time.monotonic()
        with self._lock:
            found = self._entries.get(token)
            if found is None:
                return None
            if found[0] <= now:
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
            return found[1]

    def put(self, token: str, principal: Principal, generation: int, token_expires_at: float | None) -> None:
        """Remember ``principal`` unless an invalidation happened since ``generation`` was read
        (the lookup may have seen the state before it). ``token_expires_at``: the token's
        ``exp`` (Unix seconds), None for API keys."""
        if not self.enabled:
            return
        expires = time.monotonic() + self.ttl_s
        if token_expires_at is not None:
            expires = min(expires, time.monotonic() + (token_expires_at - time.time()))
        with self._lock:
            if generation != self.generation:
                return
            self._entries[token] = (expires, principal)
            self._entries.move_to_end(token)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def drop_users(self, user_ids: Iterable[int]) -> None:
        """Forget every cached principal of ``user_ids`` in this process."""
        ids = set(user_ids)
        with self._lock:
            self.generation += 1
            for token in [t for t, (_, p) in self._entries.items() if p.user.id in ids]:
                del self._entries[token]

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()

    def changed(self, user_ids: Iterable[int]) -> None:
        """``user_ids``' sign-in state changed (committed): drop them here and tell the other
        gateway processes. A Redis failure is logged; their entries end within the TTL."""
        ids = sorted(set(user_ids))
        if not ids:
            return
        self.drop_users(ids)
        if self._publisher is None:
            return
        try:
            for user_id in ids:
                self._publisher.publish(CHANNEL, str(user_id))
        except redis.RedisError as exc:
            log.warning("principal_change_not_published", users=ids, error=str(exc))

    async def listen(self, client: aioredis.Redis, stop: asyncio.Event, poll_s: float = 0.5) -> None:
        """Apply other processes' changes until ``stop`` is set (checked every ``poll_s``);
        resubscribes after a failure and then clears the cache (what was published meanwhile
        never arrived). Polls rather than waiting in ``pubsub.listen()``: redis-py can swallow
        a task's cancellation there (the gateway's shutdown hung on it)."""
        lost = False
        while not stop.is_set():
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    if lost:
                        self.clear()
                        lost = False
                    while not stop.is_set():
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=poll_s)
                        data = message.get("data") if message else None
                        if isinstance(data, bytes) and data.isdigit():
                            self.drop_users([int(data)])
            except (redis.RedisError, OSError) as exc:
                if not lost:
                    log.warning("principal_changes_unavailable", error=str(exc))
                lost = True
                self.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_s)


def watch_sessions(factory: sessionmaker[Session], cache: PrincipalCache) -> None:
    """After each commit of a session from ``factory`` that changed or deleted a User,
    TokenFamily or ApiKey row, :meth:`PrincipalCache.changed` those users."""

    @event.listens_for(factory, "after_flush")
    def collect(session: Session, _context: object) -> None:
        ids: set[int] = session.info.setdefault(_PENDING, set())
        for obj in (*session.dirty, *session.deleted):
            if isinstance(obj, User):
                ids.add(obj.id)
            elif isinstance(obj, TokenFamily | ApiKey):
                ids.add(obj.user_id)

    @event.listens_for(factory, "after_commit")
    def publish(session: Session) -> None:
        ids = session.info.pop(_PENDING, None)
        if ids:
            cache.changed(ids)

    @event.listens_for(factory, "after_rollback")
    def forget(session: Session) -> None:
        session.info.pop(_PENDING, None)
