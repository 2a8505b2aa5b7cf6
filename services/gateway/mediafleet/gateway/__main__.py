"""``python -m mediafleet.gateway`` / ``mediafleet-gateway``: serve the API with uvicorn."""

from __future__ import annotations

import uvicorn

from mediafleet.common.logging import configure_logging
from mediafleet.gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()  # fail fast on bad settings before uvicorn starts
    # uvicorn's own lines (and, with several workers, the supervisor's) through structlog's
    # handler; each worker process configures it again in main_app
    configure_logging(settings.core.log_level, settings.core.log_format)
    uvicorn.run(
        "mediafleet.gateway.app:main_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        # X-Forwarded-For only from the proxies named (none by default): uvicorn otherwise trusts
        # FORWARDED_ALLOW_IPS, 127.0.0.1 by default, so any local process could name a client
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or "",
        workers=settings.workers,
        log_level=settings.core.log_level.lower(),
        log_config=None,  # access lines are JSON lines with the request id and the trace id
        # every request starts from an empty context: see mediafleet.common.tracing (uvicorn and contextvars)
        reset_contextvars=True,
    )


if __name__ == "__main__":
    main()
