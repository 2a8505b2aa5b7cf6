"""HTTP app of any AI service, typed from its contract.

``POST /v1/predict`` (multipart: ``file``, ``task``, ``options`` as JSON, ``inputs`` as
JSON for tasks with dependencies) runs a task synchronously on the loaded runner, with no
storage and no queue, through the same pipeline as a job's task
(:mod:`mediafleet.common.pipeline.run`: media kind checked, videos frame by frame); ``GET /v1/models`` reports what is loaded; ``/healthz``, ``/readyz``,
``/metrics`` come from :mod:`mediafleet.common.observability`. A runner with a
``routers()`` method adds its own routes (FastAPI ``APIRouter`` objects).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, Union

from fastapi import FastAPI, Form, UploadFile
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from mediafleet.common.capability import Capability, FramesResult, Runner
from mediafleet.common.errors import BadRequest, install_error_handlers
from mediafleet.common.media import probe_media
from mediafleet.common.observability import (
    InternalTokenGuard,
    MetricsMiddleware,
    ReadinessCheck,
    health_router,
)
from mediafleet.common.pipeline import run as pipeline
from mediafleet.common.tracing import FASTAPI_TELEMETRY


def _json_form(name: str, value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"{name} is not valid JSON: {exc}", code="invalid_option") from exc
    if not isinstance(parsed, dict):
        raise BadRequest(f"{name} must be a JSON object", code="invalid_option")
    return parsed


def create_service_app(
    cap: Capability, runner: Runner, extra_checks: dict[str, ReadinessCheck] | None = None
) -> FastAPI:
    """The service's HTTP app over an existing runner (engines are loaded by the caller).

    Route annotations must not name local variables: this module uses postponed
    annotations and FastAPI resolves them in the module's globals.
    """
    app = FastAPI(
        title=f"mediafleet {cap.name}", version="0.1.0", description=cap.title, telemetry=FASTAPI_TELEMETRY
    )
    api = cap.http_api
    install_error_handlers(
        app, [api.service_prefix] if api is not None and api.error_style == "openai" else []
    )
    details = getattr(runner, "details", None)  # optional: what /readyz adds (an LLM's slots)
    app.include_router(
        health_router(
            {"engines": runner.ready, **(extra_checks or {})},
            components=details,
            components_key="details",
        )
    )
    core = getattr(runner.settings, "core", None)
    token = core.internal_token.get_secret_value() if core is not None and core.internal_token else None
    app.add_middleware(InternalTokenGuard, token=token)  # /v1/predict, /v1/models, its own API
    app.add_middleware(MetricsMiddleware, service=cap.name)
    results: tuple[type[BaseModel], ...] = tuple(spec.result for spec in cap.tasks)
    if any(spec.on_frames("video") for spec in cap.tasks):  # an image task on a video's frames
        results += (FramesResult,)
    result_type: Any = results[0] if len(results) == 1 else Union[results]  # noqa: UP007
    default_task = cap.tasks[0].name

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return runner.models()

    @app.post("/v1/predict", response_model=result_type)
    async def predict(
        file: UploadFile,
        task: Annotated[
            str, Form(description="the task to run (default: the capability's first)")
        ] = default_task,
        options: Annotated[str | None, Form(description="task options as a JSON object")] = None,
        inputs: Annotated[str | None, Form(description="results of the task's dependencies, JSON")] = None,
    ) -> Any:
        """Run one task on the uploaded file and return its result: the same checks and path
        as a job's task (:mod:`mediafleet.common.pipeline.run`); an image task on a video runs
        on its sampled frames (a ``FramesResult``). 400 for an unknown task or bad options,
        415/422 for a file that is not media this task takes."""
        prepared = pipeline.prepare(cap, task, _json_form("options", options))
        deps = _json_form("inputs", inputs)
        with tempfile.NamedTemporaryFile(suffix=".upload") as tmp:
            while block := await file.read(1 << 20):
                tmp.write(block)
            tmp.flush()

            def run() -> BaseModel:
                probe = probe_media(tmp.name)  # the pixel cap of images and video frames
                return pipeline.execute(
                    prepared,
                    runner,
                    Path(tmp.name),
                    media_kind=probe.kind,
                    inputs=deps,
                    duration_s=probe.duration_s,
                )

            return await run_in_threadpool(run)

    # a capability's own HTTP routes (its contract's http_api), when its runner has any
    for router in getattr(runner, "routers", lambda: [])():
        app.include_router(router)
    return app
