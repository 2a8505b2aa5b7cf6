"""Capabilities' own HTTP APIs for signed-in users: the routes a contract's ``http_api`` names
(an OpenAI-compatible ``/v1/llm/...``), passed to the service as they are, streams
included, so the official ``openai`` client works with
``OpenAI(base_url="https://HOST/api/v1/llm", api_key=ACCESS_TOKEN)``. The gateway names no
capability: it mounts what the installed contracts declare.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import structlog
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ValidationError

from mediafleet.common import registry
from mediafleet.common.capability import HttpApi, ServiceEndpoint
from mediafleet.common.errors import OPENAI_ERROR_RESPONSES, GatewayTimeout, NotFound, ServiceUnavailable
from mediafleet.common.observability import internal_headers
from mediafleet.gateway.context import GatewayContext
from mediafleet.gateway.deps import ContextDep, CurrentUser

log = structlog.get_logger("mediafleet.gateway.proxy")
#: Response headers passed back.
_KEEP = ("content-type", "retry-after", "cache-control")
#: A ``{name}`` segment of an ``HttpApi`` path.
_SEGMENT = re.compile(r"{(\w+)}")


async def forward(
    api: HttpApi, endpoint: ServiceEndpoint, path: str, request: Request, ctx: GatewayContext
) -> Response:
    """``request`` to the service of ``api`` at ``endpoint``; its answer streamed back. 404 for a
    path the contract does not name; a body its route's ``request`` model refuses is refused
    here (400 ``invalid_request_error`` on OpenAI-style routes, else 422), then passed on as
    it came; 503 ``service_not_configured`` without its URL setting, or
    ``service_unavailable`` when it cannot be reached; 504 when it does not answer."""
    route = api.route_of(path)
    if route is None or route.method != request.method:
        raise NotFound(f"no endpoint {request.method} {api.public_prefix}/{path}", code="not_found")
    method = route.method
    body = await request.body() if method == "POST" else None
    if route.request is not None:  # refused here as the service would (OpenAPI's request model)
        try:
            route.request.model_validate_json(body or b"")
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from exc
    base = endpoint.url
    if not base:
        raise ServiceUnavailable(
            f"{api.public_prefix} is not configured ({api.env_prefix}URL)", code="service_not_configured"
        )
    client = httpx.AsyncClient(timeout=httpx.Timeout(endpoint.timeout_s, connect=5.0))
    url = f"{base.rstrip('/')}{api.service_prefix}/{path}"
    sending = asyncio.ensure_future(
        client.send(
            client.build_request(
                method,
                url,
                content=body,
                headers={"content-type": "application/json", **internal_headers(ctx.settings.core)},
            ),  # fmt: skip
            stream=True,
        )
    )
    try:
        # a client that leaves before the answer starts (a non-streamed completion) closes the
        # upstream connection too: the service stops generating for nobody
        while not (await asyncio.wait({sending}, timeout=0.5))[0]:
            if await request.is_disconnected():
                sending.cancel()
                log.info("client_gone_before_answer", path=f"{api.public_prefix}/{path}")
                await client.aclose()
                return Response(status_code=499)
        upstream = sending.result()
    except httpx.TimeoutException as exc:
        await client.aclose()
        raise GatewayTimeout(f"{api.public_prefix}: the service did not answer: {exc}") from exc
    except httpx.HTTPError as exc:
        await client.aclose()
        raise ServiceUnavailable(f"{api.public_prefix}: the service is unreachable: {exc}") from exc
    except BaseException:
        sending.cancel()
        await client.aclose()
        raise

    async def relay() -> AsyncIterator[bytes]:
        """The service's bytes as they come; the upstream connection is closed however the
        stream ends: finished, the client gone (the response is cancelled: the service sees its
        connection drop and stops generating), or a read time-out."""
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.TimeoutException:
            log.warning("upstream_timeout", path=f"{api.public_prefix}/{path}")
        finally:
            with anyio.CancelScope(shield=True):  # a cancelled response still closes its upstream
                await upstream.aclose()
                await client.aclose()

    headers = {k: v for k, v in upstream.headers.items() if k.lower() in _KEEP}
    headers["X-Accel-Buffering"] = "no"  # nginx passes streamed chunks on at once
    return StreamingResponse(relay(), status_code=upstream.status_code, headers=headers)


def _handler(name: str, api: HttpApi, template: str) -> Callable[..., Awaitable[Response]]:
    """The route of ``template`` (a ``paths`` key): its ``{...}`` segments are string path
    parameters of the handler, so they appear in the OpenAPI document."""

    async def handler(request: Request, user: CurrentUser, ctx: ContextDep, **segments: str) -> Response:
        # a segment as it came on the wire (percent-encoded): any id reaches the service whole
        path = template.format(**{k: quote(v, safe="") for k, v in segments.items()})
        return await forward(api, ctx.endpoints[name], path, request, ctx)

    fixed = [p for p in inspect.signature(handler).parameters.values() if p.kind is not p.VAR_KEYWORD]
    params = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=str)
        for n in _SEGMENT.findall(template)
    ]
    handler.__signature__ = inspect.signature(handler).replace(parameters=fixed + params)  # type: ignore[attr-defined]
    return handler


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def openapi_models() -> list[type[BaseModel]]:
    """The models the proxied routes name: the gateway adds them to its OpenAPI components."""
    return [m for cap in registry.capabilities().values() if cap.http_api for m in cap.http_api.models()]


router = APIRouter(tags=["capability APIs"])


def _add_routes() -> None:
    """One route per path of each installed contract's ``http_api`` (when the module loads),
    documented with the route's models (a body is checked against its request model, then
    passed on as it came)."""
    for cap in registry.capabilities().values():
        api = cap.http_api
        if api is None:
            continue
        for path, route in api.paths.items():
            content: dict[str, Any] = {}
            if route.response is not None:
                content["application/json"] = {"schema": _ref(route.response)}
            if route.stream is not None:
                content["text/event-stream"] = {
                    "schema": {
                        "type": "string",
                        "description": f"data: {route.stream.__name__} events, then data: [DONE]",
                    }
                }
            doc: dict[int | str, dict[str, Any]] = {
                **(OPENAI_ERROR_RESPONSES if api.error_style == "openai" else {}),
                200: {"description": f"{cap.name}'s answer", **({"content": content} if content else {})},
            }
            extra: dict[str, Any] = {}
            if route.request is not None:
                extra["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(route.request)}},
                }
            router.add_api_route(
                f"{api.public_prefix}/{path}",
                _handler(cap.name, api, path),
                methods=[route.method],
                name=f"{cap.name}_{route.method.lower()}_{_SEGMENT.sub('', path).strip('/').replace('/', '_')}",
                summary=route.summary or f"{cap.name}: {path}",
                description=api.description,
                responses=doc,
                openapi_extra=extra or None,
            )


_add_routes()
