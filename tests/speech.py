"""Speech test helpers shared by the transcription tests: the shared corpus's reference texts
(../shared/media/MANIFEST.md), the FLEURS normalisation, WER (jiwer) and an audio writer."""

from __future__ import annotations

import re
from pathlib import Path

import av
import jiwer
import numpy as np

from mediafleet.common.media import AUDIO_RATE

JFK = (
    "and so my fellow americans ask not what your country can do for you ask what you can do for your country"
)
FLEURS_DE = (
    "für die besten aussichten auf hongkong sollten sie die insel verlassen und zum "
    "gegenüberliegenden ufer von kowloon fahren"
)
FLEURS_FR = "l'accident a eu lieu en terrain montagneux et il semblerait que cela ait été causé par un incendie malveillant"
#: The French sentence as one channel of a 16-bit stereo WAV: CTranslate2's int8 kernels differ
#: per CPU, and so do Whisper base's slips on it: WER <= 0.25 on the earlier machines, 0.263 (5 of
#: 19 words: "sembleraient", "était", "un 110") on an AMD EPYC without AVX-512, 2026-12-06.
FLEURS_FR_CHANNEL_WER = 0.3


def norm(text: str) -> str:
    """Lowercase, punctuation removed except apostrophes (the FLEURS references' normalisation)."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def wer(reference: str, text: str) -> float:
    return jiwer.wer(norm(reference), norm(text))


def write_audio(path: Path, audio: np.ndarray, fmt: str, codec: str, rate: int = AUDIO_RATE) -> Path:
    """Encode float32 ``audio`` of shape (channels, samples) with PyAV."""
    layout = "mono" if audio.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        frame_format = stream.codec_context.format.name
        chunk = 1024 if codec in ("aac", "libopus", "mp3", "libmp3lame") else 4096
        for i in range(0, audio.shape[1], chunk):
            part = np.ascontiguousarray(audio[:, i : i + chunk], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(part, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = None
            resampled = av.AudioResampler(format=frame_format, layout=layout, rate=rate).resample(frame)
            for f in resampled:
                for packet in stream.encode(f):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
