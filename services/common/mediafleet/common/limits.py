"""Request body limits enforced while the body streams in, before it is parsed or spooled.

Multipart bodies (uploads) may be as large as an upload; every other body (JSON, forms) has
a small limit of its own: a 40 MiB JSON list sent to ``/v1/auth/refresh`` once took the
gateway from 284 to 1358 MB RSS while it was parsed.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediafleet.common.errors import envelope

#: Room for multipart boundaries and part headers on top of the file itself.
MULTIPART_OVERHEAD = 64 * 1024


class _TooLarge(Exception):
    pass


class UploadSizeLimit:
    """Answer 413 (error envelope) when a request body exceeds its limit.

    ``max_bytes`` (+ multipart overhead) for ``multipart/*`` bodies, ``max_other_bytes`` for
    any other body, ``overrides`` for exact paths (``/v1/batch``). Checks ``Content-Length``
    up front and counts streamed bytes for chunked bodies, so an oversized body is never read
    into memory.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        overrides: dict[str, int] | None = None,
        max_other_bytes: int | None = None,
    ):
        self.app = app
        self.default = max_bytes
        self.other = max_other_bytes if max_other_bytes is not None else max_bytes
        #: Exact paths with a limit of their own (``/v1/batch`` takes JSON, not uploads).
        self.overrides = overrides or {}

    def limit_of(self, scope: Scope) -> tuple[int, int]:
        """(limit announced, limit enforced) in bytes for this request."""
        if scope["path"] in self.overrides:
            n = self.overrides[scope["path"]]
            return n, n
        ctype = dict(scope.get("headers") or []).get(b"content-type", b"").lower()
        if ctype.startswith(b"multipart/"):
            return self.default, self.default + MULTIPART_OVERHEAD
        return self.other, self.other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        max_bytes, limit = self.limit_of(scope)
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
