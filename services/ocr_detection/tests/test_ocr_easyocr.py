"""easyocr loads offline from the models directory through its real loading code.

The weights are random (no model hub here), so the text is meaningless; what is
tested is that the files load through easyocr's ``Reader``/``get_detector``, that
inference runs end to end and that the result has the shared shape.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mediafleet.common.errors import EngineError
from mediafleet.common.settings import CoreSettings
from mediafleet.ocr_detection.runner import OcrRunner
from mediafleet.ocr_detection.settings import EasyOcrSettings, OcrSettings
from tests.conftest import sample
from tests.tiny_models import RECOG_NAME, make_easyocr_models


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    make_easyocr_models(root / "easyocr")
    return root


def _runner(models_dir: Path) -> OcrRunner:
    return OcrRunner(
        OcrSettings(
            core=CoreSettings(models_dir=models_dir),
            easyocr=EasyOcrSettings(recog_network=RECOG_NAME, quantize=False),
        )
    )


def test_easyocr_loads_generated_weights_and_runs(models_dir: Path) -> None:
    runner = _runner(models_dir)
    result = runner.analyze(sample("phototest.tif"), {"engine": "easyocr", "languages": ["en"]})
    assert result.engine == "easyocr" and result.model == f"CRAFT+{RECOG_NAME}"
    assert result.model_version.startswith("craft-custom-")  # not the official release's MD5
    assert result.elapsed_ms > 0
    for line in result.lines:
        x1, y1, x2, y2 = line.box
        assert -1 <= x1 <= x2 <= 641 and -1 <= y1 <= y2 <= 481

    # The recogniser in use holds exactly the weights written to disk.
    engine = runner.engine("easyocr")
    reader = engine.reader(["en"])
    saved = torch.load(models_dir / "easyocr" / f"{RECOG_NAME}.pth", weights_only=True)
    name, tensor = next(iter(reader.recognizer.state_dict().items()))
    assert torch.equal(tensor, saved[f"module.{name}"])
    assert reader.detector is not None and engine.info()["loaded"] is True


def test_reader_is_built_once_per_language_set(models_dir: Path) -> None:
    engine = _runner(models_dir).engine("easyocr")
    engine.load()
    assert engine.reader(["en"]) is engine.reader(["en"])


def test_missing_weights_is_a_clear_error(tmp_path: Path) -> None:
    runner = _runner(tmp_path)  # empty models directory
    with pytest.raises(EngineError, match="the model easyocr-en is not installed") as err:
        runner.analyze(sample("phototest.tif"), {"engine": "easyocr"})
    assert err.value.code == "model_not_available"
