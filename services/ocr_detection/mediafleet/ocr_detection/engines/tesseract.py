"""Tesseract 5 (LSTM) for documents in the languages whose trained data is installed.

The binary and its trained data come from Debian's packages (``tesseract-ocr`` and
``tesseract-ocr-<code>``: the OCR image installs those of ``TESSERACT_LANGS``,
``scripts/install-system-deps.sh`` the same natively). Languages are asked for in ISO 639-1
and mapped to Tesseract's codes (:data:`~mediafleet.ocr_detection.languages.TESSERACT_CODES`);
several are joined with ``+`` as Tesseract expects.

Page segmentation (``layout`` option; Tesseract's ``--psm``, tesseract/doc/tesseract.1.asc):
``document`` = 3, fully automatic page segmentation (columns, paragraphs);
``scene`` = 11, sparse text in no particular order (signs, photos).

Lines are Tesseract's own (``image_to_data`` rows grouped by block, paragraph and line);
a line's score is the mean of its words' confidences (0-100) divided by 100.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from mediafleet.common.errors import BadRequest, EngineError
from mediafleet.ocr_detection.engines.base import OcrEngine, RawLine
from mediafleet.ocr_detection.languages import TESSERACT_CODES, script_of
from mediafleet.ocr_detection.settings import TesseractSettings

log = structlog.get_logger("mediafleet.ocr.tesseract")
PSM = {"document": 3, "scene": 11}
#: Scripts written without spaces between words: Tesseract's "words" there are joined as they are.
_NO_SPACE = {"CJK", "HIRAGANA", "KATAKANA", "THAI"}


class TesseractEngine(OcrEngine):
    name = "tesseract"

    def __init__(self, settings: TesseractSettings):
        super().__init__()
        self.settings = settings
        self._version = ""
        self.installed: set[str] = set()

    @property
    def model(self) -> str:
        return "tessdata"

    @property
    def model_version(self) -> str:
        return self._version

    def _load(self) -> None:
        import pytesseract

        if self.settings.cmd:
            pytesseract.pytesseract.tesseract_cmd = self.settings.cmd
        if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
            raise EngineError(
                "Tesseract is not installed here: install Debian's tesseract-ocr and the language "
                "packs (scripts/install-system-deps.sh) or use the OCR image",
                code="model_not_available",
            )
        self._version = f"tesseract-{pytesseract.get_tesseract_version()}"
        self.installed = set(pytesseract.get_languages(config=""))

    def prepare(self, options: dict[str, Any]) -> None:
        missing = [x for x in options["languages"] if TESSERACT_CODES.get(x) not in self.installed]
        if missing:
            packages = " ".join(
                f"tesseract-ocr-{TESSERACT_CODES.get(x, x).replace('_', '-')}" for x in missing
            )
            raise BadRequest(
                f"Tesseract's data for {missing} is not installed on this worker (Debian: {packages})",
                code="unsupported_language",
            )

    def _recognise(self, image: np.ndarray, options: dict[str, Any]) -> list[RawLine]:
        """Tesseract's TSV output (``image_to_data``'s format) for ``image``, run as its own
        process with ``OMP_THREAD_LIMIT`` = ``OCR_TESSERACT__THREADS`` (1): with OpenMP on
        every core, Tesseract beside another busy worker took over 120 s on a page it reads
        in 0.4 s alone (bench/contention, 2026-12-06); pytesseract passes the process's own
        environment, whose thread limit is the other engines'."""
        import tempfile

        from PIL import Image

        lang = "+".join(TESSERACT_CODES[x] for x in options["languages"])
        psm = PSM[options.get("layout") or "document"]
        env = {**os.environ, "OMP_THREAD_LIMIT": str(self.settings.threads)}
        cmd = self.settings.cmd or "tesseract"
        with tempfile.TemporaryDirectory(prefix="mf-tess-") as tmp:
            page = Path(tmp) / "page.png"
            Image.fromarray(image).save(page)
            try:
                done = subprocess.run(
                    [cmd, str(page), "stdout", "-l", lang, "--psm", str(psm), "tsv"],
                    capture_output=True, env=env, timeout=self.settings.timeout_s, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                raise BadRequest(
                    f"Tesseract gave up after {self.settings.timeout_s:.0f} s on this image",
                    code="ocr_timeout",
                ) from exc
        if done.returncode != 0:
            log.warning(
                "tesseract_failed", status=done.returncode, stderr=done.stderr[-500:].decode(errors="replace")
            )
            raise EngineError(f"Tesseract failed on this image (exit {done.returncode})", code="ocr_failed")
        return group_lines(parse_tsv(done.stdout.decode("utf-8", errors="replace")))


def parse_tsv(text: str) -> dict[str, list[Any]]:
    """Tesseract's TSV (header ``level page_num block_num par_num line_num word_num left top
    width height conf text``) as a dict of columns, numbers as int/float, like pytesseract's
    ``Output.DICT``. Rows with fewer fields (an empty text) get ``""``."""
    rows = text.splitlines()
    if not rows:
        return {"text": []}
    header = rows[0].split("\t")
    columns: dict[str, list[Any]] = {name: [] for name in header}
    for row in rows[1:]:
        fields = row.split("\t")
        fields += [""] * (len(header) - len(fields))
        for name, value in zip(header, fields, strict=False):
            if name == "text":
                columns[name].append(value)
            elif name == "conf":
                columns[name].append(float(value) if value else -1.0)
            else:
                columns[name].append(int(value) if value else 0)
    return columns


def group_lines(data: dict[str, list[Any]]) -> list[RawLine]:
    """Tesseract's word rows (``image_to_data`` as a dict of columns) -> one raw line per
    (block, paragraph, line): its text, xyxy box as a 4-point polygon, and mean confidence / 100."""
    lines: dict[tuple[int, int, int], list[int]] = {}
    for i, word in enumerate(data["text"]):
        if str(word).strip() and float(data["conf"][i]) >= 0:
            lines.setdefault((data["block_num"][i], data["par_num"][i], data["line_num"][i]), []).append(i)
    out: list[RawLine] = []
    for rows in lines.values():
        x1 = min(data["left"][i] for i in rows)
        y1 = min(data["top"][i] for i in rows)
        x2 = max(data["left"][i] + data["width"][i] for i in rows)
        y2 = max(data["top"][i] + data["height"][i] for i in rows)
        text = ""
        for i in rows:
            word = str(data["text"][i]).strip()
            if text and not (script_of(text[-1]) in _NO_SPACE and script_of(word[0]) in _NO_SPACE):
                text += " "
            text += word
        score = sum(float(data["conf"][i]) for i in rows) / len(rows) / 100
        out.append(([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], text, score))
    return out
