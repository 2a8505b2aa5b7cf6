"""The insightface engine (SCRFD + ArcFace through insightface's own model classes) on tiny
generated models in the real ONNX signatures (tiny_insightface.py): no insightface weights
are reachable here, so the checks are mechanical: loading from the models directory, box
and landmark decoding back to source pixels, alignment and a normalised 512-d embedding,
bounds, and the collection that keeps ArcFace apart from dlib."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_insightface import BOX, make_pack

from mediafleet.common.errors import EngineError
from mediafleet.common.media import load_rgb
from mediafleet.face_reid.contract import MATCH_THRESHOLDS
from mediafleet.face_reid.runner import FaceReidRunner
from mediafleet.face_reid.settings import FaceReidSettings
from tests.conftest import sample


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory, real_models_dir: Path) -> FaceReidRunner:
    models = tmp_path_factory.mktemp("models")
    make_pack(models)
    for name in ("dlib",):  # the real dlib files, for the SCRFD + dlib pairing
        (models / name).symlink_to(real_models_dir / name)
    r = FaceReidRunner(FaceReidSettings(core={"models_dir": models}, preload=["insightface", "dlib"]))
    r.preload()
    assert r.ready() is None
    return r


def test_engine_loads_insightface_classes_from_the_pack(runner: FaceReidRunner) -> None:
    from insightface.model_zoo import SCRFD, ArcFaceONNX

    assert isinstance(runner.insightface._det, SCRFD) and runner.insightface._det.use_kps
    assert isinstance(runner.insightface._rec, ArcFaceONNX)
    assert runner.insightface.embedding_dim == 512


def test_scrfd_boxes_and_landmarks_come_back_in_source_pixels(runner: FaceReidRunner) -> None:
    # 1280 x 720 -> SCRFD letterboxes to 640 x 360 (scale 0.5): every stride-32 anchor of the
    # 640 x 640 input is a 64 x 64 box centred on it, i.e. 128 x 128 in source pixels
    img = load_rgb(sample("zidane.jpg"))
    result = runner.faces(img, {"detector": "scrfd", "embedder": "arcface", "max_faces": 12, "min_size": 100})
    assert (result.detector, result.embedder, result.landmark_source) == ("scrfd", "arcface", "detector")
    assert len(result.faces) == 12 and result.truncated > 0
    side = 2 * BOX * 32 / 0.5
    for face in result.faces:
        x1, y1, x2, y2 = face.box
        assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 720
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        if x1 > 0 and y1 > 0 and x2 < 1280 and y2 < 720:  # not clipped by the edge
            assert (x2 - x1, y2 - y1) == pytest.approx((side, side), abs=0.2)
            assert cx % 64 == pytest.approx(0, abs=0.2) and cy % 64 == pytest.approx(0, abs=0.2)
            nose = face.landmarks[2]
            assert nose == pytest.approx([cx, cy], abs=0.2)
        assert face.embedding_dim == 512
        assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-5
    assert result.collection.startswith("faces-arcface-")
    assert result.threshold == MATCH_THRESHOLDS["arcface"]


def test_arcface_is_deterministic_and_apart_from_dlib(runner: FaceReidRunner) -> None:
    img = load_rgb(sample("t1.jpg"))
    opts = {"detector": "scrfd", "embedder": "arcface", "max_faces": 3}
    a, b = runner.faces(img, opts), runner.faces(img, opts)
    assert [f.embedding for f in a.faces] == [f.embedding for f in b.faces]
    dlib = runner.faces(img, {"detector": "scrfd", "embedder": "dlib", "max_faces": 3})
    assert dlib.faces[0].embedding_dim == 128 and dlib.collection.startswith("faces-dlib-")
    assert dlib.collection != a.collection


def test_missing_pack_names_where_it_goes(tmp_path: Path) -> None:
    r = FaceReidRunner(FaceReidSettings(core={"models_dir": tmp_path}, preload=["insightface"]))
    r.preload()
    assert "det_10g.onnx" in (r.ready() or "")
    with pytest.raises(EngineError, match="insightface"):
        r.insightface.load()
