"""How a worker reaches a task's media: the shared media volume, or a short-lived signed URL.

Workers on the fleet's host mount the media volume and read ``<media_dir>/<storage_path>``.
A worker elsewhere (a rented GPU box) has no volume: job_manager adds a URL signed with
``MEDIAFLEET_MEDIA_URL_SECRET`` that the gateway serves without a bearer token until it
expires (``GET /v1/media/{id}/content?expires=&sig=``). The signature is
HMAC-SHA256(secret, ``"media:<media_id>:<expires>"``), hex (RFC 2104).
"""

from __future__ import annotations

import hashlib
import hmac
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from mediafleet.common.errors import Forbidden, InvalidMedia

if TYPE_CHECKING:
    import httpx


def media_signature(secret: str, media_id: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"media:{media_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def sign_media_url(base_url: str, media_id: str, secret: str, ttl_s: int, now: float | None = None) -> str:
    """URL of the media's bytes at the gateway, valid for ``ttl_s`` seconds."""
    expires = int((now or time.time()) + ttl_s)
    query = urlencode({"expires": expires, "sig": media_signature(secret, media_id, expires)})
    return f"{base_url.rstrip('/')}/v1/media/{media_id}/content?{query}"


class MediaUrlExpired(Exception):
    """The task's signed media URL expired before a worker ran it (the task waited in a queue
    longer than ``MEDIAFLEET_MEDIA_URL_TTL_S``). Not a :class:`MediafleetError`: the task is
    retried, and job_manager signs a new URL into a waiting task before its URL runs out."""


def url_expires(url: str) -> int | None:
    """The ``expires`` (unix seconds) of a URL made by :func:`sign_media_url`, None without one."""
    values = parse_qs(urlsplit(url).query).get("expires")
    try:
        return int(values[0]) if values else None
    except ValueError:
        return None


def verify_media_signature(secret: str, media_id: str, expires: int, sig: str) -> None:
    """Raises Forbidden when ``sig`` is wrong or ``expires`` (unix seconds) has passed."""
    if not hmac.compare_digest(media_signature(secret, media_id, expires), sig):
        raise Forbidden("bad media URL signature", code="bad_signature")
    if expires < time.time():
        raise Forbidden("media URL has expired", code="url_expired")


@contextmanager
def open_media(payload: dict[str, Any], media_dir: Path, timeout_s: float = 120.0) -> Iterator[Path]:
    """The task's media as a local file: from the volume, else downloaded from ``media_url``.

    A download goes to a temporary file that is removed afterwards. Raises InvalidMedia
    when neither is available, OSError/httpx errors on transfer failures (retried).
    """
    local = Path(media_dir) / payload["storage_path"]
    if local.is_file():
        yield local
        return
    url = payload.get("media_url")
    if not url:
        raise InvalidMedia(
            f"media {payload['media_id']} is not on this worker's media volume ({media_dir}) and the "
            "task carries no media URL (set MEDIAFLEET_MEDIA_URL_BASE on job_manager)",
            code="media_unreachable",
        )
    import httpx

    suffix = Path(payload["storage_path"]).suffix
    with tempfile.NamedTemporaryFile(suffix=suffix, prefix="mediafleet-") as tmp:
        with httpx.stream("GET", url, timeout=timeout_s) as resp:
            if resp.status_code == 403 and _error_code(resp) == "url_expired":
                raise MediaUrlExpired(
                    "the task's media URL expired before it ran; the retry carries a new one"
                )
            if resp.status_code in (403, 404):
                raise InvalidMedia(f"media URL refused: HTTP {resp.status_code}", code="media_unreachable")
            resp.raise_for_status()
            for block in resp.iter_bytes(1 << 20):
                tmp.write(block)
        tmp.flush()
        yield Path(tmp.name)


def _error_code(resp: httpx.Response) -> str | None:
    """The ``error.code`` of a gateway error envelope, None when the body is not one."""
    try:
        resp.read()
        body = resp.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None
