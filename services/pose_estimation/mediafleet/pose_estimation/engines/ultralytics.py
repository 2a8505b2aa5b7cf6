"""YOLO pose on ultralytics, offline: the ``.pt`` checkpoint on PyTorch or its ``.onnx`` export on ONNX Runtime.

ultralytics reaches for the network by default (settings sync, hub checks, pip
auto-install of missing export/runtime packages). :func:`offline_environment` sets
``YOLO_OFFLINE=1``, ``YOLO_AUTOINSTALL=0`` and a private ``YOLO_CONFIG_DIR`` before
ultralytics is first imported; ``tests/test_pose_offline.py`` checks that load, predict
and export open no socket.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from mediafleet.common.catalogue import require_files
from mediafleet.common.engine import Engine
from mediafleet.common.provision import sha256_of
from mediafleet.pose_estimation.contract import Person, PoseResult, Runtime

if TYPE_CHECKING:
    import torch
    from ultralytics.engine.results import Results
    from ultralytics.models.yolo.model import YOLO


def offline_environment(config_dir: Path | None = None) -> None:
    """Make ultralytics offline and quiet. Call before ``import ultralytics`` (later calls are harmless)."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    default = Path(tempfile.gettempdir()) / f"mediafleet-ultralytics-{os.getuid()}"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir or default))
    Path(os.environ["YOLO_CONFIG_DIR"]).mkdir(parents=True, exist_ok=True)


def import_ultralytics() -> type[YOLO]:
    """``ultralytics.YOLO``, imported offline, with Pillow left as it was.

    Importing ultralytics replaces ``PIL.Image.open`` process-wide with a wrapper that, on an
    unidentified image, tries to install and import ``pi_heif`` (ModuleNotFoundError instead
    of Pillow's UnidentifiedImageError: a non-image upload would become a server error). The
    original is put back; this service hands ultralytics decoded arrays, never files.
    """
    offline_environment()
    from PIL import Image
    from ultralytics.models.yolo.model import YOLO
    from ultralytics.utils import patches

    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is not original:
        Image.open = original
    return YOLO


def model_file(models_dir: Path, model: str, runtime: Runtime) -> Path:
    """The catalogued file of ``model`` for ``runtime`` (``<model>-onnx`` for ONNX).

    Raises EngineError naming the command that provisions it.
    """
    return require_files(model if runtime == "pt" else f"{model}-{runtime}", models_dir)[0]


class UltralyticsPoseEngine(Engine):
    """One loaded YOLO pose model on one runtime (``pt`` or ``onnx``)."""

    name = "ultralytics"

    def __init__(
        self,
        runtime: Runtime,
        models_dir: Path,
        model: str = "yolo11n-pose",
        imgsz: int = 640,
        device: str = "auto",
        config_dir: Path | None = None,
        threads: int = 0,
    ):
        super().__init__()
        self.runtime = runtime
        self.models_dir = Path(models_dir)
        self.model_name = model
        self.imgsz = imgsz
        self.device = device
        self.config_dir = config_dir
        self.threads = threads
        self._yolo: YOLO | None = None
        self._version = ""
        self._device = "cpu"

    @property
    def model(self) -> str:
        return self.model_name

    @property
    def model_version(self) -> str:
        return self._version

    def _load(self) -> None:
        path = model_file(self.models_dir, self.model_name, self.runtime)
        offline_environment(self.config_dir)
        YOLO = import_ultralytics()

        if self.runtime == "pt":
            import torch

            want_cuda = self.device in ("auto", "cuda") or self.device.startswith("cuda:")
            self._device = (
                (self.device if self.device != "auto" else "cuda:0")
                if (want_cuda and torch.cuda.is_available())
                else "cpu"
            )
        else:
            self._device = "cpu"  # ONNX Runtime picks CUDA itself when onnxruntime-gpu is installed
        self._yolo = yolo = YOLO(str(path), task="pose")
        self._version = sha256_of(path)[:12]
        # one warm-up call: the first predict builds the predictor (and ONNX Runtime's session)
        yolo.predict(np.zeros((64, 64, 3), np.uint8), imgsz=self.imgsz, device=self._device, verbose=False)
        # That first predict ran ultralytics' select_device, which sets PyTorch's process-wide
        # thread count to cores - 1 (1 of 2 here: the PyTorch engine then ran 1.8x slower) for
        # every model, whichever runtime this engine is: loading the ONNX engine after the
        # PyTorch one did it too. Put it back after every load.
        import torch

        torch.set_num_threads(self.threads_used)
        if self.runtime == "onnx":
            self._onnx_threads(path)

    @property
    def threads_used(self) -> int:
        """CPU threads of both runtimes: ``POSE_THREADS``, else the process's CPU limit."""
        from mediafleet.common.resources import cpu_limit

        return self.threads or cpu_limit()

    def _onnx_threads(self, path: Path) -> None:
        """ultralytics builds its ONNX Runtime session without options, so ORT takes every
        physical core of the host (0 = its default); rebuild it with the threads PyTorch gets,
        on the providers ultralytics chose (CPU: no IO binding to carry over)."""
        backend = getattr(getattr(getattr(self._yolo, "predictor", None), "model", None), "backend", None)
        session = getattr(backend, "session", None)
        if backend is None or session is None or getattr(backend, "use_io_binding", False):
            return
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads_used
        backend.session = ort.InferenceSession(str(path), options, providers=session.get_providers())

    def onnx_threads(self) -> int | None:
        """Intra-op threads of the ONNX Runtime session (None before loading or for PyTorch)."""
        backend = getattr(getattr(getattr(self._yolo, "predictor", None), "model", None), "backend", None)
        session = getattr(backend, "session", None)
        return None if session is None else int(session.get_session_options().intra_op_num_threads)

    def predict_batch(
        self, images: list[np.ndarray], conf: float = 0.25, max_people: int = 100
    ) -> list[PoseResult]:
        """People in each image.

        Args:
            images: RGB arrays, each (H, W, 3) uint8 (any size; letterboxed to ``imgsz``).
            conf: minimum person score, 0-1.
            max_people: at most this many people per image, highest score first.

        Returns one :class:`PoseResult` per image, boxes and keypoints in that image's pixels.
        """
        self.load()
        start = time.perf_counter()
        bgr = [np.ascontiguousarray(im[..., ::-1]) for im in images]  # ultralytics takes arrays as BGR (cv2)
        if self._yolo is None:
            raise RuntimeError("the pose model is not loaded")
        outputs = self.run_serialised(  # Results per image (a Tensor only with embed=...)
            self._yolo.predict,
            bgr,
            imgsz=self.imgsz,
            conf=conf,
            max_det=max_people,
            device=self._device,
            verbose=False,
        )
        elapsed = (time.perf_counter() - start) * 1000 / max(1, len(images))
        results = cast("list[Results]", outputs)
        return [self._result(out, im, elapsed) for out, im in zip(results, images, strict=True)]

    def predict(self, image: np.ndarray, conf: float = 0.25, max_people: int = 100) -> PoseResult:
        """People in one RGB image (H, W, 3) uint8; see :meth:`predict_batch`."""
        return self.predict_batch([image], conf=conf, max_people=max_people)[0]

    def _result(self, out: Results, image: np.ndarray, elapsed_ms: float) -> PoseResult:
        if out.boxes is None:  # not a detection result: nobody
            boxes, scores = np.zeros((0, 4)), np.zeros(0)
        else:
            boxes, scores = _floats(out.boxes.xyxy), _floats(out.boxes.conf)
        kpts = _floats(out.keypoints.data) if out.keypoints is not None else np.zeros((0, 17, 3))
        order = np.argsort(-scores)
        people = [
            Person(
                box=[round(v, 2) for v in boxes[i].tolist()],
                score=round(float(scores[i]), 4),
                keypoints=[[round(x, 2), round(y, 2), round(s, 4)] for x, y, s in kpts[i].tolist()],
            )
            for i in order
        ]
        return PoseResult(
            people=people,
            runtime=self.runtime,
            model=self.model_name,
            model_version=self._version,
            width=int(image.shape[1]),
            height=int(image.shape[0]),
            elapsed_ms=round(elapsed_ms, 2),
        )


def _floats(values: torch.Tensor | np.ndarray) -> np.ndarray:
    """A field of an ultralytics result (a torch tensor, or an array after ``.numpy()``) as float64."""
    array = values if isinstance(values, np.ndarray) else values.cpu().numpy()
    return array.astype(float)
