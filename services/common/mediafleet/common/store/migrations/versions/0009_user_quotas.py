"""users.quota_bytes, quota_files: per-user storage quotas set by an admin (null: the default).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("quota_bytes", sa.BigInteger))
        batch.add_column(sa.Column("quota_files", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("quota_files")
        batch.drop_column("quota_bytes")
