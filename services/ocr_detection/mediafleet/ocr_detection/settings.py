"""OCR service settings (prefix ``OCR_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from mediafleet.common.settings import ServiceSettings
from mediafleet.ocr_detection.contract import EngineName, RapidOcrModel


class RapidOcrSettings(BaseModel):
    #: Model a job without ``model`` gets (``OCR_RAPIDOCR__MODEL``). ``auto``: the contract's
    #: DEFAULT_MODEL (pp-ocrv4, in RapidOCR's wheel: README, why not v6) when its files are in the
    #: models directory (``make models`` pulls it), else pp-ocrv4 from RapidOCR's wheel, so OCR
    #: works before any pull; each result names the model that read it.
    model: RapidOcrModel | Literal["auto"] = "auto"
    #: Your own ONNX files for that model (det, rec, and the rec model's character table);
    #: empty: the catalogue's files under <models_dir>/ppocr/<model>/ (pp-ocrv4: the wheel's).
    det_model_path: str | None = None
    rec_model_path: str | None = None
    rec_keys_path: str | None = None
    use_cuda: bool = False
    #: Space-aware CTC decoding: insert a space between two characters when the space
    #: class reaches this probability in the blank frames between them (0 disables).
    space_threshold: float = Field(default=0.02, ge=0.0, le=1.0)


class EasyOcrSettings(BaseModel):
    #: ``standard`` picks easyocr's own recogniser for the languages; any other name is a
    #: custom recogniser described by ``<name>.yaml`` + ``<name>.py`` in ``user_network/``.
    recog_network: str = "standard"
    gpu: bool = False
    quantize: bool = True


class TesseractSettings(BaseModel):
    #: The tesseract binary (default: ``tesseract`` on PATH).
    cmd: str | None = None
    #: One image's limit in seconds: a job over it fails with ``ocr_timeout`` (no retry).
    timeout_s: float = Field(default=120.0, gt=0)
    #: Tesseract's OpenMP threads (OMP_THREAD_LIMIT of its process). 1: with more, it slowed
    #: from 0.4 s to over 120 s per page beside another busy worker (bench/contention).
    threads: int = Field(default=1, ge=1, le=64)


class OcrSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OCR_")

    #: Engine used when a request names none. Chosen from bench/ocr (see README).
    default_engine: EngineName = "rapidocr"
    #: Engines loaded at start (a comma-separated env value works: OCR_PRELOAD='["rapidocr"]').
    preload: list[EngineName] = Field(default=["rapidocr"])
    #: Languages a job that names none reads; unset: every language of the RapidOCR model
    #: (pp-ocrv6-small: 12, so a sign is read in whatever script it has), English for
    #: Tesseract and easyocr (contract.resolve_options).
    default_languages: list[str] | None = None
    rapidocr: RapidOcrSettings = Field(default_factory=RapidOcrSettings)
    easyocr: EasyOcrSettings = Field(default_factory=EasyOcrSettings)
    tesseract: TesseractSettings = Field(default_factory=TesseractSettings)
    #: Images are decoded with their longer side at most this many pixels (then between half
    #: of it and it: mediafleet.common.media.load_rgb_fitted). Recognition needs the text's
    #: own resolution: a 6981 x 6981 page of english.png tiles halved to 3491 gave 162 of
    #: its ~1100 lines, so the default leaves every image within the pixel cap whole up to
    #: 8192 pixels wide (a 16000 x 3000 panorama is halved). Boxes stay in full-image pixels.
    max_side: int = Field(default=8192, ge=32)
    http_port: int = 8101
