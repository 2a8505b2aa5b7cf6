"""One exception hierarchy and one error envelope for every service.

Every error leaves a service as ``{"error": {"code", "message", "details"}}`` with
the HTTP status of its class (registry below, like starlette's handler lookup).
"""

from __future__ import annotations

import errno
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException


class MediafleetError(Exception):
    """Base of all mediafleet errors. ``code`` is a stable machine-readable string."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class BadRequest(MediafleetError):
    status_code, code = 400, "bad_request"


class Unauthorized(MediafleetError):
    status_code, code = 401, "unauthorized"


class Forbidden(MediafleetError):
    status_code, code = 403, "forbidden"


class NotFound(MediafleetError):
    status_code, code = 404, "not_found"


class Conflict(MediafleetError):
    status_code, code = 409, "conflict"


class PayloadTooLarge(MediafleetError):
    status_code, code = 413, "payload_too_large"


class UnsupportedMediaType(MediafleetError):
    status_code, code = 415, "unsupported_media_type"


class InvalidMedia(MediafleetError):
    """The bytes claim a known format but cannot be decoded (truncated, corrupt, empty)."""

    status_code, code = 422, "invalid_media"


class ValidationFailed(MediafleetError):
    status_code, code = 422, "validation_error"


class TooManyRequests(MediafleetError):
    """Rate limited; ``details.retry_after_s`` becomes the ``Retry-After`` header."""

    status_code, code = 429, "rate_limited"


class ServiceUnavailable(MediafleetError):
    status_code, code = 503, "service_unavailable"


class GatewayTimeout(MediafleetError):
    """An upstream service did not answer in time."""

    status_code, code = 504, "upstream_timeout"


class InsufficientStorage(MediafleetError):
    """The disk that would hold it is full (RFC 4918's 507): nothing was stored."""

    status_code, code = 507, "insufficient_storage"


class EngineError(MediafleetError):
    """A model engine failed to load or to run."""

    status_code, code = 500, "engine_error"


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}


#: At most this many entries of a validation error list reach a response (a body with a
#: million bad keys must not come back as a million errors).
MAX_ERROR_DETAILS = 20
MAX_ERROR_TEXT = 200
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
log = structlog.get_logger("mediafleet.errors")


def bounded_details(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors as ``[{"loc", "msg", "type"}]``: the first MAX_ERROR_DETAILS, texts cut
    to MAX_ERROR_TEXT characters, never the offending input; a last entry counts the rest."""
    out = [
        {
            "loc": [str(part)[:MAX_ERROR_TEXT] for part in list(e.get("loc", ()))[:8]],
            "msg": str(e.get("msg", ""))[:MAX_ERROR_TEXT],
            "type": str(e.get("type", ""))[:64],
        }
        for e in errors[:MAX_ERROR_DETAILS]
    ]
    if len(errors) > MAX_ERROR_DETAILS:
        out.append(
            {
                "loc": [],
                "msg": f"{len(errors) - MAX_ERROR_DETAILS} more errors not shown",
                "type": "truncated",
            }
        )
    return out


class RequestIdMiddleware:
    """Give every HTTP request an id: the caller's ``X-Request-ID`` when it is 1-64 characters of
    ``[A-Za-z0-9._-]``, else a new UUID4 hex. It is bound to the request's log lines, returned in
    the ``X-Request-ID`` response header and put in the envelope of an unhandled error."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope["mediafleet.request_id"] = rid

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=rid):
            await self.app(scope, receive, send_with_id)


class ErrorBody(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. media_not_found")
    message: str = Field(description="what went wrong, for people")
    details: Any = Field(
        default=None, description="structured context (validation errors, limits, retry_after_s)"
    )


class ErrorEnvelope(BaseModel):
    """The body of every error response: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorBody


#: The statuses any route may answer, with what they mean.
_ERROR_STATUSES = {
    400: "bad request (a value cannot be used or stored)",
    401: "missing, invalid, expired or revoked credentials",
    403: "not allowed (admin only, password change required, API key scope)",
    404: "not found, or not the caller's",
    409: "conflict with the current state",
    413: "body too large",
    415: "unsupported media type",
    422: "the request did not validate, or the media cannot be used",
    429: "rate limited (Retry-After)",
    500: "internal error (with the request id)",
    507: "the media disk is full: nothing was stored",
    503: "a service it needs is unavailable (Retry-After when known)",
}

#: OpenAPI ``responses`` documenting the envelope for the statuses any route may answer.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": text} for status, text in _ERROR_STATUSES.items()
}


class OpenAIErrorBody(BaseModel):
    message: str = Field(description="what went wrong, for people")
    type: str = Field(
        description="invalid_request_error, authentication_error, rate_limit_error, server_error ..."
    )
    param: str | None = Field(default=None, description="the request field at fault, when one is")
    code: str | None = Field(default=None, description="stable machine-readable code, e.g. model_not_found")


class OpenAIErrorEnvelope(BaseModel):
    """OpenAI's error body, on the OpenAI-compatible routes: ``{"error": {"message", "type", "param", "code"}}``."""

    error: OpenAIErrorBody


#: OpenAPI ``responses`` of a route whose errors take OpenAI's shape (``HttpApi.error_style``):
#: an invalid body is 400 there, a synchronous route's wait may end in 504.
OPENAI_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIErrorEnvelope, "description": text}
    for status, text in {
        **_ERROR_STATUSES,
        504: "no answer in time (the job to follow, for a synchronous route)",
    }.items()
}


def envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The common error body: ``{"error": {"code", "message", "details"}}``."""
    return {"error": {"code": code, "message": message, "details": details}}


def openai_error_type(status: int) -> str:
    """The ``type`` OpenAI's API gives an error of HTTP ``status`` (platform.openai.com/docs,
    "Error codes"): ``invalid_request_error`` for the client's mistakes, ``authentication_error``
    (401), ``permission_error`` (403), ``rate_limit_error`` (429), ``server_error`` (5xx)."""
    if status >= 500:
        return "server_error"
    return {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}.get(
        status, "invalid_request_error"
    )


def openai_envelope(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error body, ``{"error": {"message", "type", "param", "code"}}``, as the official
    clients parse it (``openai.APIStatusError.body``)."""
    return {"error": {"message": message, "type": openai_error_type(status), "param": param, "code": code}}


def _openai_path(request: Request) -> bool:
    """Whether ``request`` is on a route whose errors take OpenAI's shape (install_error_handlers)."""
    prefixes: tuple[str, ...] = getattr(request.app.state, "openai_error_prefixes", ())
    path = request.url.path
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def _error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
    param: str | None = None,
) -> JSONResponse:
    body = (
        openai_envelope(status, code, message, param)
        if _openai_path(request)
        else envelope(code, message, details)
    )
    return JSONResponse(body, status_code=status, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Methods of every route whose path matches the request's (Starlette names only the
    first partially matching route's, and FastAPI makes one route per method)."""
    methods: set[str] = set()
    for route in request.app.routes:
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(request.url.path):
            methods |= set(route_methods)
    return sorted(methods)


def install_error_handlers(app: FastAPI, openai_prefixes: Iterable[str] = ()) -> None:
    """Map every error to the envelope: MediafleetError, HTTPException, validation errors
    (bounded), database refusals of the input (400 ``invalid_input``) and anything unhandled
    (500 ``internal_error`` with the request id, logged with its traceback); add request ids.

    Under ``openai_prefixes`` (an OpenAI-compatible API: ``HttpApi.error_style``) every error
    takes OpenAI's shape (:func:`openai_envelope`) and an invalid body is 400
    ``invalid_request_error`` naming the first bad field in ``param``, as OpenAI answers, not 422.
    """
    app.state.openai_error_prefixes = tuple(p.rstrip("/") for p in openai_prefixes)

    @app.exception_handler(MediafleetError)
    async def _mediafleet(request: Request, exc: MediafleetError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        retry_after = exc.details.get("retry_after_s") if isinstance(exc.details, dict) else None
        if exc.status_code in (429, 503) and retry_after is not None:  # RFC 9110 Retry-After, seconds
            headers = {**(headers or {}), "Retry-After": str(int(retry_after))}
        param = exc.details.get("param") if isinstance(exc.details, dict) else None  # OpenAI's field name
        return _error_response(
            request, exc.status_code, exc.code, exc.message, exc.details, headers,
            param=param if isinstance(param, str) else None,
        )  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = exc.headers
        if exc.status_code == 405:  # RFC 9110: Allow lists every method of the resource
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return _error_response(request, exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = bounded_details(list(exc.errors()))
        if _openai_path(request) and errors:
            loc = [str(part) for part in errors[0].get("loc", ()) if part != "body"]
            param = ".".join(loc) or None
            message = f"{param}: {errors[0].get('msg')}" if param else str(errors[0].get("msg"))
            return _error_response(request, 400, "invalid_request_error", message, param=param)
        return _error_response(request, 422, "validation_error", "request did not validate", errors)

    from sqlalchemy.exc import DataError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def _database_away(request: Request, exc: Exception) -> JSONResponse:
        # the database is down, restarting or out of connections: say so at once (a client
        # retries with its Idempotency-Key), never hang or answer a bare 500
        log.warning("database_unavailable", path=request.url.path, error=str(exc).splitlines()[0][:200])
        return _error_response(
            request, 503, "database_unavailable", "the database is unavailable; try again in a moment",
            {"retry_after_s": 5}, headers={"Retry-After": "5"},
        )  # fmt: skip

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # The database cannot hold a value of the request (PostgreSQL: a NUL byte in a text,
        # a string over its column's length, an integer out of range): the client's input.
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:MAX_ERROR_TEXT]
        log.info("input_refused_by_database", path=request.url.path, reason=reason)
        return _error_response(request, 400, "invalid_input", f"a value cannot be stored: {reason}")

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        if exc.errno in (
            errno.ENOSPC,
            errno.EDQUOT,
        ):  # a disk filled while writing (spooled upload, thumbnail)
            log.error("disk_full", path=request.url.path, error=str(exc))
            return _error_response(
                request, 507, "insufficient_storage", "the server's disk is full: nothing was stored"
            )
        return await _unhandled(request, exc)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        rid = request.scope.get("mediafleet.request_id") or uuid.uuid4().hex
        log.error(
            "unhandled_error", request_id=rid, method=request.method, path=request.url.path, exc_info=exc
        )
        return _error_response(
            request, 500, "internal_error", f"internal error (request id {rid})", {"request_id": rid},
            headers={"X-Request-ID": rid},
        )  # fmt: skip

    app.add_middleware(RequestIdMiddleware)
