"""Semantic search and "similar" in the CLI's embedded mode: no server, vectors in a FAISS
store beside the SQLite file.

The tiny generated CLIP model stands in (no CLIP weights here), so only mechanics are
checked: every ranking and similarity equals cosine similarity computed here with numpy from
the embeddings ``analyze`` returned and, for text, from the same checkpoint loaded in this
process. Semantic quality needs real weights (``test_clip_real.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_clip import CONFIG, NAME, make_checkpoint, text_vector

from tests.conftest import sample

IMAGES = ("bus.jpg", "zidane.jpg", "view.jpg", "obama.jpg")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("clip") / "tiny-clip.pt")


def _cli(*args: str, db: str, checkpoint: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CLIP_MODEL": NAME,
        "CLIP_PRETRAINED": "seed0",
        "CLIP_WEIGHTS": str(checkpoint),
        "CLIP_ARCH_CONFIG": str(CONFIG),
        "CLIP_PRELOAD": json.dumps(["open_clip"]),
        "MEDIAFLEET_VECTOR_DB_URL": "",
    }
    return subprocess.run(
        [sys.executable, "-m", "mediafleet.cli.main", *args, "--db", db],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_semantic_search_and_similar_rank_by_cosine(sqlite_url: str, checkpoint: Path) -> None:
    files = [sample(name) for name in IMAGES]
    out = _cli("analyze", *map(str, files), "--tasks", "clip", "--json", db=sqlite_url, checkpoint=checkpoint)
    assert out.returncode == 0, out.stderr
    embeddings = {
        Path(item["file"]).name: np.asarray(item["results"]["clip"]["embedding"])
        for item in map(json.loads, out.stdout.splitlines())
    }
    collection = f"clip-{NAME}-seed0"

    query = text_vector(checkpoint, "a red double-decker bus")
    expected = sorted(((float(v @ query), name) for name, v in embeddings.items()), reverse=True)
    found = _cli(
        "search", "--semantic", "a red double-decker bus", "--json", db=sqlite_url, checkpoint=checkpoint
    )
    assert found.returncode == 0, found.stderr
    body = json.loads(found.stdout)
    assert body["collection"] == collection and body["count"] == len(IMAGES)
    assert [h["filename"] for h in body["data"]] == [name for _, name in expected]
    for hit, (similarity, _) in zip(body["data"], expected, strict=True):
        assert hit["similarity"] == pytest.approx(similarity, abs=1e-4) and hit["task"] == "clip"

    bus = embeddings["bus.jpg"]
    others = sorted(((float(v @ bus), n) for n, v in embeddings.items() if n != "bus.jpg"), reverse=True)
    similar = json.loads(
        _cli("similar", str(files[0]), "--json", db=sqlite_url, checkpoint=checkpoint).stdout
    )
    assert [h["filename"] for h in similar["data"]] == [name for _, name in others]


def test_semantic_search_without_clip_weights_says_what_to_pull(sqlite_url: str, tmp_path: Path) -> None:
    out = _cli("search", "--semantic", "a bus", db=sqlite_url, checkpoint=tmp_path / "missing.pt")
    assert out.returncode == 1 and out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert line.startswith("mediafleet: clip_nsfw cannot embed text here: ") and "Traceback" not in line


def test_clip_near_duplicates_follow_the_cosine_rule(
    sqlite_url: str, checkpoint: Path, tmp_path: Path
) -> None:
    """``analyze --tasks clip`` records CLIP near-duplicates (cosine similarity >= 0.99 of the
    embeddings it returned, worked out here with numpy) and ``duplicates`` lists them. The tiny
    stand-in says nothing of CLIP's quality: which pairs pass is whatever its embeddings give."""
    from PIL import Image

    copy = tmp_path / "bus-copy.jpg"
    with Image.open(sample("bus.jpg")) as im:
        im.resize((im.width * 9 // 10, im.height * 9 // 10)).save(copy, quality=80)
    files = [sample("bus.jpg"), copy, sample("zidane.jpg")]
    out = _cli("analyze", *map(str, files), "--tasks", "clip", "--json", db=sqlite_url, checkpoint=checkpoint)
    assert out.returncode == 0, out.stderr
    vec = {
        Path(item["file"]).name: np.asarray(item["results"]["clip"]["embedding"])
        for item in map(json.loads, out.stdout.splitlines())
    }
    names = sorted(vec)
    expected = {(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if float(vec[a] @ vec[b]) >= 0.99}
    listed = _cli("duplicates", "--json", db=sqlite_url, checkpoint=checkpoint)
    assert listed.returncode == 0, listed.stderr
    groups = json.loads(listed.stdout)["data"]
    found = {tuple(sorted((link["a"], link["b"]))) for g in groups for link in g["links"]}
    sims = {(a, b): round(float(vec[a] @ vec[b]), 4) for a in names for b in names if a < b}
    assert found == expected, (found, sims)
    assert all(link["method"] == "clip" for g in groups for link in g["links"])
