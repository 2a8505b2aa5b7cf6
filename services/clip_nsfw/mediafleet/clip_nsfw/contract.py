"""Contract of the clip_nsfw capability (light: pydantic and mediafleet.common only).

Tasks:
- ``clip``: the image's CLIP embedding (open_clip; L2-normalised float32), stored in the
  vector collection named after the model (``clip-<model>-<pretrained>``) so embeddings of
  different models never meet.
- ``nsfw``: a score in [0, 1] and a safe/nsfw label from NudeNet (default) or CLIP
  zero-shot prompts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mediafleet.common.capability import (
    MEDIA_REF,
    Capability,
    Likeness,
    NoOptions,
    QuerySpec,
    TaskSpec,
    TextQuery,
    VectorItem,
)

#: NudeNet 3.4 detector classes (nudenet/nudenet.py ``__labels``, index = model output row - 4).
NUDENET_CLASSES: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED",
    "BELLY_COVERED", "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE",
    "BELLY_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)  # fmt: skip
#: The exposed-body-part classes the NSFW score is taken over (the highest detection score).
NSFW_CLASSES: tuple[str, ...] = (
    "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED", "ANUS_EXPOSED",
)  # fmt: skip


class ClipResult(BaseModel):
    embedding: list[float] = Field(description="L2-normalised float32 image embedding, length = dim")
    dim: int
    engine: str = "open_clip"
    model: str = Field(description="open_clip architecture, e.g. ViT-B-32")
    pretrained: str = Field(description="open_clip pretrained tag, e.g. laion2b_s34b_b79k")
    model_version: str = Field(description="first 12 hex digits of the weights file's SHA-256")
    collection: str = Field(description="vector collection these embeddings go to")
    elapsed_ms: float


class NsfwOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``nudenet`` (default, an object detector) or ``clip`` (zero-shot prompts; only
    #: meaningful with real CLIP weights).
    engine: Literal["nudenet", "clip"] | None = None
    threshold: float | None = Field(default=None, ge=0.0, le=1.0, description="score >= threshold -> nsfw")


class Detection(BaseModel):
    label: str
    score: float = Field(ge=0.0, le=1.0)
    box: list[float] = Field(min_length=4, max_length=4, description="xyxy pixels")


class NsfwVerdict(BaseModel):
    score: float = Field(ge=0.0, le=1.0)
    label: Literal["safe", "nsfw"]
    threshold: float
    engine: str
    detections: list[Detection] = Field(default_factory=list, description="nudenet: every detection >= 0.2")
    notes: str = ""


class NsfwResult(BaseModel):
    nsfw: NsfwVerdict
    model: str
    model_version: str
    elapsed_ms: float


#: Two images whose CLIP embeddings (same model and weights) have at least this cosine similarity
#: are near-duplicates: cosine distance 0.01, stricter than Immich's first default (0.0155,
#: immich-app/immich#9781, lowered since in #10703: CLIP puts distinct shots of one scene close,
#: immich-app/immich#31487). Not measured here: CLIP's weights are not reachable (the tiny
#: stand-in model says nothing of it); pHash + dHash (the fingerprint task) decide the rest.
CLIP_MIN_SIMILARITY = 0.99


def clip_likeness(a: ClipResult, b: ClipResult) -> Likeness:
    """Near-duplicate images by CLIP: the cosine similarity of two L2-normalised embeddings
    (their dot product, in [-1, 1], reported clamped to [0, 1]) is at least
    :data:`CLIP_MIN_SIMILARITY`. Embeddings of different models or pretrained weights (or
    dimensions) are not comparable: never duplicates."""
    if (a.model, a.pretrained, a.dim) != (b.model, b.pretrained, b.dim) or len(a.embedding) != len(
        b.embedding
    ):
        return Likeness(duplicate=False, similarity=0.0, method="clip", detail="different CLIP models")
    cosine = sum(x * y for x, y in zip(a.embedding, b.embedding, strict=True))
    similarity = min(max(cosine, 0.0), 1.0)
    return Likeness(
        duplicate=similarity >= CLIP_MIN_SIMILARITY,
        similarity=round(similarity, 4),
        method="clip",
        detail=f"CLIP {a.model} cosine similarity {cosine:.4f} (duplicate at >= {CLIP_MIN_SIMILARITY})",
    )


def clip_vectors(result: ClipResult) -> list[VectorItem]:
    return [VectorItem(collection=result.collection, ref=MEDIA_REF, vector=result.embedding)]


CAPABILITY = Capability(
    name="clip_nsfw",
    title="clip_nsfw: CLIP image embeddings (open_clip) and NSFW scores (NudeNet, CLIP zero-shot)",
    http_port=8112,
    env_prefix="CLIP_",
    former_queues=("clip",),  # before 2026-12: drained after an upgrade
    runner="mediafleet.clip_nsfw.runner:ClipNsfwRunner",
    settings="mediafleet.clip_nsfw.settings:ClipNsfwSettings",
    queries=(
        QuerySpec(
            name="embed_text",
            purpose="semantic_search",
            input=TextQuery,
            output=VectorItem,
            description="CLIP text embedding of the words, in the collection of the image embeddings",
        ),
    ),
    tasks=(
        TaskSpec(
            name="clip",
            options=NoOptions,
            result=ClipResult,
            media_kinds=("image",),
            vectors=clip_vectors,
            likeness=clip_likeness,
            summary=lambda r: f"{r.dim}-d embedding ({r.model} {r.pretrained})",
            description="CLIP image embedding, L2-normalised",
            default=("image",),
        ),
        TaskSpec(
            name="nsfw",
            options=NsfwOptions,
            result=NsfwResult,
            media_kinds=("image",),
            summary=lambda r: (
                f"{r.nsfw.label} (score {r.nsfw.score:.2f}, threshold {r.nsfw.threshold}, {r.nsfw.engine})"
            ),
            description="NSFW score and label",
            default=("image",),
        ),
    ),
)
