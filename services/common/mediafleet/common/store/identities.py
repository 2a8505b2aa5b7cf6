"""People and faces of each user: storing the faces a result holds, assigning them to people,
enrolment, naming, merging, forgetting and re-clustering.

Algorithm (incremental nearest-neighbour "leader" clustering, per user and per embedder
collection): a new face joins the person whose closest face has the highest cosine
similarity, when that similarity is >= the face's ``threshold`` (the embedder's, from its
contract); otherwise it starts a new unnamed person (a cluster). Faces of one task are
assigned in the order of the result. Named people keep their ids and faces whatever
happens to clusters: :func:`recluster` rebuilds only the unnamed ones.

Similarities are computed in numpy over the user's stored embeddings of the collection
(exact; ~1 ms per 10k faces of 128 floats): assignments happen in job_manager's indexing
transaction and must not depend on vector_db being reachable. vector_db holds the same
embeddings for "find this face everywhere".
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mediafleet.common import registry
from mediafleet.common.capability import FaceItem
from mediafleet.common.store.models import CachedResult, FaceRow, Person, Task

#: uuid5 namespace of face ids (a face id is a function of its task and ref).
FACE_NAMESPACE = uuid.UUID("9b7f3c1e-2d4a-5e6f-8a9b-0c1d2e3f4a5b")


def face_id(user_id: int, media_id: str, task: str, collection: str, ref: str) -> str:
    """The id of a face slot: one per user, media, task, embedder collection and ref.

    The same key as the face's vector_db item (``<media_id>/<task>/<ref>`` of the owner, in
    the collection): a retried task, or a later job of the same task on the same media,
    updates the slot instead of adding a duplicate, and keeps its person.
    """
    return str(uuid.uuid5(FACE_NAMESPACE, f"{user_id}/{media_id}/{task}/{collection}/{ref}"))


def vector_of(row: FaceRow) -> np.ndarray:
    """The stored embedding, (D,) float32."""
    return np.frombuffer(row.embedding, dtype=np.float32)


class _Gallery:
    """The user's assigned faces of one collection as a matrix, grown as faces are assigned."""

    def __init__(self, session: Session, user_id: int, collection: str, exclude: Iterable[str] = ()):
        skip = set(exclude)
        rows = session.execute(
            select(FaceRow.id, FaceRow.embedding, FaceRow.person_id).where(
                FaceRow.user_id == user_id, FaceRow.collection == collection, FaceRow.person_id.is_not(None)
            )
        ).all()
        rows = [r for r in rows if r.id not in skip and r.embedding]
        self.people: list[str] = [r.person_id for r in rows]
        self.matrix = (
            np.stack([np.frombuffer(r.embedding, dtype=np.float32) for r in rows])
            if rows
            else np.zeros((0, 0), dtype=np.float32)
        )

    def best(self, vector: np.ndarray) -> tuple[str | None, float]:
        """(person id, similarity) of the closest face, (None, -1) when empty."""
        if not self.people or self.matrix.shape[1] != vector.shape[0]:
            return None, -1.0
        sims = self.matrix @ vector
        i = int(np.argmax(sims))
        return self.people[i], float(sims[i])

    def add(self, vector: np.ndarray, person_id: str) -> None:
        self.matrix = vector[None] if not self.people else np.vstack([self.matrix, vector[None]])
        self.people.append(person_id)


def _new_person(session: Session, user_id: int, collection: str, name: str | None = None) -> Person:
    person = Person(id=str(uuid.uuid4()), user_id=user_id, collection=collection, name=name)
    session.add(person)
    return person


def store_faces(
    session: Session, task: Task, user_id: int, media_id: str, items: Sequence[FaceItem]
) -> list[FaceRow]:
    """Store the faces of a succeeded task for ``user_id`` and assign each to a person.

    Idempotent (:func:`face_id`): a face slot already stored takes the new box, score and
    embedding and keeps its person. Returns the rows of ``items`` in order. The caller commits.
    """
    ids = [face_id(user_id, media_id, task.name, item.collection, item.ref) for item in items]
    existing = {r.id: r for r in session.scalars(select(FaceRow).where(FaceRow.id.in_(ids)))} if ids else {}
    galleries: dict[str, _Gallery] = {}
    rows = []
    for fid, item in zip(ids, items, strict=True):
        vector = np.asarray(item.vector, dtype=np.float32)
        if fid in existing:
            row = existing[fid]
            row.task_id, row.box, row.score, row.t = task.id, [float(v) for v in item.box], item.score, item.t
            row.embedding = vector.tobytes()
            rows.append(row)
            continue
        gallery = galleries.get(item.collection)
        if gallery is None:
            gallery = galleries[item.collection] = _Gallery(session, user_id, item.collection)
        person_id, sim = gallery.best(vector)
        if person_id is None or sim < item.threshold:
            person_id, sim = _new_person(session, user_id, item.collection).id, 1.0
            session.flush()
        row = FaceRow(
            id=fid, user_id=user_id, media_id=media_id, task_id=task.id, task=task.name, ref=item.ref,
            collection=item.collection, box=[float(v) for v in item.box], score=item.score, t=item.t,
            threshold=item.threshold, embedding=vector.tobytes(), person_id=person_id, similarity=round(sim, 6),
        )  # fmt: skip
        session.add(row)
        gallery.add(vector, person_id)
        rows.append(row)
    session.flush()
    return rows


def own_faces(session: Session, user_id: int, ids: Sequence[str]) -> list[FaceRow]:
    """The user's faces of ``ids`` in that order; LookupError naming the first that is not theirs."""
    rows = {
        r.id: r
        for r in session.scalars(select(FaceRow).where(FaceRow.id.in_(ids), FaceRow.user_id == user_id))
    }
    for fid in ids:
        if fid not in rows:
            raise LookupError(fid)
    return [rows[fid] for fid in ids]


def _drop_empty_clusters(session: Session, person_ids: Iterable[str]) -> None:
    session.flush()
    for pid in set(person_ids):
        person = session.get(Person, pid)
        if person is not None and person.name is None and not _count(session, pid):
            session.delete(person)


def _count(session: Session, person_id: str) -> int:
    return (
        session.scalar(select(func.count()).select_from(FaceRow).where(FaceRow.person_id == person_id)) or 0
    )


def absorb(session: Session, person: Person) -> int:
    """Move the user's faces in unnamed clusters whose closest face of ``person`` is >= their
    threshold into ``person``; returns how many moved. Empty clusters are removed."""
    own = [r for r in person.faces if r.embedding]
    if not own:
        return 0
    matrix = np.stack([vector_of(r) for r in own])
    candidates = session.scalars(
        select(FaceRow)
        .join(Person, FaceRow.person_id == Person.id)
        .where(
            FaceRow.user_id == person.user_id,
            FaceRow.collection == person.collection,
            Person.name.is_(None),
            Person.id != person.id,
        )
    ).all()
    moved, emptied = 0, set[str]()
    for row in candidates:
        vec = vector_of(row)
        if vec.shape[0] != matrix.shape[1]:
            continue
        sim = float(np.max(matrix @ vec))
        if sim >= row.threshold:
            if row.person_id is not None:
                emptied.add(row.person_id)
            row.person, row.similarity = person, round(sim, 6)
            moved += 1
    _drop_empty_clusters(session, emptied)
    return moved


def enrol(session: Session, user_id: int, name: str, face_ids: Sequence[str]) -> Person:
    """A new named person from the user's faces (LookupError: a face that is not the user's;
    ValueError: faces of different embedders). Unnamed faces that match join it (:func:`absorb`)."""
    faces = own_faces(session, user_id, face_ids)
    collections = {f.collection for f in faces}
    if len(collections) != 1:
        raise ValueError(
            f"the faces come from different embedders ({sorted(collections)}); enrol one at a time"
        )
    person = _new_person(session, user_id, collections.pop(), name)
    previous = {f.person_id for f in faces if f.person_id}
    for face in faces:
        face.person, face.similarity = person, 1.0
    session.flush()
    _drop_empty_clusters(session, previous)
    absorb(session, person)
    session.flush()
    return person


def merge(session: Session, into: Person, others: Sequence[Person]) -> Person:
    """Move every face of ``others`` (same user and collection) into ``into`` and delete them.

    ``into`` keeps its name, or takes the first name among ``others`` when it has none.
    ValueError for people of another embedder or ``into`` itself.
    """
    for other in others:
        if other.id == into.id:
            raise ValueError("a person cannot be merged into itself")
        if other.collection != into.collection:
            raise ValueError(f"person {other.id} has faces of another embedder ({other.collection})")
    for other in others:
        if into.name is None and other.name is not None:
            into.name = other.name
        for face in list(other.faces):
            face.person = into
        session.flush()
        session.delete(other)
    session.flush()
    return into


def forget(session: Session, person: Person) -> list[FaceRow]:
    """Delete a person and every face of theirs, and remove those faces' embeddings from the
    stored task results and the result cache of their media (so no later job brings them
    back). Returns the deleted rows (for vector_db). The caller commits."""
    faces = list(person.faces)
    by_task: dict[str, set[str]] = {}
    for face in faces:
        by_task.setdefault(face.task_id, set()).add(face.ref)
    for task_id, refs in by_task.items():
        task = session.get(Task, task_id)
        if task is not None and task.result:
            task.result = _scrub(task.result, refs)
            session.execute(
                delete(CachedResult).where(
                    CachedResult.media_id == task.job.media_id, CachedResult.task == task.name
                )
            )
    for face in faces:
        session.delete(face)
    session.delete(person)
    session.flush()
    return faces


def _scrub(result: dict[str, Any], refs: set[str]) -> dict[str, Any]:
    """A copy of a result whose faces named in ``refs`` have an empty embedding."""
    out = copy.deepcopy(result)
    for ref in refs:
        target = locate(out, ref)
        if target is not None:
            target["embedding"] = []
    return out


_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")


def locate(result: dict[str, Any], ref: str) -> dict[str, Any] | None:
    """The object a ref points at in a result: ``faces[3]``, or on a video
    ``frames[2].result.faces[0]`` (dot-separated keys, each with an optional list index)."""
    cur: object = result
    for part in ref.split("."):
        m = _PART.match(part)
        if m is None or not isinstance(cur, dict):
            return None
        cur = cur.get(m.group(1))
        if m.group(2) is not None:
            i = int(m.group(2))
            if not isinstance(cur, list) or i >= len(cur):
                return None
            cur = cur[i]
    return cur if isinstance(cur, dict) else None


def recluster(session: Session, user_id: int, collection: str) -> int:
    """Rebuild the user's unnamed clusters of ``collection`` from scratch (oldest face first),
    leaving named people and their faces untouched. Returns the number of clusters."""
    faces = session.scalars(
        select(FaceRow)
        .outerjoin(Person, FaceRow.person_id == Person.id)
        .where(FaceRow.user_id == user_id, FaceRow.collection == collection, Person.name.is_(None))
        .order_by(FaceRow.created_at, FaceRow.id)
    ).all()
    old = {f.person_id for f in faces if f.person_id}
    for face in faces:
        face.person_id = None
    session.flush()
    for pid in old:
        person = session.get(Person, pid)
        if person is not None:
            session.delete(person)
    session.flush()
    gallery = _Gallery(session, user_id, collection)
    clusters = 0
    for face in faces:
        vec = vector_of(face)
        if not vec.size:
            continue
        person_id, sim = gallery.best(vec)
        if person_id is None or sim < face.threshold:
            person_id, sim = _new_person(session, user_id, collection).id, 1.0
            clusters += 1
            session.flush()
        face.person_id, face.similarity = person_id, round(sim, 6)
        gallery.add(vec, person_id)
    session.flush()
    return clusters


def annotate(session: Session, task: Task) -> dict[str, Any] | None:
    """A task's result with the current identity of each stored face filled in.

    A :class:`FaceItem`'s ``ref`` (``faces[3]``, :func:`locate`) points at an object of the result; its
    ``face_id``, ``person`` (``{"id", "name", "similarity"}`` of a named person, else None)
    and ``cluster_id`` (the person, named or not) are set from the faces table, so a
    renamed or merged person shows on every result at once. Results without stored faces
    come back unchanged.
    """
    result = task.result
    if not result:
        return result
    known = registry.tasks().get(task.name)
    if known is None:
        return result
    spec = known[1]
    items = spec.derive(result).faces
    if not items:
        return result
    job = task.job
    ids = [face_id(job.user_id, job.media_id, task.name, item.collection, item.ref) for item in items]
    rows = session.execute(
        select(FaceRow.ref, FaceRow.id, FaceRow.person_id, FaceRow.similarity, Person.name)
        .outerjoin(Person, FaceRow.person_id == Person.id)
        .where(FaceRow.id.in_(ids))
    ).all()
    if not rows:
        return result
    out = copy.deepcopy(result)
    for ref, fid, person_id, similarity, name in rows:
        target = locate(out, ref)
        if target is not None:
            target["face_id"] = fid
            target["cluster_id"] = person_id
            target["person"] = (
                {"id": person_id, "name": name, "similarity": similarity} if person_id and name else None
            )
    return out
