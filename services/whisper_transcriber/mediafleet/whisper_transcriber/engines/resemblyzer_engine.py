"""Resemblyzer's voice encoder (GE2E speaker embeddings) in NumPy, for diarization.

The weights are Resemblyzer 0.1.4's ``pretrained.pt`` (Apache-2.0; catalogue model
``resemblyzer-voice-encoder``): a 3-layer LSTM (40 -> 256 -> 256 -> 256) over 40-band mel
frames, a linear layer (256 -> 256), ReLU and L2 normalisation (Wan et al. 2018, "Generalized
End-to-End Loss for Speaker Verification"; Resemblyzer's ``voice_encoder.py``). The file is
PyTorch's legacy (non-zip) serialisation; it is read here by a restricted unpickler that
builds NumPy arrays and accepts nothing but tensors and ordered dicts, so the whisper image
needs no PyTorch and loading the file can run no code.

Front end as Resemblyzer's ``audio.py``: 16 kHz mono, volume raised (never lowered) to
-30 dBFS RMS, power mel spectrogram (librosa's ``melspectrogram`` defaults: 25 ms Hann
window, ``n_fft`` 400, hop 10 ms, centred with zero padding, 40 Slaney mel bands with Slaney
area normalisation, 0-8000 Hz; not logarithmic). One embedding per *partial* of 160 frames
(1.6 s).
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from mediafleet.common.catalogue import require_files
from mediafleet.common.engine import Engine
from mediafleet.common.provision import sha256_of

SR = 16_000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
#: Frames of one partial utterance (1.6 s): the length the encoder was trained on.
PARTIAL_FRAMES = 160
HIDDEN = 256
LAYERS = 3
#: Resemblyzer's ``audio_norm_target_dBFS`` (volume raised to it, never lowered).
TARGET_DBFS = -30.0

_DTYPES: dict[str, np.dtype[np.generic]] = {
    "FloatStorage": np.dtype(np.float32),
    "DoubleStorage": np.dtype(np.float64),
    "LongStorage": np.dtype(np.int64),
}
#: PyTorch's magic number at the head of a legacy serialisation (``torch/serialization.py``).
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Storage:
    def __init__(self, dtype: np.dtype[np.generic], key: str):
        self.dtype, self.key = dtype, key
        self.data: np.ndarray | None = None


def _rebuild_tensor(
    storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> Any:
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """Unpickler of a legacy ``torch.save`` file that knows only tensors and ordered dicts."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) in {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")}:
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return name
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a weights file")

    def persistent_load(self, pid: Any) -> _Storage:
        kind, storage_type, key = pid[0], pid[1], pid[2]
        if kind != "storage" or storage_type not in _DTYPES:
            raise pickle.UnpicklingError(f"unsupported storage {storage_type!r}")
        storages: dict[str, _Storage] = self.storages  # type: ignore[attr-defined]
        return storages.setdefault(key, _Storage(_DTYPES[storage_type], key))


class _Header(pickle.Unpickler):
    """The header pickles and the key list hold only ints, strings, lists and dicts."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} in a header")


def load_legacy_torch(path: Path) -> dict[str, Any]:
    """The nested dicts of a legacy (non-zip) ``torch.save`` file with tensors as float32/
    float64/int64 NumPy arrays. Raises ValueError for any other layout (format: PyTorch's
    ``torch/serialization.py``, ``_legacy_save``: magic, protocol, system info, the object
    pickle, the storage keys pickle, then each storage as an int64 count and raw data)."""
    stream = io.BytesIO(path.read_bytes())

    if _Header(stream).load() != _LEGACY_MAGIC:
        raise ValueError(f"{path.name} is not a legacy PyTorch file")
    _Header(stream).load()  # protocol version
    info = _Header(stream).load()
    if not isinstance(info, dict) or not info.get("little_endian", False):
        raise ValueError(f"{path.name}: only little-endian files are read")
    main = _Unpickler(stream)
    main.storages = {}  # type: ignore[attr-defined]
    obj = main.load()
    keys = _Header(stream).load()
    storages: dict[str, _Storage] = main.storages  # type: ignore[attr-defined]
    for key in keys:
        (count,) = struct.unpack("<q", stream.read(8))
        item = storages.get(key)
        dtype = item.dtype if item is not None else np.dtype(np.float32)
        data = np.frombuffer(stream.read(count * dtype.itemsize), dtype=dtype)
        if item is not None:
            item.data = data

    def build(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: build(v) for k, v in value.items()}
        if isinstance(value, tuple) and len(value) == 5 and value[0] == "tensor":
            _, storage, offset, size, stride = value
            if storage.data is None:
                raise ValueError(f"{path.name}: storage {storage.key} missing")
            strides = tuple(s * storage.data.itemsize for s in stride)
            view = np.lib.stride_tricks.as_strided(storage.data[offset:], shape=size, strides=strides)
            return np.array(view)
        return value

    result = build(obj)
    if not isinstance(result, dict):
        raise ValueError(f"{path.name} holds no dict of tensors")
    return result


def mel_filters() -> np.ndarray:
    """Slaney-style mel filter bank, float32 (40, 201): librosa ``filters.mel(sr=16000,
    n_fft=400, n_mels=40)`` (Slaney's Auditory Toolbox: linear below 1 kHz at 200/3 Hz per
    mel, logarithmic above with step ln(6.4)/27; each triangle scaled to unit area)."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        return np.where(
            f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp
        )

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.linspace(0, SR / 2, 1 + N_FFT // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(np.array(0.0)), hz_to_mel(np.array(SR / 2.0)), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : N_MELS + 2] - mel_f[:N_MELS]))[:, None]
    return weights.astype(np.float32)


_MEL = mel_filters()
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


def normalize_volume(audio: np.ndarray) -> np.ndarray:
    """``audio`` scaled so its RMS is -30 dBFS, when it is quieter (Resemblyzer's
    ``normalize_volume(..., increase_only=True)``); silence is returned as it is."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    if rms <= 1e-9:
        return audio
    change_db = TARGET_DBFS - 20 * np.log10(rms)
    return audio if change_db < 0 else (audio * 10 ** (change_db / 20)).astype(np.float32)


def mel_spectrogram(audio: np.ndarray) -> np.ndarray:
    """Power mel spectrogram of 16 kHz mono float32 ``audio``: float32 (1 + N // 160, 40),
    one frame per 10 ms, frame ``i`` centred on sample ``160 i`` (zero padding)."""
    padded = np.pad(audio.astype(np.float32), N_FFT // 2)
    n = 1 + (len(padded) - N_FFT) // HOP
    if n <= 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n, N_FFT), strides=(padded.strides[0] * HOP, padded.strides[0])
    )
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2
    mel: np.ndarray = (power.astype(np.float32) @ _MEL.T).astype(np.float32)
    return mel


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (np.tanh(0.5 * x) + 1.0)
    return out


class VoiceEncoder(Engine):
    """GE2E voice embeddings: :meth:`embed` maps mel partials to unit vectors (256-d)."""

    name = "resemblyzer"

    def __init__(self, models_dir: Path, model: str = "resemblyzer-voice-encoder"):
        super().__init__()
        self.models_dir = Path(models_dir)
        self.catalogue_name = model
        self._version = ""
        self._layers: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._linear: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))

    @property
    def model(self) -> str:
        return self.catalogue_name

    @property
    def model_version(self) -> str:
        return self._version

    def _load(self) -> None:
        (path,) = require_files(self.catalogue_name, self.models_dir)
        state = load_legacy_torch(path)["model_state"]
        self._layers = [
            (
                state[f"lstm.weight_ih_l{k}"].astype(np.float32).T.copy(),
                state[f"lstm.weight_hh_l{k}"].astype(np.float32).T.copy(),
                (state[f"lstm.bias_ih_l{k}"] + state[f"lstm.bias_hh_l{k}"]).astype(np.float32),
            )
            for k in range(LAYERS)
        ]
        self._linear = (
            state["linear.weight"].astype(np.float32).T.copy(),
            state["linear.bias"].astype(np.float32),
        )
        self._version = sha256_of(path)[:12]

    def embed(self, mels: np.ndarray) -> np.ndarray:
        """Embeddings of a batch of partials: ``mels`` float32 (B, T, 40) power mel frames
        (T = 160 for 1.6 s) -> float32 (B, 256), each L2-normalised with non-negative
        entries (so cosine similarity is in [0, 1]). The LSTM's gates follow PyTorch's
        ``nn.LSTM`` (input, forget, cell, output; both biases added)."""
        self.load()
        with self._run_lock:
            x = mels.astype(np.float32)
            batch, steps, _ = x.shape
            if batch == 0:
                return np.zeros((0, HIDDEN), dtype=np.float32)
            for w_ih, w_hh, bias in self._layers:
                projected = x @ w_ih + bias  # (B, T, 4H): every step's input at once
                h = np.zeros((batch, HIDDEN), dtype=np.float32)
                c = np.zeros((batch, HIDDEN), dtype=np.float32)
                out = np.empty((batch, steps, HIDDEN), dtype=np.float32)
                for t in range(steps):
                    gates = projected[:, t] + h @ w_hh
                    i, f = _sigmoid(gates[:, :HIDDEN]), _sigmoid(gates[:, HIDDEN : 2 * HIDDEN])
                    g, o = np.tanh(gates[:, 2 * HIDDEN : 3 * HIDDEN]), _sigmoid(gates[:, 3 * HIDDEN :])
                    c = f * c + i * g
                    h = o * np.tanh(c)
                    out[:, t] = h
                x = out
            w, b = self._linear
            raw = np.maximum(h @ w + b, 0.0)
            norm = np.linalg.norm(raw, axis=1, keepdims=True)
            embeddings: np.ndarray = (raw / np.maximum(norm, 1e-12)).astype(np.float32)
            return embeddings
