"""NudeNet 3.4 (320n) on ONNX Runtime, re-implemented from nudenet/nudenet.py without OpenCV.

Pre-processing as ``nudenet._read_image``: pad the image at the right and bottom to a
square, resize to 320 x 320 (bilinear, rounded to 8-bit levels as OpenCV's uint8 resize
does), scale to [0, 1], NCHW float32, channels in **RGB** order by default
(``CLIP_NUDENET_CHANNEL_ORDER``). nudenet 3.4.2 feeds BGR: it calls
``cv2.cvtColor(bgr, COLOR_RGBA2BGR)`` on a 3-channel image, which swaps R and B, then
``blobFromImage(swapRB=True)`` swaps back. The model is an ultralytics YOLOv8, trained on RGB
(ultralytics converts its BGR reads to RGB), and on the shared corpus RGB gives the labels a
person would where the two differ (services/clip_nsfw/README.md); ``bgr`` reproduces
nudenet's own detections (classes identical, boxes within 2 px, scores within 0.01 on every
image of the corpus: tests/test_nudenet_real.py). The model
is a YOLOv8 detector: output (1, 4 + 18, 2100), rows of (cx, cy, w, h) in the 320 px
input and 18 class scores. Post-processing as ``nudenet._postprocess``: keep rows whose
best class score is >= 0.2, scale boxes back by the padded size / 320, non-maximum
suppression at IoU 0.45 for scores >= 0.25. The NSFW score is the highest score among
the exposed-body-part classes (contract ``NSFW_CLASSES``), 0 when none is detected.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mediafleet.clip_nsfw.contract import NSFW_CLASSES, NUDENET_CLASSES, Detection
from mediafleet.common.catalogue import require_files
from mediafleet.common.engine import Engine
from mediafleet.common.provision import sha256_of

if TYPE_CHECKING:
    import onnxruntime as ort

INPUT = 320


def resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) uint8 -> (size, size, C) float32 holding whole values 0-255, by OpenCV's
    INTER_LINEAR rule (half-pixel centres, no antialiasing, rounded to 8-bit levels), as
    ``cv2.dnn.blobFromImage`` resizes for nudenet; within one level of OpenCV's fixed-point result."""
    h, w = image.shape[:2]

    def axis(n_src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = (np.arange(size) + 0.5) * (n_src / size) - 0.5
        src = np.clip(src, 0, n_src - 1)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n_src - 1)
        return lo, hi, (src - lo).astype(np.float32)

    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    img = image.astype(np.float32)
    top = img[y0][:, x0] * (1 - fx)[None, :, None] + img[y0][:, x1] * fx[None, :, None]
    bottom = img[y1][:, x0] * (1 - fx)[None, :, None] + img[y1][:, x1] * fx[None, :, None]
    out: np.ndarray = np.floor(top * (1 - fy)[:, None, None] + bottom * fy[:, None, None] + 0.5)
    return out  # OpenCV resizes a uint8 image to uint8: values are whole 8-bit levels


def preprocess(image: np.ndarray, channel_order: str = "rgb") -> tuple[np.ndarray, float]:
    """RGB (H, W, 3) uint8 -> ((1, 3, 320, 320) float32, scale from input pixels to image pixels)."""
    h, w = image.shape[:2]
    side = max(h, w)
    padded = np.zeros((side, side, 3), dtype=np.uint8)
    padded[:h, :w] = image
    resized = resize_bilinear(padded, INPUT)
    if channel_order == "bgr":
        resized = resized[..., ::-1]
    blob = (resized / 255.0).astype(np.float32).transpose(2, 0, 1)[None]
    return np.ascontiguousarray(blob), side / INPUT


def _area(boxes: np.ndarray) -> np.ndarray:
    """Areas of xyxy boxes (..., 4) -> (...)."""
    area: np.ndarray = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    return area


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.45) -> list[int]:
    """Greedy non-maximum suppression over xyxy boxes; indices kept, best first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    while len(order):
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        x1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        overlap = inter / (_area(boxes[i]) + _area(boxes[rest]) - inter + 1e-9)
        order = rest[overlap <= iou]
    return keep


class NudeNetEngine(Engine):
    name = "nudenet"

    def __init__(self, models_dir: Path, providers: list[str] | None = None, channel_order: str = "rgb"):
        super().__init__()
        self.models_dir = Path(models_dir)
        self.providers = providers
        self.channel_order = channel_order
        self._session: ort.InferenceSession | None = None
        self._version = ""

    @property
    def model(self) -> str:
        return "nudenet-320n"

    @property
    def model_version(self) -> str:
        return self._version

    def _load(self) -> None:
        (path,) = require_files("nudenet-320n", self.models_dir)
        import onnxruntime as ort

        providers = self.providers or [
            p for p in ort.get_available_providers() if p in ("CUDAExecutionProvider", "CPUExecutionProvider")
        ]
        from mediafleet.common.resources import cpu_limit

        options = ort.SessionOptions()
        options.intra_op_num_threads = cpu_limit()  # ONNX Runtime's default: every host core
        self._session = ort.InferenceSession(str(path), options, providers=providers)
        # the weights and the fed channel order (results differ between the two: the cache keeps them apart)
        self._version = f"{sha256_of(path)[:12]}+{self.channel_order}"

    def detect(self, image: np.ndarray, channel_order: str | None = None) -> list[Detection]:
        """Detections >= 0.25 (after NMS) on an RGB (H, W, 3) uint8 image, boxes xyxy in its
        pixels; ``channel_order`` the model is fed (``rgb``/``bgr``, default the engine's)."""
        self.load()
        blob, scale = preprocess(image, channel_order or self.channel_order)
        session = self._session
        if session is None:
            raise RuntimeError("the NudeNet model is not loaded")
        name = session.get_inputs()[0].name
        (out,) = self.run_serialised(session.run, None, {name: blob})
        rows = out[0].T  # (2100, 22)
        cls_scores = rows[:, 4:]
        best = cls_scores.max(axis=1)
        keep = best >= 0.2
        rows, best, cls = rows[keep], best[keep], cls_scores[keep].argmax(axis=1)
        cx, cy, w, h = (rows[:, i] * scale for i in range(4))
        h_img, w_img = image.shape[:2]
        boxes = np.stack(
            [np.clip(cx - w / 2, 0, w_img), np.clip(cy - h / 2, 0, h_img),
             np.clip(cx + w / 2, 0, w_img), np.clip(cy + h / 2, 0, h_img)], axis=1,
        )  # fmt: skip
        kept = [i for i in nms(boxes, best) if best[i] >= 0.25] if len(best) else []
        return [
            Detection(
                label=NUDENET_CLASSES[int(cls[i])],
                score=round(float(best[i]), 4),
                box=[round(float(v), 1) for v in boxes[i]],
            )  # fmt: skip
            for i in kept
        ]

    @staticmethod
    def score(detections: list[Detection]) -> float:
        """The highest score among exposed-body-part detections (0 when none)."""
        return max((d.score for d in detections if d.label in NSFW_CLASSES), default=0.0)
