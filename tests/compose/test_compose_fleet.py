"""The fleet in Docker Compose, over HTTPS through nginx: the main job, then faults."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.api_helpers import auth, create_job, upload, vectors_settled, wait_job
from tests.compose.conftest import ADMIN_PASSWORD, ROOT, ComposeFleet
from tests.conftest import sample

pytestmark = pytest.mark.compose
NEW_PASSWORD = ADMIN_PASSWORD


@pytest.fixture(scope="module")
def token(fleet: ComposeFleet) -> str:
    with fleet.client() as c:
        first = c.post("/v1/auth/token", data={"username": "admin", "password": fleet.admin_password})
        assert first.status_code == 200, first.text
        assert first.json()["must_change_password"] is True
        changed = c.post(
            "/v1/auth/password",
            json={"current_password": fleet.admin_password, "new_password": NEW_PASSWORD},
            headers=auth(first.json()["access_token"]),
        )
        assert changed.status_code == 200, changed.text
        return changed.json()["access_token"]


def test_compose_files_validate(fleet: ComposeFleet, tmp_path: Path) -> None:
    gpu = fleet.compose("-f", str(ROOT / "docker-compose.gpu.yml"), "config").stdout
    assert "Dockerfile.gpu" in gpu and "driver: nvidia" in gpu and "mediafleet/ocr_detection:gpu" in gpu
    # an empty env file: a checkout with its own .env (as the README suggests) must not set them
    empty = tmp_path / "empty.env"
    empty.write_text("")
    bare = subprocess.run(
        ["docker-compose", "--env-file", str(empty), "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert bare.returncode != 0 and re.search(
        r": set [A-Z_]+ in \.env", bare.stderr
    )  # required secrets are required
    worker = subprocess.run(
        ["docker-compose", "--env-file", str(empty), "-f", "docker-compose.worker.yml", "config"],
        cwd=ROOT, capture_output=True, text=True, env={"PATH": os.environ["PATH"]},
    )  # fmt: skip
    assert worker.returncode != 0 and re.search(r": set [A-Z_]+ in worker\.env", worker.stderr), worker.stderr


def test_tls_redirect_and_headers(fleet: ComposeFleet) -> None:
    plain = httpx.get(f"http://127.0.0.1:{fleet.http_port}/api/v1/jobs", follow_redirects=False)
    assert plain.status_code == 301
    assert plain.headers["location"] == f"https://127.0.0.1:{fleet.https_port}/api/v1/jobs"
    with fleet.client() as c:
        resp = c.get("/healthz")
        assert resp.status_code == 200 and resp.json() == {"status": "ok"}
        assert resp.headers["strict-transport-security"].startswith("max-age=")
        assert resp.headers["x-content-type-options"] == "nosniff"
        # the API runs nothing; the web UI only its own scripts and styles
        assert resp.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        app = c.get(fleet.base + "/library")  # an app route: index.html, never cached
        assert app.status_code == 200 and '<div id="app">' in app.text
        assert app.headers["cache-control"] == "no-cache"
        csp = app.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe" not in csp and "frame-ancestors 'none'" in csp
        assert_error = c.get("/v1/jobs")
        assert assert_error.status_code == 401 and assert_error.json()["error"]["code"] == "missing_token"
        # Prometheus metrics stay on the internal network
        assert c.get("/metrics").status_code == 404
        # a link token in the URL never reaches nginx's access log
        c.get("/v1/media/m/original", params={"token": "secret-link-token-123", "x": "1"})
    logs = fleet.compose("logs", "--no-color", "nginx").stdout
    assert "/api/v1/media/m/original?token=REDACTED&x=1" in logs and "secret-link-token-123" not in logs
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the fleet's certificate refuses it
        httpx.get(fleet.base + "/api/healthz")


def test_main_job_over_https(fleet: ComposeFleet, token: str) -> None:
    with fleet.client() as c:
        media = upload(c, token, sample("english.png"))
        assert media.status_code == 201, media.text
        job_id = create_job(c, token, media.json()["media_id"])
        events = []
        with c.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth(token)) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        assert events[-1]["status"] == "succeeded"
        job = c.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()
        assert "Clean hands with soap and water" in job["results"]["ocr"]["text"].splitlines()
        hits = c.get("/v1/search", params={"q": "soap"}, headers=auth(token)).json()
        assert hits["data"][0]["media_id"] == media.json()["media_id"]
        assert hits["data"][0]["matches"][0]["text"] == "Clean hands with soap and water"


@pytest.mark.parametrize("runtime", [None, "onnx"])
def test_pose_job_on_real_weights(fleet: ComposeFleet, token: str, runtime: str | None) -> None:
    """The pose service reads YOLO11n-pose (.pt, and its ONNX export) from the models volume."""
    with fleet.client() as c:
        media_id = upload(c, token, sample("zidane.jpg")).json()["media_id"]
        body = {"media_id": media_id, "tasks": ["pose"], "use_cache": False}
        if runtime:
            body["options"] = {"pose": {"runtime": runtime}}
        resp = c.post("/v1/jobs", json=body, headers=auth(token))
        assert resp.status_code == 202, resp.text
        job = wait_job(c, token, resp.json()["job_id"], timeout=180)
    assert job["status"] == "succeeded", job
    pose = job["results"]["pose"]
    assert pose["runtime"] == (runtime or "pt") and len(pose["people"]) == 2
    assert all(len(p["keypoints"]) == 17 for p in pose["people"])


def test_nsfw_job_on_real_weights(fleet: ComposeFleet, token: str) -> None:
    """clip_nsfw scores bus.jpg with NudeNet 320n from the models volume: safe, shoes seen as covered feet."""
    with fleet.client() as c:
        media_id = upload(c, token, sample("bus.jpg")).json()["media_id"]
        resp = c.post("/v1/jobs", json={"media_id": media_id, "tasks": ["nsfw"]}, headers=auth(token))
        assert resp.status_code == 202, resp.text
        job = wait_job(c, token, resp.json()["job_id"], timeout=180)
    assert job["status"] == "succeeded", job
    verdict = job["results"]["nsfw"]["nsfw"]
    assert verdict["label"] == "safe" and verdict["engine"] == "nudenet" and verdict["score"] < 0.5
    assert "FEET_COVERED" in {d["label"] for d in verdict["detections"]}


def test_clip_embeddings_reach_vector_db_for_similar_and_semantic_search(
    fleet: ComposeFleet, token: str
) -> None:
    """clip (tiny generated open_clip checkpoint from the models volume) -> job_manager writes the
    embeddings to vector_db -> /similar and semantic search through nginx, cosine-ranked."""
    import numpy as np

    vecs = {}
    with fleet.client() as c:
        for name in ("zidane.jpg", "view.jpg", "obama.jpg"):
            media_id = upload(c, token, sample(name)).json()["media_id"]
            resp = c.post("/v1/jobs", json={"media_id": media_id, "tasks": ["clip"]}, headers=auth(token))
            assert resp.status_code == 202, resp.text
            job = wait_job(
                c,
                token,
                resp.json()["job_id"],
                timeout=180,
                until=vectors_settled,
            )
            assert job["status"] == "succeeded" and job["tasks"][0]["vectors"]["state"] == "synced", job
            vecs[media_id] = np.asarray(job["results"]["clip"]["embedding"])
        first, *others = list(vecs)
        body = c.get(f"/v1/media/{first}/similar", headers=auth(token)).json()
        expected = sorted(((float(vecs[first] @ vecs[m]), m) for m in others), reverse=True)
        assert [h["media_id"] for h in body["data"]] == [m for _, m in expected]
        assert [h["similarity"] for h in body["data"]] == pytest.approx([s for s, _ in expected], abs=1e-5)
        hits = c.get("/v1/search", params={"q": "a man in a suit", "mode": "semantic"}, headers=auth(token))
        assert hits.status_code == 200, hits.text
        assert hits.json()["collection"] == "clip-mf-tiny-clip-seed0"
        assert sorted(h["media_id"] for h in hits.json()["data"]) == sorted(vecs)
    collections = fleet.compose(
        "exec", "-T", "vector_db", "curl", "-fsS", "-H", f"Authorization: Bearer {fleet.internal_token}",
        "http://127.0.0.1:8103/v1/collections",
    ).stdout  # fmt: skip
    # nothing else on the fleet's network reads vectors: no token, 401
    anonymous = fleet.compose(
        "exec", "-T", "vector_db", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
        "http://127.0.0.1:8103/v1/collections", check=False,
    ).stdout  # fmt: skip
    assert anonymous.strip() == "401", anonymous
    (coll,) = [c for c in json.loads(collections)["data"] if c["name"] == "clip-mf-tiny-clip-seed0"]
    assert coll["dim"] == 32 and coll["count"] >= 3


def _docker_stats(fleet: ComposeFleet) -> dict[str, str]:
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}\t{{.CPUPerc}}"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return {line.split("\t")[0]: line for line in out.splitlines() if line.startswith(fleet.project)}


def test_faces_job_on_real_weights_with_people_and_fleet_memory(fleet: ComposeFleet, token: str) -> None:
    """face_reid reads MTCNN and dlib's models from the models volume: t1.jpg's 6 faces become 6
    unnamed people; Obama's two photos one person; docker stats of the fleet is printed under the jobs."""
    with fleet.client() as c:
        jobs = []
        for name in ("t1.jpg", "obama.jpg", "obama2.jpg"):
            media_id = upload(c, token, sample(name)).json()["media_id"]
            resp = c.post("/v1/jobs", json={"media_id": media_id, "tasks": ["faces"], "use_cache": False},
                          headers=auth(token))  # fmt: skip
            assert resp.status_code == 202, resp.text
            jobs.append(resp.json()["job_id"])
        time.sleep(2)
        stats = _docker_stats(fleet)
        print("\n== docker stats under 3 faces jobs\n" + "\n".join(stats[k] for k in sorted(stats)))
        done = [wait_job(c, token, j, timeout=240, until=vectors_settled) for j in jobs]
        assert [j["status"] for j in done] == ["succeeded"] * 3, done
        t1, obama, obama2 = (j["results"]["faces"] for j in done)
        assert len(t1["faces"]) == 6 and (t1["detector"], t1["embedder"]) == ("mtcnn", "dlib")
        assert len({f["cluster_id"] for f in t1["faces"]}) == 6
        assert obama["faces"][0]["cluster_id"] == obama2["faces"][0]["cluster_id"]
        person = c.post("/v1/people", json={"name": "Barack Obama", "face_ids": [obama["faces"][0]["face_id"]]},
                        headers=auth(token))  # fmt: skip
        assert person.status_code == 201 and person.json()["faces"] == 2, person.text
        matches = c.get(f"/v1/faces/{obama['faces'][0]['face_id']}/matches", headers=auth(token)).json()
        assert [m["face"]["face_id"] for m in matches["data"]] == [obama2["faces"][0]["face_id"]]
    assert any("face_reid" in name for name in stats), stats


def test_transcribe_job_on_real_weights_with_srt_and_fleet_memory(fleet: ComposeFleet, token: str) -> None:
    """whisper_transcriber reads Whisper base from the models volume: multilingual.mp3 comes back
    in English then German, as SRT through nginx; docker stats of the whole fleet under the job."""
    with fleet.client() as c:
        media = upload(c, token, sample("multilingual.mp3")).json()
        assert (media["kind"], media["duration_s"]) == ("audio", 59.9)
        resp = c.post("/v1/jobs", json={"media_id": media["media_id"], "tasks": ["transcribe"], "use_cache": False},
                      headers=auth(token))  # fmt: skip
        assert resp.status_code == 202, resp.text
        time.sleep(4)
        stats = _docker_stats(fleet)
        print("\n== docker stats under a transcribe job\n" + "\n".join(stats[k] for k in sorted(stats)))
        job = wait_job(c, token, resp.json()["job_id"], timeout=240)
        assert job["status"] == "succeeded", job
        result = job["results"]["transcribe"]
        assert [x["language"] for x in result["languages"]] == ["en", "de"]
        assert (result["compute_type"], result["device"]) == ("int8", "cpu")
        srt_text = c.get(f"/v1/jobs/{job['job_id']}/transcript?format=srt", headers=auth(token)).text
        assert srt_text.startswith("1\n00:00:00,000 --> ") and "Dokumentationsdateien" in srt_text
        hits = c.get("/v1/search", params={"q": "Dokumentationsdateien"}, headers=auth(token)).json()
        assert hits["data"][0]["matches"][0]["start"] >= 30.0
    assert any("whisper_transcriber" in name for name in stats), stats


def test_llm_through_nginx_openai_client_summary_and_ask(fleet: ComposeFleet, token: str) -> None:
    """llm_service loads SmolLM2 from the models volume; the official openai client goes through
    nginx (TLS) and the gateway, streaming included; a transcribe + summarize job; /v1/ask."""
    import openai

    http = httpx.Client(verify=ssl.create_default_context(cafile=str(fleet.ca)), timeout=120)
    client = openai.OpenAI(
        base_url=fleet.base + "/api/v1/llm", api_key=token, http_client=http, max_retries=0
    )
    ask = [{"role": "user", "content": "Say hello."}]
    whole = client.chat.completions.create(model="mediafleet-llm", messages=ask, temperature=0, max_tokens=24)
    stream = client.chat.completions.create(
        model="mediafleet-llm", messages=ask, temperature=0, max_tokens=24, stream=True
    )
    parts = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert whole.choices[0].message.content and parts == whole.choices[0].message.content
    with fleet.client() as c:
        media_id = upload(c, token, sample("jfk.flac")).json()["media_id"]
        resp = c.post("/v1/jobs", json={"media_id": media_id, "tasks": ["transcribe", "summarize"]},
                      headers=auth(token))  # fmt: skip
        job = wait_job(c, token, resp.json()["job_id"], timeout=240)
        assert job["status"] == "succeeded", job
        assert job["results"]["summarize"]["summary"] and job["results"]["summarize"]["sources"] == [
            "transcribe"
        ]
        answer = c.post(
            "/v1/ask", json={"question": "What did the Americans ask?"}, headers=auth(token)
        ).json()
        assert answer["answer"] and any(x["media_id"] == media_id for x in answer["citations"])


def tiled_page(path: Path, n: int) -> Path:
    """english.png tiled n x n on one page: an OCR task that runs for seconds (tens, 4 x 4 on a
    busy 2-core machine), long enough to act on while it runs."""
    src = Image.open(sample("english.png")).convert("RGB")
    big = Image.new("RGB", (src.width * n, src.height * n), "white")
    for i in range(n):
        for j in range(n):
            big.paste(src, (i * src.width, j * src.height))
    big.save(path)
    return path


def test_kill_ai_worker_mid_task(fleet: ComposeFleet, token: str, tmp_path: Path) -> None:
    tiled_page(tmp_path / "page.png", 4)
    with fleet.client() as c:
        media_id = upload(c, token, tmp_path / "page.png").json()["media_id"]
        job_id = create_job(c, token, media_id)
        # The worker has taken the task when it appears in RQ's started registry of its queue.
        deadline = time.monotonic() + 60
        while fleet.redis_cli("ZCARD", "rq:wip:ocr_detection:normal") == "0" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fleet.redis_cli("ZCARD", "rq:wip:ocr_detection:normal") == "1", "the task never started"
        fleet.compose("kill", "-s", "SIGKILL", "ocr_detection")
        time.sleep(6)  # past the 4 s lease: job_manager reaps the task and schedules its retry
        assert c.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()["status"] in ("queued", "running")
        fleet.compose("start", "ocr_detection")
        job = wait_job(c, token, job_id, timeout=240)
    assert job["status"] == "succeeded" and job["tasks"][0]["attempts"] == 2
    assert "soap" in job["results"]["ocr"]["text"].split()


def test_stopping_an_ai_service_drains_its_running_task(
    fleet: ComposeFleet, token: str, tmp_path: Path
) -> None:
    """``docker compose stop`` (and ``make upgrade``'s recreation) sends SIGTERM through tini: the
    worker finishes the task it runs, within the AI services' stop_grace_period, and exits 0;
    the task ran once (attempts 1), not retried after a lapsed lease."""
    tiled_page(tmp_path / "page.png", 4)
    with fleet.client() as c:
        media_id = upload(c, token, tmp_path / "page.png").json()["media_id"]
        job_id = create_job(c, token, media_id, use_cache=False)
        deadline = time.monotonic() + 60
        while fleet.redis_cli("ZCARD", "rq:wip:ocr_detection:normal") == "0" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fleet.redis_cli("ZCARD", "rq:wip:ocr_detection:normal") == "1", "the task never started"
        cid = fleet.container("ocr_detection")
        start = time.monotonic()
        fleet.compose("stop", "ocr_detection")  # SIGTERM, then SIGKILL after stop_grace_period
        stopped_s = time.monotonic() - start
        try:
            exit_code = subprocess.run(["docker", "inspect", "-f", "{{.State.ExitCode}}", cid],
                                       capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
            job = wait_job(c, token, job_id, timeout=30)  # job_manager collects what it reported
        finally:
            fleet.compose("start", "ocr_detection")
    print(f"\n[compose] ocr_detection stopped {stopped_s:.1f} s after SIGTERM, exit {exit_code}")
    assert exit_code == "0"  # it left by itself, not killed at the grace period's end
    assert job["status"] == "succeeded" and job["tasks"][0]["attempts"] == 1, job
    fleet.wait_healthy(["ocr_detection"])


def test_restart_redis_loses_no_acknowledged_work(fleet: ComposeFleet, token: str) -> None:
    fleet.compose("stop", "ocr_detection")
    with fleet.client() as c:
        media_id = upload(c, token, sample("phototest.tif")).json()["media_id"]
        jobs = [create_job(c, token, media_id) for _ in range(3)]
        deadline = time.monotonic() + 30
        while fleet.redis_cli("LLEN", "rq:queue:ocr_detection:normal") != "3" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert (
            fleet.redis_cli("LLEN", "rq:queue:ocr_detection:normal") == "3"
        )  # queued tasks, nobody to run them
        fleet.compose("restart", "redis")
        fleet.wait_healthy(["redis"])
        assert fleet.redis_cli("LLEN", "rq:queue:ocr_detection:normal") == "3"  # AOF kept them
        fleet.compose("start", "ocr_detection")
        done = [wait_job(c, token, j, timeout=240) for j in jobs]
    assert [j["status"] for j in done] == ["succeeded"] * 3


def test_restart_gateway_and_postgres_keeps_media_and_results(fleet: ComposeFleet, token: str) -> None:
    with fleet.client() as c:
        media_id = upload(c, token, sample("french.jpg")).json()["media_id"]
        job_id = create_job(c, token, media_id)
        assert wait_job(c, token, job_id, timeout=120)["status"] == "succeeded"
    fleet.compose("restart", "postgres", "gateway")
    fleet.wait_healthy(["postgres", "gateway", "nginx"])
    with fleet.client() as c:
        assert c.get(f"/v1/media/{media_id}", headers=auth(token)).status_code == 200
        job = c.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()
        assert "LOUVRE" in job["results"]["ocr"]["text"].upper()
        hits = c.get("/v1/search", params={"q": "louvre"}, headers=auth(token)).json()
        assert media_id in [h["media_id"] for h in hits["data"]]
        # and new work still flows after the restarts
        assert wait_job(c, token, create_job(c, token, media_id), timeout=120)["status"] == "succeeded"


def gateway_connections(fleet: ComposeFleet) -> int:
    """ESTABLISHED TCP connections on the gateway's port 8000, read in its container
    (/proc/net/tcp: local port 1F40 hex, state 01)."""
    rows = fleet.compose("exec", "-T", "gateway", "cat", "/proc/net/tcp").stdout.splitlines()[1:]
    return sum(1 for r in rows if r.split()[1].endswith(":1F40") and r.split()[3] == "01")


def gateway_address(fleet: ComposeFleet) -> str:
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
         fleet.container("gateway")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def test_nginx_keeps_gateway_connections_and_follows_a_recreated_gateway(
    fleet: ComposeFleet, token: str
) -> None:
    """nginx reuses its connections to the gateway (upstream keepalive) instead of opening one
    per request, and a gateway container recreated on another address is found again (the
    entrypoint reloads nginx when the name resolves elsewhere)."""
    with fleet.client() as c:
        for _ in range(40):
            assert c.get("/v1/users/me", headers=auth(token)).status_code == 200
        kept = gateway_connections(fleet)  # idle kept-alive connections stay open 4 s
    # one or a few per nginx worker, not one per request (and none without keepalive)
    assert 1 <= kept <= 8, kept
    before = gateway_address(fleet)
    # Docker hands a freed address out again: a sleeping container started meanwhile takes the old one, so the
    # recreated gateway gets another
    fleet.compose("rm", "-sf", "gateway")
    image = f"mediafleet/gateway:{os.environ.get('MEDIAFLEET_TAG', 'latest')}"
    holder = subprocess.run(
        ["docker", "run", "-d", "--rm", "--network", f"{fleet.project}_internal", "--entrypoint", "sleep",
         image, "600"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        fleet.compose("up", "-d", "--no-deps", "gateway")
        fleet.wait_healthy(["gateway"])
        after = gateway_address(fleet)
        assert after != before, f"the recreated gateway has its old address {after}: nothing tested"
    finally:
        subprocess.run(["docker", "rm", "-f", holder], capture_output=True)
    deadline = time.monotonic() + 30
    status = 0
    with fleet.client() as c:
        while time.monotonic() < deadline:
            status = c.get("/v1/users/me", headers=auth(token)).status_code
            if status == 200:
                break
            time.sleep(1)
    assert status == 200, status
    logs = fleet.compose("logs", "--no-color", "nginx").stdout
    assert "the gateway's address changed" in logs, logs[-2000:]
    print(
        f"\n[compose] nginx: {kept} kept connections after 40 requests; gateway {before} -> {after} followed"
    )


def test_postgres_sigkill_fails_fast_and_retries_make_no_second_job(fleet: ComposeFleet, token: str) -> None:
    """PostgreSQL SIGKILLed while a client submits jobs, retrying each (same Idempotency-Key)
    until it is accepted: while the database is away the gateway answers 503 within seconds
    (never hangs past the client's time-out to commit later), job_manager rides it out in
    process, and every submission made exactly one job. Before: 61 submissions became 187 jobs."""
    with fleet.client() as c:
        media_id = upload(c, token, sample("chinese.jpg")).json()["media_id"]
    jm_before = fleet.container("job_manager")
    crashes = 0
    answers: list[int] = []
    slowest = 0.0
    made: dict[str, str] = {}
    deadline = time.monotonic() + 180
    with fleet.client() as c:
        for i in range(8):
            key = f"submission-{i}"
            # Docker restarts it at once (restart: unless-stopped), at times before a submission
            # sees it away: SIGKILL again (up to 3 times, each restart Docker delays a little
            # longer) until one does
            if crashes < 3 and 503 not in answers:
                fleet.crash("postgres")
                crashes += 1
            while time.monotonic() < deadline:
                start = time.monotonic()
                try:
                    resp = c.post("/v1/jobs", json={"media_id": media_id, "tasks": ["ocr"]},
                                  headers={**auth(token), "Idempotency-Key": key}, timeout=10)  # fmt: skip
                except httpx.TimeoutException:
                    answers.append(0)
                    continue
                slowest = max(slowest, time.monotonic() - start)
                answers.append(resp.status_code)
                if resp.status_code == 202:
                    made[key] = resp.json()["job_id"]
                    break
                assert resp.status_code in (502, 503), resp.text  # nginx 502 while the gateway restarts
                time.sleep(0.5)
            # a retry of an accepted submission returns the same job
            again = c.post("/v1/jobs", json={"media_id": media_id, "tasks": ["ocr"]},
                           headers={**auth(token), "Idempotency-Key": key})  # fmt: skip
            assert again.status_code == 202 and again.json()["job_id"] == made[key], again.text
            assert again.headers["idempotent-replayed"] == "true"
    print(
        f"\n[compose] postgres SIGKILL x{crashes}: {len(answers)} answers {sorted(set(answers))}, slowest {slowest:.1f} s"
    )
    assert len(made) == 8 and 503 in answers and 0 not in answers, answers
    assert slowest < 10, slowest
    fleet.wait_healthy(["postgres", "gateway", "job_manager", "nginx"])
    assert fleet.container("job_manager") == jm_before  # not restarted: it waited in process
    with fleet.client() as c:
        for job_id in made.values():
            assert wait_job(c, token, job_id, timeout=180)["status"] == "succeeded"
        mine = c.get("/v1/jobs", params={"media_id": media_id, "limit": 100}, headers=auth(token)).json()
        assert mine["count"] == 8, mine["count"]  # one job per submission, retries included


def test_stopped_ai_service_jobs_wait_rest_keeps_working(fleet: ComposeFleet, token: str) -> None:
    fleet.compose("stop", "ocr_detection")
    try:
        with fleet.client() as c:
            ready = c.get("/readyz").json()
            assert ready["status"] == "ready" and ready["capabilities"]["ocr"].startswith("no_worker:")
            media_id = upload(c, token, sample("chinese.jpg")).json()["media_id"]
            job_id = create_job(c, token, media_id, use_cache=False)  # earlier tests OCRed it
            time.sleep(5)
            assert c.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()["status"] == "queued"
            assert c.get("/v1/jobs", headers=auth(token)).status_code == 200
            found = c.get("/v1/search", params={"q": "soap"}, headers=auth(token))  # search still answers
            assert found.status_code == 200 and isinstance(found.json()["count"], int), found.text
    finally:
        fleet.compose("start", "ocr_detection")
    fleet.wait_healthy(["ocr_detection"])
    with fleet.client() as c:
        job = wait_job(c, token, job_id, timeout=120)
        assert job["status"] == "succeeded" and "Yuyuan" in job["results"]["ocr"]["text"]
        assert c.get("/readyz").json()["capabilities"]["ocr"] == "ready: 1 worker ready"


def test_vector_db_keeps_acknowledged_vectors_across_sigkill(fleet: ComposeFleet) -> None:
    """vector_db on the internal network with its own volume: an acknowledged upsert survives SIGKILL."""
    base = "http://127.0.0.1:8103/v1/collections/ci"

    def curl(method: str, url: str, body: dict | None = None) -> dict:
        args = [
            "exec",
            "-T",
            "vector_db",
            "curl",
            "-fsS",
            "-X",
            method,
            url,
            "-H",
            "content-type: application/json",
            "-H",
            f"Authorization: Bearer {fleet.internal_token}",
        ]
        if body is not None:
            args += ["-d", json.dumps(body)]
        return json.loads(fleet.compose(*args).stdout or "{}")

    assert curl("PUT", base, {"dim": 3, "metric": "cosine", "index": "hnsw"})["dim"] == 3
    items = [{"id": f"m{i}", "vector": [1.0, i / 10, 0.0], "payload": {"i": i}} for i in range(5)]
    assert curl("POST", f"{base}/upsert", {"owner": "u1", "items": items})["upserted"] == 5
    fleet.compose("kill", "-s", "SIGKILL", "vector_db")
    fleet.compose("start", "vector_db")
    fleet.wait_healthy(["vector_db"])
    assert curl("GET", f"{base}/count?owner=u1") == {"count": 5}
    hits = curl("POST", f"{base}/search", {"owner": "u1", "vector": [1.0, 0.0, 0.0], "k": 1})["data"]
    assert hits[0]["id"] == "m0" and hits[0]["payload"] == {"i": 0}


def _library_state(c: httpx.Client, token: str) -> dict[str, object]:
    """What a user reads back: text search, people, each media's CLIP neighbours and semantic
    ranking, every transcript as SRT, the jobs and their statuses."""
    h = auth(token)
    pages = {
        name: c.get(path, params={"limit": 100, **extra}, headers=h).json()
        for name, path, extra in (("media", "/v1/media", {}), ("clip", "/v1/media", {"task": "clip"}),
                                  ("jobs", "/v1/jobs", {}))
    }  # fmt: skip
    assert all(page["count"] <= 100 for page in pages.values()), "more than one page: read them all"
    media, clip_media, jobs = (pages[name]["data"] for name in ("media", "clip", "jobs"))
    transcripts = {}
    for job in jobs:
        if job["status"] == "succeeded" and any(t["name"] == "transcribe" for t in job["tasks"]):
            srt = c.get(f"/v1/jobs/{job['job_id']}/transcript", params={"format": "srt"}, headers=h)
            transcripts[job["job_id"]] = srt.text
    semantic = c.get("/v1/search", params={"q": "a man in a suit", "mode": "semantic"}, headers=h).json()
    assert "data" in semantic, semantic  # else the error envelope says why
    return {
        "media": sorted((m["media_id"], m["filename"], m["size_bytes"]) for m in media),
        "jobs": sorted((j["job_id"], j["status"]) for j in jobs if j["status"] in ("succeeded", "failed")),
        "search soap": [
            (hit["media_id"], [m["text"] for m in hit["matches"]])
            for hit in c.get("/v1/search", params={"q": "soap"}, headers=h).json()["data"]
        ],  # fmt: skip
        "people": sorted(
            (p["id"], p["name"], p["faces"], p["media"])
            for p in c.get("/v1/people", headers=h).json()["data"]
        ),
        "similar": {
            m["media_id"]: [
                (x["media_id"], round(x["similarity"], 5))
                for x in c.get(f"/v1/media/{m['media_id']}/similar", headers=h).json()["data"]
            ]
            for m in clip_media
        },  # fmt: skip
        "semantic": [(x["media_id"], round(x["similarity"], 5)) for x in semantic["data"]],
        "transcripts": transcripts,
    }


def test_backup_while_a_job_runs_then_restore_into_a_fresh_fleet(
    fleet: ComposeFleet, token: str, tmp_path: Path
) -> None:
    """`make backup` (scripts/backup.sh) while an OCR job runs; every volume destroyed
    (`down -v`); a fresh fleet started, `make restore` into it: text search, people, CLIP
    neighbours and semantic ranking, transcripts as SRT and the jobs come back identical, and the
    job that ran during the backup completes. The modules after this one run on the restored fleet."""
    with fleet.client() as c:
        page = tiled_page(tmp_path / "page.png", 3)
        media_id = upload(c, token, page).json()["media_id"]
        running = create_job(c, token, media_id, use_cache=False)
        before = _library_state(c, token)
        assert before["people"] and before["similar"] and before["transcripts"] and before["search soap"]
    env = {**os.environ, "COMPOSE": fleet.compose_command()}
    t0 = time.monotonic()
    made = subprocess.run(["bash", "scripts/backup.sh", "backup", str(tmp_path / "backups")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    backup_s = time.monotonic() - t0
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-3000:]
    archive = Path(made.stdout.strip().splitlines()[-1])
    manifest = json.loads(subprocess.run(["tar", "-xOf", str(archive), "manifest.json"], capture_output=True,
                                         text=True, check=True).stdout)  # fmt: skip
    assert set(manifest["members"]) == {"db.dump", "media.tar", "vectors.tar"}  # no .env unless asked
    assert manifest["media_files"] >= len(before["media"]) and manifest["schema_revision"]
    assert any(m["path"].startswith("whisper") for m in manifest["models"]), manifest["models"][:5]

    fleet.compose("down", "-v", "--remove-orphans")  # every volume gone: database, media, vectors, models
    fleet.load_models()  # weights are not in a backup: `make models` again
    fleet.compose("up", "-d", timeout=900)
    fleet.wait_healthy()
    fleet.save_ca()  # a new volume, a new self-signed certificate
    with fleet.client() as c:  # a fresh fleet: the first admin must change the first password
        fresh = c.post("/v1/auth/token", data={"username": "admin", "password": fleet.admin_password})
        assert fresh.status_code == 200 and fresh.json()["must_change_password"] is True

    # a damaged archive is refused before anything is touched
    broken = tmp_path / "broken.tar"
    (tmp_path / "unpacked").mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(tmp_path / "unpacked")], check=True)
    with (tmp_path / "unpacked" / "media.tar").open("r+b") as fh:
        fh.seek(2000)
        fh.write(b"\xff" * 16)
    subprocess.run(["tar", "-cf", str(broken), "-C", str(tmp_path / "unpacked"), "manifest.json", "db.dump",
                    "media.tar", "vectors.tar"], check=True)  # fmt: skip
    refused = subprocess.run(["bash", "scripts/backup.sh", "restore", str(broken)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert refused.returncode == 1 and "media.tar: expected" in refused.stderr, refused.stderr[-2000:]

    t0 = time.monotonic()
    restored = subprocess.run(["bash", "scripts/backup.sh", "restore", str(archive)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=900)  # fmt: skip
    restore_s = time.monotonic() - t0
    assert restored.returncode == 0, restored.stdout[-2000:] + restored.stderr[-3000:]
    fleet.wait_healthy()
    restart_s = time.monotonic() - t0
    with fleet.client() as c:
        again = c.post("/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert again.status_code == 200, again.text  # the restored admin, with the password they chose
        fresh_token = again.json()["access_token"]
        job = wait_job(c, token=fresh_token, job_id=running, timeout=240)  # it ran during the backup
        assert job["status"] == "succeeded" and "soap" in job["results"]["ocr"]["text"].split(), job
        after = _library_state(c, fresh_token)
        # the job that was running is the only difference: it finished after the restore
        assert (running, "succeeded") in after["jobs"]  # type: ignore[operator]
        after["jobs"] = [j for j in after["jobs"] if j[0] != running]  # type: ignore[attr-defined]
        after["search soap"] = [hit for hit in after["search soap"] if hit[0] != media_id]  # type: ignore[attr-defined]
        assert after == before
        # the restore is refused on a fleet that holds data (FORCE=1 replaces it)
        twice = subprocess.run(["bash", "scripts/backup.sh", "restore", str(archive)], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=600)  # fmt: skip
        assert twice.returncode == 1 and "already holds" in twice.stderr, twice.stderr[-2000:]
    sizes = {name: m["bytes"] >> 10 for name, m in manifest["members"].items()}
    print(
        f"\n[compose] backup while a job ran: {backup_s:.1f} s, {archive.stat().st_size >> 10} KiB ({sizes} KiB, "
        f"{manifest['media_files']} media files); restore {restore_s:.1f} s, fleet healthy after {restart_s:.1f} s"
    )
