"""Runs a batch: validation per item, de-duplication, priority order, bounded concurrency,
per-user cache, retries with exponential backoff and jitter.

Sub-requests go through the gateway's own ASGI app in process (httpx ``ASGITransport``),
carrying the caller's ``Authorization`` header and nothing else, so each one is
authorised exactly as if the caller had made it directly.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from pydantic import ValidationError
from starlette.types import ASGIApp
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_exponential_jitter

from mediafleet.common.errors import envelope
from mediafleet.gateway.batch.cache import DERIVED, SAFE_METHODS, ResponseCache, resource_of
from mediafleet.gateway.batch.schemas import (
    BatchItem,
    BatchItemResponse,
    BatchOptions,
    BatchResponse,
    BatchStats,
)

#: RFC 9110 section 9.2.2: methods whose repetition has the same effect as one call.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_JOB = re.compile(r"^/v1/jobs/[^/]+$")
_KEEP_HEADERS = ("content-type", "cache-control", "location", "www-authenticate")


def priority_of(method: str, path: str) -> int:
    """0: authentication, job creation and job status; 1: search and listings; 2: the rest."""
    if (
        path.startswith("/v1/auth/")
        or (path == "/v1/jobs" and method == "POST")
        or (method == "GET" and _JOB.match(path))
    ):
        return 0
    if path == "/v1/search" or (method == "GET" and path in ("/v1/jobs", "/v1/media", "/v1/users")):
        return 1
    return 2


@dataclass
class Limits:
    max_requests: int
    concurrency: int
    max_retries: int
    timeout_s: float
    max_item_body_bytes: int


@dataclass
class Planned:
    index: int
    item: BatchItem
    dedupe_key: tuple[str, str, str, str] | None = None
    duplicates: list[int] = field(default_factory=list)


def _error(index_id: str | None, status: int, code: str, message: str) -> BatchItemResponse:
    return BatchItemResponse(
        id=index_id,
        status=status,
        headers={"content-type": "application/json"},
        body=envelope(code, message),
        attempts=0,
        elapsed_ms=0.0,
    )


def _check(item: BatchItem, limits: Limits) -> BatchItemResponse | None:
    path = item.path
    bad = [c for c in path if ord(c) < 0x20 or ord(c) == 0x7F or c in " \\#"]
    if bad or any(ord(c) < 0x20 or ord(c) == 0x7F for key in item.query for c in key):
        # a control character made httpx refuse the URL, and the whole batch was a 500
        return _error(
            item.id, 400, "malformed_item", f"the item's path {path!r} has characters a URL cannot hold"
        )
    if not path.startswith("/v1/") or "//" in path or "/../" in path or path.endswith("/..") or "?" in path:
        return _error(item.id, 400, "path_not_allowed", f"{path!r} is not an API path (must start with /v1/)")
    if path.rstrip("/") == "/v1/batch":
        return _error(item.id, 400, "nested_batch", "a batch cannot contain another batch")
    if path.endswith("/events"):
        return _error(item.id, 400, "streaming_not_supported", "event streams cannot run inside a batch")
    if item.body is not None and len(json.dumps(item.body)) > limits.max_item_body_bytes:
        return _error(item.id, 413, "payload_too_large", f"body exceeds {limits.max_item_body_bytes} bytes")
    return None


class BatchExecutor:
    def __init__(self, app: ASGIApp | None, cache: ResponseCache, limits: Limits):
        self.app = app
        self.cache = cache
        self.limits = limits

    async def run(
        self, raw_items: list[Any], options: BatchOptions, user_id: int, authorization: str
    ) -> BatchResponse:
        start = time.perf_counter()
        results: list[BatchItemResponse | None] = [None] * len(raw_items)
        planned: list[Planned] = []
        seen_ids: set[str] = set()
        for i, raw in enumerate(raw_items):
            raw_id = raw.get("id") if isinstance(raw, dict) and isinstance(raw.get("id"), str) else None
            try:
                item = BatchItem.model_validate(raw)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(x) for x in first["loc"]) or "item"
                results[i] = _error(raw_id, 400, "malformed_item", f"request {i}: {where}: {first['msg']}")
                continue
            if item.id in seen_ids:
                results[i] = _error(
                    item.id, 400, "malformed_item", f"request {i}: id {item.id!r} is used twice"
                )
                continue
            seen_ids.add(item.id)
            problem = _check(item, self.limits)
            if problem is not None:
                results[i] = problem
                continue
            planned.append(Planned(i, item))

        leaders: list[Planned] = []
        by_key: dict[tuple[str, str, str, str], Planned] = {}
        for p in planned:
            if options.deduplicate and p.item.method in IDEMPOTENT:
                p.dedupe_key = (
                    p.item.method,
                    p.item.path,
                    json.dumps(p.item.query, sort_keys=True),
                    json.dumps(p.item.body, sort_keys=True),
                )
                leader = by_key.get(p.dedupe_key)
                if leader is not None:
                    leader.duplicates.append(p.index)
                    continue
                by_key[p.dedupe_key] = p
            leaders.append(p)

        # Reads of a resource this batch writes bypass the cache: their answer may change within the batch.
        written = {resource_of(p.item.path) for p in planned if p.item.method not in SAFE_METHODS}
        if written:
            written.update(DERIVED)
        leaders.sort(key=lambda p: (priority_of(p.item.method, p.item.path), p.index))
        queue: asyncio.Queue[Planned] = asyncio.Queue()
        for p in leaders:
            queue.put_nowait(p)

        limits = self.limits
        concurrency = options.concurrency or limits.concurrency
        max_retries = limits.max_retries if options.max_retries is None else options.max_retries
        timeout_s = options.timeout_s or limits.timeout_s

        if self.app is None:
            raise RuntimeError("the batch executor runs inside the gateway app (create_app sets it)")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, raise_app_exceptions=False),
            base_url="http://gateway.internal",
            headers={"authorization": authorization},
        ) as client:

            async def worker() -> None:
                while not queue.empty():
                    p = queue.get_nowait()
                    use_cache = (
                        options.cache and p.item.method == "GET" and resource_of(p.item.path) not in written
                    )
                    res = await self._execute(client, p.item, user_id, use_cache, max_retries, timeout_s)
                    results[p.index] = res
                    for j in p.duplicates:
                        results[j] = res.model_copy(update={"id": raw_items[j]["id"], "deduplicated": True})

            await asyncio.gather(*(worker() for _ in range(min(concurrency, len(leaders)) or 1)))

        total = time.perf_counter() - start
        responses = [r for r in results if r is not None]
        n = len(responses)
        return BatchResponse(
            responses=responses,
            stats=BatchStats(
                total_duration=round(total, 6),
                average_duration=round(sum(r.elapsed_ms for r in responses) / 1000 / n, 6) if n else 0.0,
                cache_hit_rate=round(sum(r.cached for r in responses) / n, 4) if n else 0.0,
                deduplication_rate=round(sum(r.deduplicated for r in responses) / n, 4) if n else 0.0,
                requests_per_second=round(n / total, 2) if total > 0 else 0.0,
            ),
        )

    async def _execute(
        self,
        client: httpx.AsyncClient,
        item: BatchItem,
        user_id: int,
        use_cache: bool,
        max_retries: int,
        timeout_s: float,
    ) -> BatchItemResponse:
        start = time.perf_counter()
        query = _query_string(item.query)
        key = ResponseCache.key(user_id, item.path, query)
        if use_cache and (hit := self.cache.get(key)) is not None:
            return BatchItemResponse(
                id=item.id,
                status=hit.status,
                headers=hit.headers,
                body=hit.body,
                cached=True,
                attempts=0,
                elapsed_ms=round((time.perf_counter() - start) * 1000, 3),
            )

        attempts = 0

        async def once() -> tuple[int, dict[str, str], Any]:
            nonlocal attempts
            attempts += 1
            # An anyio deadline, not asyncio.wait_for: a sub-request is then cancelled only at
            # its next checkpoint, never while one of its threads (a dependency, a sync route)
            # still uses its database session; its session and pool connection are released as
            # they are after any request. (A native task cancel reached the session's clean-up
            # while its thread was opening a connection: SQLAlchemy's IllegalStateChangeError, a
            # 500 item and a connection left out of the pool.)
            resp = None
            with anyio.move_on_after(timeout_s):
                resp = await client.request(
                    item.method,
                    item.path,
                    params=item.query or None,
                    json=item.body if item.body is not None else None,
                )
            if resp is None:
                return (
                    504,
                    {"content-type": "application/json"},
                    envelope("timeout", f"sub-request took longer than {timeout_s} s"),
                )
            headers = {k: v for k, v in resp.headers.items() if k in _KEEP_HEADERS}
            ctype = resp.headers.get("content-type", "")
            body = resp.json() if ctype.startswith("application/json") and resp.content else resp.text
            return resp.status_code, headers, body

        retries = max_retries if item.method in IDEMPOTENT else 0  # a POST is never repeated
        answer: tuple[int, dict[str, str], Any] = await AsyncRetrying(
            stop=stop_after_attempt(retries + 1),
            wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05),
            retry=retry_if_result(lambda r: r[0] >= 500),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome is not None else None,
        )(once)
        status, headers, body = answer
        if use_cache:
            self.cache.put(key, status, headers, body)
        return BatchItemResponse(
            id=item.id,
            status=status,
            headers=headers,
            body=body,
            attempts=attempts,
            elapsed_ms=round((time.perf_counter() - start) * 1000, 3),
        )


def _query_string(query: dict[str, Any]) -> str:
    return str(httpx.QueryParams(query)) if query else ""
