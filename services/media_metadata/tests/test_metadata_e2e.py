"""Where and when, and near-duplicates, through the fleet as real processes (gateway,
job_manager, a media_metadata worker with the real GeoNames data) on real PostgreSQL and Redis:
a job's result, search by place, the library's date and place filters, a photo's resized copy
found as its duplicate, and another user who sees none of it."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import ExifTags, Image

from tests.api_helpers import admin_token, assert_envelope, auth, create_user, upload, wait_job
from tests.conftest import SHARED_MEDIA
from tests.fleet import Fleet

pytestmark = pytest.mark.slow


@pytest.fixture
def metadata_fleet(tmp_path: Path, pg_url: str, redis_url: str, real_models_dir: Path):
    # originals served without their position; the worker still reads the stored file's GPS
    f = Fleet(
        tmp_path, pg_url, redis_url, MEDIAFLEET_MODELS_DIR=str(real_models_dir), GATEWAY_STRIP_LOCATION="true"
    )
    try:
        for name in ("gateway", "job_manager", "metadata"):
            f.start(name)
        yield f
    finally:
        f.stop_all()


def job(c: httpx.Client, token: str, media_id: str, task: str = "metadata") -> dict:  # as the API returns it
    resp = c.post("/v1/jobs", json={"media_id": media_id, "tasks": [task]}, headers=auth(token))
    assert resp.status_code == 202, resp.text
    done = wait_job(c, token, resp.json()["job_id"], timeout=60)
    assert done["status"] == "succeeded", done
    return done


def test_a_photo_s_place_time_and_duplicates_by_api_and_search_for_its_owner_only(
    metadata_fleet: Fleet, tmp_path: Path
) -> None:
    with httpx.Client(base_url=metadata_fleet.url("gateway"), timeout=30) as c:
        token = admin_token(c)
        tasks = c.get("/v1/tasks", headers=auth(token)).json()
        metadata = next(t for t in tasks["data"] if t["name"] == "metadata")
        assert metadata["default_for"] == ["image", "audio", "video"]
        assert metadata["readiness"]["state"] == "ready", metadata

        bus = upload(c, token, SHARED_MEDIA / "bus.jpg").json()["media_id"]
        done = job(c, token, bus)
        result = done["results"]["metadata"]
        assert (result["place"]["name"], result["place"]["country_code"]) == ("Madrid", "ES")
        assert result["camera"]["model"] == "iPhone XS" and result["taken_at"] == "2019-03-01T13:06:33.823000"
        found = c.get("/v1/search", params={"q": "madrid"}, headers=auth(token)).json()
        assert [h["media_id"] for h in found["data"]] == [bus]
        assert found["data"][0]["matches"][0]["task"] == "metadata"
        assert c.get("/v1/search", params={"q": "iphone"}, headers=auth(token)).json()["count"] == 1

        # GATEWAY_STRIP_LOCATION: the original comes back without its GPS, every pixel the same
        original = c.get(f"/v1/media/{bus}/original", headers=auth(token))
        assert original.status_code == 200 and original.headers["content-type"] == "image/jpeg"
        assert len(original.content) == (SHARED_MEDIA / "bus.jpg").stat().st_size
        with (
            Image.open(io.BytesIO(original.content)) as served,
            Image.open(SHARED_MEDIA / "bus.jpg") as stored,
        ):
            assert dict(served.getexif().get_ifd(ExifTags.IFD.GPSInfo)) == {}
            assert dict(stored.getexif().get_ifd(ExifTags.IFD.GPSInfo)) != {}
            assert served.getexif()[ExifTags.Base.Model] == "iPhone XS"
            assert np.array_equal(np.asarray(served), np.asarray(stored))

        # the library's filters: the file's own date (local, inclusive days) and place
        png = upload(c, token, SHARED_MEDIA / "english.png").json()["media_id"]
        job(c, token, png)  # analysed, records nothing: matches no date or place filter

        def library(**query: str) -> list[str]:
            resp = c.get("/v1/media", params=query, headers=auth(token))
            assert resp.status_code == 200, resp.text
            return [m["media_id"] for m in resp.json()["data"]]

        assert library() == [png, bus]
        assert library(place="madrid") == library(place="ES") == library(place="Madrid, E") == [bus]
        assert library(place="paris") == [] and library(place="100%") == [] and library(place="__") == []
        assert library(taken_from="2019-03-01", taken_to="2019-03-01") == [bus]
        assert library(taken_from="2019-03-02") == [] and library(taken_to="2019-02-28") == []
        assert library(taken_to="2019-03-01", place="madrid", kind="image") == [bus]
        listed = c.get(f"/v1/media/{bus}", headers=auth(token)).json()
        assert (listed["taken_at"], listed["place"]) == ("2019-03-01T13:06:33.823000", "Madrid, ES")
        bad = c.get(
            "/v1/media", params={"taken_from": "2019-03-02", "taken_to": "2019-03-01"}, headers=auth(token)
        )
        assert_envelope(bad, 422, "validation_error")
        for day in ("yesterday", "0", "2019-02-30"):
            assert_envelope(c.get("/v1/media", params={"taken_from": day}, headers=auth(token)), 422)

        # another account: not the job, not the place in search; its own upload of other bytes
        other = create_user(c, token, "metadata-other", "metadata-other-password")
        assert_envelope(c.get(f"/v1/jobs/{done['job_id']}", headers=auth(other)), 404, "job_not_found")
        assert c.get("/v1/search", params={"q": "madrid"}, headers=auth(other)).json()["count"] == 0
        assert c.get("/v1/media", params={"place": "madrid"}, headers=auth(other)).json()["count"] == 0
        page = upload(c, other, SHARED_MEDIA / "phototest.tif").json()["media_id"]
        empty = job(c, other, page)["results"]["metadata"]
        assert (empty["taken_at"], empty["gps"], empty["place"], empty["format"]) == (
            None,
            None,
            None,
            "TIFF",
        )

        # near-duplicates (the fingerprint task): a resized copy of the photo is found, per user
        copy = tmp_path / "bus-copy.jpg"
        with Image.open(SHARED_MEDIA / "bus.jpg") as img:
            img.resize((img.width // 3, img.height // 3)).save(copy, "JPEG", quality=50)
        fingerprint = next(t for t in tasks["data"] if t["name"] == "fingerprint")
        assert fingerprint["readiness"]["state"] == "ready" and fingerprint["default_for"] == [
            "image",
            "audio",
            "video",
        ]
        copy_id = upload(c, token, copy).json()["media_id"]
        zidane = upload(c, token, SHARED_MEDIA / "zidane.jpg").json()["media_id"]
        for media_id in (bus, copy_id, zidane):
            job(c, token, media_id, "fingerprint")
        found = c.get(f"/v1/media/{bus}/duplicates", headers=auth(token)).json()
        assert [(d["media"]["media_id"], d["method"]) for d in found["data"]] == [(copy_id, "pHash+dHash")]
        assert (
            found["data"][0]["media"]["filename"] == "bus-copy.jpg" and found["data"][0]["similarity"] > 0.8
        )
        assert c.get(f"/v1/media/{zidane}/duplicates", headers=auth(token)).json()["count"] == 0
        groups = c.get("/v1/duplicates", headers=auth(token)).json()
        assert groups["count"] == 1 and {m["media_id"] for m in groups["data"][0]["media"]} == {bus, copy_id}
        # the other account's own copy is compared with its own files only
        job(c, other, upload(c, other, copy).json()["media_id"], "fingerprint")
        assert c.get("/v1/duplicates", headers=auth(other)).json()["count"] == 0
        assert c.get(f"/v1/media/{copy_id}/duplicates", headers=auth(other)).json()["count"] == 0
        assert_envelope(c.get(f"/v1/media/{bus}/duplicates", headers=auth(other)), 404, "media_not_found")
        assert c.get("/v1/duplicates", headers=auth(token)).json()["count"] == 1
