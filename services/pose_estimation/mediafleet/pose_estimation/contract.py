"""Contract of the pose_estimation capability (light: pydantic and mediafleet.common only).

Task ``pose``: people as xyxy boxes with the 17 COCO keypoints, from a YOLO pose model
(ultralytics) run on PyTorch (``.pt``) or on ONNX Runtime (the ``.onnx`` that ultralytics'
own exporter wrote; ``mediafleet models pull yolo11n-pose-onnx``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mediafleet.common.capability import Capability, TaskSpec

#: The COCO-17 keypoint order (COCO 2017 person_keypoints annotations, ``categories[0].keypoints``).
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

#: The COCO skeleton as pairs of indices into COCO_KEYPOINTS (0-based), for drawing.
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

Runtime = Literal["pt", "onnx"]


class PoseOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``pt`` (PyTorch) or ``onnx`` (ONNX Runtime); default from ``POSE_DEFAULT_RUNTIME``.
    runtime: Runtime | None = None
    conf: float = Field(default=0.25, ge=0.0, le=1.0, description="minimum person score, 0-1")
    max_people: int = Field(default=100, ge=1, le=300, description="at most this many people, best first")


class Person(BaseModel):
    box: list[float] = Field(min_length=4, max_length=4, description="xyxy in pixels of the displayed image")
    score: float = Field(ge=0.0, le=1.0)
    keypoints: list[list[float]] = Field(
        min_length=17,
        max_length=17,
        description="17 x [x, y, score] in COCO_KEYPOINTS order; x, y in pixels, score (visibility) 0-1",
    )


class PoseResult(BaseModel):
    people: list[Person]
    keypoint_names: list[str] = Field(default_factory=lambda: list(COCO_KEYPOINTS))
    engine: str = "ultralytics"
    runtime: Runtime
    model: str
    model_version: str = Field(description="first 12 hex digits of the weights file's SHA-256")
    width: int = Field(description="pixels, after EXIF orientation")
    height: int
    elapsed_ms: float


def pose_summary(result: PoseResult) -> str:
    n = len(result.people)
    scores = ", ".join(f"{p.score:.2f}" for p in result.people[:5])
    return f"{n} {'person' if n == 1 else 'people'}" + (f" (scores {scores})" if n else "")


CAPABILITY = Capability(
    name="pose_estimation",
    title="pose_estimation: people and their COCO-17 keypoints (YOLO pose, ultralytics)",
    http_port=8111,
    env_prefix="POSE_",
    former_queues=("pose",),  # before 2026-12: drained after an upgrade
    runner="mediafleet.pose_estimation.runner:PoseRunner",
    settings="mediafleet.pose_estimation.settings:PoseSettings",
    tasks=(
        TaskSpec(
            name="pose",
            options=PoseOptions,
            result=PoseResult,
            media_kinds=("image",),
            summary=pose_summary,
            default=True,  # images and videos (sampled frames)
            description="people (xyxy boxes) with 17 COCO keypoints each",
        ),
    ),
)
