"""Per-user cache of GET sub-request responses (cachetools' LRU+TTL cache).

Keys always start with the user id, so one user's cached response can never be
returned to another. Entries are invalidated by writes (batch sub-requests and
direct API calls alike, see :class:`CacheInvalidation`) to the same resource, and
responses that say ``Cache-Control: no-store`` / ``no-cache`` are never kept;
``max-age`` shortens an entry's life below the cache's TTL.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_AGE = re.compile(r"max-age=(\d+)")


def resource_of(path: str) -> str:
    """The resource a path belongs to: its collection, ``/v1/jobs/abc/events`` -> ``/v1/jobs``."""
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(parts[:2])


#: Resources whose answers depend on other resources (search reads media and results,
#: duplicates the fingerprints of recorded results).
DERIVED = ("/v1/search", "/v1/duplicates")
#: Writes that can change what the derived resources answer.
FEEDS_DERIVED = frozenset({"/v1/media", "/v1/jobs", "/v1/people", "/v1/faces"})
#: POSTs that change nothing a cached GET could answer: the batch itself (each of its
#: sub-requests passes through this middleware on its own), questions, sign-in. The app adds
#: the capabilities' proxied HTTP APIs (their contracts' ``http_api.public_prefix``).
NOT_WRITES = frozenset({"/v1/batch", "/v1/ask", "/v1/auth"})


@dataclass
class CachedResponse:
    status: int
    headers: dict[str, str]
    body: Any
    expires_at: float


#: (user id, resource, path, query string)
CacheKey = tuple[int, str, str, str]


class ResponseCache:
    def __init__(self, maxsize: int = 2000, ttl_s: float = 120.0):
        self.ttl_s = ttl_s
        self._entries: TTLCache[CacheKey, CachedResponse] = TTLCache(maxsize=maxsize, ttl=ttl_s)

    @staticmethod
    def key(user_id: int, path: str, query: str) -> CacheKey:
        return (user_id, resource_of(path), path, query)

    def get(self, key: CacheKey) -> CachedResponse | None:
        entry: CachedResponse | None = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at < time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry

    def put(self, key: CacheKey, status: int, headers: dict[str, str], body: Any) -> bool:
        """Keep a 200 response unless its Cache-Control forbids it. Returns whether it was kept."""
        if status != 200:
            return False
        control = headers.get("cache-control", "").lower()
        if "no-store" in control or "no-cache" in control:
            return False
        ttl = self.ttl_s
        if match := _MAX_AGE.search(control):
            ttl = min(ttl, int(match.group(1)))
        if ttl <= 0:
            return False
        self._entries[key] = CachedResponse(status, headers, body, time.monotonic() + ttl)
        return True

    def invalidate(self, user_id: int, path: str) -> int:
        """Drop the user's entries of ``path``'s resource, and of the derived resources when the
        write can change them. Returns how many."""
        resource = resource_of(path)
        touched = {resource, *DERIVED} if resource in FEEDS_DERIVED else {resource}
        stale = [k for k in list(self._entries.keys()) if k[0] == user_id and k[1] in touched]
        for k in stale:
            self._entries.pop(k, None)
        return len(stale)

    def __len__(self) -> int:
        return len(self._entries)


class CacheInvalidation:
    """ASGI middleware: a successful write through the API invalidates the caller's cached reads."""

    def __init__(self, app: ASGIApp, cache: ResponseCache, not_writes: frozenset[str] = frozenset()):
        self.app = app
        self.cache = cache
        self.not_writes = NOT_WRITES | {resource_of(path) for path in not_writes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in SAFE_METHODS
            or resource_of(scope["path"]) in self.not_writes
        ):
            await self.app(scope, receive, send)
            return
        status = {"code": 0}

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        state = scope.setdefault("state", {})
        await self.app(scope, receive, _send)
        if 200 <= status["code"] < 300:
            # set by the gateway's authentication (JWT or API key) when it knew the caller
            user_id = state.get("mediafleet_user_id")
            if user_id is not None:
                self.cache.invalidate(user_id, scope["path"])
