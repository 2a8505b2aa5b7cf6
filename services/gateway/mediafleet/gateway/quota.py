"""Per-account storage quotas: bytes and files an account's uploads may hold.

Each account's quota is its own (``users.quota_bytes`` / ``quota_files``, set by an admin with
``PATCH /v1/users/{id}``) or the gateway's defaults (``GATEWAY_QUOTA__BYTES`` /
``GATEWAY_QUOTA__FILES``); 0 is no limit. Usage counts every media the account owns at its
full size, also bytes another account uploaded too (stored once on disk, owned by both).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mediafleet.common.errors import PayloadTooLarge
from mediafleet.common.store import Media, MediaOwner, User
from mediafleet.gateway.settings import GatewaySettings


def quota_of(user: User, settings: GatewaySettings | None) -> tuple[int, int]:
    """``(bytes, files)`` the account may hold; 0: no limit."""
    default_bytes = settings.quota.bytes if settings is not None else 0
    default_files = settings.quota.files if settings is not None else 0
    return (
        user.quota_bytes if user.quota_bytes is not None else default_bytes,
        user.quota_files if user.quota_files is not None else default_files,
    )


def storage_used(session: Session, user_id: int) -> tuple[int, int]:
    """``(files, bytes)`` the account's uploads hold now (one indexed aggregate)."""
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(Media.size_bytes), 0))
        .select_from(MediaOwner)
        .join(Media, Media.id == MediaOwner.media_id)
        .where(MediaOwner.user_id == user_id)
    ).one()
    return int(row[0]), int(row[1])


def check_quota(session: Session, user: User, settings: GatewaySettings, size_bytes: int) -> None:
    """Raise PayloadTooLarge (413 ``quota_exceeded``) when one more file of ``size_bytes`` would
    take the account past its quota."""
    max_bytes, max_files = quota_of(user, settings)
    if not max_bytes and not max_files:
        return
    files, used = storage_used(session, user.id)
    if (max_files and files + 1 > max_files) or (max_bytes and used + size_bytes > max_bytes):
        raise PayloadTooLarge(
            f"this upload would take the account past its storage quota ({files} of {max_files or 'unlimited'} "
            f"files, {used} of {max_bytes or 'unlimited'} bytes used); delete media or ask an admin",
            code="quota_exceeded",
            details={"used_files": files, "used_bytes": used, "quota_files": max_files, "quota_bytes": max_bytes,
                     "size_bytes": size_bytes},
        )  # fmt: skip
