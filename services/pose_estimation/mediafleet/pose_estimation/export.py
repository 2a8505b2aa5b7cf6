"""ONNX export of a YOLO pose checkpoint with ultralytics' own exporter, reproducibly.

Called by ``mediafleet models pull yolo11n-pose-onnx`` (catalogue ``export``), never at
request time. ultralytics stamps the export time into the ONNX metadata (``date``), which
would make every export a different file; it is replaced by the source checkpoint's own
date, so the same checkpoint exported with the same library versions (``uv.lock``) gives
the same bytes, and the catalogue can hold its SHA-256.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mediafleet.pose_estimation.engines.ultralytics import import_ultralytics, offline_environment


def export_onnx(source: Path, target: Path, imgsz: int = 640) -> dict[str, str]:
    """Export ``source`` (.pt) to ``target`` (.onnx, opset chosen by ultralytics, static batch 1, ``imgsz`` square).

    Returns the library versions it was made with. Raises RuntimeError when the export fails.
    """
    offline_environment()
    import onnx
    import torch
    import ultralytics

    YOLO = import_ultralytics()

    with tempfile.TemporaryDirectory(prefix="mediafleet-export-") as tmp:
        pt = Path(tmp) / Path(source).name
        shutil.copyfile(source, pt)
        model = YOLO(str(pt), task="pose")
        checkpoint_date = str((getattr(model, "ckpt", None) or {}).get("date") or "unknown")
        out = model.export(format="onnx", imgsz=imgsz, dynamic=False, simplify=False, half=False)
        if not out or not Path(out).is_file():
            raise RuntimeError(f"ultralytics export wrote no file for {source}")
        proto = onnx.load(out)
        for prop in proto.metadata_props:
            if prop.key == "date":
                prop.value = checkpoint_date
        onnx.save(proto, str(target))
    return {"ultralytics": ultralytics.__version__, "torch": torch.__version__, "onnx": onnx.__version__}
