"""The capability contract: what an AI service declares so the rest of the fleet can use it.

A capability is one folder, ``services/<name>/``, whose package exposes a light contract
module (pydantic and ``mediafleet.common`` only, no ML library) with one
:class:`Capability`. The gateway, job_manager and the CLI read contracts through
:mod:`mediafleet.common.registry` and never import the capability's engines; the worker
entry point (:mod:`mediafleet.common.service`), the HTTP app factory
(:mod:`mediafleet.common.service_app`) and the task glue (:mod:`mediafleet.common.taskrun`)
are generic and load the runner named by the contract.

The runner a contract names (``"module:Class"``, imported late, as roboflow inference's
registries and Immich's ``get_model_class`` do) is built as ``Runner(settings)`` from the
contract's settings class and follows :class:`Runner`.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MediaKind = Literal["image", "audio", "video"]


class TextSegment(BaseModel):
    """A piece of text a result holds, indexed for full-text search.

    ``ref`` points into the result (``"lines[3]"``); a segment of an image carries a
    ``box`` (xyxy, source pixels), one of audio/video a ``start``/``end`` (seconds from
    media start); either may be absent.
    """

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    ref: str = Field(max_length=64)
    box: list[float] | None = Field(default=None, min_length=4, max_length=4)
    start: float | None = Field(default=None, ge=0)
    end: float | None = Field(default=None, ge=0)
    score: float | None = None


class VectorItem(BaseModel):
    """An embedding a result holds, for a vector collection (L2-normalised float32, cosine).

    ``collection`` names the model that made it (embeddings of different models never meet);
    ``ref`` points into the result: ``"media"`` for an embedding of the whole media (what
    ``GET /v1/media/{id}/similar`` and semantic search compare), or a part (``"faces[2]"``).
    job_manager stores it in vector_db as item ``<media_id>/<task>/<ref>`` of the job's
    owner, with the payload ``{"media_id", "task", "ref"}``.
    """

    collection: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    ref: str = Field(min_length=1, max_length=64)
    vector: list[float] = Field(min_length=1, max_length=4096)


class MediaFacts(BaseModel):
    """What a result says about the media file as a whole, kept on the media row for the
    library's filters (``GET /v1/media?taken_from=&taken_to=&place=``): the latest recorded
    result that declares facts replaces the earlier ones.

    ``taken_at`` is the local time the file records (naive: a photo "taken on 1 March" stays
    on 1 March whatever the viewer's zone); ``place`` a label people search for
    (``"Madrid, ES"``, at most 200 characters); ``country_code`` ISO 3166-1 alpha-2.
    """

    model_config = ConfigDict(extra="forbid")

    taken_at: dt.datetime | None = None
    place: str | None = Field(default=None, max_length=200)
    country_code: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")


class Likeness(BaseModel):
    """How alike two files of one owner are by their results of one task (near-duplicates):
    what a contract's ``TaskSpec.likeness`` answers. The recorder keeps the pairs that are
    ``duplicate`` (:mod:`mediafleet.common.store.duplicates`), read by
    ``GET /v1/media/{id}/duplicates`` and ``GET /v1/duplicates``."""

    model_config = ConfigDict(extra="forbid")

    duplicate: bool = Field(description="the two files show the same content (the contract's rule)")
    similarity: float = Field(ge=0.0, le=1.0, description="1: identical fingerprints; the rule's own scale")
    method: str = Field(max_length=64, description="what was compared: 'pHash+dHash', 'frames+chromaprint'")
    detail: str = Field(default="", max_length=200, description="the figures behind it, for people")


class FaceItem(BaseModel):
    """A face a result holds, kept per owner so people can be named, merged and found.

    job_manager stores it (:mod:`mediafleet.common.store.identities`) with its media, box and
    embedding (L2-normalised float32, the same vector as the result's ``VectorItem`` of
    ``ref``), and assigns it to the owner's person whose closest face of the same
    ``collection`` has cosine similarity >= ``threshold``, else to a new unnamed person.
    """

    collection: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    ref: str = Field(min_length=1, max_length=64)
    vector: list[float] = Field(min_length=1, max_length=4096)
    box: list[float] = Field(min_length=4, max_length=4, description="xyxy, source pixels")
    score: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(ge=-1.0, le=1.0, description="cosine similarity for 'same person'")
    t: float | None = Field(default=None, ge=0, description="seconds from media start (video frames)")


#: ``VectorItem.ref`` of an embedding of the whole media.
MEDIA_REF = "media"


class FrameResult(BaseModel):
    """An image task's result on one sampled frame of a video."""

    t: float = Field(ge=0, description="seconds from media start")
    result: dict[str, Any]


class FramesResult(BaseModel):
    """An image task's result on a video: its result on each sampled frame.

    The frames are chosen by :class:`mediafleet.common.media.FrameSampling` (``sampling``);
    every image task of a job samples the same frames, so their results meet at the same
    ``t`` (``GET /v1/jobs/{id}/timeline``).
    """

    kind: Literal["video_frames"] = "video_frames"
    duration_s: float | None = None
    sampling: dict[str, float]
    frames: list[FrameResult]
    elapsed_ms: float


def is_frames(raw: Any) -> bool:
    return isinstance(raw, dict) and raw.get("kind") == "video_frames"


class TextQuery(BaseModel):
    """Input of a ``semantic_search`` query: the user's words."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=1000)


class Passage(BaseModel):
    """A numbered passage of the asker's own library, given to an ``answer_question`` query."""

    n: int = Field(ge=1, description="the number an answer cites as [n]")
    source: str = Field(max_length=300, description="where it comes from, for the model: file, task, time")
    text: str = Field(max_length=4000)


class QuestionQuery(BaseModel):
    """Input of an ``answer_question`` query (``POST /v1/ask``)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)
    passages: list[Passage] = Field(min_length=1, max_length=50)
    max_tokens: int = Field(default=256, ge=16, le=2048)


class Answer(BaseModel):
    """Output of an ``answer_question`` query."""

    answer: str
    model: str
    usage: dict[str, int] = Field(default_factory=dict)


class ServiceEndpoint(BaseSettings):
    """Where the gateway reaches a capability's service, and how long it waits for an answer:
    ``<HttpApi.env_prefix>URL`` and ``<HttpApi.env_prefix>TIMEOUT_S`` (environment or ``.env``).
    Read by the gateway only; the capability owns the names, not the shared core settings."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    #: Base URL of the service (``http://<service>:<port>``); unset: its routes answer 503.
    url: str | None = None
    #: Seconds the gateway waits for an answer (its HTTP API and its queries, e.g. ``/v1/ask``).
    timeout_s: float = Field(default=120.0, gt=0)


@dataclass(frozen=True)
class ApiRoute:
    """One route of an :class:`HttpApi`: its method and the models that document it in the
    gateway's OpenAPI document, so generated clients get types. The gateway refuses a body
    its ``request`` model refuses and passes the others on as they came (the service
    validates them with its own types; keep the model as loose as the service).

    ``request``: the JSON body (POST); ``response``: the JSON answer; ``stream``: one
    ``data:`` event of the ``text/event-stream`` answer to ``"stream": true``.
    """

    method: Literal["GET", "POST"]
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    stream: type[BaseModel] | None = None
    summary: str = ""


@dataclass(frozen=True)
class HttpApi:
    """HTTP routes of a capability's service that the gateway exposes to signed-in users as they
    are (streams included): ``<public_prefix>/<path>`` -> ``<service URL><service_prefix>/<path>``
    for each ``paths`` entry; a ``{name}`` segment of a path stands for any one segment
    (``models/{model}``: ``models/<id>``). The service URL and time-out are read from
    ``<env_prefix>URL`` and ``<env_prefix>TIMEOUT_S`` (:class:`ServiceEndpoint`; 503 while the URL is unset)."""

    public_prefix: str
    service_prefix: str
    paths: Mapping[str, ApiRoute]
    #: e.g. ``MEDIAFLEET_LLM_``: the gateway reads ``MEDIAFLEET_LLM_URL`` and ``MEDIAFLEET_LLM_TIMEOUT_S``.
    env_prefix: str
    description: str = ""
    #: ``openai``: errors on these routes take OpenAI's shape (``{"error": {"message", "type",
    #: "param", "code"}}``, an invalid body 400 not 422), in the service and at the gateway, so
    #: OpenAI's clients read them; ``envelope``: the fleet's error envelope.
    error_style: Literal["envelope", "openai"] = "envelope"

    def route_of(self, path: str) -> ApiRoute | None:
        """The ``paths`` entry of the concrete ``path`` (``models/abc`` matches ``models/{model}``:
        each ``{...}`` segment one non-empty segment); None when no entry matches."""
        if path in self.paths:
            return self.paths[path]
        parts = path.split("/")
        for pattern, route in self.paths.items():
            want = pattern.split("/")
            if len(want) == len(parts) and all(
                w == p or (w.startswith("{") and w.endswith("}") and p)
                for w, p in zip(want, parts, strict=True)
            ):
                return route
        return None

    def models(self) -> list[type[BaseModel]]:
        """Every model the routes name (for the gateway's OpenAPI components)."""
        found = [m for r in self.paths.values() for m in (r.request, r.response, r.stream) if m is not None]
        return list(dict.fromkeys(found))

    def endpoint(self) -> ServiceEndpoint:
        """The URL and time-out as configured now. Raises pydantic's ValidationError for a bad value."""
        return ServiceEndpoint(_env_prefix=self.env_prefix)


@dataclass(frozen=True)
class QuerySpec:
    """A synchronous request a capability answers (not a task: no media, nothing stored).

    The gateway sends it to a worker of the capability on its ``high`` queue and waits
    for the answer (:func:`mediafleet.common.taskrun.run_query`). ``purpose`` says what the
    gateway uses it for:

    - ``semantic_search``: input :class:`TextQuery`, output :class:`VectorItem` (the text's
      embedding in the collection of the media embeddings it is compared with).
    - ``face_verify``: input with two images, output with ``similarity``, ``threshold`` and
      ``same_person`` (``POST /v1/faces/verify``).
    - ``answer_question``: input :class:`QuestionQuery` (a question and numbered passages the
      gateway retrieved from the asker's library), output :class:`Answer` (``POST /v1/ask``).
    """

    name: str
    purpose: Literal["semantic_search", "face_verify", "answer_question"]
    input: type[BaseModel]
    output: type[BaseModel]
    description: str = ""


class NoOptions(BaseModel):
    """Options of a task that takes none (any key is refused)."""

    model_config = ConfigDict(extra="forbid")


def no_segments(result: Any) -> list[TextSegment]:
    return []


def no_vectors(result: Any) -> list[VectorItem]:
    return []


def no_faces(result: Any) -> list[FaceItem]:
    return []


def no_facts(result: Any) -> MediaFacts | None:
    return None


@dataclass(frozen=True)
class ExportFormat:
    """A rendering of a task's result as a file (a transcript as SRT): ``render(result) -> text``.

    The gateway serves it at ``GET /v1/jobs/{id}/transcript?format=<name>`` (the task whose
    spec exports that format) with ``media_type`` and a download name ending in ``extension``.
    """

    media_type: str
    extension: str
    render: Callable[[Any], str]


@dataclass(frozen=True)
class SyncRoute:
    """A route the gateway adds that runs one task on an uploaded file and answers when the task
    ends, for clients that cannot follow a job (OpenAI's ``POST /v1/audio/transcriptions``).

    The request is ``multipart/form-data``: a ``file`` part and the fields of ``form`` (a
    pydantic model; a field ending in ``[]`` on the wire, as OpenAI's clients send lists, fills
    the list field of that name). The gateway stores the file as the caller's media, submits a
    job running ``task`` with ``options(form)`` (validated against the task's options model),
    waits for it (at most ``GATEWAY_SYNC_TIMEOUT_S``; 504 after, naming the job to follow) and
    answers ``render(result, form)``: ``(body, media_type)``, a dict body as JSON. Errors take
    ``error_style`` (OpenAI's shape by default).
    """

    path: str
    task: str
    form: type[BaseModel]
    options: Callable[[Any], dict[str, Any]]
    render: Callable[[Any, Any], tuple[str | dict[str, Any], str]]
    summary: str
    description: str = ""
    error_style: Literal["envelope", "openai"] = "openai"


@dataclass(frozen=True)
class TaskSpec:
    """One task a capability runs.

    - ``options``: pydantic model of the task's options (``extra="forbid"``); values left
      ``None`` take the service's defaults.
    - ``result``: pydantic model of the result (recorded with ``engine``, ``model``,
      ``model_version``, ``elapsed_ms`` by convention).
    - ``depends_on``: tasks that must succeed first; their results reach the runner as
      ``inputs[name]``. A job asking for this task gets its dependencies added.
    - ``after``: tasks that run first *when the job has them* (``summarize`` after ``ocr``,
      ``transcribe``...); their results are inputs too; never added to a job.
    - ``segments`` / ``vectors`` / ``faces`` / ``facts``: pure functions of a validated result.
    - ``likeness``: ``likeness(a, b)`` compares two validated results of this task (two files
      of the same kind and owner) for near-duplicates; None when the task has no such rule.
    - ``rename``: ``rename(result, names)`` gives the validated result with the user's names
      for what it numbers (a transcript's speakers: ``{"1": "Ada"}``, None removing one);
      raises ValueError for a key the result does not have. None: nothing to name.
    - ``summary``: one line for people (the CLI's human output).
    - ``video_frames``: an image task runs on a video's sampled frames (``FramesResult``);
      the ``*_of`` methods read either shape of a stored result.
    - ``exports``: file renderings of the result by format name (``"srt"``).
    - ``streams``: stream types (``"audio"``, ``"video"``) audio/video media must have for
      this task; a job on media without one is refused (422 ``missing_stream``).
    - ``timeout_per_media_s``: seconds of task time allowed per second of audio/video, on top
      of ``MEDIAFLEET_TASK_TIMEOUT_S`` (long media must not hit a fixed timeout).
    - ``generated``: the result's text is a model's own writing (summaries), kept out of the
      passages ``/v1/ask`` answers from (``include_generated`` brings it back).
    - ``default``: offered ticked in the web UI's upload view and run when a CLI call names no
      tasks, when the fleet (or the embedded engines) can run it now: ``True`` for every media
      kind it accepts, or the kinds (``("image",)``: ticked for images, not for videos).
    """

    name: str
    options: type[BaseModel]
    result: type[BaseModel]
    summary: Callable[[Any], str]
    media_kinds: tuple[MediaKind, ...] = ("image",)
    #: Soft dependencies: run before this task when the job has them (their results as inputs).
    after: tuple[str, ...] = ()
    #: An image task also runs on videos, on their sampled frames (result: FramesResult).
    video_frames: bool = True
    depends_on: tuple[str, ...] = ()
    segments: Callable[[Any], list[TextSegment]] = no_segments
    vectors: Callable[[Any], list[VectorItem]] = no_vectors
    faces: Callable[[Any], list[FaceItem]] = no_faces
    #: ``facts(result)``: the file's date and place for the library's filters (None: says nothing).
    facts: Callable[[Any], MediaFacts | None] = no_facts
    #: ``likeness(a, b)``: are the files of two results near-duplicates (a fingerprint task)?
    likeness: Callable[[Any, Any], Likeness] | None = None
    #: ``rename(result, names)``: the user's names for what the result numbers (speakers).
    rename: Callable[[Any, Mapping[str, str | None]], Any] | None = None
    exports: Mapping[str, ExportFormat] = field(default_factory=dict)
    streams: tuple[Literal["audio", "video"], ...] = ()
    timeout_per_media_s: float = 0.0
    description: str = ""
    #: Ticked in the upload view / run by ``mediafleet analyze FILE``: True, or the media kinds.
    default: bool | tuple[MediaKind, ...] = False
    #: ``check(options, defaults)``: the contract's own refusal of options that validate but that
    #: no engine serves (an OCR language no engine reads), raised as ValidationFailed (422) at job
    #: creation. ``defaults`` are the default options the fleet's workers advertise ({} if none).
    check: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
    #: Its text is written by a model from other results (a summary), not read from the media:
    #: searchable, but ``/v1/ask`` does not cite it as evidence unless asked to.
    generated: bool = False

    def default_for(self, kind: str) -> bool:
        """Whether this task is a default for media of ``kind`` (it must also accept it)."""
        chosen = self.default if isinstance(self.default, bool) else kind in self.default
        return chosen and self.accepts(kind)

    def kinds(self) -> list[MediaKind]:
        """Every media kind this task runs on (videos through their frames, for image tasks)."""
        every: tuple[MediaKind, ...] = ("image", "audio", "video")
        return [k for k in every if self.accepts(k)]

    def accepts(self, kind: str) -> bool:
        """Whether media of ``kind`` can run this task (a video through its frames, for image tasks)."""
        return kind in self.media_kinds or (
            kind == "video" and self.video_frames and "image" in self.media_kinds
        )

    def on_frames(self, kind: str) -> bool:
        """True when media of ``kind`` runs this task frame by frame."""
        return kind == "video" and "video" not in self.media_kinds and self.accepts(kind)

    def _frames(self, raw: dict[str, Any]) -> list[tuple[int, float, Any]]:
        parsed = FramesResult.model_validate(raw)
        return [(i, f.t, self.result.model_validate(f.result)) for i, f in enumerate(parsed.frames)]

    def summary_of(self, raw: dict[str, Any]) -> str:
        if is_frames(raw):
            frames = self._frames(raw)
            return f"{len(frames)} frames" + (f"; t=0: {self.summary(frames[0][2])}" if frames else "")
        return self.summary(self.result.model_validate(raw))

    def derive(self, raw: dict[str, Any]) -> Derived:
        """Everything a stored result hands over, parsed once: its text segments, vectors and
        faces (the contract's ``segments`` / ``vectors`` / ``faces`` functions). A frames result
        (``FramesResult``) gives each item ``ref`` ``frames[i].result.<ref>`` (64 characters at
        most) and its frame's time: segments ``start = end = t``, faces ``t``.

        Raises pydantic.ValidationError when ``raw`` is not this task's result (or frames of it).
        """
        if not is_frames(raw):
            result = self.result.model_validate(raw)
            return Derived(
                self.segments(result), self.vectors(result), self.faces(result), self.facts(result)
            )
        segments: list[TextSegment] = []
        vectors: list[VectorItem] = []
        faces: list[FaceItem] = []
        for i, t, result in self._frames(raw):
            prefix = f"frames[{i}].result."
            segments += [
                s.model_copy(update={"ref": (prefix + s.ref)[:64], "start": t, "end": t})
                for s in self.segments(result)
            ]
            vectors += [v.model_copy(update={"ref": (prefix + v.ref)[:64]}) for v in self.vectors(result)]
            faces += [f.model_copy(update={"ref": (prefix + f.ref)[:64], "t": t}) for f in self.faces(result)]
        return Derived(segments, vectors, faces)


@dataclass(frozen=True)
class Derived:
    """What one stored result hands over to the stores (:meth:`TaskSpec.derive`)."""

    #: indexed for full-text search and cited by /v1/ask
    segments: list[TextSegment]
    #: written to vector_db (the job manager's sync thread; embedded mode keeps none yet)
    vectors: list[VectorItem]
    #: kept for the job's owner and grouped into people (mediafleet.common.store.identities)
    faces: list[FaceItem]
    #: the file's date and place, kept on its media row (a frames result gives none)
    facts: MediaFacts | None = None


@dataclass(frozen=True)
class Capability:
    """An AI capability: its service name, tasks, runner and settings (import paths).

    Its RQ queues are named after it (:attr:`queue`: ``<name>:high|normal|low``);
    ``former_queues`` are names it used before, which its workers still drain after an upgrade
    (listening order: priority first, then the current name before former ones).
    ``http_port`` is the default port of its HTTP server; ``env_prefix`` the prefix of its
    settings' environment variables (its settings class declares the same: tests/common checks).
    """

    name: str
    title: str
    tasks: tuple[TaskSpec, ...]
    runner: str
    settings: str
    http_port: int
    env_prefix: str
    former_queues: tuple[str, ...] = ()
    queries: tuple[QuerySpec, ...] = ()
    #: Routes of the service the gateway exposes as they are (an OpenAI-compatible API).
    http_api: HttpApi | None = None
    #: Routes the gateway adds that run one of the tasks on an upload and answer at its end.
    sync_routes: tuple[SyncRoute, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def validate_options(self, task: str, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` checked against the task's options schema, strictly (``true`` is not a
        number, ``"2"`` not an integer), None values dropped.

        Raises BadRequest (``invalid_option``) naming the first bad field.
        """
        from pydantic import ValidationError

        from mediafleet.common.errors import BadRequest

        try:
            model = self.task(task).options.model_validate(options or {}, strict=True)
        except ValidationError as exc:
            from mediafleet.common.errors import bounded_details

            errors = bounded_details(exc.errors(include_url=False, include_context=False))
            raise BadRequest(
                f"invalid {task} options: {errors[0]['loc']}: {errors[0]['msg']}",
                details=errors,
                code="invalid_option",
            ) from exc
        return model.model_dump(mode="json", exclude_none=True)

    @property
    def queue(self) -> str:
        """The family of RQ queues its workers listen on: the capability's name."""
        return self.name

    def query(self, name: str) -> QuerySpec:
        for spec in self.queries:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def task(self, name: str) -> TaskSpec:
        for spec in self.tasks:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def load_settings(self, **overrides: Any) -> Any:
        return import_object(self.settings)(**overrides)

    def build_runner(self, settings: Any | None = None) -> Runner:
        """Import the runner class (this is where ML libraries may load) and build it."""
        runner: Runner = import_object(self.runner)(
            settings if settings is not None else self.load_settings()
        )
        return runner


ProgressFn = Callable[[float, str], None]


class NotReady(BaseModel):
    """Why a task cannot run on a worker now (:meth:`Runner.task_ready`).

    ``code``: ``models_missing`` (its weights are not provisioned: ``message`` names the
    command that provisions them), ``engine_not_installed`` (its library is not in this
    image) or ``load_failed``. The message is for people: no exception class, no server path.
    """

    code: Literal["models_missing", "engine_not_installed", "load_failed"]
    message: str


class Runner(Protocol):
    """What a capability's runner offers the generic worker, HTTP app and CLI."""

    settings: Any

    def preload(self) -> None:
        """Load the engines the settings name (service start); raises EngineError."""

    def ready(self) -> str | None:
        """None when it can serve, else why not (shown by ``/readyz``)."""

    # Optional: ``task_ready(task) -> NotReady | None``, whether ``task`` can run with its
    # default options (EngineRunner: its engines are loaded; weights provisioned after the
    # start are picked up). Without it, every task follows ``ready()``.

    def models(self) -> dict[str, Any]:
        """What ``GET /v1/models`` returns."""

    def advertise(self, task: str) -> dict[str, Any]:
        """``{"default_options": {...}, "model_versions": {engine: version}}`` of loaded engines.

        Published by workers; job_manager's result cache uses it to tell a stored result
        of the current model from one of an older model.
        """

    def run(
        self,
        task: str,
        media: Path,
        options: dict[str, Any],
        inputs: dict[str, Any],
        progress: ProgressFn,
    ) -> BaseModel:
        """Run ``task`` on the media file; raises BadRequest/InvalidMedia (no retry) or others.

        Every executor calls it through :mod:`mediafleet.common.pipeline.run`: ``task`` is one
        of the contract's and ``options`` passed the task's options model (strict, ``None``
        dropped). A runner fills in its service's defaults and checks only what a schema
        cannot (a pair of options that do not go together, the languages of one engine); it
        does not validate them again.
        """

    # Optional: ``routers() -> list[fastapi.APIRouter]``, HTTP routes the service adds to its
    # app (those of the contract's ``http_api``); the generic HTTP app includes them.

    def query(self, name: str, payload: BaseModel) -> BaseModel:
        """Answer one of the contract's ``queries`` (validated input -> its output model).

        Only runners whose contract declares queries need it; raises BadRequest otherwise.
        """


def import_object(path: str) -> Any:
    """Resolve ``"package.module:attr"``. Raises ImportError / AttributeError."""
    module, _, attr = path.partition(":")
    if not attr:
        raise ImportError(f"{path!r} is not of the form 'module:attribute'")
    return getattr(importlib.import_module(module), attr)


def missing_streams(spec: TaskSpec, kind: str, streams: list[dict[str, Any]] | None) -> list[str]:
    """Stream types ``spec`` needs that audio/video media lacks (always [] for images)."""
    if kind == "image":
        return []
    have = {s.get("type") for s in streams or []}
    return [s for s in spec.streams if s not in have]
