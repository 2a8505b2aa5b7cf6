"""Webhooks: the target check against SSRF, and the HMAC-SHA256 signature.

A job created with ``webhook_url`` gets the job summary POSTed when it ends. Each
request carries::

    X-Mediafleet-Event: job.succeeded | job.failed | job.canceled
    X-Mediafleet-Delivery: <job id>
    X-Mediafleet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

(the timestamped scheme Stripe documents; a receiver recomputes ``v1`` with the user's
webhook secret and refuses old ``t`` to stop replays).

Targets that resolve to loopback, private (RFC 1918, RFC 4193), link-local, multicast,
reserved or unspecified addresses are refused unless ``allow_private`` is set: the fleet
must not be turned into a client of its own internal network (SSRF). The check runs when
the job is created and again before each delivery (the name may resolve differently later).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from urllib.parse import urlsplit

from mediafleet.common.errors import ValidationFailed

SIGNATURE_HEADER = "X-Mediafleet-Signature"


def check_target(url: str, allow_private: bool = False) -> None:
    """Raise ValidationFailed (``webhook_url_refused``) for a URL the fleet must not call."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("webhook_url must be an http(s) URL with a host", code="webhook_url_refused")
    if parts.username or parts.password:
        raise ValidationFailed("webhook_url must not carry credentials", code="webhook_url_refused")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as exc:
        raise ValidationFailed(
            f"webhook host {parts.hostname!r} does not resolve: {exc}", code="webhook_url_refused"
        ) from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if (
            addr.is_loopback
            or addr.is_private
            or addr.is_link_local
            or addr.is_multicast
            or addr.is_reserved
            or addr.is_unspecified
        ):
            raise ValidationFailed(
                f"webhook host {parts.hostname!r} resolves to {addr}, a loopback, private or link-local "
                "address (allowed only with MEDIAFLEET_WEBHOOK_ALLOW_PRIVATE_TARGETS=true)",
                code="webhook_url_refused",
            )


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Mediafleet-Signature`` value of ``body``."""
    t = int(timestamp if timestamp is not None else time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance_s: float = 300.0) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and is at most ``tolerance_s`` old."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance_s:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))
