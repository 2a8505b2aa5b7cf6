"""``mediafleet-vector-db``: serve the vector_db HTTP API (VECTOR_DB_HTTP_HOST / _PORT, VECTOR_DB_DATA_DIR)."""

from __future__ import annotations

import uvicorn

from mediafleet.common.logging import configure_logging
from mediafleet.common.tracing import configure_tracing
from mediafleet.vector_db.app import create_app
from mediafleet.vector_db.settings import VectorDbSettings


def main() -> None:
    settings = VectorDbSettings()
    configure_logging(settings.core.log_level, settings.core.log_format)
    configure_tracing("vector_db")  # when OTEL_EXPORTER_OTLP_ENDPOINT is set
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        reset_contextvars=True,
    )


if __name__ == "__main__":
    main()
