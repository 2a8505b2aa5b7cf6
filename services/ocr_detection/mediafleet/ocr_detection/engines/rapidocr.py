"""RapidOCR: PaddleOCR's PP-OCR text detector + recogniser on ONNX Runtime, one model per job.

Models (contract ``RapidOcrModel``): ``pp-ocrv4`` ships inside the ``rapidocr_onnxruntime``
wheel (no provisioning); ``pp-ocrv5-mobile``, ``pp-ocrv6-small`` and ``pp-ocrv6-tiny`` are
catalogued (models.toml: ``det.onnx``, ``rec.onnx`` and the recogniser's character table
``dict.txt`` under ``<models_dir>/ppocr/<name>/``) and loaded through RapidOCR's own
``det_model_path`` / ``rec_model_path`` / ``rec_keys_path``. The text-line orientation
classifier is always the wheel's (PP-OCR mobile v2.0 cls). The default model
(``OCR_RAPIDOCR__MODEL``, ``auto``: see :meth:`RapidOcrEngine.default_model`) loads at start;
another loads on the first job that names it and stays loaded.

Recognition is decoded with :class:`~mediafleet.ocr_detection.decode.SpaceAwareCTCDecoder`
so words keep their spaces.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mediafleet.common.errors import EngineError
from mediafleet.ocr_detection.contract import DEFAULT_MODEL
from mediafleet.ocr_detection.decode import SpaceAwareCTCDecoder
from mediafleet.ocr_detection.engines.base import OcrEngine, RawLine
from mediafleet.ocr_detection.settings import RapidOcrSettings

if TYPE_CHECKING:
    from rapidocr_onnxruntime import RapidOCR

#: The model inside the wheel.
WHEEL_MODEL = "pp-ocrv4"


class RapidOcrEngine(OcrEngine):
    name = "rapidocr"

    def __init__(self, settings: RapidOcrSettings, models_dir: Path):
        super().__init__()
        self.settings = settings
        self.models_dir = Path(models_dir)
        self._ocr: dict[str, RapidOCR] = {}
        self._versions: dict[str, str] = {}
        self._default = ""

    def default_model(self) -> str:
        """The model a job without ``model`` gets: the setting, or for ``auto`` the contract's
        DEFAULT_MODEL when its files are installed, else the wheel's pp-ocrv4 (decided at load;
        before it, from the files there now)."""
        if self.settings.model != "auto":
            return self.settings.model
        if self._default:
            return self._default
        installed = all(p.is_file() for p in self.files(DEFAULT_MODEL).values())
        return DEFAULT_MODEL if installed else WHEEL_MODEL

    @property
    def model(self) -> str:
        return self.default_model()

    @property
    def model_version(self) -> str:
        return self._versions.get(self.default_model(), "")

    def variant(self, options: dict[str, Any]) -> tuple[str, str]:
        model = options.get("model") or self.default_model()
        return model, self._versions.get(model, "")

    def files(self, model: str) -> dict[str, Path]:
        """``det_model_path``, ``rec_model_path`` (and ``rec_keys_path``) of ``model``: the
        settings' own paths for the default model when given, else the catalogue's files."""
        paths: dict[str, Path] = {}
        if model != WHEEL_MODEL:
            base = self.models_dir / "ppocr" / model
            paths = {
                "det_model_path": base / "det.onnx",
                "rec_model_path": base / "rec.onnx",
                "rec_keys_path": base / "dict.txt",
            }
        if model == self.settings.model or (self.settings.model == "auto" and model == DEFAULT_MODEL):
            for key in ("det_model_path", "rec_model_path", "rec_keys_path"):
                value = getattr(self.settings, key)
                if value:
                    paths[key] = Path(value)
        return paths

    def _load(self) -> None:
        model = self.default_model()
        self._load_model(model)
        self._default = model

    def prepare(self, options: dict[str, Any]) -> None:
        model = options.get("model") or self.default_model()
        if model not in self._ocr:
            with self._load_lock:
                if model not in self._ocr:
                    self._load_model(model)

    def _load_model(self, model: str) -> None:
        import rapidocr_onnxruntime
        from rapidocr_onnxruntime import RapidOCR

        paths = self.files(model)
        missing = [p.name for p in paths.values() if not p.is_file()]
        if missing:
            from mediafleet.common.catalogue import catalogue, pull_hint

            entry = catalogue().get(model)
            hint = pull_hint(entry) if entry else "see docs/models.md"
            raise EngineError(  # the message reaches users: no server path
                f"the OCR model {model} is not installed ({', '.join(missing)} missing); run `{hint}`",
                code="model_not_available",
            )
        from mediafleet.common.resources import cpu_limit

        kwargs: dict[str, str | bool | int] = {key: str(path) for key, path in paths.items()}
        kwargs["intra_op_num_threads"] = cpu_limit()  # ONNX Runtime's default: every host core
        if self.settings.use_cuda:
            kwargs.update(det_use_cuda=True, cls_use_cuda=True, rec_use_cuda=True)
        ocr = RapidOCR(**kwargs)
        rec = ocr.text_rec
        # The recogniser's decoder is a plain attribute of RapidOCR's TextRecognizer;
        # swap in the space-aware one (same call signature, same character table).
        rec.postprocess_op = SpaceAwareCTCDecoder(rec.postprocess_op.character, self.settings.space_threshold)
        rec_path = paths.get(
            "rec_model_path",
            Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_rec_infer.onnx",
        )
        digest = hashlib.sha256(rec_path.read_bytes()).hexdigest()[:12]
        self._versions[model] = f"rapidocr_onnxruntime-{_dist_version()}+rec-{digest}"
        self._ocr[model] = ocr

    def charset(self, model: str | None = None) -> set[str]:
        """The loaded recogniser's character table (what it can emit), for ``model`` or the default."""
        ocr = self._ocr[model or self.default_model()]
        return set(ocr.text_rec.postprocess_op.character)

    def _recognise(self, image: np.ndarray, options: dict[str, Any]) -> list[RawLine]:
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # RapidOCR takes arrays as BGR
        ocr = self._ocr.get(options.get("model") or self.default_model())
        if ocr is None:
            raise RuntimeError("RapidOCR model is not loaded")
        result, _ = ocr(bgr)
        if not result:
            return []
        return [(box, text, float(score)) for box, text, score in result]


def _dist_version() -> str:
    from importlib.metadata import version

    return version("rapidocr_onnxruntime")
