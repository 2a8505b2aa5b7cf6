"""Signed media URLs at the gateway (in process): valid, forged, expired, bytes gone, feature off."""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import SecretStr

from mediafleet.common.media_access import sign_media_url
from mediafleet.common.settings import CoreSettings
from tests.conftest import sample
from tests.test_capability_jobs import make_stack

SECRET = "media-url-secret-for-tests-0123456789"


def test_signed_media_urls(tmp_path: Path, redis_url: str) -> None:
    core = CoreSettings(
        database_url=f"sqlite:///{tmp_path / 'u.db'}",
        redis_url=redis_url,
        media_dir=tmp_path / "media",
        media_url_secret=SecretStr(SECRET),
    )
    for s in make_stack(core):
        media_id = s.media()
        url = sign_media_url("", media_id, SECRET, 60)
        ok = s.client.get(url)
        assert ok.status_code == 200 and ok.content == sample("english.png").read_bytes()
        assert ok.headers["content-type"] == "image/png"
        forged = s.client.get(sign_media_url("", media_id, "another-secret", 60))
        assert forged.status_code == 403 and forged.json()["error"]["code"] == "bad_signature"
        expired = s.client.get(sign_media_url("", media_id, SECRET, 60, now=time.time() - 61))
        assert expired.status_code == 403 and expired.json()["error"]["code"] == "url_expired"
        tampered = s.client.get(url.replace(media_id, "f" * 64))  # probing for other content
        assert tampered.status_code == 403 and tampered.json()["error"]["code"] == "bad_signature"
        unknown = s.client.get(sign_media_url("", "f" * 64, SECRET, 60))  # signed, but not stored
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "media_not_found"
        for f in (tmp_path / "media").rglob("*.png"):
            f.unlink()
        gone = s.client.get(url)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "media_bytes_missing"


def test_no_secret_no_signed_urls(tmp_path: Path, redis_url: str) -> None:
    core = CoreSettings(
        database_url=f"sqlite:///{tmp_path / 'v.db'}", redis_url=redis_url, media_dir=tmp_path / "m"
    )
    for s in make_stack(core):
        media_id = s.media()
        resp = s.client.get(sign_media_url("", media_id, SECRET, 60))
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "media_not_found"
