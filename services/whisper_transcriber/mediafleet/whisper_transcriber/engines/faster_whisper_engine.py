"""faster-whisper (SYSTRAN): Whisper on CTranslate2, from a catalogue model directory.

The model directory holds ``model.bin``, ``config.json``, ``tokenizer.json`` and
``vocabulary.json`` (faster-whisper's converted format); it is loaded with
``local_files_only=True`` and Hugging Face's hub is set offline, so loading never opens a
socket. Silero VAD ships inside the faster-whisper wheel (``assets/silero_vad_v6.onnx``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mediafleet.common.catalogue import require_files
from mediafleet.common.engine import Engine
from mediafleet.common.errors import BadRequest
from mediafleet.common.provision import sha256_of
from mediafleet.common.resources import cpu_limit


class FasterWhisperEngine(Engine):
    name = "faster-whisper"

    def __init__(self, models_dir: Path, model: str, device: str, compute_type: str | None, cpu_threads: int):
        super().__init__()
        self.models_dir = Path(models_dir)
        self.catalogue_name = model
        self.device = device
        self.requested_compute_type = compute_type
        self.cpu_threads = cpu_threads
        self._version = ""
        self.compute_type = ""

    @property
    def model(self) -> str:
        return self.catalogue_name

    @property
    def model_version(self) -> str:
        return self._version

    def _load(self) -> None:
        local = Path(self.catalogue_name)
        if local.is_absolute():  # a CTranslate2 Whisper directory the operator provides (unpinned)
            if not (local / "model.bin").is_file():
                raise FileNotFoundError(f"{local}/model.bin not found (WHISPER_MODEL)")
            files = [local / "model.bin"]
        else:
            files = require_files(self.catalogue_name, self.models_dir)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import ctranslate2
        from faster_whisper import WhisperModel

        device = self.device
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        compute = self.requested_compute_type or ("float16" if device == "cuda" else "int8")
        model_bin = next(f for f in files if f.name == "model.bin")
        self._model = WhisperModel(
            str(model_bin.parent),
            device=device,
            compute_type=compute,
            cpu_threads=self.cpu_threads or min(cpu_limit(), 4),
            local_files_only=True,
        )
        self.device, self.compute_type = device, compute
        self._version = f"{sha256_of(model_bin)[:12]}+ct2-{ctranslate2.__version__}"
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        self.languages = frozenset(_LANGUAGE_CODES)

    def check_language(self, language: str | None) -> None:
        """Raises BadRequest for a code Whisper does not know."""
        self.load()
        if language is not None and language not in self.languages:
            raise BadRequest(
                f"language {language!r} is not one of Whisper's {len(self.languages)} languages",
                code="invalid_option",
            )

    def speech_regions(self, audio: np.ndarray, max_speech_s: float) -> list[tuple[int, int]]:
        """Silero VAD speech regions of 16 kHz mono float32 ``audio``: [(start, end)] in samples,
        none longer than ``max_speech_s``."""
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        found = get_speech_timestamps(audio, VadOptions(max_speech_duration_s=max_speech_s))
        return [(int(r["start"]), int(r["end"])) for r in found]

    def decode(self, audio: np.ndarray, **kwargs: Any) -> tuple[list[Any], Any]:
        """faster-whisper's ``transcribe`` on one window (<= 30 s, VAD off): (segments, info)."""
        self.load()
        with self._run_lock:
            segments, info = self._model.transcribe(audio, vad_filter=False, **kwargs)
            return list(segments), info
