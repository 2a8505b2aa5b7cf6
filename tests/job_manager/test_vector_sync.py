"""job_manager's vector syncs: a succeeded task's embeddings reach vector_db as the owner's items,
retried with backoff while vector_db is unreachable, failed after the last attempt."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from mediafleet.common.pipeline.record import record
from mediafleet.common.settings import CoreSettings
from mediafleet.common.store import Job, Media, Task, User, create_db_engine, migrate, session_factory
from mediafleet.common.vectors import VectorDbClient, item_id
from mediafleet.job_manager.vectors import queue_sync, sync_due
from mediafleet.vector_db.app import create_app
from mediafleet.vector_db.settings import VectorDbSettings


def _clip_result(vector: list[float]) -> dict:
    return {
        "embedding": vector, "dim": len(vector), "engine": "open_clip", "model": "m", "pretrained": "p",
        "model_version": "0" * 12, "collection": "clip-test", "elapsed_ms": 1.0,
    }  # fmt: skip


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 's.db'}")
    migrate(engine)
    return session_factory(engine)


@pytest.fixture
def vector_db(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(VectorDbSettings(data_dir=tmp_path / "vectors"))) as client:
        yield client


def _succeeded_clip_task(
    sessions: sessionmaker[Session], user_id: int, media_id: str, vector: list[float]
) -> str:
    with sessions() as s:
        if s.get(User, user_id) is None:
            s.add(User(id=user_id, username=f"u{user_id}", password_hash="x"))
        if s.get(Media, media_id) is None:
            s.add(Media(id=media_id, kind="image", mime="image/png", size_bytes=1, storage_path="x"))
        s.flush()  # the job's foreign keys need these rows first
        job = Job(
            id=str(uuid.uuid4()), user_id=user_id, media_id=media_id, status="succeeded", priority="normal"
        )
        task = Task(id=str(uuid.uuid4()), name="clip", status="succeeded", result=_clip_result(vector))
        job.tasks.append(task)
        s.add(job)
        derived = record(s, task)  # as job_manager records a result
        assert derived is not None and len(derived.vectors) == 1
        assert queue_sync(task, len(derived.vectors)) is True
        s.commit()
        return task.id


def _sync(sessions: sessionmaker[Session], task_id: str) -> tuple[str, int, str | None]:
    with sessions() as s:
        sync = s.get(Task, task_id).vector_sync
        return sync.state, sync.attempts, sync.error


def test_synced_items_belong_to_the_owner(sessions: sessionmaker[Session], vector_db: TestClient) -> None:
    a = _succeeded_clip_task(sessions, 1, "a" * 64, [1.0, 0.0, 0.0])
    b = _succeeded_clip_task(sessions, 2, "b" * 64, [0.0, 1.0, 0.0])
    client = VectorDbClient("http://vector-db", http=vector_db)
    assert sync_due(sessions, CoreSettings(), client) == 2
    assert _sync(sessions, a) == ("synced", 1, None) and _sync(sessions, b)[0] == "synced"
    assert sync_due(sessions, CoreSettings(), client) == 0  # nothing left to do

    info = vector_db.get("/v1/collections/clip-test").json()
    assert info["dim"] == 3 and info["metric"] == "cosine" and info["count"] == 2 and info["owners"] == 2
    # owner 1 sees only its own item, whatever the query
    hits = vector_db.post(
        "/v1/collections/clip-test/search", json={"owner": "1", "vector": [0.0, 1.0, 0.0], "k": 5}
    ).json()["data"]
    assert [(h["id"], h["payload"]) for h in hits] == [
        (item_id("a" * 64, "clip", "media"), {"media_id": "a" * 64, "task": "clip", "ref": "media"})
    ]


def test_unreachable_vector_db_is_retried_then_failed(sessions: sessionmaker[Session]) -> None:
    task_id = _succeeded_clip_task(sessions, 1, "c" * 64, [0.0, 0.0, 1.0])
    core = CoreSettings(vector_sync_max_attempts=3, vector_backoff_s=0)
    client = VectorDbClient("http://127.0.0.1:9", timeout_s=2)  # nothing listens on port 9 (discard)
    sync_due(sessions, core, client)
    state, attempts, error = _sync(sessions, task_id)
    assert (state, attempts) == ("pending", 1) and "unreachable" in error
    sync_due(sessions, core, client)
    sync_due(sessions, core, client)
    state, attempts, error = _sync(sessions, task_id)
    assert (state, attempts) == ("failed", 3) and "127.0.0.1:9" in error
    assert sync_due(sessions, core, client) == 0  # a failed sync is not tried again


def test_backoff_delays_the_next_attempt(sessions: sessionmaker[Session]) -> None:
    task_id = _succeeded_clip_task(sessions, 1, "d" * 64, [0.0, 0.0, 1.0])
    core = CoreSettings(vector_backoff_s=60)
    client = VectorDbClient("http://127.0.0.1:9", timeout_s=2)
    assert sync_due(sessions, core, client) == 1
    assert sync_due(sessions, core, client) == 0  # due again in 60 s, not now
    assert _sync(sessions, task_id)[:2] == ("pending", 1)


def test_dimension_mismatch_is_refused_not_mixed(
    sessions: sessionmaker[Session], vector_db: TestClient
) -> None:
    vector_db.put("/v1/collections/clip-test", json={"dim": 4})
    task_id = _succeeded_clip_task(sessions, 1, "e" * 64, [1.0, 0.0, 0.0])
    sync_due(sessions, CoreSettings(vector_backoff_s=0), VectorDbClient("http://vector-db", http=vector_db))
    state, _, error = _sync(sessions, task_id)
    assert state == "pending" and "holds 4-d vectors, not 3-d" in error
    assert vector_db.get("/v1/collections/clip-test").json()["count"] == 0
