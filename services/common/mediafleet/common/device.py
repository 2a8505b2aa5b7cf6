"""Whether this process can run work on a CUDA GPU (a GPU worker's start check, issue 24.3).

A worker started with ``MEDIAFLEET_WORKER_DEVICE=cuda`` takes its capability's GPU queues; one
that cannot use a GPU would take GPU work and run it slowly on the CPU, so it refuses to start.
Two things must hold:

1. **A device**: the NVIDIA driver's own library (``libcuda.so.1``, which the NVIDIA Container
   Toolkit mounts into a container given a GPU) initialises (``cuInit``) and counts at least
   one device (``cuDeviceGetCount``), through ``ctypes``: the CUDA Driver API, the same call
   every CUDA library makes first.
2. **A CUDA build** of a library of this image: PyTorch (``torch.version.cuda``), ONNX Runtime
   (``CUDAExecutionProvider`` among its providers), CTranslate2 (``get_cuda_device_count()``)
   or llama.cpp (``llama_supports_gpu_offload()``). ONNX Runtime and llama.cpp report what they
   were built with, not whether a device is there: hence 1.
"""

from __future__ import annotations

import ctypes
import importlib.util


def cuda_devices() -> int | str:
    """The number of CUDA devices the driver sees (>= 1), or why none: one line for people."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return (
            "no NVIDIA driver is visible to this process (a container needs the NVIDIA driver and "
            "the NVIDIA Container Toolkit on the host, and a GPU reservation: docker-compose.gpu.yml)"
        )
    status = lib.cuInit(0)
    if status != 0:
        return f"the NVIDIA driver is there but does not initialise (CUDA error {status})"
    count = ctypes.c_int(0)
    status = lib.cuDeviceGetCount(ctypes.byref(count))
    if status != 0 or count.value < 1:
        return "the NVIDIA driver sees no device (check CUDA_VISIBLE_DEVICES and the GPU reservation)"
    return int(count.value)


def _torch() -> bool | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch.version.cuda is not None


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


#: library -> True when this image has its CUDA build, False when a CPU build, None when absent
BUILDS = {
    "PyTorch": _torch,
    "ONNX Runtime": _onnxruntime,
    "CTranslate2": _ctranslate2,
    "llama.cpp": _llama_cpp,
}


def cuda_problem() -> str | None:
    """None when a CUDA device is usable here (both conditions of the module docstring), else one
    line for people on why not. Never raises: a library that fails to import or to answer
    counts as a CPU build."""
    devices = cuda_devices()
    if isinstance(devices, str):
        return devices
    cpu_builds = []
    for name, probe in BUILDS.items():
        try:
            cuda = probe()
        except Exception:  # a broken CUDA install is "not usable", said below
            cuda = False
        if cuda:
            return None
        if cuda is not None:
            cpu_builds.append(name)
    if not cpu_builds:
        return "this image has none of the libraries that run models on a GPU"
    return (
        f"{devices} NVIDIA device(s) visible, but this image has CPU builds only ({', '.join(cpu_builds)}): "
        "use the :gpu image (make images GPU=1)"
    )
