"""clip_nsfw settings (prefix ``CLIP_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from mediafleet.common.settings import ServiceSettings


class ClipNsfwSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CLIP_", env_nested_delimiter="__", extra="ignore")

    #: open_clip architecture and pretrained tag (README: how to fetch the weights).
    model: str = "ViT-B-32"
    pretrained: str = "laion2b_s34b_b79k"
    #: The open_clip checkpoint; default ``<models>/clip/<model>-<pretrained>.bin``.
    weights: Path | None = None
    #: A JSON model config for an architecture open_clip does not know (tests: a tiny model).
    arch_config: Path | None = None
    #: NSFW engine when a request names none, and thresholds per engine.
    nsfw_engine: Literal["nudenet", "clip"] = "nudenet"
    nudenet_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    #: Channel order NudeNet's model is fed: ``rgb``, the order it was trained in (ultralytics
    #: YOLOv8), or ``bgr``, what the nudenet package feeds, for detections identical to
    #: nudenet 3.4.2's (README: the measured difference).
    nudenet_channel_order: Literal["rgb", "bgr"] = "rgb"
    clip_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    #: Engines loaded at start.
    preload: list[Literal["open_clip", "nudenet"]] = Field(default=["open_clip", "nudenet"])
    device: str = "cpu"
    #: Images are decoded with their longer side at most this many pixels (then between half
    #: of it and it: mediafleet.common.media.load_rgb_fitted): CLIP sees 224 x 224 and
    #: NudeNet 320 x 320. NudeNet's boxes stay in the full image's pixels.
    max_side: int = Field(default=1280, ge=32)
    http_port: int = 8112

    @field_validator("weights", "arch_config", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``CLIP_WEIGHTS=`` (compose passes an unset variable as empty) means the default."""
        return None if value == "" else value

    def weights_path(self) -> Path:
        return self.weights or self.core.models_dir / "clip" / f"{self.model}-{self.pretrained}.bin"
