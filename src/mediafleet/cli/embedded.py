"""Embedded mode: the same runners and the same SQL store in one process.

No Redis, no database server, no Docker: results go to a SQLite file
(``MEDIAFLEET_DATABASE_URL``, default ``sqlite:///var/mediafleet.db``) with an FTS5
index, so ``mediafleet search`` finds what ``mediafleet analyze`` found. Tasks run and are
recorded through the fleet's own pipeline (:mod:`mediafleet.common.pipeline`): the same
checks, frames for image tasks on videos, and the same recorder, so faces are kept and
grouped into people (``mediafleet people``) as a job of the fleet would. Vectors (CLIP
embeddings) are not kept here: there is no local vector store yet. Every installed
capability is available; its runner (and ML library) loads the first time one of its
tasks runs.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mediafleet.common import registry
from mediafleet.common.capability import Runner
from mediafleet.common.media import probe_media
from mediafleet.common.pipeline import run as pipeline
from mediafleet.common.pipeline.record import record
from mediafleet.common.schemas import JobStatus
from mediafleet.common.settings import CoreSettings
from mediafleet.common.store import (
    Job,
    Media,
    MediaOwner,
    Task,
    User,
    create_db_engine,
    migrate,
    session_factory,
)
from mediafleet.common.store.models import FaceRow, Person, utcnow
from mediafleet.common.store.search import search_text
from mediafleet.common.worker import task_readiness

LOCAL_USER = "local"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class EmbeddedAnalyzer:
    def __init__(self, database_url: str | None = None):
        self.engine = create_db_engine(database_url or CoreSettings().database_url)
        migrate(self.engine)
        self.sessions = session_factory(self.engine)
        self._runners: dict[str, Runner] = {}

    def runner(self, task: str) -> Runner:
        cap = registry.capability_of(task)
        if cap.name not in self._runners:
            self._runners[cap.name] = cap.build_runner()
        return self._runners[cap.name]

    def ready_defaults(self, kind: str) -> tuple[list[str], dict[str, str]]:
        """The default tasks for media of ``kind`` that can run here now, and why the others
        cannot (task -> reason: its engine is not installed in this environment, or its model
        is not provisioned, with the command that provisions it)."""
        ready: list[str] = []
        skipped: dict[str, str] = {}
        for task in registry.default_tasks(kind):
            try:
                problem = task_readiness(self.runner(task), task)
            except ImportError as exc:  # the capability's engine libraries are not in this environment
                skipped[task] = f"not installed here ({exc.name or exc})"
                continue
            if problem is None:
                ready.append(task)
            else:
                skipped[task] = problem.message
        return ready, skipped

    def _local_user_id(self, session: Session) -> int:
        user: User | None = session.scalar(select(User).where(User.username == LOCAL_USER))
        if user is None:
            user = User(
                username=LOCAL_USER,
                password_hash="!",
                is_admin=False,
                must_change_password=False,
                token_version=0,
            )
            session.add(user)
            session.flush()
        return user.id

    def analyze(
        self, path: Path, tasks: list[str] | None, options: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        """Probe, run ``tasks`` (dependencies first; None: the defaults for the media's kind that
        can run here, :meth:`ready_defaults`) and store the results. The item's ``skipped``
        says which tasks did not run and why.

        Raises InvalidMedia, UnsupportedMediaType, BadRequest (bad options, media kind).
        """
        path = Path(path)
        probe = probe_media(path)
        media_id = sha256_file(path)
        media = {
            "media_id": media_id,
            "kind": probe.kind,
            "mime": probe.mime,
            "size_bytes": path.stat().st_size,
            "width": probe.width,
            "height": probe.height,
            "duration_s": probe.duration_s,
        }
        known = registry.tasks()
        results: dict[str, Any] = {}
        not_ready: dict[str, str] = {}
        if tasks is None:
            tasks, not_ready = self.ready_defaults(probe.kind)
            if not tasks:
                from mediafleet.common.errors import ValidationFailed

                raise ValidationFailed(
                    f"no default task for {probe.kind} can run here: "
                    + "; ".join(f"{t}: {why}" for t, why in not_ready.items()),
                    code="no_task_ready",
                )
        # as the gateway: run what the media allows (a video without audio: no transcribe)
        planned, no_stream = registry.plan_for_media(tasks, probe.kind, probe.streams, path.name)
        for task in planned:
            cap, spec = known[task]
            prepared = pipeline.prepare(cap, task, options.get(task))
            inputs = {dep: results[dep] for dep in registry.dependencies_in(spec, planned) if dep in results}
            runner = self.runner(task)
            if spec.check is not None:  # options no engine here serves, as the gateway refuses them
                spec.check(prepared.options, runner.advertise(task).get("default_options") or {})
            result = pipeline.execute(
                prepared, runner, path, media_kind=probe.kind, inputs=inputs, duration_s=probe.duration_s
            )
            results[task] = result.model_dump(mode="json")
        with self.sessions.begin() as session:
            if session.get(Media, media_id) is None:
                session.add(
                    Media(
                        id=media_id,
                        kind=probe.kind,
                        mime=probe.mime,
                        size_bytes=media["size_bytes"],
                        width=probe.width,
                        height=probe.height,
                        duration_s=probe.duration_s,
                        streams=probe.streams or None,
                        storage_path=str(path.resolve()),
                    )
                )
            uid = self._local_user_id(session)
            if session.get(MediaOwner, (media_id, uid)) is None:
                session.add(MediaOwner(media_id=media_id, user_id=uid, filename=path.name))
            session.flush()
            # recorded as the fleet records a job: one job, a row per task, the same recorder
            job = Job(
                id=str(uuid.uuid4()),
                user_id=uid,
                media_id=media_id,
                status=JobStatus.succeeded,
                priority="normal",
                options={t: options[t] for t in planned if t in options},
                finished_at=utcnow(),
            )
            session.add(job)
            for task, raw in results.items():
                row = Task(
                    id=str(uuid.uuid4()),
                    name=task,
                    status=JobStatus.succeeded,
                    depends_on=list(known[task][1].depends_on),
                    result=raw,
                    finished_at=utcnow(),
                )
                job.tasks.append(row)
                session.flush()
                record(session, row)
        item: dict[str, Any] = {"file": str(path), "media": media, "results": results}
        if not_ready or no_stream:
            item["skipped"] = {**not_ready, **no_stream}
        return item

    def people(self) -> list[dict[str, Any]]:
        """The people the embedded store grouped the faces of ``analyze`` into (as the fleet's
        ``GET /v1/people``: one row per person, named or an unnamed cluster), most faces
        first: ``{"id", "name", "collection", "faces", "files"}``."""
        with self.sessions() as session:
            uid = self._local_user_id(session)
            rows = session.execute(
                select(Person.id, Person.name, Person.collection, func.count(FaceRow.id))
                .join(FaceRow, FaceRow.person_id == Person.id)
                .where(Person.user_id == uid)
                .group_by(Person.id, Person.name, Person.collection)
                .order_by(func.count(FaceRow.id).desc(), Person.created_at)
            ).all()
            out = []
            for pid, name, collection, count in rows:
                files = session.scalars(
                    select(MediaOwner.filename)
                    .join(FaceRow, FaceRow.media_id == MediaOwner.media_id)
                    .where(FaceRow.person_id == pid, MediaOwner.user_id == uid)
                    .distinct()
                    .order_by(MediaOwner.filename)
                ).all()
                out.append(
                    {"id": pid, "name": name, "collection": collection, "faces": count, "files": list(files)}
                )
            return out

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        with self.sessions() as session:
            hits = search_text(session, query, user_id=None, limit=limit)
            for hit in hits:
                owner = session.scalar(select(MediaOwner).where(MediaOwner.media_id == hit["media_id"]))
                media = session.get(Media, hit["media_id"])
                hit["filename"] = owner.filename if owner else None
                hit["path"] = media.storage_path if media else None
            return hits
