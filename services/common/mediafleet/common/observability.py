"""Health, readiness and Prometheus metrics shared by every service.

``/healthz`` answers while the process is alive; ``/readyz`` runs the service's
readiness checks (Redis, database, engine loaded) and answers 503 naming what is
missing; ``/metrics`` is the Prometheus text exposition.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediafleet.common.metrics import HTTP_LATENCY, HTTP_REQUESTS

#: A readiness check returns None when ready, or a short reason when not.
ReadinessCheck = Callable[[], str | None]


class ReadinessReport(BaseModel):
    """The body of ``/readyz`` (200 when every check is ``ok``, else 503)."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(description='"ok", or why not')
    capabilities: dict[str, str] | None = Field(
        default=None, description="per task: its readiness and what is missing (the gateway)"
    )
    components: dict[str, Any] | None = None
    details: dict[str, Any] | None = Field(default=None, description="what the service adds (an LLM's slots)")


def health_router(
    checks: dict[str, ReadinessCheck],
    capabilities: Callable[[], dict[str, str]] | None = None,
    components: Callable[[], dict[str, Any]] | None = None,
    components_key: str = "components",
) -> APIRouter:
    """Router with /healthz, /readyz and /metrics. ``checks`` run in a thread pool.

    ``capabilities`` (optional) reports what the fleet can do right now (for example
    "ocr: no worker"); it is shown in /readyz but does not make the service unready,
    since the service keeps working without them (jobs wait in their queue). ``components``
    (optional) likewise reports other processes the service relies on (the gateway: whether
    job_manager is reconciling).
    """
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # HEAD answers like GET without a body (load balancers, `curl -I`; RFC 9110 9.3.2); left out
    # of the OpenAPI document, which describes the GET routes.
    router.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)

    @router.get(
        "/readyz",
        response_model=ReadinessReport,
        responses={503: {"model": ReadinessReport, "description": "not ready: the checks say why"}},
    )
    async def readyz() -> JSONResponse:
        results: dict[str, Any] = {}
        for name, check in checks.items():
            try:
                reason = await asyncio.to_thread(check)
            except Exception as exc:  # a failing check is a "not ready" answer, never a 500
                reason = f"{type(exc).__name__}: {exc}"
            results[name] = "ok" if reason is None else reason
        ready = all(v == "ok" for v in results.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": results}
        for key, report in (("capabilities", capabilities), (components_key, components)):
            if report is None:
                continue
            try:
                body[key] = await asyncio.to_thread(report)
            except Exception as exc:  # reported, never a 500
                body[key] = {"error": f"{type(exc).__name__}: {exc}"}
        return JSONResponse(body, status_code=200 if ready else 503)

    router.add_api_route("/readyz", readyz, methods=["HEAD"], include_in_schema=False)

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
                         "description": "Prometheus text exposition format"}},
    )  # fmt: skip
    async def metrics() -> Response:
        """Prometheus metrics (text format 0.0.4)."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


class MetricsMiddleware:
    """Pure ASGI middleware recording request counts and latency per route template."""

    def __init__(self, app: ASGIApp, service: str):
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(self.service, method, template, str(status["code"])).inc()
            HTTP_LATENCY.labels(self.service, method, template).observe(time.perf_counter() - start)


def redis_check(client: Any) -> ReadinessCheck:
    def check() -> str | None:
        client.ping()
        return None

    return check


def database_check(engine: Any) -> ReadinessCheck:
    from sqlalchemy import text

    def check() -> str | None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None

    return check


def serve_in_thread(app: FastAPI, host: str, port: int) -> threading.Thread:
    """Run ``app`` with uvicorn in a daemon thread (health/metrics of worker processes).

    uvicorn installs no signal handlers outside the main thread, so the worker in the
    main thread keeps its own SIGTERM handling.
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        log_config=None,  # its lines go through the process's structlog handler
        reset_contextvars=True,  # see mediafleet.common.tracing (uvicorn and contextvars)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"http-{port}", daemon=True)
    thread.start()
    return thread


#: Paths open without the internal token: container probes and Prometheus.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class InternalTokenGuard:
    """Pure ASGI: every path but :data:`OPEN_PATHS` needs ``Authorization: Bearer <token>``
    (``MEDIAFLEET_INTERNAL_TOKEN``), else 401 with the error envelope. ``token`` None: open."""

    def __init__(self, app: ASGIApp, token: str | None):
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.token or scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        import hmac
        import json

        from mediafleet.common.errors import envelope

        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if hmac.compare_digest(given, f"Bearer {self.token}".encode()):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            envelope("internal_token_required", "this internal service answers the fleet only")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})  # fmt: skip


def internal_headers(core: Any) -> dict[str, str]:
    """The header a fleet service sends on an internal call (``{}`` without a token)."""
    token = getattr(core, "internal_token", None)
    return {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
