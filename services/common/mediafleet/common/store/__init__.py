"""The SQL store: PostgreSQL in the fleet, SQLite in embedded mode (SQLAlchemy 2 + Alembic)."""

from mediafleet.common.store.db import create_db_engine, migrate, session_factory
from mediafleet.common.store.models import Base, Job, Media, MediaOwner, OcrLineRow, Task, User

__all__ = [
    "Base",
    "Job",
    "Media",
    "MediaOwner",
    "OcrLineRow",
    "Task",
    "User",
    "create_db_engine",
    "migrate",
    "session_factory",
]
