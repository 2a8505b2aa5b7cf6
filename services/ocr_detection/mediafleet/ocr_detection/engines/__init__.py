"""OCR engines, one module per library, all returning :class:`~mediafleet.ocr_detection.contract.OcrResult`.

The library imports (onnxruntime, torch, pytesseract) happen inside ``load()``, so importing
this package is cheap and the CLI installs only the engine it runs.
"""

from __future__ import annotations

from mediafleet.common.errors import BadRequest
from mediafleet.ocr_detection.engines.base import OcrEngine
from mediafleet.ocr_detection.engines.easyocr import EasyOcrEngine
from mediafleet.ocr_detection.engines.rapidocr import RapidOcrEngine
from mediafleet.ocr_detection.engines.tesseract import TesseractEngine
from mediafleet.ocr_detection.settings import OcrSettings

ENGINES: dict[str, type[OcrEngine]] = {
    "rapidocr": RapidOcrEngine,
    "tesseract": TesseractEngine,
    "easyocr": EasyOcrEngine,
}
ENGINE_NAMES = tuple(ENGINES)


def engine_class(name: str) -> type[OcrEngine]:
    try:
        return ENGINES[name]
    except KeyError:
        raise BadRequest(
            f"unknown OCR engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}", code="unknown_engine"
        ) from None


def create_engine(name: str, settings: OcrSettings) -> OcrEngine:
    """Build (not load) the engine called ``name``. Raises BadRequest for an unknown name."""
    cls = engine_class(name)
    if cls is RapidOcrEngine:
        return RapidOcrEngine(settings.rapidocr, settings.core.models_dir)
    if cls is TesseractEngine:
        return TesseractEngine(settings.tesseract)
    return EasyOcrEngine(settings.easyocr, settings.core.models_dir / "easyocr")
