"""Task names and their options, validated the same way by the gateway, the CLI and the workers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: Language code: ISO 639-1 (``en``) or an engine's own code (``ch_sim``).
LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(_[a-z]{2,4})?$")]


class OcrOptions(BaseModel):
    """Options of the ``ocr`` task. Missing values take the OCR service's defaults."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["rapidocr", "easyocr"] | None = None
    languages: list[LanguageCode] | None = Field(default=None, min_length=1, max_length=8)


TASK_OPTIONS: dict[str, type[BaseModel]] = {"ocr": OcrOptions}
TASK_NAMES = tuple(TASK_OPTIONS)
