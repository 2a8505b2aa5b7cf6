"""Request dependencies: DB session, current user, context (FastAPI ``Annotated`` aliases)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from mediafleet.common.errors import Forbidden, Unauthorized
from mediafleet.common.store import TokenFamily, User
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


def _user_from_token(ctx: GatewayContext, session: Session, token: str | None) -> User:
    if not token:
        raise Unauthorized("missing bearer token", code="missing_token")
    claims = decode_token(ctx.settings.secret_key.get_secret_value(), token, "access")
    user = session.get(User, claims.user_id)
    if user is None or claims.version != user.token_version:
        raise Unauthorized("token has been revoked", code="invalid_token")
    if claims.family is not None:  # signed out, or its refresh token was reused
        family = session.get(TokenFamily, claims.family)
        if family is None or family.revoked_at is not None:
            raise Unauthorized("token has been revoked", code="invalid_token")
    return user


def get_user_pending_password(ctx: ContextDep, session: SessionDep, token: TokenDep) -> User:
    """The caller, even if it still has to change its password (only for that endpoint)."""
    return _user_from_token(ctx, session, token)


def get_current_user(ctx: ContextDep, session: SessionDep, token: TokenDep) -> User:
    user = _user_from_token(ctx, session, token)
    if user.must_change_password:
        raise Forbidden("change your password first: POST /v1/auth/password", code="password_change_required")
    return user


def get_admin(user: Annotated[User, Depends(get_current_user)]) -> User:
    if not user.is_admin:
        raise Forbidden("admin only")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
PendingUser = Annotated[User, Depends(get_user_pending_password)]
AdminUser = Annotated[User, Depends(get_admin)]
