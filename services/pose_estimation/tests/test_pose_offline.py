"""ultralytics opens no network connection: load, predict and export in a fresh interpreter with the network cut.

Every DNS lookup and every AF_INET/AF_INET6 connect is recorded and refused; the child
fails if any happened (ultralytics' defaults would check for updates, sync settings,
and pip-install onnxslim on export).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import sample

CHILD = r"""
import json, socket, sys
from pathlib import Path

attempts = []
def refuse(kind):
    def guard(*args, **kwargs):
        attempts.append(f"{kind} {args[1:2] if kind == 'connect' else args[:1]}")
        raise OSError(f"network disabled in this test ({kind})")
    return guard

_connect = socket.socket.connect
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        attempts.append(f"connect {address}")
        raise OSError("network disabled in this test (connect)")
    return _connect(self, address)
socket.socket.connect = connect
socket.socket.connect_ex = lambda self, address: connect(self, address)
socket.getaddrinfo = refuse("getaddrinfo")
socket.gethostbyname = refuse("gethostbyname")
socket.create_connection = refuse("create_connection")

models_dir, image, out_dir = map(Path, sys.argv[1:4])
from mediafleet.common.settings import CoreSettings
from mediafleet.pose_estimation.export import export_onnx
from mediafleet.pose_estimation.runner import PoseRunner
from mediafleet.pose_estimation.settings import PoseSettings

runner = PoseRunner(PoseSettings(core=CoreSettings(models_dir=models_dir), preload=["onnx", "pt"]))
runner.preload()
counts = {rt: len(runner.run("pose", image, {"runtime": rt}, {}, lambda *_: None).people) for rt in ("onnx", "pt")}
versions = export_onnx(models_dir / "ultralytics" / "yolo11n-pose.pt", out_dir / "exported.onnx")
print(json.dumps({"attempts": attempts, "counts": counts, "exported": (out_dir / "exported.onnx").stat().st_size,
                  "ready": runner.ready(), "versions": versions}))
"""


def test_load_predict_and_export_open_no_socket(real_models_dir: Path, tmp_path: Path) -> None:
    env_free = {k: v for k, v in __import__("os").environ.items() if not k.startswith("YOLO_")}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(real_models_dir), str(sample("zidane.jpg")), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env_free,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["attempts"] == [], report["attempts"]
    assert report["ready"] is None and report["counts"] == {"onnx": 2, "pt": 2}
    assert report["exported"] > 1_000_000
