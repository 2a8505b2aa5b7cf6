"""How many CPUs this process may use: the thread count every engine is given.

Inside a container ``os.cpu_count()`` is the host's core count, so a worker limited to two
CPUs on an 8-core VPS (compose ``cpus: 2.0``) would start 8 threads per library and
oversubscribe its quota: the kernel's CFS bandwidth control then throttles the whole
container for the rest of each 100 ms period. :func:`cpu_limit` is the smaller of the cores
the process may run on (``sched_getaffinity``) and its cgroup's CPU quota rounded up
(cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``: what Docker's
``--cpus`` and Kubernetes' ``limits.cpu`` write; kernel docs, Documentation/scheduler/
sched-bwc.rst). :func:`apply_thread_limits` exports it to the OpenMP and BLAS thread
variables at process start, before any engine's library loads, and makes idle OpenMP
threads sleep rather than spin (:data:`WAIT_POLICY`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Read by OpenMP (PyTorch's CPU kernels, dlib), MKL and OpenBLAS (NumPy). Not
#: ``OMP_THREAD_LIMIT``: CTranslate2 (faster-whisper) told to use more threads than that limit
#: returns garbage (jfk.flac as ")))))...", 2026-12-06), so only Tesseract's own process gets one.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: OpenMP threads sleep when idle instead of spinning (OpenMP 5.2, OMP_WAIT_POLICY). Two PyTorch
#: workers spinning on the same 2 cores slowed pose 21.9x beside each other, 1.67x with PASSIVE,
#: for 7 % more latency alone (bench/contention, 2026-12-06, docs/benchmarks.md).
WAIT_POLICY = ("OMP_WAIT_POLICY", "PASSIVE")


def cgroup_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The cgroup's CPU quota in CPUs (``1.5`` for ``cpus: 1.5``), None when unlimited or unknown."""
    try:
        quota, period = (
            (root / "cpu.max").read_text().split()[:2]
        )  # cgroup v2: "200000 100000" | "max 100000"
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())  # cgroup v1: -1 = unlimited
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def cpu_limit(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may use, >= 1: its affinity cores, capped by its cgroup quota rounded up."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_quota(root)
    return max(1, min(cores, math.ceil(quota)) if quota else cores)


def apply_thread_limits(root: Path = CGROUP_ROOT) -> int:
    """Export :func:`cpu_limit` to :data:`THREAD_VARIABLES` where the environment sets none
    and ``OMP_WAIT_POLICY=PASSIVE`` (an operator's own values win); returns the limit. Call
    before engines import their libraries."""
    limit = cpu_limit(root)
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(limit))
    os.environ.setdefault(*WAIT_POLICY)
    return limit
