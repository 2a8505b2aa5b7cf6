"""Scripts of a line and which languages a character table reads (mediafleet.ocr_detection.languages)."""

from __future__ import annotations

import pytest

from mediafleet.ocr_detection.languages import foreign_line, reads, script_of


@pytest.mark.parametrize(
    ("char", "script"),
    [("a", "LATIN"), ("É", "LATIN"), ("穴", "CJK"), ("あ", "HIRAGANA"), ("カ", "KATAKANA"), ("서", "HANGUL"),
     ("ж", "CYRILLIC"), ("λ", "GREEK"), ("7", None), ("-", None), (" ", None)],
)  # fmt: skip
def test_script_of(char: str, script: str | None) -> None:
    assert script_of(char) == script


@pytest.mark.parametrize(
    ("text", "languages", "foreign"),
    [
        ("穴", ["fr"], True),  # an arrow icon read as Han: not French
        ("穴", ["fr", "zh"], False),
        ("Palais du LOUVRE", ["fr"], False),
        ("205Km", ["ko"], True),  # Latin letters on a Korean-only request
        ("205", ["ko"], False),  # digits alone are kept whatever the language
        ("愚园路", ["ch"], False),  # RapidOCR's own code for Chinese
        ("東京タワー", ["ja"], False),
        ("서울", ["ja"], True),
        ("Seoul 서울", ["ko"], False),  # one letter of an asked script keeps the line
    ],
)
def test_foreign_line(text: str, languages: list[str], foreign: bool) -> None:
    assert foreign_line(text, languages) is foreign


def test_reads_needs_every_letter_upper_case_included() -> None:
    latin = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert reads(latin, "en") and not reads(latin, "de")
    assert not reads(latin | set("äöüß"), "de")  # no Ä Ö Ü
    assert reads(latin | set("äöüßÄÖÜ"), "de")
