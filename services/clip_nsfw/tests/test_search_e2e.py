"""Semantic search and "more like this" through the whole fleet, as real processes on real
PostgreSQL and Redis: clip jobs -> job_manager writes each embedding to vector_db -> the
gateway embeds a search text through a clip worker (a contract query) and searches.

The CLIP model is the tiny generated one (no CLIP weights here), so only mechanics are
checked: what is stored, who sees it, and that every similarity and every ranking equals
cosine similarity computed here with numpy from the embeddings the jobs returned (and, for
text, from the same checkpoint loaded in this process). Semantic quality needs real
weights: ``test_clip_real.py`` (marker ``real_models``).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from tiny_clip import CONFIG, NAME, make_checkpoint, text_vector

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
IMAGES = ("bus.jpg", "zidane.jpg", "view.jpg", "obama.jpg")


@pytest.fixture
def clip_fleet(tmp_path: Path, pg_url: str, redis_url: str):
    ckpt = make_checkpoint(tmp_path / "tiny-clip.pt")
    f = Fleet(
        tmp_path,
        pg_url,
        redis_url,
        CLIP_MODEL=NAME,
        CLIP_PRETRAINED="seed0",
        CLIP_WEIGHTS=str(ckpt),
        CLIP_ARCH_CONFIG=str(CONFIG),
        CLIP_PRELOAD=json.dumps(["open_clip"]),
    )
    try:
        for name in ("vector_db", "gateway", "job_manager", "clip"):
            f.start(name)
        f.checkpoint = ckpt  # type: ignore[attr-defined]
        yield f
    finally:
        f.stop_all()


def _clip_job(c: httpx.Client, token: str, media_id: str) -> dict:
    resp = c.post(
        "/v1/jobs", json={"media_id": media_id, "tasks": ["clip"], "use_cache": False}, headers=auth(token)
    )
    assert resp.status_code == 202, resp.text
    return wait_job(
        c,
        token,
        resp.json()["job_id"],
        timeout=120,
        until=vectors_settled,
    )


def test_similar_and_semantic_search_rank_by_cosine_and_stay_per_user(clip_fleet: Fleet) -> None:
    with httpx.Client(base_url=clip_fleet.url("gateway"), timeout=60) as c:
        token = admin_token(c)
        ids, vecs = {}, {}
        for name in IMAGES:
            media_id = upload(c, token, sample(name)).json()["media_id"]
            job = _clip_job(c, token, media_id)
            assert job["status"] == "succeeded", job
            assert job["tasks"][0]["vectors"] == {"state": "synced", "items": 1, "attempts": 1, "error": None}
            ids[name], vecs[name] = media_id, np.asarray(job["results"]["clip"]["embedding"])
        collection = job["results"]["clip"]["collection"]

        # image -> image: every other media, by cosine similarity of the stored embeddings
        resp = c.get(f"/v1/media/{ids['bus.jpg']}/similar", headers=auth(token))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        expected = sorted(
            ((float(vecs["bus.jpg"] @ vecs[n]), n) for n in IMAGES if n != "bus.jpg"), reverse=True
        )
        assert body["collection"] == collection and body["count"] == 3
        assert [(h["filename"], h["task"]) for h in body["data"]] == [(n, "clip") for _, n in expected]
        assert [h["similarity"] for h in body["data"]] == pytest.approx([s for s, _ in expected], abs=1e-5)
        assert c.get(f"/v1/media/{ids['bus.jpg']}/similar?limit=1", headers=auth(token)).json()["count"] == 1

        # text -> image: the text embedded by the clip worker, compared with the same vectors
        text = "a red double-decker bus"
        hits = c.get("/v1/search", params={"q": text, "mode": "semantic"}, headers=auth(token)).json()
        query = text_vector(clip_fleet.checkpoint, text)  # type: ignore[attr-defined]
        expected = sorted(((float(query @ vecs[n]), n) for n in IMAGES), reverse=True)
        assert hits["query"] == text and hits["collection"] == collection and hits["count"] == 4
        assert [h["filename"] for h in hits["data"]] == [n for _, n in expected]
        assert [h["similarity"] for h in hits["data"]] == pytest.approx([s for s, _ in expected], abs=1e-4)
        assert all(-1.0 <= h["similarity"] <= 1.0 for h in hits["data"])

        # errors: unknown media, media without an embedding, a task that stores none
        assert_envelope(c.get("/v1/media/nope/similar", headers=auth(token)), 404, "media_not_found")
        plain = upload(c, token, sample("english.png")).json()["media_id"]
        err = assert_envelope(c.get(f"/v1/media/{plain}/similar", headers=auth(token)), 409, "no_embedding")
        assert "clip" in err["message"]
        assert_envelope(
            c.get(f"/v1/media/{plain}/similar?task=ocr", headers=auth(token)), 400, "unknown_task"
        )

        # another user sees none of it, and finds only their own media
        bob = create_user(c, token, "bob", "bobs-password-123")
        assert_envelope(
            c.get(f"/v1/media/{ids['bus.jpg']}/similar", headers=auth(bob)), 404, "media_not_found"
        )
        view = upload(c, bob, sample("view.jpg")).json()["media_id"]  # same bytes as the admin's
        assert _clip_job(c, bob, view)["tasks"][0]["vectors"]["state"] == "synced"
        assert c.get(f"/v1/media/{view}/similar", headers=auth(bob)).json()["count"] == 0
        mine = c.get("/v1/search", params={"q": text, "mode": "semantic"}, headers=auth(bob)).json()
        assert [h["filename"] for h in mine["data"]] == ["view.jpg"]


def test_embeddings_wait_for_vector_db_and_semantic_search_needs_a_worker(clip_fleet: Fleet) -> None:
    with httpx.Client(base_url=clip_fleet.url("gateway"), timeout=60) as c:
        token = admin_token(c)
        clip_fleet.stop("vector_db")
        media_id = upload(c, token, sample("zidane.jpg")).json()["media_id"]
        resp = c.post("/v1/jobs", json={"media_id": media_id, "tasks": ["clip"]}, headers=auth(token))
        job_id = resp.json()["job_id"]
        job = wait_job(
            c,
            token,
            job_id,
            until=lambda j: j["status"] == "succeeded" and j["tasks"][0]["vectors"]["attempts"] >= 2,
        )
        sync = job["tasks"][0]["vectors"]
        assert (
            sync["state"] == "pending" and "unreachable" in sync["error"]
        )  # the result is kept, the write waits
        assert_envelope(
            c.get(f"/v1/media/{media_id}/similar", headers=auth(token)), 503, "vector_db_unavailable"
        )

        clip_fleet.start("vector_db")
        job = wait_job(c, token, job_id, until=lambda j: j["tasks"][0]["vectors"]["state"] != "pending")
        assert job["tasks"][0]["vectors"]["state"] == "synced" and job["tasks"][0]["vectors"]["error"] is None
        hits = c.get(
            "/v1/search", params={"q": "a footballer", "mode": "semantic"}, headers=auth(token)
        ).json()
        assert [h["media_id"] for h in hits["data"]] == [media_id]

        clip_fleet.stop("clip")
        err = assert_envelope(
            c.get("/v1/search", params={"q": "a footballer", "mode": "semantic"}, headers=auth(token)),
            503,
            "query_unavailable",
        )
        assert "no clip_nsfw worker" in err["message"]
