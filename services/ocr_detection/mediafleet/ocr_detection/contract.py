"""Contract of the OCR capability: the ``ocr`` task, its options and result, what it indexes.

Light by design (pydantic and ``mediafleet.common`` only): the gateway, job_manager and the
CLI import it; the engines (ONNX Runtime, PyTorch) load only in the runner.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mediafleet.common.capability import Capability, TaskSpec, TextSegment
from mediafleet.ocr_detection.languages import RAPIDOCR_LANGUAGES, TESSERACT_LANGUAGES, canonical

#: Language code: ISO 639-1 (``en``) or an engine's own code (``ch_sim``).
LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[a-z]{2,4})?$")]
EngineName = Literal["rapidocr", "easyocr", "tesseract"]
#: RapidOCR's models: ``pp-ocrv4`` inside its wheel, the others from the catalogue (models.toml).
RapidOcrModel = Literal["pp-ocrv4", "pp-ocrv5-mobile", "pp-ocrv6-small", "pp-ocrv6-tiny"]
#: Tesseract's page segmentation: ``document`` = automatic page layout (``--psm 3``), ``scene``
#: = sparse text in any order (``--psm 11``), for signs and photos.
Layout = Literal["document", "scene"]


class OcrOptions(BaseModel):
    """Options of the ``ocr`` task. Missing values take the OCR service's defaults."""

    model_config = ConfigDict(extra="forbid")

    engine: EngineName | None = None
    model: RapidOcrModel | None = Field(default=None, description="RapidOCR's model (engine rapidocr only)")
    languages: list[LanguageCode] | None = Field(default=None, min_length=1, max_length=8)
    layout: Layout | None = Field(default=None, description="page segmentation (engine tesseract only)")


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
    dropped_lines: int = Field(
        default=0,
        ge=0,
        description="lines read only in scripts of languages the job did not ask for, left out",
    )


def ocr_segments(result: OcrResult) -> list[TextSegment]:
    """One searchable segment per line, with its box."""
    return [
        TextSegment(text=line.text, ref=f"lines[{i}]", box=line.box, score=line.score)
        for i, line in enumerate(result.lines)
        if line.text.strip()
    ]


def engine_languages(engine: str, model: str | None = None) -> tuple[str, ...]:
    """ISO 639-1 codes ``engine`` (with ``model`` for rapidocr) reads with what the catalogue
    and the OCR image provision (:mod:`mediafleet.ocr_detection.languages`). easyocr reads
    more once their recognisers are installed: add them to the catalogue first (docs/models.md)."""
    if engine == "rapidocr":
        return RAPIDOCR_LANGUAGES[model or DEFAULT_MODEL]
    if engine == "tesseract":
        return TESSERACT_LANGUAGES
    return ("en",)


DEFAULT_ENGINE, DEFAULT_MODEL, DEFAULT_LANGUAGES = "rapidocr", "pp-ocrv4", ("en",)


def resolve_options(
    options: dict[str, Any], defaults: dict[str, Any], default_languages: list[str] | None = None
) -> dict[str, Any]:
    """``options`` (valid :class:`OcrOptions`) with defaults filled in: ``{"engine",
    "languages"}`` plus ``model`` for rapidocr and ``layout`` for tesseract. ``defaults`` (the
    service's, or those the workers advertise) give the engine, and the model when the engine
    is theirs. Languages are ISO 639-1 (``ch`` becomes ``zh``); a job that names none reads
    ``default_languages`` (``OCR_DEFAULT_LANGUAGES``) when set, else every language the
    RapidOCR model reads, else English (Tesseract, easyocr).

    Raises:
        ValidationFailed: ``invalid_option`` for a model or layout the engine does not take,
            ``unsupported_language`` for a language it cannot read (naming those that can).
    """
    from mediafleet.common.errors import ValidationFailed

    default_engine = defaults.get("engine") or DEFAULT_ENGINE
    engine = options.get("engine") or default_engine
    if options.get("model") and engine != "rapidocr":
        raise ValidationFailed(
            f"OCR engine {engine} has no model choice: model is for rapidocr", code="invalid_option"
        )
    if options.get("layout") and engine != "tesseract":
        raise ValidationFailed(
            f"OCR engine {engine} has no layout choice: layout is for tesseract", code="invalid_option"
        )
    model = None
    if engine == "rapidocr":
        model = (
            options.get("model")
            or (defaults.get("model") if engine == default_engine else None)
            or DEFAULT_MODEL
        )
    asked = options.get("languages") or default_languages
    if not asked:
        asked = engine_languages(engine, model) if engine == "rapidocr" else DEFAULT_LANGUAGES
    languages = list(dict.fromkeys(canonical(x) for x in asked))
    resolved: dict[str, Any] = {"engine": engine, "languages": languages}
    if model:
        resolved["model"] = model
    if engine == "tesseract":
        resolved["layout"] = options.get("layout") or "document"
    known = engine_languages(engine, model)
    bad = [lang for lang in languages if lang not in known]
    if bad:
        others = [
            f"rapidocr model {m}" for m, langs in RAPIDOCR_LANGUAGES.items() if set(languages) <= set(langs)
        ]
        others += [
            e for e in ("tesseract", "easyocr") if e != engine and set(languages) <= set(engine_languages(e))
        ]
        name = f"{engine} model {model}" if model else engine
        hint = f"; {', '.join(others)} can" if others else "; no installed engine can"
        raise ValidationFailed(
            f"OCR {name} cannot read {bad}: it reads {list(known)}{hint}",
            code="unsupported_language",
            details={"engine": engine, "model": model, "unsupported": bad, "can": others},
        )
    return resolved


def check_languages(options: dict[str, Any], defaults: dict[str, Any]) -> None:
    """The gateway's check at job creation (422): :func:`resolve_options` with the defaults the
    workers advertise (the contract's own before any has)."""
    resolve_options(options, defaults)


def ocr_summary(result: OcrResult) -> str:
    """``rapidocr pp-ocrv6-small 812 ms, 12 lines`` (``lines: 0`` said plainly when nothing was read)."""
    return f"{result.engine} {result.model} {result.elapsed_ms:.0f} ms, {len(result.lines)} lines"


CAPABILITY = Capability(
    name="ocr_detection",
    title="Text in images: RapidOCR (PP-OCRv4-v6 on ONNX Runtime), Tesseract and easyocr",
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
