"""job_manager settings (prefix ``JOB_MANAGER_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mediafleet.common.settings import CoreSettings


class JobManagerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JOB_MANAGER_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    core: CoreSettings = Field(default_factory=CoreSettings)
    #: Longest wait between two reconciliations, seconds (events wake it earlier).
    reconcile_interval_s: float = Field(default=1.0, gt=0)
    #: How long a finished RQ job's result stays in Redis after collection, seconds.
    result_ttl_s: int = Field(default=24 * 3600, ge=60)
    http_host: str = "127.0.0.1"
    http_port: int = 8102
