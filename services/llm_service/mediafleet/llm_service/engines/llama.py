"""llama.cpp through llama-cpp-python: a GGUF model of the catalogue, loaded once.

``Llama.create_chat_completion`` / ``create_completion`` / ``create_embedding`` already
return OpenAI-shaped objects (llama-cpp-python's own OpenAI-compatible layer); the service
routes (``openai_api``) validate requests with llama-cpp-python's server types and call
them. The chat template comes from the GGUF file's metadata (``tokenizer.chat_template``).
Calls are serialised on the engine's lock: one llama.cpp context decodes one request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mediafleet.common.catalogue import require_files
from mediafleet.common.engine import Engine
from mediafleet.common.metrics import LLM_TIME_PER_OUTPUT_TOKEN, LLM_TIME_TO_FIRST_TOKEN
from mediafleet.common.provision import sha256_of
from mediafleet.common.resources import cpu_limit

if TYPE_CHECKING:
    from llama_cpp import Llama

#: Context of the embeddings instance, tokens.
EMBEDDING_CTX = 512


class LlamaEngine(Engine):
    name = "llama-cpp"

    def __init__(
        self, models_dir: Path, model: str, n_ctx: int, n_threads: int, n_gpu_layers: int, seed: int
    ):
        super().__init__()
        self.models_dir = Path(models_dir)
        self.catalogue_name = model
        self.n_ctx, self.n_gpu_layers, self.seed = n_ctx, n_gpu_layers, seed
        self.n_threads = n_threads or min(cpu_limit(), 4)
        self._version = ""
        self._llama: Llama | None = None
        self._embedder: Llama | None = None
        self.path: Path | None = None

    @property
    def model(self) -> str:
        return self.catalogue_name

    @property
    def model_version(self) -> str:
        return self._version

    def _new(self, embedding: bool) -> Llama:
        import llama_cpp
        from llama_cpp import Llama

        # a causal LM has no pooling of its own (one vector per token): mean-pool, as OpenAI's
        # embeddings are one vector per input
        return Llama(
            pooling_type=(
                llama_cpp.LLAMA_POOLING_TYPE_MEAN if embedding else llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED
            ),
            model_path=str(self.path),
            # embeddings take short inputs: a small context keeps the second KV cache small
            # (measured: +246 MiB RSS at 4096, +171 MiB at 512)
            n_ctx=min(self.n_ctx, EMBEDDING_CTX) if embedding else self.n_ctx,
            n_threads=self.n_threads,
            n_gpu_layers=self.n_gpu_layers,
            seed=self.seed,
            embedding=embedding,
            verbose=False,
        )

    def _load(self) -> None:
        local = Path(self.catalogue_name)
        if local.is_absolute():  # a GGUF file the operator provides (unpinned)
            if not local.is_file():
                raise FileNotFoundError(f"{local} not found (LLM_MODEL)")
            self.path = local
        else:
            (self.path,) = require_files(self.catalogue_name, self.models_dir)
        import llama_cpp

        self._llama = llama = self._new(embedding=False)
        self.has_chat_template = "tokenizer.chat_template" in (llama.metadata or {})
        self._version = f"{sha256_of(self.path)[:12]}+llama-cpp-python-{llama_cpp.__version__}"

    @property
    def context_tokens(self) -> int:
        self.load()
        return self._model().n_ctx()

    def chat(self, **kwargs: Any) -> Any:
        """``Llama.create_chat_completion(**kwargs)`` (not streaming) under the run lock."""
        return self.run_serialised(lambda: self._fresh().create_chat_completion(**kwargs))

    def complete(self, **kwargs: Any) -> Any:
        return self.run_serialised(lambda: self._fresh().create_completion(**kwargs))

    def _fresh(self) -> Llama:
        """The context with no reused prompt prefix: llama-cpp-python re-evaluates only what
        differs from the previous request, and a prompt evaluated in pieces gives slightly other
        logits than one evaluated whole (seen: the same chat at temperature 0 answered two
        ways). Every request is evaluated whole, so an answer is a function of the request."""
        llama = self._model()
        llama.reset()  # type: ignore[no-untyped-call]  # llama-cpp-python 0.3 leaves it unannotated
        return llama

    def _model(self) -> Llama:
        """The generating context; RuntimeError before :meth:`load`."""
        if self._llama is None:
            raise RuntimeError("the LLM is not loaded")
        return self._llama

    def embed(self, **kwargs: Any) -> Any:
        """Embeddings come from a second context of the same weights made with ``embedding=True``
        (created on first use: a generating context does not pool embeddings)."""

        def run() -> Any:
            if self._embedder is None:
                self._embedder = self._new(embedding=True)
            return self._embedder.create_embedding(**kwargs)

        return self.run_serialised(run)

    def generate(
        self,
        kind: str,
        stop: threading.Event,
        emit: Callable[[dict[str, Any]], None] | None = None,
        usage: dict[str, int] | None = None,
        **kwargs: Any,
    ) -> Any:
        """A chat (``kind="chat"``) or completion, run in the calling thread under the run lock.

        Stops within one token once ``stop`` is set (a logits processor makes end-of-sequence
        the only choice): a client that went away, or a gateway that gave up, frees the model.
        With ``emit``: streamed, ``emit(chunk)`` per chunk, returns None; else returns the
        OpenAI-shaped result. The lock is always released when this returns or raises.
        ``usage`` (streamed only) receives ``prompt_tokens`` and ``completion_tokens`` as
        llama-cpp-python counts them for an answer that is not streamed: the prompt's tokens
        and every sampled token but an end-of-generation one.
        """
        import numpy as np
        from llama_cpp import LogitsProcessorList

        # logit_bias applied here: llama-cpp-python 0.3.x drops both its own logit_bias processor
        # and ours when it gets the two (`logits_processor = logits_processor.extend(...)` is None)
        bias = {int(k): float(v) for k, v in (kwargs.pop("logit_bias", None) or {}).items()}
        self.load()
        taken = time.perf_counter()
        #: when each output token's logits were ready (the processor runs once per sampled token)
        ticks: list[float] = []
        with self._run_lock:
            llama = self._fresh()
            eos = llama.token_eos()

            def end_when_stopped(_ids: Any, scores: Any) -> Any:
                ticks.append(time.perf_counter())
                for token, value in bias.items():
                    scores[token] += value
                if stop.is_set():
                    scores[:] = -np.inf
                    scores[eos] = 0.0
                return scores

            fn = llama.create_chat_completion if kind == "chat" else llama.create_completion
            processors = LogitsProcessorList([end_when_stopped])
            try:
                if emit is None:
                    return fn(logits_processor=processors, **kwargs)
                if usage is not None:
                    self._count_tokens(llama, usage)
                try:
                    for chunk in fn(stream=True, logits_processor=processors, **kwargs):
                        emit(cast(dict[str, Any], chunk))  # a streamed chunk is a TypedDict (OpenAI's shape)
                        if stop.is_set():
                            break
                finally:
                    vars(llama).pop("sample", None)
                return None
            finally:
                self._observe(taken, ticks)

    def _observe(self, taken: float, ticks: list[float]) -> None:
        """The request's time to first token (from this engine taking it, the wait for the model
        included) and mean time per output token after the first (OpenTelemetry GenAI)."""
        if ticks:
            LLM_TIME_TO_FIRST_TOKEN.labels(self.model).observe(ticks[0] - taken)
        if len(ticks) > 1:
            LLM_TIME_PER_OUTPUT_TOKEN.labels(self.model).observe((ticks[-1] - ticks[0]) / (len(ticks) - 1))

    @staticmethod
    def _count_tokens(llama: Llama, usage: dict[str, int]) -> None:
        """Count into ``usage`` as ``Llama.generate`` samples: it calls ``self.sample`` once per
        token, after the whole prompt is evaluated (``n_tokens``, the context being fresh);
        ``_create_completion`` keeps every sampled token but an end-of-generation one. The
        counter is an attribute of this instance, removed when the stream ends."""
        import llama_cpp

        vocab = llama_cpp.llama_model_get_vocab(llama.model)
        sample = llama.sample
        usage.update(prompt_tokens=0, completion_tokens=0)

        def counted(*args: Any, **kwargs: Any) -> int:
            if not usage["prompt_tokens"]:
                usage["prompt_tokens"] = llama.n_tokens
            token = int(sample(*args, **kwargs))
            if not llama_cpp.llama_vocab_is_eog(vocab, token):
                usage["completion_tokens"] += 1
            return token

        vars(llama)["sample"] = counted

    def tokens(self, text: str) -> int:
        self.load()
        return len(self._model().tokenize(text.encode("utf-8"), add_bos=False))
