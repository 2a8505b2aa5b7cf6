"""Chromaprint, the audio fingerprint of AcoustID (Lalinsky, acoustid.org/chromaprint), through
Debian's ``fpcalc`` (``libchromaprint-tools``): the raw fingerprint of the first 120 s of
sound, one unsigned 32-bit item per ~0.124 s (chroma features of 12 pitch classes, algorithm 2,
fpcalc's default). Nothing to download: the "model" is the algorithm.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import structlog

from mediafleet.common.engine import Engine, EngineNotInstalled
from mediafleet.common.errors import EngineError

log = structlog.get_logger("mediafleet.media_metadata.chromaprint")

#: Seconds of sound fpcalc reads (its default).
AUDIO_SECONDS = 120


class ChromaprintEngine(Engine):
    """Chromaprint through Debian's ``fpcalc`` (libchromaprint-tools). Nothing to download: the
    "model" is the algorithm (2, fpcalc's default)."""

    name = "chromaprint"

    def __init__(self) -> None:
        super().__init__()
        self._binary: str | None = None
        self._version = ""

    @property
    def model(self) -> str:
        return "Chromaprint"

    @property
    def model_version(self) -> str:
        return self._version

    def _load(self) -> None:
        binary = shutil.which("fpcalc")
        if binary is None:
            raise EngineNotInstalled(
                "fpcalc is not installed here (Debian package libchromaprint-tools; "
                "scripts/install-system-deps.sh installs it)",
                code="engine_not_installed",
            )
        out = subprocess.run([binary, "-version"], capture_output=True, text=True, timeout=10, check=True)
        self._binary, self._version = binary, out.stdout.split()[2] if out.stdout.count(" ") >= 2 else "?"

    def fingerprint(self, path: Path) -> list[int] | None:
        """The raw Chromaprint of the first :data:`AUDIO_SECONDS` s of sound in ``path``, or None
        when the sound is too short or silent for one. Raises EngineError when fpcalc fails."""
        self.load()
        assert self._binary is not None
        try:
            out = subprocess.run(
                # -ignore-errors: fpcalc 1.5.1 on FFmpeg 5 reports the end of the file as a decoding
                # error (exit 3) after printing a complete fingerprint
                [self._binary, "-raw", "-json", "-ignore-errors", "-length", str(AUDIO_SECONDS), str(path)],
                capture_output=True, text=True, timeout=AUDIO_SECONDS, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise EngineError("fpcalc did not finish in time") from exc
        try:
            items = json.loads(out.stdout).get("fingerprint") or [] if out.stdout.strip() else None
        except ValueError:
            items = None
        if items is None:
            if "Empty fingerprint" in out.stderr or "Not enough" in out.stderr:
                return None  # too short or silent
            log.warning("fpcalc_failed", code=out.returncode, stderr=out.stderr[-300:])
            raise EngineError("fpcalc could not read the sound")
        return [int(v) & 0xFFFFFFFF for v in items] or None
