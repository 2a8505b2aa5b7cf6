"""What the gateway holds for its lifetime (built in the lifespan, reached through deps)."""

from __future__ import annotations

from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from mediafleet.common.vectors import VectorDbClient
from mediafleet.gateway.batch.executor import BatchExecutor
from mediafleet.gateway.login_guard import LoginGuard
from mediafleet.gateway.settings import GatewaySettings
from mediafleet.gateway.storage import MediaStore


@dataclass
class GatewayContext:
    settings: GatewaySettings
    db: Engine
    sessions: sessionmaker[Session]
    redis: redis.Redis
    aredis: aioredis.Redis
    media: MediaStore
    batch: BatchExecutor
    #: None when ``MEDIAFLEET_VECTOR_DB_URL`` is unset (semantic search and /similar: 503).
    vectors: VectorDbClient | None = None
    #: Failed password checks per account and address (None: no limiting).
    login_guard: LoginGuard | None = None
