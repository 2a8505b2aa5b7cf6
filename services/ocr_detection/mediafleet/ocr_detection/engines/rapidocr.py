"""RapidOCR: PaddleOCR's PP-OCRv4 det + mobile cls + PP-OCRv4 rec on ONNX Runtime.

The ONNX models ship inside the ``rapidocr_onnxruntime`` wheel, so this engine works
offline with no provisioning. Recognition is decoded with
:class:`~mediafleet.ocr_detection.decode.SpaceAwareCTCDecoder` so words keep their spaces.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mediafleet.ocr_detection.decode import SpaceAwareCTCDecoder
from mediafleet.ocr_detection.engines.base import OcrEngine, RawLine
from mediafleet.ocr_detection.settings import RapidOcrSettings

if TYPE_CHECKING:
    from rapidocr_onnxruntime import RapidOCR


class RapidOcrEngine(OcrEngine):
    name = "rapidocr"

    def __init__(self, settings: RapidOcrSettings):
        super().__init__()
        self.settings = settings
        self._ocr: RapidOCR | None = None
        self._version = ""

    @property
    def model(self) -> str:
        return "PP-OCRv4"

    @property
    def model_version(self) -> str:
        return self._version

    #: One Chinese+English recogniser; other scripts come back as look-alike glyphs.
    languages = ("en", "zh", "ch")

    def _load(self) -> None:
        import rapidocr_onnxruntime
        from rapidocr_onnxruntime import RapidOCR

        kwargs: dict[str, str | bool] = {}
        if self.settings.det_model_path:
            kwargs["det_model_path"] = self.settings.det_model_path
        if self.settings.rec_model_path:
            kwargs["rec_model_path"] = self.settings.rec_model_path
        if self.settings.use_cuda:
            kwargs.update(det_use_cuda=True, cls_use_cuda=True, rec_use_cuda=True)
        ocr = RapidOCR(**kwargs)
        rec = ocr.text_rec
        # The recogniser's decoder is a plain attribute of RapidOCR's TextRecognizer;
        # swap in the space-aware one (same call signature, same character table).
        rec.postprocess_op = SpaceAwareCTCDecoder(rec.postprocess_op.character, self.settings.space_threshold)
        rec_path = Path(
            self.settings.rec_model_path
            or Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_rec_infer.onnx"
        )
        digest = hashlib.sha256(rec_path.read_bytes()).hexdigest()[:12]
        self._version = f"rapidocr_onnxruntime-{_dist_version()}+rec-{digest}"
        self._ocr = ocr

    def _recognise(self, image: np.ndarray, languages: list[str]) -> list[RawLine]:
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # RapidOCR takes arrays as BGR
        if self._ocr is None:
            raise RuntimeError("RapidOCR is not loaded")
        result, _ = self._ocr(bgr)
        if not result:
            return []
        return [(box, text, float(score)) for box, text, score in result]


def _dist_version() -> str:
    from importlib.metadata import version

    return version("rapidocr_onnxruntime")
