"""The pose runner: one engine per runtime, loaded once, shared by the HTTP server, the RQ worker and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from mediafleet.common.capability import ProgressFn
from mediafleet.common.engine import EngineRunner
from mediafleet.common.media import FittedImage, load_rgb_fitted
from mediafleet.pose_estimation.contract import Person, PoseOptions, PoseResult
from mediafleet.pose_estimation.engines.ultralytics import UltralyticsPoseEngine
from mediafleet.pose_estimation.settings import PoseSettings

log = structlog.get_logger("mediafleet.pose")


class PoseRunner(EngineRunner[UltralyticsPoseEngine]):
    def __init__(self, settings: PoseSettings):
        self.settings = settings
        self.engines = {
            runtime: UltralyticsPoseEngine(
                runtime,
                settings.core.models_dir,
                model=settings.model,
                imgsz=settings.imgsz,
                device=settings.device,
                config_dir=settings.config_dir,
                threads=settings.threads,
            )
            for runtime in ("onnx", "pt")
        }

    def default_runtime(self) -> str:
        """``POSE_DEFAULT_RUNTIME``."""
        return self.settings.default_runtime

    def preload_names(self) -> list[str]:
        """``POSE_PRELOAD`` (default: the default runtime); a missing model leaves ``/readyz`` at
        503 naming the command (EngineRunner)."""
        return list(self.settings.preload) if self.settings.preload is not None else [self.default_runtime()]

    def task_engines(self, task: str) -> list[str]:
        return [self.default_runtime()]

    def models(self) -> dict[str, Any]:
        data = [{**engine.info(), "runtime": runtime} for runtime, engine in self.engines.items()]
        return {"default_runtime": self.default_runtime(), "data": data}

    def resolved_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """``options`` (valid ``PoseOptions``, checked by the pipeline) with the service's
        runtime when none is named."""
        opts = PoseOptions.model_construct(**(options or {}))
        return {**opts.model_dump(mode="json"), "runtime": opts.runtime or self.default_runtime()}

    def default_options(self, task: str) -> dict[str, Any]:
        return self.resolved_options({})

    def run(
        self, task: str, media: Path, options: dict[str, Any], inputs: dict[str, Any], progress: ProgressFn
    ) -> PoseResult:
        """The contract's entry (its only task, ``pose``) on the image at ``media``."""
        opts = self.resolved_options(options)
        image = load_rgb_fitted(media, self.settings.max_side, exif_transpose=True)
        result = in_full_pixels(
            self.engines[opts["runtime"]].predict(
                image.pixels, conf=opts["conf"], max_people=opts["max_people"]
            ),
            image,
        )
        log.info("pose_done", runtime=result.runtime, people=len(result.people), elapsed_ms=result.elapsed_ms)
        return result


def in_full_pixels(result: PoseResult, image: FittedImage) -> PoseResult:
    """``result`` measured on ``image.pixels`` in the full image's pixels (boxes, keypoint x
    and y times ``image.scale``; keypoint scores unchanged)."""
    if image.scale == 1:
        return result

    def person(p: Person) -> Person:
        x1, y1, x2, y2 = p.box
        box = [*image.to_full(x1, y1), *image.to_full(x2, y2)]
        keypoints = [[*(round(v, 2) for v in image.to_full(x, y)), c] for x, y, c in p.keypoints]
        return p.model_copy(update={"box": [round(v, 2) for v in box], "keypoints": keypoints})

    people = [person(p) for p in result.people]
    return result.model_copy(update={"people": people, "width": image.width, "height": image.height})
