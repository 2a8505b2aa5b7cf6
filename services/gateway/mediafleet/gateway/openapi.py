"""The gateway's OpenAPI document as client generators read it.

The models of the capabilities' proxied routes (``HttpApi`` paths: the OpenAI-compatible
``/v1/llm/...``) are added to its components, so their bodies are typed though the gateway
passes them on unparsed.

FastAPI (with pydantic 2) declares an uploaded file as OpenAPI 3.1 has it, ``{"type": "string",
"contentMediaType": "application/octet-stream"}``. Generators still written for 3.0 recognise a
file by ``"format": "binary"`` only (openapi-python-client sent our upload's bytes as the text
of a form field); with both keys every generator we test sends a file part.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema


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


def add_components(schema: dict[str, Any], models: Sequence[type[BaseModel]]) -> None:
    """Put ``models`` (and the models they use) into ``schema``'s ``components.schemas``: the
    proxied routes refer to them by ``$ref`` without FastAPI knowing them.

    Raises:
        ValueError: a name already there with another schema (two models of one name).
    """
    if not models:
        return
    _, top = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in top.get("$defs", {}).items():
        if components.setdefault(name, definition) != definition:
            raise ValueError(f"two OpenAPI schemas named {name!r}")


def install(app: FastAPI, models: Sequence[type[BaseModel]] = ()) -> None:
    """``app.openapi()`` gives the document with binary uploads marked and ``models`` among
    its components (built once, cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()  # FastAPI caches this very dict in app.openapi_schema
        add_components(schema, models)
        mark_binary(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise it
