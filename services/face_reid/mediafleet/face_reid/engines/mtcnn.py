"""MTCNN (Zhang et al. 2016: P-Net, R-Net, O-Net cascade) by facenet-pytorch, with the weights
of catalogue model ``mtcnn`` loaded from the models directory (not the package's copy).

facenet-pytorch's defaults are kept: stage thresholds (0.6, 0.7, 0.7), pyramid factor 0.709;
``min_face_size`` is the request's ``min_size``. Landmarks come in the contract's order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mediafleet.common.catalogue import require_files
from mediafleet.common.engine import Engine
from mediafleet.common.provision import sha256_of
from mediafleet.face_reid.engines import DetectedFace


class MtcnnEngine(Engine):
    name = "mtcnn"

    def __init__(self, models_dir: Path, device: str = "cpu"):
        super().__init__()
        self.models_dir = Path(models_dir)
        self.device = device
        self._version = ""

    @property
    def model(self) -> str:
        return "mtcnn"

    @property
    def model_version(self) -> str:
        return self._version

    def _load(self) -> None:
        paths = require_files("mtcnn", self.models_dir)
        import torch
        from facenet_pytorch import MTCNN

        device = self.device if self.device != "cuda" or torch.cuda.is_available() else "cpu"
        net = MTCNN(keep_all=True, device=device, select_largest=False)
        for module, path in zip((net.pnet, net.rnet, net.onet), paths, strict=True):
            module.load_state_dict(torch.load(path, map_location=device, weights_only=True))
        net.eval()
        self._net = net
        self._version = sha256_of(paths[2])[:12]

    def detect(self, image: np.ndarray, min_size: int = 20) -> list[DetectedFace]:
        """Faces of an RGB (H, W, 3) uint8 image; score is O-Net's face probability."""
        self.load()
        import torch

        def run() -> list[DetectedFace]:
            self._net.min_face_size = max(int(min_size), 12)
            with torch.inference_mode():
                # facenet-pytorch: boxes (n, 4) xyxy, probs (n,), points (n, 5, 2); None when no face
                boxes, probs, points = self._net.detect(image, landmarks=True)
            if boxes is None:
                return []
            return [
                DetectedFace(np.asarray(b, dtype=np.float32), float(p), np.asarray(pt, dtype=np.float32))
                for b, p, pt in zip(boxes, probs, points, strict=True)
            ]

        return self.run_serialised(run)
