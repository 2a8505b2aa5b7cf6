"""The main job end to end, over real HTTP between real processes on PostgreSQL and Redis:
upload -> queued OCR job -> worker -> stored results -> SSE progress -> search; and the CLI's --api mode.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import time

import httpx
import pytest

from mediafleet.cli.main import main as cli_main
from mediafleet.ocr_detection.evaluation import cer
from tests.api_helpers import admin_token, auth, create_user, sse_events, upload, wait_job
from tests.conftest import ROOT, sample

GROUND_TRUTH = json.loads((ROOT / "bench" / "ocr" / "ground_truth.json").read_text())
pytestmark = pytest.mark.slow


def test_upload_ocr_job_search(fleet) -> None:
    with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
        token = admin_token(client)
        media = upload(client, token, sample("english.png")).json()
        created = client.post(
            "/v1/jobs",
            json={
                "media_id": media["media_id"],
                "tasks": ["ocr"],
                "options": {"ocr": {"engine": "rapidocr"}},
            },
            headers=auth(token),
        )
        assert created.status_code == 202 and created.json()["status"] == "queued"
        job_id = created.json()["job_id"]

        events = sse_events(client, token, job_id)
        assert events[0][0] == "job" and events[-1][0] == "job"
        assert events[-1][1]["status"] == "succeeded"
        assert any(kind == "progress" and e.get("task_status") == "running" for kind, e in events)

        job = client.get(f"/v1/jobs/{job_id}", headers=auth(token)).json()
        assert job["status"] == "succeeded" and job["tasks"][0]["attempts"] == 1
        ocr = job["results"]["ocr"]
        assert ocr["engine"] == "rapidocr" and cer(ocr["text"], GROUND_TRUTH["english.png"]["text"]) <= 0.10

        for word in ("soap", "coronavirus", "SOAP"):
            hits = client.get("/v1/search", params={"q": word}, headers=auth(token)).json()
            assert [h["media_id"] for h in hits["data"]] == [media["media_id"]]
            match = hits["data"][0]["matches"][0]
            assert word.lower() in match["text"].lower() and len(match["box"]) == 4
            assert hits["data"][0]["filename"] == "english.png"
        assert client.get("/v1/search", params={"q": "louvre"}, headers=auth(token)).json()["count"] == 0

        # bob uploads the same bytes: he learns nothing of the admin's upload or its OCR text
        # until he runs OCR himself (then from the result cache: the stored bytes and results
        # are shared, the views are not)
        bob_token = create_user(client, token, "bob", "bobs-password-1")
        again = upload(client, bob_token, sample("english.png"), name="mine.png").json()
        assert again["media_id"] == media["media_id"] and again["deduplicated"] is False
        assert upload(client, bob_token, sample("english.png")).json()["deduplicated"] is True  # his own
        assert client.get("/v1/search", params={"q": "soap"}, headers=auth(bob_token)).json()["count"] == 0
        bob_job = client.post("/v1/jobs", json={"media_id": media["media_id"], "tasks": ["ocr"],
                              "options": {"ocr": {"engine": "rapidocr"}}}, headers=auth(bob_token))  # fmt: skip
        assert wait_job(client, bob_token, bob_job.json()["job_id"])["status"] == "succeeded"
        hits = client.get("/v1/search", params={"q": "soap"}, headers=auth(bob_token)).json()
        assert [h["media_id"] for h in hits["data"]] == [media["media_id"]]
        assert hits["data"][0]["filename"] == "mine.png"

    worker_metrics = httpx.get(fleet.url("ocr") + "/metrics").text
    models = httpx.get(fleet.url("ocr") + "/v1/models").json()
    assert models["data"][0]["engine"] == "rapidocr" and models["data"][0]["loaded"] is True
    model = models["data"][0]["model"]
    assert (
        f'mediafleet_task_duration_seconds_count{{engine="rapidocr",model="{model}",outcome="ok",task="ocr"}} 1.0'
        in worker_metrics
    )
    assert f'mediafleet_model_loaded{{engine="rapidocr",model="{model}"}} 1.0' in worker_metrics
    assert "_created" not in worker_metrics
    jm_metrics = httpx.get(fleet.url("job_manager") + "/metrics").text
    assert 'mediafleet_queue_depth{queue="ocr_detection:normal"} 0.0' in jm_metrics
    # the RQ ecosystem's names (rq-exporter), what RQ dashboards and KEDA read
    assert 'rq_jobs{queue="ocr_detection:normal",status="queued"} 0.0' in jm_metrics
    assert re.search(
        r'rq_workers\{name="[^"]+",queues="[^"]*ocr_detection:normal[^"]*",state="\w+"\} 1\.0', jm_metrics
    )
    assert 'mediafleet_queue_oldest_task_age_seconds{queue="ocr_detection:normal"} 0.0' in jm_metrics


def test_ocr_service_predict_endpoint(fleet) -> None:
    with sample("french.jpg").open("rb") as fh:
        resp = httpx.post(
            fleet.url("ocr") + "/v1/predict",
            files={"file": ("f.jpg", fh)},
            data={"task": "ocr", "options": '{"engine": "rapidocr"}'},
            timeout=60,
        )
    assert resp.status_code == 200 and "LOUVRE" in resp.json()["text"].upper()
    bad = httpx.post(fleet.url("ocr") + "/v1/predict", files={"file": ("x.jpg", b"nope")}, timeout=60)
    assert bad.status_code == 415 and bad.json()["error"]["code"] == "unsupported_media_type"


def test_cli_api_mode_prints_the_embedded_shape(fleet, tmp_path) -> None:
    with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
        token = admin_token(client)
    env = {"MEDIAFLEET_TOKEN": token, "PATH": "/usr/bin:/bin"}
    api = subprocess.run(
        [
            sys.executable,
            "-m",
            "mediafleet.cli.main",
            "analyze",
            "--api",
            fleet.url("gateway"),
            "--json",
            str(sample("french.jpg")),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert api.returncode == 0, api.stderr
    embedded = subprocess.run(
        [
            sys.executable,
            "-m",
            "mediafleet.cli.main",
            "analyze",
            "--json",
            "--db",
            f"sqlite:///{tmp_path / 'e.db'}",
            str(sample("french.jpg")),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert embedded.returncode == 0, embedded.stderr
    a, e = json.loads(api.stdout), json.loads(embedded.stdout)
    # "skipped": the default tasks that cannot run there, each with why (this fleet runs OCR only)
    assert set(a) - {"skipped"} == set(e) - {"skipped"} == {"file", "media", "results"}
    assert a["skipped"]["pose"].startswith("no worker runs"), a["skipped"]
    assert set(a["results"]) == {"ocr"}
    assert a["media"] == e["media"]
    assert set(a["results"]["ocr"]) == set(e["results"]["ocr"])
    assert "LOUVRE" in a["results"]["ocr"]["text"].upper()
    assert a["results"]["ocr"]["text"] == e["results"]["ocr"]["text"]  # same engine, same bytes, same text


def _ocr_status(client: httpx.Client, token: str) -> dict:
    resp = client.get("/v1/admin/services", headers=auth(token))
    assert resp.status_code == 200, resp.text
    return next(c for c in resp.json()["capabilities"] if c["capability"] == "ocr_detection")


def test_high_priority_runs_first(fleet) -> None:
    """... and the admin view of the fleet (GET /v1/admin/services) counts workers, the tasks
    waiting per priority and the model versions the worker loaded."""
    assert (
        httpx.get(fleet.url("gateway") + "/readyz").json()["capabilities"]["ocr"] == "ready: 1 worker ready"
    )
    with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
        token = admin_token(client)
        running = _ocr_status(client, token)
        assert (running["workers"], running["queued"]) == (1, {"high": 0, "normal": 0, "low": 0})
        assert running["tasks"] == ["ocr"] and running["model_versions"], running
    fleet.stop("ocr")  # queue up work while no worker runs
    ready = httpx.get(fleet.url("gateway") + "/readyz")
    assert ready.status_code == 200 and ready.json()["capabilities"]["ocr"].startswith("no_worker:")
    with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
        media_id = upload(client, token, sample("phototest.tif")).json()["media_id"]
        low = [
            client.post(
                "/v1/jobs",
                json={"media_id": media_id, "tasks": ["ocr"], "priority": "low"},
                headers=auth(token),
            ).json()["job_id"]
            for _ in range(2)
        ]
        high = client.post(
            "/v1/jobs", json={"media_id": media_id, "tasks": ["ocr"], "priority": "high"}, headers=auth(token)
        ).json()["job_id"]
        deadline = time.monotonic() + 30  # job_manager queues them within its pass
        while (waiting := _ocr_status(client, token))["queued"] != {"high": 1, "normal": 0, "low": 2}:
            assert time.monotonic() < deadline, waiting
            time.sleep(0.2)
        assert waiting["workers"] == 0 and waiting["model_versions"] == running["model_versions"]
        assert running["devices"] == {"cpu": 1} and waiting["devices"] == {}
        time.sleep(1.1)
        assert _ocr_status(client, token)["oldest_wait_s"] >= 1.0  # the head of a queue nobody drains
        # `make monitor` (mediafleet monitor) shows the same through the gateway
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli_main(["monitor", "--once", "--api", fleet.url("gateway"), "--token", token]) == 0
        view = out.getvalue().splitlines()
        assert view[1].startswith("gateway: ready (") and view[1].endswith("; job_manager: ok"), view
        row = next(line.split() for line in view if line.startswith("ocr_detection "))
        assert row[1:4] == ["0", "-", "1/0/2"] and row[4].isdigit() and row[6] == "0", view
        assert "ocr no_worker" in " ".join(row), view
        fleet.start("ocr")
        done = {j: wait_job(client, token, j) for j in [*low, high]}
    assert all(job["status"] == "succeeded" for job in done.values())
    finished = {j: job["tasks"][0]["finished_at"] for j, job in done.items()}
    assert finished[high] < min(finished[j] for j in low)
