"""pose_estimation settings (prefix ``POSE_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mediafleet.common.settings import ServiceSettings
from mediafleet.pose_estimation.contract import Runtime


class PoseSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="POSE_")

    #: Catalogue name of the PyTorch checkpoint; its ONNX export is ``<model>-onnx``.
    model: str = "yolo11n-pose"
    #: Runtime used when a request names none. PyTorch: with the same threads for both
    #: runtimes bench/pose measured it faster than the static 640x640 ONNX export at 1 thread
    #: (0.84x the time) and at 2 (0.79x) on 2 cores (README, 2026-12-06).
    default_runtime: Runtime = "pt"
    #: Runtimes loaded at start (``POSE_PRELOAD='["pt","onnx"]'``; unset: the default runtime);
    #: others load on first use.
    preload: list[Runtime] | None = None
    #: Network input size in pixels (the exported ONNX is fixed at this size).
    imgsz: int = Field(default=640, ge=32, le=1920)
    #: Images are decoded with their longer side at most this many pixels (then between half
    #: of it and it: mediafleet.common.media.load_rgb_fitted); the letterbox shrinks them to
    #: ``imgsz`` anyway. Results stay in the full image's pixels.
    max_side: int = Field(default=1280, ge=32)
    #: CUDA device for PyTorch when available (``cpu`` forces the CPU).
    device: str = "auto"
    #: PyTorch CPU threads (0: every core this process may use). ultralytics would set cores - 1.
    threads: int = Field(default=0, ge=0, le=256)
    #: ultralytics' writable settings directory (YOLO_CONFIG_DIR); default: a per-user temp dir.
    config_dir: Path | None = None
    http_port: int = 8111
