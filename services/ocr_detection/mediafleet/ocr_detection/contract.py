"""Contract of the OCR capability: the ``ocr`` task, its options and result, what it indexes.

Light by design (pydantic and ``mediafleet.common`` only): the gateway, job_manager and the
CLI import it; the engines (ONNX Runtime, PyTorch) load only in the runner.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mediafleet.common.capability import Capability, TaskSpec, TextSegment

#: Language code: ISO 639-1 (``en``) or an engine's own code (``ch_sim``).
LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[a-z]{2,4})?$")]
EngineName = Literal["rapidocr", "easyocr"]


class OcrOptions(BaseModel):
    """Options of the ``ocr`` task. Missing values take the OCR service's defaults."""

    model_config = ConfigDict(extra="forbid")

    engine: EngineName | None = None
    languages: list[LanguageCode] | None = Field(default=None, min_length=1, max_length=8)


class OcrLine(BaseModel):
    text: str
    box: list[float] = Field(
        description="xyxy in source pixels: [x1, y1, x2, y2]", min_length=4, max_length=4
    )
    polygon: list[list[float]] = Field(description="detector polygon, [[x, y], ...] in source pixels")
    score: float = Field(ge=0.0, le=1.0, description="recognition confidence")


class OcrResult(BaseModel):
    """One image's OCR: lines in reading order; ``text`` is the lines joined by newlines."""

    engine: str
    model: str
    model_version: str
    languages: list[str]
    text: str
    lines: list[OcrLine]
    elapsed_ms: float


def ocr_segments(result: OcrResult) -> list[TextSegment]:
    """One searchable segment per line, with its box."""
    return [
        TextSegment(text=line.text, ref=f"lines[{i}]", box=line.box, score=line.score)
        for i, line in enumerate(result.lines)
        if line.text.strip()
    ]


#: Languages each engine reads with the weights the catalogue provisions (ISO 639-1; ``ch`` is
#: RapidOCR's own code for Chinese). easyocr reads more once their recognisers are installed:
#: add them to the catalogue first (docs/models.md).
ENGINE_LANGUAGES: dict[str, tuple[str, ...]] = {"rapidocr": ("en", "zh", "ch"), "easyocr": ("en",)}
DEFAULT_ENGINE, DEFAULT_LANGUAGES = "rapidocr", ("en",)


def check_languages(options: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Refuse (422 ``unsupported_language``) languages the engine that would run cannot read:
    the one asked for, else the default the workers advertise (``rapidocr`` before any has)."""
    from mediafleet.common.errors import ValidationFailed

    engine = options.get("engine") or defaults.get("engine") or DEFAULT_ENGINE
    languages = options.get("languages") or defaults.get("languages") or list(DEFAULT_LANGUAGES)
    known = ENGINE_LANGUAGES.get(engine)
    bad = [lang for lang in languages if known is not None and lang not in known]
    if bad:
        others = [e for e, langs in ENGINE_LANGUAGES.items() if e != engine and set(bad) <= set(langs)]
        hint = f"; {', '.join(others)} can (options engine)" if others else "; no installed engine can"
        raise ValidationFailed(
            f"OCR engine {engine} cannot read {bad}: it reads {list(known or ())}{hint}",
            code="unsupported_language",
            details={"engine": engine, "unsupported": bad, "engines": ENGINE_LANGUAGES},
        )


def ocr_summary(result: OcrResult) -> str:
    return f"{result.engine} {result.elapsed_ms:.0f} ms, {len(result.lines)} lines"


CAPABILITY = Capability(
    name="ocr_detection",
    title="Text in images: RapidOCR (PP-OCR on ONNX Runtime) and easyocr",
    http_port=8101,
    env_prefix="OCR_",
    former_queues=("ocr",),  # before 2026-12: drained after an upgrade
    runner="mediafleet.ocr_detection.runner:OcrRunner",
    settings="mediafleet.ocr_detection.settings:OcrSettings",
    tasks=(
        TaskSpec(
            name="ocr",
            description="lines of text with boxes, in reading order",
            options=OcrOptions,
            result=OcrResult,
            media_kinds=("image",),
            segments=ocr_segments,
            summary=ocr_summary,
            default=("image",),
            check=check_languages,
        ),
    ),
)
