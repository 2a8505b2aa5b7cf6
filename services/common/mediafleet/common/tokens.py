"""JWT access and refresh tokens (PyJWT, HS256).

Claims: ``sub`` (user id as a string), ``typ`` (``access`` | ``refresh``), ``ver``
(the user's token version: bumped on password change, which revokes older tokens),
``iat``/``exp`` (RFC 7519 NumericDate), ``jti`` (a random id), ``fam`` (the sign-in's
token family, see ``mediafleet.common.store.TokenFamily``; absent in older tokens).

Link tokens (``typ`` ``link``) carry one more claim, ``res``: the one resource they open
(``job-events:<job id>``, ``media:<media id>``). They go in a URL's query where a browser
cannot send a header (``EventSource``, ``<img>``, ``<video>``), live minutes, and open
nothing else: every other route takes only ``access`` tokens.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from mediafleet.common.errors import Unauthorized

ALGORITHM = "HS256"


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    token_type: str
    version: int
    jti: str = ""
    family: str | None = None
    resource: str | None = None
    #: ``exp``: when the token expires, Unix seconds.
    expires_at: float = 0.0


def create_token(
    secret: str,
    user_id: int,
    token_type: str,
    version: int,
    ttl: dt.timedelta,
    now: dt.datetime | None = None,
    family: str | None = None,
    jti: str | None = None,
    resource: str | None = None,
) -> str:
    now = now or dt.datetime.now(dt.UTC)
    payload: dict[str, Any] = {
        "sub": str(user_id),
        "typ": token_type,
        "ver": version,
        "iat": now,
        "exp": now + ttl,
        "jti": jti or uuid.uuid4().hex,
    }
    if family is not None:
        payload["fam"] = family
    if resource is not None:
        payload["res"] = resource
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def decode_token(secret: str, token: str, expected_type: str) -> TokenClaims:
    """Verify signature, expiry and type.

    Raises:
        Unauthorized: expired, tampered, malformed, or of the wrong type.
    """
    try:
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "typ"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("token has expired", code="token_expired") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized("token is invalid", code="invalid_token") from exc
    if payload.get("typ") != expected_type:
        raise Unauthorized(f"expected a {expected_type} token", code="invalid_token")
    try:
        family, resource = payload.get("fam"), payload.get("res")
        return TokenClaims(
            int(payload["sub"]),
            payload["typ"],
            int(payload.get("ver", 0)),
            str(payload.get("jti", "")),
            str(family) if family is not None else None,
            str(resource) if resource is not None else None,
            float(payload["exp"]),
        )
    except (TypeError, ValueError) as exc:
        raise Unauthorized("token is invalid", code="invalid_token") from exc
