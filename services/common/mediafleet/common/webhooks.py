"""Webhooks: the target check against SSRF, and the HMAC-SHA256 signature.

A job created with ``webhook_url`` gets the job summary POSTed when it ends, signed as the
Standard Webhooks specification says (standardwebhooks.com, "Signature scheme"), so any of
its verifier libraries checks it unchanged::

    webhook-id: <job id>                         (the same on every retry of one delivery)
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<raw body>")>

where ``key`` is the base64 after the ``whsec_`` prefix of the user's webhook secret,
decoded. Also sent: ``X-Mediafleet-Event: job.succeeded | job.failed | job.canceled`` and,
**deprecated** (kept for one release, then removed)::

    X-Mediafleet-Delivery: <job id>
    X-Mediafleet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

(Stripe's timestamped scheme, keyed with the whole secret string). Receivers refuse old
timestamps to stop replays (5 minutes is the specification's default tolerance).

Targets are refused unless ``allow_private`` is set when any address their name resolves to
is not a global unicast address: every range of IANA's IPv4 and IPv6 Special-Purpose Address
Registries that is not "globally reachable" (loopback, RFC 1918, shared address space
100.64.0.0/10 where cloud metadata services live, link-local, documentation, benchmarking,
reserved, ...), multicast, 6to4 and Teredo, and IPv6 addresses that embed an IPv4 address
(mapped, NAT64) whose IPv4 address is refused. The fleet must not be turned into a client of
its own internal network (SSRF). The check runs when the job is created and again before each
delivery, and the delivery connects to the address that was checked (the Host header and the
TLS server name stay the URL's): no DNS answer can change between the check and the connection.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from mediafleet.common.errors import ValidationFailed

SIGNATURE_HEADER = "X-Mediafleet-Signature"  # deprecated: the Standard Webhooks headers replace it
SECRET_PREFIX = "whsec_"
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# IANA IPv4 / IPv6 Special-Purpose Address Registries (iana.org/assignments/iana-ipv4-special-registry,
# iana-ipv6-special-registry, as of 2024): ranges not globally reachable, refused ...
_REFUSED = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
        "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "2002::/16",
        "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "ff00::/8",
    )
]  # fmt: skip
# ... except these entries inside them that the registries mark globally reachable (anycast
# services: PCP, TURN, DNS-SD SRP, AMT, AS112, ORCHIDv2, Drone Remote ID)
_GLOBAL = [
    ipaddress.ip_network(n)
    for n in (
        "192.0.0.9/32", "192.0.0.10/32", "192.31.196.0/24", "192.52.193.0/24", "192.175.48.0/24",
        "2001:1::1/128", "2001:1::2/128", "2001:1::3/128", "2001:3::/32", "2001:4:112::/48",
        "2001:20::/28", "2001:30::/28", "2620:4f:8000::/48",
    )
]  # fmt: skip
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_TEREDO = ipaddress.ip_network("2001::/32")


def refusal(addr: Address) -> str | None:
    """Why the fleet must not connect to ``addr`` (None: a global unicast address)."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr in _TEREDO:
            return "a Teredo address"
        embedded = addr.ipv4_mapped or (
            ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF) if addr in _NAT64 else None
        )
        if embedded is not None:
            why = refusal(embedded)
            return f"an IPv6 address of {embedded}, {why}" if why else None
    if any(addr in net for net in _GLOBAL):
        return None
    for net in _REFUSED:
        if addr in net:
            return f"in the special-purpose range {net}"
    if addr.is_multicast or not addr.is_global:
        return "not a global address"
    return None


@dataclass(frozen=True)
class Target:
    """A webhook URL checked: connect to ``address`` (one it resolved to), send ``host`` as the
    Host header and the TLS server name."""

    url: str
    scheme: str
    host: str
    port: int
    address: str

    def connect_url(self) -> str:
        """The URL with the checked address in place of the name (IPv6 in brackets)."""
        parts = urlsplit(self.url)
        ip = f"[{self.address}]" if ":" in self.address else self.address
        path = parts.path or "/"
        return f"{self.scheme}://{ip}:{self.port}{path}" + (f"?{parts.query}" if parts.query else "")


def check_target(url: str, allow_private: bool = False) -> Target:
    """The URL resolved once and checked; raises ValidationFailed (``webhook_url_refused``) for a
    URL the fleet must not call (scheme, credentials, a name that does not resolve, any address
    :func:`refusal` refuses)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("webhook_url must be an http(s) URL with a host", code="webhook_url_refused")
    if parts.username or parts.password:
        raise ValidationFailed("webhook_url must not carry credentials", code="webhook_url_refused")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ValidationFailed(f"webhook_url has a bad port: {exc}", code="webhook_url_refused") from exc
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValidationFailed(
            f"webhook host {parts.hostname!r} does not resolve: {exc}", code="webhook_url_refused"
        ) from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not allow_private:
        for addr in addresses:
            why = refusal(addr)
            if why:
                raise ValidationFailed(
                    f"webhook host {parts.hostname!r} resolves to {addr}, {why} (allowed only with "
                    "MEDIAFLEET_WEBHOOK_ALLOW_PRIVATE_TARGETS=true)",
                    code="webhook_url_refused",
                )
    return Target(url=url, scheme=parts.scheme, host=parts.hostname, port=port, address=str(addresses[0]))


def new_secret() -> str:
    """A webhook secret as Standard Webhooks writes them: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def standard_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the specification's reading; secrets made
    before base64, ``whsec_<64 hex digits>``, decode too, as every verifier library reads them).
    Raises ValueError for a secret that is not base64 after its prefix."""
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text + "==")  # unpadded secrets too, as the reference libraries do
    except (binascii.Error, ValueError) as exc:
        raise ValueError("webhook secret is not base64 after whsec_") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def standard_headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for ``body`` (Standard
    Webhooks: ``v1,`` + base64 HMAC-SHA256 of ``"<id>.<timestamp>.<body>"``)."""
    t = int(timestamp if timestamp is not None else time.time())
    mac = hmac.new(standard_key(secret), f"{msg_id}.{t}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(t),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The deprecated ``X-Mediafleet-Signature`` value of ``body``."""
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
