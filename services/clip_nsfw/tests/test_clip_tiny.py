"""CLIP mechanics on a tiny generated open_clip model (no CLIP weights are reachable here).

The model is built by open_clip from ``tiny-clip.json`` with a fixed seed and saved as a
real checkpoint (a state dict, as open_clip's ``pretrained=<file>`` loads it); the service
loads it through the same code path as ViT-B-32. Only mechanics are testable with random
weights: shape, normalisation, determinism, orientation, the vectors the contract stores,
the zero-shot path, offline loading. Semantic quality needs real weights (README, CLIP).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis
from PIL import Image
from rq import Queue
from tiny_clip import CONFIG, NAME, make_checkpoint

from mediafleet.clip_nsfw.contract import CAPABILITY
from mediafleet.clip_nsfw.runner import ClipNsfwRunner
from mediafleet.clip_nsfw.settings import ClipNsfwSettings
from mediafleet.common.queues import TASK_FUNCTION, family_queues
from mediafleet.common.settings import CoreSettings
from mediafleet.common.taskrun import Runtime
from mediafleet.common.worker import ModelWorker
from tests.conftest import sample
from tests.offline import run_without_network


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory, real_models_dir: Path) -> ClipNsfwRunner:
    ckpt = make_checkpoint(tmp_path_factory.mktemp("clip") / "tiny.pt")
    settings = ClipNsfwSettings(
        core=CoreSettings(models_dir=real_models_dir), model=NAME, pretrained="seed0",
        weights=ckpt, arch_config=CONFIG, preload=["open_clip", "nudenet"],
    )  # fmt: skip
    r = ClipNsfwRunner(settings)
    r.preload()
    assert r.ready() is None
    return r


def test_image_embedding_shape_norm_and_determinism(runner: ClipNsfwRunner) -> None:
    a = runner.run("clip", sample("bus.jpg"), {}, {}, lambda *_: None)
    b = runner.run("clip", sample("bus.jpg"), {}, {}, lambda *_: None)
    c = runner.run("clip", sample("view.jpg"), {}, {}, lambda *_: None)
    assert a.dim == 32 == len(a.embedding) and a.engine == "open_clip" and a.model == NAME
    assert a.collection == "clip-mf-tiny-clip-seed0" and len(a.model_version) == 12
    assert np.linalg.norm(a.embedding) == pytest.approx(1.0, abs=1e-5)
    assert a.embedding == b.embedding and a.embedding != c.embedding
    (item,) = CAPABILITY.task("clip").vectors(a)
    assert item.collection == a.collection and item.vector == a.embedding


def test_text_embedding(runner: ClipNsfwRunner) -> None:
    cat, bus = runner.embed_text("a cat"), runner.embed_text("a bus")
    assert len(cat) == 32 and np.linalg.norm(cat) == pytest.approx(1.0, abs=1e-5) and cat != bus


def test_exif_orientation_is_applied(runner: ClipNsfwRunner, tmp_path: Path) -> None:
    with Image.open(sample("bus.jpg")) as im:
        upright = im.convert("RGB")
    upright.save(tmp_path / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "rotated.png", exif=exif)
    a = runner.run("clip", tmp_path / "upright.png", {}, {}, lambda *_: None).embedding
    b = runner.run("clip", tmp_path / "rotated.png", {}, {}, lambda *_: None).embedding
    assert np.allclose(a, b, atol=1e-5)


def test_zero_shot_nsfw_path(runner: ClipNsfwRunner) -> None:
    result = runner.run(
        "nsfw", sample("view.jpg"), {"engine": "clip", "threshold": 0.99}, {}, lambda *_: None
    )
    assert result.nsfw.engine == "clip" and 0.0 <= result.nsfw.score <= 1.0
    assert "only with real CLIP weights" in result.nsfw.notes and result.model == NAME


def test_options_are_checked(runner: ClipNsfwRunner) -> None:
    """By the pipeline every executor takes, before the runner sees them."""
    from mediafleet.common.errors import BadRequest
    from mediafleet.common.pipeline.run import execute, prepare

    for task, options in (("clip", {"size": 3}), ("nsfw", {"engine": "magic"})):
        with pytest.raises(BadRequest) as err:
            execute(prepare(CAPABILITY, task, options), runner, sample("bus.jpg"), media_kind="image")
        assert err.value.code == "invalid_option"


def test_clip_task_through_a_worker(runner: ClipNsfwRunner, redis_url: str, tmp_path: Path) -> None:
    conn = redis.Redis.from_url(redis_url)
    image = tmp_path / "bus.jpg"
    image.write_bytes(sample("bus.jpg").read_bytes())
    queue = Queue(f"{CAPABILITY.queue}:normal", connection=conn)
    jobs = [queue.enqueue(TASK_FUNCTION, {"task": t, "task_id": t, "job_id": "j1", "media_id": "m",
                                          "storage_path": image.name}) for t in ("clip", "nsfw")]  # fmt: skip
    ModelWorker(
        family_queues(CAPABILITY),
        connection=conn,
        runtime=Runtime(CAPABILITY, runner, conn, image.parent),
    ).work(burst=True)
    clip, nsfw = (j.latest_result().return_value for j in jobs)
    assert clip["ok"] is True and clip["result"]["dim"] == 32
    assert nsfw["ok"] is True and nsfw["result"]["nsfw"]["label"] == "safe"


BODY = r"""
from pathlib import Path
from mediafleet.clip_nsfw.runner import ClipNsfwRunner
from mediafleet.clip_nsfw.settings import ClipNsfwSettings
from mediafleet.common.settings import CoreSettings
ckpt, config, models, image = sys.argv[1:5]
r = ClipNsfwRunner(ClipNsfwSettings(core=CoreSettings(models_dir=Path(models)), model="mf-tiny-clip",
    pretrained="seed0", weights=Path(ckpt), arch_config=Path(config)))
r.preload()
r.run("clip", Path(image), {}, {}, None); r.embed_text("a cat"); r.run("nsfw", Path(image), {}, {}, None)
report = {"ready": r.ready()}
"""


def test_loading_and_inference_open_no_socket(runner: ClipNsfwRunner, real_models_dir: Path) -> None:
    args = (str(runner.settings.weights), str(CONFIG), str(real_models_dir), str(sample("bus.jpg")))
    assert run_without_network(BODY, *args) == {"ready": None, "attempts": []}


def test_clip_near_duplicate_rule() -> None:
    """Cosine similarity of the stored embeddings, duplicate at >= 0.99; another model's
    embeddings are never compared (vectors worked out by hand)."""
    from mediafleet.clip_nsfw.contract import ClipResult, clip_likeness

    def result(vector: list[float], pretrained: str = "seed0") -> ClipResult:
        v = np.asarray(vector) / np.linalg.norm(vector)
        return ClipResult(embedding=v.tolist(), dim=2, model=NAME, pretrained=pretrained, model_version="x",
                          collection="c", elapsed_ms=1.0)  # fmt: skip

    same = clip_likeness(result([1.0, 0.1]), result([1.0, 0.1]))
    assert (same.duplicate, same.similarity, same.method) == (True, 1.0, "clip")
    # cos(8.1 degrees) = 0.990: a duplicate; cos(11.5 degrees) = 0.980: not
    near = clip_likeness(result([1.0, 0.0]), result([np.cos(np.radians(8.1)), np.sin(np.radians(8.1))]))
    assert near.duplicate and near.similarity == pytest.approx(0.99, abs=1e-3)
    far = clip_likeness(result([1.0, 0.0]), result([np.cos(np.radians(11.5)), np.sin(np.radians(11.5))]))
    assert not far.duplicate and far.similarity == pytest.approx(0.98, abs=1e-3)
    other = clip_likeness(result([1.0, 0.1]), result([1.0, 0.1], pretrained="laion2b"))
    assert (other.duplicate, other.detail) == (False, "different CLIP models")
