"""jobs.idempotency_key, idempotency_hash: a client's retry of POST /v1/jobs makes no second job.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(255)))
        batch.add_column(sa.Column("idempotency_hash", sa.String(64)))
        batch.create_unique_constraint("uq_jobs_user_idempotency_key", ["user_id", "idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_user_idempotency_key", type_="unique")
        batch.drop_column("idempotency_hash")
        batch.drop_column("idempotency_key")
