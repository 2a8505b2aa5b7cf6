"""The engine protocol every AI service is built on: ``load()`` once, ``predict()`` many times.

A service is "load engine, expose predict": the HTTP server and the RQ worker of a
service share one loaded engine. Engines load lazily under a lock, record their load
time, and serialise inference (one CPU-bound call at a time per engine; parallelism
comes from more workers, not threads fighting over the same cores).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import structlog

from mediafleet.common.errors import BadRequest, EngineError

log = structlog.get_logger("mediafleet.engine")


class EngineNotInstalled(BadRequest):
    """The engine's library is missing from this image or environment (a 4xx: retrying cannot help)."""


class Engine(ABC):
    """Base class of all model engines (one per library: rapidocr, easyocr, ...)."""

    #: Engine name as used in requests and results (``"rapidocr"``).
    name: ClassVar[str]

    def __init__(self) -> None:
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._loaded = False
        self.load_time_s: float | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    @abstractmethod
    def model(self) -> str:
        """Model name, e.g. ``PP-OCRv4``."""

    @property
    @abstractmethod
    def model_version(self) -> str:
        """Version or content hash of the loaded weights."""

    @abstractmethod
    def _load(self) -> None:
        """Load weights from local files; never download."""

    def load(self) -> None:
        """Load once; later calls return at once. Raises EngineError when weights are missing or bad."""
        if self._loaded:
            return
        with self._load_lock:
            if self._loaded:
                return
            start = time.perf_counter()
            try:
                self._load()
            except EngineError:
                raise
            except ImportError as exc:  # not in this image: no retry brings it
                raise EngineNotInstalled(
                    f"{self.name} is not installed here ({exc.name or exc}); use an image or "
                    "environment with its libraries",
                    code="engine_not_installed",
                ) from exc
            except (FileNotFoundError, OSError, RuntimeError, ValueError, KeyError) as exc:
                raise EngineError(
                    f"{self.name}: cannot load model: {exc}", code="model_not_available"
                ) from exc
            self.load_time_s = time.perf_counter() - start
            self._loaded = True
            log.info("engine_loaded", engine=self.name, model=self.model, seconds=round(self.load_time_s, 3))

    def info(self) -> dict[str, Any]:
        """What ``GET /v1/models`` and ``/readyz`` report about this engine."""
        return {
            "engine": self.name,
            "loaded": self._loaded,
            "model": self.model if self._loaded else None,
            "model_version": self.model_version if self._loaded else None,
            "load_time_s": self.load_time_s,
        }

    def run_serialised(self, fn, *args, **kwargs):  # noqa: ANN001, ANN201
        """Call ``fn`` under this engine's run lock (after loading)."""
        self.load()
        with self._run_lock:
            return fn(*args, **kwargs)


class EngineRunner:
    """Defaults of :class:`~mediafleet.common.capability.Runner` for a runner over Engine objects.

    A subclass fills ``self.engines`` (name -> Engine) in ``__init__`` and writes ``run``;
    preload, readiness, ``/v1/models`` and the cache advert come from here.
    """

    engines: dict[str, Engine]

    def preload_names(self) -> list[str]:
        """Engines loaded at start (default: all); a runner narrows it from its settings."""
        return list(self.engines)

    def preload(self) -> None:
        """Load the engines of :meth:`preload_names` now, so the first job does not pay for it.

        An engine whose weights are not provisioned (``model_not_available``) does not stop
        the service: ``/readyz`` answers 503 with the reason, which names the command that
        provisions them, and the other engines serve. Any other load error is raised.
        """
        errors = self.__dict__.setdefault("_load_errors", {})
        for name in self.preload_names():
            try:
                self.engines[name].load()
            except EngineError as exc:
                if exc.code != "model_not_available":
                    raise
                errors[name] = exc.message
                log.error("engine_not_loaded", engine=name, error=exc.message)

    def ready(self) -> str | None:
        missing = [name for name in self.preload_names() if not self.engines[name].loaded]
        if not missing:
            return None
        errors = self.__dict__.get("_load_errors", {})
        return "; ".join(errors.get(name, f"{name}: not loaded") for name in missing)

    def models(self) -> dict[str, Any]:
        return {"data": [engine.info() for engine in self.engines.values()]}

    def default_options(self, task: str) -> dict[str, Any]:
        """The options a request without any gets (the service's settings); a runner whose
        results depend on settings says which, so the result cache keeps them apart."""
        return {}

    def advertise(self, task: str) -> dict[str, Any]:
        versions = {name: e.model_version for name, e in self.engines.items() if e.loaded}
        return {"default_options": self.default_options(task), "model_versions": versions}
