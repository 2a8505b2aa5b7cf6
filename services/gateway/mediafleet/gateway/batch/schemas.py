"""Batch API request and response models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


class BatchItem(BaseModel):
    """One API call. ``path`` starts with ``/v1/``; ``query`` values are strings or lists of strings."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=128)
    method: Method = "GET"
    path: str = Field(min_length=1, max_length=2048)
    query: dict[str, str | int | float | bool | list[str | int | float | bool]] = Field(default_factory=dict)
    body: Any = None


class BatchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # false is not 0 retries

    concurrency: int | None = Field(
        default=None, ge=1, le=50, description="default GATEWAY_BATCH__CONCURRENCY"
    )
    cache: bool = Field(default=True, description="serve and store GET responses in the per-user cache")
    deduplicate: bool = Field(default=True, description="run identical idempotent sub-requests once")
    max_retries: int | None = Field(default=None, ge=0, le=5, description="retries of transient failures")
    timeout_s: float | None = Field(default=None, gt=0, le=120, description="per sub-request time limit")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[Any] = Field(min_length=1, description="BatchItem objects; a malformed one fails alone")
    options: BatchOptions = Field(default_factory=BatchOptions)


class BatchItemResponse(BaseModel):
    id: str | None
    status: int
    headers: dict[str, str]
    body: Any
    cached: bool = False
    deduplicated: bool = False
    attempts: int = Field(description="times the sub-request ran (0: served from cache)")
    elapsed_ms: float


class BatchStats(BaseModel):
    total_duration: float = Field(description="wall time of the whole batch, seconds")
    average_duration: float = Field(description="mean time of a sub-request, seconds")
    cache_hit_rate: float = Field(ge=0, le=1)
    deduplication_rate: float = Field(ge=0, le=1)
    requests_per_second: float


class BatchResponse(BaseModel):
    responses: list[BatchItemResponse]
    stats: BatchStats
