"""``/v1/media``: upload (stored once by SHA-256), the caller's library, metadata, the
original bytes and thumbnails (to their owner only)."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import threading
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, UploadFile, status
from fastapi.responses import FileResponse
from PIL import Image
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile as StarletteUpload

from mediafleet.common import tracing
from mediafleet.common.errors import NotFound, ValidationFailed
from mediafleet.common.media import FrameSampling, frame_at, load_rgb_fitted, sample_frames
from mediafleet.common.media_access import verify_media_signature
from mediafleet.common.store import Media, MediaOwner, User
from mediafleet.gateway.context import GatewayContext
from mediafleet.gateway.crud import media as crud
from mediafleet.gateway.deps import ContextDep, CurrentUser, SessionDep, issue_link_token, user_or_link
from mediafleet.gateway.location import write_without_location
from mediafleet.gateway.quota import check_quota
from mediafleet.gateway.schemas import BINARY, MEDIA_BYTES, LinkToken, MediaList, MediaPublic

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


def store_upload(
    session: Session, ctx: GatewayContext, user: User, file: StarletteUpload
) -> tuple[Media, MediaOwner, bool]:
    """Store ``file`` as the caller's media (see :func:`upload_media`): the media row, the
    caller's ownership of it and whether the caller had uploaded the same bytes before.
    Raises what the upload route answers (413, 415, 422, 507); a refused file leaves nothing.
    Traced as ``media.store``."""
    with tracing.span("media.store") as current:
        media, owner, deduplicated = _store_upload(session, ctx, user, file)
        current.set_attributes(
            {
                "mediafleet.media_id": media.id,
                "mediafleet.media_kind": media.kind,
                "mediafleet.deduplicated": deduplicated,
            }
        )
    return media, owner, deduplicated


def _store_upload(
    session: Session, ctx: GatewayContext, user: User, file: StarletteUpload
) -> tuple[Media, MediaOwner, bool]:
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
            check_quota(session, user, ctx.settings, stored.size_bytes)  # 413 quota_exceeded
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
        ctx.media.discard(stored)  # only a file this call created
        raise
    return media, owner, deduplicated


@router.post("/v1/media", response_model=MediaPublic, status_code=status.HTTP_201_CREATED)
def upload_media(file: UploadFile, user: CurrentUser, ctx: ContextDep, session: SessionDep) -> MediaPublic:
    """Store an image, audio or video file. The same bytes always get the same ``media_id`` (their SHA-256).

    The content type comes from the bytes: images by Pillow (JPEG, PNG, TIFF, WebP, BMP,
    GIF), audio and video by PyAV (FLAC, MP3, Ogg, WAV, AAC, MP4/M4A, WebM/Matroska, AVI).
    Errors: 413 over ``GATEWAY_MAX_UPLOAD_BYTES``, or past the account's storage quota
    (``quota_exceeded``); 415 not a supported format or codec; 422 empty, truncated, corrupt,
    without samples, frames over the pixel cap, or longer than ``GATEWAY_MAX_MEDIA_DURATION_S``
    (``media_too_long``); 507 the media disk is full. A rejected upload leaves nothing on disk or
    in the database.
    """
    media, owner, deduplicated = store_upload(session, ctx, user, file)
    return public_media(media, owner, deduplicated)


#: A calendar day as query parameters write it (ISO 8601 extended, as ``<input type=date>`` sends).
DAY = r"^\d{4}-\d{2}-\d{2}$"


def _day_query(description: str) -> Any:
    """A ``YYYY-MM-DD`` query parameter (``format: date`` in the schema, parsed by :func:`_day`)."""
    return Query(pattern=DAY, json_schema_extra={"format": "date"}, description=f"{description}, YYYY-MM-DD")


def _day(value: str | None, name: str) -> dt.date | None:
    """``YYYY-MM-DD`` -> a date; 422 for one that does not exist (2019-02-30)."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(
            f"{name} is not a day of the calendar: {value}",
            details=[{"loc": ["query", name], "msg": "no such day"}],
        ) from None


@router.get("/v1/media", response_model=MediaList)
def list_media(
    user: CurrentUser,
    session: SessionDep,
    response: Response,
    kind: Annotated[Literal["image", "audio", "video"] | None, Query(description="only this kind")] = None,
    task: Annotated[
        str | None,
        Query(
            max_length=32,
            pattern=r"^[a-z0-9_]+$",
            description="only media with a succeeded task of this name (e.g. ocr) in the caller's jobs",
        ),
    ] = None,
    taken_from: Annotated[
        str | None,
        _day_query(
            "only media the file says were made on or after this day (its local date; a metadata result)"
        ),
    ] = None,
    taken_to: Annotated[str | None, _day_query("only media made on or before this day (inclusive)")] = None,
    place: Annotated[
        str | None,
        Query(
            min_length=2,
            max_length=100,
            description="only media whose place (a metadata result: 'Madrid, ES') contains this text, "
            "case-insensitive, or whose ISO 3166 country code it is",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> MediaList:
    """The caller's media, newest upload first (each upload of the same bytes counts once).

    The date and place filters read what the ``metadata`` task found in the file (EXIF,
    container tags, GPS named offline); media never analysed for it match neither. 422
    ``validation_error`` when ``taken_from`` is after ``taken_to``."""
    response.headers["Cache-Control"] = "no-store"
    day_from, day_to = _day(taken_from, "taken_from"), _day(taken_to, "taken_to")
    if day_from is not None and day_to is not None and day_from > day_to:
        raise ValidationFailed(
            "taken_from is after taken_to",
            details=[{"loc": ["query", "taken_from"], "msg": "after taken_to"}],
        )
    rows, count = crud.media_page(
        session, user_id=user.id, limit=limit, offset=offset, kind=kind, task=task,
        taken_from=day_from, taken_to=day_to, place=place.strip() if place else None,
    )  # fmt: skip
    return MediaList(
        data=[public_media(m, o, True) for m, o in rows], count=count, limit=limit, offset=offset
    )


@router.get("/v1/media/{media_id}", response_model=MediaPublic)
def get_media(media_id: str, user: CurrentUser, session: SessionDep) -> MediaPublic:
    media, owner = _owned(session, media_id, user.id)
    return public_media(media, owner, True)


def _owned(session: Session, media_id: str, user_id: int) -> tuple[Media, MediaOwner]:
    """The media and the caller's upload of it; NotFound when the caller never uploaded it
    (another user's media is "not found", not "forbidden")."""
    media = session.get(Media, media_id)
    owner = session.get(MediaOwner, (media_id, user_id))
    if media is None or owner is None:
        raise NotFound(f"media {media_id} not found", code="media_not_found")
    return media, owner


#: What GATEWAY_STRIP_LOCATION rewrites (mediafleet.gateway.location); others are served as stored.
STRIPPED_MIMES = frozenset({"image/jpeg", "video/mp4", "audio/mp4"})

#: The caller by bearer header, or by a link token for this media (``<video src>``, ``<img>``).
MediaViewer = Annotated[User, Depends(user_or_link("media", "media_id"))]


@router.post("/v1/media/{media_id}/token", response_model=LinkToken)
def media_token(
    media_id: str, request: Request, user: CurrentUser, ctx: ContextDep, session: SessionDep
) -> LinkToken:
    """A link token for this media's ``/original`` and ``/thumbnail`` (``?token=``), valid for
    ``GATEWAY_MEDIA_TOKEN_TTL_S`` (3600 s), for players and images that send no header.
    ``url`` is the original's. 404 for media the caller never uploaded."""
    _owned(session, media_id, user.id)
    ttl = ctx.settings.media_token_ttl_s
    token = issue_link_token(request, ctx, user, f"media:{media_id}", ttl)
    return LinkToken(token=token, expires_in=ttl, url=f"/v1/media/{media_id}/original?token={token}")


@router.get(
    "/v1/media/{media_id}/original",
    response_class=FileResponse,
    responses={
        200: {
            "content": MEDIA_BYTES,
            "description": "the uploaded bytes, with their probed MIME type",
        }
    },
)
def media_original(media_id: str, user: MediaViewer, ctx: ContextDep, session: SessionDep) -> FileResponse:
    """The bytes the caller uploaded, as stored (``Content-Type`` the probed MIME type,
    ``Content-Disposition: inline`` with the upload's file name; ranges supported). With
    ``GATEWAY_STRIP_LOCATION=true``, a JPEG, MP4 or MOV comes without the position it
    records (a copy made once, lossless; every other byte as uploaded)."""
    media, owner = _owned(session, media_id, user.id)
    path = ctx.media.path_of(media.storage_path)
    if not path.is_file():
        raise NotFound(f"media {media_id} has no stored bytes", code="media_bytes_missing")
    if ctx.settings.strip_location and media.mime in STRIPPED_MIMES:
        source = path
        path = ctx.media.derived_file(
            f"{media_id}-nolocation{path.suffix}",
            lambda part: write_without_location(source, part, media.mime),
        )
    name = owner.filename or f"{media_id}{path.suffix}"
    return FileResponse(
        path, media_type=media.mime, filename=name, content_disposition_type="inline",
        headers={"Cache-Control": "private, max-age=86400"},
    )  # fmt: skip


#: Thumbnail sizes served (pixels, longer side): a fixed few, so the cache stays bounded. 2048
#: is the preview the web UI draws results on for formats browsers cannot show (TIFF).
THUMBNAIL_SIZES = (128, 256, 512, 2048)
#: Thumbnails made at once per process: each may decode an image up to MAX_PIXELS (about
#: 250 MiB for the largest PNG), within the gateway's 512 MiB limit.
_THUMBNAILS = threading.BoundedSemaphore(1)


@router.get(
    "/v1/media/{media_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": BINARY}, "description": "JPEG, longer side at most `size`"}},
)
def media_thumbnail(
    media_id: str,
    user: MediaViewer,
    ctx: ContextDep,
    session: SessionDep,
    size: Annotated[
        int,
        Query(
            description="longer side, pixels: 128, 256, 512, or 2048 (a preview; never enlarged)",
            json_schema_extra={"enum": list(THUMBNAIL_SIZES)},
        ),
    ] = 256,
) -> Response:
    """A JPEG of the image, or of a video's first frame, its longer side at most ``size``
    pixels (displayed orientation). Made once and kept beside the media
    (``<media>/.thumbs``). 404 ``no_thumbnail`` for audio."""
    if size not in THUMBNAIL_SIZES:
        raise ValidationFailed(
            "thumbnail size must be 128, 256, 512 or 2048",
            details=[{"loc": ["query", "size"], "msg": "not 128, 256, 512 or 2048"}],
        )
    media, _ = _owned(session, media_id, user.id)
    if media.kind == "audio":
        raise NotFound(f"media {media_id} is audio: it has no thumbnail", code="no_thumbnail")
    source = ctx.media.path_of(media.storage_path)

    def make() -> bytes:
        with _THUMBNAILS:
            return _thumbnail_jpeg(source, media.kind, size)

    return Response(
        ctx.media.thumbnail(f"{media_id}-{size}.jpg", make),
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=86400"},
    )


def face_crop_jpeg(source: Path, kind: str, box: list[float], t: float | None, size: int) -> bytes:
    """A square JPEG (``size`` pixels, quality 85) around face ``box`` (xyxy in the image's
    displayed pixels, or the frame's at ``t`` seconds of a video), with 25 % margin on each side.
    Decodes at most 2048 pixels on the longer side. Raises InvalidMedia."""
    if kind == "video":
        rgb, scale = frame_at(source, t or 0.0), 1
    else:
        fitted = load_rgb_fitted(source, 2048, exif_transpose=True)
        rgb, scale = fitted.pixels, fitted.scale
    x1, y1, x2, y2 = (v / scale for v in box)
    side = max(x2 - x1, y2 - y1) * 1.5
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    img = Image.fromarray(rgb).crop(
        (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))
    )  # outside the image: black
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def cached_face_crop(
    ctx: GatewayContext, media: Media, face_id: str, box: list[float], t: float | None, size: int
) -> bytes:
    """:func:`face_crop_jpeg`, made once per face and size and kept with the thumbnails."""

    def make() -> bytes:
        with _THUMBNAILS:
            return face_crop_jpeg(ctx.media.path_of(media.storage_path), media.kind, box, t, size)

    return ctx.media.thumbnail(f"{media.id}-face-{face_id}-{size}.jpg", make)


def _thumbnail_jpeg(source: Path, kind: str, size: int) -> bytes:
    """Decode ``source`` fitted to 2 x ``size`` (JPEG at reduced scale), shrink to ``size``
    (Lanczos): JPEG quality 85. Raises InvalidMedia (undecodable)."""
    if kind == "video":
        _, rgb = next(iter(sample_frames(source, FrameSampling(max_frames=1), max_side=2 * size)))
    else:
        rgb = load_rgb_fitted(source, 2 * size, exif_transpose=True).pixels
    img = Image.fromarray(rgb)
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


@router.get(
    "/v1/media/{media_id}/content",
    response_class=FileResponse,
    responses={
        200: {"content": MEDIA_BYTES, "description": "the uploaded bytes, with their probed MIME type"}
    },
)
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
    if not secret:  # unset or empty (compose's default): signed URLs are off
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


def public_media(media: Media, owner: MediaOwner, deduplicated: bool) -> MediaPublic:
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
        taken_at=media.taken_at,
        place=media.place,
    )
