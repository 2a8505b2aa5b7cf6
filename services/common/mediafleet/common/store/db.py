"""Engine/session factories and schema migration (Alembic, run programmatically)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as exc_mod
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


#: PostgreSQL: seconds to open a connection, and the longest statement, before an error: a
#: database that is away makes requests fail fast (503) instead of hanging past the client's
#: time-out and committing later (61 submissions with client retries became 187 jobs).
CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT_MS = 30_000
#: Seconds a request waits for a pooled connection before an error.
POOL_TIMEOUT_S = 10


def create_db_engine(url: str, pool_size: int = 10, max_overflow: int = 10) -> Engine:
    """SQLAlchemy engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout;
    PostgreSQL a connect and a statement time-out (:data:`CONNECT_TIMEOUT_S`,
    :data:`STATEMENT_TIMEOUT_MS`).

    At most ``pool_size + max_overflow`` connections are open at once; a checkout beyond
    that waits up to :data:`POOL_TIMEOUT_S` (then ``sqlalchemy.exc.TimeoutError``).
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # the file holds password hashes and webhook secrets: readable by its owner only
            # (the -wal and -shm files SQLite makes take the database file's mode)
            Path(path).touch(mode=0o600, exist_ok=True)
            os.chmod(path, 0o600)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=max_overflow,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    connect_args = {}
    if url.startswith("postgresql"):
        connect_args = {
            "connect_timeout": CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        }
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=POOL_TIMEOUT_S,
        connect_args=connect_args,
    )
    _ping_when_idle(engine)
    return engine


#: A pooled connection unused for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 2.0


def _ping_when_idle(engine: Engine) -> None:
    """Pessimistic disconnect handling for connections that sat in the pool.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one more round trip per request
    (a quarter of a cached read's statements in bench/load). Here only a connection idle for
    over :data:`PING_AFTER_IDLE_S` is pinged (the dialect's own ``do_ping``); a failed ping
    raises ``DisconnectionError``, on which the pool replaces the connection and retries
    (SQLAlchemy, "Disconnect Handling - Pessimistic", custom ``checkout`` events). A server
    restart while connections are busy still fails those requests once, as with pre-ping;
    SQLAlchemy then invalidates the whole pool.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["mediafleet_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("mediafleet_idle_since")
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE_S:
            return  # new, or back in the pool a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise exc_mod.DisconnectionError(f"pooled connection failed its ping: {exc}") from exc
        if not alive:
            raise exc_mod.DisconnectionError("pooled connection failed its ping")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


#: Key of the PostgreSQL advisory lock that serialises migrations ("mfmigr" in ASCII).
MIGRATION_LOCK_KEY = 0x6D666D69677272


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest; idempotent, safe at every start).

    Processes that start together (gateway workers, job_manager) take turns: a PostgreSQL
    advisory lock, or a file lock beside a SQLite database. Without it two gateway workers on
    a fresh database both created ``alembic_version`` and one failed to start.
    """
    with _migration_lock(engine):
        _upgrade(engine, revision)


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
            try:
                yield
            finally:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    import fcntl

    with open(os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600), "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _upgrade(engine: Engine, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            # A batch migration recreates a table; with foreign keys on, dropping the old
            # one would cascade-delete its children (Alembic's SQLite batch notes).
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        with conn.begin():
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()
