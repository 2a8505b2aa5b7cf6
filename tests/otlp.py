"""An OTLP/HTTP trace receiver for tests: what an OpenTelemetry Collector would be given.

It accepts ``POST /v1/traces`` with an ``ExportTraceServiceRequest`` (protobuf, optionally
gzip; https://opentelemetry.io/docs/specs/otlp/#otlphttp) and keeps the last 50,000 spans, decoded
with the protocol's own generated classes (``opentelemetry-proto``). ``GET /spans?trace_id=...``
answers a trace's spans as JSON.

``python otlp.py [PORT]`` serves on 0.0.0.0 (the compose tests run it in a container of the fleet's
job_manager image, which holds ``opentelemetry-proto``: tests/compose/otlp.yml).
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import http.server
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16
    parent_id: str  # 16, or "" for a root span
    kind: str  # SPAN_KIND_SERVER, SPAN_KIND_CONSUMER, ...
    status: str  # STATUS_CODE_UNSET, STATUS_CODE_OK, STATUS_CODE_ERROR
    attributes: dict[str, object] = field(hash=False)


def _value(v: AnyValue) -> object:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, which) if which else None


class OtlpReceiver:
    """Listens on 127.0.0.1 (a free port); ``endpoint`` is what ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.spans: collections.deque[ReceivedSpan] = collections.deque(maxlen=50_000)
        self.requests = 0
        lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                wanted = parse_qs(url.query).get("trace_id", [""])[0]
                if url.path != "/spans":
                    self.send_error(404)
                    return
                body = json.dumps([dataclasses.asdict(s) for s in receiver.trace(wanted)]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest.FromString(body)
                with lock:
                    receiver.requests += 1
                    for resource_spans in request.resource_spans:
                        attrs = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                        for scope_spans in resource_spans.scope_spans:
                            for s in scope_spans.spans:
                                receiver.spans.append(
                                    ReceivedSpan(
                                        service=str(attrs.get("service.name")),
                                        name=s.name,
                                        trace_id=s.trace_id.hex(),
                                        span_id=s.span_id.hex(),
                                        parent_id=s.parent_span_id.hex(),
                                        kind=Span.SpanKind.Name(s.kind),
                                        status=s.status.StatusCode.Name(s.status.code),
                                        attributes={a.key: _value(a.value) for a in s.attributes},
                                    )
                                )
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.endpoint = f"http://{host}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in list(self.spans) if s.trace_id == trace_id]

    def wait_for(self, trace_id: str, names: set[str], timeout: float = 30.0) -> list[ReceivedSpan]:
        """The trace's spans once every name in ``names`` arrived; TimeoutError naming the missing."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.trace(trace_id)
            missing = names - {s.name for s in spans}
            if not missing:
                return spans
            if time.monotonic() > deadline:
                got = sorted(f"{s.service}:{s.name}" for s in spans)
                raise TimeoutError(f"spans {sorted(missing)} of trace {trace_id} not received; got {got}")
            time.sleep(0.1)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    receiver = OtlpReceiver("0.0.0.0", int(sys.argv[1]) if len(sys.argv) > 1 else 4318)
    print(f"OTLP receiver on {receiver.endpoint}", flush=True)
    receiver.thread.join()
