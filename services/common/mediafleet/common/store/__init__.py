"""The SQL store: PostgreSQL in the fleet, SQLite in embedded mode (SQLAlchemy 2 + Alembic)."""

from mediafleet.common.store.db import create_db_engine, migrate, session_factory
from mediafleet.common.store.models import (
    ApiKey,
    Base,
    CachedResult,
    FaceRow,
    Job,
    Media,
    MediaDuplicate,
    MediaOwner,
    Person,
    Task,
    TextSegmentRow,
    TokenFamily,
    User,
    VectorSync,
    WebhookDelivery,
)

__all__ = [
    "ApiKey",
    "Base",
    "Job",
    "Media",
    "MediaDuplicate",
    "MediaOwner",
    "Task",
    "TextSegmentRow",
    "TokenFamily",
    "User",
    "WebhookDelivery",
    "VectorSync",
    "CachedResult",
    "FaceRow",
    "Person",
    "create_db_engine",
    "migrate",
    "session_factory",
]
