"""``python -m mediafleet.gateway`` / ``mediafleet-gateway``: serve the API with uvicorn."""

from __future__ import annotations

import uvicorn

from mediafleet.gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()  # fail fast on bad settings before uvicorn starts
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
    )


if __name__ == "__main__":
    main()
