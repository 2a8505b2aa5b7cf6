"""Request dependencies: DB session, current user, context (FastAPI ``Annotated`` aliases)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from mediafleet.common.errors import Forbidden, Unauthorized
from mediafleet.common.store import ApiKey, TokenFamily, User
from mediafleet.common.tokens import decode_token
from mediafleet.gateway.context import GatewayContext

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


def get_context(request: Request) -> GatewayContext:
    return request.app.state.ctx


ContextDep = Annotated[GatewayContext, Depends(get_context)]


def get_session(ctx: ContextDep) -> Iterator[Session]:
    with ctx.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]


#: Prefix of API keys (``mfk_<id>_<secret>``), told apart from JWTs by it.
API_KEY_PREFIX = "mfk_"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _user_from_api_key(session: Session, token: str) -> tuple[User, ApiKey]:
    parts = token[len(API_KEY_PREFIX) :].split("_", 1)
    key = session.get(ApiKey, parts[0]) if len(parts) == 2 and parts[0] else None
    given = hashlib.sha256(parts[-1].encode()).hexdigest()
    # compared even for an unknown id, so the time taken tells nothing
    if not hmac.compare_digest(given, key.secret_sha256 if key else "0" * 64) or key is None:
        raise Unauthorized("API key is invalid", code="invalid_token")
    if key.revoked_at is not None:
        raise Unauthorized("API key has been revoked", code="invalid_token")
    user = session.get(User, key.user_id)
    if user is None:
        raise Unauthorized("API key is invalid", code="invalid_token")
    now = dt.datetime.now(dt.UTC)
    if key.last_used_at is None or now - key.last_used_at > dt.timedelta(
        minutes=1
    ):  # at most one write a minute
        key.last_used_at = now
        session.commit()
    return user, key


def _user_from_token(
    ctx: GatewayContext,
    session: Session,
    token: str | None,
    request: Request | None = None,
    scope: str | None = None,
) -> User:
    """The caller of a bearer JWT or API key. Raises Unauthorized (missing, invalid, expired,
    revoked, disabled account) and Forbidden (an API key without ``scope``)."""
    if not token:
        raise Unauthorized("missing bearer token", code="missing_token")
    if token.startswith(API_KEY_PREFIX):
        user, key = _user_from_api_key(session, token)
        if scope is not None and scope not in key.scopes:
            raise Forbidden(f"this API key lacks the {scope!r} scope", code="insufficient_scope")
    else:
        claims = decode_token(ctx.settings.secret_key.get_secret_value(), token, "access")
        found = session.get(User, claims.user_id)
        if found is None or claims.version != found.token_version:
            raise Unauthorized("token has been revoked", code="invalid_token")
        if claims.family is not None:  # signed out, or its refresh token was reused
            family = session.get(TokenFamily, claims.family)
            if family is None or family.revoked_at is not None:
                raise Unauthorized("token has been revoked", code="invalid_token")
        user = found
    if user.disabled:
        raise Unauthorized("this account is disabled", code="account_disabled")
    if request is not None:  # for the batch cache's invalidation (mediafleet.gateway.batch.cache)
        request.state.mediafleet_user_id = user.id
    return user


def get_user_pending_password(ctx: ContextDep, session: SessionDep, token: TokenDep) -> User:
    """The caller, even if it still has to change its password (only for that endpoint)."""
    if token and token.startswith(API_KEY_PREFIX):
        raise Forbidden("sign in with a password for this, not an API key", code="password_required")
    return _user_from_token(ctx, session, token)


def get_current_user(request: Request, ctx: ContextDep, session: SessionDep, token: TokenDep) -> User:
    """The caller; an API key needs ``read`` for GET/HEAD/OPTIONS and ``write`` for the rest."""
    scope = "read" if request.method in SAFE_METHODS else "write"
    user = _user_from_token(ctx, session, token, request, scope)
    if user.must_change_password:
        raise Forbidden("change your password first: POST /v1/auth/password", code="password_change_required")
    return user


def get_signed_in_user(user: Annotated[User, Depends(get_current_user)], token: TokenDep) -> User:
    """The caller signed in with a password (a JWT): managing API keys takes that, not a key."""
    if token and token.startswith(API_KEY_PREFIX):
        raise Forbidden("sign in with a password to manage API keys", code="password_required")
    return user


def get_admin(
    request: Request, user: Annotated[User, Depends(get_current_user)], ctx: ContextDep, session: SessionDep,
    token: TokenDep,
) -> User:  # fmt: skip
    if not user.is_admin:
        raise Forbidden("admin only")
    if token and token.startswith(API_KEY_PREFIX):
        _user_from_token(ctx, session, token, request, "admin")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
SignedInUser = Annotated[User, Depends(get_signed_in_user)]
PendingUser = Annotated[User, Depends(get_user_pending_password)]
AdminUser = Annotated[User, Depends(get_admin)]
