"""Password guessing slowed down per account and per client address, in the gateway itself.

The native fleet has no nginx in front, and ``/v1/batch`` re-enters the app behind nginx's
rate limits, so the gateway counts failed password checks (login and password change) in
Redis, shared by all its processes:

- per (account, client address) pair: the first ``pair_free`` failures within ``window_s``
  cost nothing; each further failure locks that account *from that address* for ``2 ** k``
  seconds (k = failures beyond the free ones - 1; 1, 2, 4, ... capped at ``max_lock_s``): a
  guesser locks out itself, not the account's owner elsewhere, nor the others behind its
  address (a per-address lock let one client lock every account behind an office's NAT);
- per account, a ceiling (``account_free``, much higher): guesses from many addresses
  (a distributed attack) lock the account for everyone;
- per client address, a ceiling (``address_free``, higher still): one address guessing many
  accounts.

Addresses are the peer's, or the ``X-Forwarded-For`` of a trusted proxy only
(``GATEWAY_TRUSTED_PROXIES``; none by default: a local process cannot spoof it natively).
While locked, a check answers 429 ``rate_limited`` with ``Retry-After``, even for the right
password (so a guess cannot be confirmed during the lock). A successful login clears the
pair's and the account's counts. Usernames are stored hashed (SHA-256, lowercased). Redis
down: no limiting (logged), the login still works.
"""

from __future__ import annotations

import hashlib
import math

import redis
import structlog

from mediafleet.common.errors import TooManyRequests

log = structlog.get_logger("mediafleet.gateway.login_guard")

PREFIX = "mediafleet:login"


def _key(kind: str, what: str, value: str) -> str:
    return f"{PREFIX}:{kind}:{what}:{hashlib.sha256(value.lower().encode()).hexdigest()[:32]}"


class LoginGuard:
    def __init__(
        self,
        client: redis.Redis,
        pair_free: int = 5,
        account_free: int = 50,
        address_free: int = 100,
        window_s: int = 900,
        max_lock_s: int = 900,
    ):
        self.redis = client
        self.free = {"pair": pair_free, "account": account_free, "address": address_free}
        self.window_s, self.max_lock_s = window_s, max_lock_s

    def _subjects(self, username: str, address: str | None) -> list[tuple[str, str]]:
        """The counters a check touches: the pair (address ``-`` when unknown: a password
        change), the account, and the address."""
        pair = ("pair", f"{username.lower()}\x00{address or '-'}")
        return [pair, ("account", username)] + ([("address", address)] if address else [])

    def check(self, username: str, address: str | None) -> None:
        """Raises TooManyRequests (``details.retry_after_s``) while the account or the address is locked."""
        try:
            ttls = [
                self.redis.pttl(_key("lock", kind, value))
                for kind, value in self._subjects(username, address)
            ]
        except redis.RedisError as exc:
            log.warning("login_guard_unavailable", error=str(exc))
            return
        wait_ms = max(ttls, default=-2)
        if wait_ms > 0:
            retry = max(1, math.ceil(wait_ms / 1000))
            raise TooManyRequests(
                f"too many failed password attempts; retry in {retry} s",
                details={"retry_after_s": retry},
            )

    def failed(self, username: str, address: str | None) -> None:
        """Count a failed password check; lock the account or address once past its free failures."""
        try:
            for kind, value in self._subjects(username, address):
                key = _key("fail", kind, value)
                pipe = self.redis.pipeline()
                pipe.incr(key)
                pipe.expire(key, self.window_s)
                n = int(pipe.execute()[0])
                beyond = n - self.free[kind]
                if beyond > 0:
                    lock_s = min(2 ** (beyond - 1), self.max_lock_s)
                    self.redis.set(_key("lock", kind, value), 1, ex=lock_s)
                    log.warning("login_locked", kind=kind, failures=n, lock_s=lock_s)
        except redis.RedisError as exc:
            log.warning("login_guard_unavailable", error=str(exc))

    def succeeded(self, username: str, address: str | None = None) -> None:
        try:
            self.redis.delete(
                _key("fail", "account", username),
                _key("fail", "pair", f"{username.lower()}\x00{address or '-'}"),
            )
        except redis.RedisError as exc:
            log.warning("login_guard_unavailable", error=str(exc))
