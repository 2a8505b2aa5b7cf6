"""ultralytics opens no network connection: load, predict and export in a fresh interpreter with the network cut.

Every DNS lookup and every AF_INET/AF_INET6 connect is recorded and refused
(``tests/offline.py``); ultralytics' defaults would check for updates, sync settings,
and pip-install onnxslim on export.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import sample
from tests.offline import run_without_network

BODY = r"""
from pathlib import Path
models_dir, image, out_dir = map(Path, sys.argv[1:4])
from mediafleet.common.settings import CoreSettings
from mediafleet.pose_estimation.export import export_onnx
from mediafleet.pose_estimation.runner import PoseRunner
from mediafleet.pose_estimation.settings import PoseSettings

runner = PoseRunner(PoseSettings(core=CoreSettings(models_dir=models_dir), preload=["onnx", "pt"]))
runner.preload()
counts = {rt: len(runner.run("pose", image, {"runtime": rt}, {}, lambda *_: None).people) for rt in ("onnx", "pt")}
versions = export_onnx(models_dir / "ultralytics" / "yolo11n-pose.pt", out_dir / "exported.onnx")
report = {"counts": counts, "exported": (out_dir / "exported.onnx").stat().st_size, "ready": runner.ready(),
          "versions": versions}
"""


def test_load_predict_and_export_open_no_socket(real_models_dir: Path, tmp_path: Path) -> None:
    report = run_without_network(
        BODY, str(real_models_dir), str(sample("zidane.jpg")), str(tmp_path), drop_env_prefix="YOLO_"
    )
    assert report["attempts"] == [], report["attempts"]
    assert report["ready"] is None and report["counts"] == {"onnx": 2, "pt": 2}
    assert report["exported"] > 1_000_000
