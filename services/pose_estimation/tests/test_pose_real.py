"""pose_estimation on the real YOLO11n-pose weights (`make test` provisions .pt and its ONNX export).

Ground truth: ../shared/media/MANIFEST.md (person counts; the COCO annotation's box for
coco_000000000785.jpg).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from PIL import Image
from rq import Queue

from mediafleet.common import registry
from mediafleet.common.errors import BadRequest
from mediafleet.common.pipeline.run import execute, prepare
from mediafleet.common.queues import TASK_FUNCTION, family_queues
from mediafleet.common.service_app import create_service_app
from mediafleet.common.settings import CoreSettings
from mediafleet.common.taskrun import Runtime
from mediafleet.common.worker import ModelWorker
from mediafleet.pose_estimation.contract import CAPABILITY, COCO_KEYPOINTS, PoseResult
from mediafleet.pose_estimation.runner import PoseRunner
from mediafleet.pose_estimation.settings import PoseSettings
from tests.conftest import sample

PERSON_COUNTS = {
    "bus.jpg": 4,
    "zidane.jpg": 2,
    "coco_000000000785.jpg": 1,
    "human-pose.jpeg": 1,
    "view.jpg": 0,
}
#: test_coco.json of mmpose (MANIFEST): bbox [281, 45, 219, 347] as x, y, w, h.
COCO_785_BOX = (281.0, 45.0, 281.0 + 219.0, 45.0 + 347.0)


def iou(a, b) -> float:
    """Intersection over union of two xyxy boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@pytest.fixture(scope="module")
def runner(real_models_dir: Path) -> PoseRunner:
    r = PoseRunner(PoseSettings(core=CoreSettings(models_dir=real_models_dir), preload=["onnx", "pt"]))
    r.preload()
    assert r.ready() is None
    return r


def run(runner: PoseRunner, path: Path, **options) -> PoseResult:
    """``pose`` on an image by the pipeline every executor takes (options checked once)."""
    result = execute(prepare(CAPABILITY, "pose", options), runner, path, media_kind="image")
    assert isinstance(result, PoseResult)
    return result


@pytest.mark.parametrize("runtime", ["onnx", "pt"])
@pytest.mark.parametrize("name", sorted(PERSON_COUNTS))
def test_person_counts_and_keypoints(runner: PoseRunner, runtime: str, name: str) -> None:
    result = run(runner, sample(name), runtime=runtime)
    assert result.runtime == runtime and result.model == "yolo11n-pose"
    assert len(result.people) == PERSON_COUNTS[name], [p.score for p in result.people]
    assert result.keypoint_names == list(COCO_KEYPOINTS)
    with Image.open(sample(name)) as im:
        assert (result.width, result.height) == im.size
    for person in result.people:
        x1, y1, x2, y2 = person.box
        assert 0 <= x1 < x2 <= result.width + 0.5 and 0 <= y1 < y2 <= result.height + 0.5
        assert len(person.keypoints) == 17
        for x, y, score in person.keypoints:
            assert -0.5 <= x <= result.width + 0.5 and -0.5 <= y <= result.height + 0.5
            assert 0.0 <= score <= 1.0
    scores = [p.score for p in result.people]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("runtime", ["onnx", "pt"])
def test_coco_box_matches_the_annotation(runner: PoseRunner, runtime: str) -> None:
    (person,) = run(runner, sample("coco_000000000785.jpg"), runtime=runtime).people
    assert iou(person.box, COCO_785_BOX) >= 0.9, person.box
    # the skier is upright: nose above the hips, hips above the ankles
    kp = {name: xy for name, xy in zip(COCO_KEYPOINTS, person.keypoints, strict=True)}
    assert kp["nose"][1] < kp["left_hip"][1] < kp["left_ankle"][1]


@pytest.mark.parametrize("name", ["bus.jpg", "zidane.jpg"])
def test_onnx_and_pytorch_agree(runner: PoseRunner, name: str) -> None:
    """Same people from both runtimes. The .pt path letterboxes to a minimal rectangle (640x480
    for bus.jpg), the static ONNX to 640x640, so boxes move a little; the half-visible person at
    bus.jpg's left edge (score 0.41 vs 0.50) moves most (IoU 0.62), confident people agree."""
    onnx = run(runner, sample(name), runtime="onnx").people
    pt = run(runner, sample(name), runtime="pt").people
    assert len(onnx) == len(pt)
    for person in pt:
        best = max(iou(person.box, other.box) for other in onnx)
        assert best >= (0.95 if person.score >= 0.8 else 0.5), (person.box, person.score)


def test_options_threshold_max_people_and_errors(runner: PoseRunner) -> None:
    assert len(run(runner, sample("bus.jpg"), max_people=2).people) == 2
    strict = run(runner, sample("bus.jpg"), conf=0.85).people
    assert all(p.score >= 0.85 for p in strict) and len(strict) < 4
    for bad in ({"conf": 1.5}, {"max_people": 0}, {"runtime": "tflite"}, {"colour": "red"}):
        with pytest.raises(BadRequest) as err:
            run(runner, sample("bus.jpg"), **bad)
        assert err.value.code == "invalid_option"


def test_exif_rotated_image_gives_displayed_coordinates(runner: PoseRunner, tmp_path: Path) -> None:
    """Pixels stored rotated 90 degrees with EXIF orientation 6 display as the original."""
    with Image.open(sample("coco_000000000785.jpg")) as im:
        original = im.convert("RGB")
    stored = original.transpose(Image.Transpose.ROTATE_90)  # what a camera held sideways stores
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    result = run(runner, path)
    assert (result.width, result.height) == original.size
    (person,) = result.people
    assert iou(person.box, COCO_785_BOX) >= 0.85


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "I;16"])
def test_other_pixel_formats(runner: PoseRunner, tmp_path: Path, mode: str) -> None:
    with Image.open(sample("coco_000000000785.jpg")) as im:
        rgb = im.convert("RGB")
    if mode == "I;16":
        converted = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    else:
        converted = rgb.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    converted.save(path)
    assert len(run(runner, path).people) == 1


def test_animated_gif_uses_the_first_frame(runner: PoseRunner, tmp_path: Path) -> None:
    with Image.open(sample("coco_000000000785.jpg")) as im:
        first = im.convert("RGB")
    blank = Image.new("RGB", first.size, (255, 255, 255))
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[blank, blank], duration=100, loop=0)
    assert len(run(runner, path).people) == 1


def test_missing_weights_make_readyz_name_the_command(tmp_path: Path) -> None:
    r = PoseRunner(PoseSettings(core=CoreSettings(models_dir=tmp_path), preload=["onnx", "pt"]))
    r.preload()  # no raise: the service starts and says why it is not ready
    reason = r.ready()
    assert "mediafleet models export yolo11n-pose --format onnx" in reason
    assert "mediafleet models pull yolo11n-pose" in reason
    client = TestClient(create_service_app(registry.get("pose_estimation"), r))
    resp = client.get("/readyz")
    assert resp.status_code == 503 and "models pull yolo11n-pose" in resp.text


def test_corrupt_weights_are_reported_not_crashing(tmp_path: Path, real_models_dir: Path) -> None:
    target = tmp_path / "ultralytics" / "yolo11n-pose.pt"
    target.parent.mkdir()
    size = (real_models_dir / "ultralytics" / "yolo11n-pose.pt").stat().st_size
    target.write_bytes(b"\0" * size)  # right size, garbage content
    r = PoseRunner(PoseSettings(core=CoreSettings(models_dir=tmp_path), preload=["pt"]))
    r.preload()
    assert r.ready() is not None and "cannot load model" in r.ready()


def test_http_predict(runner: PoseRunner) -> None:
    client = TestClient(create_service_app(registry.get("pose_estimation"), runner))
    body = sample("zidane.jpg").read_bytes()
    resp = client.post("/v1/predict", files={"file": ("z.jpg", body)}, data={"task": "pose"})
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["people"]) == 2
    bad = client.post("/v1/predict", files={"file": ("x.jpg", b"not an image")}, data={"task": "pose"})
    assert bad.status_code == 415 and bad.json()["error"]["code"] == "unsupported_media_type"
    opts = client.post(
        "/v1/predict", files={"file": ("z.jpg", body)}, data={"task": "pose", "options": '{"conf": 7}'}
    )
    assert opts.status_code == 400 and opts.json()["error"]["code"] == "invalid_option"
    models = client.get("/v1/models").json()
    assert {m["runtime"] for m in models["data"] if m["loaded"]} == {"onnx", "pt"}


def test_task_through_a_worker(runner: PoseRunner, redis_url: str, tmp_path: Path) -> None:
    cap = registry.get("pose_estimation")
    conn = redis.Redis.from_url(redis_url)
    image = tmp_path / "zidane.jpg"
    image.write_bytes(sample("zidane.jpg").read_bytes())
    queue = Queue(f"{cap.queue}:normal", connection=conn)
    payload = {"task": "pose", "task_id": "t1", "job_id": "j1", "media_id": "m", "storage_path": image.name}
    job = queue.enqueue(TASK_FUNCTION, payload)
    ModelWorker(family_queues(cap), connection=conn, runtime=Runtime(cap, runner, conn, image.parent)).work(
        burst=True
    )
    outcome = job.latest_result().return_value
    assert outcome["ok"] is True and len(outcome["result"]["people"]) == 2


def test_array_input_is_rgb(runner: PoseRunner) -> None:
    """ultralytics reads arrays as BGR: the engine must swap, so a file and its RGB array agree."""
    with Image.open(sample("bus.jpg")) as im:
        rgb = np.asarray(im.convert("RGB"))
    engine = runner.engines["pt"]
    from_array = engine.predict(rgb)
    swapped = engine.predict(np.ascontiguousarray(rgb[..., ::-1]))  # what a missing swap would feed
    from_file = run(runner, sample("bus.jpg"), runtime="pt")
    assert [p.score for p in from_array.people] == [p.score for p in from_file.people]
    assert [p.score for p in swapped.people] != [p.score for p in from_file.people]


def test_pillow_is_left_unpatched(runner: PoseRunner, tmp_path: Path) -> None:
    """ultralytics patches PIL.Image.open; a non-image must still be Pillow's UnidentifiedImageError."""
    from PIL import UnidentifiedImageError

    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(UnidentifiedImageError):
        Image.open(junk)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` (a bomb's shape) with almost no data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_huge_image_is_refused_before_decoding(runner: PoseRunner, tmp_path: Path) -> None:
    from mediafleet.common.errors import InvalidMedia

    path = tmp_path / "bomb.png"
    _png_header_only(path, 20000, 20000)
    with pytest.raises(InvalidMedia, match="too large|decompression bomb"):
        run(runner, path)


def test_broken_exif_is_ignored(runner: PoseRunner, tmp_path: Path) -> None:
    with Image.open(sample("coco_000000000785.jpg")) as im:
        rgb = im.convert("RGB")
    path = tmp_path / "broken-exif.jpg"
    rgb.save(path, exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7fgarbage")  # IFD offset past the end
    result = run(runner, path)
    assert (result.width, result.height) == rgb.size and len(result.people) == 1


def test_a_large_image_is_fitted_and_answered_in_its_own_pixels(runner: PoseRunner, tmp_path: Path) -> None:
    """bus.jpg enlarged 3x (each pixel a 3 x 3 block: 2430 x 3240) is decoded fitted to
    ``max_side`` 1280: shrunk by 3 (block means) back to bus.jpg's own pixels, so the people
    are bus.jpg's with every box and keypoint x and y times 3, in a 2430 x 3240 frame."""
    with Image.open(sample("bus.jpg")) as im:
        small = im.convert("RGB")
    big = tmp_path / "bus3x.png"
    small.resize((small.width * 3, small.height * 3), Image.Resampling.NEAREST).save(big)
    small_path = tmp_path / "bus.png"  # the same pixels losslessly (bus.jpg is decoded once)
    small.save(small_path)
    assert runner.settings.max_side == 1280
    want, got = run(runner, small_path, runtime="pt"), run(runner, big, runtime="pt")
    assert (got.width, got.height) == (3 * want.width, 3 * want.height) == (2430, 3240)
    assert len(got.people) == len(want.people) == 4
    for a, b in zip(want.people, got.people, strict=True):
        assert b.score == a.score
        assert np.allclose(b.box, [3 * v for v in a.box], atol=0.05)
        assert np.allclose(
            [k[:2] for k in b.keypoints], [[3 * x, 3 * y] for x, y, _ in a.keypoints], atol=0.05
        )
        assert [k[2] for k in b.keypoints] == [k[2] for k in a.keypoints]


def test_an_onnx_request_leaves_pytorch_s_threads_alone(real_models_dir: Path) -> None:
    """The first ONNX request loads that engine, and ultralytics' device selection used to set
    PyTorch's process-wide thread count to cores - 1 (2 -> 1 here) for the rest of the process."""
    import os

    import torch

    cores = len(os.sched_getaffinity(0))
    runner = PoseRunner(PoseSettings(core=CoreSettings(models_dir=real_models_dir), preload=["pt"]))
    runner.preload()
    assert torch.get_num_threads() == cores
    assert run(runner, sample("bus.jpg"), runtime="onnx").runtime == "onnx"
    assert torch.get_num_threads() == cores
    one = PoseRunner(
        PoseSettings(core=CoreSettings(models_dir=real_models_dir), preload=["pt", "onnx"], threads=1)
    )
    one.preload()
    assert torch.get_num_threads() == 1  # POSE_THREADS is kept whichever engine loads last
    runner.preload()  # engines already loaded: nothing changes
    assert torch.get_num_threads() == 1
    # ONNX Runtime gets the threads PyTorch gets (ultralytics leaves it at every host core)
    assert runner.engines["onnx"].onnx_threads() == cores
    assert one.engines["onnx"].onnx_threads() == 1


def test_the_default_runtime_preloads_unless_told_otherwise(real_models_dir: Path) -> None:
    runner = PoseRunner(PoseSettings(core=CoreSettings(models_dir=real_models_dir)))
    assert (runner.default_runtime(), runner.preload_names()) == ("pt", ["pt"])
    onnx = PoseRunner(PoseSettings(core=CoreSettings(models_dir=real_models_dir), default_runtime="onnx"))
    assert onnx.preload_names() == ["onnx"] and onnx.default_options("pose")["runtime"] == "onnx"
