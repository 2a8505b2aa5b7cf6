"""jobs.device (where a job's tasks may run: auto, gpu, cpu) and tasks.device (what the worker
that produced the result runs on: cpu, cuda), issue 24.3.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("device", sa.String(8), nullable=False, server_default="auto"))
    op.add_column("tasks", sa.Column("device", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("device")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("device")
