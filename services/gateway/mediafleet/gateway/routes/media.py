"""``/v1/media``: upload (stored once by SHA-256) and metadata."""

from __future__ import annotations

import os
import re
import unicodedata
from typing import Annotated

from fastapi import APIRouter, Query, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy.exc import IntegrityError

from mediafleet.common.errors import NotFound
from mediafleet.common.media_access import verify_media_signature
from mediafleet.common.store import Media, MediaOwner
from mediafleet.gateway.deps import ContextDep, CurrentUser, SessionDep
from mediafleet.gateway.schemas import MediaPublic

router = APIRouter(tags=["media"])
MAX_FILENAME = 255


def clean_filename(name: str | None) -> str | None:
    """The display name kept for an upload: its last path part (``/`` or ``\\``), without control
    or format characters (Unicode category C: NUL, newlines, bidi overrides), at most 255
    characters with the extension kept; None when nothing is left."""
    if not name:
        return None
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C")).strip()
    if name in ("", ".", ".."):
        return None
    if len(name) > MAX_FILENAME:
        stem, ext = os.path.splitext(name)
        ext = ext if len(ext) <= 16 else ""
        name = stem[: MAX_FILENAME - len(ext)] + ext
    return name


@router.post("/v1/media", response_model=MediaPublic, status_code=status.HTTP_201_CREATED)
def upload_media(file: UploadFile, user: CurrentUser, ctx: ContextDep, session: SessionDep) -> MediaPublic:
    """Store an image, audio or video file. The same bytes always get the same ``media_id`` (their SHA-256).

    The content type comes from the bytes: images by Pillow (JPEG, PNG, TIFF, WebP, BMP,
    GIF), audio and video by PyAV (FLAC, MP3, Ogg, WAV, AAC, MP4/M4A, WebM/Matroska, AVI).
    Errors: 413 over ``GATEWAY_MAX_UPLOAD_BYTES``; 415 not a supported format or codec; 422
    empty, truncated, corrupt, without samples, or longer than
    ``GATEWAY_MAX_MEDIA_DURATION_S`` (``media_too_long``). A rejected upload leaves nothing on disk or in the database.
    """
    stored = ctx.media.save(file.file)
    try:
        media = session.get(Media, stored.sha256)
        if media is None:
            media = Media(
                id=stored.sha256,
                kind=stored.probe.kind,
                mime=stored.probe.mime,
                size_bytes=stored.size_bytes,
                width=stored.probe.width,
                height=stored.probe.height,
                duration_s=stored.probe.duration_s,
                streams=stored.probe.streams or None,
                storage_path=stored.relative_path,
            )
            session.add(media)
        owner = session.get(MediaOwner, (stored.sha256, user.id))
        # only the caller's own earlier upload counts: whether someone else stored the same
        # bytes is not the caller's business
        deduplicated = owner is not None
        if owner is None:
            owner = MediaOwner(
                media_id=stored.sha256, user_id=user.id, filename=clean_filename(file.filename)
            )
            session.add(owner)
        session.commit()
    except IntegrityError:
        # A concurrent upload of the same bytes won the insert: the row exists now.
        session.rollback()
        media = session.get(Media, stored.sha256)
        owner = session.get(MediaOwner, (stored.sha256, user.id))
        if media is None or owner is None:
            raise
        deduplicated = True
    except BaseException:
        session.rollback()
        ctx.media.discard(stored)
        raise
    return _public(media, owner, deduplicated)


@router.get("/v1/media/{media_id}", response_model=MediaPublic)
def get_media(media_id: str, user: CurrentUser, session: SessionDep) -> MediaPublic:
    media = session.get(Media, media_id)
    owner = session.get(MediaOwner, (media_id, user.id))
    if media is None or owner is None:
        raise NotFound(f"media {media_id} not found", code="media_not_found")
    return _public(media, owner, True)


@router.get("/v1/media/{media_id}/content", response_class=FileResponse)
def media_content(
    media_id: str,
    expires: Annotated[int, Query(description="unix seconds")],
    sig: Annotated[str, Query(max_length=128)],
    ctx: ContextDep,
    session: SessionDep,
) -> FileResponse:
    """The media's bytes for a worker without the media volume, by a URL job_manager signed.

    No bearer token: the HMAC signature (``MEDIAFLEET_MEDIA_URL_SECRET``) and its expiry are
    the authorisation. 403 for a wrong or expired signature, 404 when signed URLs are off.
    """
    secret = ctx.settings.core.media_url_secret
    if secret is None:
        raise NotFound(f"media {media_id} not found", code="media_not_found")
    # the signature first: an unsigned probe must not learn whether some content is stored
    verify_media_signature(secret.get_secret_value(), media_id, expires, sig)
    media = session.get(Media, media_id)
    if media is None:
        raise NotFound(f"media {media_id} not found", code="media_not_found")
    path = ctx.media.path_of(media.storage_path)
    if not path.is_file():  # the row outlived its bytes (volume restored from an older backup)
        raise NotFound(f"media {media_id} has no stored bytes", code="media_bytes_missing")
    return FileResponse(path, media_type=media.mime)


def _public(media: Media, owner: MediaOwner, deduplicated: bool) -> MediaPublic:
    return MediaPublic(
        media_id=media.id,
        kind=media.kind,
        mime=media.mime,
        size_bytes=media.size_bytes,
        width=media.width,
        height=media.height,
        duration_s=media.duration_s,
        streams=media.streams or [],
        filename=owner.filename,
        deduplicated=deduplicated,
        created_at=owner.created_at,
    )
