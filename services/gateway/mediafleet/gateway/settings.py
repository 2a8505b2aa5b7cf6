"""Gateway settings (prefix ``GATEWAY_``; core values under ``MEDIAFLEET_``)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import structlog
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mediafleet.common.settings import CoreSettings, is_placeholder, refuse_placeholder


class AdminSettings(BaseModel):
    """The first admin, created at start when no user of that name exists.

    Its password must be changed at first login (``POST /v1/auth/password``).
    """

    username: str = "admin"
    password: SecretStr = SecretStr("changethis")


class BatchSettings(BaseModel):
    max_requests: int = Field(default=50, ge=1, le=1000)
    concurrency: int = Field(default=20, ge=1, le=200)
    cache_size: int = Field(default=2000, ge=0)
    cache_ttl_s: float = Field(default=120.0, ge=0)
    max_retries: int = Field(default=2, ge=0, le=5)
    timeout_s: float = Field(default=30.0, gt=0)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_item_body_bytes: int = Field(default=256 * 1024, ge=256)


class LoginSettings(BaseModel):
    """Slowing down password guessing (see ``mediafleet.gateway.login_guard``)."""

    #: Failures within ``window_s`` that cost nothing: per (account, client address) pair, then
    #: the ceilings per account (guesses from many addresses) and per address (many accounts).
    pair_free_failures: int = Field(default=5, ge=1)
    account_free_failures: int = Field(default=50, ge=1)
    address_free_failures: int = Field(default=100, ge=1)
    window_s: int = Field(default=900, ge=1)
    #: Longest lock after repeated failures, seconds (locks double: 1, 2, 4, ...).
    max_lock_s: int = Field(default=900, ge=1)
    #: Password hashes computed at once (argon2id is CPU-bound; more waits its turn).
    concurrent_hashes: int = Field(default=2, ge=1, le=64)


class QuotaSettings(BaseModel):
    """Default storage quota of an account (an admin sets another per account): 0, no limit."""

    bytes: int = Field(default=0, ge=0)
    files: int = Field(default=0, ge=0)


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    core: CoreSettings = Field(default_factory=CoreSettings)
    #: Whether /metrics, /docs, /redoc and /openapi.json answer anyone: None (default) opens them in
    #: development only; elsewhere they need ``Authorization: Bearer <internals_token>`` (and
    #: answer 404 while no token is set). Prometheus scrapes with that token.
    internals_open: bool | None = None
    #: Addresses (IPs, CIDRs, or ``*``) of proxies whose ``X-Forwarded-For`` names the client;
    #: empty (default): none, the peer's address counts (natively no local process can spoof a
    #: client address). The compose fleet: ``*`` (only nginx reaches the gateway's network).
    trusted_proxies: str = ""
    #: Per-account storage quotas (GATEWAY_QUOTA__BYTES, GATEWAY_QUOTA__FILES; 0: no limit).
    quota: QuotaSettings = Field(default_factory=QuotaSettings)
    #: Below this many bytes free on the media disk, /readyz answers 503 (uploads would fail).
    min_free_bytes: int = Field(default=1 << 30, ge=0)
    #: Job event streams (SSE) one account may hold open at once, per gateway process (more: 429).
    max_streams_per_user: int = Field(default=10, ge=1, le=1000)
    #: Seconds a synchronous route (``POST /v1/audio/transcriptions``) waits for its job before
    #: answering 504 ``job_still_running`` with the job to follow.
    sync_timeout_s: float = Field(default=600.0, gt=0, le=3600)
    #: Synchronous requests one account may have waiting at once, per gateway process (more: 429).
    max_sync_per_user: int = Field(default=4, ge=1, le=100)
    internals_token: SecretStr | None = None
    #: HS256 signing key of access and refresh tokens. Unset or an example value in
    #: development: a random key generated on first start (``secret_key_file``); refused in
    #: test and production.
    secret_key: SecretStr = SecretStr("changethis")
    access_token_ttl_s: int = Field(default=30 * 60, ge=10)
    refresh_token_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    #: Lifetime of a link token that opens one job's event stream (EventSource sends no
    #: header): only needed to open it, so short.
    events_token_ttl_s: int = Field(default=120, ge=5)
    #: Lifetime of a link token for one media's original and thumbnails (``<video src>``
    #: seeks with range requests while it plays).
    media_token_ttl_s: int = Field(default=3600, ge=5)
    #: Serve originals (``/v1/media/{id}/original``) without the position they record: EXIF GPS
    #: and GPS-bearing XMP of JPEGs, ISO 6709 positions of MP4/MOV, removed losslessly
    #: (``mediafleet.gateway.location``). The stored file keeps them: the metadata task reads them.
    strip_location: bool = False
    admin: AdminSettings = Field(default_factory=AdminSettings)
    #: Largest upload accepted, bytes (nginx's client_max_body_size should match).
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    #: Largest body that is not a multipart upload (JSON, forms), bytes: parsed in memory, so
    #: small (``/v1/batch`` has ``GATEWAY_BATCH__MAX_BODY_BYTES``).
    max_json_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: Longest audio or video accepted, seconds (422 ``media_too_long`` above it).
    max_media_duration_s: float = Field(default=4 * 3600, gt=0)
    min_password_length: int = Field(default=10, ge=8)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    login: LoginSettings = Field(default_factory=LoginSettings)
    host: str = "127.0.0.1"
    port: int = 8000
    #: uvicorn worker processes (bench/load compares 1 and 2). Each has its own batch
    #: response cache: a write through one process does not clear another's cached reads,
    #: which then live at most their TTL (search 15 s).
    workers: int = Field(default=1, ge=1, le=64)
    #: Threads that run the synchronous endpoints and dependencies, per process (anyio's
    #: default is 40). Python runs one at a time; threads also wait on workers' answers
    #: (semantic search, ask), so keep this above ``db_concurrency``.
    threads: int = Field(default=40, ge=1, le=200)
    #: Requests of one process that hold a database session at once; the others wait their
    #: turn on the event loop, in order. The pool has 10 connections more than this (for
    #: the event streams' and background reads), so a request that has its turn never waits
    #: for a connection while holding a thread (bench/load: ``--db-concurrency``).
    db_concurrency: int = Field(default=20, ge=1, le=500)
    #: Seconds a read (GET/HEAD) may reuse what an earlier request learned about its bearer
    #: token (user, sign-in, API key) instead of asking the database; 0: every request asks.
    #: Sign-out, revocation, password changes and disabling reach every gateway process at
    #: once over Redis (mediafleet.gateway.principals); this bounds what cannot.
    principal_cache_s: float = Field(default=5.0, ge=0, le=60)

    @model_validator(mode="after")
    def _enforce_non_default_secrets(self) -> GatewaySettings:
        refuse_placeholder("GATEWAY_SECRET_KEY", self.secret_key.get_secret_value(), self.core)
        refuse_placeholder("GATEWAY_ADMIN__PASSWORD", self.admin.password.get_secret_value(), self.core)
        if self.core.is_production and len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("GATEWAY_SECRET_KEY must be at least 32 characters in production")
        return self


def secret_key_file(settings: GatewaySettings) -> Path:
    """Where a development gateway keeps its generated signing key: beside the media folder
    (``var/gateway-secret-key`` natively)."""
    return settings.core.media_dir.parent / "gateway-secret-key"


def with_signing_key(settings: GatewaySettings) -> GatewaySettings:
    """``settings`` with a signing key nobody else knows.

    A placeholder key (the default, or ``.env.example``'s) reaches this only in development
    (the settings refuse it elsewhere): anyone could mint an admin token with a public
    string, so a random 256-bit key is generated on first start, stored with mode 0600, and
    read back by every later start and every gateway process (tokens survive restarts).
    """
    if not is_placeholder(settings.secret_key.get_secret_value()):
        return settings
    path = secret_key_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        structlog.get_logger("mediafleet.gateway").warning("secret_key_generated", path=str(path))
    key = ""
    for _ in range(50):  # another process may be writing it this instant
        key = path.read_text().strip()
        if len(key) >= 32:
            break
        import time

        time.sleep(0.02)
    if len(key) < 32:
        raise RuntimeError(f"{path} holds no usable key; delete it to generate a new one")
    return settings.model_copy(update={"secret_key": SecretStr(key)})
