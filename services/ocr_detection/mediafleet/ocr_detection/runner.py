"""The OCR runner: engines by name, loaded once, shared by the HTTP server, the RQ worker and the CLI.

Follows :class:`mediafleet.common.capability.Runner`; the generic service, task function
and CLI call it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from mediafleet.common.capability import ProgressFn
from mediafleet.common.engine import EngineRunner
from mediafleet.common.errors import BadRequest, ValidationFailed
from mediafleet.common.media import load_rgb_fitted
from mediafleet.ocr_detection.contract import OcrLine, OcrResult, resolve_options
from mediafleet.ocr_detection.engines import ENGINE_NAMES, create_engine, engine_class
from mediafleet.ocr_detection.engines.base import OcrEngine
from mediafleet.ocr_detection.engines.rapidocr import RapidOcrEngine
from mediafleet.ocr_detection.settings import OcrSettings

log = structlog.get_logger("mediafleet.ocr")


class OcrRunner(EngineRunner[OcrEngine]):
    def __init__(self, settings: OcrSettings):
        self.settings = settings
        # built, not loaded: each engine loads at start (OCR_PRELOAD) or on its first use
        self.engines = {n: create_engine(n, settings) for n in ENGINE_NAMES}

    def engine(self, name: str | None) -> OcrEngine:
        """Engine ``name`` (default from settings). Raises BadRequest if unknown."""
        name = name or self.settings.default_engine
        engine_class(name)  # BadRequest naming the engines there are
        return self.engines[name]

    def preload_names(self) -> list[str]:
        """``OCR_PRELOAD``; an engine whose weights are missing leaves ``/readyz`` at 503 naming
        the command that provisions them, and the others serve (EngineRunner)."""
        return list(self.settings.preload)

    def task_engines(self, task: str) -> list[str]:
        return [self.settings.default_engine]

    def models(self) -> dict[str, Any]:
        """``GET /v1/models``: the default engine and every engine's state."""
        return {
            "default_engine": self.settings.default_engine,
            "data": [e.info() for e in self.engines.values()],
        }

    def default_options(self, task: str) -> dict[str, Any]:
        return self.resolved_options({})

    def run(
        self,
        task: str,
        media: str | Path,
        options: dict[str, Any],
        inputs: dict[str, Any],
        progress: ProgressFn,
    ) -> OcrResult:
        """The contract's entry (its only task, ``ocr``): see :meth:`analyze`."""
        return self.analyze(media, options)

    def _rapidocr(self) -> RapidOcrEngine:
        engine = self.engines["rapidocr"]
        assert isinstance(engine, RapidOcrEngine)
        return engine

    def resolved_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """``options`` (valid ``OcrOptions``, checked by the pipeline) with the service's
        defaults filled in (contract.resolve_options): ``{"engine", "languages"}`` plus
        ``model`` (rapidocr) or ``layout`` (tesseract).

        Raises:
            BadRequest: ``unsupported_language`` (a language the engine or model does not read),
                ``invalid_option`` (a model or layout for an engine without that choice).
        """
        defaults = {"engine": self.settings.default_engine, "model": self._rapidocr().default_model()}
        try:
            return resolve_options(dict(options or {}), defaults, self.settings.default_languages)
        except ValidationFailed as exc:  # the worker's no-retry error, same code and message
            raise BadRequest(exc.message, code=exc.code, details=exc.details) from exc

    def analyze(self, path: str | Path, options: dict[str, Any] | None = None) -> OcrResult:
        """OCR the image at ``path`` with ``options`` (valid ``OcrOptions``, see
        :meth:`resolved_options`). Raises BadRequest, InvalidMedia, EngineError."""
        opts = self.resolved_options(options)
        image = load_rgb_fitted(path, self.settings.max_side)
        result = self.engine(opts["engine"]).predict(image.pixels, opts["languages"], opts)
        if image.scale > 1:  # boxes in the full image's pixels
            k = image.scale

            def full(line: OcrLine) -> OcrLine:
                box = [round(v * k, 1) for v in line.box]
                polygon = [[round(x * k, 1), round(y * k, 1)] for x, y in line.polygon]
                return line.model_copy(update={"box": box, "polygon": polygon})

            result = result.model_copy(update={"lines": [full(line) for line in result.lines]})
        log.info(
            "ocr_done",
            engine=result.engine,
            model=result.model,
            lines=len(result.lines),
            dropped_lines=result.dropped_lines,
            elapsed_ms=result.elapsed_ms,
        )
        return result
