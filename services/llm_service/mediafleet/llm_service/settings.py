"""llm_service settings (prefix ``LLM_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mediafleet.common.settings import ServiceSettings


class LlmSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LLM_", env_nested_delimiter="__", extra="ignore")

    #: Catalogue model (a GGUF file under the models directory): ``smollm2-135m-instruct``
    #: (instruction-tuned, chat template) or ``gemma3-270m`` (base model: completions only).
    #: Or an absolute path to a GGUF file (a 1-4B instruct model for real use), which no
    #: checksum of the catalogue covers.
    model: str = "smollm2-135m-instruct"
    #: Name clients use in ``"model"`` (``GET /v1/llm/models``); a request naming another model
    #: gets 404 ``model_not_found``, as OpenAI answers, unless ``accept_any_model``.
    model_alias: str = "mediafleet-llm"
    #: Serve any ``"model"`` name with the loaded model (clients that hard-code one, "gpt-4o-mini").
    accept_any_model: bool = False
    #: Context window, tokens (the model's own is used when larger than this is asked for).
    n_ctx: int = Field(default=4096, ge=256, le=131072)
    #: CPU threads of llama.cpp (0: all cores, at most 4).
    n_threads: int = Field(default=0, ge=0, le=64)
    #: Layers offloaded to the GPU (-1: all; 0: CPU only). CPU builds ignore it.
    n_gpu_layers: int = Field(default=0, ge=-1)
    #: Requests decoded at once. One llama.cpp context serves one request at a time here.
    slots: int = Field(default=1, ge=1, le=16)
    #: Requests waiting for a slot beyond the running ones; more get 503 at once.
    max_queue: int = Field(default=8, ge=0, le=1000)
    #: Longest wait for a slot, seconds, before 503 with ``Retry-After``.
    queue_timeout_s: float = Field(default=30.0, gt=0)
    #: ``max_tokens`` of a request that names none (OpenAI's API would generate to the context's
    #: end), and the most a request may ask for (more: 400 ``max_tokens_too_large``).
    default_max_tokens: int = Field(default=512, ge=1, le=8192)
    max_tokens: int = Field(default=2048, ge=1, le=32768)
    #: Defaults of ``summarize``.
    summary_max_tokens: int = Field(default=160, ge=16, le=1024)
    summary_temperature: float = Field(default=0.0, ge=0, le=2)
    seed: int = 0
    preload: bool = True
    http_port: int = 8115
