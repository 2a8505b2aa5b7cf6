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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import structlog

from mediafleet.common.capability import NotReady
from mediafleet.common.errors import BadRequest, EngineError, MediafleetError
from mediafleet.common.metrics import MODEL_LOAD_SECONDS, MODEL_LOADED

log = structlog.get_logger("mediafleet.engine")
T = TypeVar("T")


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
            MODEL_LOADED.labels(self.name, self.model).set(1)
            MODEL_LOAD_SECONDS.labels(self.name, self.model).set(self.load_time_s)
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

    def run_serialised(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` under this engine's run lock (after loading)."""
        self.load()
        with self._run_lock:
            return fn(*args, **kwargs)


@dataclass
class LoadState:
    """What an EngineRunner knows of its engines' loading: last error and last attempt per engine."""

    errors: dict[str, NotReady] = field(default_factory=dict)
    tried: dict[str, float] = field(default_factory=dict)


def not_ready_of(exc: MediafleetError) -> NotReady:
    """The readiness answer for an engine's load error."""
    if exc.code == "model_not_available":
        return NotReady(code="models_missing", message=exc.message)
    if exc.code == "engine_not_installed":
        return NotReady(code="engine_not_installed", message=exc.message)
    return NotReady(code="load_failed", message=exc.message)


EngineT = TypeVar("EngineT", bound=Engine)


class EngineRunner(Generic[EngineT]):
    """Defaults of :class:`~mediafleet.common.capability.Runner` for a runner over Engine objects.

    A subclass fills ``self.engines`` (name -> its engine type ``EngineT``) in ``__init__`` and
    writes ``run``;
    preload, readiness (per task too), ``/v1/models`` and the cache advert come from here.

    Weights that arrive after the start (``make models`` while the service runs) are picked
    up without a restart: readiness checks try to load an engine whose weights were missing
    again, at most every :attr:`retry_load_s` seconds.
    """

    engines: dict[str, EngineT]
    #: Seconds between two attempts to load an engine whose weights were missing.
    retry_load_s: ClassVar[float] = 10.0

    @property
    def load_state(self) -> LoadState:
        # set on first use: subclasses write their own __init__ without calling ours
        state: LoadState = self.__dict__.setdefault("_load_state", LoadState())
        return state

    def preload_names(self) -> list[str]:
        """Engines loaded at start (default: all); a runner narrows it from its settings."""
        return list(self.engines)

    def task_engines(self, task: str) -> list[str]:
        """Engines ``task`` runs on with its default options (default: those loaded at start).

        A runner with several tasks over different engines narrows it (an embedding task
        on one library, a classifier on another), so one missing model does not make
        every task of the service unready.
        """
        return self.preload_names()

    def preload(self) -> None:
        """Load the engines of :meth:`preload_names` now, so the first job does not pay for it.

        An engine whose weights are not provisioned (``model_not_available``) does not stop
        the service: ``/readyz`` answers 503 with the reason, which names the command that
        provisions them, and the other engines serve. Any other load error is raised.
        """
        self._load_engines(self.preload_names())

    def _load_engines(self, names: list[str], raise_other: bool = True) -> None:
        """Load ``names``; a missing model is recorded (readiness names it), any other load
        error raised unless ``raise_other`` is false (then recorded too)."""
        state = self.load_state
        for name in names:
            state.tried[name] = time.monotonic()
            try:
                self.engines[name].load()
            except MediafleetError as exc:  # EngineError, or EngineNotInstalled (a BadRequest)
                if exc.code != "model_not_available" and raise_other:
                    raise
                if name not in state.errors or state.errors[name].message != exc.message:
                    log.warning("engine_not_loaded", engine=name, error=exc.message)
                state.errors[name] = not_ready_of(exc)
            else:
                state.errors.pop(name, None)

    def _not_ready(self, names: list[str]) -> NotReady | None:
        """None when every engine of ``names`` is loaded (after a throttled retry of those whose
        weights were missing), else why not (the first missing engine's code, every reason)."""
        state = self.load_state
        now = time.monotonic()
        retry = [
            n
            for n in names
            if not self.engines[n].loaded and now - state.tried.get(n, -1e9) >= self.retry_load_s
        ]
        if retry:  # a check never raises: every error is the engine's reason
            self._load_engines(retry, raise_other=False)
        missing = [n for n in names if not self.engines[n].loaded]
        if not missing:
            return None
        reasons = [
            state.errors.get(n, NotReady(code="load_failed", message=f"{n}: not loaded")) for n in missing
        ]
        return NotReady(code=reasons[0].code, message="; ".join(r.message for r in reasons))

    def ready(self) -> str | None:
        problem = self._not_ready(self.preload_names())
        return None if problem is None else problem.message

    def task_ready(self, task: str) -> NotReady | None:
        """None when ``task`` can run with its default options, else why not (its engines' errors)."""
        return self._not_ready(self.task_engines(task))

    def models(self) -> dict[str, Any]:
        return {"data": [engine.info() for engine in self.engines.values()]}

    def default_options(self, task: str) -> dict[str, Any]:
        """The options a request without any gets (the service's settings); a runner whose
        results depend on settings says which, so the result cache keeps them apart."""
        return {}

    def advertise(self, task: str) -> dict[str, Any]:
        versions = {name: e.model_version for name, e in self.engines.items() if e.loaded}
        return {"default_options": self.default_options(task), "model_versions": versions}
