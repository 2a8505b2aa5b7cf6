"""OCR accuracy: character error rate (CER).

CER = Levenshtein edit distance (insertions + deletions + substitutions, unit
costs; Levenshtein 1966) between hypothesis and reference, divided by the number
of reference characters. Both texts are normalised first: Unicode case folding,
every run of whitespace (newlines included) collapsed to one space, ends trimmed.
Spaces between words are characters, so a recogniser that drops them pays for it.
"""

from __future__ import annotations

import re

_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _WS.sub(" ", text.casefold()).strip()


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, O(len(a) * len(b)) time, O(len(b)) memory."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def cer(hypothesis: str, reference: str) -> float:
    """Character error rate in [0, inf) (above 1 when the hypothesis is much longer)."""
    ref = normalise(reference)
    if not ref:
        raise ValueError("reference text is empty")
    return edit_distance(normalise(hypothesis), ref) / len(ref)
