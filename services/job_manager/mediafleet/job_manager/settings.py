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
    #: A task of a job with ``device: auto`` on a GPU queue that no GPU worker took within this
    #: many seconds moves to the CPU queue (at once when no GPU worker is alive and ready).
    gpu_wait_s: float = Field(default=30.0, ge=0)
    #: Capabilities whose GPU workers start on demand (KEDA, ``minReplicaCount: 0``): their
    #: ``auto`` tasks go to the GPU queue even while no GPU worker runs, whose length starts one,
    #: and move to CPU after ``gpu_wait_s``. JSON list of capability names (deploy/kubernetes/components/gpu sets it).
    gpu_on_demand: set[str] = Field(default_factory=set)
    http_host: str = "127.0.0.1"
    http_port: int = 8102
