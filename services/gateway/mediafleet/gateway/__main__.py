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
        proxy_headers=True,
        workers=settings.workers,
        log_level=settings.core.log_level.lower(),
    )


if __name__ == "__main__":
    main()
