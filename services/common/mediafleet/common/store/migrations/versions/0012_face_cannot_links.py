"""face_cannot_links: pairs of a user's faces never to be grouped into one person (user feedback).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "face_cannot_links",
        sa.Column("face_id", sa.String(36), sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("other_id", sa.String(36), sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_face_cannot_links_other_id", "face_cannot_links", ["other_id"])
    op.create_index("ix_face_cannot_links_user_id", "face_cannot_links", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_face_cannot_links_user_id", table_name="face_cannot_links")
    op.drop_index("ix_face_cannot_links_other_id", table_name="face_cannot_links")
    op.drop_table("face_cannot_links")
