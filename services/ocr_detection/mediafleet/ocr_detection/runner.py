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
from mediafleet.common.errors import BadRequest
from mediafleet.common.media import load_rgb_fitted
from mediafleet.ocr_detection.contract import OcrLine, OcrOptions, OcrResult
from mediafleet.ocr_detection.engines import ENGINE_NAMES, create_engine, engine_class
from mediafleet.ocr_detection.engines.base import OcrEngine
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

    def resolved_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """``{"engine", "languages"}``: ``options`` (valid ``OcrOptions``, checked by the
        pipeline) with the service's defaults filled in.

        Raises:
            BadRequest: ``unsupported_language``, a language the engine does not read.
        """
        opts = OcrOptions.model_construct(**(options or {}))
        engine = opts.engine or self.settings.default_engine
        languages = opts.languages or list(self.settings.default_languages)
        cls = engine_class(engine)
        if cls.languages is not None:
            bad = [x for x in languages if x not in cls.languages]
            if bad:
                raise BadRequest(
                    f"{engine} cannot read {bad}; it reads {list(cls.languages)}", code="unsupported_language"
                )
        return {"engine": engine, "languages": languages}

    def analyze(self, path: str | Path, options: dict[str, Any] | None = None) -> OcrResult:
        """OCR the image at ``path`` with ``options`` (valid ``OcrOptions``, see
        :meth:`resolved_options`). Raises BadRequest, InvalidMedia, EngineError."""
        opts = self.resolved_options(options)
        image = load_rgb_fitted(path, self.settings.max_side)
        result = self.engine(opts["engine"]).predict(image.pixels, opts["languages"])
        if image.scale > 1:  # boxes in the full image's pixels
            k = image.scale

            def full(line: OcrLine) -> OcrLine:
                box = [round(v * k, 1) for v in line.box]
                polygon = [[round(x * k, 1), round(y * k, 1)] for x, y in line.polygon]
                return line.model_copy(update={"box": box, "polygon": polygon})

            result = result.model_copy(update={"lines": [full(line) for line in result.lines]})
        log.info("ocr_done", engine=result.engine, lines=len(result.lines), elapsed_ms=result.elapsed_ms)
        return result
