"""The monitoring profile on the live compose fleet (issue 25.1 and 25.3): Prometheus scrapes
every service, exporter and the certificate; its alert rules load; and after a few jobs **every
query of every Grafana dashboard returns at least one series** (a panel that would show nothing
fails here). The fleet runs with ``--profile monitoring`` (tests/compose/conftest.py). And traces
(issue 25.4): the fleet exports to a test collector (tests/compose/otlp.yml)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.api_helpers import auth, upload, vectors_settled, wait_job
from tests.compose.conftest import ROOT, ComposeFleet, admin
from tests.compose.test_compose_fleet import _docker_stats
from tests.conftest import sample
from tests.monitoring.test_prometheus import alert_names, dashboard_queries

pytestmark = pytest.mark.compose


def query(prom: httpx.Client, expr: str) -> list[dict[str, object]]:
    resp = prom.get("/api/v1/query", params={"query": expr})
    assert resp.status_code == 200, f"{expr}: {resp.text}"
    return list(resp.json()["data"]["result"])


def expected_jobs() -> set[str]:
    """Every scrape job the fleet should have: the core services, each AI service (its DNS name
    is its job), the exporters, the certificate probe and Prometheus itself."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    ai = {name for name, s in compose["services"].items() if "ai" in (s.get("profiles") or [])}
    return ai | {
        "gateway",
        "job_manager",
        "vector_db",
        "redis",
        "postgres",
        "nginx",
        "certificate",
        "prometheus",
    }


@pytest.fixture
def prom(fleet: ComposeFleet) -> Iterator[httpx.Client]:
    """The monitoring profile's Prometheus, published on loopback (PROMETHEUS_PORT)."""
    with httpx.Client(base_url=f"http://127.0.0.1:{fleet.prometheus_port}", timeout=30) as client:
        yield client


def test_prometheus_scrapes_the_fleet_and_every_dashboard_query_returns_series(
    fleet: ComposeFleet, prom: httpx.Client
) -> None:
    # work for every dashboard: an image through five capabilities, speech, an LLM answer
    with fleet.client() as c:
        token = admin(fleet, c)
        jobs = []
        image = upload(c, token, sample("bus.jpg")).json()["media_id"]
        tasks = ["ocr", "pose", "faces", "clip", "nsfw"]
        resp = c.post(
            "/v1/jobs", json={"media_id": image, "tasks": tasks, "use_cache": False}, headers=auth(token)
        )
        assert resp.status_code == 202, resp.text
        jobs.append(resp.json()["job_id"])
        speech = upload(c, token, sample("jfk.flac")).json()["media_id"]
        resp = c.post("/v1/jobs", json={"media_id": speech, "tasks": ["transcribe"], "use_cache": False},
                      headers=auth(token))  # fmt: skip
        assert resp.status_code == 202, resp.text
        jobs.append(resp.json()["job_id"])
        chat = c.post(
            "/v1/llm/chat/completions",
            json={"model": "mediafleet-llm", "messages": [{"role": "user", "content": "Say hello."}],
                  "max_tokens": 8, "temperature": 0},
            headers=auth(token),
        )  # fmt: skip
        assert chat.status_code == 200, chat.text
        time.sleep(2)
        stats = _docker_stats(fleet)
        done = [wait_job(c, token, j, timeout=300) for j in jobs]
        assert [j["status"] for j in done] == ["succeeded", "succeeded"], done
    print("\n== docker stats under an image job (5 tasks), a transcribe job and an LLM chat\n"
          + "\n".join(stats[k] for k in sorted(stats)))  # fmt: skip
    for service in (
        "prometheus",
        "redis_exporter",
        "postgres_exporter",
        "nginx_exporter",
        "blackbox_exporter",
    ):
        assert any(service in name for name in stats), (service, stats)

    # every target found and answering (an AI service through Docker's DNS, the rest by name)
    deadline = time.monotonic() + 120
    while True:
        targets = prom.get("/api/v1/targets").json()["data"]["activeTargets"]
        jobs_up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
        down = [(t["labels"]["job"], t["scrapeUrl"], t["lastError"]) for t in targets if t["health"] != "up"]
        if jobs_up >= expected_jobs() and not down:
            break
        assert time.monotonic() < deadline, f"missing {expected_jobs() - jobs_up}, down {down}"
        time.sleep(2)
    print(f"[monitoring] {len(targets)} targets up: {sorted(jobs_up)}")

    # the alert rules loaded, each healthy
    rules = [r for g in prom.get("/api/v1/rules").json()["data"]["groups"] for r in g["rules"]]
    assert sorted(r["name"] for r in rules if r["type"] == "alerting") == sorted(alert_names())
    assert {r["health"] for r in rules} == {"ok"}, [(r["name"], r.get("lastError")) for r in rules]

    # every panel's query returns at least one series (a new series needs two scrapes for rate())
    panels = dashboard_queries()
    deadline = time.monotonic() + 90
    while True:
        empty = [(file, title, expr) for file, title, expr in panels if not query(prom, expr)]
        if not empty:
            break
        assert time.monotonic() < deadline, "panels that show nothing:\n" + "\n".join(map(str, empty))
        time.sleep(3)
    print(
        f"[monitoring] {len(panels)} panel queries of {len({f for f, _, _ in panels})} dashboards: each returns series"
    )

    # what the alerts read: the certificate nginx serves, both volumes' disks
    (cert,) = query(prom, "probe_ssl_earliest_cert_expiry - time()")
    days = float(cert["value"][1]) / 86400  # type: ignore[index]
    assert days > 14, days  # the fleet's self-signed certificate (services/nginx/gen-cert.sh)
    volumes = {r["metric"]["volume"] for r in query(prom, "mediafleet_storage_size_bytes")}  # type: ignore[index]
    assert volumes == {"media", "vectors"}
    free = query(prom, "mediafleet_storage_available_bytes / mediafleet_storage_size_bytes")
    print(f"[monitoring] certificate expires in {days:.0f} days; free disk "
          + ", ".join(f"{r['metric']['volume']} {float(r['value'][1]):.0%}" for r in free))  # type: ignore[index]  # fmt: skip


def _collector_spans(fleet: ComposeFleet, trace_id: str) -> list[dict[str, Any]]:
    """The spans of ``trace_id`` the test collector (tests/compose/otlp.yml) holds."""
    code = (
        "import urllib.request; "
        f"print(urllib.request.urlopen('http://127.0.0.1:4318/spans?trace_id={trace_id}').read().decode())"
    )
    return list(json.loads(fleet.compose("exec", "-T", "otlp", "python", "-c", code).stdout))


def _json_lines(fleet: ComposeFleet, service: str) -> list[dict[str, Any]]:
    """A service's JSON log lines (``docker-compose logs`` prefixes each with ``name | ``)."""
    out = []
    for line in fleet.compose("logs", "--no-color", service).stdout.splitlines():
        _, sep, rest = line.partition("| ")
        if sep and rest.startswith("{"):
            out.append(json.loads(rest))
    return out


def test_a_job_through_nginx_is_one_trace_across_the_fleet(fleet: ComposeFleet) -> None:
    """Traces (issue 25.4) from the images as shipped: with OTEL_EXPORTER_OTLP_ENDPOINT set (here
    the test's collector), a job sent through nginx with the client's ``traceparent`` gives spans
    from the gateway, job_manager, two AI workers and vector_db under the client's trace id, and
    their log lines carry that trace id and the client's X-Request-ID."""
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    traced = {"traceparent": f"00-{trace_id}-{client_span}-01", "X-Request-ID": "compose-trace-1"}
    with fleet.client() as c:
        token = admin(fleet, c)
        with sample("english.png").open("rb") as fh:
            resp = c.post("/v1/media", files={"file": ("english.png", fh)}, headers={**auth(token), **traced})
        assert resp.status_code == 201, resp.text
        resp = c.post(
            "/v1/jobs",
            # no result cache: the workers must run
            json={"media_id": resp.json()["media_id"], "tasks": ["ocr", "clip"], "use_cache": False},
            headers={**auth(token), **traced},
        )
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]
        job = wait_job(c, token, job_id, timeout=180, until=vectors_settled)
        assert job["status"] == "succeeded", job
    wanted = {
        ("gateway", "media.store"),
        ("gateway", "job.create"),
        ("job_manager", "task.enqueue"),
        ("job_manager", "task.store_result"),
        ("job_manager", "vectors.sync"),
        ("ocr_detection", "task.run"),
        ("clip_nsfw", "task.run"),
        ("vector_db", "POST /v1/collections/{name}/upsert"),
    }
    deadline = time.monotonic() + 30  # the SDK sends a batch every 5 s
    while True:
        spans = _collector_spans(fleet, trace_id)
        got = {(s["service"], s["name"]) for s in spans}
        if wanted <= got or time.monotonic() > deadline:
            break
        time.sleep(1)
    print(f"\n[traces] {len(spans)} spans of trace {trace_id}: {sorted(got)}")
    assert wanted <= got, sorted(wanted - got)
    by_id = {s["span_id"]: s for s in spans}
    for run in (s for s in spans if s["name"] == "task.run"):
        assert by_id[run["parent_id"]]["name"] == "task.enqueue" and run["kind"] == "SPAN_KIND_CONSUMER"
        assert run["attributes"]["mediafleet.job_id"] == job_id
    lines = {
        "gateway": [ln for ln in _json_lines(fleet, "gateway") if ln.get("event") == "job_created"],
        "job_manager": [ln for ln in _json_lines(fleet, "job_manager") if ln.get("event") == "task_enqueued"],
        "ocr_detection": [ln for ln in _json_lines(fleet, "ocr_detection") if ln.get("event") == "task_done"],
    }
    for service, found in lines.items():
        mine = [ln for ln in found if ln.get("job_id") == job_id]
        assert mine, f"{service}: no line of job {job_id}"
        assert all(ln["trace_id"] == trace_id and ln["request_id"] == "compose-trace-1" for ln in mine), mine
