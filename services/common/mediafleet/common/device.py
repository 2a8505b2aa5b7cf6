"""Whether this process can run work on a CUDA GPU (a GPU worker's start check, issue 24.3).

A worker started with ``MEDIAFLEET_WORKER_DEVICE=cuda`` takes its capability's GPU queues; one
that cannot use a GPU would take GPU work and run it slowly on the CPU, so it refuses to start.
The check asks the inference libraries the image has, in the order the capabilities use them:
PyTorch (``torch.cuda.is_available()``), ONNX Runtime (``CUDAExecutionProvider``), CTranslate2
(faster-whisper, ``get_cuda_device_count()``) and llama.cpp (``llama_supports_gpu_offload()``).
One of them seeing a device is enough.
"""

from __future__ import annotations

import importlib.util
import os
import shutil


def _torch() -> bool | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return bool(torch.cuda.is_available())


def _onnxruntime() -> bool | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def _ctranslate2() -> bool | None:
    if importlib.util.find_spec("ctranslate2") is None:
        return None
    import ctranslate2

    return int(ctranslate2.get_cuda_device_count()) > 0


def _llama_cpp() -> bool | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


PROBES = {
    "PyTorch": _torch,
    "ONNX Runtime": _onnxruntime,
    "CTranslate2": _ctranslate2,
    "llama.cpp": _llama_cpp,
}


def cuda_problem() -> str | None:
    """None when a library of this image sees a CUDA device, else one line for people on why not.

    Never raises: a library that fails to import or to probe counts as seeing no device."""
    asked = []
    for name, probe in PROBES.items():
        try:
            seen = probe()
        except Exception:  # a broken CUDA install is "no usable device", said below
            seen = False
        if seen:
            return None
        if seen is not None:
            asked.append(name)
    if not asked:
        return "this image has none of the libraries that run models on a GPU"
    where = (
        "no NVIDIA device is visible to this container (the host needs the NVIDIA driver and "
        "the NVIDIA Container Toolkit, and the service a GPU reservation: docker-compose.gpu.yml)"
        if shutil.which("nvidia-smi") is None and not os.path.exists("/dev/nvidiactl")
        else "an NVIDIA device is visible but this image's libraries are CPU builds (use the "
        ":gpu image: make images GPU=1)"
    )
    return f"{where}; asked {', '.join(asked)}"
