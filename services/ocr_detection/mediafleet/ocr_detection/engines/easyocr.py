"""easyocr: CRAFT text detector + CRNN recogniser on PyTorch, loaded offline.

Weights are provisioned ahead into ``<models_dir>/easyocr`` (see docs/models.md):
``craft_mlt_25k.pth`` for detection and easyocr's recogniser for the languages
(``english_g2.pth`` for ``en``, ...), or a custom recogniser
(``user_network/<name>.yaml`` + ``.py``, ``<name>.pth``). ``download_enabled`` is
always False: a missing file is an error, never a download.

easyocr's ``Reader`` checks the detector file against its own MD5 and refuses any
other weights when downloads are off, so the detector is loaded with easyocr's own
``easyocr.detection.get_detector`` (the function ``Reader`` calls) and attached to the
reader; ``model_version`` says whether the file is the official release.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mediafleet.common.errors import BadRequest, EngineError
from mediafleet.ocr_detection.engines.base import OcrEngine, RawLine
from mediafleet.ocr_detection.settings import EasyOcrSettings

if TYPE_CHECKING:
    import easyocr

#: ISO 639-1 codes we accept, mapped to easyocr's language codes where they differ.
ISO_TO_EASYOCR = {"zh": "ch_sim"}


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pull_hint() -> str:
    from mediafleet.common.catalogue import models_for, pull_hint

    return "; ".join(pull_hint(m) for m in models_for("ocr_detection", "easyocr")) or "see docs/models.md"


class EasyOcrEngine(OcrEngine):
    name = "easyocr"

    def __init__(self, settings: EasyOcrSettings, model_dir: Path):
        super().__init__()
        self.settings = settings
        self.model_dir = Path(model_dir)
        self._readers: dict[tuple[str, ...], easyocr.Reader] = {}
        self._detector = None
        self._detector_version = ""
        self._device = "cpu"

    @property
    def model(self) -> str:
        return f"CRAFT+{self.settings.recog_network}"

    @property
    def model_version(self) -> str:
        return self._detector_version

    def _load(self) -> None:
        import torch
        from easyocr.config import detection_models
        from easyocr.detection import get_detector

        self._device = "cuda" if self.settings.gpu and torch.cuda.is_available() else "cpu"
        path = self.model_dir / detection_models["craft"]["filename"]
        if not path.is_file():
            raise EngineError(  # the message reaches users: no server path
                f"the model easyocr-en is not installed (easyocr/{path.name} missing); run `{_pull_hint()}`",
                code="model_not_available",
            )
        official = _md5(path) == detection_models["craft"]["md5sum"]
        self._detector = get_detector(str(path), device=self._device, quantize=self.settings.quantize)
        self._detector_version = "craft_mlt_25k" if official else f"craft-custom-{_md5(path)[:12]}"

    def reader(self, languages: list[str]) -> easyocr.Reader:
        """The easyocr Reader for ``languages`` (cached: each language set loads once)."""
        key = tuple(sorted(ISO_TO_EASYOCR.get(lang, lang) for lang in languages))
        if key not in self._readers:
            import easyocr
            from easyocr.detection import get_textbox

            try:
                reader = easyocr.Reader(
                    list(key),
                    gpu=self._device,
                    model_storage_directory=str(self.model_dir),
                    user_network_directory=str(self.model_dir / "user_network"),
                    recog_network=self.settings.recog_network,
                    download_enabled=False,
                    detector=False,
                    verbose=False,
                    quantize=self.settings.quantize,
                )
            except ValueError as exc:  # easyocr's "X is only compatible with English" and unknown codes
                raise BadRequest(
                    f"easyocr cannot read {list(key)}: {exc}", code="unsupported_language"
                ) from exc
            except FileNotFoundError as exc:
                raise EngineError(
                    f"the easyocr recogniser for {list(key)} is not installed; English: run "
                    f"`{_pull_hint()}`, other languages: docs/models.md",
                    code="model_not_available",
                ) from exc
            # What Reader.setDetector() would do, without its MD5 gate (see module docstring).
            reader.detect_network = "craft"
            reader.get_textbox = get_textbox
            reader.detector = self._detector
            self._readers[key] = reader
        return self._readers[key]

    def _recognise(self, image: np.ndarray, options: dict[str, Any]) -> list[RawLine]:
        reader = self.reader(options["languages"])
        results = reader.readtext(image, detail=1, paragraph=False)
        return [(box, text, float(score)) for box, text, score in results]
