"""``/v1/auth``: OAuth2 password login, refresh, password change; ``/v1/users``: accounts."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from typing import Annotated

import anyio
import structlog
from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mediafleet.common import webhooks
from mediafleet.common.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from mediafleet.common.store import ApiKey, TokenFamily, User
from mediafleet.common.tokens import create_token, decode_token
from mediafleet.gateway.context import GatewayContext
from mediafleet.gateway.crud import users as crud
from mediafleet.gateway.deps import (
    API_KEY_PREFIX,
    AdminUser,
    ContextDep,
    CurrentUser,
    PendingUser,
    SecretsUser,
    SessionDep,
    SignedInUser,
    owned,
)
from mediafleet.gateway.quota import quota_of, storage_used
from mediafleet.gateway.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    PasswordChange,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserPublic,
    UserUpdate,
    WebhookSecret,
)
from mediafleet.gateway.security import dummy_hash, hash_password, verify_password

router = APIRouter(tags=["auth"])
#: A user id as the database holds it (a larger number is a 404's 422, not an overflow's 500).
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]
log = structlog.get_logger("mediafleet.gateway.auth")


def issue_tokens(ctx: GatewayContext, user: User, family: TokenFamily, jti: str | None = None) -> TokenPair:
    """A new access + refresh pair of ``family``; the refresh token becomes its current one
    (the caller commits; with ``jti`` the caller has already stored it)."""
    s = ctx.settings
    key = s.secret_key.get_secret_value()
    family.current_jti = jti or uuid.uuid4().hex
    return TokenPair(
        access_token=create_token(
            key, user.id, "access", user.token_version, dt.timedelta(seconds=s.access_token_ttl_s),
            family=family.id,
        ),
        refresh_token=create_token(
            key, user.id, "refresh", user.token_version, dt.timedelta(seconds=s.refresh_token_ttl_s),
            family=family.id, jti=family.current_jti,
        ),
        expires_in=s.access_token_ttl_s,
        must_change_password=user.must_change_password,
    )  # fmt: skip


def sign_in(ctx: GatewayContext, session: Session, user: User) -> TokenPair:
    """A new token family (one sign-in) for ``user`` and its first pair; commits."""
    family = TokenFamily(id=uuid.uuid4().hex, user_id=user.id, current_jti="")
    session.add(family)
    pair = issue_tokens(ctx, user, family)
    session.commit()
    return pair


@router.post("/v1/auth/token", response_model=TokenPair)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, ctx: ContextDep
) -> TokenPair:
    """OAuth2 password grant (form fields ``username``, ``password``).

    401 ``invalid_credentials`` for a wrong password or an unknown user alike (same work: an
    unknown user's password is checked against a dummy hash, so timing tells nothing); 429
    ``rate_limited`` with ``Retry-After`` after repeated failures for the account from that
    client address, or many for the account or the address (``GATEWAY_LOGIN__*``). Hashing runs off the event loop, at most
    ``GATEWAY_LOGIN__CONCURRENT_HASHES`` at once, so a login flood queues on itself.
    """
    address = request.client.host if request.client else None
    guard = ctx.login_guard
    if guard is not None:
        guard.check(form.username, address)

    def attempt() -> TokenPair | None:
        with ctx.sessions() as session:
            user = crud.user_by_name(session, username=form.username)
            known = verify_password(form.password, user.password_hash if user is not None else dummy_hash())
            if user is None or not known:
                return None
            if user.disabled:  # told only to whoever knows the password
                raise Unauthorized("this account is disabled", code="account_disabled")
            return sign_in(ctx, session, user)

    pair = await anyio.to_thread.run_sync(attempt, limiter=hash_limiter(ctx))
    if pair is None:
        if guard is not None:
            guard.failed(form.username, address)
        raise Unauthorized("incorrect username or password", code="invalid_credentials")
    if guard is not None:
        guard.succeeded(form.username, address)
    return pair


_limiter: anyio.CapacityLimiter | None = None


def hash_limiter(ctx: GatewayContext) -> anyio.CapacityLimiter:
    """One limiter per process for password hashing (created inside the event loop)."""
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(ctx.settings.login.concurrent_hashes)
    return _limiter


@router.post("/v1/auth/refresh", response_model=TokenPair)
def refresh(body: RefreshRequest, ctx: ContextDep, session: SessionDep) -> TokenPair:
    """A new pair for a refresh token, which is used up (rotation).

    A refresh token that was already used (replayed by whoever copied it, or the owner's
    after a thief refreshed first) revokes its whole sign-in: every token of the family,
    access tokens included, answers 401 ``token_reused`` / ``invalid_token`` from then on.
    """
    claims = decode_token(ctx.settings.secret_key.get_secret_value(), body.refresh_token, "refresh")
    user = session.get(User, claims.user_id)
    if user is None or user.token_version != claims.version or claims.family is None:
        raise Unauthorized("token has been revoked", code="invalid_token")
    family = session.get(TokenFamily, claims.family)
    if family is None or family.user_id != user.id or family.revoked_at is not None:
        raise Unauthorized("token has been revoked", code="invalid_token")
    # Rotation is one compare-and-swap in the database: of concurrent refreshes of one token
    # exactly one moves the family on; every other is a reuse (8 at once used to leave 8 valid
    # pairs on SQLite). A reuse revokes the sign-in, the winner's new pair included.
    new_jti = uuid.uuid4().hex
    if not crud.rotate_refresh(session, family_id=family.id, used_jti=claims.jti, new_jti=new_jti):
        crud.revoke_family(session, family_id=family.id, reason="reuse")
        session.commit()
        ctx.principals.changed([user.id])  # a bulk UPDATE: the session's events do not see it
        log.warning("refresh_token_reused", user_id=user.id, family=family.id)
        raise Unauthorized(
            "refresh token was already used; this sign-in is revoked, sign in again", code="token_reused"
        )
    session.commit()
    return issue_tokens(ctx, user, family, jti=new_jti)


@router.post("/v1/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(body: RefreshRequest, ctx: ContextDep, session: SessionDep) -> Response:
    """Sign out: revoke the sign-in of this refresh token (its refresh and access tokens).

    204 also for a sign-in already revoked; 401 for a token that is not a valid refresh token.
    """
    claims = decode_token(ctx.settings.secret_key.get_secret_value(), body.refresh_token, "refresh")
    family = session.get(TokenFamily, claims.family) if claims.family else None
    if family is not None and family.user_id == claims.user_id and family.revoked_at is None:
        family.revoked_at, family.revoked_reason = dt.datetime.now(dt.UTC), "logout"
        session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


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
    return sign_in(ctx, session, user)


@router.get("/v1/users/me", response_model=UserPublic)
def me(user: CurrentUser, ctx: ContextDep, session: SessionDep) -> UserPublic:
    """The caller, with its storage quota and what its uploads hold now."""
    used_files, used_bytes = storage_used(session, user.id)
    return _public(user, ctx).model_copy(update={"used_bytes": used_bytes, "used_files": used_files})


@router.post("/v1/users/me/webhook-secret", response_model=WebhookSecret, status_code=status.HTTP_201_CREATED)
def create_webhook_secret(user: SecretsUser, session: SessionDep) -> WebhookSecret:
    """A new key for the signatures of the caller's webhooks (Standard Webhooks ``whsec_``
    secret), shown this once.

    It replaces the previous one at once (deliveries still pending are signed with the new key).
    An API key needs the ``admin`` scope for it (403 ``insufficient_scope``).
    """
    user.webhook_secret = webhooks.new_secret()  # whsec_ + base64, as Standard Webhooks verifiers read it
    session.commit()
    return WebhookSecret(secret=user.webhook_secret)


@router.post("/v1/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, _: AdminUser, ctx: ContextDep, session: SessionDep) -> UserPublic:
    _check_password(ctx, body.password)
    user = User(
        username=body.username,
        password_hash=hash_password(body.password),
        is_admin=body.is_admin,
        must_change_password=True,  # the admin chose it: the user picks their own
        token_version=0,
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(f"user {body.username!r} exists", code="user_exists") from exc
    return _public(user, ctx)


@router.get("/v1/users", response_model=list[UserPublic])
def list_users(_: AdminUser, ctx: ContextDep, session: SessionDep) -> list[UserPublic]:
    """Every account, oldest first, with its storage quota (admin)."""
    return [_public(u, ctx) for u in crud.all_users(session)]


@router.patch("/v1/users/{user_id:int}", response_model=UserPublic)
def update_user(
    user_id: UserId, body: UserUpdate, admin: AdminUser, ctx: ContextDep, session: SessionDep
) -> UserPublic:
    """Disable or enable an account, grant or take admin, set a new password or a storage quota
    (``quota_bytes``, ``quota_files``; 0: no limit) (admin).

    Disabling or a new password revokes the account's tokens (a new password must be
    changed at the next sign-in); a disabled account's API keys are refused. An admin cannot
    disable or demote themself (409 ``own_account``)."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found", code="user_not_found")
    if user.id == admin.id and (body.disabled or body.is_admin is False or body.password is not None):
        raise Conflict(
            "you cannot disable or demote your own account, or set its password here "
            "(POST /v1/auth/password)",
            code="own_account",
        )
    if body.password is not None:
        _check_password(ctx, body.password)
        user.password_hash = hash_password(body.password)
        user.must_change_password = True
        user.token_version += 1
    if body.disabled is not None and body.disabled != user.disabled:
        user.disabled = body.disabled
        user.token_version += 1
    if body.quota_bytes is not None:
        user.quota_bytes = body.quota_bytes
    if body.quota_files is not None:
        user.quota_files = body.quota_files
    if body.is_admin is not None:
        user.is_admin = body.is_admin
    session.commit()
    return _public(user, ctx)


@router.delete("/v1/users/{user_id:int}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(user_id: UserId, admin: AdminUser, session: SessionDep) -> Response:
    """Delete an account with its jobs, results, people, faces and API keys (admin). The
    stored bytes of its media stay while another user owns them. 409 for one's own account."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found", code="user_not_found")
    if user.id == admin.id:
        raise Conflict("you cannot delete your own account", code="own_account")
    session.delete(user)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/v1/api-keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
def create_api_key(body: ApiKeyCreate, user: SignedInUser, session: SessionDep) -> ApiKeyCreated:
    """A key for scripts and workers, shown this once: ``Authorization: Bearer mfk_...``.

    Scopes: ``read`` (GET), ``write`` (POST, PATCH, DELETE), ``admin`` (admins only). Creating,
    listing and revoking keys takes a password sign-in, not a key."""
    if "admin" in body.scopes and not user.is_admin:
        raise Forbidden("only an admin can create a key with the admin scope", code="insufficient_scope")
    secret = secrets.token_hex(24)
    key = ApiKey(
        id=secrets.token_hex(6),
        user_id=user.id,
        name=body.name,
        secret_sha256=hashlib.sha256(secret.encode()).hexdigest(),
        scopes=sorted(set(body.scopes)),
        created_at=dt.datetime.now(dt.UTC),
    )
    session.add(key)
    session.commit()
    return ApiKeyCreated(**_key_public(key).model_dump(), key=f"{API_KEY_PREFIX}{key.id}_{secret}")


@router.get("/v1/api-keys", response_model=list[ApiKeyPublic])
def list_api_keys(user: SignedInUser, session: SessionDep) -> list[ApiKeyPublic]:
    """The caller's keys, newest first, without their secrets."""
    return [_key_public(k) for k in crud.api_keys_of(session, user_id=user.id)]


@router.delete("/v1/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_api_key(key_id: str, user: SignedInUser, session: SessionDep) -> Response:
    """Revoke one of the caller's keys at once (404 for another user's)."""
    key = owned(session, ApiKey, key_id, user.id, noun="API key", code="api_key_not_found")
    if key.revoked_at is None:
        key.revoked_at = dt.datetime.now(dt.UTC)
        session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _key_public(key: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic(
        id=key.id,
        name=key.name,
        scopes=list(key.scopes),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked=key.revoked_at is not None,
    )


def _check_password(ctx: GatewayContext, password: str) -> None:
    if len(password) < ctx.settings.min_password_length:
        raise BadRequest(
            f"password must have at least {ctx.settings.min_password_length} characters", code="weak_password"
        )


def _public(user: User, ctx: GatewayContext | None = None) -> UserPublic:
    quota_bytes, quota_files = quota_of(user, ctx.settings if ctx is not None else None)
    return UserPublic(
        id=user.id,
        username=user.username,
        is_admin=user.is_admin,
        must_change_password=user.must_change_password,
        has_webhook_secret=bool(user.webhook_secret),
        disabled=user.disabled,
        quota_bytes=quota_bytes,
        quota_files=quota_files,
    )
