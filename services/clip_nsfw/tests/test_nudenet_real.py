"""NudeNet 320n on its real weights (`make test` provisions nudenet-320n).

The shared corpus is all safe: every image must come out `safe` with the default engine.
No unsafe media is committed or read, so the score's response to nudity itself cannot be
tested here; what is tested is that the pipeline around the model is right:
- with nudenet's own channel order (``CLIP_NUDENET_CHANNEL_ORDER=bgr``), this
  re-implementation reproduces the reference package's detections on every corpus image
  (nudenet 3.4.2 from the package cache, run with OpenCV as it ships): same classes, scores
  within 0.01, boxes within 2 px; the one exposed-class detection it makes raises the score;
- the channel order the model expects: RGB. nudenet 3.4.2 calls
  ``cv2.cvtColor(bgr, COLOR_RGBA2BGR)`` on a 3-channel image, which swaps R and B, then
  ``blobFromImage(swapRB=True)`` swaps back, so it feeds BGR; on the corpus RGB gives the
  labels a person would (biden.jpg FACE_MALE, bus.jpg's shoes FEET_COVERED), BGR does not;
- the score is the highest exposed-class detection, the label follows the threshold.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mediafleet.clip_nsfw.contract import CAPABILITY, NSFW_CLASSES, Detection
from mediafleet.clip_nsfw.engines.nudenet import NudeNetEngine, resize_bilinear
from mediafleet.clip_nsfw.runner import ClipNsfwRunner
from mediafleet.clip_nsfw.settings import ClipNsfwSettings
from mediafleet.common.errors import BadRequest
from mediafleet.common.media import load_rgb
from mediafleet.common.pipeline.run import prepare
from mediafleet.common.settings import CoreSettings
from tests.conftest import SHARED_MEDIA, sample

CORPUS_IMAGES = sorted(
    p.name for p in SHARED_MEDIA.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif")
)


@pytest.fixture(scope="module")
def runner(real_models_dir: Path) -> ClipNsfwRunner:
    r = ClipNsfwRunner(ClipNsfwSettings(core=CoreSettings(models_dir=real_models_dir), preload=["nudenet"]))
    r.preload()
    assert r.ready() is None
    return r


def test_corpus_is_safe(runner: ClipNsfwRunner) -> None:
    assert len(CORPUS_IMAGES) >= 20
    scores = {}
    for name in CORPUS_IMAGES:
        result = runner.run("nsfw", sample(name), {}, {}, lambda *_: None)
        assert result.nsfw.engine == "nudenet" and result.nsfw.threshold == 0.5
        assert result.nsfw.label == "safe", (name, result.nsfw)
        scores[name] = result.nsfw.score
    assert max(scores.values()) < 0.5


@pytest.fixture(scope="module")
def reference_nudenet(real_models_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """nudenet 3.4.2's own NudeDetector, from the wheel `models pull` cached (pure Python + OpenCV)."""
    import zipfile

    from mediafleet.common.provision import default_cache_dir, fetch_package

    wheel = fetch_package("nudenet==3.4.2", default_cache_dir())
    target = tmp_path_factory.mktemp("nudenet-ref")
    with zipfile.ZipFile(wheel) as zf:
        zf.extract("nudenet/nudenet.py", target)
        zf.extract("nudenet/__init__.py", target)
    sys.path.insert(0, str(target))
    try:
        from nudenet.nudenet import NudeDetector
    finally:
        sys.path.remove(str(target))
    return NudeDetector(model_path=str(real_models_dir / "nudenet" / "320n.onnx"))


@pytest.mark.parametrize("name", CORPUS_IMAGES)
def test_bgr_reproduces_the_reference_package(runner: ClipNsfwRunner, reference_nudenet, name: str) -> None:
    """With nudenet's channel order, every image of the corpus: the same classes, each score
    within 0.01 and each box within 2 px of nudenet 3.4.2's (its boxes are xywh truncated to int)."""
    import cv2

    path = str(sample(name))
    ref = sorted(reference_nudenet.detect(path), key=lambda r: (r["class"], -r["score"]))
    rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)  # the same decoder as the reference
    ours = sorted(runner.nudenet.detect(rgb, channel_order="bgr"), key=lambda d: (d.label, -d.score))
    assert [d.label for d in ours] == [r["class"] for r in ref]
    for d, r in zip(ours, ref, strict=True):
        x, y, w, h = r["box"]
        assert abs(d.score - r["score"]) <= 0.01, (d, r)
        assert np.allclose(d.box, [x, y, x + w, y + h], atol=2), (d.box, r["box"])


def test_the_nsfw_class_upstream_reports_on_the_corpus_raises_the_score(
    real_models_dir: Path, reference_nudenet
) -> None:
    """The unsafe direction without unsafe media: the only exposed-class detection nudenet 3.4.2
    makes on the shared corpus is MALE_GENITALIA_EXPOSED (0.29) on lin-manuel-miranda.png, a
    clothed portrait. With ``CLIP_NUDENET_CHANNEL_ORDER=bgr`` the job's score is that detection
    (below the 0.5 threshold: safe); with the default RGB the model makes no such detection."""
    path = sample("lin-manuel-miranda.png")
    ref = [r for r in reference_nudenet.detect(str(path)) if r["class"] in NSFW_CLASSES]
    assert [r["class"] for r in ref] == ["MALE_GENITALIA_EXPOSED"]
    settings = ClipNsfwSettings(core=CoreSettings(models_dir=real_models_dir), preload=["nudenet"])
    upstream = ClipNsfwRunner(settings.model_copy(update={"nudenet_channel_order": "bgr"}))
    nsfw = upstream.run("nsfw", path, {}, {}, lambda *_: None).nsfw
    assert abs(nsfw.score - ref[0]["score"]) <= 0.01 and nsfw.label == "safe"
    assert upstream.nudenet.model_version.endswith("+bgr")
    default = ClipNsfwRunner(settings).run("nsfw", path, {}, {}, lambda *_: None).nsfw
    assert default.score == 0.0


def test_the_model_reads_rgb(runner: ClipNsfwRunner) -> None:
    def labels(name: str, order: str) -> set[str]:
        return {d.label for d in runner.nudenet.detect(load_rgb(sample(name)), channel_order=order)}

    assert "FACE_MALE" in labels("biden.jpg", "rgb") and "FACE_MALE" not in labels("biden.jpg", "bgr")
    assert "FEET_COVERED" in labels("bus.jpg", "rgb") and "FEET_EXPOSED" in labels("bus.jpg", "bgr")


def test_score_is_the_highest_exposed_detection(runner: ClipNsfwRunner) -> None:
    dets = [Detection(label="FACE_FEMALE", score=0.9, box=[0, 0, 1, 1]),
            Detection(label=NSFW_CLASSES[0], score=0.31, box=[0, 0, 1, 1]),
            Detection(label=NSFW_CLASSES[2], score=0.62, box=[0, 0, 1, 1])]  # fmt: skip
    assert NudeNetEngine.score(dets) == 0.62 and NudeNetEngine.score(dets[:1]) == 0.0
    assert runner.nsfw_options({"threshold": 0.2}) == {"engine": "nudenet", "threshold": 0.2}
    assert runner.nsfw_options({"engine": "clip"})["threshold"] == runner.settings.clip_threshold
    with pytest.raises(BadRequest) as err:  # the schema, checked once by the pipeline
        prepare(CAPABILITY, "nsfw", {"threshold": 2})
    assert err.value.code == "invalid_option"


def test_resize_matches_opencv_inter_linear() -> None:
    import cv2

    img = np.asarray(Image.open(sample("bus.jpg")).convert("RGB"))
    ours = resize_bilinear(img, 320)
    ref = cv2.resize(img, (320, 320), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    assert np.array_equal(ours, np.round(ours)) and np.abs(ours - ref).max() <= 1.0
    assert (ours != ref).mean() < 0.15  # OpenCV's 11-bit fixed-point weights round a few differently


def test_missing_weights_name_the_command(tmp_path: Path) -> None:
    r = ClipNsfwRunner(
        ClipNsfwSettings(core=CoreSettings(models_dir=tmp_path), preload=["nudenet", "open_clip"])
    )
    r.preload()
    reason = r.ready()
    assert (
        "mediafleet models pull nudenet-320n" in reason
        and "CLIP ViT-B-32" in reason
        and "weights are not installed" in reason
    )


def test_a_large_image_is_fitted_and_boxed_in_its_own_pixels(runner: ClipNsfwRunner, tmp_path: Path) -> None:
    """bus.jpg enlarged 3x (each pixel a 3 x 3 block: 2430 x 3240) is decoded fitted to
    ``CLIP_MAX_SIDE`` 1280: shrunk by 3 (block means) back to bus.jpg's own pixels, so
    NudeNet finds the same detections with 3x boxes."""
    with Image.open(sample("bus.jpg")) as im:
        small = im.convert("RGB")
    big, same = tmp_path / "bus3x.png", tmp_path / "bus.png"
    small.resize((small.width * 3, small.height * 3), Image.Resampling.NEAREST).save(big)
    small.save(same)
    assert runner.settings.max_side == 1280
    want = runner.run("nsfw", same, {}, {}, lambda *_: None).nsfw
    got = runner.run("nsfw", big, {}, {}, lambda *_: None).nsfw
    assert got.score == want.score and len(got.detections) == len(want.detections) >= 1
    for a, b in zip(want.detections, got.detections, strict=True):
        assert (b.label, b.score) == (a.label, a.score)
        assert np.allclose(b.box, [3 * v for v in a.box], atol=0.2)
