"""face_reid settings (prefix ``FACE_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from mediafleet.common.settings import ServiceSettings
from mediafleet.face_reid.contract import MAX_FACES, Detector, Embedder

#: Detector score cut-offs: MTCNN 0.9 (three false positives at 0.81-0.87 on the corpus);
#: dlib's margin 0 (its own threshold) is score 0.5; SCRFD 0.5 as insightface's default.
MIN_SCORE = {"mtcnn": 0.9, "dlib_hog": 0.5, "dlib_cnn": 0.5, "scrfd": 0.5}


class FaceReidSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FACE_", env_nested_delimiter="__", extra="ignore")

    #: Detector and embedder when a request names none. MTCNN finds every face of the
    #: corpus' counts (t1 6, zidane 2) where dlib's HOG misses one of zidane's (README).
    detector: Detector = "mtcnn"
    embedder: Embedder = "dlib"
    #: Detector score cut-offs (MIN_SCORE).
    min_score: dict[str, float] = Field(default_factory=lambda: dict(MIN_SCORE))
    #: Smallest face side kept (pixels of the source image).
    min_size: int = Field(default=20, ge=1)
    #: Largest faces kept per image; the rest are counted in ``truncated``.
    max_faces: int = Field(default=100, ge=1, le=MAX_FACES)
    #: Detection runs on a copy whose longest side is at most this (huge images); boxes are
    #: scaled back and embeddings are taken from the full image.
    detect_max_side: int = Field(default=1600, ge=160)
    #: Images are decoded with their longer side at most this many pixels (then between half
    #: of it and it: mediafleet.common.media.load_rgb_fitted), at least ``detect_max_side``
    #: after that; faces are cut for embedding from this image. Boxes and landmarks stay in
    #: the full image's pixels, ``min_size`` too.
    max_side: int = Field(default=3200, ge=160)
    #: dlib HOG: times the image is upsampled (finds faces down to ~40 px at 1).
    hog_upsample: int = Field(default=1, ge=0, le=2)
    #: insightface model pack under ``<models>/insightface/`` (``buffalo_l``: SCRFD-10GF + ArcFace R50).
    insightface_pack: str = "buffalo_l"
    scrfd_file: str = "det_10g.onnx"
    arcface_file: str = "w600k_r50.onnx"
    #: Engines loaded at start.
    preload: list[Literal["mtcnn", "dlib", "dlib_cnn", "insightface"]] = Field(default=["mtcnn", "dlib"])
    device: str = "cpu"
    http_port: int = 8113

    @field_validator("min_score", mode="after")
    @classmethod
    def _complete(cls, value: dict[str, float]) -> dict[str, float]:
        """``FACE_MIN_SCORE='{"mtcnn": 0.95}'`` overrides one detector, the others keep theirs."""
        return {**MIN_SCORE, **value}

    def insightface_dir(self) -> Path:
        return self.core.models_dir / "insightface" / self.insightface_pack
