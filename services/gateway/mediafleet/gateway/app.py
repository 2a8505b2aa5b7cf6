"""Gateway application factory and lifespan (DB migration, first admin, Redis clients)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
import redis
import redis.asyncio as aioredis
import structlog
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mediafleet.common import registry, tracing
from mediafleet.common.errors import ERROR_RESPONSES, install_error_handlers
from mediafleet.common.logging import configure_logging
from mediafleet.common.metrics import register_storage
from mediafleet.common.observability import (
    MetricsMiddleware,
    database_check,
    health_router,
    internal_headers,
    redis_check,
)
from mediafleet.common.queues import job_manager_liveness
from mediafleet.common.store import User, create_db_engine, migrate, session_factory
from mediafleet.common.vectors import VectorDbClient
from mediafleet.common.worker import capabilities
from mediafleet.gateway import openapi as gateway_openapi
from mediafleet.gateway.batch.cache import CacheInvalidation, ResponseCache
from mediafleet.gateway.batch.executor import BatchExecutor, Limits
from mediafleet.gateway.context import GatewayContext
from mediafleet.gateway.limits import InternalsGuard, UploadSizeLimit
from mediafleet.gateway.login_guard import LoginGuard
from mediafleet.gateway.principals import PrincipalCache, watch_sessions
from mediafleet.gateway.routes import (
    admin,
    ask,
    auth,
    batch,
    duplicates,
    jobs,
    media,
    people,
    proxy,
    search,
    sync,
    tasks,
)
from mediafleet.gateway.security import hash_password
from mediafleet.gateway.settings import GatewaySettings, with_signing_key
from mediafleet.gateway.storage import MediaStore
from mediafleet.gateway.streams import Streams

log = structlog.get_logger("mediafleet.gateway")


def ensure_admin(ctx: GatewayContext) -> None:
    """Create the first admin from settings when no user of that name exists."""
    admin = ctx.settings.admin
    with ctx.sessions() as session:
        if session.scalar(select(User).where(User.username == admin.username)) is None:
            session.add(
                User(
                    username=admin.username,
                    password_hash=hash_password(admin.password.get_secret_value()),
                    is_admin=True,
                    must_change_password=True,
                    token_version=0,
                )
            )
            try:
                session.commit()
            except IntegrityError:  # another gateway process created it this instant
                session.rollback()
                return
            log.info("admin_created", username=admin.username)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = with_signing_key(settings or GatewaySettings())
    db = create_db_engine(settings.core.database_url, pool_size=10, max_overflow=settings.db_concurrency)
    rclient = redis.Redis.from_url(settings.core.redis_url, socket_timeout=5, socket_connect_timeout=2)
    b = settings.batch
    cache = ResponseCache(maxsize=max(b.cache_size, 1), ttl_s=b.cache_ttl_s)
    limits = Limits(b.max_requests, b.concurrency, b.max_retries, b.timeout_s, b.max_item_body_bytes)
    aredis = aioredis.Redis.from_url(settings.core.redis_url, socket_connect_timeout=2)
    principals = PrincipalCache(settings.principal_cache_s, publisher=rclient)
    ctx = GatewayContext(
        settings=settings,
        db=db,
        sessions=session_factory(db),
        read_sessions=session_factory(db.execution_options(isolation_level="AUTOCOMMIT")),
        db_turns=anyio.CapacityLimiter(settings.db_concurrency),
        redis=rclient,
        aredis=aredis,
        streams=Streams(aredis, settings.max_streams_per_user),
        principals=principals,
        media=MediaStore(settings.core.media_dir, settings.max_upload_bytes, settings.max_media_duration_s),
        batch=BatchExecutor(None, cache, limits),
        login_guard=LoginGuard(
            rclient,
            pair_free=settings.login.pair_free_failures,
            account_free=settings.login.account_free_failures,
            address_free=settings.login.address_free_failures,
            window_s=settings.login.window_s,
            max_lock_s=settings.login.max_lock_s,
        ),
        vectors=(
            VectorDbClient(
                settings.core.vector_db_url,
                settings.core.vector_timeout_s,
                headers=internal_headers(settings.core),
            )
            if settings.core.vector_db_url
            else None
        ),
        endpoints={
            cap.name: cap.http_api.endpoint() for cap in registry.capabilities().values() if cap.http_api
        },
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        migrate(db)
        ensure_admin(ctx)
        if stale := ctx.media.clean_stale_parts():
            log.warning("stale_uploads_removed", count=stale, folder=str(ctx.media.tmp))
        register_storage({"media": settings.core.media_dir})
        log.info("gateway_ready", database=db.url.get_backend_name(), media_dir=str(settings.core.media_dir))
        stop = asyncio.Event()
        listener = asyncio.create_task(principals.listen(aredis, stop)) if principals.enabled else None
        yield
        stop.set()
        if listener is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listener, 5)
        await ctx.aredis.aclose()
        rclient.close()
        if ctx.vectors is not None:
            ctx.vectors.close()
        db.dispose()

    app = FastAPI(
        title="mediafleet gateway",
        version="0.1.0",
        description="Upload media, run analysis jobs, follow their progress and search what was found.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        telemetry=tracing.FASTAPI_TELEMETRY,  # traced when OTEL_EXPORTER_OTLP_ENDPOINT is set
    )
    app.state.ctx = ctx
    for factory in (ctx.sessions, ctx.read_sessions):
        watch_sessions(factory, principals)
    gateway_openapi.install(app, proxy.openapi_models())
    caps = registry.capabilities().values()
    install_error_handlers(
        app,
        [
            c.http_api.public_prefix
            for c in caps
            if c.http_api is not None and c.http_api.error_style == "openai"
        ]
        + [r.path for c in caps for r in c.sync_routes if r.error_style == "openai"],
    )

    def media_disk_check() -> str | None:
        free = ctx.media.free_bytes()
        if free >= settings.min_free_bytes:
            return None
        return f"low disk: {free >> 20} MiB free for media, below GATEWAY_MIN_FREE_BYTES ({settings.min_free_bytes >> 20} MiB)"

    def job_manager_check() -> str | None:
        # jobs are accepted but nothing runs them: not ready (uploads and reads still answer)
        state = job_manager_liveness(rclient)
        return None if state == "ok" else state

    app.include_router(
        health_router(
            {
                "database": database_check(db),
                "redis": redis_check(rclient),
                "job_manager": job_manager_check,
                "media_disk": media_disk_check,
            },
            capabilities=lambda: capabilities(rclient),
        )
    )
    for router in (
        auth.router,
        admin.router,
        media.router,
        tasks.router,
        jobs.router,
        search.router,
        duplicates.router,
        people.router,
        ask.router,
        proxy.router,
        sync.router,
        batch.router,
    ):
        app.include_router(router)
    ctx.batch.app = app  # sub-requests re-enter the whole app, middleware included
    proxied = frozenset(c.http_api.public_prefix for c in registry.capabilities().values() if c.http_api)
    app.add_middleware(CacheInvalidation, cache=cache, not_writes=proxied)
    app.add_middleware(
        UploadSizeLimit,
        max_bytes=settings.max_upload_bytes,
        overrides={"/v1/batch": b.max_body_bytes},
        max_other_bytes=settings.max_json_bytes,
    )
    # /metrics and the docs: open in development; elsewhere only with GATEWAY_INTERNALS_TOKEN
    open_ = (
        settings.internals_open
        if settings.internals_open is not None
        else settings.core.environment == "development"
    )
    token = settings.internals_token.get_secret_value() if settings.internals_token else None
    app.add_middleware(InternalsGuard, token=token, open_=open_)
    app.add_middleware(MetricsMiddleware, service="gateway")
    return app


def main_app() -> FastAPI:
    """Entry for ``uvicorn --factory mediafleet.gateway.app:main_app``."""
    settings = GatewaySettings()
    configure_logging(settings.core.log_level, settings.core.log_format)
    tracing.configure_tracing("gateway")
    return create_app(settings)
