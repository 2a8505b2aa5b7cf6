"""scripts/supervise.sh, which scripts/native.sh runs every native process under: a process
that dies is started again (before: a worker that exited stayed down), TERM stops both."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT


def test_a_dead_process_is_started_again_and_term_stops_both(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # each run appends a line, then dies after 0.2 s with status 3
    child = f"echo run >> {runs}; sleep 0.2; exit 3"
    sup = subprocess.Popen(
        [str(ROOT / "scripts/supervise.sh"), "demo", str(tmp_path / "demo.stop"), "bash", "-c", child],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 15
    while (not runs.exists() or len(runs.read_text().split()) < 3) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(runs.read_text().split()) >= 3  # started, died, restarted after 1 s, 2 s
    assert sup.poll() is None
    # now a long-running child: TERM reaches it through the supervisor, and both exit
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(10) == 0
    log = sup.stderr.read()
    assert (
        "supervise: demo exited with status 3" in log
        and "restarting in 1 s" in log
        and "restarting in 2 s" in log
    )
    count = len(runs.read_text().split())
    time.sleep(1.5)
    assert len(runs.read_text().split()) == count  # nothing restarts it after the stop


def test_term_stops_the_running_child(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    sup = subprocess.Popen(
        [str(ROOT / "scripts/supervise.sh"), "sleeper", str(tmp_path / "s.stop"),
         "bash", "-c", f"echo $$ > {pidfile}; exec sleep 60"],
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    child = int(pidfile.read_text())
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(10) == 0
    assert (
        not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text().lower()
    )
