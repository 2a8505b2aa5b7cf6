"""``/v1/auth``: OAuth2 password login, refresh, password change; ``/v1/users``: accounts."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from mediafleet.common.errors import BadRequest, Conflict, Unauthorized
from mediafleet.common.store import User
from mediafleet.common.tokens import create_token, decode_token
from mediafleet.gateway.deps import AdminUser, ContextDep, CurrentUser, PendingUser, SessionDep
from mediafleet.gateway.schemas import (
    PasswordChange,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserPublic,
    WebhookSecret,
)
from mediafleet.gateway.security import dummy_hash, hash_password, verify_password

router = APIRouter(tags=["auth"])


def issue_tokens(ctx, user: User) -> TokenPair:  # noqa: ANN001
    s = ctx.settings
    key = s.secret_key.get_secret_value()
    return TokenPair(
        access_token=create_token(
            key, user.id, "access", user.token_version, dt.timedelta(seconds=s.access_token_ttl_s)
        ),
        refresh_token=create_token(
            key, user.id, "refresh", user.token_version, dt.timedelta(seconds=s.refresh_token_ttl_s)
        ),
        expires_in=s.access_token_ttl_s,
        must_change_password=user.must_change_password,
        has_webhook_secret=bool(user.webhook_secret),
    )


@router.post("/v1/auth/token", response_model=TokenPair)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, ctx: ContextDep
) -> TokenPair:
    """OAuth2 password grant (form fields ``username``, ``password``).

    401 ``invalid_credentials`` for a wrong password or an unknown user alike (same work: an
    unknown user's password is checked against a dummy hash, so timing tells nothing); 429
    ``rate_limited`` with ``Retry-After`` after repeated failures for the account or the
    client address (``GATEWAY_LOGIN__*``). Hashing runs off the event loop, at most
    ``GATEWAY_LOGIN__CONCURRENT_HASHES`` at once, so a login flood queues on itself.
    """
    address = request.client.host if request.client else None
    guard = ctx.login_guard
    if guard is not None:
        guard.check(form.username, address)

    def attempt() -> TokenPair | None:
        with ctx.sessions() as session:
            user = session.scalar(select(User).where(User.username == form.username))
            known = verify_password(form.password, user.password_hash if user is not None else dummy_hash())
            return issue_tokens(ctx, user) if user is not None and known else None

    pair = await anyio.to_thread.run_sync(attempt, limiter=hash_limiter(ctx))
    if pair is None:
        if guard is not None:
            guard.failed(form.username, address)
        raise Unauthorized("incorrect username or password", code="invalid_credentials")
    if guard is not None:
        guard.succeeded(form.username)
    return pair


_limiter: anyio.CapacityLimiter | None = None


def hash_limiter(ctx) -> anyio.CapacityLimiter:  # noqa: ANN001
    """One limiter per process for password hashing (created inside the event loop)."""
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(ctx.settings.login.concurrent_hashes)
    return _limiter


@router.post("/v1/auth/refresh", response_model=TokenPair)
def refresh(body: RefreshRequest, ctx: ContextDep, session: SessionDep) -> TokenPair:
    claims = decode_token(ctx.settings.secret_key.get_secret_value(), body.refresh_token, "refresh")
    user = session.get(User, claims.user_id)
    if user is None or user.token_version != claims.version:
        raise Unauthorized("token has been revoked", code="invalid_token")
    return issue_tokens(ctx, user)


@router.post("/v1/auth/password", response_model=TokenPair)
def change_password(
    body: PasswordChange, user: PendingUser, ctx: ContextDep, session: SessionDep
) -> TokenPair:
    """Change the caller's password; revokes every token issued before and returns new ones.

    A wrong ``current_password`` counts as a failed login of the account (429 after repeated
    failures, also through ``/v1/batch``)."""
    if ctx.login_guard is not None:
        ctx.login_guard.check(user.username, None)
    if not verify_password(body.current_password, user.password_hash):
        if ctx.login_guard is not None:
            ctx.login_guard.failed(user.username, None)
        raise Unauthorized("current password is incorrect", code="invalid_credentials")
    _check_password(ctx, body.new_password)
    if body.new_password == body.current_password:
        raise BadRequest("the new password must differ from the current one", code="weak_password")
    user.password_hash = hash_password(body.new_password)
    user.must_change_password = False
    user.token_version += 1
    session.commit()
    return issue_tokens(ctx, user)


@router.get("/v1/users/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    return _public(user)


@router.post("/v1/users/me/webhook-secret", response_model=WebhookSecret, status_code=status.HTTP_201_CREATED)
def create_webhook_secret(user: CurrentUser, session: SessionDep) -> WebhookSecret:
    """A new key for the HMAC-SHA256 signatures of the caller's webhooks, shown this once.

    It replaces the previous one at once (deliveries still pending are signed with the new key).
    """
    user.webhook_secret = "whsec_" + secrets.token_hex(32)
    session.commit()
    return WebhookSecret(secret=user.webhook_secret)


@router.post("/v1/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, _: AdminUser, ctx: ContextDep, session: SessionDep) -> UserPublic:
    _check_password(ctx, body.password)
    user = User(
        username=body.username,
        password_hash=hash_password(body.password),
        is_admin=body.is_admin,
        must_change_password=False,
        token_version=0,
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"user {body.username!r} exists", code="user_exists") from exc
    return _public(user)


def _check_password(ctx, password: str) -> None:  # noqa: ANN001
    if len(password) < ctx.settings.min_password_length:
        raise BadRequest(
            f"password must have at least {ctx.settings.min_password_length} characters", code="weak_password"
        )


def _public(user: User) -> UserPublic:
    return UserPublic(
        id=user.id,
        username=user.username,
        is_admin=user.is_admin,
        must_change_password=user.must_change_password,
        has_webhook_secret=bool(user.webhook_secret),
    )
