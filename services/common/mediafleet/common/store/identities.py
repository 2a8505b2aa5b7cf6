"""People and faces of each user: storing the faces a result holds, assigning them to people,
enrolment, naming, merging, forgetting and re-clustering.

Algorithm (incremental nearest-neighbour "leader" clustering, per user and per embedder
collection): a new face joins the person whose closest face has the highest cosine
similarity, when that similarity is >= the face's ``threshold`` (the embedder's, from its
contract); otherwise it starts a new unnamed person (a cluster). Faces of one task are
assigned in the order of the result. Named people keep their ids and faces whatever
happens to clusters: :func:`recluster` rebuilds only the unnamed ones.

Constraints (cannot-link): two faces of one image, or of one video frame, are never in one
person (two people in one photo are two people); neither are two faces the user separated
("this is not X" links the face with X's faces, a split links the faces split off with those
left: :class:`~mediafleet.common.store.models.FaceCannotLink`). Assignment, :func:`absorb`
and :func:`recluster` skip the people a face cannot join; :func:`merge` and :func:`enrol` are
the user's word and lift the links among the faces they bring together.

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
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from mediafleet.common import registry
from mediafleet.common.capability import FaceItem
from mediafleet.common.store.models import CachedResult, FaceCannotLink, FaceRow, Person, Task

#: At most this many faces of a person are linked with a face the user says is not them, and
#: at most this many pairs are written by one split (a split of 100 faces off 100: 10,000).
MAX_LINKED_FACES = 500
MAX_SPLIT_PAIRS = 10_000

#: A face's frame: its media and its time in a video (None for an image), to 1 ms.
Frame = tuple[str, float | None]


def frame_of(media_id: str, t: float | None) -> Frame:
    return media_id, None if t is None else round(t, 3)


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

    def best(self, vector: np.ndarray, blocked: set[str] | None = None) -> tuple[str | None, float]:
        """(person id, similarity) of the closest face whose person is not in ``blocked``,
        (None, -1) when there is none."""
        if not self.people or self.matrix.shape[1] != vector.shape[0]:
            return None, -1.0
        sims = self.matrix @ vector
        if blocked:
            sims = np.where(
                np.fromiter((p in blocked for p in self.people), bool, len(self.people)), -np.inf, sims
            )
        i = int(np.argmax(sims))
        if not np.isfinite(sims[i]):
            return None, -1.0
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
    # people already in each frame of this media (earlier results, then this one's faces)
    in_frame: dict[tuple[str, Frame], set[str]] = {}
    for oid, collection, at, pid in session.execute(
        select(FaceRow.id, FaceRow.collection, FaceRow.t, FaceRow.person_id).where(
            FaceRow.user_id == user_id, FaceRow.media_id == media_id, FaceRow.person_id.is_not(None)
        )
    ).all():
        if oid not in ids and pid is not None:
            in_frame.setdefault((collection, frame_of(media_id, at)), set()).add(pid)
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
        taken = in_frame.setdefault((item.collection, frame_of(media_id, item.t)), set())
        person_id, sim = gallery.best(vector, taken)
        if person_id is None or sim < item.threshold:
            person_id, sim = _new_person(session, user_id, item.collection).id, 1.0
            session.flush()
        taken.add(person_id)
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
    frames = {frame_of(r.media_id, r.t) for r in person.faces}
    linked = _linked(session, [r.id for r in person.faces])
    moved, emptied = 0, set[str]()
    for row in candidates:
        vec = vector_of(row)
        if vec.shape[0] != matrix.shape[1] or frame_of(row.media_id, row.t) in frames or row.id in linked:
            continue
        sim = float(np.max(matrix @ vec))
        if sim >= row.threshold:
            if row.person_id is not None:
                emptied.add(row.person_id)
            row.person, row.similarity = person, round(sim, 6)
            frames.add(frame_of(row.media_id, row.t))
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
    _unlink_among(session, [f.id for f in faces])  # the user says they are one person
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
    _unlink_among(session, [f.id for p in (into, *others) for f in p.faces])  # the user's word
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
    # named people's faces stay where they are and block their frames and links too
    person_of: dict[str, str] = {}
    in_frame: dict[Frame, set[str]] = {}
    for fid, media_id, t, owner in session.execute(
        select(FaceRow.id, FaceRow.media_id, FaceRow.t, FaceRow.person_id).where(
            FaceRow.user_id == user_id, FaceRow.collection == collection, FaceRow.person_id.is_not(None)
        )
    ).all():
        if owner is not None:
            person_of[fid] = owner
            in_frame.setdefault(frame_of(media_id, t), set()).add(owner)
    links = _links_of_user(session, user_id)
    clusters = 0
    for face in faces:
        vec = vector_of(face)
        if not vec.size:
            continue
        taken = in_frame.setdefault(frame_of(face.media_id, face.t), set())
        blocked = taken | {person_of[o] for o in links.get(face.id, ()) if o in person_of}
        person_id, sim = gallery.best(vec, blocked)
        if person_id is None or sim < face.threshold:
            person_id, sim = _new_person(session, user_id, collection).id, 1.0
            clusters += 1
            session.flush()
        face.person_id, face.similarity = person_id, round(sim, 6)
        person_of[face.id] = person_id
        taken.add(person_id)
        gallery.add(vec, person_id)
    session.flush()
    return clusters


def _linked(session: Session, face_ids: Sequence[str]) -> set[str]:
    """The faces cannot-linked with any of ``face_ids``."""
    if not face_ids:
        return set()
    ids = list(face_ids)
    out: set[str] = set()
    for a, b in session.execute(
        select(FaceCannotLink.face_id, FaceCannotLink.other_id).where(
            or_(FaceCannotLink.face_id.in_(ids), FaceCannotLink.other_id.in_(ids))
        )
    ).all():
        out.update((a, b))
    return out - set(ids)


def _links_of_user(session: Session, user_id: int) -> dict[str, set[str]]:
    """face id -> the faces it is cannot-linked with, for all of the user's links."""
    out: dict[str, set[str]] = {}
    for a, b in session.execute(
        select(FaceCannotLink.face_id, FaceCannotLink.other_id).where(FaceCannotLink.user_id == user_id)
    ).all():
        out.setdefault(a, set()).add(b)
        out.setdefault(b, set()).add(a)
    return out


def _link(session: Session, user_id: int, pairs: Iterable[tuple[str, str]]) -> int:
    """Record cannot-links for ``pairs`` (each once, ``face_id`` < ``other_id``); returns how many were new."""
    wanted = {(min(a, b), max(a, b)) for a, b in pairs if a != b}
    if not wanted:
        return 0
    ids = list({x for pair in wanted for x in pair})
    existing = set(
        session.execute(
            select(FaceCannotLink.face_id, FaceCannotLink.other_id).where(
                FaceCannotLink.face_id.in_(ids), FaceCannotLink.other_id.in_(ids)
            )
        ).all()
    )
    new = sorted(wanted - {(a, b) for a, b in existing})
    session.add_all(FaceCannotLink(face_id=a, other_id=b, user_id=user_id) for a, b in new)
    return len(new)


def _unlink_among(session: Session, face_ids: Sequence[str]) -> None:
    """Lift the cannot-links between any two of ``face_ids`` (the user put them together)."""
    ids = list(face_ids)
    if len(ids) > 1:
        session.execute(
            delete(FaceCannotLink).where(FaceCannotLink.face_id.in_(ids), FaceCannotLink.other_id.in_(ids))
        )


def not_person(session: Session, face: FaceRow) -> Person:
    """The user says ``face`` is not the person it is in: it is cannot-linked with that person's
    faces (at most :data:`MAX_LINKED_FACES`, the most similar first), so no later assignment,
    absorb or recluster puts it back, and it moves to the closest other person it may join
    (at or above its threshold) or to a new unnamed cluster. Returns its new person; a cluster
    left empty is removed. ValueError when the face is in no person. The caller commits."""
    old = face.person
    if old is None:
        raise ValueError("the face is in no person")
    vec = vector_of(face)
    others = [f for f in old.faces if f.id != face.id and f.embedding]
    others.sort(key=lambda f: -float(vector_of(f) @ vec) if vector_of(f).shape == vec.shape else 0.0)
    _link(session, face.user_id, [(face.id, f.id) for f in others[:MAX_LINKED_FACES]])
    blocked = {old.id}
    blocked |= set(
        session.scalars(
            select(FaceRow.person_id).where(
                FaceRow.user_id == face.user_id, FaceRow.media_id == face.media_id, FaceRow.id != face.id,
                FaceRow.person_id.is_not(None),
                FaceRow.t.is_(None) if face.t is None else FaceRow.t == face.t,
            )
        )
    )  # fmt: skip
    linked = _linked(session, [face.id])
    if linked:
        blocked |= set(
            session.scalars(
                select(FaceRow.person_id).where(FaceRow.id.in_(linked), FaceRow.person_id.is_not(None))
            )
        )
    person_id, sim = _Gallery(session, face.user_id, face.collection, exclude=[face.id]).best(
        vec, {b for b in blocked if b}
    )
    if person_id is None or sim < face.threshold:
        person_id, sim = _new_person(session, face.user_id, face.collection).id, 1.0
        session.flush()
    new = session.get(Person, person_id)
    assert new is not None
    face.person, face.similarity = new, round(sim, 6)
    session.flush()
    _drop_empty_clusters(session, [old.id])
    session.flush()
    return new


def split(session: Session, person: Person, face_ids: Sequence[str], name: str | None = None) -> Person:
    """Move the chosen faces of ``person`` into a new person (named ``name``, or an unnamed
    cluster), cannot-linked with the faces left behind. LookupError: a face that is not in
    ``person``; ValueError: none or all of its faces chosen, or more than
    :data:`MAX_SPLIT_PAIRS` pairs to record. The caller commits."""
    own = {f.id: f for f in person.faces}
    chosen = list(dict.fromkeys(face_ids))
    for fid in chosen:
        if fid not in own:
            raise LookupError(fid)
    rest = [f for f in own.values() if f.id not in set(chosen)]
    if not chosen or not rest:
        raise ValueError("choose some of the person's faces, not none or all of them")
    if len(chosen) * len(rest) > MAX_SPLIT_PAIRS:
        raise ValueError(f"a split may separate at most {MAX_SPLIT_PAIRS} pairs of faces; split in steps")
    new = _new_person(session, person.user_id, person.collection, name)
    session.flush()
    _link(session, person.user_id, [(a, b.id) for a in chosen for b in rest])
    for fid in chosen:
        own[fid].person, own[fid].similarity = new, 1.0
    session.flush()
    return new


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
