"""ORM models. The full-text index is dialect-specific and lives in the migrations:
PostgreSQL adds a generated ``tsvector`` column with a GIN index to ``text_segments``;
SQLite adds an FTS5 table ``text_segments_fts`` kept in sync by triggers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """``DateTime(timezone=True)`` that always loads as an aware UTC datetime: SQLite keeps no
    offset and hands back naive values (stored in UTC), which APIs would emit without the
    offset RFC 3339 requires."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UtcDateTime(), dict[str, Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Bumped on password change; tokens carrying an older version are refused.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    #: Key of the HMAC-SHA256 signatures of this user's webhooks (shown once when created).
    webhook_secret: Mapped[str | None] = mapped_column(String(128))
    #: A disabled account cannot sign in, and its tokens and API keys are refused.
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Storage quota set by an admin: bytes and files the account's uploads may hold (0: no
    #: limit); None: the gateway's defaults (GATEWAY_QUOTA__BYTES / __FILES).
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    quota_files: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())


class ApiKey(Base):
    """A long-lived credential for scripts: ``mfk_<id>_<secret>`` in ``Authorization: Bearer``.

    Only the SHA-256 of the 192-bit random secret is stored (a key is not a password: no
    slow hash needed). ``scopes``: ``read`` (GET), ``write`` (other methods), ``admin``.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
    last_used_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class TokenFamily(Base):
    """One sign-in: the chain of refresh tokens rotated from its login.

    Only ``current_jti`` may be refreshed; presenting an older refresh token of the family
    (a stolen one replayed, or the thief's after the owner refreshed) revokes the family,
    and with it every access token carrying its id. Logout revokes it too.
    """

    __tablename__ = "token_families"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    current_jti: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
    #: ``logout``, ``reuse`` (an old refresh token came back).
    revoked_reason: Mapped[str | None] = mapped_column(String(16))


class Media(Base):
    """One stored file. ``id`` is the SHA-256 of its bytes (hex), so same bytes -> same id."""

    __tablename__ = "media"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    mime: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    #: Seconds of audio/video (None for images).
    duration_s: Mapped[float | None] = mapped_column(Float)
    #: Audio/video streams as probed (``mediafleet.common.media.MediaProbe.streams``).
    streams: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    #: Path relative to the media directory.
    storage_path: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
    #: The file's own date and place, from the latest recorded result that declares facts
    #: (``TaskSpec.facts``: the metadata task). ``taken_at``: local time as recorded, naive.
    taken_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=False), index=True)
    place: Mapped[str | None] = mapped_column(String(200))
    country_code: Mapped[str | None] = mapped_column(String(2))


class MediaDuplicate(Base):
    """Two of one user's files that a fingerprint task's rule calls near-duplicates
    (``TaskSpec.likeness``), written by the recorder when the later of them is fingerprinted.
    Stored once per pair: ``media_id`` < ``other_id``."""

    __tablename__ = "media_duplicates"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    media_id: Mapped[str] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), primary_key=True)
    other_id: Mapped[str] = mapped_column(
        ForeignKey("media.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    task: Mapped[str] = mapped_column(String(32))
    similarity: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())


class MediaOwner(Base):
    """Who uploaded which media (access control: a user sees only media it uploaded)."""

    __tablename__ = "media_owners"

    media_id: Mapped[str] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    filename: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("user_id", "idempotency_key", name="uq_jobs_user_idempotency_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    media_id: Mapped[str] = mapped_column(ForeignKey("media.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[str] = mapped_column(String(8))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    #: POSTed the job summary when the job reaches a terminal state.
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    #: Serve identical earlier work from the result cache.
    use_cache: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The client's ``Idempotency-Key`` (unique per user) and the SHA-256 of the request it came
    #: with: a retry returns this job instead of making another.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    idempotency_hash: Mapped[str | None] = mapped_column(String(64))
    #: The creating request's W3C ``traceparent``/``tracestate`` and ``request_id``
    #: (:data:`mediafleet.common.tracing.Carrier`): job_manager and workers continue its trace.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSON)
    #: Where its tasks may run: ``auto``, ``gpu`` or ``cpu`` (mediafleet.common.schemas.DeviceChoice).
    device: Mapped[str] = mapped_column(String(8), default="auto", server_default="auto")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column()

    tasks: Mapped[list[Task]] = relationship(
        back_populates="job", order_by="Task.name", cascade="all, delete-orphan", lazy="selectin"
    )
    #: Joined into the job's own SELECT (one row at most): no extra round trip per read.
    webhook: Mapped[WebhookDelivery | None] = relationship(
        back_populates="job", cascade="all, delete-orphan", lazy="joined"
    )


class Task(Base):
    """One capability run of a job (``name`` is the task, e.g. ``ocr``)."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)
    #: Names of the tasks of the same job that must succeed first.
    depends_on: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: True when the result came from the result cache instead of a run.
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    #: RQ job id once enqueued (``task-<id>``); None while waiting for job_manager.
    queue_job_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    #: What the worker that produced ``result`` runs on (``cpu``, ``cuda``); None until then,
    #: for a cached result, and for results of workers older than 2026-12-07.
    device: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
    started_at: Mapped[dt.datetime | None] = mapped_column()
    finished_at: Mapped[dt.datetime | None] = mapped_column()

    job: Mapped[Job] = relationship(back_populates="tasks")
    #: Joined into the tasks' SELECT (one row at most per task).
    vector_sync: Mapped[VectorSync | None] = relationship(
        back_populates="task", cascade="all, delete-orphan", lazy="joined"
    )


class TextSegmentRow(Base):
    """A searchable piece of text from any capability's result (its contract's ``segments``).

    The latest result of a task for a media replaces that task's earlier segments.
    ``x1..y2`` (pixels) locate it in an image, ``start``/``end`` (seconds) in audio/video.
    """

    __tablename__ = "text_segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    media_id: Mapped[str] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    x1: Mapped[float | None] = mapped_column(Float)
    y1: Mapped[float | None] = mapped_column(Float)
    x2: Mapped[float | None] = mapped_column(Float)
    y2: Mapped[float | None] = mapped_column(Float)
    start: Mapped[float | None] = mapped_column(Float)
    end: Mapped[float | None] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float)


class CachedResult(Base):
    """A stored result of (media, task, effective options), by the model that made it.

    ``key`` is SHA-256 of ``media_id``, ``task`` and the canonical JSON of the effective
    options (request over the worker's advertised defaults).
    """

    __tablename__ = "result_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    media_id: Mapped[str] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(32))
    engine: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(128))
    result: Mapped[dict[str, Any]] = mapped_column()
    source_task_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())


class WebhookDelivery(Base):
    """The webhook of one job: its state and the log of every attempt (``attempts_log``)."""

    __tablename__ = "webhook_deliveries"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    #: pending | delivered | failed
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    attempts_log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())

    job: Mapped[Job] = relationship(back_populates="webhook")


class VectorSync(Base):
    """The embeddings of one succeeded task (its contract's ``vectors``) on their way to vector_db.

    job_manager creates it ``pending`` with the result and a thread writes the items
    (``<media_id>/<task>/<ref>`` of the job's owner), retrying with backoff while vector_db is
    unreachable: ``pending`` -> ``synced``, or ``failed`` after the last attempt.
    """

    __tablename__ = "vector_syncs"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    #: pending | synced | failed
    state: Mapped[str] = mapped_column(String(16), index=True)
    items: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
    synced_at: Mapped[dt.datetime | None] = mapped_column()

    task: Mapped[Task] = relationship(back_populates="vector_sync")


class Person(Base):
    """A person of one user: named (enrolled or named later) or an unnamed cluster of faces.

    Faces of one embedder only (``collection``): embeddings of different models never meet.
    """

    __tablename__ = "people"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    collection: Mapped[str] = mapped_column(String(128))
    #: None: an unnamed cluster
    name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    faces: Mapped[list[FaceRow]] = relationship(back_populates="person")


class FaceRow(Base):
    """One face of a task's result (its contract's ``faces``), kept for the job's owner.

    ``id`` is derived from the task and the face's ``ref`` (a retried or re-indexed task
    stores no duplicate); ``embedding`` holds the L2-normalised float32 vector's bytes.
    """

    __tablename__ = "faces"
    __table_args__ = (UniqueConstraint("task_id", "ref", name="uq_faces_task_ref"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    media_id: Mapped[str] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column("task_name", String(32))
    ref: Mapped[str] = mapped_column(String(64))
    collection: Mapped[str] = mapped_column(String(128), index=True)
    box: Mapped[list[float]] = mapped_column(JSON)
    score: Mapped[float] = mapped_column(Float)
    t: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True)
    #: cosine similarity to the person's closest face when it was assigned (1.0 when enrolled)
    similarity: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())

    person: Mapped[Person | None] = relationship(back_populates="faces")


class FaceCannotLink(Base):
    """Two of a user's faces that must never be in one person: the user said so ("this is not
    X" links the face with every face of X; a split links the faces split off with those left).
    Faces of one image or video frame are never grouped either, without a row here.
    Stored once per pair: ``face_id`` < ``other_id``."""

    __tablename__ = "face_cannot_links"

    face_id: Mapped[str] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True)
    other_id: Mapped[str] = mapped_column(
        ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
