"""Traces across gateway, job_manager and workers (OpenTelemetry), and the ids every log line carries.

**Off unless configured.** :func:`configure_tracing` turns tracing on only when
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (and
``OTEL_SDK_DISABLED`` is not ``true``): then the OpenTelemetry SDK exports spans over OTLP/HTTP
(protobuf; ``<endpoint>/v1/traces``, the `OTLP exporter specification
<https://opentelemetry.io/docs/specs/otel/protocol/exporter/>`_) in batches from a background
thread, and FastAPI's native telemetry makes HTTP server spans (:data:`FASTAPI_TELEMETRY`). Off,
the API's no-op tracer answers: no span is recorded or exported, FastAPI skips its telemetry, and
log lines carry the request id only.

**One job, one trace.** The request that creates a job runs ``job.create``; that span's context
(the W3C Trace Context headers, `traceparent`/`tracestate
<https://www.w3.org/TR/trace-context/>`_) and the request's ``X-Request-ID`` are stored with the
job (``jobs.trace_context``, a :data:`Carrier`). job_manager continues it for ``task.enqueue``
(which puts its own context in the RQ job's payload, key ``trace``), ``task.store_result``,
``vectors.sync`` and ``webhook.deliver``; the worker's ``task.run`` continues the payload's. A
client that sends a ``traceparent`` with its upload and its job request gets every span under its
own trace id.

**Log lines.** :func:`add_trace_ids` (a structlog processor, in every service's logging) adds
``trace_id`` (32 hex digits) and ``span_id`` (16) of the current span; :func:`use` binds the
carrier's ``request_id`` to the log lines of the work it wraps.

**uvicorn and contextvars.** Every uvicorn server of the fleet runs with
``reset_contextvars=True`` (uvicorn >= 0.45). On the asyncio loop, a request body over uvicorn's
64 KiB high-water mark makes it pause and later resume reading *from the request's task*, and the
connection's later requests then start in that request's context (CPython issue 140947, uvicorn
pull requests 2742 and 2912). Measured before the option: after a 3 MB upload, the next request
on the same keep-alive connection was an INTERNAL child of the upload's span.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

import httpx
import structlog
from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue
from structlog.typing import EventDict, WrappedLogger

#: The W3C Trace Context headers of a span, plus ``request_id`` (the ``X-Request-ID`` of the
#: request the work came from). What is stored with a job and sent with its RQ jobs; ``{}`` when
#: there is nothing to carry.
Carrier = dict[str, str]

#: Paths whose requests make no span (probes and scrapes every few seconds).
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_TRACER_NAME = "mediafleet"
_enabled = False


def tracing_endpoint() -> str | None:
    """The OTLP endpoint traces go to, or None when tracing is off (read from the environment)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def configure_tracing(service: str) -> bool:
    """Export this process's spans over OTLP/HTTP when an endpoint is configured; returns
    whether tracing is on. ``service`` becomes ``service.name`` unless ``OTEL_SERVICE_NAME`` is
    set. Call once per process, before the first span; later calls change nothing. The exporter
    reads the rest of its settings (headers, timeout, compression) from the standard
    ``OTEL_EXPORTER_OTLP_*`` variables."""
    global _enabled
    if _enabled:
        return True
    if tracing_endpoint() is None:
        return False
    # the SDK loads only when tracing is on
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service})
    provider = TracerProvider(resource=resource)  # flushes its spans at exit (atexit)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _enabled = True
    structlog.get_logger("mediafleet.tracing").info(
        "tracing_on", service=service, endpoint=tracing_endpoint()
    )
    return True


def tracing_enabled() -> bool:
    """Whether :func:`configure_tracing` turned tracing on in this process."""
    return _enabled


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


#: ``FastAPI(telemetry=FASTAPI_TELEMETRY)`` for every app of the fleet. FastAPI traces its requests
#: natively (a server span per request, the caller's ``traceparent`` continued) whenever a tracer
#: provider is set, that is when :func:`configure_tracing` turned tracing on; off, it does nothing
#: per request. Probes and scrapes make no span. Left out: FastAPI's spans per dependency,
#: endpoint and serialization (three more per request: bench/load measured the gateway's CPU per
#: request 5.47 -> 6.63 ms with them, 5.99 -> 5.99 ms without, 2026-12-07, 2-core Xeon), and its
#: own metrics and logs (Prometheus and structlog have them).
FASTAPI_TELEMETRY: TelemetryConfig = {
    "exclude": _untraced,
    "operation_spans": False,
    "metrics": False,
    "logs": False,
}


def carrier() -> Carrier:
    """The current span's W3C headers and the bound request id, to store or send with work."""
    out: Carrier = {}
    propagate.inject(out)
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if isinstance(request_id, str):
        out["request_id"] = request_id
    return out


def inject_headers(request: httpx.Request) -> None:
    """httpx ``request`` event hook: the current span's ``traceparent``/``tracestate`` on an
    outgoing request, so the service called continues the trace (nothing when there is no span)."""
    propagate.inject(request.headers)


@contextmanager
def use(parent: Mapping[str, str] | None) -> Iterator[None]:
    """Run the block in ``parent``'s trace (its ``traceparent`` as the current context) with its
    ``request_id`` bound to log lines. ``None`` or ``{}``: the block runs as it would without."""
    if not parent:
        yield
        return
    token = otel_context.attach(propagate.extract(parent))
    try:
        rid = parent.get("request_id")
        if rid:
            with structlog.contextvars.bound_contextvars(request_id=rid):
                yield
        else:
            yield
    finally:
        otel_context.detach(token)


@contextmanager
def span(
    name: str,
    parent: Mapping[str, str] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[Span]:
    """A span named ``name`` (a child of ``parent``'s context when given, else of the current
    span), current for the block; an exception escaping the block is recorded on it and marks it
    failed. A non-recording span when tracing is off."""
    tracer = trace.get_tracer(_TRACER_NAME)
    with use(parent), tracer.start_as_current_span(name, kind=kind, attributes=attributes) as current:
        yield current


def add_trace_ids(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """structlog processor: ``trace_id`` and ``span_id`` (lowercase hex) of the current span,
    when there is one."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event.setdefault("span_id", format(ctx.span_id, "016x"))
    return event
