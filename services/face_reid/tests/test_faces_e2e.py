"""Faces through the whole fleet as real processes (gateway, job_manager, face_reid worker with
real MTCNN + dlib weights, vector_db) on real PostgreSQL and Redis: faces jobs -> people and
clusters -> enrol, name, merge, forget -> "find this face everywhere" -> verification, per
user; and a worker SIGKILLed mid-task."""

from __future__ import annotations

import io
import json
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from PIL import Image
from rq.registry import StartedJobRegistry
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from mediafleet.common.store import FaceRow, Task
from tests.api_helpers import (
    admin_token,
    assert_envelope,
    auth,
    create_user,
    upload,
    vectors_settled,
    wait_job,
)
from tests.conftest import sample
from tests.fleet import Fleet

pytestmark = pytest.mark.slow
IMAGES = ("obama.jpg", "obama2.jpg", "Rob_Lowe_0001.jpg", "Rob_Lowe_0002.jpg", "biden.jpg")


@pytest.fixture
def faces_fleet(tmp_path: Path, pg_url: str, redis_url: str, real_models_dir: Path):
    f = Fleet(tmp_path, pg_url, redis_url, MEDIAFLEET_MODELS_DIR=str(real_models_dir))
    try:
        for name in ("vector_db", "gateway", "job_manager", "faces"):
            f.start(name)
        yield f
    finally:
        f.stop_all()


def faces_job(c: httpx.Client, token: str, media_id: str, **options) -> dict:
    body = {"media_id": media_id, "tasks": ["faces"], "use_cache": False}
    if options:
        body["options"] = {"faces": options}
    resp = c.post("/v1/jobs", json=body, headers=auth(token))
    assert resp.status_code == 202, resp.text
    job = wait_job(c, token, resp.json()["job_id"], timeout=120, until=vectors_settled)
    assert job["status"] == "succeeded", job
    return job


def test_people_matches_and_verification_per_user(
    faces_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    with httpx.Client(base_url=faces_fleet.url("gateway"), timeout=60) as c:
        token = admin_token(c)
        ids, faces = {}, {}
        for name in IMAGES:
            ids[name] = upload(c, token, sample(name)).json()["media_id"]
            job = faces_job(c, token, ids[name])
            result = job["results"]["faces"]
            assert len(result["faces"]) == 1 and job["tasks"][0]["vectors"]["state"] == "synced"
            faces[name] = result["faces"][0]
            assert faces[name]["face_id"] and faces[name]["cluster_id"] and faces[name]["person"] is None

        # clusters without enrolment: Obama's two faces, Rob Lowe's two, Biden alone
        people = c.get("/v1/people", headers=auth(token)).json()
        assert people["count"] == 3 and sorted(p["faces"] for p in people["data"]) == [1, 2, 2]
        assert faces["obama.jpg"]["cluster_id"] == faces["obama2.jpg"]["cluster_id"]
        assert faces["Rob_Lowe_0001.jpg"]["cluster_id"] == faces["Rob_Lowe_0002.jpg"]["cluster_id"]
        assert faces["biden.jpg"]["cluster_id"] not in (faces["obama.jpg"]["cluster_id"],
                                                        faces["Rob_Lowe_0001.jpg"]["cluster_id"])  # fmt: skip

        # enrol Obama from obama.jpg: obama2.jpg's face is labelled on its stored job too
        resp = c.post("/v1/people", json={"name": "Barack Obama", "face_ids": [faces["obama.jpg"]["face_id"]]},
                      headers=auth(token))  # fmt: skip
        assert resp.status_code == 201, resp.text
        obama = resp.json()
        assert (obama["name"], obama["faces"], obama["media"]) == ("Barack Obama", 2, 2)
        job2 = faces_job(c, token, ids["obama2.jpg"])  # a new job: assigned at once
        assert job2["results"]["faces"]["faces"][0]["person"]["name"] == "Barack Obama"
        media = c.get(f"/v1/people/{obama['id']}/media", headers=auth(token)).json()
        assert sorted(m["filename"] for m in media["data"]) == ["obama.jpg", "obama2.jpg"]

        # find this face everywhere (vector_db): Obama's other face, nobody else
        matches = c.get(f"/v1/faces/{faces['obama.jpg']['face_id']}/matches", headers=auth(token)).json()
        assert [m["face"]["filename"] for m in matches["data"]] == ["obama2.jpg"]
        assert matches["data"][0]["same_person"] and matches["data"][0]["similarity"] >= matches["threshold"]
        expected = float(np.dot(faces["obama.jpg"]["embedding"], faces["obama2.jpg"]["embedding"]))
        assert matches["data"][0]["similarity"] == pytest.approx(expected, abs=1e-4)
        everything = c.get(f"/v1/faces/{faces['obama.jpg']['face_id']}/matches?all=true", headers=auth(token))
        assert everything.json()["count"] == 4

        # "this is not Obama": the face leaves, and stays out through a re-clustering
        o2 = faces["obama2.jpg"]["face_id"]
        moved = c.post(f"/v1/faces/{o2}/not-this-person", headers=auth(token))
        assert moved.status_code == 200, moved.text
        assert moved.json()["person"] is None and moved.json()["cluster_id"] != obama["id"]
        assert c.get(f"/v1/people/{obama['id']}", headers=auth(token)).json()["faces"] == 1
        again = c.post(
            "/v1/people/recluster", params={"collection": obama["collection"]}, headers=auth(token)
        )
        assert again.status_code == 200, again.text
        assert c.get(f"/v1/people/{obama['id']}", headers=auth(token)).json()["faces"] == 1
        cluster = c.get(f"/v1/faces/{o2}", headers=auth(token)).json()["cluster_id"]
        back = c.post(f"/v1/people/{obama['id']}/merge", json={"person_ids": [cluster]}, headers=auth(token))
        assert back.json()["faces"] == 2  # a merge is the user's word
        # split a person by choosing faces: a new person, remembered apart
        split = c.post(f"/v1/people/{obama['id']}/split", json={"face_ids": [o2], "name": "At the podium"},
                       headers=auth(token))  # fmt: skip
        assert split.status_code == 201, split.text
        assert (split.json()["name"], split.json()["faces"]) == ("At the podium", 1)
        assert c.get(f"/v1/people/{obama['id']}", headers=auth(token)).json()["faces"] == 1
        all_faces = [faces["obama.jpg"]["face_id"]]
        assert_envelope(c.post(f"/v1/people/{obama['id']}/split", json={"face_ids": all_faces},
                               headers=auth(token)), 400, "invalid_split")  # fmt: skip
        assert_envelope(c.post(f"/v1/people/{obama['id']}/split", json={"face_ids": [o2]},
                               headers=auth(token)), 404, "face_not_found")  # fmt: skip
        merged_back = c.post(f"/v1/people/{obama['id']}/merge", json={"person_ids": [split.json()["id"]]},
                             headers=auth(token))  # fmt: skip
        assert merged_back.json()["faces"] == 2
        for name in ("Rob_Lowe_0001.jpg", "biden.jpg"):  # the re-clustering gave unnamed clusters new ids
            faces[name]["cluster_id"] = c.get(
                f"/v1/faces/{faces[name]['face_id']}", headers=auth(token)
            ).json()["cluster_id"]

        # name, merge, forget
        rob_id = faces["Rob_Lowe_0001.jpg"]["cluster_id"]
        named = c.patch(f"/v1/people/{rob_id}", json={"name": "Rob Lowe"}, headers=auth(token)).json()
        assert named["name"] == "Rob Lowe" and named["id"] == rob_id
        biden_id = faces["biden.jpg"]["cluster_id"]
        merged = c.post(f"/v1/people/{rob_id}/merge", json={"person_ids": [biden_id]}, headers=auth(token))
        assert merged.status_code == 200 and merged.json()["faces"] == 3
        assert_envelope(c.get(f"/v1/people/{biden_id}", headers=auth(token)), 404, "person_not_found")
        count_before = c.get(
            f"/v1/faces/{faces['obama.jpg']['face_id']}/matches?all=true", headers=auth(token)
        )
        assert count_before.json()["count"] == 4
        assert c.delete(f"/v1/people/{rob_id}", headers=auth(token)).status_code == 204
        after = c.get(
            f"/v1/faces/{faces['obama.jpg']['face_id']}/matches?all=true", headers=auth(token)
        ).json()
        assert [m["face"]["filename"] for m in after["data"]] == ["obama2.jpg"]  # their embeddings went too
        assert_envelope(c.get(f"/v1/faces/{faces['biden.jpg']['face_id']}", headers=auth(token)), 404)

        # verification: two stored faces, or two images through the worker
        same = c.post("/v1/faces/verify", json={"face_ids": [faces["obama.jpg"]["face_id"],
                                                             faces["obama2.jpg"]["face_id"]]}, headers=auth(token))  # fmt: skip
        assert same.status_code == 200 and same.json()["same_person"] is True
        with open(sample("obama.jpg"), "rb") as a, open(sample("biden.jpg"), "rb") as b:
            other = c.post("/v1/faces/verify", files={"image1": a, "image2": b}, headers=auth(token))
        assert other.status_code == 200, other.text
        assert other.json()["same_person"] is False and other.json()["threshold"] == 0.93
        with open(sample("obama.jpg"), "rb") as a, open(sample("view.jpg"), "rb") as b:
            none = c.post("/v1/faces/verify", files={"image1": a, "image2": b}, headers=auth(token))
        assert_envelope(none, 422, "no_face")
        # two 1 x 1 images: no face in either, a 422 like any image without one (was a 503)
        dot = io.BytesIO()
        Image.new("RGB", (1, 1)).save(dot, "PNG")
        tiny = c.post("/v1/faces/verify", files={"image1": ("a.png", dot.getvalue()), "image2": ("b.png", dot.getvalue())},
                      headers=auth(token))  # fmt: skip
        assert_envelope(tiny, 422, "no_face")
        assert_envelope(c.post("/v1/faces/verify", json={"face_ids": ["x"]}, headers=auth(token)), 422)
        from mediafleet.cli.main import main  # the CLI's --api path: the same endpoint

        url = faces_fleet.url("gateway")
        assert main(["faces", "verify", str(sample("Rob_Lowe_0001.jpg")), str(sample("Rob_Lowe_0002.jpg")),
                     "--api", url, "--token", token]) == 0  # fmt: skip
        assert main(["faces", "verify", str(sample("obama.jpg")), str(sample("view.jpg")),
                     "--api", url, "--token", token]) == 1  # fmt: skip
        assert main(["analyze", str(sample("zidane.jpg")), "--tasks", "faces", "--api", url, "--token", token,
                     "--json"]) == 0  # fmt: skip
        analyzed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert len(analyzed["results"]["faces"]["faces"]) == 2  # zidane.jpg: two faces, through the gateway

        # another user: none of it exists for them
        bob = create_user(c, token, "bob", "bobs-password-123")
        assert c.get("/v1/people", headers=auth(bob)).json()["count"] == 0
        assert_envelope(c.get(f"/v1/people/{obama['id']}", headers=auth(bob)), 404, "person_not_found")
        fid = faces["obama.jpg"]["face_id"]
        assert_envelope(c.get(f"/v1/faces/{fid}/matches", headers=auth(bob)), 404, "face_not_found")
        # the People page's picture of a face: a square crop around its box, to its owner only
        crop = c.get(f"/v1/faces/{fid}/thumbnail?size=192", headers=auth(token))
        assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"
        picture = Image.open(io.BytesIO(crop.content))
        assert picture.size == (192, 192)
        # obama.jpg is a portrait: the crop is mostly face (skin), not the Oval Office behind it
        red, green, blue = np.asarray(picture.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
        assert red > blue + 20, (red, green, blue)
        assert_envelope(c.get(f"/v1/faces/{fid}/thumbnail", headers=auth(bob)), 404, "face_not_found")
        assert_envelope(c.post(f"/v1/faces/{fid}/not-this-person", headers=auth(bob)), 404, "face_not_found")
        assert_envelope(c.get(f"/v1/faces/{fid}/thumbnail?size=50", headers=auth(token)), 422)
        assert_envelope(
            c.post("/v1/people", json={"name": "x", "face_ids": [fid]}, headers=auth(bob)),
            404,
            "face_not_found",
        )
        assert_envelope(
            c.post("/v1/faces/verify", json={"face_ids": [fid, fid]}, headers=auth(bob)),
            404,
            "face_not_found",
        )
        mine = upload(c, bob, sample("obama-480p.jpg")).json()["media_id"]
        bobs = faces_job(c, bob, mine)["results"]["faces"]["faces"][0]
        assert bobs["person"] is None  # admin's "Barack Obama" is not bob's
        bob_matches = c.get(f"/v1/faces/{bobs['face_id']}/matches?all=true", headers=auth(bob)).json()
        assert bob_matches["count"] == 0


def _mosaic(path: Path) -> Path:
    """Rob_Lowe_0001's face 12 x 12 times: embedding ~100 faces takes seconds, time to kill a worker."""
    face = Image.open(sample("Rob_Lowe_0001.jpg")).convert("RGB").crop((60, 60, 200, 200)).resize((90, 90))
    mosaic = Image.new("RGB", (90 * 12, 90 * 12))
    for i in range(144):
        mosaic.paste(face, ((i % 12) * 90, (i // 12) * 90))
    mosaic.save(path)
    return path


def test_worker_killed_mid_task_stores_no_duplicate_faces(faces_fleet: Fleet, tmp_path: Path) -> None:
    r = redis.Redis.from_url(faces_fleet.env["MEDIAFLEET_REDIS_URL"])
    engine = create_engine(faces_fleet.env["MEDIAFLEET_DATABASE_URL"])
    with httpx.Client(base_url=faces_fleet.url("gateway"), timeout=60) as c:
        token = admin_token(c)
        media_id = upload(c, token, _mosaic(tmp_path / "mosaic.png")).json()["media_id"]
        job_id = c.post(
            "/v1/jobs", json={"media_id": media_id, "tasks": ["faces"]}, headers=auth(token)
        ).json()["job_id"]
        with Session(engine) as s:
            rq_id = f"task-{s.scalar(select(Task.id).where(Task.job_id == job_id))}"
        started = StartedJobRegistry("face_reid:normal", connection=r)
        deadline = time.monotonic() + 60
        while not any(e.startswith(rq_id) for e in started.get_job_ids()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert any(e.startswith(rq_id) for e in started.get_job_ids()), "task never started"
        time.sleep(1.0)
        faces_fleet.stop("faces", signal.SIGKILL)
        time.sleep(5)  # job_manager reaps the abandoned run after the 3 s lease
        assert c.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()["results"] == {}
        faces_fleet.start("faces")
        job = wait_job(c, token, job_id, timeout=180, until=vectors_settled)
    assert job["status"] == "succeeded" and job["tasks"][0]["attempts"] == 2, job
    found = job["results"]["faces"]["faces"]
    assert len(found) == 100 and job["results"]["faces"]["truncated"] >= 30
    with Session(engine) as s:
        rows = s.scalars(select(FaceRow).where(FaceRow.media_id == media_id)).all()
        assert len(rows) == len(found) == len({r.ref for r in rows})
        # one face repeated 100 times in one image: 100 people (faces of one image never join)
        assert (
            s.scalar(select(func.count(func.distinct(FaceRow.person_id))).where(FaceRow.media_id == media_id))
            == 100
        )
    engine.dispose()
