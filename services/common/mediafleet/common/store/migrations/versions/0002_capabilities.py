"""Capabilities: text_segments (full-text search for every capability) replaces ocr_lines;
task dependencies and cache flags; result cache; webhooks.

Existing OCR lines move to ``text_segments`` with ``task='ocr'`` and ``ref='lines[<n>]'``.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _fts(table: str) -> None:
    """Full-text index of ``table.text``: generated tsvector + GIN (PostgreSQL), FTS5 + triggers (SQLite)."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # 'simple' config: no stemming or stop words, so any language tokenises the same way.
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN tsv tsvector "
            "GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED"
        )
        op.execute(f"CREATE INDEX ix_{table}_tsv ON {table} USING GIN (tsv)")
    elif dialect == "sqlite":
        fts = f"{table}_fts"
        op.execute(
            f"CREATE VIRTUAL TABLE {fts} USING fts5("
            f"text, content='{table}', content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            f"CREATE TRIGGER {table}_ai AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO {fts}(rowid, text) VALUES (new.id, new.text); END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_ad AFTER DELETE ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, text) VALUES ('delete', old.id, old.text); END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_au AFTER UPDATE ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, text) VALUES ('delete', old.id, old.text); "
            f"INSERT INTO {fts}(rowid, text) VALUES (new.id, new.text); END"
        )


def _drop_fts(table: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        for suffix in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_{suffix}")
        op.execute(f"DROP TABLE IF EXISTS {table}_fts")


def upgrade() -> None:
    op.create_table(
        "text_segments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("media_id", sa.String(64), sa.ForeignKey("media.id", ondelete="CASCADE"), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("ref", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("x1", sa.Float),
        sa.Column("y1", sa.Float),
        sa.Column("x2", sa.Float),
        sa.Column("y2", sa.Float),
        sa.Column("start", sa.Float),
        sa.Column("end", sa.Float),
        sa.Column("score", sa.Float),
    )
    op.create_index("ix_text_segments_media_id", "text_segments", ["media_id"])
    _fts("text_segments")
    op.execute(
        "INSERT INTO text_segments (media_id, task, ref, seq, text, x1, y1, x2, y2, score) "
        "SELECT media_id, 'ocr', 'lines[' || line_no || ']', line_no, text, x1, y1, x2, y2, score "
        "FROM ocr_lines ORDER BY id"
    )
    _drop_fts("ocr_lines")
    op.drop_table("ocr_lines")

    # Plain ADD COLUMN (SQLite supports it with constant defaults): a batch "move and copy"
    # would drop and recreate the tables.
    op.add_column("tasks", sa.Column("depends_on", sa.JSON, nullable=False, server_default=sa.text("'[]'")))
    op.add_column("tasks", sa.Column("cached", sa.Boolean, nullable=False, server_default=sa.false()))
    op.add_column("jobs", sa.Column("webhook_url", sa.String(2048)))
    op.add_column("jobs", sa.Column("use_cache", sa.Boolean, nullable=False, server_default=sa.true()))
    op.add_column("users", sa.Column("webhook_secret", sa.String(128)))

    op.create_table(
        "result_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("media_id", sa.String(64), sa.ForeignKey("media.id", ondelete="CASCADE"), nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("engine", sa.String(64)),
        sa.Column("model_version", sa.String(128)),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("source_task_id", sa.String(36), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_result_cache_media_id", "result_cache", ["media_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TS),
        sa.Column("attempts_log", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_webhook_deliveries_state", "webhook_deliveries", ["state"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("result_cache")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("webhook_secret")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("use_cache")
        batch.drop_column("webhook_url")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("cached")
        batch.drop_column("depends_on")
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
    _fts("ocr_lines")
    op.execute(
        "INSERT INTO ocr_lines (media_id, line_no, text, x1, y1, x2, y2, score, engine) "
        "SELECT media_id, seq, text, x1, y1, x2, y2, COALESCE(score, 0), 'unknown' FROM text_segments "
        "WHERE task = 'ocr' ORDER BY id"
    )
    _drop_fts("text_segments")
    op.drop_table("text_segments")
