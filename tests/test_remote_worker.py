"""A worker on another host: no media volume, the media comes by a short-lived signed URL."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from mediafleet.common.errors import InvalidMedia
from mediafleet.common.media_access import MediaUrlExpired, open_media, sign_media_url
from tests.api_helpers import admin_token, auth, upload, wait_job
from tests.conftest import sample
from tests.fleet import Fleet

pytestmark = pytest.mark.slow
SECRET = "media-url-test-secret-0123456789abcdef"


def test_worker_without_the_media_volume_reads_a_signed_url(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    fleet = Fleet(tmp_path, pg_url, redis_url, MEDIAFLEET_MEDIA_URL_SECRET=SECRET)
    fleet.env["MEDIAFLEET_MEDIA_URL_BASE"] = fleet.url("gateway")
    elsewhere = tmp_path / "remote-host-media"
    elsewhere.mkdir()
    try:
        fleet.start("gateway")
        fleet.start("job_manager")
        fleet.start("echo", env={"MEDIAFLEET_MEDIA_DIR": str(elsewhere)})
        with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
            token = admin_token(client)
            media_id = upload(client, token, sample("english.png")).json()["media_id"]
            resp = client.post(
                "/v1/jobs",
                json={"media_id": media_id, "tasks": ["echo"], "options": {"echo": {"text": "far away"}}},
                headers=auth(token),
            )
            job = wait_job(client, token, resp.json()["job_id"], timeout=60)
            assert job["status"] == "succeeded", job
            assert job["results"]["echo"]["media_sha256"] == media_id  # the bytes it downloaded
            assert list(elsewhere.iterdir()) == []  # nothing written to the worker's media dir

            good = sign_media_url(fleet.url("gateway"), media_id, SECRET, 60)
            assert httpx.get(good).content == sample("english.png").read_bytes()
            forged = sign_media_url(fleet.url("gateway"), media_id, "not-the-secret", 60)
            assert httpx.get(forged).json()["error"]["code"] == "bad_signature"
            expired = sign_media_url(fleet.url("gateway"), media_id, SECRET, 60, now=time.time() - 120)
            resp = httpx.get(expired)
            assert resp.status_code == 403 and resp.json()["error"]["code"] == "url_expired"
            other = sign_media_url(fleet.url("gateway"), "0" * 64, SECRET, 60)
            assert httpx.get(other).status_code == 404

            # a worker that meets an expired URL fails the attempt in a way RQ retries (job_manager
            # signs a new URL into the waiting retry: tests/job_manager/test_manager.py)
            task = {"media_id": media_id, "storage_path": "x/y.png", "media_url": expired}
            with pytest.raises(MediaUrlExpired), open_media(task, elsewhere):
                pass
            with pytest.raises(InvalidMedia), open_media({**task, "media_url": forged}, elsewhere):
                pass  # a refused signature is no retry's business
    finally:
        fleet.stop_all()


@pytest.mark.slow
def test_an_empty_media_url_secret_turns_signed_urls_off(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    """Compose passes ``MEDIAFLEET_MEDIA_URL_SECRET`` empty when ``MEDIA_URL_SECRET`` is unset:
    that must mean "off", never a key of zero bytes anyone can sign with."""
    fleet = Fleet(tmp_path, pg_url, redis_url, MEDIAFLEET_MEDIA_URL_SECRET="")
    try:
        fleet.start("gateway")
        with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
            token = admin_token(client)
            media_id = upload(client, token, sample("english.png")).json()["media_id"]
        forged = sign_media_url(fleet.url("gateway"), media_id, "", 60)
        resp = httpx.get(forged)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "media_not_found"
    finally:
        fleet.stop_all()
