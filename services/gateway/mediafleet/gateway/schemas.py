"""Request/response models of the public API (Create / Public / ListPublic families)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from mediafleet.common.capability import MediaKind
from mediafleet.common.schemas import DeviceChoice, JobStatus, Priority
from mediafleet.common.worker import TaskReadiness

#: A binary body in OpenAPI (a file): generated clients hand it over as bytes.
BINARY: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}
#: The bytes of an upload, with the MIME type probed when it was stored.
MEDIA_BYTES: dict[str, Any] = {"image/*": BINARY, "audio/*": BINARY, "video/*": BINARY}


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="access token lifetime, seconds")
    must_change_password: bool


class LinkToken(BaseModel):
    """A link token: put it in the URL of the one resource it opens as ``?token=``."""

    token: str
    expires_in: int = Field(description="lifetime, seconds")
    url: str = Field(description="the resource's path with the token, relative to the API root")


class TaskInfo(BaseModel):
    """An installed task as the upload view and ``mediafleet analyze`` offer it."""

    name: str
    capability: str
    title: str = Field(description="the capability's one-line title")
    description: str
    media_kinds: list[MediaKind] = Field(
        description="kinds it runs on (videos through sampled frames for image tasks)"
    )
    default_for: list[MediaKind] = Field(description="kinds for which it is ticked by default when ready")
    depends_on: list[str] = Field(description="tasks added to a job that asks for this one")
    options_schema: dict[str, Any] = Field(description="JSON Schema of the task's options")
    exports: list[str] = Field(description="file formats of GET /v1/jobs/{id}/transcript?format=")
    readiness: TaskReadiness | None = Field(
        description="whether a worker with the task's models runs now; null while Redis is unavailable"
    )


class TasksPublic(BaseModel):
    data: list[TaskInfo]
    count: int


class CapabilityStatus(BaseModel):
    capability: str
    queue: str = Field(description="RQ queue family: <queue>:high|normal|low")
    tasks: list[str]
    workers: int = Field(ge=0, description="live workers on the queue")
    devices: dict[str, int] = Field(
        default_factory=dict, description='live workers per device ("cpu", "cuda"; "unknown": no status yet)'
    )
    queued: dict[str, int] = Field(description="tasks waiting, per priority (high, normal, low)")
    oldest_wait_s: float = Field(
        default=0.0, ge=0, description="seconds the longest-waiting queued task has waited"
    )
    failed_last_hour: int = Field(
        default=0, ge=0, description="its tasks that failed in the last hour (all users)"
    )
    model_versions: dict[str, str] = Field(
        description="engine -> model version its workers loaded (SHA-256 prefix of the weights)"
    )
    readiness: dict[str, TaskReadiness] = Field(
        description="per task: whether a live worker has its models loaded, and what is missing"
    )


class FleetStatus(BaseModel):
    job_manager: str = Field(description='"ok" while job_manager reconciles, else why not')
    capabilities: list[CapabilityStatus]


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
    has_webhook_secret: bool = False
    disabled: bool = False
    quota_bytes: int = Field(default=0, description="bytes the account's uploads may hold (0: no limit)")
    quota_files: int = Field(default=0, description="files the account may hold (0: no limit)")
    used_bytes: int | None = Field(default=None, description="bytes its uploads hold now (GET /v1/users/me)")
    used_files: int | None = Field(default=None, description="files it holds now (GET /v1/users/me)")


class UserUpdate(BaseModel):
    """An admin's change to an account; omitted fields stay as they are."""

    model_config = ConfigDict(extra="forbid", strict=True)  # 0 is not false
    disabled: bool | None = Field(
        default=None, description="true: sign-in refused, tokens and API keys revoked"
    )
    is_admin: bool | None = None
    password: str | None = Field(
        default=None, description="a new password, to be changed at the next sign-in"
    )
    quota_bytes: int | None = Field(default=None, ge=0, le=1 << 50, description="0: no limit")
    quota_files: int | None = Field(default=None, ge=0, le=1 << 31, description="0: no limit")


ApiKeyScope = Literal["read", "write", "admin"]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    scopes: list[ApiKeyScope] = Field(
        default=["read"], min_length=1, description="read: GET; write: the rest; admin"
    )


class ApiKeyPublic(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked: bool


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="Authorization: Bearer <key>; shown only now (stored as its SHA-256)")


class WebhookSecret(BaseModel):
    secret: str = Field(
        description="whsec_ + base64 key of the webhook-signature header (Standard Webhooks) and of the "
        "deprecated X-Mediafleet-Signature; shown only now"
    )


class MediaPublic(BaseModel):
    media_id: str = Field(description="SHA-256 of the bytes, hex")
    kind: str
    mime: str
    size_bytes: int
    width: int | None
    height: int | None
    duration_s: float | None = Field(default=None, description="seconds of audio/video; null for images")
    streams: list[dict[str, Any]] = Field(
        default_factory=list,
        description="audio/video streams: index, type, codec, sample_rate/channels or width/height/fps",
    )
    filename: str | None
    deduplicated: bool = Field(description="true when the caller had already uploaded these bytes")
    created_at: dt.datetime
    taken_at: dt.datetime | None = Field(
        default=None,
        description="when the file says it was made, its local time (no zone); from a metadata result",
    )
    place: str | None = Field(
        default=None, description="where, named offline ('Madrid, ES'); from a metadata result"
    )


class MediaList(BaseModel):
    """A page of the caller's media, newest upload first."""

    data: list[MediaPublic]
    count: int = Field(description="media matching the filters, all pages")
    limit: int
    offset: int


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    media_id: str = Field(min_length=1, max_length=64)
    tasks: list[str] = Field(
        min_length=1, max_length=16, description="tasks to run; the tasks they depend on are added"
    )
    options: dict[str, dict[str, Any]] = Field(default_factory=dict, description="options per task")
    priority: Priority = Priority.normal
    webhook_url: str | None = Field(
        default=None, max_length=2048, description="POSTed the signed job summary when the job ends"
    )
    use_cache: bool = Field(default=True, description="serve identical earlier work from the result cache")
    device: DeviceChoice = Field(
        default=DeviceChoice.auto,
        description="auto: on a GPU worker when one is alive and ready, else (or when none took it "
        "within the fleet's GPU wait) on CPU; gpu: only on a GPU worker (waits for one); cpu: "
        "never waits for a GPU",
    )


class JobCreated(BaseModel):
    job_id: str
    status: JobStatus
    skipped: dict[str, str] = Field(
        default_factory=dict,
        description="tasks left out because the media lacks a stream they need (a video without audio: transcribe)",
    )


class VectorSyncPublic(BaseModel):
    state: str = Field(description="pending | synced | failed: the task's embeddings in vector_db")
    items: int
    attempts: int
    error: str | None


class TaskPublic(BaseModel):
    name: str
    status: JobStatus
    attempts: int
    cached: bool = Field(description="served from the result cache of identical work")
    depends_on: list[str]
    error: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    device: str | None = Field(
        default=None,
        description="what the worker that ran it runs on (cpu, cuda); null before, or when cached",
    )
    vectors: VectorSyncPublic | None = Field(
        default=None, description="present when the result holds embeddings for vector_db"
    )


class WebhookAttempt(BaseModel):
    attempt: int
    at: str
    status_code: int | None = None
    error: str | None = None
    elapsed_ms: float | None = None


class WebhookPublic(BaseModel):
    url: str
    state: str = Field(description="pending | delivered | failed")
    attempts: int
    next_attempt_at: dt.datetime | None
    log: list[WebhookAttempt]


class JobPublicBase(BaseModel):
    """A job; ``results`` is typed per task in :func:`job_models` from the installed contracts."""

    job_id: str
    media_id: str
    status: JobStatus
    priority: Priority
    device: DeviceChoice = Field(default=DeviceChoice.auto, description="where its tasks may run")
    options: dict[str, Any]
    tasks: list[TaskPublic]
    results: Any
    error: str | None
    webhook_url: str | None = None
    webhook: WebhookPublic | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None


class JobsPublicBase(BaseModel):
    data: list[JobPublicBase]
    count: int = Field(description="total jobs of the caller matching the filter")
    limit: int
    offset: int


def job_models(
    result_types: Mapping[str, type[BaseModel] | UnionType],
) -> tuple[type[JobPublicBase], type[JobsPublicBase]]:
    """``(JobPublic, JobsPublic)`` whose ``results`` has one optional, typed field per task
    (a task's type is its result model, or ``Result | FramesResult`` where it also runs on video)."""
    fields: dict[str, Any] = {name: (model | None, None) for name, model in result_types.items()}
    results = create_model("JobResults", __config__=ConfigDict(extra="forbid"), **fields)
    job = create_model("JobPublic", __base__=JobPublicBase, results=(results, ...))
    jobs = create_model("JobsPublic", __base__=JobsPublicBase, data=(list[job], ...))
    return job, jobs


class SearchMatch(BaseModel):
    task: str = Field(description="the task whose result holds this text")
    ref: str = Field(description="where in that result, e.g. lines[3]")
    text: str
    box: list[float] | None = Field(description="xyxy in source pixels (images)")
    start: float | None = Field(description="seconds from media start (audio, video)")
    end: float | None
    score: float | None


class SearchHit(BaseModel):
    media_id: str
    filename: str | None
    score: float = Field(description="rank of the best matching segment (higher is better)")
    matches: list[SearchMatch]


class SearchResults(BaseModel):
    query: str
    data: list[SearchHit]
    count: int


class SimilarHit(BaseModel):
    media_id: str
    filename: str | None
    similarity: float = Field(ge=-1.0, le=1.0, description="cosine similarity of the two embeddings")
    task: str = Field(description="the task whose embedding matched")


class SimilarResults(BaseModel):
    query: str = Field(description="the search text (semantic search) or the media id (similar)")
    collection: str = Field(description="the embedding model's vector collection")
    data: list[SimilarHit]
    count: int


# -- people and faces (routes/people.py) ------------------------------------------------


class PersonRefPublic(BaseModel):
    id: str
    name: str | None
    similarity: float | None = Field(
        description="cosine similarity to the person's closest face when assigned"
    )


class FacePublic(BaseModel):
    face_id: str
    media_id: str
    filename: str | None = None
    task: str
    ref: str = Field(description="where in the task's result, e.g. faces[0]")
    box: list[float] = Field(description="xyxy, source pixels")
    score: float
    t: float | None = Field(description="seconds from media start (video frames)")
    collection: str = Field(description="the embedder's vector collection")
    cluster_id: str | None = Field(description="the person (named or not) the face belongs to")
    person: PersonRefPublic | None = Field(description="the named person, null while unnamed")


class PersonPublic(BaseModel):
    id: str
    name: str | None = Field(description="null for an unnamed cluster")
    collection: str
    faces: int
    media: int
    sample_face_id: str | None = Field(description="the face with the highest detector score")
    created_at: Any
    updated_at: Any


class PeoplePublic(BaseModel):
    data: list[PersonPublic]
    count: int


class PersonCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    face_ids: list[str] = Field(min_length=1, max_length=100)


class PersonUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(min_length=1, max_length=255, description="null makes it an unnamed cluster")


class ResultNames(BaseModel):
    """Names for what a result numbers (a transcript's speakers): id -> name, null removes it."""

    model_config = ConfigDict(extra="forbid")
    names: dict[
        Annotated[str, StringConstraints(pattern=r"^[0-9]{1,4}$")],
        Annotated[str, StringConstraints(max_length=64)] | None,
    ] = Field(min_length=1, max_length=100, description='{"1": "Ada", "2": null}: speaker ids to names')


class NamedResult(BaseModel):
    task: str
    result: dict[str, Any] = Field(description="the task's result with the names")


class PersonMerge(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_ids: list[str] = Field(min_length=1, max_length=100, description="merged into the path's person")


class PersonSplit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    face_ids: list[str] = Field(
        min_length=1, max_length=1000, description="the faces to move out, of this person"
    )
    name: str | None = Field(
        default=None, min_length=1, max_length=255, description="the new person's name; null: unnamed"
    )


class PersonMedia(BaseModel):
    media_id: str
    filename: str | None
    faces: list[FacePublic]


class PersonMediaList(BaseModel):
    person_id: str
    data: list[PersonMedia]
    count: int


class FaceMatch(BaseModel):
    face: FacePublic
    similarity: float = Field(ge=-1.0, le=1.0, description="cosine similarity to the query face")
    same_person: bool = Field(description="similarity >= the embedder's threshold")


class FaceMatches(BaseModel):
    face_id: str
    collection: str
    threshold: float
    data: list[FaceMatch]
    count: int


class VerifyFaces(BaseModel):
    model_config = ConfigDict(extra="forbid")
    face_ids: list[str] = Field(min_length=2, max_length=2)


class VerifyPublic(BaseModel):
    """The one-to-one check: cosine similarity against the embedder's threshold."""

    similarity: float = Field(description="cosine similarity in [-1, 1]")
    distance: float = Field(description="cosine distance, 1 - similarity")
    threshold: float
    metric: str = "cosine"
    same_person: bool
    embedder: str | None = None
    detector: str | None = None
    face_ids: list[str] | None = None
    faces_found: list[int] | None = Field(default=None, description="faces detected in each image")


# -- questions over the library (routes/ask.py) -------------------------------------------


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)
    passages: int = Field(default=6, ge=1, le=20, description="passages retrieved for the answer")
    max_tokens: int = Field(default=256, ge=16, le=2048)
    include_generated: bool = Field(
        default=False,
        strict=True,
        description="also cite text a model wrote (summaries of earlier jobs); by default only what "
        "was read or heard in the media (OCR, transcripts)",
    )


class Citation(BaseModel):
    n: int = Field(description="the number the answer cites as [n]")
    media_id: str
    filename: str | None
    task: str
    ref: str
    text: str
    box: list[float] | None
    start: float | None
    end: float | None


class AskAnswer(BaseModel):
    question: str
    answer: str | None = Field(description="null when nothing in the library matches the question")
    citations: list[Citation] = Field(description="the passages given to the model, numbered")
    model: str | None
    usage: dict[str, int] | None = None


class DuplicateHit(BaseModel):
    """One of the caller's files that is a near-duplicate of the file asked about."""

    media: MediaPublic
    similarity: float = Field(ge=0, le=1, description="1: identical fingerprints (the rule's own scale)")
    method: str = Field(description="what was compared: 'pHash+dHash', 'frames+chromaprint', ...")
    detail: str = Field(description="the figures behind it: '12 of 128 bits differ', ...")
    task: str = Field(description="the fingerprint task whose results were compared")


class DuplicateList(BaseModel):
    media_id: str
    data: list[DuplicateHit]
    count: int


class DuplicateLink(BaseModel):
    """Two files of a group that the rule calls duplicates of each other."""

    media_id: str
    other_id: str
    similarity: float = Field(ge=0, le=1)
    method: str
    detail: str


class DuplicateGroupPublic(BaseModel):
    """Files linked by near-duplicate pairs: the most linked first."""

    media: list[MediaPublic]
    links: list[DuplicateLink]


class DuplicateGroups(BaseModel):
    """A page of the caller's near-duplicate groups, the largest first."""

    data: list[DuplicateGroupPublic]
    count: int = Field(description="groups in all pages")
    limit: int
    offset: int
