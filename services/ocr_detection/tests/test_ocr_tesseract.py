"""Tesseract 5 (Debian's tesseract-ocr and language packs, scripts/install-system-deps.sh) through
the OCR runner: documents, languages, page segmentation, bounds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mediafleet.common.errors import BadRequest
from mediafleet.common.settings import CoreSettings
from mediafleet.ocr_detection.engines.tesseract import group_lines
from mediafleet.ocr_detection.evaluation import cer
from mediafleet.ocr_detection.languages import TESSERACT_LANGUAGES
from mediafleet.ocr_detection.runner import OcrRunner
from mediafleet.ocr_detection.settings import OcrSettings, TesseractSettings
from tests.conftest import ROOT, sample

GROUND_TRUTH = json.loads((ROOT / "bench" / "ocr" / "ground_truth.json").read_text())


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> OcrRunner:
    return OcrRunner(OcrSettings(core=CoreSettings(models_dir=tmp_path_factory.mktemp("models"))))


def test_every_language_the_contract_advertises_is_installed(runner: OcrRunner) -> None:
    """What the gateway accepts for tesseract is what install-system-deps.sh (and the image) installed."""
    from mediafleet.ocr_detection.languages import TESSERACT_CODES

    engine = runner.engine("tesseract")
    engine.load()
    assert {TESSERACT_CODES[x] for x in TESSERACT_LANGUAGES} <= engine.installed  # type: ignore[attr-defined]


def test_reads_the_scanned_page_exactly(runner: OcrRunner) -> None:
    result = runner.analyze(sample("phototest.tif"), {"engine": "tesseract"})
    assert result.engine == "tesseract" and result.model_version.startswith("tesseract-5")
    assert cer(result.text, GROUND_TRUTH["phototest.tif"]["text"]) <= 0.01
    assert len(result.lines) == 8
    first = result.lines[0]
    assert first.text.startswith("This is a lot of 12 point text")
    x1, y1, x2, y2 = first.box
    assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480 and 0.5 <= first.score <= 1


def test_chinese_and_korean_signs_in_scene_layout(runner: OcrRunner) -> None:
    """Sparse text (--psm 11) with Tesseract's chi_sim and kor data: the scripts no RapidOCR
    model reads (Hangul) come back in their own script."""
    ko = runner.analyze(
        sample("korean.png"), {"engine": "tesseract", "languages": ["ko", "en"], "layout": "scene"}
    )
    assert "Seoul" in ko.text and any("\uac00" <= ch <= "\ud7a3" for ch in ko.text)


def test_cjk_words_join_without_spaces_latin_with() -> None:
    data = {
        "text": ["愚", "园", "路", "Yuyuan", "Rd."],
        "conf": [90, 80, 70, 95, 85],
        "block_num": [1, 1, 1, 1, 1],
        "par_num": [1, 1, 1, 1, 1],
        "line_num": [1, 1, 1, 2, 2],
        "left": [0, 10, 20, 0, 50],
        "top": [0, 0, 0, 20, 21],
        "width": [10, 10, 10, 45, 20],
        "height": [12, 12, 12, 10, 10],
    }
    lines = group_lines(data)
    assert [text for _, text, _ in lines] == ["愚园路", "Yuyuan Rd."]
    poly, _, score = lines[1]
    assert poly == [[0, 20], [70, 20], [70, 31], [0, 31]] and score == pytest.approx(0.9)


def test_a_language_without_installed_data_is_refused_by_the_worker(runner: OcrRunner) -> None:
    """Polish is a language Tesseract knows but the image does not install: the contract
    refuses it at the gateway; a worker asked directly says which Debian package is missing."""
    engine = runner.engine("tesseract")
    with pytest.raises(BadRequest) as err:
        engine.predict(np.full((50, 50, 3), 255, np.uint8), ["pl"], {"layout": "document"})
    assert err.value.code == "unsupported_language" and "tesseract-ocr-pol" in err.value.message
    with pytest.raises(BadRequest) as err:
        runner.resolved_options({"engine": "tesseract", "languages": ["pl"]})
    assert err.value.code == "unsupported_language"


def test_a_page_over_the_time_limit_fails_once_with_a_clear_code(tmp_path: Path) -> None:
    slow = OcrRunner(
        OcrSettings(core=CoreSettings(models_dir=tmp_path), tesseract=TesseractSettings(timeout_s=0.01))
    )
    with pytest.raises(BadRequest) as err:
        slow.analyze(sample("english.png"), {"engine": "tesseract"})
    assert err.value.code == "ocr_timeout" and "gave up" in err.value.message


def test_tsv_rows_become_columns() -> None:
    """Tesseract's TSV: a block row without text (its last field empty) and two words."""
    from mediafleet.ocr_detection.engines.tesseract import parse_tsv

    tsv = (
        "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"
        "2\t1\t1\t0\t0\t0\t36\t92\t544\t30\t-1\t\n"
        "5\t1\t1\t1\t1\t1\t36\t92\t60\t30\t96.5\tThis\n"
        "5\t1\t1\t1\t1\t2\t100\t92\t20\t30\t91\tis\n"
    )
    data = parse_tsv(tsv)
    assert (
        data["text"] == ["", "This", "is"] and data["conf"] == [-1.0, 96.5, 91.0] and data["left"][2] == 100
    )
    assert [text for _, text, _ in group_lines(data)] == ["This is"]
