"""``/v1/jobs``: create, read, list, cancel, and follow progress as Server-Sent Events."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Annotated, Any

import redis
import structlog
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from mediafleet.common import events, registry, tracing, webhooks
from mediafleet.common.capability import FramesResult, is_frames
from mediafleet.common.errors import BadRequest, Conflict, NotFound, ValidationFailed
from mediafleet.common.queues import NEW_JOBS_KEY, TASK_EVENTS_KEY
from mediafleet.common.schemas import JobStatus
from mediafleet.common.store import Job, Media, MediaOwner, Task, User, identities
from mediafleet.common.store.models import utcnow
from mediafleet.common.worker import advertised_defaults
from mediafleet.gateway.context import GatewayContext
from mediafleet.gateway.crud import jobs as crud
from mediafleet.gateway.deps import ContextDep, CurrentUser, SessionDep, issue_link_token, owned, user_or_link
from mediafleet.gateway.schemas import (
    JobCreate,
    JobCreated,
    JobPublicBase,
    JobsPublicBase,
    LinkToken,
    NamedResult,
    ResultNames,
    TaskPublic,
    VectorSyncPublic,
    WebhookPublic,
    job_models,
)

log = structlog.get_logger("mediafleet.gateway.jobs")
_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")


def _results(job: Job) -> dict[str, Any]:
    """Succeeded tasks' results; stored faces carry their current person (identities.annotate)."""
    session = object_session(job)
    done = [t for t in job.tasks if t.status == JobStatus.succeeded and t.result is not None]
    return {t.name: identities.annotate(session, t) if session is not None else t.result for t in done}


def job_public(job: Job, model: type[JobPublicBase] = JobPublicBase) -> JobPublicBase:
    hook = job.webhook
    return model(
        job_id=job.id,
        media_id=job.media_id,
        status=job.status,
        priority=job.priority,
        device=job.device,
        options=job.options,
        tasks=[
            TaskPublic(
                name=t.name,
                status=t.status,
                attempts=t.attempts,
                cached=t.cached,
                depends_on=t.depends_on or [],
                error=t.error,
                started_at=t.started_at,
                finished_at=t.finished_at,
                device=t.device,
                vectors=(
                    VectorSyncPublic.model_validate(t.vector_sync, from_attributes=True)
                    if t.vector_sync is not None
                    else None
                ),
            )
            for t in job.tasks
        ],
        results=_results(job),
        error=job.error,
        webhook_url=job.webhook_url,
        webhook=None
        if hook is None
        else WebhookPublic(
            url=hook.url,
            state=hook.state,
            attempts=hook.attempts,
            next_attempt_at=hook.next_attempt_at,
            log=hook.attempts_log or [],
        ),
        created_at=job.created_at,
        updated_at=job.updated_at,
        finished_at=job.finished_at,
    )


def _own_job(session: Session, job_id: str, user_id: int) -> Job:
    return owned(session, Job, job_id, user_id, noun="job", code="job_not_found")


def _by_idempotency_key(session: Session, user_id: int, key: str, fingerprint: str) -> JobCreated | None:
    """The job an earlier request with this ``Idempotency-Key`` made, or None. Raises
    ValidationFailed (``idempotency_key_reused``) when that request's body was another."""
    job = crud.job_by_idempotency_key(session, user_id=user_id, key=key)
    if job is None:
        return None
    if job.idempotency_hash != fingerprint:
        raise ValidationFailed(
            "this Idempotency-Key came with another request before; use a new key for new work",
            code="idempotency_key_reused",
        )
    return JobCreated(job_id=job.id, status=JobStatus(job.status), skipped={})


def _plan_tasks(
    body: JobCreate, media: Media, defaults: Callable[[str], dict[str, Any]] = lambda task: {}
) -> tuple[list[str], dict[str, dict[str, Any]], dict[str, str]]:
    """Tasks to run (dependencies added, first), their validated options, and the tasks left out
    because the media lacks a stream they need (task -> reason). A contract's ``check`` refuses
    options no engine serves, given the ``defaults(task)`` the workers advertise. Raises
    ValidationFailed."""
    known = registry.tasks()
    unknown = [t for t in body.tasks if t not in known]
    if unknown:
        raise ValidationFailed(f"unknown task(s) {unknown}; available: {list(known)}", code="unknown_task")
    tasks, skipped = registry.plan_for_media(body.tasks, media.kind, media.streams, f"media {media.id}")
    stray = [k for k in body.options if k not in tasks and k not in skipped]
    if stray:
        raise ValidationFailed(f"options given for tasks not requested: {stray}", code="unknown_option")
    options: dict[str, dict[str, Any]] = {}
    for name in tasks:
        cap, spec = known[name]
        try:  # the contract's own check, the one every executor's pipeline makes
            options[name] = cap.validate_options(name, body.options.get(name, {}))
        except BadRequest as exc:
            raise ValidationFailed(f"invalid options for {name}", details=exc.details) from exc
        if spec.check is not None:
            spec.check(options[name], defaults(name))
    return tasks, options, skipped


def submit_job(
    session: Session,
    ctx: GatewayContext,
    user: User,
    body: JobCreate,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
) -> tuple[JobCreated, bool]:
    """Record ``body`` as a job of ``user`` and hand it to job_manager: the job, and True when
    it is an earlier job of the same ``idempotency_key`` (a concurrent first request won).
    Raises NotFound (``media_not_found``), ValidationFailed (unknown tasks, bad options, no
    webhook secret)."""
    media = session.get(Media, body.media_id)
    owned = session.get(MediaOwner, (body.media_id, user.id)) is not None
    if media is None or not owned:
        raise NotFound(f"media {body.media_id} not found", code="media_not_found")
    tasks, options, skipped = _plan_tasks(body, media, lambda task: advertised_defaults(ctx.redis, task))
    if body.webhook_url is not None:
        webhooks.check_target(body.webhook_url, ctx.settings.core.webhook_allow_private_targets)
        if not user.webhook_secret:
            raise ValidationFailed(
                "create a webhook secret first: POST /v1/users/me/webhook-secret",
                code="no_webhook_secret",
            )
    job = Job(
        id=str(uuid.uuid4()),
        user_id=user.id,
        media_id=body.media_id,
        status=JobStatus.queued,
        priority=body.priority,
        options=options,
        webhook_url=body.webhook_url,
        use_cache=body.use_cache,
        device=body.device,
        idempotency_key=idempotency_key,
        idempotency_hash=fingerprint,
    )
    known = registry.tasks()
    job.tasks = [
        Task(
            id=str(uuid.uuid4()),
            name=name,
            status=JobStatus.queued,
            attempts=0,
            depends_on=registry.dependencies_in(known[name][1], tasks),
            cached=False,
        )
        for name in tasks
    ]
    attributes = {"mediafleet.job_id": job.id, "mediafleet.media_id": job.media_id, "mediafleet.tasks": tasks}
    with tracing.span("job.create", attributes=attributes):
        # job_manager and the workers continue this span's trace, with this request's id
        job.trace_context = tracing.carrier() or None
        session.add(job)
        try:
            session.commit()
        except IntegrityError:  # the same key's first request committed in between
            session.rollback()
            earlier = _by_idempotency_key(session, user.id, idempotency_key or "", fingerprint or "")
            if earlier is None:
                raise
            return earlier, True
        try:
            ctx.redis.lpush(NEW_JOBS_KEY, job.id)
        except redis.RedisError as exc:
            # The job is recorded; job_manager's reconciliation picks up unqueued tasks.
            log.warning("job_handoff_deferred", job_id=job.id, error=str(exc))
        log.info("job_created", job_id=job.id, media_id=job.media_id, tasks=tasks)
    return JobCreated(job_id=job.id, status=JobStatus.queued, skipped=skipped), False


def _result_types() -> dict[str, Any]:
    """Each installed task's result model; an image task's result on a video is its result
    per sampled frame."""
    return {
        name: spec.result | FramesResult if spec.on_frames("video") else spec.result
        for name, (_, spec) in registry.tasks().items()
    }


#: ``results`` typed from the installed capability contracts (read once, when the module loads)
JobPublic, JobsPublic = job_models(_result_types())
router = APIRouter(tags=["jobs"])


@router.post("/v1/jobs", response_model=JobCreated, status_code=status.HTTP_202_ACCEPTED)
def create_job(
    body: JobCreate,
    user: CurrentUser,
    ctx: ContextDep,
    session: SessionDep,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="a key of the client's choosing: a retry with it returns the job the first "
            "request made (Idempotent-Replayed: true) instead of a second one",
        ),
    ] = None,
) -> JobCreated:
    """Record a job and hand it to job_manager, which queues each task at ``priority``.

    Tasks that others depend on are added and run first; independent tasks run in
    parallel. With ``webhook_url`` the job summary is POSTed, signed with the caller's
    webhook secret (``POST /v1/users/me/webhook-secret``), when the job ends. With an
    ``Idempotency-Key`` a retried request (a time-out, a database outage) makes no second
    job; the same key with another body is 422 ``idempotency_key_reused``.
    """
    fingerprint = None
    if idempotency_key is not None:
        fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        earlier = _by_idempotency_key(session, user.id, idempotency_key, fingerprint)
        if earlier is not None:
            response.headers["Idempotent-Replayed"] = "true"
            return earlier
    created, replayed = submit_job(session, ctx, user, body, idempotency_key, fingerprint)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return created


@router.get("/v1/jobs", response_model=JobsPublic, response_model_exclude_unset=True)
def list_jobs(
    response: Response,
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    media_id: Annotated[str | None, Query(max_length=64, description="only jobs on this media")] = None,
) -> JobsPublicBase:
    """The caller's jobs, newest first; ``status`` and ``media_id`` narrow them."""
    response.headers["Cache-Control"] = "no-store"  # statuses change without any API write
    jobs, count = crud.jobs_page(
        session, user_id=user.id, limit=limit, offset=offset, status=status_filter, media_id=media_id
    )
    return JobsPublic(data=[job_public(j, JobPublic) for j in jobs], count=count, limit=limit, offset=offset)


@router.get("/v1/jobs/{job_id}", response_model=JobPublic, response_model_exclude_unset=True)
def get_job(job_id: str, response: Response, user: CurrentUser, session: SessionDep) -> JobPublicBase:
    job = _own_job(session, job_id, user.id)
    # A running job changes under job_manager; a finished one when its user names what a result
    # numbers (PUT .../names): never cached.
    response.headers["Cache-Control"] = "no-store"
    return job_public(job, JobPublic)


@router.get("/v1/jobs/{job_id}/timeline")
def job_timeline(job_id: str, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    """A video job's results on one timeline (times in seconds from the start)::

        {"media_id", "duration_s", "status",
         "frames": [{"t", "results": {task: that task's result on the frame}}],
         "transcript": the transcript (a task exporting SRT) or null,
         "results": {task: other whole-media results},
         "tracks": [{"cluster_id", "person", "first_t", "last_t", "frames": [t, ...]}]}

    Image tasks ran on the video's sampled frames (``MEDIAFLEET_VIDEO_*``); faces seen in
    several frames are the same track when they belong to the same person (the owner's
    people: named, or an unnamed cluster). Works for any job (an image job has no frames).
    """
    job = _own_job(session, job_id, user.id)
    media = session.get(Media, job.media_id)
    known = registry.tasks()
    frames: dict[float, dict[str, Any]] = {}
    tracks: dict[str, dict[str, Any]] = {}
    transcript, others = None, {}
    for task in job.tasks:
        if task.status != JobStatus.succeeded or task.result is None or task.name not in known:
            continue
        spec = known[task.name][1]
        result = identities.annotate(session, task)
        if result is None:
            continue
        if not is_frames(result):
            if transcript is None and "srt" in spec.exports:
                transcript = result
            else:
                others[task.name] = result
            continue
        for frame in result["frames"]:
            frames.setdefault(frame["t"], {})[task.name] = frame["result"]
        for item in spec.derive(task.result).faces:
            face = identities.locate(result, item.ref)
            if face is None or not face.get("cluster_id"):
                continue
            track = tracks.setdefault(
                face["cluster_id"],
                {"cluster_id": face["cluster_id"], "person": face.get("person"), "frames": []},
            )
            track["frames"].append(item.t)
    for track in tracks.values():
        track["frames"] = sorted(set(track["frames"]))
        track["first_t"], track["last_t"] = track["frames"][0], track["frames"][-1]
    return {
        "media_id": job.media_id,
        "duration_s": media.duration_s if media is not None else None,
        "status": job.status,
        "frames": [{"t": t, "results": frames[t]} for t in sorted(frames)],
        "transcript": transcript,
        "results": others,
        "tracks": sorted(tracks.values(), key=lambda x: (x["first_t"], -len(x["frames"]))),
    }


@router.get(
    "/v1/jobs/{job_id}/transcript",
    response_class=Response,
    responses={
        200: {
            "description": "the transcript in the format asked for",
            "content": {
                "application/json": {},
                "text/plain": {},
                "application/x-subrip": {},
                "text/vtt": {},
            },
        }
    },
)
def job_transcript(
    job_id: str,
    user: CurrentUser,
    session: SessionDep,
    format: Annotated[str, Query(pattern=r"^[a-z0-9]{1,8}$", description="json, txt, srt or vtt")] = "json",
    task: Annotated[str | None, Query(max_length=64, description="the task, when several export")] = None,
) -> Response:
    """A succeeded task's result rendered as a file: a transcript as ``srt``, ``vtt``, ``txt``
    or ``json`` (formats each task's contract exports).

    404 ``no_transcript`` when no succeeded task of the job exports ``format``; 409
    ``job_not_finished`` while the exporting task has not succeeded yet.
    """
    job = _own_job(session, job_id, user.id)
    known = registry.tasks()
    candidates = [
        t
        for t in job.tasks
        if t.name in known and format in known[t.name][1].exports and (task is None or t.name == task)
    ]
    done = [t for t in candidates if t.status == JobStatus.succeeded and t.result is not None]
    if not done:
        if candidates:
            raise Conflict(
                f"task {candidates[0].name} of job {job_id} is {candidates[0].status}",
                code="job_not_finished",
            )
        offered = sorted({f for t in job.tasks if t.name in known for f in known[t.name][1].exports})
        raise NotFound(
            f"job {job_id} has no transcript as {format!r}"
            + (f" (offered: {', '.join(offered)})" if offered else ""),
            code="no_transcript",
        )
    spec = known[done[0].name][1]
    export = spec.exports[format]
    body = export.render(spec.result.model_validate(done[0].result))
    name = f"{job_id}-{done[0].name}{export.extension}"
    return Response(
        body,
        media_type=export.media_type,
        headers={"Content-Disposition": f'inline; filename="{name}"'},
    )


@router.put("/v1/jobs/{job_id}/tasks/{task}/names", response_model=NamedResult)
def name_result(
    job_id: str,
    task: Annotated[str, Path(max_length=64)],
    body: ResultNames,
    user: CurrentUser,
    session: SessionDep,
) -> NamedResult:
    """Name what a succeeded task's result numbers: a diarized transcript's speakers
    (``{"names": {"1": "Ada"}}``; null removes a name). The names show in the job, its
    timeline and its exports (SRT, VTT, text). Only this job's result changes: another job on
    the same file (or another user's) keeps its own names.

    404 ``job_not_found`` / ``task_not_found``; 409 ``job_not_finished`` while the task has not
    succeeded; 422 ``nothing_to_name`` for a task whose results name nothing, ``unknown_name``
    for an id the result does not have.
    """
    job = _own_job(session, job_id, user.id)
    row = next((t for t in job.tasks if t.name == task), None)
    known = registry.tasks()
    if row is None or task not in known:
        raise NotFound(f"job {job_id} has no task {task!r}", code="task_not_found")
    spec = known[task][1]
    if spec.rename is None:
        raise ValidationFailed(f"the results of {task} have nothing to name", code="nothing_to_name")
    if row.status != JobStatus.succeeded or row.result is None or is_frames(row.result):
        raise Conflict(f"task {task} of job {job_id} is {row.status}", code="job_not_finished")
    try:
        renamed = spec.rename(spec.result.model_validate(row.result), body.names)
    except ValueError as exc:
        raise ValidationFailed(str(exc), code="unknown_name") from exc
    row.result = renamed.model_dump(mode="json")
    session.commit()
    return NamedResult(task=task, result=row.result)


@router.delete("/v1/jobs/{job_id}", response_model=JobPublic, response_model_exclude_unset=True)
def cancel_job(job_id: str, user: CurrentUser, ctx: ContextDep, session: SessionDep) -> JobPublicBase:
    """Cancel a queued or running job. 409 when it already finished."""
    job = _own_job(session, job_id, user.id)
    if JobStatus(job.status).terminal:
        raise Conflict(f"job {job_id} already {job.status}", code="job_finished")
    now = utcnow()
    job.status = JobStatus.canceled
    job.finished_at = now
    for task in job.tasks:
        if not JobStatus(task.status).terminal:
            task.status = JobStatus.canceled
            task.finished_at = now
    session.commit()
    try:  # wake job_manager: it drops the queued work and stops a running task
        ctx.redis.lpush(TASK_EVENTS_KEY, f"cancel:{job.id}")
    except redis.RedisError as exc:
        log.warning("cancel_notify_failed", job_id=job.id, error=str(exc))
    events.publish(ctx.redis, job.id, status=JobStatus.canceled)
    return job_public(job, JobPublic)


@router.post("/v1/jobs/{job_id}/events/token", response_model=LinkToken)
def job_events_token(
    job_id: str, request: Request, user: CurrentUser, ctx: ContextDep, session: SessionDep
) -> LinkToken:
    """A link token that opens this job's event stream, and only that, for
    ``GATEWAY_EVENTS_TOKEN_TTL_S`` (120 s): ``EventSource`` cannot send a bearer header, so
    a browser opens ``url`` (``/v1/jobs/{job_id}/events?token=...``). 404 for another
    user's job."""
    _own_job(session, job_id, user.id)
    ttl = ctx.settings.events_token_ttl_s
    token = issue_link_token(request, ctx, user, f"job-events:{job_id}", ttl)
    return LinkToken(token=token, expires_in=ttl, url=f"/v1/jobs/{job_id}/events?token={token}")


#: The ``id`` of a stream's last event (a finished job's snapshot).
END_EVENT_ID = "end"
#: The SSE ``retry`` the stream announces: a client reconnects after this many milliseconds.
RECONNECT_MS = 3000


@router.get(
    "/v1/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `job` (a JobPublic as JSON) and `progress` events",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        204: {"description": "`Last-Event-ID: end`: the client saw the final snapshot, nothing follows"},
    },
)
async def job_events(
    job_id: str,
    request: Request,
    user: Annotated[User, Depends(user_or_link("job-events", "job_id"))],
    ctx: ContextDep,
) -> Response:
    """Server-Sent Events: ``job`` (a full snapshot, first and last) and ``progress`` events.
    Authorised by a bearer header or a link token from ``POST .../events/token``.

    Progress events are replayed from the job's start (its Redis stream), each with an SSE
    ``id``; a client that reconnects with ``Last-Event-ID`` gets only the events after it.
    The first event sets ``retry`` (reconnect after ``RECONNECT_MS``, 3000 ms). The stream ends
    after the snapshot of a finished job, whose ``id`` is ``end``: an ``EventSource`` that
    reconnects with ``Last-Event-ID: end`` gets 204 No Content, which makes it stop (WHATWG
    HTML, server-sent events: a 204 "fails the connection"). Every stream of one job in a
    gateway process shares one Redis reader and one database snapshot per status change
    (:mod:`mediafleet.gateway.streams`); 429 ``too_many_streams`` above
    ``GATEWAY_MAX_STREAMS_PER_USER`` open streams of one account.
    """

    def snapshot() -> JobPublicBase:
        with ctx.sessions() as session:
            return job_public(_own_job(session, job_id, user.id), JobPublic)

    first = await run_in_threadpool(snapshot)  # 404 before the stream starts
    resume = request.headers.get("last-event-id", "")
    if resume == END_EVENT_ID:  # it saw the final snapshot: 204 makes an EventSource stop reconnecting
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    after = resume if _STREAM_ID.fullmatch(resume) else "0-0"
    ctx.streams.admit(user.id)  # 429 above GATEWAY_MAX_STREAMS_PER_USER

    async def shared_snapshot() -> tuple[str, bool]:
        current = await run_in_threadpool(snapshot)
        return current.model_dump_json(exclude_unset=True), current.status.terminal

    async def stream() -> AsyncIterator[Mapping[str, str | int]]:
        try:
            yield {"event": "job", "data": first.model_dump_json(exclude_unset=True), "retry": RECONNECT_MS}
            if first.status.terminal:  # a finished job: its history, then the snapshot again
                async for event in ctx.streams.replay(job_id, after):
                    yield event.sse()
                yield {"event": "job", "data": first.model_dump_json(exclude_unset=True), "id": END_EVENT_ID}
                return
            async for event in ctx.streams.follow(job_id, after, shared_snapshot):
                out: dict[str, str | int] = dict(event.sse())
                if event.event == "job" and JobStatus(json.loads(event.data)["status"]).terminal:
                    out["id"] = END_EVENT_ID  # the last event: follow() ends after it
                yield out
        finally:
            ctx.streams.release(user.id)

    return EventSourceResponse(stream(), ping=15)
