"""HTTP entry point of the OCR service: ``POST /v1/predict``, ``GET /v1/models`` + health."""

from __future__ import annotations

import tempfile
from typing import Annotated

from fastapi import FastAPI, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from mediafleet.common.errors import install_error_handlers
from mediafleet.common.observability import MetricsMiddleware, ReadinessCheck, health_router
from mediafleet.common.schemas import OcrResult
from mediafleet.ocr_detection.runner import OcrRunner


def create_app(runner: OcrRunner, extra_checks: dict[str, ReadinessCheck] | None = None) -> FastAPI:
    """The service's HTTP app over an existing runner (engines are loaded by the caller)."""
    app = FastAPI(title="mediafleet ocr_detection", version="0.1.0")
    install_error_handlers(app)

    def engines_loaded() -> str | None:
        missing = [n for n in runner.settings.preload if n not in runner.loaded_engines()]
        return f"engines not loaded: {missing}" if missing else None

    app.include_router(health_router({"engines": engines_loaded, **(extra_checks or {})}))
    app.add_middleware(MetricsMiddleware, service="ocr_detection")

    @app.get("/v1/models")
    def models() -> dict:
        return {"default_engine": runner.settings.default_engine, "data": runner.models()}

    @app.post("/v1/predict", response_model=OcrResult)
    async def predict(
        file: UploadFile,
        engine: Annotated[str | None, Form()] = None,
        languages: Annotated[str | None, Form(description="comma-separated, e.g. en,fr")] = None,
    ) -> OcrResult:
        """Synchronous OCR of one uploaded image (no storage, no queue)."""
        options: dict = {}
        if engine:
            options["engine"] = engine
        if languages:
            options["languages"] = [x.strip() for x in languages.split(",") if x.strip()]
        with tempfile.NamedTemporaryFile(suffix=".upload") as tmp:
            while block := await file.read(1 << 20):
                tmp.write(block)
            tmp.flush()
            return await run_in_threadpool(runner.analyze, tmp.name, options)

    return app
