"""Upload size limit enforced while the body streams in, before it is parsed or spooled."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediafleet.common.errors import envelope

#: Room for multipart boundaries and part headers on top of the file itself.
MULTIPART_OVERHEAD = 64 * 1024


class _TooLarge(Exception):
    pass


class UploadSizeLimit:
    """Answer 413 (error envelope) when a request body exceeds ``max_bytes`` + overhead.

    Checks ``Content-Length`` up front and counts streamed bytes for chunked bodies.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, overrides: dict[str, int] | None = None):
        self.app = app
        self.default = max_bytes
        #: Exact paths with a limit of their own (``/v1/batch`` takes JSON, not uploads).
        self.overrides = overrides or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        max_bytes = self.overrides.get(scope["path"], self.default)
        limit = max_bytes + (MULTIPART_OVERHEAD if scope["path"] not in self.overrides else 0)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._reject(send, max_bytes)
            return
        state = {"seen": 0, "exceeded": False, "rejected": False}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > limit:
                    state["exceeded"] = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # Frameworks turn an exception raised while reading the body into their own
            # 400; once the limit was crossed, answer with our 413 instead.
            if state["exceeded"]:
                if not state["rejected"] and message["type"] == "http.response.start":
                    state["rejected"] = True
                    await self._reject(send, max_bytes)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _TooLarge:
            if not state["rejected"]:
                state["rejected"] = True
                await self._reject(send, max_bytes)

    async def _reject(self, send: Send, max_bytes: int) -> None:
        body = json.dumps(
            envelope(
                "payload_too_large",
                f"request body exceeds the limit of {max_bytes} bytes",
                {"max_bytes": max_bytes},
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
