"""face_reid on real weights (MTCNN from facenet-pytorch, dlib's HOG, 5-point predictor and
ResNet descriptor) and real photos of the shared corpus, with the corpus' ground truth
(../shared/media/MANIFEST.md): face counts, the face_recognition project's Obama box, and
who is who."""

from __future__ import annotations

import itertools
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mediafleet.common.errors import BadRequest, InvalidMedia
from mediafleet.common.media import load_rgb
from mediafleet.common.pipeline.run import prepare
from mediafleet.face_reid.contract import CAPABILITY, MATCH_THRESHOLDS
from mediafleet.face_reid.runner import FaceReidRunner
from mediafleet.face_reid.settings import FaceReidSettings
from tests.conftest import sample

#: identity -> corpus images of that person (MANIFEST: face re-identification)
IDENTITIES = {
    "obama": ("obama.jpg", "obama2.jpg", "obama-480p.jpg"),
    "rob_lowe": ("Rob_Lowe_0001.jpg", "Rob_Lowe_0002.jpg"),
    "biden": ("biden.jpg",),
    "nathalie_baye": ("Nathalie_Baye_0002.jpg",),
    "lin_manuel_miranda": ("lin-manuel-miranda.png",),
    "alex_lacamoire": ("alex-lacamoire.png",),
}


@pytest.fixture(scope="module")
def runner(real_models_dir: Path) -> FaceReidRunner:
    r = FaceReidRunner(FaceReidSettings(core={"models_dir": real_models_dir}))
    r.preload()
    assert r.ready() is None
    return r


def image(name: str) -> np.ndarray:
    return load_rgb(sample(name), exif_transpose=True)


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize(
    ("name", "count"), [("t1.jpg", 6), ("obama.jpg", 1), ("zidane.jpg", 2), ("view.jpg", 0)]
)
def test_mtcnn_finds_the_corpus_face_counts(runner: FaceReidRunner, name: str, count: int) -> None:
    result = runner.faces(image(name), {})
    assert (result.detector, result.embedder) == ("mtcnn", "dlib")
    assert len(result.faces) == count
    h, w = result.height, result.width
    for face in result.faces:
        x1, y1, x2, y2 = face.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert face.score >= 0.9
        assert len(face.landmarks) == 5
        lx, ly = face.landmarks[0]
        assert x1 <= lx <= x2 and y1 <= ly <= y2  # the left eye lies in the box
        assert face.embedding_dim == 128 == len(face.embedding)
        assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-5
    assert result.collection.startswith("faces-dlib-") and result.threshold == MATCH_THRESHOLDS["dlib"]


def test_obama_box_matches_face_recognition_test(runner: FaceReidRunner) -> None:
    # face_recognition's test_face_locations: HOG box (top, right, bottom, left) = (142, 617, 409, 349)
    manifest = [349, 142, 617, 409]
    hog = runner.faces(image("obama.jpg"), {"detector": "dlib_hog"})
    assert len(hog.faces) == 1 and iou(hog.faces[0].box, manifest) > 0.95
    assert hog.landmark_source == "dlib_5_point"
    mtcnn = runner.faces(image("obama.jpg"), {})
    assert iou(mtcnn.faces[0].box, manifest) > 0.6


@pytest.mark.parametrize("detector", ["mtcnn", "dlib_hog"])
def test_verification_separates_every_corpus_pair(runner: FaceReidRunner, detector: str) -> None:
    vectors = {}
    for person, names in IDENTITIES.items():
        for name in names:
            result = runner.faces(image(name), {"detector": detector, "max_faces": 1})
            assert len(result.faces) == 1, name
            vectors[name] = (person, np.asarray(result.faces[0].embedding))
    threshold = MATCH_THRESHOLDS["dlib"]
    for (a, (pa, va)), (b, (pb, vb)) in itertools.combinations(vectors.items(), 2):
        similarity = float(va @ vb)
        assert (similarity >= threshold) == (pa == pb), f"{a} vs {b}: {similarity:.3f}"


def test_verify_answers_same_person_with_threshold(runner: FaceReidRunner) -> None:
    same = runner.verify(image("obama.jpg"), image("obama2.jpg"))
    assert same.same_person and same.similarity >= same.threshold == 0.93
    assert same.distance == pytest.approx(1 - same.similarity, abs=1e-4)
    other = runner.verify(image("obama.jpg"), image("biden.jpg"))
    assert not other.same_person and other.similarity < 0.93
    assert other.faces_found == [1, 1]
    with pytest.raises(InvalidMedia, match="no face found in image 2"):
        runner.verify(image("obama.jpg"), image("view.jpg"))


def test_hundreds_of_tiny_faces_are_bounded(runner: FaceReidRunner) -> None:
    face = Image.open(sample("Rob_Lowe_0001.jpg")).convert("RGB").crop((60, 60, 200, 200)).resize((60, 60))
    mosaic = Image.new("RGB", (60 * 18, 60 * 18))
    for i in range(18 * 18):
        mosaic.paste(face, ((i % 18) * 60, (i // 18) * 60))
    result = runner.faces(np.asarray(mosaic), {"max_faces": 25})
    assert len(result.faces) == 25
    assert result.truncated >= 200, result.truncated  # 324 faces pasted; the rest are counted, not kept
    with pytest.raises(BadRequest):  # the bound, checked by the pipeline every executor takes
        prepare(CAPABILITY, "faces", {"max_faces": 100_000})


def test_face_cut_by_the_image_edge_and_huge_image(runner: FaceReidRunner) -> None:
    obama = image("obama.jpg")
    cut = np.ascontiguousarray(obama[:, 450:])  # the face's left part is outside
    result = runner.faces(cut, {})
    assert len(result.faces) == 1
    assert result.faces[0].box[0] == 0.0 and result.faces[0].box[2] <= cut.shape[1]
    big = np.asarray(Image.fromarray(obama).resize((obama.shape[1] * 6, obama.shape[0] * 6)))  # 5460 x 6822
    huge = runner.faces(big, {})
    assert len(huge.faces) == 1
    small = runner.faces(obama, {})
    assert iou([v / 6 for v in huge.faces[0].box], small.faces[0].box) > 0.8
    assert float(np.dot(huge.faces[0].embedding, small.faces[0].embedding)) > 0.95


def test_arcface_needs_detector_landmarks(runner: FaceReidRunner) -> None:
    with pytest.raises(BadRequest, match="arcface"):
        runner.faces_options({"detector": "dlib_hog", "embedder": "arcface"})
    with pytest.raises(BadRequest) as err:  # the schema, checked once by the pipeline
        prepare(CAPABILITY, "faces", {"detector": "yolo"})
    assert err.value.code == "invalid_option"


def test_loading_opens_no_socket(real_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a socket was opened while loading face models")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    r = FaceReidRunner(FaceReidSettings(core={"models_dir": real_models_dir}))
    r.preload()
    assert r.ready() is None
    assert len(r.faces(image("Rob_Lowe_0001.jpg"), {}).faces) == 1


def test_cli_verify_and_analyze_embedded(
    real_models_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import json

    from mediafleet.cli.main import main

    monkeypatch.setenv("MEDIAFLEET_MODELS_DIR", str(real_models_dir))
    assert main(["faces", "verify", str(sample("Rob_Lowe_0001.jpg")), str(sample("Rob_Lowe_0002.jpg"))]) == 0
    out = capsys.readouterr().out
    assert out.startswith("same person: cosine similarity 0.9") and "threshold 0.93 (mtcnn + dlib)" in out
    args = [
        "faces",
        "verify",
        str(sample("Rob_Lowe_0001.jpg")),
        str(sample("Nathalie_Baye_0002.jpg")),
        "--json",
    ]
    assert main([*args, "--detector", "dlib_hog"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert (
        verdict["same_person"] is False and verdict["detector"] == "dlib_hog" and verdict["similarity"] < 0.93
    )
    assert main(["faces", "verify", str(sample("obama.jpg")), str(sample("view.jpg"))]) == 1
    assert capsys.readouterr().err.strip() == "mediafleet: faces verify: no face found in image 2"
    assert main(["faces", "verify", str(sample("obama.jpg")), "/nonexistent.jpg"]) == 1
    db = f"sqlite:///{real_models_dir.parent / 'cli-faces-test.db'}"
    try:
        assert main(["analyze", str(sample("zidane.jpg")), "--tasks", "faces", "--json", "--db", db]) == 0
        item = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert len(item["results"]["faces"]["faces"]) == 2
    finally:
        Path(db.removeprefix("sqlite:///")).unlink(missing_ok=True)


def test_a_large_image_file_is_fitted_and_answered_in_its_own_pixels(
    runner: FaceReidRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """obama.jpg enlarged 4x (each pixel a 4 x 4 block) is decoded fitted to ``max_side`` =
    obama.jpg's longer side: shrunk by 4 (block means) back to obama.jpg's own pixels, so the
    face is the one found there (embedding, score) with ``min_size`` / 4 (it counts
    full-image pixels), its box and landmarks 4x."""
    with Image.open(sample("obama.jpg")) as im:
        small = im.convert("RGB")
    big = tmp_path / "obama4x.png"
    small.resize((small.width * 4, small.height * 4), Image.Resampling.NEAREST).save(big)
    assert FaceReidSettings().max_side == 3200
    monkeypatch.setattr(runner.settings, "max_side", max(small.size))
    want = runner.faces(image("obama.jpg"), {"min_size": max(1, round(runner.settings.min_size / 4))})
    got = runner.run("faces", big, {}, {}, lambda *_: None)
    assert (got.width, got.height) == (4 * want.width, 4 * want.height)
    assert len(got.faces) == len(want.faces) == 1
    a, b = want.faces[0], got.faces[0]
    assert b.score == a.score and b.embedding == a.embedding
    assert np.allclose(b.box, [4 * v for v in a.box], atol=0.3)
    assert np.allclose(b.landmarks, [[4 * x, 4 * y] for x, y in a.landmarks], atol=0.3)
    side = min(a.box[2] - a.box[0], a.box[3] - a.box[1])  # face side, obama.jpg pixels
    too_big = runner.run("faces", big, {"min_size": int(4 * side * 1.2)}, {}, lambda *_: None)
    assert too_big.faces == []
