"""Run a script in a fresh interpreter with the network cut, and report what tried to use it.

Every DNS lookup and every AF_INET/AF_INET6 connect is recorded and refused. The script
(``body``) sets ``report = {...}``; the result is that dict plus ``"attempts"``. Used by the
capability tests that check a library loads and predicts offline (ultralytics, open_clip).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

GUARD = r"""
import json, socket, sys
attempts = []
_connect = socket.socket.connect
def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        attempts.append(f"connect {address}")
        raise OSError("network disabled in this test (connect)")
    return _connect(self, address)
def _refuse(kind):
    def guard(*args, **kwargs):
        attempts.append(f"{kind} {args[:1]}")
        raise OSError(f"network disabled in this test ({kind})")
    return guard
socket.socket.connect = _guarded_connect
socket.socket.connect_ex = lambda self, address: _guarded_connect(self, address)
socket.getaddrinfo = _refuse("getaddrinfo")
socket.gethostbyname = _refuse("gethostbyname")
socket.create_connection = _refuse("create_connection")
report = {}
"""
EPILOGUE = "\nprint(json.dumps({**report, 'attempts': attempts}))\n"


def run_without_network(body: str, *args: str, timeout: float = 240, drop_env_prefix: str = "") -> dict:
    """Run ``body`` (with ``sys.argv[1:] = args``) offline; returns its ``report`` plus ``attempts``.

    ``drop_env_prefix``: environment variables starting with it are removed first (so the
    code under test has to set them itself, e.g. ``YOLO_``).
    """
    env = {k: v for k, v in os.environ.items() if not (drop_env_prefix and k.startswith(drop_env_prefix))}
    proc = subprocess.run(
        [sys.executable, "-c", GUARD + body + EPILOGUE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
