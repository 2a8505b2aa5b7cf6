"""whisper_transcriber settings (prefix ``WHISPER_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mediafleet.common.settings import ServiceSettings
from mediafleet.whisper_transcriber.contract import Temperature, WhisperTask


class WhisperSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WHISPER_", env_nested_delimiter="__", extra="ignore")

    #: Catalogue model (``mediafleet models list``): its files are a CTranslate2 Whisper
    #: directory under the models directory (``whisper-base``: ``whisper/base/``). Or an
    #: absolute path to such a directory (``model.bin``, ``config.json``, ``tokenizer.json``,
    #: ``vocabulary.*``: faster-whisper's format, e.g. Systran/faster-whisper-large-v3),
    #: which no checksum of the catalogue covers.
    model: str = "whisper-base"
    #: ``cpu``, ``cuda`` or ``auto`` (CUDA when CTranslate2 sees a GPU).
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    #: CTranslate2 compute type; unset: ``int8`` on CPU, ``float16`` on CUDA.
    compute_type: str | None = None
    #: Intra-op threads on CPU (0: CTranslate2's default, 4 at most).
    cpu_threads: int = Field(default=0, ge=0, le=64)
    #: Defaults of the task's options (a request may override each).
    task: WhisperTask = "transcribe"
    beam_size: int = Field(default=5, ge=1, le=10)
    #: Fallback temperatures (Whisper's schedule) and the compression ratio above which a
    #: window's text counts as a loop and is decoded again at the next temperature.
    temperature: list[Temperature] = Field(default=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0], min_length=1)
    compression_ratio_threshold: float = Field(default=2.4, gt=0)
    vad_filter: bool = True
    #: Off by default: word alignment took RTF 0.12 -> 0.41 on multilingual.mp3 here (bench/asr)
    word_timestamps: bool = False
    language_detection: Literal["window", "first"] = "window"
    #: auto: split when the channels carry different speech (split_channels_auto), else mix
    channels: Literal["auto", "mix", "split"] = "auto"
    #: Longest window decoded at once, seconds (Whisper's context is 30 s).
    window_s: float = Field(default=30.0, gt=1, le=30)
    #: Audio decoded per step, seconds: memory is bounded by this, not by the duration.
    block_s: float = Field(default=60.0, ge=10, le=600)
    #: Longest audio accepted, seconds (the gateway has its own limit).
    max_duration_s: float = Field(default=4 * 3600, gt=0)
    #: Diarize every transcript unless a request says otherwise (the ``diarize`` option): the
    #: voice embeddings cost about RTF 0.06 on 2 cores (bench/asr).
    diarize: bool = False
    #: Catalogue model of the voice encoder diarization uses.
    voice_model: str = "resemblyzer-voice-encoder"
    preload: bool = True
    http_port: int = 8114
