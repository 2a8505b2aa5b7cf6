"""Schema upgrades keep data: OCR lines of the first schema become searchable text segments."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from mediafleet.common.store import Task, create_db_engine, migrate, session_factory
from mediafleet.common.store.search import search_text

#: The newest migration (its file name starts with its revision id).
HEAD = max(
    p.name.split("_", 1)[0]
    for p in (
        Path(__file__).resolve().parents[2] / "services/common/mediafleet/common/store/migrations/versions"
    ).glob("0*.py")
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return (
        f"sqlite:///{tmp_path / 'm.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    )


def test_upgrade_from_0001_moves_ocr_lines_and_keeps_jobs(db_url: str) -> None:
    engine = create_db_engine(db_url)
    migrate(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, username, password_hash, is_admin, must_change_password, token_version) "
                "VALUES (1, 'ann', 'x', false, false, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO media (id, kind, mime, size_bytes, width, height, storage_path) "
                "VALUES ('m1', 'image', 'image/png', 10, 905, 480, 'm1.png')"
            )
        )
        conn.execute(text("INSERT INTO media_owners (media_id, user_id, filename) VALUES ('m1', 1, 'a.png')"))
        conn.execute(
            text(
                "INSERT INTO jobs (id, user_id, media_id, status, priority, options, updated_at) "
                "VALUES ('j1', 1, 'm1', 'succeeded', 'normal', '{}', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO tasks (id, job_id, name, status, attempts) VALUES ('t1', 'j1', 'ocr', 'succeeded', 1)"
            )
        )
        for i, line in enumerate(["Reduce your risk", "Clean hands with soap and water"]):
            conn.execute(
                text(
                    "INSERT INTO ocr_lines (media_id, line_no, text, x1, y1, x2, y2, score, engine) "
                    "VALUES ('m1', :i, :t, 328, 100, 595, 121, 0.9, 'rapidocr')"
                ),
                {"i": i, "t": line},
            )
    migrate(engine)  # 0001 -> head, with data in it
    with session_factory(engine)() as session:
        hits = search_text(session, "soap", user_id=1)
        assert [h["media_id"] for h in hits] == ["m1"]
        match = hits[0]["matches"][0]
        assert (match["task"], match["ref"], match["text"]) == (
            "ocr",
            "lines[1]",
            "Clean hands with soap and water",
        )
        assert match["box"] == [328, 100, 595, 121] and match["start"] is None
        task = session.get(Task, "t1")
        assert task.depends_on == [] and task.cached is False
    with engine.connect() as conn:
        tables = {
            r[0]
            for r in conn.execute(
                text("SELECT name FROM sqlite_master WHERE type='table'")
                if engine.dialect.name == "sqlite"
                else text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
        }
    assert "ocr_lines" not in tables and {"text_segments", "result_cache", "webhook_deliveries"} <= tables


def test_processes_starting_together_migrate_in_turn(db_url: str) -> None:
    """Two gateway workers on a fresh database both created ``alembic_version`` and one
    failed to start; now they take turns (advisory lock / file lock)."""
    import subprocess
    import sys

    code = "import sys; from mediafleet.common.store import create_db_engine, migrate; migrate(create_db_engine(sys.argv[1]))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, db_url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
    engine = create_db_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    engine.dispose()


def test_the_sqlite_file_is_its_owners_only(tmp_path: Path) -> None:
    """It holds password hashes and webhook secrets: mode 0600, its WAL too."""
    import stat

    from mediafleet.common.store import create_db_engine, migrate

    engine = create_db_engine(f"sqlite:///{tmp_path / 'db' / 'm.db'}")
    migrate(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
        files = sorted((tmp_path / "db").iterdir())
        assert {f.name for f in files} >= {"m.db", "m.db-wal"}
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, (f.name, oct(f.stat().st_mode))
    engine.dispose()
