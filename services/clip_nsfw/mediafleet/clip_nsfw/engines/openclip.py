"""CLIP image and text embeddings with open_clip, offline, from a local checkpoint.

open_clip builds the architecture from its own config (``ViT-B-32``) or from a JSON file
(``arch_config``: how the tests load a tiny generated model through the same code), then
loads the checkpoint file given as ``pretrained``. ``HF_HUB_OFFLINE=1`` is set before the
import: nothing is fetched. Embeddings are L2-normalised float32 (cosine similarity = dot
product), as in open_clip's README (``features /= features.norm(dim=-1, keepdim=True)``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from mediafleet.common.engine import Engine
from mediafleet.common.errors import EngineError
from mediafleet.common.provision import sha256_of

if TYPE_CHECKING:
    import torch
    from PIL import Image


class ClipModel(Protocol):
    """What is used of an ``open_clip.CLIP``: both towers, (n, dim) float features."""

    def encode_image(self, image: torch.Tensor) -> torch.Tensor: ...
    def encode_text(self, text: torch.Tensor) -> torch.Tensor: ...


class OpenClipEngine(Engine):
    name = "open_clip"

    def __init__(
        self, model: str, pretrained: str, weights: Path, arch_config: Path | None = None, device: str = "cpu"
    ):
        super().__init__()
        self.model_name = model
        self.pretrained = pretrained
        self.weights = Path(weights)
        self.arch_config = arch_config
        self.device = device
        self._model: ClipModel | None = None
        #: PIL image -> (3, S, S) float tensor (resize, centre crop, normalise)
        self._preprocess: Callable[[Image.Image], torch.Tensor] | None = None
        #: texts -> (n, 77) int token ids
        self._tokenizer: Callable[[list[str]], torch.Tensor] | None = None
        self._version = ""
        self.dim = 0

    @property
    def model(self) -> str:
        return self.model_name

    @property
    def model_version(self) -> str:
        return self._version

    @property
    def collection(self) -> str:
        return f"clip-{self.model_name}-{self.pretrained}".lower()

    def _load(self) -> None:
        if not self.weights.is_file():
            raise EngineError(
                f"the CLIP {self.model_name} '{self.pretrained}' weights are not installed "
                f"({self.weights.parent.name}/{self.weights.name} missing in the models folder); "
                "docs/models.md (CLIP) says where to get them",
                code="model_not_available",
            )
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import open_clip
        import torch

        if self.arch_config is not None:  # a config open_clip does not ship, registered under its own name
            with tempfile.TemporaryDirectory() as tmp:
                shutil.copyfile(self.arch_config, Path(tmp) / f"{self.model_name}.json")
                open_clip.add_model_config(tmp)
        model, _, preprocess = open_clip.create_model_and_transforms(
            self.model_name, pretrained=str(self.weights), device=self.device
        )
        model.eval()
        tokenizer = open_clip.get_tokenizer(self.model_name)
        self._model, self._preprocess, self._tokenizer = model, preprocess, tokenizer
        with torch.no_grad():
            self.dim = int(model.encode_text(tokenizer(["x"])).shape[-1])
        self._version = sha256_of(self.weights)[:12]

    def _parts(
        self,
    ) -> tuple[ClipModel, Callable[[Image.Image], torch.Tensor], Callable[[list[str]], torch.Tensor]]:
        """The loaded model, preprocess and tokenizer; RuntimeError before :meth:`load`."""
        if self._model is None or self._preprocess is None or self._tokenizer is None:
            raise RuntimeError("the CLIP model is not loaded")
        return self._model, self._preprocess, self._tokenizer

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """PIL RGB images -> (n, dim) float32, rows L2-normalised."""
        import torch

        self.load()
        model, preprocess, _ = self._parts()

        def run() -> np.ndarray:
            batch = torch.stack([preprocess(im) for im in images]).to(self.device)
            with torch.no_grad():
                out = model.encode_image(batch).float()
            return torch.nn.functional.normalize(out, dim=-1).cpu().numpy().astype(np.float32)

        return self.run_serialised(run)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Texts -> (n, dim) float32, rows L2-normalised (open_clip's tokenizer, 77 tokens, truncated)."""
        import torch

        self.load()
        model, _, tokenizer = self._parts()

        def run() -> np.ndarray:
            with torch.no_grad():
                out = model.encode_text(tokenizer(texts).to(self.device)).float()
            return torch.nn.functional.normalize(out, dim=-1).cpu().numpy().astype(np.float32)

        return self.run_serialised(run)

    def timed_image(self, image: Image.Image) -> tuple[np.ndarray, float]:
        start = time.perf_counter()
        vec = self.embed_images([image])[0]
        return vec, (time.perf_counter() - start) * 1000
