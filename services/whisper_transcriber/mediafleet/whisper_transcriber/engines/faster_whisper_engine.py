"""faster-whisper (SYSTRAN): Whisper on CTranslate2, from a catalogue model directory.

The model directory holds ``model.bin``, ``config.json``, ``tokenizer.json`` and
``vocabulary.json`` (faster-whisper's converted format); it is loaded with
``local_files_only=True`` and Hugging Face's hub is set offline, so loading never opens a
socket. Silero VAD ships inside the faster-whisper wheel (``assets/silero_vad_v6.onnx``).
"""

from __future__ import annotations

import dataclasses
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
        #: Encoder passes run (each 30 s of mel frames), for tests and benchmarks.
        self.encoder_runs = 0
        self._encoded: tuple[np.ndarray, Any] | None = None

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
            cpu_threads=self.threads(),
            local_files_only=True,
        )
        self.device, self.compute_type = device, compute
        # one encoder pass per window (decode): the instance's encode answers from the kept output
        self._plain_encode = self._model.encode
        self._model.encode = self._encode
        self._version = f"{sha256_of(model_bin)[:12]}+ct2-{ctranslate2.__version__}"
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        self.languages = frozenset(_LANGUAGE_CODES)

    def threads(self) -> int:
        """CTranslate2's intra-op threads: ``WHISPER_CPU_THREADS``, else the CPU limit up to 4,
        never above an ``OMP_THREAD_LIMIT`` in the environment: CTranslate2 4.x asked for more
        threads than that limit decodes garbage (jfk.flac as ")))))..." at limit 1, threads 2)."""
        wanted = self.cpu_threads or min(cpu_limit(), 4)
        limit = os.environ.get("OMP_THREAD_LIMIT", "")
        return max(1, min(wanted, int(limit))) if limit.isdigit() and int(limit) > 0 else wanted

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
        """faster-whisper's ``transcribe`` on one window (<= 30 s, VAD off): (segments, info).

        Without ``language``, the language is detected here on the window's encoder output and
        that output is reused for its decoding: faster-whisper 1.2's ``transcribe`` detects
        on one encoder run and decodes on another of the same frames (2 encoder runs per
        window, ~0.1 of the runner's time on CPU); here each window is encoded once
        (:attr:`encoder_runs` counts them).
        """
        self.load()
        with self._run_lock:
            probability = None
            if kwargs.get("language") is None and self._model.model.is_multilingual:
                kwargs["language"], probability = self._detect(audio)
            try:
                segments, info = self._model.transcribe(audio, vad_filter=False, **kwargs)
                segments = list(segments)
            finally:
                self._encoded = None
            if probability is not None:
                info = dataclasses.replace(info, language_probability=probability)
            return segments, info

    def _detect(self, audio: np.ndarray) -> tuple[str, float]:
        """The language of ``audio`` (<= 30 s) and its probability, from the encoder output of
        the very frames ``transcribe`` decodes first (kept for it: :meth:`_encode`)."""
        from faster_whisper.audio import pad_or_trim

        extractor = self._model.feature_extractor
        features = extractor(audio)
        content = features.shape[-1] - 1  # transcribe's content frames: the last one is dropped
        segment = pad_or_trim(features[:, : min(extractor.nb_max_frames, content)])
        output = self._encode(segment)
        token, probability = self._model.model.detect_language(output)[0][0]
        self._encoded = (segment, output)
        return token[2:-2], float(probability)

    def _encode(self, features: np.ndarray) -> Any:
        """The model's ``encode``, answering once from the window's kept encoder output when
        asked for the same frames (then forgetting it)."""
        kept = self._encoded
        if kept is not None and kept[0].shape == features.shape and np.array_equal(kept[0], features):
            self._encoded = None
            return kept[1]
        self.encoder_runs += 1
        return self._plain_encode(features)
