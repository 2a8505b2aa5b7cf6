"""Face engines, one module per library: dlib (HOG/MMOD detectors, 5-point predictor, ResNet
descriptor), MTCNN (facenet-pytorch) and insightface (SCRFD, ArcFace on ONNX Runtime)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class DetectedFace:
    """One detection in source-image pixels.

    ``box``: (4,) float32 xyxy; ``score`` in [0, 1]; ``landmarks``: (5, 2) float32 in the
    contract's order (left eye, right eye, nose, mouth left, mouth right), or None when the
    detector gives none (dlib's detectors: the embedder finds its own).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray | None = None


def l2_normalise(vector: np.ndarray) -> np.ndarray:
    """(D,) -> (D,) float32 of unit L2 norm (a zero vector stays zero)."""
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v
