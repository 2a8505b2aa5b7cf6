"""Settings shared by every service (pydantic-settings).

Core values live under the ``MEDIAFLEET_`` prefix and are read by every service
(``MEDIAFLEET_REDIS_URL``, ``MEDIAFLEET_DATABASE_URL`` ...). Each service adds its
own section with its own prefix (``GATEWAY_``, ``OCR_``, ``JOB_MANAGER_``), nested
with ``__`` (for example ``GATEWAY_ADMIN__PASSWORD``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]

#: Values that ship in examples and must never reach a production deployment.
PLACEHOLDER_SECRETS = frozenset({"changethis", "change-me", "changeme", "secret", "admin", ""})


class CoreSettings(BaseSettings):
    """Values every service needs."""

    model_config = SettingsConfigDict(
        env_prefix="MEDIAFLEET_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    environment: Environment = "development"
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: SQLAlchemy URL. PostgreSQL in the fleet, SQLite for embedded mode.
    database_url: str = "sqlite:///var/mediafleet.db"
    #: Where uploads are stored, content-addressed by SHA-256.
    media_dir: Path = Path("var/media")
    #: Where model weights are provisioned ahead of time; nothing is downloaded at run time.
    models_dir: Path = Path("var/models")
    #: Upper bound on one task's run time on a worker, seconds.
    task_timeout_s: int = Field(default=300, ge=1)
    #: Retries of a task after its first attempt (crash, abandoned worker or error).
    task_max_retries: int = Field(default=3, ge=0)
    #: Base of the exponential retry backoff, seconds: base, 2*base, 4*base ...
    task_retry_backoff_s: int = Field(default=2, ge=0)
    #: How long a running task may go without a worker heartbeat before it is
    #: declared abandoned and retried, seconds.
    task_lease_s: int = Field(default=15, ge=2)
    #: Key of the signed media URLs the gateway serves to workers without the media volume
    #: (unset: no signed URLs; workers read the volume).
    media_url_secret: SecretStr | None = None
    #: Gateway URL as workers reach it (``http://gateway:8000``); job_manager adds a signed
    #: media URL to each task when this and ``media_url_secret`` are set.
    media_url_base: str | None = None
    #: Lifetime of a signed media URL, seconds (covers the wait in the queue and retries).
    media_url_ttl_s: int = Field(default=6 * 3600, ge=60)
    #: Shared secret of the fleet's internal HTTP calls (gateway and job_manager to vector_db,
    #: the gateway to a capability's own API): when set, vector_db and every AI service's HTTP
    #: port answer only ``Authorization: Bearer <it>`` (probes and /metrics stay open), so no
    #: other local process or container can read another user's vectors or run models. Compose
    #: requires it (``make env`` writes one); unset natively (development).
    internal_token: SecretStr | None = None
    #: Let webhooks target loopback/private/link-local addresses (SSRF guard off; tests, LANs).
    webhook_allow_private_targets: bool = False
    #: Delivery attempts of one webhook before it is marked failed, and the backoff base (s).
    webhook_max_attempts: int = Field(default=5, ge=1, le=20)
    webhook_backoff_s: float = Field(default=2.0, ge=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    #: vector_db as the fleet reaches it (``http://vector_db:8103``). Unset: embeddings stay
    #: in the task results only (their syncs wait, ``pending``), and semantic search and
    #: ``/v1/media/{id}/similar`` answer 503.
    vector_db_url: str | None = None
    #: Index type of the collections job_manager creates: ``auto`` is exact (flat) up to
    #: 10,000 vectors and HNSW above; ``flat`` is always exact (p50 15.6 ms at 100k x 512
    #: here); ``hnsw``/``ivf`` are approximate from the start (bench/vector_db).
    vector_index: Literal["flat", "hnsw", "ivf", "auto"] = "auto"
    vector_timeout_s: float = Field(default=10.0, gt=0)
    #: Attempts to write one task's embeddings to vector_db before the sync is marked failed;
    #: the backoff doubles from ``vector_backoff_s`` up to 300 s.
    vector_sync_max_attempts: int = Field(default=10, ge=1, le=50)
    vector_backoff_s: float = Field(default=2.0, ge=0)
    #: How long the gateway waits for a worker to answer a query (a semantic search's text
    #: embedding), seconds.
    query_timeout_s: float = Field(default=30.0, gt=0)
    #: Frames of a video that image tasks see (mediafleet.common.media.FrameSampling): one at
    #: least every ``video_every_s`` seconds, one on each scene change (mean absolute
    #: difference of grey thumbnails above ``video_scene_threshold``, 0-1; 0: off), at most
    #: ``video_max_frames``. Every worker of a fleet must use the same values (compose shares them).
    video_every_s: float = Field(default=2.0, gt=0)
    video_scene_threshold: float = Field(default=0.3, ge=0, le=1)
    video_max_frames: int = Field(default=60, ge=1, le=1000)
    #: What an AI worker runs on: ``cpu``, or ``cuda`` (a GPU worker: it takes its capability's
    #: GPU queues first, and refuses to start without a usable CUDA device). Set its engines'
    #: own device settings too (docker-compose.gpu.yml does both).
    worker_device: Literal["cpu", "cuda"] = "cpu"
    #: Tests only: a ``cuda`` worker skips the CUDA check and runs its engines on the CPU (a GPU
    #: worker's routing, tested on a machine without one).
    test_pretend_cuda: bool = False

    @property
    def is_production(self) -> bool:
        return self.environment == "production"


class ServiceSettings(BaseSettings):
    """Base of an AI service's settings: core values plus the service's HTTP address.

    A service subclasses it with its own prefix, e.g.
    ``model_config = SettingsConfigDict(env_prefix="OCR_")``.
    """

    model_config = SettingsConfigDict(env_nested_delimiter="__", env_file=".env", extra="ignore")

    core: CoreSettings = Field(default_factory=CoreSettings)
    http_host: str = "127.0.0.1"
    http_port: int = 8100


def retry_intervals(core: CoreSettings) -> list[int]:
    """Exponential backoff schedule in seconds, one entry per retry: b, 2b, 4b ..."""
    return [core.task_retry_backoff_s * (2**i) for i in range(core.task_max_retries)]


def is_placeholder(value: str) -> bool:
    """True for the example values of ``.env.example`` and the like (never a real secret)."""
    lowered = value.strip().lower()
    return lowered in PLACEHOLDER_SECRETS or any(
        w in lowered for w in ("change-me", "changeme", "changethis")
    )


def refuse_placeholder(name: str, value: str, core: CoreSettings) -> None:
    """Raise ``ValueError`` when ``value`` is a placeholder outside development.

    In development a warning is logged instead, so a first local run needs no setup.
    """
    if is_placeholder(value):
        if core.environment != "development":
            raise ValueError(f"{name} is a placeholder value; set a real one (refused in {core.environment})")
        import structlog

        structlog.get_logger("mediafleet.settings").warning("placeholder_secret", setting=name)
