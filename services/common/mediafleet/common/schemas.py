"""Result schemas shared by engines, workers, the gateway and the CLI.

Conventions (docs/DESIGN-notes): boxes are ``xyxy`` in source-image pixels, polygons
are lists of ``[x, y]`` pixel points, scores are in [0, 1], times in milliseconds
where the name says ``_ms``.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class Priority(StrEnum):
    high = "high"
    normal = "normal"
    low = "low"


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)


class OcrLine(BaseModel):
    text: str
    box: list[float] = Field(
        description="xyxy in source pixels: [x1, y1, x2, y2]", min_length=4, max_length=4
    )
    polygon: list[list[float]] = Field(description="detector polygon, [[x, y], ...] in source pixels")
    score: float = Field(ge=0.0, le=1.0, description="recognition confidence")


class OcrResult(BaseModel):
    """One image's OCR: lines in reading order; ``text`` is the lines joined by newlines."""

    engine: str
    model: str
    model_version: str
    languages: list[str]
    text: str
    lines: list[OcrLine]
    elapsed_ms: float
