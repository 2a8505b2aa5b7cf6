"""The caller's media library: list with filters, the original bytes and thumbnails, to
their owner only (the web UI's library and results views), on PostgreSQL and SQLite; and the
link tokens with which a browser opens a job's event stream (EventSource) and a media's
original and thumbnails (<video>, <img>): short-lived, one resource of its owner only."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from mediafleet.common.settings import CoreSettings
from mediafleet.common.store import Job, Task
from mediafleet.common.tokens import create_token, decode_token
from mediafleet.gateway.app import create_app
from mediafleet.gateway.settings import AdminSettings, GatewaySettings
from tests.api_helpers import (
    ADMIN,
    FIRST_PASSWORD,
    NEW_PASSWORD,
    admin_token,
    assert_envelope,
    auth,
    create_user,
    login,
    sse_events,
    upload,
)
from tests.conftest import sample


@pytest.fixture(params=["postgresql", "sqlite"])
def settings(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> GatewaySettings:
    url = (
        f"sqlite:///{tmp_path / 'gateway.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    return GatewaySettings(
        core=CoreSettings(database_url=url, redis_url=redis_url, media_dir=tmp_path / "media"),
        secret_key=SecretStr("test-secret-key-with-enough-length-0123456789"),
        admin=AdminSettings(username=ADMIN, password=SecretStr(FIRST_PASSWORD)),
    )


@pytest.fixture
def client(settings: GatewaySettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def _finished_job(
    settings: GatewaySettings, user_id: int, media_id: str, name: str, status: str = "canceled", result=None
) -> str:
    """A finished job of ``user_id`` on ``media_id`` with one task ``name`` in ``status``, as
    job_manager leaves it (a canceled one by default: its event stream ends at once)."""
    engine = create_engine(settings.core.database_url)
    with Session(engine) as s:
        job = Job(id=str(uuid.uuid4()), user_id=user_id, media_id=media_id, status=status,
                  priority="normal", options={})  # fmt: skip
        job.tasks.append(Task(id=str(uuid.uuid4()), name=name, status=status, result=result))
        s.add(job)
        job_id = job.id
        s.commit()
    engine.dispose()
    return job_id


def test_library_lists_the_callers_media_newest_first_with_filters(
    client: TestClient, settings: GatewaySettings
) -> None:
    admin = admin_token(client)
    ids = {name: upload(client, admin, sample(name)).json()["media_id"]
           for name in ("bus.jpg", "jfk.flac", "mmpose_demo.mp4", "zidane.jpg")}  # fmt: skip
    page = client.get("/v1/media", headers=auth(admin)).json()
    assert page["count"] == 4 and (page["limit"], page["offset"]) == (50, 0)
    assert [m["filename"] for m in page["data"]] == ["zidane.jpg", "mmpose_demo.mp4", "jfk.flac", "bus.jpg"]
    images = client.get("/v1/media?kind=image&limit=1", headers=auth(admin)).json()
    assert images["count"] == 2 and [m["filename"] for m in images["data"]] == ["zidane.jpg"]
    second = client.get("/v1/media?kind=image&limit=1&offset=1", headers=auth(admin)).json()
    assert [m["media_id"] for m in second["data"]] == [ids["bus.jpg"]]
    past = client.get("/v1/media?offset=10", headers=auth(admin)).json()
    assert past["data"] == [] and past["count"] == 4
    assert client.get("/v1/media?kind=audio", headers=auth(admin)).json()["data"][0]["duration_s"] > 10

    # "with results of a task": only media the caller's own jobs ran it on
    me = client.get("/v1/users/me", headers=auth(admin)).json()["id"]
    _finished_job(settings, me, ids["bus.jpg"], "pose", "succeeded", {"text": ""})
    with_pose = client.get("/v1/media?task=pose", headers=auth(admin)).json()
    assert [m["media_id"] for m in with_pose["data"]] == [ids["bus.jpg"]] and with_pose["count"] == 1
    # the results view finds a media's jobs
    on_bus = _finished_job(settings, me, ids["bus.jpg"], "ocr")
    _finished_job(settings, me, ids["zidane.jpg"], "ocr")
    # (status too: the pose result above is a stand-in that the job's schema would refuse)
    found = client.get(f"/v1/jobs?media_id={ids['bus.jpg']}&status=canceled", headers=auth(admin)).json()
    assert found["count"] == 1 and found["data"][0]["job_id"] == on_bus
    assert client.get("/v1/jobs?status=canceled", headers=auth(admin)).json()["count"] == 2
    assert client.get("/v1/media?task=ocr", headers=auth(admin)).json()["count"] == 0

    # another user sees only their own uploads, and not the admin's task results
    bob = create_user(client, admin, "bob", "bobs-password-123")
    assert client.get("/v1/media", headers=auth(bob)).json() == {
        "data": [],
        "count": 0,
        "limit": 50,
        "offset": 0,
    }
    upload(client, bob, sample("bus.jpg"), name="my-bus.jpg")
    mine = client.get("/v1/media", headers=auth(bob)).json()
    assert [(m["filename"], m["deduplicated"]) for m in mine["data"]] == [("my-bus.jpg", True)]
    assert client.get("/v1/media?task=pose", headers=auth(bob)).json()["count"] == 0

    for bad in ("kind=pdf", "limit=0", "limit=101", "offset=-1", "task=OCR;drop"):
        assert_envelope(client.get(f"/v1/media?{bad}", headers=auth(admin)), 422)
    assert_envelope(client.get("/v1/media"), 401)


def test_original_and_thumbnails_go_to_their_owner_only(
    client: TestClient, settings: GatewaySettings
) -> None:
    admin = admin_token(client)
    bus = upload(client, admin, sample("bus.jpg"), name="the bus.jpg").json()["media_id"]
    video = upload(client, admin, sample("mmpose_demo.mp4")).json()["media_id"]
    audio = upload(client, admin, sample("jfk.flac")).json()["media_id"]

    original = client.get(f"/v1/media/{bus}/original", headers=auth(admin))
    assert original.status_code == 200 and original.content == sample("bus.jpg").read_bytes()
    assert original.headers["content-type"] == "image/jpeg"
    assert (
        original.headers["content-disposition"].startswith("inline;")
        and "the%20bus.jpg" in original.headers["content-disposition"]
    )
    part = client.get(f"/v1/media/{bus}/original", headers={**auth(admin), "Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == sample("bus.jpg").read_bytes()[:10]

    for size in (128, 256, 512):
        thumb = client.get(f"/v1/media/{bus}/thumbnail?size={size}", headers=auth(admin))
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg", thumb.text
        img = Image.open(io.BytesIO(thumb.content))
        # bus.jpg is 810 x 1080: the thumbnail keeps its shape, longer side = size
        assert img.format == "JPEG" and img.size[1] == size and abs(img.size[0] - size * 810 / 1080) <= 1, (
            img.size
        )
    again = client.get(f"/v1/media/{bus}/thumbnail?size=256", headers=auth(admin))
    assert again.content == client.get(f"/v1/media/{bus}/thumbnail", headers=auth(admin)).content
    assert (settings.core.media_dir / ".thumbs" / f"{bus}-256.jpg").is_file()
    frame = Image.open(io.BytesIO(client.get(f"/v1/media/{video}/thumbnail", headers=auth(admin)).content))
    assert max(frame.size) == 256
    assert_envelope(client.get(f"/v1/media/{audio}/thumbnail", headers=auth(admin)), 404, "no_thumbnail")
    assert_envelope(client.get(f"/v1/media/{bus}/thumbnail?size=300", headers=auth(admin)), 422)
    # the preview the web UI draws results on for a TIFF (browsers cannot show one): a JPEG of the
    # page at its own size (640 x 480: a preview never enlarges)
    tif = upload(client, admin, sample("phototest.tif")).json()["media_id"]
    preview = client.get(f"/v1/media/{tif}/thumbnail?size=2048", headers=auth(admin))
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(preview.content)).size == (640, 480)

    # another user, even one who uploads other bytes, gets "not found" for all of it
    bob = create_user(client, admin, "bob", "bobs-password-123")
    upload(client, bob, sample("zidane.jpg"))
    for path in (f"/v1/media/{bus}/original", f"/v1/media/{bus}/thumbnail", f"/v1/media/{video}/thumbnail"):
        assert_envelope(client.get(path, headers=auth(bob)), 404, "media_not_found")
        assert_envelope(client.get(path), 401)
    assert_envelope(
        client.get("/v1/media/" + "0" * 64 + "/original", headers=auth(admin)), 404, "media_not_found"
    )


# -- link tokens: EventSource, <img> and <video> send no header -----------------------------


def _events(client: TestClient, url: str) -> list[tuple[str, dict]]:
    return sse_events(client, None, "", url=url)


def test_events_token_opens_only_its_owners_job_stream(client: TestClient, settings: GatewaySettings) -> None:
    admin = admin_token(client)
    create_user(client, admin, "bob", "bob-password-123")
    bob = login(client, "bob", "bob-password-123")["access_token"]
    media = upload(client, admin, sample("english.png")).json()["media_id"]
    me = client.get("/v1/users/me", headers=auth(admin)).json()["id"]
    job, other_job = _finished_job(settings, me, media, "ocr"), _finished_job(settings, me, media, "ocr")

    link = client.post(f"/v1/jobs/{job}/events/token", headers=auth(admin))
    assert link.status_code == 200, link.text
    body = link.json()
    assert body["expires_in"] == settings.events_token_ttl_s == 120
    assert body["url"] == f"/v1/jobs/{job}/events?token={body['token']}"
    claims = decode_token(settings.secret_key.get_secret_value(), body["token"], "link")
    assert claims.resource == f"job-events:{job}" and claims.user_id == me and claims.family

    # no header: the token alone opens the stream, which ends with the finished job's snapshot
    events = _events(client, body["url"])
    assert events and events[0][0] == "job" and events[-1][1]["status"] == "canceled"
    assert events[-1][1]["job_id"] == job

    # single purpose: not another job's stream, not the job itself, not an API route as bearer
    assert_envelope(client.get(f"/v1/jobs/{other_job}/events?token={body['token']}"), 401, "invalid_token")
    assert_envelope(client.get(f"/v1/jobs/{job}?token={body['token']}"), 401, "missing_token")
    assert_envelope(client.get(f"/v1/jobs/{job}", headers=auth(body["token"])), 401, "invalid_token")
    assert_envelope(client.get(f"/v1/media/{media}/original?token={body['token']}"), 401, "invalid_token")
    # an access token is not a link token
    assert_envelope(client.get(f"/v1/jobs/{job}/events?token={admin}"), 401, "invalid_token")

    # another user cannot mint one for this job, nor open it with a token of their own
    assert_envelope(client.post(f"/v1/jobs/{job}/events/token", headers=auth(bob)), 404, "job_not_found")
    bob_claims = decode_token(settings.secret_key.get_secret_value(), bob, "access")
    forged = create_token(  # bob's own valid link token naming admin's job
        settings.secret_key.get_secret_value(), bob_claims.user_id, "link", bob_claims.version,
        dt.timedelta(seconds=60), family=bob_claims.family, resource=f"job-events:{job}",
    )  # fmt: skip
    assert_envelope(client.get(f"/v1/jobs/{job}/events?token={forged}"), 404, "job_not_found")

    # expired, and revoked by signing out of the session that minted it
    expired = create_token(
        settings.secret_key.get_secret_value(), me, "link", 1, dt.timedelta(seconds=-1),
        resource=f"job-events:{job}",
    )  # fmt: skip
    assert_envelope(client.get(f"/v1/jobs/{job}/events?token={expired}"), 401, "token_expired")
    pair = login(client, ADMIN, NEW_PASSWORD)  # a second sign-in, then signed out
    url = client.post(f"/v1/jobs/{job}/events/token", headers=auth(pair["access_token"])).json()["url"]
    assert client.post("/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code == 204
    assert_envelope(client.get(url), 401, "invalid_token")
    assert _events(client, body["url"])[-1][1]["status"] == "canceled"  # the first sign-in's still opens


def test_media_token_opens_original_and_thumbnail_of_that_media_only(client: TestClient) -> None:
    admin = admin_token(client)
    create_user(client, admin, "bob", "bob-password-123")
    bob = login(client, "bob", "bob-password-123")["access_token"]
    bus = upload(client, admin, sample("bus.jpg")).json()["media_id"]
    zidane = upload(client, admin, sample("zidane.jpg")).json()["media_id"]
    link = client.post(f"/v1/media/{bus}/token", headers=auth(admin)).json()
    assert link["expires_in"] == 3600 and link["url"] == f"/v1/media/{bus}/original?token={link['token']}"

    original = client.get(link["url"])
    assert original.status_code == 200 and original.content == sample("bus.jpg").read_bytes()
    ranged = client.get(link["url"], headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.content == sample("bus.jpg").read_bytes()[:10]
    thumb = client.get(f"/v1/media/{bus}/thumbnail?size=128&token={link['token']}")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"

    assert_envelope(client.get(f"/v1/media/{zidane}/original?token={link['token']}"), 401, "invalid_token")
    assert_envelope(client.get(f"/v1/media/{bus}?token={link['token']}"), 401, "missing_token")
    assert_envelope(client.post(f"/v1/media/{bus}/token", headers=auth(bob)), 404, "media_not_found")
    # a bearer header wins over the query: bob's header with admin's link is bob's request
    assert_envelope(client.get(link["url"], headers=auth(bob)), 404, "media_not_found")


def test_storage_quotas_per_account(client: TestClient) -> None:
    """An admin sets bob's quota (files, bytes): past it an upload is 413 quota_exceeded and
    nothing is stored; the same bytes bob already has cost nothing; /v1/users/me shows the use."""
    admin = admin_token(client)
    bob = create_user(client, admin, "bob", "bobs-password-123")
    bob_id = client.get("/v1/users/me", headers=auth(bob)).json()["id"]
    resp = client.patch(f"/v1/users/{bob_id}", json={"quota_files": 1}, headers=auth(admin))
    assert resp.status_code == 200 and resp.json()["quota_files"] == 1
    first = upload(client, bob, sample("phototest.tif"))
    assert first.status_code == 201
    error = assert_envelope(upload(client, bob, sample("english.png")), 413, "quota_exceeded")
    assert error["details"]["used_files"] == 1 and error["details"]["quota_files"] == 1
    assert upload(client, bob, sample("phototest.tif")).status_code == 201  # already his: no new use
    me = client.get("/v1/users/me", headers=auth(bob)).json()
    assert (me["used_files"], me["used_bytes"]) == (1, sample("phototest.tif").stat().st_size)
    client.patch(f"/v1/users/{bob_id}", json={"quota_files": 0, "quota_bytes": 100_000}, headers=auth(admin))
    assert_envelope(upload(client, bob, sample("english.png")), 413, "quota_exceeded")  # 1.7 MB > 100 kB
    assert client.get("/v1/media", headers=auth(bob)).json()["count"] == 1
    assert upload(client, admin, sample("english.png")).status_code == 201  # the admin has no quota
    assert_envelope(client.patch(f"/v1/users/{bob_id}", json={"quota_files": -1}, headers=auth(admin)), 422)


def test_a_full_media_disk_is_507_and_not_ready(settings: GatewaySettings, tmp_path: Path) -> None:
    """The media volume full (a 1 MiB tmpfs, mounted as root): an upload answers 507 with the
    envelope (it was a 500), leaves no part behind, and /readyz says the disk is low."""
    import subprocess

    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    assert mounted.returncode == 0, f"this test mounts a tmpfs as root: {mounted.stderr}"
    try:
        small = settings.model_copy(update={"core": settings.core.model_copy(update={"media_dir": disk})})
        with TestClient(create_app(small)) as c:
            token = admin_token(c)
            error = assert_envelope(upload(c, token, sample("english.png")), 507, "insufficient_storage")
            assert "disk is full" in error["message"]
            assert list((disk / ".tmp").iterdir()) == []
            ready = c.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["media_disk"].startswith("low disk")
            assert upload(c, token, sample("Rob_Lowe_0001.jpg")).status_code == 201  # 20 kB still fits
    finally:
        subprocess.run(["umount", str(disk)], check=True)
