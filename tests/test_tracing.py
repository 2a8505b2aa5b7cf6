"""Traces across processes (issue 25.4): one job's spans from the gateway, job_manager and a worker
reach an OTLP receiver under one trace id, linked parent to child; the log lines of that work
carry the trace id and the request's X-Request-ID. With no endpoint, tracing is off.

The fleet is real processes exporting over OTLP/HTTP with the OpenTelemetry SDK; the receiver
decodes what they send with the protocol's own classes (tests/otlp.py).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api_helpers import admin_token, auth, vectors_settled, wait_job
from tests.conftest import sample
from tests.fleet import Fleet
from tests.job_manager.test_webhooks import Receiver
from tests.otlp import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.slow

SPANS = {
    "media.store",
    "job.create",
    "task.enqueue",
    "task.run",
    "task.store_result",
    "vectors.sync",
    "webhook.deliver",
}


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, found)
    return found[0]


def _ancestors(spans: list[ReceivedSpan], span: ReceivedSpan) -> list[str]:
    """The ids of ``span``'s parent, its parent's parent, ... as far as the trace holds them."""
    by_id = {s.span_id: s for s in spans}
    out, parent = [], span.parent_id
    while parent:
        out.append(parent)
        parent = by_id[parent].parent_id if parent in by_id else ""
    return out


def _log_lines(fleet: Fleet, name: str) -> list[dict[str, object]]:
    lines = []
    for raw in fleet.logs[name].read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def test_one_job_is_one_trace_across_gateway_job_manager_and_worker(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    otlp, hook = OtlpReceiver(), Receiver([200])
    fleet = Fleet(
        tmp_path,
        pg_url,
        redis_url,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",  # ms between batches (default 5000)
        MEDIAFLEET_WEBHOOK_ALLOW_PRIVATE_TARGETS="true",  # the receiver listens on loopback
    )
    # the client's own trace: both requests say they are children of its span
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = f"00-{trace_id}-{client_span}-01"
    try:
        for name in ("gateway", "job_manager", "echo", "vector_db"):
            fleet.start(name)
        with httpx.Client(base_url=fleet.url("gateway"), timeout=30) as client:
            token = admin_token(client)
            client.post("/v1/users/me/webhook-secret", headers=auth(token)).raise_for_status()
            with sample("english.png").open("rb") as fh:
                resp = client.post(
                    "/v1/media",
                    files={"file": ("english.png", fh)},
                    headers={**auth(token), "traceparent": traceparent, "X-Request-ID": "trace-upload-1"},
                )
            assert resp.status_code == 201, resp.text
            media_id = resp.json()["media_id"]
            resp = client.post(
                "/v1/jobs",
                json={
                    "media_id": media_id,
                    "tasks": ["echo"],
                    "options": {"echo": {"text": "traced", "embed": True}},
                    "webhook_url": hook.url,
                },
                headers={**auth(token), "traceparent": traceparent, "X-Request-ID": "trace-job-1"},
            )
            assert resp.status_code == 202, resp.text
            job_id = resp.json()["job_id"]
            job = wait_job(client, token, job_id, timeout=60, until=vectors_settled)
            assert job["status"] == "succeeded", job
            assert job["tasks"][0]["vectors"]["state"] == "synced", job
            deadline = time.monotonic() + 30
            while not hook.requests and time.monotonic() < deadline:
                time.sleep(0.1)
            assert hook.requests, "the webhook was not delivered"

        spans = otlp.wait_for(
            trace_id, SPANS | {"POST /v1/media", "POST /v1/jobs", "POST /v1/collections/{name}/upsert"}
        )
        by_service: dict[str, set[str]] = {}
        for s in spans:
            by_service.setdefault(s.service, set()).add(s.name)
        print(f"\n[tracing] trace {trace_id}: {len(spans)} spans from {sorted(by_service)}")
        for service, names in sorted(by_service.items()):
            print(f"[tracing]   {service}: {sorted(names)}")
        assert {"gateway", "job_manager", "echo"} <= set(by_service)
        assert {"media.store", "job.create"} <= by_service["gateway"]
        assert {"task.enqueue", "task.store_result", "vectors.sync", "webhook.deliver"} <= by_service[
            "job_manager"
        ]
        assert by_service["echo"] == {"task.run"}

        # parent to child: client -> HTTP request -> the work it started, across processes
        upload_http = next(s for s in spans if s.name == "POST /v1/media" and s.kind == "SPAN_KIND_SERVER")
        jobs_http = next(s for s in spans if s.name == "POST /v1/jobs" and s.kind == "SPAN_KIND_SERVER")
        assert upload_http.parent_id == client_span and jobs_http.parent_id == client_span
        # (FastAPI's own endpoint span lies between a request's server span and the work in it)
        assert upload_http.span_id in _ancestors(spans, _one(spans, "media.store"))
        assert _one(spans, "media.store").attributes["mediafleet.media_id"] == media_id
        create = _one(spans, "job.create")
        assert (
            jobs_http.span_id in _ancestors(spans, create)
            and create.attributes["mediafleet.job_id"] == job_id
        )
        enqueue, run = _one(spans, "task.enqueue"), _one(spans, "task.run")
        assert enqueue.parent_id == create.span_id and enqueue.kind == "SPAN_KIND_PRODUCER"
        assert enqueue.attributes["messaging.destination.name"] == "echo:normal"
        assert run.parent_id == enqueue.span_id and run.kind == "SPAN_KIND_CONSUMER"
        assert run.attributes["mediafleet.job_id"] == job_id and run.status != "STATUS_CODE_ERROR"
        for name in ("task.store_result", "vectors.sync", "webhook.deliver"):
            assert _one(spans, name).parent_id == create.span_id, name
        assert _one(spans, "webhook.deliver").attributes["http.response.status_code"] == 200
        # vector_db continues the trace of job_manager's call (traceparent on the request)
        upsert = _one(spans, "POST /v1/collections/{name}/upsert")
        assert upsert.service == "vector_db" and _one(spans, "vectors.sync").span_id in _ancestors(
            spans, upsert
        )
        # the job's polls sent no traceparent: each is its own trace, even on the connection that
        # carried the upload (uvicorn's reset_contextvars; without it they were children of it)
        assert not [s for s in spans if s.service == "gateway" and s.name.startswith("GET ")], spans
        # probes and scrapes make no spans
        probes = [s for s in otlp.spans if s.name.endswith(("/healthz", "/readyz", "/metrics"))]
        assert not probes, ([(s.service, s.name, s.attributes) for s in probes], fleet.ports)

        # the log lines of the job's work carry the trace id and the job request's id
        expected = {
            "gateway": "job_created",
            "job_manager": "task_enqueued",
            "echo": "task_done",
        }
        for name, event in expected.items():
            found = [
                ln
                for ln in _log_lines(fleet, name)
                if ln.get("event") == event and ln.get("job_id") == job_id
            ]
            assert found, (name, event, fleet.log_text(name))
            assert found[0]["trace_id"] == trace_id and found[0]["request_id"] == "trace-job-1", found[0]
        for event in ("vector_sync_done", "webhook_attempt"):
            found = [ln for ln in _log_lines(fleet, "job_manager") if ln.get("event") == event]
            assert found and found[0]["trace_id"] == trace_id and found[0]["request_id"] == "trace-job-1", (
                found
            )
        # uvicorn's access lines too
        access = [
            ln for ln in _log_lines(fleet, "gateway") if '"POST /v1/media HTTP/1.1" 201' in str(ln["event"])
        ]
        assert access and access[0]["request_id"] == "trace-upload-1" and access[0]["trace_id"] == trace_id, (
            access
        )
    finally:
        fleet.stop_all()
        otlp.close()
        hook.close()


def test_without_an_endpoint_tracing_is_off_and_log_lines_keep_the_request_id() -> None:
    """In a fresh interpreter without OTEL_* variables: no SDK loaded, spans not recorded, no
    trace id in log lines, the request id still there."""
    code = """
import json, sys, structlog
from mediafleet.common import tracing
from mediafleet.common.logging import configure_logging
configure_logging("INFO", "json")
assert tracing.configure_tracing("test") is False and not tracing.tracing_enabled()
with tracing.use({"request_id": "r-1"}), tracing.span("job.create") as s:
    assert not s.is_recording()
    assert tracing.carrier() == {"request_id": "r-1"}, tracing.carrier()
    structlog.get_logger("t").info("inside")
assert "opentelemetry.sdk.trace" not in sys.modules, "the SDK was loaded"
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stderr.strip().splitlines()[-1])
    assert line["event"] == "inside" and line["request_id"] == "r-1" and "trace_id" not in line, line


def test_a_carrier_continues_its_trace_and_binds_its_request_id() -> None:
    """``use`` makes the carrier's span the parent, whatever the tracer (here the API's no-op
    one): the ids reach log lines through the structlog processor."""
    import structlog

    from mediafleet.common import tracing

    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    with tracing.use({"traceparent": f"00-{trace_id}-{span_id}-01", "request_id": "r-2"}):
        event = tracing.add_trace_ids(None, "info", {"event": "x"})
        assert event == {"event": "x", "trace_id": trace_id, "span_id": span_id}
        assert structlog.contextvars.get_contextvars()["request_id"] == "r-2"
        assert tracing.carrier()["traceparent"] == f"00-{trace_id}-{span_id}-01"
    assert "request_id" not in structlog.contextvars.get_contextvars()
    assert tracing.add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}
    with tracing.use(None), tracing.use({}):
        assert tracing.carrier() == {}
