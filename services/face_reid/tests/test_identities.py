"""People from faces (mediafleet.common.store.identities) on real dlib embeddings of the corpus, in
the SQL store (SQLite, migrated): clustering without enrolment, enrolment, naming, merging,
re-clustering, forgetting, retries without duplicates, and one user never meeting another's
faces."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mediafleet.common.media import load_rgb
from mediafleet.common.store import (
    CachedResult,
    FaceRow,
    Job,
    Media,
    Person,
    Task,
    User,
    create_db_engine,
    identities,
    migrate,
    session_factory,
)
from mediafleet.face_reid.contract import CAPABILITY, FacesResult
from mediafleet.face_reid.runner import FaceReidRunner
from mediafleet.face_reid.settings import FaceReidSettings
from tests.conftest import sample

SPEC = CAPABILITY.task("faces")
#: image -> identity of its (only) face, MANIFEST's face re-identification table
ONE_FACE = {
    "obama.jpg": "obama", "obama2.jpg": "obama", "obama-480p.jpg": "obama",
    "Rob_Lowe_0001.jpg": "rob", "Rob_Lowe_0002.jpg": "rob", "biden.jpg": "biden",
    "Nathalie_Baye_0002.jpg": "nathalie", "lin-manuel-miranda.png": "lin", "alex-lacamoire.png": "alex",
}  # fmt: skip


@pytest.fixture(scope="module")
def results(real_models_dir: Path) -> dict[str, dict]:
    runner = FaceReidRunner(FaceReidSettings(core={"models_dir": real_models_dir}))
    return {
        name: runner.faces(load_rgb(sample(name), exif_transpose=True), {}).model_dump(mode="json")
        for name in [*ONE_FACE, "t1.jpg"]
    }


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 's.db'}")
    migrate(engine)
    return session_factory(engine)


def index(s: Session, user_id: int, media: str, result: dict, task_id: str | None = None) -> Task:
    """What job_manager does with a succeeded faces task (manager._index)."""
    if s.get(User, user_id) is None:
        s.add(User(id=user_id, username=f"u{user_id}", password_hash="x"))
    if s.get(Media, media) is None:
        s.add(Media(id=media, kind="image", mime="image/jpeg", size_bytes=1, storage_path="x"))
    s.flush()
    job = Job(id=str(uuid.uuid4()), user_id=user_id, media_id=media, status="succeeded", priority="normal")
    task = Task(id=task_id or str(uuid.uuid4()), name="faces", status="succeeded", result=result)
    job.tasks.append(task)
    s.add(job)
    s.flush()
    identities.store_faces(s, task, user_id, media, SPEC.faces(FacesResult.model_validate(result)))
    s.commit()
    return task


def clusters(s: Session, user_id: int) -> dict[str, set[str]]:
    """person id -> the media of its faces."""
    out: dict[str, set[str]] = {}
    for face in s.scalars(select(FaceRow).where(FaceRow.user_id == user_id)):
        out.setdefault(face.person_id, set()).add(face.media_id)
    return out


def test_corpus_clusters_into_its_identities_without_enrolment(
    sessions: sessionmaker[Session], results: dict[str, dict]
) -> None:
    with sessions() as s:
        for name, result in results.items():
            index(s, 1, name, result)
        got = sorted(sorted(media) for media in clusters(s, 1).values())
        expected = {}
        for name, who in ONE_FACE.items():
            expected.setdefault(who, []).append(name)
        # t1.jpg: six faces of six other people (the Friends cast), each its own cluster
        want = sorted([sorted(v) for v in expected.values()] + [["t1.jpg"]] * 6)
        assert got == want
        assert s.query(Person).filter(Person.name.is_not(None)).count() == 0


def test_enrolment_labels_matching_faces_before_and_after(
    sessions: sessionmaker[Session], results: dict[str, dict]
) -> None:
    with sessions() as s:
        obama = index(s, 1, "obama.jpg", results["obama.jpg"])
        index(s, 1, "obama2.jpg", results["obama2.jpg"])
        index(s, 1, "biden.jpg", results["biden.jpg"])
        face = s.scalars(select(FaceRow).where(FaceRow.task_id == obama.id)).one()
        person = identities.enrol(s, 1, "Barack Obama", [face.id])
        s.commit()
        named = {f.media_id for f in person.faces}
        assert named == {"obama.jpg", "obama2.jpg"}  # obama2 joined by similarity
        later = index(s, 1, "obama-480p.jpg", results["obama-480p.jpg"])  # a new face after enrolment
        annotated = identities.annotate(s, later)
        assert annotated["faces"][0]["person"]["name"] == "Barack Obama"
        assert annotated["faces"][0]["person"]["similarity"] >= 0.93
        assert annotated["faces"][0]["cluster_id"] == person.id
        biden = s.scalars(select(FaceRow).where(FaceRow.media_id == "biden.jpg")).one()
        assert biden.person_id != person.id and biden.person.name is None


def test_retried_task_stores_no_duplicate_faces(
    sessions: sessionmaker[Session], results: dict[str, dict]
) -> None:
    with sessions() as s:
        first = index(s, 1, "t1.jpg", results["t1.jpg"])
        ids = sorted(f.id for f in s.scalars(select(FaceRow)))
        people = {f.id: f.person_id for f in s.scalars(select(FaceRow))}
        identities.store_faces(
            s, first, 1, "t1.jpg", SPEC.faces(FacesResult.model_validate(results["t1.jpg"]))
        )
        index(s, 1, "t1.jpg", results["t1.jpg"])  # a second job of the same task on the same media
        assert sorted(f.id for f in s.scalars(select(FaceRow))) == ids
        assert {f.id: f.person_id for f in s.scalars(select(FaceRow))} == people
        assert len(ids) == 6


def test_merge_rename_and_recluster_keep_named_people(
    sessions: sessionmaker[Session], results: dict[str, dict]
) -> None:
    with sessions() as s:
        for name in ("Rob_Lowe_0001.jpg", "Rob_Lowe_0002.jpg", "Nathalie_Baye_0002.jpg", "biden.jpg"):
            index(s, 1, name, results[name])
        by_media = {f.media_id: f for f in s.scalars(select(FaceRow))}
        rob = by_media["Rob_Lowe_0001.jpg"].person
        nathalie = by_media["Nathalie_Baye_0002.jpg"].person
        nathalie.name = "Nathalie Baye"
        identities.merge(s, rob, [nathalie])  # a user's mistake, merged on purpose
        s.commit()
        assert rob.name == "Nathalie Baye" and len(rob.faces) == 3
        assert s.get(Person, nathalie.id) is None
        with pytest.raises(ValueError, match="itself"):
            identities.merge(s, rob, [rob])
        biden_cluster = by_media["biden.jpg"].person_id
        assert identities.recluster(s, 1, rob.collection) == 1  # biden, the one unnamed face: one cluster
        s.commit()
        assert {f.media_id for f in s.get(Person, rob.id).faces} == {
            "Rob_Lowe_0001.jpg", "Rob_Lowe_0002.jpg", "Nathalie_Baye_0002.jpg"
        }  # fmt: skip
        assert s.get(Person, biden_cluster) is None  # unnamed clusters are rebuilt (new ids) ...
        assert by_media["biden.jpg"].person_id is not None  # ... and every face has one


def test_forget_removes_faces_embeddings_and_cache(
    sessions: sessionmaker[Session], results: dict[str, dict]
) -> None:
    with sessions() as s:
        task = index(s, 1, "obama.jpg", results["obama.jpg"])
        s.add(CachedResult(key="k" * 64, media_id="obama.jpg", task="faces", result=results["obama.jpg"],
                           source_task_id=task.id))  # fmt: skip
        s.commit()
        face = s.scalars(select(FaceRow)).one()
        person = face.person
        deleted = identities.forget(s, person)
        s.commit()
        assert [f.id for f in deleted] == [face.id]
        assert s.scalars(select(FaceRow)).all() == [] and s.get(Person, person.id) is None
        s.refresh(task)
        assert task.result["faces"][0]["embedding"] == []
        assert s.scalars(select(CachedResult)).all() == []
        scrubbed = FacesResult.model_validate(task.result)
        assert SPEC.vectors(scrubbed) == [] and SPEC.faces(scrubbed) == []  # no re-sync brings it back


def test_users_never_meet(sessions: sessionmaker[Session], results: dict[str, dict]) -> None:
    with sessions() as s:
        index(s, 1, "obama.jpg", results["obama.jpg"])
        index(s, 2, "obama2.jpg", results["obama2.jpg"])  # the same person, another user
        mine = s.scalars(select(FaceRow).where(FaceRow.user_id == 1)).one()
        theirs = s.scalars(select(FaceRow).where(FaceRow.user_id == 2)).one()
        assert mine.person_id != theirs.person_id
        assert mine.person.user_id == 1 and theirs.person.user_id == 2
        with pytest.raises(LookupError):
            identities.enrol(s, 1, "Obama", [theirs.id])
        person = identities.enrol(s, 1, "Obama", [mine.id])
        s.commit()
        assert [f.id for f in person.faces] == [mine.id]  # user 2's matching face stays theirs


def _twice(result: dict) -> dict:
    """A result whose one face appears twice in the same image (a mirror, a poster behind them)."""
    out = {**result, "faces": [result["faces"][0], {**result["faces"][0]}]}
    return out


def test_two_faces_of_one_image_are_never_one_person(
    sessions: sessionmaker[Session], results: dict[str, dict]
) -> None:
    with sessions() as s:
        index(s, 1, "obama.jpg", results["obama.jpg"])
        index(s, 1, "mirror.jpg", _twice(results["obama.jpg"]))  # the same embedding twice in one image
        faces = s.scalars(select(FaceRow).where(FaceRow.media_id == "mirror.jpg")).all()
        assert len(faces) == 2 and faces[0].person_id != faces[1].person_id
        original = s.scalars(select(FaceRow).where(FaceRow.media_id == "obama.jpg")).one()
        assert original.person_id in {faces[0].person_id, faces[1].person_id}  # one of them joins it
        identities.recluster(s, 1, original.collection)
        s.commit()
        again = s.scalars(select(FaceRow).where(FaceRow.media_id == "mirror.jpg")).all()
        assert again[0].person_id != again[1].person_id


def test_this_is_not_x_moves_the_face_out_and_is_remembered(
    sessions: sessionmaker[Session], results: dict[str, dict]
) -> None:
    with sessions() as s:
        for name in ("obama.jpg", "obama2.jpg", "obama-480p.jpg"):
            index(s, 1, name, results[name])
        by_media = {f.media_id: f for f in s.scalars(select(FaceRow))}
        obama = by_media["obama.jpg"].person
        assert {f.media_id for f in obama.faces} == {"obama.jpg", "obama2.jpg", "obama-480p.jpg"}
        obama.name = "Barack Obama"
        moved_to = identities.not_person(s, by_media["obama2.jpg"])
        s.commit()
        assert moved_to.id != obama.id and moved_to.name is None
        assert {f.media_id for f in s.get(Person, obama.id).faces} == {"obama.jpg", "obama-480p.jpg"}
        # remembered: re-clustering, absorbing and enrolling others never bring it back
        identities.recluster(s, 1, obama.collection)
        identities.absorb(s, s.get(Person, obama.id))
        s.commit()
        assert by_media["obama2.jpg"].person_id != obama.id
        # a merge is the user's word: it lifts the links it brings together
        s.refresh(by_media["obama2.jpg"])  # recluster set its person by id
        identities.merge(s, s.get(Person, obama.id), [by_media["obama2.jpg"].person])
        s.commit()
        identities.recluster(s, 1, obama.collection)
        assert {f.media_id for f in s.get(Person, obama.id).faces} == {
            "obama.jpg",
            "obama2.jpg",
            "obama-480p.jpg",
        }
        with pytest.raises(ValueError, match="no person"):
            by_media["obama.jpg"].person = None
            identities.not_person(s, by_media["obama.jpg"])


def test_split_a_person_by_choosing_faces(sessions: sessionmaker[Session], results: dict[str, dict]) -> None:
    with sessions() as s:
        for name in ("obama.jpg", "obama2.jpg", "obama-480p.jpg"):
            index(s, 1, name, results[name])
        by_media = {f.media_id: f for f in s.scalars(select(FaceRow))}
        person = by_media["obama.jpg"].person
        new = identities.split(s, person, [by_media["obama2.jpg"].id], name="Obama at the podium")
        s.commit()
        assert [f.media_id for f in new.faces] == ["obama2.jpg"] and new.name == "Obama at the podium"
        assert {f.media_id for f in s.get(Person, person.id).faces} == {"obama.jpg", "obama-480p.jpg"}
        new.name = None  # even as an unnamed cluster it stays apart through a recluster
        s.commit()
        identities.recluster(s, 1, person.collection)
        s.commit()
        assert by_media["obama2.jpg"].person_id not in {
            by_media["obama.jpg"].person_id,
            by_media["obama-480p.jpg"].person_id,
        }
        for face in by_media.values():
            s.refresh(face)
        with pytest.raises(ValueError, match="not none or all"):
            identities.split(s, by_media["obama2.jpg"].person, [by_media["obama2.jpg"].id])
        with pytest.raises(LookupError):
            identities.split(s, by_media["obama.jpg"].person, [by_media["obama2.jpg"].id])
