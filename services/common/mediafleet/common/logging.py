"""Structured logging (structlog) for every service: JSON in the fleet, console locally.

Every line carries the bound context (``request_id``, ...) and, inside a span, ``trace_id`` and
``span_id`` (:mod:`mediafleet.common.tracing`)."""

from __future__ import annotations

import logging
import re
import sys

import structlog
from structlog.typing import Processor

from mediafleet.common.tracing import add_trace_ids

#: Query parameters whose values open a resource to whoever holds them: never logged.
_SECRET_PARAMS = re.compile(r"([?&](?:token|sig|access_token)=)[^&\s\"]*")


def redact(text: str) -> str:
    """``text`` with the values of ``token=``, ``sig=`` and ``access_token=`` query parameters
    replaced by ``REDACTED`` (link tokens and signed media URLs in access logs)."""
    return _SECRET_PARAMS.sub(r"\1REDACTED", text)


class RedactQuery(logging.Filter):
    """Redacts secret query parameters in uvicorn's access log lines (its ``args`` hold the path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    """Route stdlib and structlog records through one renderer on stderr."""
    renderer = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQuery) for f in access.filters):
        access.addFilter(RedactQuery())
