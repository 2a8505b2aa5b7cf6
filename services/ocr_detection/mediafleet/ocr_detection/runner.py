"""The OCR runner: engines by name, loaded once, shared by the HTTP server, the RQ worker and the CLI.

Follows :class:`mediafleet.common.capability.Runner`; the generic service, task function
and CLI call it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from mediafleet.common.capability import ProgressFn
from mediafleet.common.errors import BadRequest, EngineError
from mediafleet.common.media import load_rgb_fitted
from mediafleet.ocr_detection.contract import OcrLine, OcrOptions, OcrResult
from mediafleet.ocr_detection.engines import ENGINE_NAMES, create_engine, engine_class
from mediafleet.ocr_detection.engines.base import OcrEngine
from mediafleet.ocr_detection.settings import OcrSettings

log = structlog.get_logger("mediafleet.ocr")


class OcrRunner:
    def __init__(self, settings: OcrSettings):
        self.settings = settings
        self._engines: dict[str, OcrEngine] = {}
        self._load_errors: dict[str, str] = {}

    def engine(self, name: str | None) -> OcrEngine:
        """Engine ``name`` (default from settings), created on first use. Raises BadRequest if unknown."""
        name = name or self.settings.default_engine
        if name not in self._engines:
            self._engines[name] = create_engine(name, self.settings)
        return self._engines[name]

    def preload(self, names: list[str] | None = None) -> None:
        """Load engines now (service start), so the first job does not pay for it.

        An engine whose weights are not provisioned does not stop the service: ``/readyz``
        answers 503 with the command that provisions them, and the other engines serve.
        """
        for name in names if names is not None else self.settings.preload:
            try:
                self.engine(name).load()
            except EngineError as exc:
                if exc.code != "model_not_available":
                    raise
                self._load_errors[name] = exc.message
                log.error("engine_not_loaded", engine=name, error=exc.message)

    def models(self) -> dict[str, Any]:
        """``GET /v1/models``: the default engine and every engine's state."""
        data = [
            self._engines[n].info() if n in self._engines else {"engine": n, "loaded": False}
            for n in ENGINE_NAMES
        ]
        return {"default_engine": self.settings.default_engine, "data": data}

    def ready(self) -> str | None:
        missing = [n for n in self.settings.preload if n not in self.loaded_engines()]
        if not missing:
            return None
        return "; ".join(self._load_errors.get(n, f"{n}: not loaded") for n in missing)

    def advertise(self, task: str) -> dict[str, Any]:
        return {
            "default_options": self.validate_options({}),
            "model_versions": {n: e.model_version for n, e in self._engines.items() if e.loaded},
        }

    def run(
        self,
        task: str,
        media: str | Path,
        options: dict[str, Any],
        inputs: dict[str, Any],
        progress: ProgressFn,
    ) -> OcrResult:
        """The contract's entry: ``ocr`` on the image at ``media`` (see :meth:`analyze`)."""
        if task != "ocr":
            raise BadRequest(f"ocr_detection does not run {task!r}", code="unknown_task")
        return self.analyze(media, options)

    def loaded_engines(self) -> list[str]:
        return [name for name, eng in self._engines.items() if eng.loaded]

    def validate_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """Normalise ``{"engine", "languages"}`` with defaults. Raises BadRequest on bad values."""
        try:
            opts = OcrOptions.model_validate(options or {})
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False)
            code = "unknown_engine" if errors[0]["loc"][:1] == ("engine",) else "invalid_option"
            raise BadRequest(
                f"invalid OCR options: {errors[0]['loc']}: {errors[0]['msg']}", details=errors, code=code
            ) from exc
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
        """OCR the image at ``path``. Raises BadRequest, InvalidMedia, EngineError."""
        opts = self.validate_options(options)
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
