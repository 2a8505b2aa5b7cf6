"""Who spoke when (issue 28.1): Resemblyzer's voice encoder in NumPy against PyTorch running the
same weights, and diarized transcripts of real speech: jfk.flac (one speaker), jfk.flac joined
to a FLEURS German reader (two, changing at the join), a dialogue of two espeak-ng voices the
test synthesises (Debian's espeak-ng: scripts/install-system-deps.sh installs it)."""

from __future__ import annotations

import io
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
import srt
import webvtt

from mediafleet.common.errors import BadRequest, EngineError
from mediafleet.common.media import AUDIO_RATE, iter_audio
from mediafleet.common.pipeline.run import execute, prepare
from mediafleet.whisper_transcriber.contract import (
    CAPABILITY,
    SpeakerTurn,
    TranscriptResult,
    to_srt,
    to_txt,
    to_vtt,
)
from mediafleet.whisper_transcriber.diarize import MAX_CLUSTERED, Diarizer
from mediafleet.whisper_transcriber.engines.resemblyzer_engine import (
    PARTIAL_FRAMES,
    VoiceEncoder,
    load_legacy_torch,
    mel_spectrogram,
)
from mediafleet.whisper_transcriber.runner import WhisperRunner
from mediafleet.whisper_transcriber.settings import WhisperSettings
from tests.conftest import sample
from tests.speech import FLEURS_DE, JFK, norm, wer, write_audio

#: The espeak-ng voices of the dialogue: the two whose utterance embeddings were least alike of
#: eleven English voice variants tried (cosine similarity 0.55), a male and a female voice.
VOICES = ("en+edward", "en+anika")
LINES = (
    "Good morning. Did you finish the report on the quarterly sales figures yesterday?",
    "Yes, I sent it to the whole team last night, together with the charts you asked for.",
    "Great. Then let us meet at three o'clock and go through the numbers together.",
    "Three works for me. I will book the small meeting room on the second floor.",
)


def run(runner: WhisperRunner, path: Path, **options: object) -> TranscriptResult:
    """``transcribe`` by the pipeline every executor takes (options checked once)."""
    result = execute(
        prepare(CAPABILITY, "transcribe", options), runner, path, media_kind="audio", progress=lambda *_: None
    )
    assert isinstance(result, TranscriptResult)
    return result


@pytest.fixture(scope="module")
def runner(real_models_dir: Path) -> WhisperRunner:
    r = WhisperRunner(WhisperSettings(core={"models_dir": real_models_dir}, word_timestamps=True))
    r.preload()
    r.voice.load()
    return r


def mono(path: Path) -> np.ndarray:
    """The file's audio as float32 16 kHz mono."""
    return np.concatenate([b.mean(axis=0) for b in iter_audio(path, "mix", 60.0)]).astype(np.float32)


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """jfk.flac then fleurs-de-000.ogg in one FLAC file, and the time of the join (s)."""
    first, second = mono(sample("jfk.flac")), mono(sample("fleurs-de-000.ogg"))
    path = tmp_path_factory.mktemp("joined") / "jfk+de.flac"
    write_audio(path, np.concatenate([first, second])[None, :], "flac", "flac")
    return path, len(first) / AUDIO_RATE


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[float, float]]]:
    """Four lines spoken alternately by two espeak-ng voices, 0.5 s apart: the file and each
    line's (start, end) in seconds."""
    folder = tmp_path_factory.mktemp("dialogue")
    parts, spans, t = [], [], 0.0
    for i, line in enumerate(LINES):
        wav = folder / f"{i}.wav"
        subprocess.run(["espeak-ng", "-v", VOICES[i % 2], "-w", str(wav), line], check=True)
        audio = mono(wav)
        spans.append((t, t + len(audio) / AUDIO_RATE))
        parts += [audio, np.zeros(AUDIO_RATE // 2, np.float32)]
        t = spans[-1][1] + 0.5
    path = folder / "dialogue.flac"
    write_audio(path, np.concatenate(parts)[None, :], "flac", "flac")
    return path, spans


def test_numpy_encoder_matches_pytorch_on_the_same_weights(real_models_dir: Path) -> None:
    """The restricted unpickler reads every tensor PyTorch reads, bit for bit, and the NumPy LSTM
    gives PyTorch's ``nn.LSTM`` + linear + ReLU + L2 norm (Resemblyzer's forward) to 1e-5."""
    import torch

    path = real_models_dir / "resemblyzer" / "pretrained.pt"
    theirs = torch.load(path, map_location="cpu", weights_only=False)["model_state"]
    ours = load_legacy_torch(path)["model_state"]
    assert sorted(ours) == sorted(theirs)
    assert all(np.array_equal(ours[k], theirs[k].numpy()) for k in theirs)
    lstm, linear = torch.nn.LSTM(40, 256, 3, batch_first=True), torch.nn.Linear(256, 256)
    lstm.load_state_dict({k[5:]: v for k, v in theirs.items() if k.startswith("lstm.")})
    linear.load_state_dict({k[7:]: v for k, v in theirs.items() if k.startswith("linear.")})
    audio = mono(sample("jfk.flac"))
    mel = mel_spectrogram(audio)
    mels = np.stack([mel[s : s + PARTIAL_FRAMES] for s in range(0, len(mel) - PARTIAL_FRAMES, 200)])
    with torch.no_grad():
        _, (hidden, _) = lstm(torch.from_numpy(mels))
        raw = torch.relu(linear(hidden[-1]))
        expected = (raw / raw.norm(dim=1, keepdim=True)).numpy()
    encoder = VoiceEncoder(real_models_dir)
    got = encoder.embed(mels)
    assert got.shape == (len(mels), 256) and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-5
    assert len(mel) == 1 + len(audio) // 160  # one frame per 10 ms, centred


def test_a_weights_file_cannot_run_code(tmp_path: Path) -> None:
    """A legacy torch file whose pickle calls a function is refused, not executed."""

    class Evil:
        def __reduce__(self):  # pickle would call os.system("...") on load
            import os

            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    stream = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, stream, protocol=2)
    pickle.dump({"model_state": Evil()}, stream, protocol=2)
    bad = tmp_path / "evil.pt"
    bad.write_bytes(stream.getvalue())
    with pytest.raises(pickle.UnpicklingError, match="posix.system is not allowed|os.system is not allowed"):
        load_legacy_torch(bad)
    assert not (tmp_path / "pwned").exists()
    not_torch = tmp_path / "zip.pt"
    not_torch.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    with pytest.raises((ValueError, pickle.UnpicklingError)):
        load_legacy_torch(not_torch)


def test_one_speaker_gives_one_speaker(runner: WhisperRunner) -> None:
    result = run(runner, sample("jfk.flac"), diarize=True)
    assert wer(JFK, result.text) == 0.0
    assert [s.id for s in result.speakers] == [1] and result.speakers[0].talk_s > 8.0
    assert {s.speaker for s in result.segments} == {1}
    assert {w.speaker for s in result.segments for w in s.words} == {1}
    info = result.diarization
    assert info is not None and info.speakers_estimated and info.partials >= 10
    assert info.model == "resemblyzer-voice-encoder" and len(info.model_version) == 12
    assert all(t.speaker == 1 for t in result.turns) and result.turns[0].start < 1.0


def test_two_recordings_joined_give_two_speakers_changing_at_the_join(
    runner: WhisperRunner, joined: tuple[Path, float]
) -> None:
    path, join = joined
    result = run(runner, path, diarize=True)
    assert [s.id for s in result.speakers] == [1, 2]
    # the change of speaker is within 0.5 s of the join: nothing of speaker 1 goes on after it,
    # nothing of speaker 2 starts before it
    assert max(t.end for t in result.turns if t.speaker == 1) <= join + 0.5
    assert min(t.start for t in result.turns if t.speaker == 2) >= join - 0.5
    english = " ".join(s.text for s in result.segments if s.speaker == 1)
    german = " ".join(s.text for s in result.segments if s.speaker == 2)
    # (Whisper base's German slips do not matter here: whose words they are does)
    assert wer(JFK, english) == 0.0 and norm(german).split()[:6] == FLEURS_DE.split()[:6]
    assert all(w.speaker == s.speaker for s in result.segments for w in s.words)
    # SRT names the speaker on each cue, VTT in a voice span; both parse with their libraries
    cues = list(srt.parse(to_srt(result)))
    assert cues[0].content.startswith("Speaker 1: ") and cues[-1].content.startswith("Speaker 2: ")
    voices = [c.voice for c in webvtt.from_buffer(io.StringIO(to_vtt(result)))]
    assert voices[0] == "Speaker 1" and voices[-1] == "Speaker 2"
    assert to_txt(result).splitlines()[-1].startswith("Speaker 2: ")


def test_the_number_of_speakers_can_be_given(runner: WhisperRunner, joined: tuple[Path, float]) -> None:
    path, join = joined
    two = run(runner, path, speakers=2)
    assert two.diarization is not None and not two.diarization.speakers_estimated
    assert two.diarization.threshold is None and [s.id for s in two.speakers] == [1, 2]
    assert max(t.end for t in two.turns if t.speaker == 1) <= join + 0.5
    one = run(runner, path, speakers=1)
    assert [s.id for s in one.speakers] == [1] and {s.speaker for s in one.segments} == {1}


def test_a_synthesised_two_voice_dialogue_gives_two_alternating_speakers(
    runner: WhisperRunner, dialogue: tuple[Path, list[tuple[float, float]]]
) -> None:
    path, spans = dialogue
    result = run(runner, path, diarize=True, language="en")
    assert [s.id for s in result.speakers] == [1, 2]
    found = [majority(result.turns, start, end) for start, end in spans]
    assert found == [1, 2, 1, 2], (found, result.turns)
    assert norm(result.text).split()[:3] == ["good", "morning", "did"]


def majority(turns: list[SpeakerTurn], start: float, end: float) -> int:
    """The speaker with the most turn time inside [start, end]."""
    overlap: dict[int, float] = {}
    for t in turns:
        overlap[t.speaker] = overlap.get(t.speaker, 0.0) + max(0.0, min(end, t.end) - max(start, t.start))
    return max(overlap, key=overlap.__getitem__)


def test_silence_and_plain_transcripts_have_no_speakers(runner: WhisperRunner, tmp_path: Path) -> None:
    silence = write_audio(
        tmp_path / "silence.wav", np.zeros((1, 3 * AUDIO_RATE), np.float32), "wav", "pcm_s16le"
    )
    quiet = run(runner, silence, diarize=True)
    assert (quiet.segments, quiet.speakers, quiet.turns) == ([], [], [])
    assert quiet.diarization is not None and quiet.diarization.partials == 0
    plain = run(runner, sample("jfk.flac"))
    assert (
        plain.diarization is None and plain.speakers == [] and {s.speaker for s in plain.segments} == {None}
    )


def test_speakers_with_diarize_false_is_refused() -> None:
    with pytest.raises(BadRequest, match="speakers.*speakers needs diarize") as refused:
        prepare(CAPABILITY, "transcribe", {"diarize": False, "speakers": 2})
    assert refused.value.code == "invalid_option"
    with pytest.raises(BadRequest, match="speakers"):
        prepare(CAPABILITY, "transcribe", {"speakers": 0})


def test_diarizing_without_the_voice_model_names_the_pull_command(
    runner: WhisperRunner, tmp_path: Path
) -> None:
    """Fails at once (before any decoding) with the command that provisions the weights."""
    bare = WhisperRunner(runner.settings)
    bare.engine, bare.voice = runner.engine, VoiceEncoder(tmp_path)
    runs = runner.engine.encoder_runs
    with pytest.raises(
        EngineError, match=r"run `mediafleet models pull resemblyzer-voice-encoder`"
    ) as missing:
        run(bare, sample("jfk.flac"), diarize=True)
    assert missing.value.code == "model_not_available" and runner.engine.encoder_runs == runs


def test_hours_of_partials_are_clustered_in_groups(tmp_path: Path) -> None:
    """6,000 partials (about 40 min of speech) of two voices, 1,500 s each: clustered as 2,000
    groups of 3 (the distance matrix stays 2,000 x 2,000), still two speakers changing at 1,500 s."""
    rng = np.random.default_rng(0)
    voices = rng.random((2, 256)).astype(np.float32)
    voices[0, 128:] *= 0.1  # two voices far apart (cosine similarity about 0.2)
    voices[1, :128] *= 0.1
    diarizer = Diarizer(VoiceEncoder(tmp_path))  # embeddings given here: the encoder is not used
    for i in range(6000):
        noisy = voices[i // 3000] + 0.05 * rng.standard_normal(256).astype(np.float32)
        diarizer.embeddings.append(noisy / np.linalg.norm(noisy))
        diarizer.owned.append((i * 0.5, i * 0.5 + 0.5, i))
    assert MAX_CLUSTERED == 2000
    found = diarizer.finish(None)
    assert [(t.speaker, t.start, t.end) for t in found.turns] == [(1, 0.0, 1500.0), (2, 1500.0, 3000.0)]
    assert found.talk_s == {1: 1500.0, 2: 1500.0} and found.partials == 6000
