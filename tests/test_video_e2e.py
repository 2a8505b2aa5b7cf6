"""Video through the whole fleet as real processes (gateway, job_manager, and the OCR, face_reid
and whisper_transcriber workers with real weights) on real PostgreSQL and Redis: image tasks on
sampled frames, the audio track transcribed, one timeline, faces across frames as one person's
track, and a video without audio (no transcript, no error)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.api_helpers import admin_token, assert_envelope, auth, upload, wait_job
from tests.conftest import sample
from tests.fleet import Fleet

pytestmark = pytest.mark.slow


@pytest.fixture
def video_fleet(tmp_path: Path, pg_url: str, redis_url: str, real_models_dir: Path):
    f = Fleet(tmp_path, pg_url, redis_url, MEDIAFLEET_MODELS_DIR=str(real_models_dir))
    try:
        for name in ("gateway", "job_manager", "ocr", "faces", "whisper"):
            f.start(name)
        yield f
    finally:
        f.stop_all()


def run_job(c: httpx.Client, token: str, media_id: str, tasks: list[str]) -> dict:
    resp = c.post(
        "/v1/jobs", json={"media_id": media_id, "tasks": tasks, "use_cache": False}, headers=auth(token)
    )
    assert resp.status_code == 202, resp.text
    job = wait_job(c, token, resp.json()["job_id"], timeout=300)
    assert job["status"] == "succeeded", job
    return {**job, "skipped": resp.json()["skipped"]}


def test_hamilton_clip_timeline_with_miranda_enrolled(video_fleet: Fleet) -> None:
    with httpx.Client(base_url=video_fleet.url("gateway"), timeout=60) as c:
        token = admin_token(c)
        # enrol Lin-Manuel Miranda from the reference photo (MANIFEST: same person as the singer)
        ref = upload(c, token, sample("lin-manuel-miranda.png")).json()["media_id"]
        ref_face = run_job(c, token, ref, ["faces"])["results"]["faces"]["faces"][0]
        resp = c.post(
            "/v1/people",
            json={"name": "Lin-Manuel Miranda", "face_ids": [ref_face["face_id"]]},
            headers=auth(token),
        )
        assert resp.status_code == 201, resp.text
        miranda = resp.json()["id"]

        clip = upload(c, token, sample("short_hamilton_clip.mp4")).json()
        job = run_job(c, token, clip["media_id"], ["faces", "transcribe", "ocr"])
        assert job["skipped"] == {}
        faces = job["results"]["faces"]
        assert faces["kind"] == "video_frames" and [f["t"] for f in faces["frames"]] == [
            0.0,
            2.002,
            4.004,
            6.006,
            8.008,
        ]

        timeline = c.get(f"/v1/jobs/{job['job_id']}/timeline", headers=auth(token)).json()
        assert timeline["duration_s"] == pytest.approx(10.02, abs=0.01)
        assert [f["t"] for f in timeline["frames"]] == [0.0, 2.002, 4.004, 6.006, 8.008]
        assert all(set(f["results"]) == {"faces", "ocr"} for f in timeline["frames"])
        # the WH.GOV watermark (MANIFEST) read on the frames
        assert any("GOV" in f["results"]["ocr"]["text"].upper() for f in timeline["frames"])
        transcript = timeline["transcript"]
        assert transcript["language"] == "en" and len(transcript["segments"]) >= 2
        assert all(0 <= s["start"] <= s["end"] <= 10.1 for s in transcript["segments"])
        # Miranda's faces across frames are one track, labelled with the enrolled name
        named = [t for t in timeline["tracks"] if t["cluster_id"] == miranda]
        assert named and named[0]["person"]["name"] == "Lin-Manuel Miranda", timeline["tracks"]
        assert len(named[0]["frames"]) >= 3 and named[0]["first_t"] <= named[0]["last_t"]
        per_frame = [
            face
            for f in timeline["frames"]
            for face in f["results"]["faces"]["faces"]
            if face["cluster_id"] == miranda
        ]
        assert all(face["person"]["name"] == "Lin-Manuel Miranda" for face in per_frame)
        # the person's media now lists the clip; his speech is searchable with its time span
        media = c.get(f"/v1/people/{miranda}/media", headers=auth(token)).json()
        assert clip["media_id"] in [m["media_id"] for m in media["data"]]
        word = transcript["segments"][0]["text"].split()[-1].strip(".,!?")
        hits = c.get("/v1/search", params={"q": word}, headers=auth(token)).json()
        spans = [m for h in hits["data"] for m in h["matches"] if m["task"] == "transcribe"]
        assert spans and spans[0]["start"] is not None

        # a video without an audio track: frames only, no transcript, no error
        mute = upload(c, token, sample("mmpose_demo.mp4")).json()
        mute_job = run_job(c, token, mute["media_id"], ["ocr", "transcribe"])
        assert list(mute_job["skipped"]) == ["transcribe"] and [t["name"] for t in mute_job["tasks"]] == [
            "ocr"
        ]
        mute_timeline = c.get(f"/v1/jobs/{mute_job['job_id']}/timeline", headers=auth(token)).json()
        assert mute_timeline["transcript"] is None and [f["t"] for f in mute_timeline["frames"]] == [0.0]
        words = set(mute_timeline["frames"][0]["results"]["ocr"]["text"].split())
        assert {"LUSH", "MYER"} <= words  # shop signs (MANIFEST)
        # OCR text of a frame is found by search, with the frame's time
        hit = c.get("/v1/search", params={"q": "MYER"}, headers=auth(token)).json()["data"][0]
        assert hit["media_id"] == mute["media_id"] and hit["matches"][0]["start"] == 0.0
        assert hit["matches"][0]["ref"].startswith("frames[0].result.lines[")
        assert_envelope(
            c.post(
                "/v1/jobs", json={"media_id": mute["media_id"], "tasks": ["transcribe"]}, headers=auth(token)
            ),
            422,
            "missing_stream",
        )
