"""Embedded mode: the same runners and the same SQL store in one process.

No Redis, no database server, no Docker: results go to a SQLite file
(``MEDIAFLEET_DATABASE_URL``, default ``sqlite:///var/mediafleet.db``) with an FTS5
index, so ``mediafleet search`` finds what ``mediafleet analyze`` found. Tasks run and are
recorded through the fleet's own pipeline (:mod:`mediafleet.common.pipeline`): the same
checks, frames for image tasks on videos, and the same recorder, so faces are kept and
grouped into people (``mediafleet people``) as a job of the fleet would. Vectors (CLIP
embeddings, the whole-media vectors any contract hands over) go to vector_db when
``MEDIAFLEET_VECTOR_DB_URL`` names one, else to the same FAISS store in a folder beside the
SQLite file (``var/mediafleet.vectors/``: :mod:`mediafleet.vector_db.local`), so
``mediafleet similar FILE`` and ``mediafleet search --semantic TEXT`` work without a server.
Every installed capability is available; its runner (and ML library) loads the first time
one of its tasks runs.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mediafleet.common import registry
from mediafleet.common.capability import MEDIA_REF, Capability, Runner, VectorItem
from mediafleet.common.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
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
    identities,
    migrate,
    session_factory,
)
from mediafleet.common.store.duplicates import duplicate_groups
from mediafleet.common.store.embeddings import embedding_tasks, media_embedding
from mediafleet.common.store.models import FaceRow, Person, utcnow
from mediafleet.common.store.search import search_text
from mediafleet.common.vectors import VectorDbClient, VectorIndex
from mediafleet.common.worker import task_readiness

LOCAL_USER = "local"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def local_vectors_dir(database_url: str) -> Path:
    """Where embedded mode keeps vectors without vector_db: beside a SQLite file
    (``sqlite:///var/mediafleet.db`` -> ``var/mediafleet.vectors``), else ``var/vectors``."""
    prefix = "sqlite:///"
    if database_url.startswith(prefix) and database_url[len(prefix) :] not in ("", ":memory:"):
        db = Path(database_url[len(prefix) :])
        return db.with_name(db.stem + ".vectors")
    return Path("var/vectors")


def open_vectors(core: CoreSettings, database_url: str) -> VectorIndex | None:
    """vector_db when ``MEDIAFLEET_VECTOR_DB_URL`` is set, else the store in a local folder
    (:func:`local_vectors_dir`); None when vector_db's package (FAISS) is not installed here."""
    from mediafleet.common.observability import internal_headers

    if core.vector_db_url:
        return VectorDbClient(
            core.vector_db_url, core.vector_timeout_s, core.vector_index, headers=internal_headers(core)
        )
    try:
        from mediafleet.vector_db.local import LocalVectors
    except ImportError:
        return None
    return LocalVectors(local_vectors_dir(database_url), index=core.vector_index)


class EmbeddedAnalyzer:
    def __init__(self, database_url: str | None = None):
        core = CoreSettings()
        url = database_url or core.database_url
        self.engine = create_db_engine(url)
        migrate(self.engine)
        self.sessions = session_factory(self.engine)
        self._runners: dict[str, Runner] = {}
        self._core = core
        self._url = url
        self._vectors: VectorIndex | None = None
        self._vectors_opened = False

    @property
    def vectors(self) -> VectorIndex | None:
        """Where vectors are written and searched (opened on first use; see :func:`open_vectors`)."""
        if not self._vectors_opened:
            self._vectors, self._vectors_opened = open_vectors(self._core, self._url), True
        return self._vectors

    def close(self) -> None:
        """Close the vector store's write-ahead logs and the database connections."""
        if self._vectors is not None:
            self._vectors.close()
        self.engine.dispose()

    def __enter__(self) -> EmbeddedAnalyzer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def runner(self, task: str) -> Runner:
        return self._runner_of(registry.capability_of(task))

    def _runner_of(self, cap: Capability) -> Runner:
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
            vectors: list[tuple[str, list[VectorItem]]] = []
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
                derived = record(session, row)
                if derived is not None and derived.vectors:
                    vectors.append((task, derived.vectors))
        item: dict[str, Any] = {"file": str(path), "media": media, "results": results}
        if vectors:
            # after the results are stored: a vector store that fails loses no result
            store = self.vectors
            if store is None:
                item["notes"] = ["vectors not kept: vector_db's package (FAISS) is not installed here"]
            else:
                for task, items in vectors:
                    store.upsert(str(uid), media_id, task, items)
        if not_ready or no_stream:
            item["skipped"] = {**not_ready, **no_stream}
        return item

    def similar(self, path: Path, limit: int = 20) -> tuple[str, list[dict[str, Any]]]:
        """The other analysed files nearest to ``path`` by their whole-media embedding, best
        first: the embedding's collection and
        ``[{"media_id", "filename", "path", "similarity" (cosine, [-1, 1]), "task"}]``.

        Raises Conflict (``no_embedding``: ``path`` was not analysed by a task that embeds
        media; the message names those tasks), ServiceUnavailable (no vector store here),
        OSError (``path`` unreadable).
        """
        media_id = sha256_file(Path(path))
        embedders = embedding_tasks()
        with self.sessions() as session:
            uid = self._local_user_id(session)
            item = media_embedding(session, user_id=uid, media_id=media_id, tasks=embedders)
        if item is None:
            raise Conflict(
                f"{Path(path).name} has no embedding yet: analyze it with one of "
                f"{', '.join(embedders) or 'no installed task'} first (--tasks)",
                code="no_embedding",
            )
        return item.collection, self._nearest(uid, item, limit, exclude=media_id)

    def semantic_search(self, query: str, limit: int = 20) -> tuple[str, list[dict[str, Any]]]:
        """``query`` embedded by the installed capability answering ``semantic_search``
        (CLIP), compared with the analysed files' embeddings of the same model: the
        collection and the hits, as :meth:`similar`.

        Raises ServiceUnavailable (no capability answers, its model is missing, no vector
        store here), BadRequest (an empty or over-long query).
        """
        from mediafleet.common.capability import TextQuery

        cap, spec = registry.find_query("semantic_search")
        runner = self._runner_of(cap)
        # the query embeds with the model of the capability's embedding task (clip): its readiness
        for task in (t for t in cap.task_names if t in embedding_tasks()):
            problem = task_readiness(runner, task)
            if problem is not None:
                raise ServiceUnavailable(
                    f"{cap.name} cannot embed text here: {problem.message}", code="query_unavailable"
                )
        answer = runner.query(spec.name, TextQuery.model_validate({"text": query}))
        if not isinstance(answer, VectorItem):
            raise ServiceUnavailable(
                f"{cap.name} answered semantic_search without a vector", code="query_failed"
            )
        with self.sessions() as session:
            uid = self._local_user_id(session)
        return answer.collection, self._nearest(uid, answer, limit, exclude=None)

    def _nearest(self, uid: int, item: VectorItem, limit: int, exclude: str | None) -> list[dict[str, Any]]:
        store = self.vectors
        if store is None:
            raise ServiceUnavailable(
                "no vector store here: install vector_db's package (uv sync) or set MEDIAFLEET_VECTOR_DB_URL",
                code="vector_db_unavailable",
            )
        found = store.search(item.collection, str(uid), item.vector, limit + 1, {"ref": MEDIA_REF})
        found = [h for h in found if h["payload"].get("media_id") != exclude][:limit]
        out = []
        with self.sessions() as session:
            for hit in found:
                media_id = hit["payload"]["media_id"]
                owner = session.get(MediaOwner, (media_id, uid))
                media = session.get(Media, media_id)
                if owner is None or media is None:
                    continue
                out.append(
                    {
                        "media_id": media_id,
                        "filename": owner.filename,
                        "path": media.storage_path,
                        "similarity": round(float(hit["score"]), 6),
                        "task": hit["payload"].get("task", ""),
                    }
                )
        return out

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
                faces = session.execute(
                    select(FaceRow.id, MediaOwner.filename)
                    .join(MediaOwner, FaceRow.media_id == MediaOwner.media_id)
                    .where(FaceRow.person_id == pid, MediaOwner.user_id == uid)
                    .order_by(MediaOwner.filename, FaceRow.id)
                ).all()
                out.append(
                    {
                        "id": pid, "name": name, "collection": collection, "faces": count,
                        "files": sorted({f for _, f in faces if f}),
                        "face_ids": [{"face_id": fid, "file": f} for fid, f in faces],
                    }
                )  # fmt: skip
            return out

    def not_this_person(self, face_id: str) -> dict[str, Any]:
        """ "This is not X" for one of the store's faces (as the fleet's
        ``POST /v1/faces/{id}/not-this-person``): ``{"face_id", "person_id"}`` of its new person.
        Raises NotFound for an unknown face, Conflict for a face in no person."""
        with self.sessions() as session:
            uid = self._local_user_id(session)
            face = session.get(FaceRow, face_id)
            if face is None or face.user_id != uid:
                raise NotFound(f"face {face_id} not found", code="face_not_found")
            try:
                person = identities.not_person(session, face)
            except ValueError as exc:
                raise Conflict(str(exc), code="no_person") from exc
            session.commit()
            return {"face_id": face_id, "person_id": person.id}

    def split(self, person_id: str, face_ids: list[str], name: str | None = None) -> dict[str, Any]:
        """Split the chosen faces off a person (as ``POST /v1/people/{id}/split``): ``{"id",
        "name", "faces"}`` of the new person. Raises NotFound, or BadRequest for none or all
        of its faces."""
        with self.sessions() as session:
            uid = self._local_user_id(session)
            person = session.get(Person, person_id)
            if person is None or person.user_id != uid:
                raise NotFound(f"person {person_id} not found", code="person_not_found")
            try:
                new = identities.split(session, person, face_ids, name)
            except LookupError as exc:
                raise NotFound(
                    f"face {exc.args[0]} is not a face of this person", code="face_not_found"
                ) from exc
            except ValueError as exc:
                raise BadRequest(str(exc), code="invalid_split") from exc
            session.commit()
            return {"id": new.id, "name": new.name, "faces": len(new.faces)}

    def duplicates(self) -> list[dict[str, Any]]:
        """The analysed files grouped as near-duplicates (``analyze`` with the ``fingerprint``
        task; as the fleet's ``GET /v1/duplicates``), the largest group first:
        ``{"files": [{"media_id", "filename", "path"}], "links": [{"a", "b", "similarity",
        "method", "detail"}]}`` with ``a``/``b`` filenames."""
        with self.sessions() as session:
            uid = self._local_user_id(session)
            groups = duplicate_groups(session, uid)
            ids = {m for g in groups for m in g.media_ids}
            rows = session.execute(
                select(Media.id, MediaOwner.filename, Media.storage_path)
                .join(MediaOwner, MediaOwner.media_id == Media.id)
                .where(MediaOwner.user_id == uid, Media.id.in_(list(ids)))
            ).all()
            named = {mid: (name or mid[:12], path) for mid, name, path in rows}
            return [
                {
                    "files": [
                        {"media_id": m, "filename": named[m][0], "path": named[m][1]}
                        for m in g.media_ids
                        if m in named
                    ],
                    "links": [
                        {
                            "a": named.get(p.media_id, (p.media_id,))[0],
                            "b": named.get(p.other_id, (p.other_id,))[0],
                            "similarity": p.similarity,
                            "method": p.method,
                            "detail": p.detail,
                        }
                        for p in g.pairs
                    ],
                }
                for g in groups
            ]

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        with self.sessions() as session:
            hits = search_text(session, query, user_id=None, limit=limit)
            for hit in hits:
                owner = session.scalar(select(MediaOwner).where(MediaOwner.media_id == hit["media_id"]))
                media = session.get(Media, hit["media_id"])
                hit["filename"] = owner.filename if owner else None
                hit["path"] = media.storage_path if media else None
            return hits
