"""One exception hierarchy and one error envelope for every service.

Every error leaves a service as ``{"error": {"code", "message", "details"}}`` with
the HTTP status of its class (registry below, like starlette's handler lookup).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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


class ServiceUnavailable(MediafleetError):
    status_code, code = 503, "service_unavailable"


class GatewayTimeout(MediafleetError):
    """An upstream service did not answer in time."""

    status_code, code = 504, "upstream_timeout"


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


def envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The common error body: ``{"error": {"code", "message", "details"}}``."""
    return {"error": {"code": code, "message": message, "details": details}}


def install_error_handlers(app: FastAPI) -> None:
    """Map MediafleetError, HTTPException and validation errors to the envelope."""

    @app.exception_handler(MediafleetError)
    async def _mediafleet(_: Request, exc: MediafleetError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(
            envelope(exc.code, exc.message, exc.details), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(envelope(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()
        ]
        return JSONResponse(
            envelope("validation_error", "request did not validate", details), status_code=422
        )
