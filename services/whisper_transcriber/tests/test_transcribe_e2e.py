"""Speech through the whole fleet as real processes (gateway, job_manager, whisper_transcriber
worker with the real Whisper base weights) on real PostgreSQL and Redis: upload audio and
video, transcribe, SRT/VTT downloads, full-text search over the transcript with time spans,
bad media refused, and a worker SIGKILLed mid-transcription."""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import signal
import time
import wave
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import redis
import srt
import webvtt
from rq.registry import StartedJobRegistry

from mediafleet.common.media import iter_audio
from tests.api_helpers import (
    admin_token,
    assert_envelope,
    assert_openai_error,
    auth,
    create_user,
    upload,
    wait_job,
)
from tests.conftest import sample
from tests.fleet import Fleet
from tests.speech import write_audio

pytestmark = pytest.mark.slow


@pytest.fixture
def speech_fleet(tmp_path: Path, pg_url: str, redis_url: str, real_models_dir: Path):
    f = Fleet(
        tmp_path,
        pg_url,
        redis_url,
        MEDIAFLEET_MODELS_DIR=str(real_models_dir),
        GATEWAY_MAX_MEDIA_DURATION_S="200",
    )
    try:
        for name in ("gateway", "job_manager", "whisper"):
            f.start(name)
        yield f
    finally:
        f.stop_all()


def transcribe(c: httpx.Client, token: str, media_id: str, **options) -> dict:
    body = {
        "media_id": media_id,
        "tasks": ["transcribe"],
        "use_cache": False,
        "options": {"transcribe": options},
    }
    resp = c.post("/v1/jobs", json=body, headers=auth(token))
    assert resp.status_code == 202, resp.text
    return resp.json()["job_id"]


def test_transcripts_search_and_bad_media(speech_fleet: Fleet, tmp_path: Path) -> None:
    with httpx.Client(base_url=speech_fleet.url("gateway"), timeout=60) as c:
        token = admin_token(c)
        jfk = upload(c, token, sample("jfk.flac")).json()
        assert (jfk["kind"], jfk["mime"], jfk["duration_s"]) == ("audio", "audio/flac", 11.0)
        assert jfk["streams"] == [
            {"index": 0, "type": "audio", "codec": "flac", "sample_rate": 44100, "channels": 2}
        ]
        job = wait_job(c, token, transcribe(c, token, jfk["media_id"]), timeout=120)
        assert job["status"] == "succeeded", job
        result = job["results"]["transcribe"]
        assert result["language"] == "en" and "ask not what your country" in result["text"]

        srt_resp = c.get(f"/v1/jobs/{job['job_id']}/transcript?format=srt", headers=auth(token))
        assert srt_resp.status_code == 200 and srt_resp.headers["content-type"].startswith(
            "application/x-subrip"
        )
        cues = list(srt.parse(srt_resp.text))
        assert (
            " ".join(cue.content for cue in cues).split()
            == " ".join(s["text"] for s in result["segments"]).split()
        )
        vtt_resp = c.get(f"/v1/jobs/{job['job_id']}/transcript?format=vtt", headers=auth(token))
        assert vtt_resp.headers["content-type"].startswith("text/vtt")
        assert [cue.text for cue in webvtt.from_buffer(io.StringIO(vtt_resp.text))] == [
            q.content for q in cues
        ]
        txt = c.get(f"/v1/jobs/{job['job_id']}/transcript?format=txt", headers=auth(token))
        assert "fellow Americans" in txt.text and txt.headers["content-type"].startswith("text/plain")
        as_json = c.get(f"/v1/jobs/{job['job_id']}/transcript", headers=auth(token)).json()
        assert as_json["segments"] == result["segments"]
        assert_envelope(
            c.get(f"/v1/jobs/{job['job_id']}/transcript?format=docx", headers=auth(token)),
            404,
            "no_transcript",
        )

        # full-text search finds the sentence with its time span
        hits = c.get("/v1/search", params={"q": "americans"}, headers=auth(token)).json()
        assert [h["media_id"] for h in hits["data"]] == [jfk["media_id"]]
        match = hits["data"][0]["matches"][0]
        assert match["task"] == "transcribe" and match["start"] == result["segments"][0]["start"]
        assert match["end"] == result["segments"][0]["end"] and match["box"] is None

        # a video's audio track; a video without one is refused at job creation
        clip = upload(c, token, sample("short_hamilton_clip.mp4")).json()
        assert (clip["kind"], clip["width"], clip["height"]) == ("video", 640, 360)
        clip_job = wait_job(c, token, transcribe(c, token, clip["media_id"]), timeout=120)
        assert clip_job["status"] == "succeeded" and clip_job["results"]["transcribe"]["segments"], clip_job
        mute = upload(c, token, sample("mmpose_demo.mp4")).json()
        refused = c.post(
            "/v1/jobs", json={"media_id": mute["media_id"], "tasks": ["transcribe"]}, headers=auth(token)
        )
        assert_envelope(refused, 422, "missing_stream")
        image = upload(c, token, sample("english.png")).json()
        refused = c.post(
            "/v1/jobs", json={"media_id": image["media_id"], "tasks": ["transcribe"]}, headers=auth(token)
        )
        assert_envelope(refused, 422, "unsupported_media_kind")
        bad_option = c.post(
            "/v1/jobs",
            json={
                "media_id": jfk["media_id"],
                "tasks": ["transcribe"],
                "options": {"transcribe": {"beam_size": 99}},
            },
            headers=auth(token),
        )
        assert bad_option.status_code == 422, bad_option.text

        # bad uploads: truncated, zero-length (a WAV header only), too long, not media
        cut = tmp_path / "cut.flac"
        cut.write_bytes(sample("jfk.flac").read_bytes()[:300_000])
        assert_envelope(upload(c, token, cut), 422, "invalid_media")
        empty = tmp_path / "empty.wav"
        with wave.open(str(empty), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(16_000)  # fmt: skip
        assert_envelope(upload(c, token, empty), 422, "invalid_media")
        long = tmp_path / "long.wav"  # 201 s of silence, over GATEWAY_MAX_MEDIA_DURATION_S=200
        with wave.open(str(long), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(8_000)  # fmt: skip
            w.writeframes(b"\x00\x00" * 8_000 * 201)
        assert_envelope(upload(c, token, long), 422, "media_too_long")
        notes = tmp_path / "notes.mp3"
        notes.write_text("[00:01.00] lyrics, not audio\n")
        assert_envelope(upload(c, token, notes), 415, "unsupported_media_type")
        for refused_file in (cut, empty, long, notes):  # nothing of a refused upload is kept
            media_id = hashlib.sha256(refused_file.read_bytes()).hexdigest()
            assert_envelope(c.get(f"/v1/media/{media_id}", headers=auth(token)), 404, "media_not_found")
        assert not list((tmp_path / "media" / ".tmp").iterdir())


def test_worker_killed_mid_transcription_is_retried(speech_fleet: Fleet, tmp_path: Path) -> None:
    """multilingual.mp3 three times (180 s, ~20 s to transcribe): SIGKILL 3 s into the task."""
    audio = np.concatenate(list(iter_audio(sample("multilingual.mp3"))), axis=1)[0]
    pcm = (np.clip(np.tile(audio, 3), -1, 1) * 32767).astype("<i2")
    path = tmp_path / "long.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16_000), w.writeframes(pcm.tobytes())  # fmt: skip
    r = redis.Redis.from_url(speech_fleet.env["MEDIAFLEET_REDIS_URL"])
    with httpx.Client(base_url=speech_fleet.url("gateway"), timeout=60) as c:
        token = admin_token(c)
        media = upload(c, token, path).json()
        job_id = transcribe(c, token, media["media_id"])
        started = StartedJobRegistry("whisper_transcriber:normal", connection=r)
        deadline = time.monotonic() + 60
        while not started.get_job_ids() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert started.get_job_ids(), "the task never started"
        time.sleep(3)
        speech_fleet.stop("whisper", signal.SIGKILL)
        speech_fleet.start("whisper")
        job = wait_job(c, token, job_id, timeout=240)
    assert job["status"] == "succeeded" and job["tasks"][0]["attempts"] == 2, job
    result = job["results"]["transcribe"]
    assert result["duration_s"] == pytest.approx(179.7, abs=0.1)
    assert {x["language"] for x in result["languages"]} == {"en", "de"}
    assert sum("Permission is hereby granted" in s["text"] for s in result["segments"]) == 3


JFK = (
    "and so my fellow americans ask not what your country can do for you ask what you can do for your country"
)


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def test_openai_client_transcribes_and_translates(speech_fleet: Fleet, tmp_path: Path) -> None:
    """The official ``openai`` client, unchanged, against POST /v1/audio/transcriptions and
    /v1/audio/translations: each request stores the file as the caller's media and runs a
    transcribe job through job_manager and the worker; every response format parses."""
    base = speech_fleet.url("gateway")
    with httpx.Client(base_url=base, timeout=120) as c:
        token = admin_token(c)
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=token, max_retries=0, timeout=300)
    jfk = sample("jfk.flac")
    audio = ("jfk.flac", jfk.read_bytes())

    plain = client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert _words(plain.text) == JFK.split(), plain.text
    verbose = client.audio.transcriptions.create(
        model="whisper-1",
        file=audio,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        language="en",
    )
    assert verbose.language == "en" and verbose.duration == pytest.approx(11.0, abs=0.1)
    assert verbose.segments and verbose.segments[0].start >= 0 and verbose.segments[-1].end <= 11.1
    words = verbose.words or []
    assert [_words(w.word)[0] for w in words] == JFK.split()
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))
    cues = list(
        srt.parse(client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="srt"))
    )
    assert _words(" ".join(c.content for c in cues)) == JFK.split()
    vtt = tmp_path / "jfk.vtt"
    vtt.write_text(client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="vtt"))
    assert _words(" ".join(c.text for c in webvtt.read(str(vtt)))) == JFK.split()

    # the client marks translations deprecated (OpenAI's newer models do not offer it); whisper-1's
    # endpoint, and ours, still answer
    with pytest.warns(DeprecationWarning):
        german = client.audio.translations.create(
            model="whisper-1", file=("fleurs-de-000.ogg", sample("fleurs-de-000.ogg").read_bytes())
        )
    assert german.text and not {"sollten", "die", "und"} & set(_words(german.text)), german.text

    with httpx.Client(base_url=base, timeout=300) as c:
        # the work is the caller's: a job on a media of its library
        resp = c.post(
            "/v1/audio/transcriptions",
            files={"file": ("jfk.flac", jfk.read_bytes())},
            data={"model": "whisper-1", "response_format": "text"},
            headers=auth(token),
        )
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
        assert _words(resp.text) == JFK.split()
        job = c.get(f"/v1/jobs/{resp.headers['x-mediafleet-job-id']}", headers=auth(token)).json()
        assert job["status"] == "succeeded" and [t["name"] for t in job["tasks"]] == ["transcribe"]
        library = c.get("/v1/media", headers=auth(token)).json()["data"]
        assert job["media_id"] in {m["media_id"] for m in library}
        # OpenAI's error shape: no file, a bad field, a file that is not audio
        no_file = c.post("/v1/audio/transcriptions", data={"model": "whisper-1"}, headers=auth(token))
        assert_openai_error(no_file, 400, "missing_file")
        bad = c.post(
            "/v1/audio/transcriptions",
            files={"file": ("jfk.flac", jfk.read_bytes())},
            data={"model": "whisper-1", "response_format": "xml"},
            headers=auth(token),
        )
        assert_openai_error(bad, 400, "invalid_request_error", param="response_format")
        text = c.post(
            "/v1/audio/transcriptions",
            files={"file": ("notes.mp3", b"not audio at all")},
            data={"model": "whisper-1"},
            headers=auth(token),
        )
        assert_openai_error(text, 415)
        assert_openai_error(c.post("/v1/audio/translations", data={"model": "whisper-1"}), 401)


def test_a_diarized_transcript_s_speakers_are_named_by_their_user(
    speech_fleet: Fleet, tmp_path: Path
) -> None:
    """Two recordings joined (jfk.flac, a FLEURS German reader): two speakers through the API;
    the user names one, and the job, its SRT and VTT say the name; nobody else can."""
    joined = np.concatenate(
        [
            np.concatenate(list(iter_audio(sample(n), "mix")), axis=1)
            for n in ("jfk.flac", "fleurs-de-000.ogg")
        ],
        axis=1,
    )
    path = write_audio(tmp_path / "two.flac", joined, "flac", "flac")
    with httpx.Client(base_url=speech_fleet.url("gateway"), timeout=60) as c:
        token = admin_token(c)
        media = upload(c, token, path).json()
        job = wait_job(c, token, transcribe(c, token, media["media_id"], diarize=True), timeout=120)
        assert job["status"] == "succeeded", job
        result = job["results"]["transcribe"]
        assert [(s["id"], s["name"]) for s in result["speakers"]] == [(1, None), (2, None)]
        assert result["segments"][0]["speaker"] == 1 and result["segments"][-1]["speaker"] == 2
        names = f"/v1/jobs/{job['job_id']}/tasks/transcribe/names"
        named = c.put(names, json={"names": {"1": "  John   F. Kennedy "}}, headers=auth(token))
        assert named.status_code == 200, named.text
        assert [s["name"] for s in named.json()["result"]["speakers"]] == ["John F. Kennedy", None]
        again = c.get(f"/v1/jobs/{job['job_id']}", headers=auth(token))
        assert again.headers["cache-control"] == "no-store"
        assert again.json()["results"]["transcribe"]["speakers"][0]["name"] == "John F. Kennedy"
        cues = list(
            srt.parse(c.get(f"/v1/jobs/{job['job_id']}/transcript?format=srt", headers=auth(token)).text)
        )
        assert cues[0].content.startswith("John F. Kennedy: ") and cues[-1].content.startswith("Speaker 2: ")
        vtt = c.get(f"/v1/jobs/{job['job_id']}/transcript?format=vtt", headers=auth(token)).text
        assert [cue.voice for cue in webvtt.from_buffer(io.StringIO(vtt))][0] == "John F. Kennedy"
        # bad names lose nothing: an id the transcript lacks, a task without names, a stranger
        assert_envelope(
            c.put(names, json={"names": {"3": "Nobody"}}, headers=auth(token)), 422, "unknown_name"
        )
        assert_envelope(c.put(names, json={"names": {"1": "x" * 65}}, headers=auth(token)), 422)
        assert_envelope(c.put(names, json={"names": {}}, headers=auth(token)), 422)
        assert_envelope(
            c.put(
                f"/v1/jobs/{job['job_id']}/tasks/ocr/names", json={"names": {"1": "A"}}, headers=auth(token)
            ),
            404,
            "task_not_found",
        )
        other = create_user(c, token, "listener", "listener-password-1")
        assert_envelope(
            c.put(names, json={"names": {"1": "Mallory"}}, headers=auth(other)), 404, "job_not_found"
        )
        kept = c.get(f"/v1/jobs/{job['job_id']}", headers=auth(token)).json()["results"]["transcribe"]
        assert [s["name"] for s in kept["speakers"]] == ["John F. Kennedy", None]
        cleared = c.put(names, json={"names": {"1": None}}, headers=auth(token)).json()["result"]
        assert [s["name"] for s in cleared["speakers"]] == [None, None]
