"""The gateway's OpenAPI document as client generators read it.

FastAPI (with pydantic 2) declares an uploaded file as OpenAPI 3.1 has it, ``{"type": "string",
"contentMediaType": "application/octet-stream"}``. Generators still written for 3.0 recognise a
file by ``"format": "binary"`` only (openapi-python-client sent our upload's bytes as the text
of a form field); with both keys every generator we test sends a file part.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def mark_binary(node: Any) -> None:
    """Add ``"format": "binary"`` to every schema in ``node`` (a JSON tree, changed in place)
    that is a string of ``contentMediaType`` ``application/octet-stream``."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("contentMediaType") == "application/octet-stream":
            node.setdefault("format", "binary")
        for value in node.values():
            mark_binary(value)
    elif isinstance(node, list):
        for value in node:
            mark_binary(value)


def install(app: FastAPI) -> None:
    """``app.openapi()`` gives the document with binary uploads marked (built once, cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()  # FastAPI caches this very dict in app.openapi_schema
        mark_binary(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise it
