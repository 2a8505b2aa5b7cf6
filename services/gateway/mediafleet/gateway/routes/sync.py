"""Routes that run one task on an upload and answer when it ends: each installed contract's
``sync_routes`` (:class:`~mediafleet.common.capability.SyncRoute`), e.g. OpenAI's
``POST /v1/audio/transcriptions`` declared by a speech capability.

The upload is stored as the caller's media (the same checks and quota as ``POST /v1/media``)
and a job runs the task through job_manager and the workers like any other; this route only
waits for it, polling the job's row every half second, at most ``GATEWAY_SYNC_TIMEOUT_S``
(504 ``job_still_running`` after, naming the job to follow). An account may hold at most
``GATEWAY_MAX_SYNC_PER_USER`` such waits open per gateway process (429 above). The response
carries the job's id in ``X-Mediafleet-Job-Id``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, get_args, get_origin

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from mediafleet.common import registry
from mediafleet.common.capability import Capability, SyncRoute
from mediafleet.common.errors import (
    ERROR_RESPONSES,
    OPENAI_ERROR_RESPONSES,
    BadRequest,
    ErrorEnvelope,
    GatewayTimeout,
    MediafleetError,
    TooManyRequests,
)
from mediafleet.common.schemas import JobStatus
from mediafleet.common.store import Job
from mediafleet.gateway.deps import ContextDep, CurrentUser
from mediafleet.gateway.routes.jobs import submit_job
from mediafleet.gateway.routes.media import store_upload
from mediafleet.gateway.schemas import JobCreate

router = APIRouter(tags=["synchronous tasks"])
#: Open waits per account in this process (GATEWAY_MAX_SYNC_PER_USER bounds them).
_waiting: Counter[int] = Counter()
POLL_S = 0.5


class TaskFailed(MediafleetError):
    """The job behind a synchronous route failed; the message is the task's own (for people)."""

    status_code, code = 500, "task_failed"


def _leave(user_id: int) -> None:
    _waiting[user_id] -= 1
    if _waiting[user_id] <= 0:
        del _waiting[user_id]


def _is_list(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields.get(name)
    if field is None:
        return False
    annotation = field.annotation
    return get_origin(annotation) is list or any(get_origin(a) is list for a in get_args(annotation))


def form_fields(form: FormData, model: type[BaseModel]) -> dict[str, Any]:
    """The text fields of ``form`` for ``model``: ``name[]`` (OpenAI's clients' way of sending a
    list) and repeated names fill a list field; the last value wins for the others; ``file``
    is left out."""
    out: dict[str, Any] = {}
    for key in dict.fromkeys(form.keys()):
        if key == "file":
            continue
        name = key.removesuffix("[]")
        values = [v for v in form.getlist(key) if isinstance(v, str)]
        if _is_list(model, name) or key.endswith("[]"):
            out.setdefault(name, []).extend(values)
        elif values:
            out[name] = values[-1]
    return out


def _handler(cap: Capability, route: SyncRoute) -> Callable[..., Awaitable[Response]]:
    spec = cap.task(route.task)

    async def handler(request: Request, user: CurrentUser, ctx: ContextDep) -> Response:
        async with request.form(max_files=1, max_fields=32) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise BadRequest("send the media as a multipart part named 'file'", code="missing_file")
            try:
                parsed = route.form.model_validate(form_fields(form, route.form))
            except ValidationError as exc:
                raise RequestValidationError(exc.errors(include_url=False)) from exc
            options = route.options(parsed)

            def start() -> str:
                with ctx.sessions() as session:
                    media, _, _ = store_upload(session, ctx, user, upload)
                    body = JobCreate(media_id=media.id, tasks=[route.task], options={route.task: options})
                    return submit_job(session, ctx, user, body)[0].job_id

            if _waiting[user.id] >= ctx.settings.max_sync_per_user:
                raise TooManyRequests(
                    f"{ctx.settings.max_sync_per_user} requests of this account are waiting for their "
                    "results already; try again when one has answered",
                    code="too_many_waiting",
                    details={"retry_after_s": 5},
                )
            _waiting[user.id] += 1
            try:
                job_id = await run_in_threadpool(start)
            except BaseException:
                _leave(user.id)
                raise

        def state() -> tuple[str, Any, str | None]:
            with ctx.sessions() as session:
                job = session.get(Job, job_id)
                if job is None:  # deleted meanwhile
                    return JobStatus.canceled, None, "the job was deleted"
                task = next((t for t in job.tasks if t.name == route.task), None)
                return job.status, task.result if task is not None else None, job.error

        try:
            deadline = time.monotonic() + ctx.settings.sync_timeout_s
            status, result, error = await run_in_threadpool(state)
            while not JobStatus(status).terminal:
                if time.monotonic() >= deadline:
                    raise GatewayTimeout(
                        f"the task is still running after {ctx.settings.sync_timeout_s:.0f} s "
                        f"(GATEWAY_SYNC_TIMEOUT_S): follow GET /v1/jobs/{job_id}",
                        code="job_still_running",
                        details={"job_id": job_id},
                    )
                await anyio.sleep(POLL_S)
                status, result, error = await run_in_threadpool(state)
        finally:
            _leave(user.id)
        headers = {"X-Mediafleet-Job-Id": job_id}
        if status != JobStatus.succeeded or result is None:
            raise TaskFailed(error or f"the job ended {status}", details={"job_id": job_id})
        body, media_type = route.render(spec.result.model_validate(result), parsed)
        if isinstance(body, dict):
            return JSONResponse(body, media_type=media_type, headers=headers)
        return Response(body, media_type=media_type, headers=headers)

    return handler


def _request_body(route: SyncRoute) -> dict[str, Any]:
    schema = route.form.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    schema["properties"] = {"file": {"type": "string", "format": "binary"}, **schema.get("properties", {})}
    schema["required"] = ["file", *schema.get("required", [])]
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def _add_routes() -> None:
    """One POST route per installed contract's ``sync_routes`` entry (when the module loads)."""
    for cap in registry.capabilities().values():
        for route in cap.sync_routes:
            router.add_api_route(
                route.path,
                _handler(cap, route),
                methods=["POST"],
                name=f"{cap.name}_{route.path.strip('/').replace('/', '_')}",
                operation_id=f"{cap.name}_{route.path.strip('/').replace('/', '_')}",
                summary=route.summary,
                description=route.description,
                openapi_extra={"requestBody": _request_body(route)},
                responses={
                    **(
                        OPENAI_ERROR_RESPONSES
                        if route.error_style == "openai"
                        else {
                            **ERROR_RESPONSES,
                            504: {"model": ErrorEnvelope, "description": "no answer in time"},
                        }
                    ),
                    200: {
                        "description": "the task's result in the format asked for",
                        "content": {"application/json": {}, "text/plain": {}, "text/vtt": {}},
                    },
                },
            )


_add_routes()
