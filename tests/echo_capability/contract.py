"""Contract of the test-only ``echo`` capability (registered through MEDIAFLEET_EXTRA_CAPABILITIES)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mediafleet.common.capability import MEDIA_REF, Capability, SyncRoute, TaskSpec, TextSegment, VectorItem


class EchoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, max_length=200, description="text to return and index")
    sleep_s: float = Field(default=0.0, ge=0, le=30)
    reject: bool = Field(default=False, description="fail with a 4xx error (no retry)")
    crash: bool = Field(default=False, description="raise (retried)")
    embed: bool = Field(
        default=False, description="also return the media's byte histogram as a whole-media vector"
    )


class EchoResult(BaseModel):
    engine: str
    model: str
    model_version: str
    media_sha256: str
    size_bytes: int
    text: str
    elapsed_ms: float
    #: ``embed``: counts of each byte's high nibble (16 bins), L2-normalised
    histogram: list[float] | None = None


class UpperOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpperResult(BaseModel):
    engine: str
    model: str
    model_version: str
    text: str = Field(description="the echo task's text, upper-cased")
    elapsed_ms: float


def _segments(result: EchoResult | UpperResult) -> list[TextSegment]:
    return [TextSegment(text=result.text, ref="text")] if result.text else []


class EchoForm(BaseModel):
    """The form of ``POST /v1/echo/sync`` (a SyncRoute: the generic machinery's test)."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, max_length=200)
    tags: list[str] = Field(default=[], max_length=4, description="sent as tags[]: echoed back")


def _render(result: EchoResult, form: EchoForm) -> tuple[dict[str, object], str]:
    return {"text": result.text, "size_bytes": result.size_bytes, "tags": form.tags}, "application/json"


def _vectors(result: EchoResult | UpperResult) -> list[VectorItem]:
    histogram = getattr(result, "histogram", None)
    return [VectorItem(collection="echo-bytes", ref=MEDIA_REF, vector=histogram)] if histogram else []


CAPABILITY = Capability(
    name="echo",
    title="Test-only: returns what it is given",
    http_port=8199,
    env_prefix="ECHO_",
    runner="tests.echo_capability.runner:EchoRunner",
    settings="tests.echo_capability.runner:EchoSettings",
    sync_routes=(
        SyncRoute(
            path="/v1/echo/sync",
            task="echo",
            form=EchoForm,
            options=lambda form: {"text": form.text} if form.text else {},
            render=_render,
            summary="echo a file's size and a text once the job ends (test-only)",
            error_style="envelope",
        ),
    ),
    tasks=(
        TaskSpec(
            name="echo",
            options=EchoOptions,
            result=EchoResult,
            segments=_segments,
            vectors=_vectors,
            summary=lambda r: f"{r.size_bytes} bytes, text {r.text!r}",
        ),
        TaskSpec(
            name="echo_upper",
            options=UpperOptions,
            result=UpperResult,
            depends_on=("echo",),
            segments=_segments,
            summary=lambda r: r.text,
        ),
    ),
)
