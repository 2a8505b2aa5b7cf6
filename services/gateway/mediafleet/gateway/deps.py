"""Request dependencies: DB session, current user, context (FastAPI ``Annotated`` aliases)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from mediafleet.common.errors import Forbidden, NotFound, Unauthorized
from mediafleet.common.store import ApiKey, FaceRow, Job, Person, TokenFamily, User
from mediafleet.common.tokens import create_token, decode_token
from mediafleet.gateway.context import GatewayContext
from mediafleet.gateway.principals import Principal, detached_copy

#: The rows a user owns through their ``user_id`` column.
OwnedRow = TypeVar("OwnedRow", Job, Person, FaceRow, ApiKey)


def owned(
    session: Session, model: type[OwnedRow], ident: str, user_id: int, *, noun: str, code: str
) -> OwnedRow:
    """The ``model`` row ``ident`` of ``user_id``; NotFound (404 ``code``, "<noun> <ident> not found")
    when it does not exist or is another user's: nobody learns that another user's id exists."""
    row = session.get(model, ident)
    if row is None or row.user_id != user_id:
        raise NotFound(f"{noun} {ident} not found", code=code)
    return row


oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


async def get_context(request: Request) -> GatewayContext:
    ctx: GatewayContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[GatewayContext, Depends(get_context)]


async def get_session(request: Request, ctx: ContextDep) -> AsyncIterator[Session]:
    """A session for the request. Made on the event loop (no I/O until its first query, which
    runs in the endpoint's thread); closed in a thread only when it holds a connection, whose
    return to the pool rolls back. Async, so that a request pays no thread hop for it.

    GET and HEAD get an autocommit session (:attr:`GatewayContext.read_sessions`): no BEGIN
    and no ROLLBACK round trips; each statement sees the data committed when it starts (a
    count and its page may come from two moments). A read that writes (an API key's
    ``last_used_at``) commits that one statement as it runs.
    """
    read = request.method in SAFE_METHODS
    async with ctx.db_turns:
        session = (ctx.read_sessions if read else ctx.sessions)()
        try:
            yield session
        finally:
            # shielded: a cancelled request (a batch item's deadline, a client gone) still
            # gives its connection back to the pool
            with anyio.CancelScope(shield=True):
                if session.in_transaction() and not read:
                    await run_in_threadpool(session.close)  # the connection's return rolls back
                else:
                    session.close()  # autocommit: returning the connection sends nothing


#: ``scope="function"``: the session and its turn end when the endpoint function returns,
#: before the response is sent, so a streamed answer (job events, a file download) holds no
#: turn while it streams (with the default "request" scope, 20 open event streams took every
#: turn and every other request waited).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
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


#: ``fam`` of a link token minted with an API key: ``key:<key id>`` (revoking the key revokes it).
KEY_FAMILY = "key:"


def _user_and_family(session: Session, user_id: int, family_id: str | None) -> tuple[User | None, bool]:
    """The user, and whether its sign-in ``family_id`` (None: a token without one; ``key:<id>``:
    a link minted with that API key) is unrevoked: one query, since every authenticated request
    makes it."""
    if family_id is None:
        return session.get(User, user_id), True
    if family_id.startswith(KEY_FAMILY):
        row = session.execute(
            select(User, ApiKey.id)
            .outerjoin(
                ApiKey,
                (ApiKey.id == family_id[len(KEY_FAMILY) :])
                & (ApiKey.user_id == User.id)
                & ApiKey.revoked_at.is_(None),
            )
            .where(User.id == user_id)
        ).first()
        return (None, False) if row is None else (row[0], row[1] is not None)
    row = session.execute(
        select(User, TokenFamily.id)
        .outerjoin(
            TokenFamily,
            (TokenFamily.id == family_id)
            & (TokenFamily.user_id == User.id)
            & TokenFamily.revoked_at.is_(None),
        )
        .where(User.id == user_id)
    ).first()
    if row is None:
        return None, False
    return row[0], row[1] is not None


def _authenticate(ctx: GatewayContext, session: Session, token: str | None) -> tuple[Principal, float | None]:
    """Who a bearer JWT or API key proves (its user attached to ``session``), and the JWT's
    expiry (Unix seconds; None for an API key). Raises Unauthorized (missing, invalid,
    expired, revoked)."""
    if not token:
        raise Unauthorized("missing bearer token", code="missing_token")
    if token.startswith(API_KEY_PREFIX):
        user, key = _user_from_api_key(session, token)
        # link tokens minted with this key die with it
        return Principal(user, tuple(key.scopes), KEY_FAMILY + key.id), None
    claims = decode_token(ctx.settings.secret_key.get_secret_value(), token, "access")
    found, family_live = _user_and_family(session, claims.user_id, claims.family)
    if found is None or claims.version != found.token_version:
        raise Unauthorized("token has been revoked", code="invalid_token")
    if not family_live:  # signed out, or its refresh token was reused
        raise Unauthorized("token has been revoked", code="invalid_token")
    # link tokens minted by this caller belong to its sign-in
    return Principal(found, None, claims.family), claims.expires_at


def _admit(principal: Principal, request: Request | None, scope: str | None) -> User:
    """``principal``'s user if it may make this request. Raises Unauthorized (disabled
    account) and Forbidden (an API key without ``scope``)."""
    if scope is not None and principal.scopes is not None and scope not in principal.scopes:
        raise Forbidden(f"this API key lacks the {scope!r} scope", code="insufficient_scope")
    user = principal.user
    if user.disabled:
        raise Unauthorized("this account is disabled", code="account_disabled")
    if request is not None:
        request.state.mediafleet_token_family = principal.family
        # for the batch cache's invalidation (mediafleet.gateway.batch.cache)
        request.state.mediafleet_user_id = user.id
    return user


def _user_from_token(
    ctx: GatewayContext,
    session: Session,
    token: str | None,
    request: Request | None = None,
    scope: str | None = None,
) -> User:
    """The caller of a bearer JWT or API key, checked against the database. Raises
    Unauthorized (missing, invalid, expired, revoked, disabled account) and Forbidden (an
    API key without ``scope``)."""
    return _admit(_authenticate(ctx, session, token)[0], request, scope)


def _checked_password_state(user: User) -> User:
    if user.must_change_password:
        raise Forbidden("change your password first: POST /v1/auth/password", code="password_change_required")
    return user


def get_user_pending_password(ctx: ContextDep, session: SessionDep, token: TokenDep) -> User:
    """The caller, even if it still has to change its password (only for that endpoint)."""
    if token and token.startswith(API_KEY_PREFIX):
        raise Forbidden("sign in with a password for this, not an API key", code="password_required")
    return _user_from_token(ctx, session, token)


def _current_user(request: Request, ctx: GatewayContext, session: Session, token: str | None) -> User:
    """:func:`get_current_user` checked against the database (for synchronous dependencies)."""
    scope = "read" if request.method in SAFE_METHODS else "write"
    return _checked_password_state(_user_from_token(ctx, session, token, request, scope))


async def get_current_user(request: Request, ctx: ContextDep, session: SessionDep, token: TokenDep) -> User:
    """The caller; an API key needs ``read`` for GET/HEAD/OPTIONS and ``write`` for the rest.

    A read reuses what an earlier request with the same token found for up to
    ``GATEWAY_PRINCIPAL_CACHE_S`` (mediafleet.gateway.principals: revocations reach the
    cache at once) and then returns a detached copy of the user's row: a read must not
    change it. Async: a cached read takes no thread for it. Writes always ask the database
    and get the session's own row.
    """
    read = request.method in SAFE_METHODS
    cache = ctx.principals
    cacheable = read and bool(token) and cache.enabled
    principal = cache.get(token) if cacheable and token else None
    if principal is None:
        generation = cache.generation

        def look_up() -> Principal:
            found, expires_at = _authenticate(ctx, session, token)
            if cacheable and token:
                copy = Principal(detached_copy(found.user), found.scopes, found.family)
                cache.put(token, copy, generation, expires_at)
            return found

        principal = await run_in_threadpool(look_up)
    return _checked_password_state(_admit(principal, request, "read" if read else "write"))


def get_user_for_secrets(request: Request, ctx: ContextDep, session: SessionDep, token: TokenDep) -> User:
    """The caller, for changes to the account's own secrets (its webhook key): a password sign-in,
    or an API key with the ``admin`` scope (a ``write`` key must not take over the account's
    webhooks)."""
    user = _current_user(request, ctx, session, token)
    if token and token.startswith(API_KEY_PREFIX):
        _user_from_token(ctx, session, token, request, "admin")
    return user


async def get_signed_in_user(user: Annotated[User, Depends(get_current_user)], token: TokenDep) -> User:
    """The caller signed in with a password (a JWT): managing API keys takes that, not a key."""
    if token and token.startswith(API_KEY_PREFIX):
        raise Forbidden("sign in with a password to manage API keys", code="password_required")
    return user


async def get_admin(
    request: Request, user: Annotated[User, Depends(get_current_user)], ctx: ContextDep, session: SessionDep,
    token: TokenDep,
) -> User:  # fmt: skip
    if not user.is_admin:
        raise Forbidden("admin only")
    if token and token.startswith(API_KEY_PREFIX):
        await run_in_threadpool(_user_from_token, ctx, session, token, request, "admin")
    return user


#: ``?token=``: a link token (``mediafleet.common.tokens``) where a browser sends no header.
LinkTokenQuery = Annotated[
    str | None,
    Query(
        alias="token",
        max_length=2048,
        description="a link token from the matching POST .../token route, for clients that "
        "cannot send an Authorization header (EventSource, <img>, <video>)",
    ),
]


def issue_link_token(request: Request, ctx: GatewayContext, user: User, resource: str, ttl_s: int) -> str:
    """A link token for ``resource`` (``<kind>:<id>``) of ``user``, in the caller's sign-in's
    token family (signing out revokes it; an API key's links only expire)."""
    return create_token(
        ctx.settings.secret_key.get_secret_value(), user.id, "link", user.token_version,
        dt.timedelta(seconds=ttl_s), family=getattr(request.state, "mediafleet_token_family", None),
        resource=resource,
    )  # fmt: skip


def _user_from_link(ctx: GatewayContext, session: Session, token: str, resource: str) -> User:
    """The user of a link token for exactly ``resource``. Raises Unauthorized (invalid, expired,
    another resource, revoked, disabled) and Forbidden (password change pending)."""
    claims = decode_token(ctx.settings.secret_key.get_secret_value(), token, "link")
    if claims.resource != resource:
        raise Unauthorized("this link token opens another resource", code="invalid_token")
    user, family_live = _user_and_family(session, claims.user_id, claims.family)
    if user is None or claims.version != user.token_version or not family_live:
        raise Unauthorized("token has been revoked", code="invalid_token")
    if user.disabled:
        raise Unauthorized("this account is disabled", code="account_disabled")
    if user.must_change_password:
        raise Forbidden("change your password first: POST /v1/auth/password", code="password_change_required")
    return user


def user_or_link(kind: str, param: str) -> Callable[..., User]:
    """A dependency: the caller by its bearer token, or else by a link token for
    ``<kind>:<path parameter param>`` in ``?token=``. A bearer header wins when both come."""

    def dependency(
        request: Request, ctx: ContextDep, session: SessionDep, token: TokenDep, link: LinkTokenQuery = None
    ) -> User:
        if token or link is None:
            return _current_user(request, ctx, session, token)
        return _user_from_link(ctx, session, link, f"{kind}:{request.path_params[param]}")

    return dependency


CurrentUser = Annotated[User, Depends(get_current_user)]
SignedInUser = Annotated[User, Depends(get_signed_in_user)]
SecretsUser = Annotated[User, Depends(get_user_for_secrets)]
PendingUser = Annotated[User, Depends(get_user_pending_password)]
AdminUser = Annotated[User, Depends(get_admin)]
