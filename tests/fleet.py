"""The fleet as real local processes (gateway, job_manager, AI workers, vector_db) for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]

#: name -> command line after ``python -m``. AI services run through the generic entry point.
MODULES = {
    "gateway": ["mediafleet.gateway"],
    "job_manager": ["mediafleet.job_manager"],
    "ocr": ["mediafleet.common.service", "ocr_detection"],
    "echo": ["mediafleet.common.service", "echo"],
    "clip": ["mediafleet.common.service", "clip_nsfw"],
    "vector_db": ["mediafleet.vector_db"],
    "faces": ["mediafleet.common.service", "face_reid"],
    "whisper": ["mediafleet.common.service", "whisper_transcriber"],
    "llm": ["mediafleet.common.service", "llm_service"],
    "metadata": ["mediafleet.common.service", "media_metadata"],
}
#: What start_all starts: the main job's processes.
DEFAULT = ("gateway", "job_manager", "ocr")


class Fleet:
    def __init__(self, workdir: Path, database_url: str, redis_url: str, **env: str):
        self.workdir = workdir
        self.ports = {name: free_port() for name in MODULES}
        self.env = {
            **os.environ,
            "MEDIAFLEET_ENVIRONMENT": "test",
            "MEDIAFLEET_DATABASE_URL": database_url,
            "MEDIAFLEET_REDIS_URL": redis_url,
            "MEDIAFLEET_MEDIA_DIR": str(workdir / "media"),
            "MEDIAFLEET_MODELS_DIR": str(workdir / "models"),
            "MEDIAFLEET_LOG_FORMAT": "json",
            # fast fault detection for tests: 3 s lease, backoff 1 s, 2 s, ...
            "MEDIAFLEET_TASK_LEASE_S": "3",
            "MEDIAFLEET_TASK_RETRY_BACKOFF_S": "1",
            "MEDIAFLEET_TASK_MAX_RETRIES": "2",
            "GATEWAY_SECRET_KEY": "fleet-test-secret-key-0123456789abcdef",
            # the tests read /metrics and /openapi.json (tests/gateway/test_api.py checks the guard)
            "GATEWAY_INTERNALS_OPEN": "true",
            "GATEWAY_ADMIN__PASSWORD": "first-admin-password",
            "GATEWAY_PORT": str(self.ports["gateway"]),
            "JOB_MANAGER_HTTP_PORT": str(self.ports["job_manager"]),
            "OCR_HTTP_PORT": str(self.ports["ocr"]),
            "ECHO_HTTP_PORT": str(self.ports["echo"]),
            "CLIP_HTTP_PORT": str(self.ports["clip"]),
            "VECTOR_DB_HTTP_PORT": str(self.ports["vector_db"]),
            "FACE_HTTP_PORT": str(self.ports["faces"]),
            "WHISPER_HTTP_PORT": str(self.ports["whisper"]),
            "LLM_HTTP_PORT": str(self.ports["llm"]),
            "MEDIA_METADATA_HTTP_PORT": str(self.ports["metadata"]),
            "MEDIAFLEET_LLM_URL": f"http://127.0.0.1:{self.ports['llm']}",
            "VECTOR_DB_DATA_DIR": str(workdir / "vectors"),
            "MEDIAFLEET_VECTOR_DB_URL": f"http://127.0.0.1:{self.ports['vector_db']}",
            "MEDIAFLEET_VECTOR_BACKOFF_S": "0.5",
            # the test-only echo capability is importable from the repository root
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "JOB_MANAGER_RECONCILE_INTERVAL_S": "0.5",
            **env,
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(
        self, name: str, *args: str, wait: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        log = self.workdir / f"{name}.log"
        self.logs[name] = log
        with log.open("ab") as out:  # the child holds its own copy of the descriptor
            proc = subprocess.Popen(
                [sys.executable, "-m", *MODULES[name], *args],
                env={**self.env, **(env or {})},
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs[name] = proc
        if wait:
            self.wait_ready(name)
        return proc

    def wait_ready(self, name: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {self.procs[name].returncode}:\n{self.log_text(name)}"
                )
            try:
                # the gateway is ready only once job_manager beats too: started is enough here
                probe = "/healthz" if name == "gateway" else "/readyz"
                if httpx.get(self.url(name) + probe, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{name} not ready after {timeout} s:\n{self.log_text(name)}")

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def log_text(self, name: str) -> str:
        path = self.logs.get(name)
        return path.read_text(errors="replace")[-4000:] if path and path.exists() else ""

    def start_all(self) -> None:
        for name in DEFAULT:
            self.start(name)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
