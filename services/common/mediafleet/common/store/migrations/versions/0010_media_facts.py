"""media.taken_at, place, country_code: the file's own date and place (TaskSpec.facts), for the library's filters.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.add_column(sa.Column("taken_at", sa.DateTime(timezone=False)))
        batch.add_column(sa.Column("place", sa.String(200)))
        batch.add_column(sa.Column("country_code", sa.String(2)))
        batch.create_index("ix_media_taken_at", ["taken_at"])


def downgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.drop_index("ix_media_taken_at")
        batch.drop_column("country_code")
        batch.drop_column("place")
        batch.drop_column("taken_at")
