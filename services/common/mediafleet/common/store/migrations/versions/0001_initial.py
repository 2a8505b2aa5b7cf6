"""Initial schema: users, media, jobs, tasks, OCR lines with full-text search.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("must_change_password", sa.Boolean, nullable=False),
        sa.Column("token_version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "media",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("mime", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("storage_path", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "media_owners",
        sa.Column("media_id", sa.String(64), sa.ForeignKey("media.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("filename", sa.String(255)),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("media_id", sa.String(64), sa.ForeignKey("media.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(8), nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("finished_at", TS),
    )
    op.create_index("ix_jobs_user_id", "jobs", ["user_id"])
    op.create_index("ix_jobs_media_id", "jobs", ["media_id"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("queue_job_id", sa.String(64)),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
    )
    op.create_index("ix_tasks_job_id", "tasks", ["job_id"])
    op.create_index("ix_tasks_status", "tasks", ["status"])
    op.create_table(
        "ocr_lines",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("media_id", sa.String(64), sa.ForeignKey("media.id", ondelete="CASCADE"), nullable=False),
        sa.Column("line_no", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("x1", sa.Float, nullable=False),
        sa.Column("y1", sa.Float, nullable=False),
        sa.Column("x2", sa.Float, nullable=False),
        sa.Column("y2", sa.Float, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("engine", sa.String(32), nullable=False),
    )
    op.create_index("ix_ocr_lines_media_id", "ocr_lines", ["media_id"])

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # 'simple' config: no stemming or stop words, so any language tokenises the same way.
        op.execute(
            "ALTER TABLE ocr_lines ADD COLUMN tsv tsvector "
            "GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED"
        )
        op.execute("CREATE INDEX ix_ocr_lines_tsv ON ocr_lines USING GIN (tsv)")
    elif dialect == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE ocr_lines_fts USING fts5("
            "text, content='ocr_lines', content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER ocr_lines_ai AFTER INSERT ON ocr_lines BEGIN "
            "INSERT INTO ocr_lines_fts(rowid, text) VALUES (new.id, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER ocr_lines_ad AFTER DELETE ON ocr_lines BEGIN "
            "INSERT INTO ocr_lines_fts(ocr_lines_fts, rowid, text) VALUES ('delete', old.id, old.text); END"
        )
        op.execute(
            "CREATE TRIGGER ocr_lines_au AFTER UPDATE ON ocr_lines BEGIN "
            "INSERT INTO ocr_lines_fts(ocr_lines_fts, rowid, text) VALUES ('delete', old.id, old.text); "
            "INSERT INTO ocr_lines_fts(rowid, text) VALUES (new.id, new.text); END"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TABLE IF EXISTS ocr_lines_fts")
    for table in ("ocr_lines", "tasks", "jobs", "media_owners", "media", "users"):
        op.drop_table(table)
