"""The face_reid runner: detectors and embedders loaded once, shared by the HTTP server, the RQ
worker and the CLI."""

from __future__ import annotations

import base64
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from mediafleet.common.capability import ProgressFn
from mediafleet.common.engine import Engine, EngineRunner
from mediafleet.common.errors import BadRequest, InvalidMedia
from mediafleet.common.media import load_rgb_fitted
from mediafleet.face_reid.contract import (
    MATCH_THRESHOLDS,
    Face,
    FacesOptions,
    FacesResult,
    VerifyQuery,
    VerifyResult,
)
from mediafleet.face_reid.engines import DetectedFace
from mediafleet.face_reid.engines.dlib_engine import DlibCnnEngine, DlibEngine
from mediafleet.face_reid.engines.insight import InsightFaceEngine
from mediafleet.face_reid.engines.mtcnn import MtcnnEngine
from mediafleet.face_reid.settings import FaceReidSettings


def _resize_for_detection(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy whose longest side is at most ``max_side`` and the factor back to source pixels."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, 1.0
    from PIL import Image

    scale = max(h, w) / max_side
    small = Image.fromarray(image).resize(
        (max(1, round(w / scale)), max(1, round(h / scale))), Image.Resampling.BILINEAR
    )
    return np.asarray(small), scale


#: Images with a side shorter than this hold no face any detector here finds (MTCNN's 12 px).
MIN_IMAGE_SIDE = 12
#: The engine that serves each detector and embedder name of the options.
ENGINE_OF = {"mtcnn": "mtcnn", "dlib_hog": "dlib", "dlib_cnn": "dlib_cnn", "scrfd": "insightface",
             "dlib": "dlib", "arcface": "insightface"}  # fmt: skip


class FaceReidRunner(EngineRunner[Engine]):
    def __init__(self, settings: FaceReidSettings):
        self.settings = settings
        models = settings.core.models_dir
        self.dlib = DlibEngine(models)
        self.dlib_cnn = DlibCnnEngine(models)
        self.mtcnn = MtcnnEngine(models, settings.device)
        self.insightface = InsightFaceEngine(
            settings.insightface_dir(), settings.scrfd_file, settings.arcface_file, settings.device
        )
        self.engines = {"mtcnn": self.mtcnn, "dlib": self.dlib, "dlib_cnn": self.dlib_cnn,
                        "insightface": self.insightface}  # fmt: skip

    def preload_names(self) -> list[str]:
        return list(self.settings.preload)

    def task_engines(self, task: str) -> list[str]:
        """The default detector's and embedder's engines (``faces``; ``verify`` too)."""
        return list(dict.fromkeys([ENGINE_OF[self.settings.detector], ENGINE_OF[self.settings.embedder]]))

    def faces_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` (valid ``FacesOptions``, checked by the pipeline) completed with the
        service's defaults.

        Raises:
            BadRequest: ``invalid_option``, a detector and an embedder that do not go together.
        """
        opts = FacesOptions.model_construct(**options)
        detector = opts.detector or self.settings.detector
        embedder = opts.embedder or self.settings.embedder
        if embedder == "arcface" and detector in ("dlib_hog", "dlib_cnn"):
            raise BadRequest(
                f"embedder 'arcface' aligns faces by detector landmarks; {detector!r} gives none: "
                "use detector 'mtcnn' or 'scrfd'",
                code="invalid_option",
            )
        return {
            "detector": detector,
            "embedder": embedder,
            "min_score": self.settings.min_score[detector] if opts.min_score is None else opts.min_score,
            "min_size": self.settings.min_size if opts.min_size is None else opts.min_size,
            "max_faces": self.settings.max_faces if opts.max_faces is None else opts.max_faces,
        }

    def default_options(self, task: str) -> dict[str, Any]:
        return self.faces_options({})

    def run(
        self, task: str, media: Path, options: dict[str, Any], inputs: dict[str, Any], progress: ProgressFn
    ) -> FacesResult:
        if task != "faces":
            raise BadRequest(f"face_reid does not run {task!r}", code="unknown_task")
        image = load_rgb_fitted(media, self.settings.max_side, exif_transpose=True)
        result = self.faces(image.pixels, options, progress, scale=image.scale)
        if image.scale == 1:
            return result
        k = image.scale

        def full(face: Face) -> Face:
            return face.model_copy(update={
                "box": [round(v * k, 1) for v in face.box],
                "landmarks": [[round(x * k, 1), round(y * k, 1)] for x, y in face.landmarks],
            })  # fmt: skip

        return result.model_copy(
            update={"faces": [full(f) for f in result.faces], "width": image.width, "height": image.height}
        )

    # -- detection and embedding ----------------------------------------------------------------

    def detect(self, image: np.ndarray, detector: str, min_score: float, min_size: int) -> list[DetectedFace]:
        """Faces of an RGB image in source pixels, score >= min_score, both sides >= min_size."""
        small, scale = _resize_for_detection(image, self.settings.detect_max_side)
        small_min = max(1, int(min_size / scale))
        if detector == "mtcnn":
            found = self.mtcnn.detect(small, min_size=small_min)
        elif detector == "dlib_hog":
            found = self.dlib.detect_hog(small, self.settings.hog_upsample)
        elif detector == "dlib_cnn":
            found = self.dlib_cnn.detect(small)
        else:
            found = self.insightface.detect(small, threshold=min_score)
        h, w = image.shape[:2]
        kept = []
        for face in found:
            face.box = face.box * scale
            if face.landmarks is not None:
                face.landmarks = face.landmarks * scale
            bw, bh = face.box[2] - face.box[0], face.box[3] - face.box[1]
            inside = face.box[2] > 0 and face.box[3] > 0 and face.box[0] < w and face.box[1] < h
            if face.score >= min_score and min(bw, bh) >= min_size and inside:
                # a face cut by the image edge: its box ends at the edge (landmarks may lie outside)
                face.box = np.clip(face.box, 0, [w, h, w, h]).astype(np.float32)
                kept.append(face)
        kept.sort(key=lambda f: -float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
        return kept

    def embed(
        self, image: np.ndarray, face: DetectedFace, embedder: str
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """(embedding, landmarks (5, 2), landmark source) of one detected face."""
        if embedder == "dlib":
            vec, points = self.dlib.embed(image, face.box)
            if face.landmarks is not None:
                return vec, face.landmarks, "detector"
            return vec, DlibEngine.landmarks_from_shape(points), "dlib_5_point"
        if face.landmarks is None:  # refused before: arcface with a dlib detector (validate_options)
            raise BadRequest(
                "embedder 'arcface' aligns faces by detector landmarks; use detector mtcnn or scrfd",
                code="invalid_option",
            )
        return self.insightface.embed(image, face.landmarks), face.landmarks, "detector"

    def detector_record(self, detector: str) -> tuple[str, str]:
        """(model, version) of a detector, as results record them."""
        if detector == "dlib_hog":
            return "dlib_hog", self.dlib.hog_version
        engine = {"mtcnn": self.mtcnn, "dlib_cnn": self.dlib_cnn}.get(detector, self.insightface)
        return engine.model, engine.model_version

    def embedder_engine(self, embedder: str) -> DlibEngine | InsightFaceEngine:
        return self.dlib if embedder == "dlib" else self.insightface

    def collection(self, embedder: str) -> str:
        engine = self.embedder_engine(embedder)
        engine.load()
        return f"faces-{embedder}-{engine.model_version.split('+')[-1]}"

    def faces(
        self, image: np.ndarray, options: dict[str, Any], progress: ProgressFn | None = None, scale: int = 1
    ) -> FacesResult:
        """Detect, keep the largest ``max_faces``, embed each: the ``faces`` task on an RGB image.

        ``scale``: full-image pixels per pixel of ``image`` when it was reduced (``min_size``
        is in full-image pixels); the result is in ``image``'s pixels."""
        opts = self.faces_options(options)
        start = time.perf_counter()
        emb_engine = self.embedder_engine(opts["embedder"])
        min_size = max(1, round(opts["min_size"] / scale))
        # an image smaller than the smallest face a detector finds holds none (MTCNN's pyramid
        # of a 1 x 1 image is empty and it raised: a 503 where an empty result belongs)
        small = min(image.shape[:2]) < MIN_IMAGE_SIDE
        found = [] if small else self.detect(image, opts["detector"], opts["min_score"], min_size)
        kept, truncated = found[: opts["max_faces"]], max(0, len(found) - opts["max_faces"])
        faces, source = [], "detector"
        for i, face in enumerate(kept):
            vec, landmarks, source = self.embed(image, face, opts["embedder"])
            faces.append(
                Face(
                    box=[round(float(v), 1) for v in face.box],
                    score=round(face.score, 4),
                    landmarks=[[round(float(x), 1), round(float(y), 1)] for x, y in landmarks],
                    embedding=[float(v) for v in vec],
                    embedding_dim=int(vec.shape[0]),
                )  # fmt: skip
            )
            if progress is not None:
                progress((i + 1) / len(kept), f"embedded {i + 1}/{len(kept)} faces")
        det_model, det_version = self.detector_record(opts["detector"])
        h, w = image.shape[:2]
        return FacesResult(
            faces=faces, width=w, height=h, detector=opts["detector"], embedder=opts["embedder"],
            model=f"{det_model}+{emb_engine.model}",
            model_version=f"{det_version}+{emb_engine.model_version}",
            collection=self.collection(opts["embedder"]), threshold=MATCH_THRESHOLDS[opts["embedder"]],
            landmark_source=source if faces else "detector", truncated=truncated,
            elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
        )  # fmt: skip

    # -- verification -----------------------------------------------------------------------------

    def query(self, name: str, payload: BaseModel) -> VerifyResult:
        """``verify``: the largest face of each of two images compared (BadRequest when one has none)."""
        if name != "verify" or not isinstance(payload, VerifyQuery):
            raise BadRequest(f"face_reid answers no query {name!r}", code="unknown_query")
        images = []
        for data in payload.images:
            with tempfile.NamedTemporaryFile(suffix=".img") as tmp:
                tmp.write(base64.b64decode(data))
                tmp.flush()
                images.append(load_rgb_fitted(tmp.name, self.settings.max_side, exif_transpose=True).pixels)
        return self.verify(images[0], images[1], payload.detector, payload.embedder)

    def verify(
        self, a: np.ndarray, b: np.ndarray, detector: str | None = None, embedder: str | None = None
    ) -> VerifyResult:
        """Cosine similarity of the largest face of two RGB images against the embedder's threshold."""
        options = {k: v for k, v in (("detector", detector), ("embedder", embedder)) if v}
        results = [self.faces(img, {**options, "max_faces": 1}) for img in (a, b)]
        for i, res in enumerate(results):
            if not res.faces:
                raise InvalidMedia(f"no face found in image {i + 1}", code="no_face")
        return verify_faces(results[0].faces[0], results[1].faces[0], results[0].threshold,
                            results[0].embedder, results[0].detector,
                            faces_found=[len(r.faces) + r.truncated for r in results])  # fmt: skip


def verify_faces(
    a: Face, b: Face, threshold: float, embedder: str, detector: str | None, faces_found: list[int]
) -> VerifyResult:
    similarity = float(np.dot(np.asarray(a.embedding, np.float32), np.asarray(b.embedding, np.float32)))
    return VerifyResult(
        similarity=round(similarity, 4), distance=round(1.0 - similarity, 4), threshold=threshold,
        same_person=similarity >= threshold, embedder=embedder, detector=detector, faces=[a, b],
        faces_found=faces_found,
    )  # fmt: skip
