"""insightface: SCRFD detection (5 landmarks) and ArcFace 512-d embeddings on ONNX Runtime,
through insightface's own model classes (``insightface.model_zoo.SCRFD`` / ``ArcFaceONNX``)
and its alignment (``face_align.norm_crop`` to the 112 x 112 ArcFace template).

Files: ``<models>/insightface/<pack>/det_10g.onnx`` and ``w600k_r50.onnx`` (buffalo_l), as
insightface's ``FaceAnalysis`` unpacks them; the released models are for non-commercial
research only (insightface README).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mediafleet.common.engine import Engine
from mediafleet.common.errors import EngineError
from mediafleet.common.provision import sha256_of
from mediafleet.face_reid.engines import DetectedFace, l2_normalise


class InsightFaceEngine(Engine):
    name = "insightface"

    def __init__(self, pack_dir: Path, scrfd_file: str, arcface_file: str, device: str = "cpu"):
        super().__init__()
        self.pack_dir = Path(pack_dir)
        self.scrfd_file, self.arcface_file = scrfd_file, arcface_file
        self.device = device
        self._version = ""

    @property
    def model(self) -> str:
        return f"{self.pack_dir.name}:{Path(self.scrfd_file).stem}+{Path(self.arcface_file).stem}"

    @property
    def model_version(self) -> str:
        return self._version

    def _load(self) -> None:
        det_path, rec_path = self.pack_dir / self.scrfd_file, self.pack_dir / self.arcface_file
        missing = [p.name for p in (det_path, rec_path) if not p.is_file()]
        if missing:
            raise EngineError(
                f"the insightface {self.pack_dir.name} weights are not installed ({', '.join(missing)} "
                f"missing in the models folder, {self.pack_dir.parent.name}/{self.pack_dir.name}); "
                "docs/models.md (insightface) says where to get them",
                code="model_not_available",
            )
        from insightface.model_zoo import SCRFD, ArcFaceONNX

        ctx = 0 if self.device.startswith("cuda") else -1
        self._det = SCRFD(model_file=str(det_path))
        self._det.prepare(ctx, input_size=(640, 640))
        self._rec = ArcFaceONNX(model_file=str(rec_path))
        self._rec.prepare(ctx)
        self._version = f"{sha256_of(det_path)[:12]}+{sha256_of(rec_path)[:12]}"

    @property
    def embedding_dim(self) -> int:
        self.load()
        return int(self._rec.output_shape[-1])

    def detect(self, image: np.ndarray, threshold: float) -> list[DetectedFace]:
        """Faces of an RGB (H, W, 3) uint8 image (insightface works in BGR: converted here)."""
        self.load()
        bgr = np.ascontiguousarray(image[..., ::-1])
        det, kpss = self.run_serialised(self._det.detect, bgr, det_thresh=threshold)
        faces = []
        for i, row in enumerate(det):
            kps = None if kpss is None else np.asarray(kpss[i], dtype=np.float32)
            faces.append(
                DetectedFace(np.asarray(row[:4], dtype=np.float32), float(min(max(row[4], 0.0), 1.0)), kps)
            )
        return faces

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(512,) L2-normalised ArcFace embedding of the face aligned by its 5 landmarks."""
        self.load()
        from insightface.utils import face_align

        bgr = np.ascontiguousarray(image[..., ::-1])

        def run() -> np.ndarray:
            crop = face_align.norm_crop(bgr, landmark=np.asarray(landmarks, dtype=np.float32),
                                        image_size=self._rec.input_size[0])  # fmt: skip
            return np.asarray(self._rec.get_feat(crop))

        return l2_normalise(self.run_serialised(run))
