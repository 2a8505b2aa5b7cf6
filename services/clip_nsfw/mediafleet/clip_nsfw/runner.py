"""The clip_nsfw runner: open_clip and NudeNet loaded once, shared by the HTTP server, the RQ worker and the CLI."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel

from mediafleet.clip_nsfw.contract import ClipResult, NsfwOptions, NsfwResult, NsfwVerdict
from mediafleet.clip_nsfw.engines.nudenet import NudeNetEngine
from mediafleet.clip_nsfw.engines.openclip import OpenClipEngine
from mediafleet.clip_nsfw.settings import ClipNsfwSettings
from mediafleet.common.capability import ProgressFn, TextQuery, VectorItem
from mediafleet.common.engine import Engine, EngineRunner
from mediafleet.common.errors import BadRequest
from mediafleet.common.media import load_rgb_fitted

#: CLIP zero-shot NSFW prompts: the score is the softmax mass (logit scale 100, as CLIP's
#: zero-shot classification) on the first set against all of them.
NSFW_PROMPTS = ("a photo of a naked person", "an explicit sexual photo", "a nude body")
SAFE_PROMPTS = ("a photo of a clothed person", "a photo of a landscape", "a photo of an object",
                "a photo of an animal", "a photo of text", "a photo of a street")  # fmt: skip


class ClipNsfwRunner(EngineRunner[Engine]):
    def __init__(self, settings: ClipNsfwSettings):
        self.settings = settings
        self.clip = OpenClipEngine(
            settings.model,
            settings.pretrained,
            settings.weights_path(),
            settings.arch_config,
            settings.device,
        )
        self.nudenet = NudeNetEngine(settings.core.models_dir, channel_order=settings.nudenet_channel_order)
        self.engines = {"open_clip": self.clip, "nudenet": self.nudenet}
        self._prompt_vectors: np.ndarray | None = None

    def preload_names(self) -> list[str]:
        """``CLIP_PRELOAD``; missing weights leave ``/readyz`` at 503 with the reason (EngineRunner)."""
        return list(self.settings.preload)

    def task_engines(self, task: str) -> list[str]:
        """``clip`` needs open_clip; ``nsfw`` its default engine (NudeNet, or CLIP zero-shot)."""
        if task == "nsfw" and self.settings.nsfw_engine == "nudenet":
            return ["nudenet"]
        return ["open_clip"]

    def default_options(self, task: str) -> dict[str, Any]:
        return self.nsfw_options({}) if task == "nsfw" else {}

    def nsfw_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """``{"engine", "threshold"}``: ``options`` (valid ``NsfwOptions``, checked by the
        pipeline) with the service's engine and that engine's threshold filled in."""
        opts = NsfwOptions.model_construct(**options)
        engine = opts.engine or self.settings.nsfw_engine
        default = self.settings.nudenet_threshold if engine == "nudenet" else self.settings.clip_threshold
        return {"engine": engine, "threshold": default if opts.threshold is None else opts.threshold}

    def run(
        self, task: str, media: Path, options: dict[str, Any], inputs: dict[str, Any], progress: ProgressFn
    ) -> ClipResult | NsfwResult:
        if task == "clip":
            return self.embed(media)
        if task == "nsfw":
            return self.nsfw(media, options)
        raise BadRequest(f"clip_nsfw does not run {task!r}", code="unknown_task")

    def embed(self, media: Path) -> ClipResult:
        image = Image.fromarray(load_rgb_fitted(media, self.settings.max_side, exif_transpose=True).pixels)
        vec, ms = self.clip.timed_image(image)
        return ClipResult(
            embedding=[float(v) for v in vec], dim=int(vec.shape[0]), model=self.clip.model_name,
            pretrained=self.clip.pretrained, model_version=self.clip.model_version,
            collection=self.clip.collection, elapsed_ms=round(ms, 2),
        )  # fmt: skip

    def query(self, name: str, payload: BaseModel) -> VectorItem:
        """``embed_text``: the CLIP text embedding of ``payload.text`` (semantic search)."""
        if name != "embed_text" or not isinstance(payload, TextQuery):
            raise BadRequest(f"clip_nsfw answers no query {name!r}", code="unknown_query")
        return VectorItem(collection=self.clip.collection, ref="query", vector=self.embed_text(payload.text))

    def embed_text(self, text: str) -> list[float]:
        """The L2-normalised CLIP text embedding of ``text`` (semantic search queries)."""
        return [float(v) for v in self.clip.embed_texts([text])[0]]

    def nsfw(self, media: Path, options: dict[str, Any]) -> NsfwResult:
        opts = self.nsfw_options(options)
        start = time.perf_counter()
        fitted = load_rgb_fitted(media, self.settings.max_side, exif_transpose=True)
        image = fitted.pixels
        engine: Engine
        if opts["engine"] == "nudenet":
            detections = [
                d.model_copy(update={"box": [round(v * fitted.scale, 1) for v in d.box]})
                if fitted.scale > 1
                else d
                for d in self.nudenet.detect(image)
            ]
            score, engine, notes = NudeNetEngine.score(detections), self.nudenet, ""
        else:
            if self._prompt_vectors is None:
                self._prompt_vectors = self.clip.embed_texts(list(NSFW_PROMPTS + SAFE_PROMPTS))
            vec = self.clip.embed_images([Image.fromarray(image)])[0]
            logits = 100.0 * (self._prompt_vectors @ vec)
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            score, engine, detections = float(probs[: len(NSFW_PROMPTS)].sum()), self.clip, []
            notes = (f"CLIP zero-shot over {len(NSFW_PROMPTS)} NSFW vs {len(SAFE_PROMPTS)} safe prompts; "
                     "meaningful only with real CLIP weights")  # fmt: skip
        verdict = NsfwVerdict(
            score=round(min(max(score, 0.0), 1.0), 4), label="nsfw" if score >= opts["threshold"] else "safe",
            threshold=opts["threshold"], engine=opts["engine"], detections=detections, notes=notes,
        )  # fmt: skip
        return NsfwResult(
            nsfw=verdict, model=engine.model, model_version=engine.model_version,
            elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
        )  # fmt: skip
