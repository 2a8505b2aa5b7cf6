"""Shared shape of OCR engines: raw detections -> lines in reading order -> OcrResult."""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from mediafleet.common.engine import Engine
from mediafleet.ocr_detection.contract import OcrLine, OcrResult
from mediafleet.ocr_detection.languages import foreign_line

#: (polygon [[x, y] x 4+], text, score) as both libraries return them.
RawLine = tuple[Sequence[Sequence[float]], str, float]


class OcrEngine(Engine):
    @abstractmethod
    def _recognise(self, image: np.ndarray, options: dict[str, Any]) -> list[RawLine]:
        """Run detection + recognition on an RGB uint8 image of shape (H, W, 3) with resolved
        options (``languages`` and, per engine, ``model`` or ``layout``)."""

    def variant(self, options: dict[str, Any]) -> tuple[str, str]:
        """``(model, model_version)`` a result made with ``options`` reports (after loading)."""
        return self.model, self.model_version

    def prepare(self, options: dict[str, Any]) -> None:
        """Load what ``options`` need beyond :meth:`load` (a second model); raises EngineError."""

    def predict(
        self, image: np.ndarray, languages: list[str], options: dict[str, Any] | None = None
    ) -> OcrResult:
        """OCR of one image. ``image``: (H, W, 3) uint8 RGB; ``languages``: ISO 639-1 codes the
        caller checked against the engine (contract.resolve_options); ``options``: the other
        resolved options. Lines come back in reading order; lines written only in scripts of
        other languages (an icon read as a Han character) are dropped and counted."""
        opts = {**(options or {}), "languages": languages}
        start = time.perf_counter()
        self.load()
        self.prepare(opts)
        raw = self.run_serialised(self._recognise, image, opts)
        lines = [to_line(poly, text, score) for poly, text, score in raw if text.strip()]
        kept = reading_order([line for line in lines if not foreign_line(line.text, languages)])
        model, version = self.variant(opts)
        return OcrResult(
            engine=self.name,
            model=model,
            model_version=version,
            languages=languages,
            text="\n".join(line.text for line in kept),
            lines=kept,
            elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
            dropped_lines=len(lines) - len(kept),
        )


def to_line(polygon: Sequence[Sequence[float]], text: str, score: float) -> OcrLine:
    pts = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x1, y1 = pts.min(axis=0)
    x2, y2 = pts.max(axis=0)
    return OcrLine(
        text=text.strip(),
        box=[round(float(v), 1) for v in (x1, y1, x2, y2)],
        polygon=[[round(float(x), 1), round(float(y), 1)] for x, y in pts],
        score=round(min(max(float(score), 0.0), 1.0), 4),
    )


def reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """Top-to-bottom rows, left-to-right within a row.

    Two lines share a row when their vertical overlap is at least half the smaller
    height (the rule Tesseract-style layout uses for single-column text).
    """
    rows: list[list[OcrLine]] = []
    for line in sorted(lines, key=lambda ln: (ln.box[1] + ln.box[3]) / 2):
        y1, y2 = line.box[1], line.box[3]
        placed = False
        for row in rows:
            ry1 = min(r.box[1] for r in row)
            ry2 = max(r.box[3] for r in row)
            overlap = min(y2, ry2) - max(y1, ry1)
            if overlap >= 0.5 * min(y2 - y1, ry2 - ry1):
                row.append(line)
                placed = True
                break
        if not placed:
            rows.append([line])
    rows.sort(key=lambda row: min(r.box[1] for r in row))
    return [line for row in rows for line in sorted(row, key=lambda ln: ln.box[0])]
