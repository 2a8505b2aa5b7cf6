"""media_duplicates: pairs of one user's files a fingerprint task calls near-duplicates (TaskSpec.likeness).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_duplicates",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("media_id", sa.String(64), sa.ForeignKey("media.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("other_id", sa.String(64), sa.ForeignKey("media.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("similarity", sa.Float, nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_media_duplicates_other_id", "media_duplicates", ["other_id"])


def downgrade() -> None:
    op.drop_index("ix_media_duplicates_other_id", table_name="media_duplicates")
    op.drop_table("media_duplicates")
