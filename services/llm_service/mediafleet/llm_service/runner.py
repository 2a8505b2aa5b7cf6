"""The llm_service runner (follows mediafleet.common.capability.Runner): ``summarize`` on the
RQ worker, and the OpenAI-compatible routes on the service's HTTP app (``routers``), over
one loaded llama.cpp model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from mediafleet.common.capability import Answer, ProgressFn, QuestionQuery
from mediafleet.common.engine import EngineRunner
from mediafleet.common.errors import BadRequest
from mediafleet.llm_service.contract import (
    PROMPT_TEMPLATE,
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    SummarizeOptions,
    SummaryResult,
    facts_of,
    question_prompt,
)
from mediafleet.llm_service.engines.llama import LlamaEngine
from mediafleet.llm_service.openai_api import SlotGate, build_router
from mediafleet.llm_service.settings import LlmSettings


class LlmRunner(EngineRunner[LlamaEngine]):
    def __init__(self, settings: LlmSettings):
        self.settings = settings
        self.engine = LlamaEngine(
            settings.core.models_dir, settings.model, settings.n_ctx, settings.n_threads,
            settings.n_gpu_layers, settings.seed,
        )  # fmt: skip
        self.engines = {self.engine.name: self.engine}
        self.gate = SlotGate(settings.slots, settings.max_queue, settings.queue_timeout_s)

    def preload_names(self) -> list[str]:
        return [self.engine.name] if self.settings.preload else []

    def task_engines(self, task: str) -> list[str]:
        return [self.engine.name]  # loaded on first use when not preloaded; ready once it loads

    def routers(self) -> list[APIRouter]:
        return [build_router(self)]

    def details(self) -> dict[str, Any]:
        """What ``/readyz`` adds: the slots of the OpenAI-compatible API (busy, waiting)."""
        return {"slots": self.gate.state()}

    def default_options(self, task: str) -> dict[str, Any]:
        return {
            "max_tokens": self.settings.summary_max_tokens,
            "temperature": self.settings.summary_temperature,
            "prompt_version": PROMPT_VERSION,
        }

    def prompt(self, media: Path, inputs: dict[str, Any]) -> tuple[list[dict[str, str]], list[str]]:
        """The chat messages of ``summarize`` and the tasks they summarise."""
        facts = facts_of(inputs)
        if not facts:
            raise BadRequest(
                "nothing to summarise: run summarize with tasks that find something "
                "(transcribe, ocr, faces, pose, nsfw)",
                code="nothing_to_summarize",
            )
        kind = "video or audio" if media.suffix.lower() in (".mp4", ".webm", ".mov") else "media"
        user = PROMPT_TEMPLATE.format(kind=kind, duration="", facts="\n".join(facts))
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}], sorted(
            inputs
        )

    def run(
        self, task: str, media: Path, options: dict[str, Any], inputs: dict[str, Any], progress: ProgressFn
    ) -> SummaryResult:
        if task != "summarize":
            raise BadRequest(f"llm_service does not run {task!r}", code="unknown_task")
        opts = SummarizeOptions.model_construct(**options)  # valid: checked by the pipeline
        start = time.perf_counter()
        messages, sources = self.prompt(Path(media), inputs)
        max_tokens = opts.max_tokens or self.settings.summary_max_tokens
        temperature = self.settings.summary_temperature if opts.temperature is None else opts.temperature
        self.engine.load()
        if self.engine.has_chat_template:
            out = self.engine.chat(
                messages=messages, max_tokens=max_tokens, temperature=temperature, seed=self.settings.seed
            )
            text = out["choices"][0]["message"]["content"] or ""
        else:  # a base model: the same words as one completion prompt
            prompt = f"{SYSTEM_PROMPT}\n\n{messages[1]['content']}"
            out = self.engine.complete(
                prompt=prompt, max_tokens=max_tokens, temperature=temperature, seed=self.settings.seed
            )
            text = out["choices"][0]["text"] or ""
        usage = out.get("usage") or {}
        return SummaryResult(
            engine=self.engine.name,
            model=self.engine.model,
            model_version=self.engine.model_version,
            summary=" ".join(text.split()),
            sources=sources,
            prompt_version=PROMPT_VERSION,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
        )

    def query(self, name: str, payload: BaseModel) -> Answer:
        """``answer``: the question over the numbered passages, temperature 0 (``POST /v1/ask``)."""
        if name != "answer" or not isinstance(payload, QuestionQuery):
            raise BadRequest(f"llm_service answers no query {name!r}", code="unknown_query")
        out = self.engine.chat(
            messages=question_prompt(payload),
            temperature=0.0,
            max_tokens=payload.max_tokens,
            seed=self.settings.seed,
        )
        usage = {k: int(v) for k, v in (out.get("usage") or {}).items() if isinstance(v, int)}
        return Answer(
            answer=(out["choices"][0]["message"]["content"] or "").strip(),
            model=self.settings.model_alias,
            usage=usage,
        )
