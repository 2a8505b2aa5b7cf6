"""easyocr on its real weights (EasyOCR's CRAFT + english_g2, provisioned by `make test`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mediafleet.common import registry
from mediafleet.common.service_app import create_service_app
from mediafleet.common.settings import CoreSettings
from mediafleet.ocr_detection.evaluation import cer
from mediafleet.ocr_detection.runner import OcrRunner
from mediafleet.ocr_detection.settings import OcrSettings
from tests.conftest import ROOT, sample

GROUND_TRUTH = json.loads((ROOT / "bench" / "ocr" / "ground_truth.json").read_text())


@pytest.fixture(scope="module")
def runner(real_models_dir: Path) -> OcrRunner:
    r = OcrRunner(OcrSettings(core=CoreSettings(models_dir=real_models_dir), preload=["easyocr"]))
    r.preload()
    return r


@pytest.mark.parametrize(("name", "max_cer"), [("english.png", 0.02), ("phototest.tif", 0.05)])
def test_real_easyocr_reads_english(runner: OcrRunner, name: str, max_cer: float) -> None:
    result = runner.analyze(sample(name), {"engine": "easyocr", "languages": ["en"]})
    assert result.engine == "easyocr" and result.model_version == "craft_mlt_25k"  # the released detector
    assert cer(result.text, GROUND_TRUTH[name]["text"]) <= max_cer, result.text


def test_missing_weights_make_readyz_name_the_command(tmp_path: Path) -> None:
    settings = OcrSettings(core=CoreSettings(models_dir=tmp_path), preload=["rapidocr", "easyocr"])
    r = OcrRunner(settings)
    r.preload()  # does not raise: RapidOCR still serves
    assert [n for n, e in r.engines.items() if e.loaded] == ["rapidocr"]
    client = TestClient(create_service_app(registry.get("ocr_detection"), r))
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "mediafleet models pull easyocr-en" in ready.json()["checks"]["engines"]
    ok = client.post("/v1/predict", files={"file": ("p.tif", sample("phototest.tif").read_bytes())})
    assert ok.status_code == 200 and "quick brown dog" in ok.json()["text"]
