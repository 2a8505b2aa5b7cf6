"""A tiny open_clip model generated with a fixed seed and saved as a real checkpoint (tests only).

No CLIP weights are reachable here; the service loads this checkpoint through the same
``create_model_and_transforms(name, pretrained=<file>)`` path as ViT-B-32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CONFIG = Path(__file__).with_name("tiny-clip.json")
NAME = "mf-tiny-clip"


def make_checkpoint(path: Path, seed: int = 0) -> Path:
    import shutil
    import tempfile

    import open_clip
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(CONFIG, Path(tmp) / f"{NAME}.json")
        open_clip.add_model_config(tmp)
    torch.manual_seed(seed)
    model = open_clip.create_model(NAME)
    torch.save(model.state_dict(), path)
    return path


def text_vector(checkpoint: Path, text: str) -> np.ndarray:
    """``text``'s embedding by the checkpoint at ``checkpoint``, computed in this process by the
    service's own runner (what a test compares the fleet's or the CLI's rankings with)."""
    from mediafleet.clip_nsfw.runner import ClipNsfwRunner
    from mediafleet.clip_nsfw.settings import ClipNsfwSettings

    settings = ClipNsfwSettings(
        model=NAME, pretrained="seed0", weights=checkpoint, arch_config=CONFIG, preload=["open_clip"]
    )
    return np.asarray(ClipNsfwRunner(settings).embed_text(text))
