"""vector_db settings (prefix ``VECTOR_DB_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mediafleet.common.settings import ServiceSettings


class VectorDbSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VECTOR_DB_", env_nested_delimiter="__", extra="ignore")

    #: One folder per collection: spec.json, snapshot.npz, wal.log (compose: the `vectors` volume).
    data_dir: Path = Path("var/vectors")
    #: Writes between snapshots (each write is durable in the log before it is acknowledged).
    snapshot_every: int = Field(default=10_000, ge=1)
    #: fsync the log on every write (off only for benchmarks of the index itself).
    fsync: bool = True
    #: Largest request body, bytes (413 beyond): an upsert of 1000 items of 512 floats is ~11 MB.
    max_body_bytes: int = Field(default=32 << 20, ge=1 << 16)
    http_port: int = 8103
