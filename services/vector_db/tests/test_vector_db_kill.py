"""An acknowledged upsert survives SIGKILL: a burst of upserts against the real service, killed mid-burst."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data_dir: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "VECTOR_DB_DATA_DIR": str(data_dir), "VECTOR_DB_HTTP_PORT": str(port),
           "VECTOR_DB_SNAPSHOT_EVERY": "7"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "mediafleet.vector_db"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise TimeoutError("vector_db did not become ready")


def test_acknowledged_upserts_survive_sigkill(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1/collections/clip"
    proc = start(tmp_path, port)
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(5000, 64)).astype(np.float32)
    acked: list[int] = []
    try:
        assert httpx.put(base, json={"dim": 64, "metric": "cosine", "index": "hnsw"}).status_code == 201

        def burst() -> None:
            with httpx.Client(timeout=10) as c:
                for start_i in range(0, len(vectors), 10):
                    items = [{"id": f"v{i}", "vector": vectors[i].tolist(), "payload": {"i": i}}
                             for i in range(start_i, start_i + 10)]  # fmt: skip
                    try:
                        r = c.post(f"{base}/upsert", json={"owner": "u1", "items": items})
                    except httpx.HTTPError:
                        return  # the service died under us: this batch was never acknowledged
                    if r.status_code == 200:
                        acked.extend(range(start_i, start_i + 10))

        writer = threading.Thread(target=burst)
        writer.start()
        while len(acked) < 600 and writer.is_alive():
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        writer.join(30)
        assert 600 <= len(acked) < len(vectors), "the kill did not land mid-burst"
    finally:
        if proc.poll() is None:
            proc.kill()

    proc = start(tmp_path, port)
    try:
        count = httpx.get(f"{base}/count", params={"owner": "u1"}).json()["count"]
        print(f"\nacknowledged {len(acked)} of {len(vectors)} before SIGKILL; {count} present after restart")
        assert count >= len(acked)  # every acknowledged item, perhaps the one in flight too
        for i in acked[:: max(1, len(acked) // 50)] + [acked[-1]]:
            hit = httpx.post(
                f"{base}/search", json={"owner": "u1", "vector": vectors[i].tolist(), "k": 1}
            ).json()
            assert hit["data"][0]["id"] == f"v{i}" and hit["data"][0]["payload"] == {"i": i}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
