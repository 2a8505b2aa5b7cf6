"""Contract of the face_reid capability (light: pydantic and mediafleet.common only).

Task ``faces``: every face of an image, each with its box (xyxy, source pixels), detector
score, five landmarks and an L2-normalised embedding. Detector and embedder are chosen
independently (options or settings); embeddings go to the vector collection of their
embedder (``faces-<embedder>-<model_version>``), so embeddings of different embedders
never meet. job_manager stores each face for its owner (:class:`FaceItem`) and assigns it
to a person (:mod:`mediafleet.common.store.identities`); the gateway fills ``face_id``,
``person`` and ``cluster_id`` of a stored result from there when it is read.

Query ``verify`` (purpose ``face_verify``): two images in, the field's one-to-one check
out (cosine similarity of the largest face of each, the embedder's threshold, same person
or not).

Thresholds (cosine similarity of L2-normalised embeddings; "same person" when >=):

- ``dlib`` (dlib_face_recognition_resnet_model_v1, 128-d): **0.93**. Source: deepface's
  verification thresholds (serengil/deepface ``deepface/config/threshold.py``: Dlib cosine
  distance 0.07), the cosine form of dlib's own 0.6 euclidean threshold on its unnormalised
  descriptors (norm ~1.45: 1 - 0.6^2 / (2 * 1.45^2) = 0.914). Measured on the shared
  corpus (bench/faces): same person >= 0.958, different people <= 0.908.
- ``arcface`` (insightface buffalo_l ``w600k_r50``, 512-d): **0.45**. Source: deepface's
  threshold for Buffalo_L (cosine distance 0.55). Not measured here: no ArcFace weights are
  reachable on this project's machines.
"""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mediafleet.common.capability import Capability, FaceItem, QuerySpec, TaskSpec, VectorItem

Detector = Literal["mtcnn", "dlib_hog", "dlib_cnn", "scrfd"]
Embedder = Literal["dlib", "arcface"]

#: Cosine-similarity thresholds per embedder (module docstring: sources and measurements).
MATCH_THRESHOLDS: dict[str, float] = {"dlib": 0.93, "arcface": 0.45}
#: Landmark order of every detector: left eye, right eye, nose tip, left and right mouth
#: corner (the subject's left/right as seen in the image: insightface's and MTCNN's order).
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
#: Most faces kept per image (largest first) whatever the options say.
MAX_FACES = 500


class FacesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    detector: Detector | None = Field(default=None, description="face detector (default: the service's)")
    embedder: Embedder | None = Field(default=None, description="embedding model (default: the service's)")
    min_score: float | None = Field(default=None, ge=0.0, le=1.0, description="detector score cut-off")
    min_size: int | None = Field(default=None, ge=1, le=10000, description="smallest face side kept, pixels")
    max_faces: int | None = Field(default=None, ge=1, le=MAX_FACES, description="largest N faces kept")


class PersonRef(BaseModel):
    id: str
    name: str | None = Field(description="null for an unnamed cluster")
    similarity: float = Field(description="cosine similarity to the person's closest face when assigned")


class Face(BaseModel):
    face_id: str | None = Field(default=None, description="filled when the stored result is read")
    box: list[float] = Field(min_length=4, max_length=4, description="xyxy, source pixels")
    score: float = Field(ge=0.0, le=1.0, description="detector confidence (dlib HOG: 1 - exp(-margin))")
    landmarks: list[list[float]] = Field(
        min_length=5,
        max_length=5,
        description="5 x [x, y] pixels: left eye, right eye, nose, mouth left, right",
    )
    embedding: list[float] = Field(
        description="L2-normalised float32, length embedding_dim (empty once the person is forgotten)"
    )
    embedding_dim: int
    person: PersonRef | None = None
    cluster_id: str | None = Field(default=None, description="the person (named or not) the face belongs to")


class FacesResult(BaseModel):
    faces: list[Face]
    width: int
    height: int
    detector: str
    embedder: str
    model: str = Field(description="detector model + embedder model")
    model_version: str = Field(description="detector and embedder weights' SHA-256 prefixes")
    collection: str = Field(description="vector collection of the embeddings")
    threshold: float = Field(description="cosine similarity at or above which two faces are one person")
    landmark_source: str = Field(
        description="'detector' (MTCNN, SCRFD) or 'dlib_5_point' (eye centres and nose from dlib's 5 points; "
        "mouth corners estimated from the eye line)"
    )
    truncated: int = Field(default=0, description="faces found beyond max_faces and left out")
    elapsed_ms: float


class VerifyQuery(BaseModel):
    """Two images (base64, each at most 16 MiB decoded) to compare."""

    model_config = ConfigDict(extra="forbid")

    images: list[str] = Field(min_length=2, max_length=2, description="base64 image bytes")
    detector: Detector | None = None
    embedder: Embedder | None = None

    @field_validator("images")
    @classmethod
    def _base64(cls, images: list[str]) -> list[str]:
        for i, data in enumerate(images):
            if len(data) > 16 * 1024 * 1024 * 4 // 3 + 4:
                raise ValueError(f"image {i + 1} is larger than 16 MiB")
            try:
                base64.b64decode(data, validate=True)
            except ValueError as exc:
                raise ValueError(f"image {i + 1} is not base64") from exc
        return images


class VerifyResult(BaseModel):
    """The one-to-one check: cosine similarity of two faces against the embedder's threshold."""

    similarity: float = Field(description="cosine similarity in [-1, 1]")
    distance: float = Field(description="cosine distance, 1 - similarity")
    threshold: float = Field(description="similarity at or above which the faces are one person")
    metric: Literal["cosine"] = "cosine"
    same_person: bool
    embedder: str
    detector: str | None = None
    faces: list[Face] = Field(
        default_factory=list, description="the two faces compared (largest of each image)"
    )
    faces_found: list[int] = Field(default_factory=list, description="faces detected in each image")


def face_vectors(result: FacesResult) -> list[VectorItem]:
    """One item per face (``faces[i]``); a forgotten face (embedding emptied) has none."""
    return [
        VectorItem(collection=result.collection, ref=f"faces[{i}]", vector=face.embedding)
        for i, face in enumerate(result.faces)
        if face.embedding
    ]


def face_items(result: FacesResult) -> list[FaceItem]:
    return [
        FaceItem(
            collection=result.collection,
            ref=f"faces[{i}]",
            vector=face.embedding,
            box=face.box,
            score=face.score,
            threshold=result.threshold,
        )  # fmt: skip
        for i, face in enumerate(result.faces)
        if face.embedding
    ]


def summary(result: FacesResult) -> str:
    names = [f.person.name for f in result.faces if f.person and f.person.name]
    who = f": {', '.join(names)}" if names else ""
    return f"{len(result.faces)} face(s) ({result.detector} + {result.embedder}){who}"


CAPABILITY = Capability(
    name="face_reid",
    title="face_reid: faces detected (MTCNN, dlib, SCRFD), embedded (dlib ResNet, ArcFace), verified and clustered",
    http_port=8113,
    env_prefix="FACE_",
    runner="mediafleet.face_reid.runner:FaceReidRunner",
    settings="mediafleet.face_reid.settings:FaceReidSettings",
    queries=(
        QuerySpec(
            name="verify",
            purpose="face_verify",
            input=VerifyQuery,
            output=VerifyResult,
            description="one-to-one verification of the largest face of two images",
        ),
    ),
    tasks=(
        TaskSpec(
            name="faces",
            options=FacesOptions,
            result=FacesResult,
            media_kinds=("image",),
            vectors=face_vectors,
            faces=face_items,
            summary=summary,
            description="faces: boxes, 5 landmarks, embeddings; people and clusters when stored",
            default=True,  # images and videos (sampled frames)
        ),
    ),
)
