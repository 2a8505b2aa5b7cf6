"""Shell completion of the ``mediafleet`` command (argcomplete), as bash asks for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).with_name("mediafleet")


def _complete(line: str, tmp_path: Path) -> list[str]:
    """What ``mediafleet`` offers for ``line`` with the cursor at its end (argcomplete's protocol:
    the words on the file named by _ARGCOMPLETE_STDOUT_FILENAME, separated by _ARGCOMPLETE_IFS)."""
    out = tmp_path / "completions"
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_SHELL": "bash",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "_ARGCOMPLETE_IFS": "\n",
        "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
        "PYTHONPATH": str(ROOT),  # the test-only echo capability (MEDIAFLEET_EXTRA_CAPABILITIES)
    }
    done = subprocess.run([str(BIN)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [w.strip() for w in out.read_text().split("\n") if w.strip()]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("mediafleet s", ["search", "similar"]),
        ("mediafleet analyze --ta", ["--tasks"]),
        ("mediafleet models ", ["-h", "--help", "list", "pull", "export", "verify"]),
    ],
)
def test_bash_completion(line: str, expected: list[str], tmp_path: Path) -> None:
    assert _complete(line, tmp_path) == expected


def test_registration_script_for_bash_and_zsh() -> None:
    register = Path(sys.executable).with_name("register-python-argcomplete")
    for shell in ("bash", "zsh"):
        script = subprocess.run(
            [str(register), "--shell", shell, "mediafleet"], capture_output=True, text=True, timeout=60
        )
        assert script.returncode == 0 and "mediafleet" in script.stdout, script.stderr
