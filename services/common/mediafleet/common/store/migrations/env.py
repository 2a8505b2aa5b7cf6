"""Alembic environment: runs on the connection passed in by ``mediafleet.common.store.db.migrate``."""

from alembic import context

from mediafleet.common.store.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
