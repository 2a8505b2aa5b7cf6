"""media: duration and streams of audio and video.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.add_column(sa.Column("duration_s", sa.Float))
        batch.add_column(sa.Column("streams", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("media") as batch:
        batch.drop_column("streams")
        batch.drop_column("duration_s")
