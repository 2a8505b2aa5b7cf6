"""Random-weight models in easyocr's real file formats, for loading through easyocr's own code.

- ``craft_mlt_25k.pth``: a ``torch.save``d state dict of easyocr's ``CRAFT`` network
  (the detector architecture easyocr loads), randomly initialised.
- ``user_network/tinyrec.yaml`` + ``tinyrec.py`` + ``tinyrec.pth``: a custom
  recogniser as easyocr documents them (``recog_network='tinyrec'``), using easyocr's
  own VGG-BiLSTM-CTC ``Model`` with small widths, saved with DataParallel's
  ``module.`` key prefix the way easyocr's own ``.pth`` files are.

No weights are downloaded: torchvision's VGG backbone is built with ``weights=None``.
"""

from __future__ import annotations

from pathlib import Path

CHARACTERS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
RECOG_NAME = "tinyrec"


def make_easyocr_models(model_dir: Path, seed: int = 0) -> dict[str, Path]:
    import torch
    from easyocr.config import detection_models
    from easyocr.craft import CRAFT
    from easyocr.model.vgg_model import Model

    torch.manual_seed(seed)
    model_dir.mkdir(parents=True, exist_ok=True)
    detector = model_dir / detection_models["craft"]["filename"]
    torch.save(CRAFT(pretrained=False).state_dict(), detector)

    user = model_dir / "user_network"
    user.mkdir(exist_ok=True)
    (user / f"{RECOG_NAME}.py").write_text("from easyocr.model.vgg_model import Model  # noqa: F401\n")
    (user / f"{RECOG_NAME}.yaml").write_text(
        "network_params:\n  input_channel: 1\n  output_channel: 32\n  hidden_size: 32\n"
        f"imgH: 64\nlang_list: ['en']\ncharacter_list: {CHARACTERS}\n"
    )
    recogniser = Model(input_channel=1, output_channel=32, hidden_size=32, num_class=len(CHARACTERS) + 1)
    weights = model_dir / f"{RECOG_NAME}.pth"
    torch.save({f"module.{k}": v for k, v in recogniser.state_dict().items()}, weights)
    return {"detector": detector, "recogniser": weights}
