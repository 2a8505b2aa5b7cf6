"""What the gateway holds for its lifetime (built in the lifespan, reached through deps)."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import redis
import redis.asyncio as aioredis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mediafleet.common.capability import ServiceEndpoint
from mediafleet.common.vectors import VectorDbClient
from mediafleet.gateway.batch.executor import BatchExecutor
from mediafleet.gateway.login_guard import LoginGuard
from mediafleet.gateway.principals import PrincipalCache
from mediafleet.gateway.settings import GatewaySettings
from mediafleet.gateway.storage import MediaStore
from mediafleet.gateway.streams import Streams


@dataclass
class GatewayContext:
    settings: GatewaySettings
    db: Engine
    sessions: sessionmaker[Session]
    #: Sessions for GET/HEAD requests: autocommit, so a read sends no BEGIN and no ROLLBACK.
    read_sessions: sessionmaker[Session]
    #: Turns for requests that hold a session (``GATEWAY_DB_CONCURRENCY``; deps.get_session).
    db_turns: anyio.CapacityLimiter
    redis: redis.Redis
    aredis: aioredis.Redis
    media: MediaStore
    batch: BatchExecutor
    #: Job event streams: one shared reader per job, open streams per user bounded.
    streams: Streams
    #: Bearer token -> who it proved, for reads (``GATEWAY_PRINCIPAL_CACHE_S``).
    principals: PrincipalCache
    #: None when ``MEDIAFLEET_VECTOR_DB_URL`` is unset (semantic search and /similar: 503).
    vectors: VectorDbClient | None = None
    #: Failed password checks per account and address (None: no limiting).
    login_guard: LoginGuard | None = None
    #: Capability name -> its service's URL and time-out (contracts with an ``http_api``),
    #: read once at start from ``<HttpApi.env_prefix>URL`` / ``TIMEOUT_S``.
    endpoints: dict[str, ServiceEndpoint] = field(default_factory=dict)
