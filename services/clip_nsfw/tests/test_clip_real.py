"""CLIP on real weights (ViT-B-32 ``laion2b_s34b_b79k``): near-duplicates and text -> image.

Marker ``real_models``: deselected by default (no CLIP weights are reachable on the CI host,
so CI reports these as deselected, with a count). With the weights in the models directory
(README, "CLIP weights"): ``pytest -m real_models services/clip_nsfw``.

Near-duplicates from the shared corpus: ``obama-480p.jpg`` is ``obama.jpg`` downscaled;
``human-pose.jpeg`` is a crop of ``coco_000000000785.jpg`` (the skier). Each must be the
other's nearest neighbour among the corpus images, by cosine similarity.
"""

from __future__ import annotations

import numpy as np
import pytest

from mediafleet.clip_nsfw.runner import ClipNsfwRunner
from mediafleet.clip_nsfw.settings import ClipNsfwSettings
from tests.conftest import sample

pytestmark = pytest.mark.real_models

CORPUS = (
    "bus.jpg", "zidane.jpg", "view.jpg", "obama.jpg", "obama-480p.jpg", "obama2.jpg", "biden.jpg",
    "coco_000000000785.jpg", "human-pose.jpeg", "coco_000000196141.jpg", "english.png", "french.jpg",
    "animalpose_ca110.jpeg", "animalpose_ho105.jpeg", "ap10k_000000037516.jpg", "chinese.jpg", "korean.png",
)  # fmt: skip


@pytest.fixture(scope="module")
def runner() -> ClipNsfwRunner:
    settings = ClipNsfwSettings(preload=["open_clip"])  # ViT-B-32 laion2b_s34b_b79k, models dir from env
    if not settings.weights_path().is_file():
        pytest.fail(
            f"-m real_models needs the CLIP weights at {settings.weights_path()} (README: CLIP weights)"
        )
    r = ClipNsfwRunner(settings)
    r.preload()
    return r


@pytest.fixture(scope="module")
def embeddings(runner: ClipNsfwRunner) -> dict[str, np.ndarray]:
    return {name: np.asarray(runner.embed(sample(name)).embedding) for name in CORPUS}


@pytest.mark.parametrize(
    ("a", "b"), [("obama.jpg", "obama-480p.jpg"), ("coco_000000000785.jpg", "human-pose.jpeg")]
)
def test_near_duplicates_are_nearest_neighbours(embeddings: dict[str, np.ndarray], a: str, b: str) -> None:
    for query, twin in ((a, b), (b, a)):
        sims = {n: float(embeddings[query] @ v) for n, v in embeddings.items() if n != query}
        assert max(sims, key=sims.get) == twin, sorted(sims.items(), key=lambda kv: -kv[1])[:3]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a cat", "animalpose_ca110.jpeg"), ("a horse", "animalpose_ho105.jpeg"),
     ("a jaguar", "ap10k_000000037516.jpg"), ("mountain lake", "view.jpg"), ("bus", "bus.jpg"),
     ("skiing", "coco_000000000785.jpg"), ("baseball", "coco_000000196141.jpg")],
)  # fmt: skip
def test_text_finds_the_image(
    runner: ClipNsfwRunner, embeddings: dict[str, np.ndarray], text: str, expected: str
) -> None:
    """The manifest's CLIP text searches: the expected image ranks first among the corpus images."""
    query = np.asarray(runner.embed_text(text))
    ranked = sorted(embeddings, key=lambda n: -float(query @ embeddings[n]))
    assert ranked[0] == expected, ranked[:3]
