"""Accounts, API keys and sign-ins (token families)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from mediafleet.common.store import ApiKey, TokenFamily, User


def user_by_name(session: Session, *, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def all_users(session: Session) -> Sequence[User]:
    """Every account, oldest first."""
    return session.scalars(select(User).order_by(User.id)).all()


def api_keys_of(session: Session, *, user_id: int) -> Sequence[ApiKey]:
    """The user's API keys, newest first (revoked ones included)."""
    return session.scalars(
        select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at.desc())
    ).all()


def rotate_refresh(session: Session, *, family_id: str, used_jti: str, new_jti: str) -> bool:
    """Move sign-in ``family_id`` from refresh token ``used_jti`` to ``new_jti`` in one
    compare-and-swap: True for exactly one of concurrent callers presenting the current
    token, False when ``used_jti`` is not current (already used) or the sign-in is revoked."""
    result = cast(
        CursorResult[Any],
        session.execute(
            update(TokenFamily)
            .where(
                TokenFamily.id == family_id,
                TokenFamily.current_jti == used_jti,
                TokenFamily.revoked_at.is_(None),
            )
            .values(current_jti=new_jti)
            .execution_options(synchronize_session=False)
        ),
    )
    return result.rowcount == 1


def revoke_family(session: Session, *, family_id: str, reason: str) -> None:
    """Revoke sign-in ``family_id`` (its refresh and access tokens) unless it already is."""
    session.execute(
        update(TokenFamily)
        .where(TokenFamily.id == family_id, TokenFamily.revoked_at.is_(None))
        .values(revoked_at=dt.datetime.now(dt.UTC), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
