"""Real OCR by RapidOCR on the shared corpus: PP-OCRv4 (shipped in its wheel, the ``auto``
default when no other model is installed: these runners have an empty models directory)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mediafleet.common.errors import BadRequest
from mediafleet.common.pipeline.run import prepare
from mediafleet.common.settings import CoreSettings
from mediafleet.ocr_detection.contract import CAPABILITY
from mediafleet.ocr_detection.evaluation import cer
from mediafleet.ocr_detection.runner import OcrRunner
from mediafleet.ocr_detection.settings import OcrSettings, RapidOcrSettings
from tests.conftest import ROOT, sample

GROUND_TRUTH = json.loads((ROOT / "bench" / "ocr" / "ground_truth.json").read_text())


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> OcrRunner:
    r = OcrRunner(OcrSettings(core=CoreSettings(models_dir=tmp_path_factory.mktemp("no-models"))))
    r.preload()  # OCR_PRELOAD default: rapidocr
    return r


@pytest.mark.parametrize("name", ["phototest.tif", "english.png"])
def test_cer_at_most_ten_percent(runner: OcrRunner, name: str) -> None:
    result = runner.analyze(sample(name), {"engine": "rapidocr"})
    assert cer(result.text, GROUND_TRUTH[name]["text"]) <= 0.10


def test_key_words_found(runner: OcrRunner) -> None:
    assert "LOUVRE" in runner.analyze(sample("french.jpg")).text.upper()
    assert "Yuyuan" in runner.analyze(sample("chinese.jpg"), {"languages": ["en", "zh"]}).text


def test_words_keep_their_spaces(runner: OcrRunner) -> None:
    """The stock decoder reads 'Cleanhandswithsoapandwater'; ours keeps the words."""
    words = set(runner.analyze(sample("english.png")).text.lower().split())
    assert {"soap", "coronavirus", "clean", "hands", "water", "elbow"} <= words


def test_stock_decoder_drops_spaces_without_the_fix() -> None:
    """Control: with space-aware decoding off (threshold 0) the spaces are lost, as reported."""
    plain = OcrRunner(OcrSettings(rapidocr=RapidOcrSettings(model="pp-ocrv4", space_threshold=0.0)))
    text = plain.analyze(sample("english.png")).text
    assert "Cleanhandswithsoapandwater" in text.replace(" ", "") and "soap" not in text.lower().split()


def test_result_follows_the_conventions(runner: OcrRunner) -> None:
    result = runner.analyze(sample("phototest.tif"))
    assert result.engine == "rapidocr" and result.model == "pp-ocrv4" and result.elapsed_ms > 0
    assert result.text == "\n".join(line.text for line in result.lines)
    for line in result.lines:
        x1, y1, x2, y2 = line.box
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480  # xyxy inside the 640x480 page
        assert 0 <= line.score <= 1 and len(line.polygon) >= 4
    tops = [line.box[1] for line in result.lines]
    assert tops == sorted(tops)  # one column of text: reading order is top to bottom
    assert result.lines[0].text.startswith("This is a lot of 12 point text")


def test_blank_image_gives_no_lines(runner: OcrRunner) -> None:
    image = np.full((200, 300, 3), 255, dtype=np.uint8)
    result = runner.engine("rapidocr").predict(image, ["en"])
    assert result.lines == [] and result.text == ""


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"engine": "paddleocr"}, "invalid_option"),
        ({"engine": "tesseract", "model": "pp-ocrv4"}, "invalid_option"),
        ({"engine": "rapidocr", "layout": "scene"}, "invalid_option"),
        ({"model": "pp-ocrv4", "languages": ["fr"]}, "unsupported_language"),
        ({"languages": ["ko"]}, "unsupported_language"),
        ({"engine": "rapidocr", "dpi": 300}, "invalid_option"),
        ({"languages": []}, "invalid_option"),
    ],
)
def test_bad_options_are_refused(runner: OcrRunner, options: dict, code: str) -> None:
    """The pipeline checks the schema (once, for every executor); the runner then refuses
    what the schema cannot tell: a language that the chosen engine does not read."""
    with pytest.raises(BadRequest) as err:
        runner.resolved_options(prepare(CAPABILITY, "ocr", options).options)
    assert err.value.code == code


def test_a_page_larger_than_max_side_is_fitted_and_boxed_in_its_own_pixels(tmp_path) -> None:
    """english.png (905 x 480) enlarged 3x (each pixel a 3 x 3 block) is decoded fitted to
    ``OCR_MAX_SIDE`` 905: shrunk by 3 (block means) back to english.png's own pixels, so the
    text is english.png's and every box and polygon point is 3x its box there."""
    from PIL import Image

    runner = OcrRunner(OcrSettings(max_side=905, rapidocr=RapidOcrSettings(model="pp-ocrv4")))
    runner.preload()  # OCR_PRELOAD default: rapidocr
    with Image.open(sample("english.png")) as im:
        small = im.convert("RGB")
    big = tmp_path / "english3x.png"
    small.resize((small.width * 3, small.height * 3), Image.Resampling.NEAREST).save(big)
    want, got = runner.analyze(sample("english.png")), runner.analyze(big)
    assert got.text == want.text and len(got.lines) == len(want.lines) > 5
    for a, b in zip(want.lines, got.lines, strict=True):
        assert np.allclose(b.box, [3 * v for v in a.box], atol=0.2)
        assert np.allclose(b.polygon, [[3 * x, 3 * y] for x, y in a.polygon], atol=0.2)
    # at the default OCR_MAX_SIDE (8192) the 2715 x 1440 page is read at full size
    assert OcrSettings().max_side == 8192
