"""Request/response models of the public API (Create / Public / ListPublic families)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mediafleet.common.schemas import JobStatus, Priority


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="access token lifetime, seconds")
    must_change_password: bool


class RefreshRequest(BaseModel):
    refresh_token: str


class PasswordChange(BaseModel):
    current_password: str
    new_password: str


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str
    is_admin: bool = False


class UserPublic(BaseModel):
    id: int
    username: str
    is_admin: bool
    must_change_password: bool


class MediaPublic(BaseModel):
    media_id: str = Field(description="SHA-256 of the bytes, hex")
    kind: str
    mime: str
    size_bytes: int
    width: int | None
    height: int | None
    filename: str | None
    deduplicated: bool = Field(description="true when these bytes were already stored")
    created_at: dt.datetime


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    media_id: str = Field(min_length=1, max_length=64)
    tasks: list[str] = Field(min_length=1, max_length=8)
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    priority: Priority = Priority.normal


class JobCreated(BaseModel):
    job_id: str
    status: JobStatus


class TaskPublic(BaseModel):
    name: str
    status: JobStatus
    attempts: int
    error: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class JobPublic(BaseModel):
    job_id: str
    media_id: str
    status: JobStatus
    priority: Priority
    options: dict[str, Any]
    tasks: list[TaskPublic]
    results: dict[str, Any]
    error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int = Field(description="total jobs of the caller matching the filter")
    limit: int
    offset: int


class SearchMatch(BaseModel):
    line_no: int
    text: str
    box: list[float] = Field(description="xyxy in source pixels")
    score: float


class SearchHit(BaseModel):
    media_id: str
    filename: str | None
    score: float = Field(description="rank of the best matching line (higher is better)")
    matches: list[SearchMatch]


class SearchResults(BaseModel):
    query: str
    data: list[SearchHit]
    count: int
