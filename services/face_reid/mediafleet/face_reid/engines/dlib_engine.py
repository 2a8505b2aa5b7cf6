"""dlib: HOG (default of dlib) and MMOD CNN face detectors, the 5-point shape predictor and
the ResNet face descriptor (dlib_face_recognition_resnet_model_v1: 128-d, 99.38% on LFW
per dlib's release notes), from catalogue model ``dlib-face``.

Scores: both detectors return an SVM margin (>= 0 at dlib's own threshold); it is mapped to
[0, 1] by the logistic function, so dlib's threshold is score 0.5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mediafleet.common.catalogue import require_files
from mediafleet.common.engine import Engine
from mediafleet.common.provision import sha256_of
from mediafleet.face_reid.engines import DetectedFace, l2_normalise


def _score(margin: float) -> float:
    return float(1.0 / (1.0 + np.exp(-margin)))


class _DlibFiles(Engine):
    """An engine over files of catalogue model ``dlib-face`` (version: its weights' SHA-256 prefix)."""

    def __init__(self, models_dir: Path):
        super().__init__()
        self.models_dir = Path(models_dir)
        self._version = ""

    @property
    def model_version(self) -> str:
        return self._version


class DlibEngine(_DlibFiles):
    """HOG detector, 5-point landmarks and the 128-d descriptor (the ``dlib`` embedder)."""

    name = "dlib"

    @property
    def model(self) -> str:
        return "dlib_face_recognition_resnet_model_v1"

    @property
    def hog_version(self) -> str:
        """The HOG detector is built into dlib: its version is dlib's."""
        self.load()
        return f"dlib-{self._dlib.__version__}"

    def _load(self) -> None:
        _cnn, shape_path, rec_path = require_files("dlib-face", self.models_dir)
        import dlib

        self._hog = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(shape_path))
        self._rec = dlib.face_recognition_model_v1(str(rec_path))
        self._dlib = dlib
        self._version = sha256_of(rec_path)[:12]

    def detect_hog(self, image: np.ndarray, upsample: int = 1) -> list[DetectedFace]:
        """Faces of an RGB (H, W, 3) uint8 image by dlib's HOG + linear SVM detector."""
        self.load()
        rects, margins, _ = self.run_serialised(self._hog.run, image, upsample, 0.0)
        return [
            DetectedFace(np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float32), _score(m))
            for r, m in zip(rects, margins, strict=True)
        ]

    def embed(self, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(128,) L2-normalised descriptor and dlib's 5 points (5, 2) of the face in ``box`` (xyxy).

        dlib aligns the 150 x 150 chip itself from its 5-point shape (no jitter).
        """
        self.load()
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        rect = self._dlib.rectangle(x1, y1, x2, y2)

        def run() -> tuple[np.ndarray, np.ndarray]:
            shape = self._shape(image, rect)
            vec = np.asarray(self._rec.compute_face_descriptor(image, shape), dtype=np.float32)
            pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float32)
            return vec, pts

        vec, pts = self.run_serialised(run)
        return l2_normalise(vec), pts

    @staticmethod
    def landmarks_from_shape(points: np.ndarray) -> np.ndarray:
        """dlib's 5 points (eye corners x 4, nose base) -> the contract's order.

        dlib: 0/1 outer/inner corner of the eye on the image's left, 2/3 of the other eye...
        the order is (right eye outer, right eye inner, left eye outer, left eye inner, nose)
        as seen by the subject. Eye centres are the corner midpoints; dlib has no mouth
        points, so both mouth corners are estimated 0.9 eye distances below the eyes'
        midpoint, perpendicular to the eye line (the proportions of insightface's ArcFace
        template, ``face_align.arcface_dst``), and say so in the result (``landmark_source``).
        """
        a = (points[0] + points[1]) / 2
        b = (points[2] + points[3]) / 2
        left, right = (a, b) if a[0] <= b[0] else (b, a)
        nose = points[4]
        eye_mid = (left + right) / 2
        eye_vec = right - left
        down = np.array([-eye_vec[1], eye_vec[0]], dtype=np.float32)
        if down[1] < 0:
            down = -down
        mouth_mid = eye_mid + down * (0.9 * np.linalg.norm(eye_vec) / max(float(np.linalg.norm(down)), 1e-6))
        half = eye_vec * 0.41
        return np.stack([left, right, nose, mouth_mid - half, mouth_mid + half]).astype(np.float32)


class DlibCnnEngine(_DlibFiles):
    """dlib's MMOD CNN detector (``dlib_cnn``): more robust, 1-9 s and ~2.3 GB per image on CPU."""

    name = "dlib_cnn"

    @property
    def model(self) -> str:
        return "mmod_human_face_detector"

    def _load(self) -> None:
        cnn_path, _shape, _rec = require_files("dlib-face", self.models_dir)
        import dlib

        self._cnn = dlib.cnn_face_detection_model_v1(str(cnn_path))
        self._version = sha256_of(cnn_path)[:12]

    def detect(self, image: np.ndarray, upsample: int = 0) -> list[DetectedFace]:
        self.load()
        found = self.run_serialised(self._cnn, image, upsample)
        return [
            DetectedFace(
                np.array([d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()], dtype=np.float32),
                _score(d.confidence),
            )
            for d in found
        ]
