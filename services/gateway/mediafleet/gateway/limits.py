"""Gateway-only request guards (the body limits are :mod:`mediafleet.common.limits`)."""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from mediafleet.common.errors import envelope
from mediafleet.common.limits import UploadSizeLimit

__all__ = ["INTERNAL_PATHS", "InternalsGuard", "UploadSizeLimit"]

#: Routes for operators, not users: Prometheus metrics and the API's documentation.
INTERNAL_PATHS = frozenset({"/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


class InternalsGuard:
    """Pure ASGI: :data:`INTERNAL_PATHS` need ``Authorization: Bearer <token>`` unless open;
    without a token configured they answer 404, as if absent (the envelope either way)."""

    def __init__(self, app: ASGIApp, token: str | None, open_: bool):
        self.app, self.token, self.open = app, token, open_

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.open or scope["type"] != "http" or scope.get("path") not in INTERNAL_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        if self.token and hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            await self.app(scope, receive, send)
            return
        status, code, message = (
            (401, "missing_token", "this route needs the internals token (GATEWAY_INTERNALS_TOKEN)")
            if self.token
            else (404, "not_found", "Not Found")
        )
        body = json.dumps(envelope(code, message)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
