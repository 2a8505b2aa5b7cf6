"""whisper_transcriber on real weights (Whisper base converted for CTranslate2, catalogue
``whisper-base``) and the real speech of the shared corpus, against its ground truth
(../shared/media/MANIFEST.md): jfk.flac's sentence, FLEURS German and French, the
English-then-German multilingual.mp3, hotwords.mp3's "ComfyUI"."""

from __future__ import annotations

import io
import itertools
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import srt
import webvtt

from mediafleet.common.errors import BadRequest, InvalidMedia
from mediafleet.common.media import AUDIO_RATE, iter_audio, probe_media
from mediafleet.common.pipeline.run import execute, prepare
from mediafleet.whisper_transcriber.contract import CAPABILITY, TranscriptResult, to_srt, to_txt, to_vtt
from mediafleet.whisper_transcriber.runner import WhisperRunner
from mediafleet.whisper_transcriber.settings import WhisperSettings
from tests.conftest import sample
from tests.speech import FLEURS_DE, FLEURS_FR, FLEURS_FR_CHANNEL_WER, JFK, norm, wer, write_audio


@pytest.fixture(scope="module")
def runner(real_models_dir: Path) -> WhisperRunner:
    r = WhisperRunner(WhisperSettings(core={"models_dir": real_models_dir}))
    r.preload()
    assert r.ready() is None
    return r


def run(runner: WhisperRunner, path: Path, progress=None, **options) -> TranscriptResult:
    """``transcribe`` by the pipeline every executor takes (options checked once)."""
    prepared = prepare(CAPABILITY, "transcribe", options)
    result = execute(prepared, runner, path, media_kind="audio", progress=progress or (lambda *_: None))
    assert isinstance(result, TranscriptResult)
    return result


def decoded(name: str, channels: str = "mix") -> np.ndarray:
    return np.concatenate(list(iter_audio(sample(name), channels)), axis=1)


def test_jfk_exact_with_times_and_words(runner: WhisperRunner) -> None:
    seen: list[float] = []
    result = run(runner, sample("jfk.flac"), progress=lambda f, _m: seen.append(f), word_timestamps=True)
    assert wer(JFK, result.text) == 0.0, result.text
    assert result.language == "en" and result.language_probability > 0.9
    assert result.duration_s == pytest.approx(11.0, abs=0.05) and result.task == "transcribe"
    assert (result.engine, result.model, result.compute_type) == ("faster-whisper", "whisper-base", "int8")
    assert result.model_version.startswith("905e5bf8336b")  # the catalogue's sha256 of model.bin
    assert 0 <= result.segments[0].start < 1.0 and 9.0 < result.segments[-1].end <= 11.0
    words = [w for s in result.segments for w in s.words]
    assert norm(" ".join(w.word for w in words)) == JFK
    assert all(0 <= w.start <= w.end <= 11.0 and 0 <= w.probability <= 1 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert seen and seen == sorted(seen) and 0 < seen[-1] <= 1
    assert 0 < result.rtf < 5 and result.elapsed_ms > 0


@pytest.mark.parametrize(
    ("name", "language", "reference", "max_wer"),
    # measured here: de WER 0.12 ("genübeli"), fr 0.10 ("sembleraient", "était")
    [("fleurs-de-000.ogg", "de", FLEURS_DE, 0.25), ("fleurs-fr-000.ogg", "fr", FLEURS_FR, 0.25)],
)
def test_fleurs_language_id_and_wer(
    runner: WhisperRunner, name: str, language: str, reference: str, max_wer: float
) -> None:
    result = run(runner, sample(name))
    assert result.language == language and result.language_probability > 0.9
    assert wer(reference, result.text) <= max_wer, result.text
    assert result.speech_s < result.duration_s  # the VAD dropped the silence around the sentence


def test_code_switched_audio_returns_both_languages(runner: WhisperRunner, real_models_dir: Path) -> None:
    """multilingual.mp3: the MIT licence read in English, then in German (from ~30 s)."""
    result = run(runner, sample("multilingual.mp3"))
    english = [s for s in result.segments if s.language == "en"]
    german = [s for s in result.segments if s.language == "de"]
    assert english and german
    assert max(s.end for s in english) <= 30.0 <= min(s.start for s in german)
    assert "permission is hereby granted free of charge" in norm(" ".join(s.text for s in english))
    german_text = norm(" ".join(s.text for s in german))
    assert "software" in german_text and "dokumentationsdateien" in german_text
    assert {x.language for x in result.languages} == {"en", "de"}
    assert all(x.speech_s > 20 for x in result.languages)

    # why the windows exist: one plain faster-whisper call keeps English for the whole file
    from faster_whisper import WhisperModel

    plain = WhisperModel(str(real_models_dir / "whisper/base"), device="cpu", compute_type="int8")
    segments, info = plain.transcribe(str(sample("multilingual.mp3")), beam_size=5)
    assert info.language == "en" and "dokumentationsdateien" not in norm(" ".join(s.text for s in segments))

    # language detection once: the German half is decoded as English (the option's cost)
    once = run(runner, sample("multilingual.mp3"), language_detection="first")
    assert {s.language for s in once.segments} == {"en"}


def test_a_window_s_language_is_detected_on_its_decoding_encoder_pass(
    runner: WhisperRunner, real_models_dir: Path
) -> None:
    """faster-whisper's transcribe without a language runs the encoder twice on a window's
    first 30 s (once to detect, once to decode); the engine detects on the pass it decodes
    with: one pass fewer per window, the same text and language."""
    from faster_whisper import WhisperModel
    from faster_whisper.audio import decode_audio

    audio = decode_audio(str(sample("jfk.flac")))
    plain = WhisperModel(str(real_models_dir / "whisper/base"), device="cpu", compute_type="int8")
    passes = []
    encode = plain.encode
    plain.encode = lambda features: passes.append(1) or encode(features)
    segments, info = plain.transcribe(audio, beam_size=5, vad_filter=False)
    plain_text = " ".join(s.text for s in segments)
    before = runner.engine.encoder_runs
    ours, our_info = runner.engine.decode(audio, beam_size=5)
    assert (len(passes), runner.engine.encoder_runs - before) == (2, 1)
    assert " ".join(s.text for s in ours) == plain_text and our_info.language == info.language == "en"
    assert abs(our_info.language_probability - info.language_probability) < 0.02
    result = run(runner, sample("multilingual.mp3"))  # each window still in its own language
    assert {s.language for s in result.segments} == {"en", "de"}
    assert all(0.5 < (s.language_probability or 0) <= 1 for s in result.segments)


def test_hotwords_and_prompt(runner: WhisperRunner) -> None:
    plain = run(runner, sample("hotwords.mp3"))
    assert "comfyui" not in norm(plain.text)  # measured: "confu i"
    assert "comfyui" in norm(run(runner, sample("hotwords.mp3"), hotwords="ComfyUI").text)
    assert "comfyui" in norm(run(runner, sample("hotwords.mp3"), initial_prompt="The ComfyUI folder.").text)


def test_language_set_by_the_caller_and_translation(runner: WhisperRunner) -> None:
    forced = run(runner, sample("jfk.flac"), language="en")
    assert forced.language == "en" and forced.language_probability is None
    assert wer(JFK, forced.text) == 0.0
    translated = run(runner, sample("fleurs-de-000.ogg"), task="translate")
    assert translated.task == "translate" and translated.language == "de"
    words = set(norm(translated.text).split())
    assert {"hong", "kong"} <= words or "hongkong" in words
    assert not {"sollten", "die", "und"} & words, translated.text  # English words, not German
    with pytest.raises(BadRequest, match="not one of Whisper's"):
        run(runner, sample("jfk.flac"), language="xx")


@pytest.mark.parametrize(
    ("fmt", "codec", "suffix", "mime", "max_wer"),
    [
        ("wav", "pcm_s16le", ".wav", "audio/wav", 0.0),
        ("mp3", "libmp3lame", ".mp3", "audio/mpeg", 0.0),
        ("ogg", "libopus", ".ogg", "audio/ogg", 0.0),
        ("mp4", "aac", ".m4a", "audio/mp4", 0.0),
    ],
)
def test_containers_and_codecs(
    runner: WhisperRunner, tmp_path: Path, fmt: str, codec: str, suffix: str, mime: str, max_wer: float
) -> None:
    """jfk.flac re-encoded by PyAV into each accepted container: probed by content, same text."""
    rate = 48_000 if codec == "libopus" else 44_100
    audio = decoded("jfk.flac")
    resampled = np.interp(
        np.arange(0, audio.shape[1], AUDIO_RATE / rate), np.arange(audio.shape[1]), audio[0]
    )
    path = write_audio(tmp_path / f"jfk.bin{suffix}", resampled[None, :].astype(np.float32), fmt, codec, rate)
    probe = probe_media(path)
    assert (probe.kind, probe.mime, probe.extension) == ("audio", mime, suffix)
    assert probe.duration_s == pytest.approx(11.0, abs=0.2)
    assert wer(JFK, run(runner, path).text) <= max_wer


def test_channels_split_keeps_each_sentence_on_its_channel(runner: WhisperRunner, tmp_path: Path) -> None:
    """A stereo file with jfk.flac on the left and the French FLEURS sentence on the right."""
    left, right = decoded("jfk.flac")[0], decoded("fleurs-fr-000.ogg")[0]
    n = max(len(left), len(right))
    stereo = np.zeros((2, n), dtype=np.float32)
    stereo[0, : len(left)], stereo[1, : len(right)] = left, right
    path = write_audio(tmp_path / "stereo.wav", stereo, "wav", "pcm_s16le")
    result = run(runner, path, channels="split")
    assert result.channels == "split"
    by_channel = {c: " ".join(s.text for s in result.segments if s.channel == c) for c in (0, 1)}
    assert wer(JFK, by_channel[0]) == 0.0
    assert wer(FLEURS_FR, by_channel[1]) <= FLEURS_FR_CHANNEL_WER
    assert {s.language for s in result.segments if s.channel == 1} == {"fr"}
    assert [s.start for s in result.segments] == sorted(s.start for s in result.segments)
    assert "[0] " in to_srt(result) and "[1] " in to_srt(result)


def test_default_channels_keep_both_sides_of_a_call(runner: WhisperRunner, tmp_path: Path) -> None:
    """No channels option: one speaker per channel (a call) is transcribed per channel, every
    sentence kept, and the result says so; jfk.flac, whose two channels hold the same sound,
    is mixed. (Mixed, the English and the French sentence share a 30-s window decoded in one
    language, and one of them was lost.)"""
    left, right = decoded("jfk.flac")[0], decoded("fleurs-fr-000.ogg")[0]
    stereo = np.zeros((2, len(left) + len(right)), dtype=np.float32)
    stereo[0, : len(left)], stereo[1, len(left) :] = left, right  # one after the other
    path = write_audio(tmp_path / "call.wav", stereo, "wav", "pcm_s16le")
    result = run(runner, path)
    assert result.channels == "split" and "different speech" in result.channels_note
    by_channel = {c: " ".join(s.text for s in result.segments if s.channel == c) for c in (0, 1)}
    assert wer(JFK, by_channel[0]) == 0.0
    assert wer(FLEURS_FR, by_channel[1]) <= FLEURS_FR_CHANNEL_WER
    same = run(runner, sample("jfk.flac"))
    assert same.channels == "mix" and "same sound" in same.channels_note
    assert wer(JFK, same.text) == 0.0


def test_blocks_carry_speech_across_their_boundaries(runner: WhisperRunner, tmp_path: Path) -> None:
    """jfk.flac three times (33 s) decoded in 10-s blocks: a block ends inside every sentence."""
    one = decoded("jfk.flac")
    path = write_audio(tmp_path / "jfk3.wav", np.concatenate([one, one, one], axis=1), "wav", "pcm_s16le")
    small = WhisperRunner(runner.settings.model_copy(update={"block_s": 10.0}))
    small.engine = runner.engine
    small.engines = runner.engines
    whole = WhisperRunner(runner.settings.model_copy(update={"block_s": 60.0}))  # one block: no cut
    whole.engine = runner.engine
    whole.engines = runner.engines
    for vad in (True, False):
        # temperature 0 only: the text repeats itself, compresses 2.48x and sends every window
        # through the sampled fallback (test_repetitive_speech_...), whose slips are not the
        # subject here
        result = run(small, path, vad_filter=vad, temperature=[0.0])
        # nothing lost or repeated at a cut: the 10-s blocks give exactly what one block gives
        uncut = run(whole, path, vad_filter=vad, temperature=[0.0])
        assert result.text == uncut.text, (vad, result.text, uncut.text)
        assert [(s.start, s.end) for s in result.segments] == [(s.start, s.end) for s in uncut.segments]
        # and that is the speech, give or take the model's own slips on a sentence said three
        # times (66 words +-2 on earlier machines; with the VAD's windows on an AMD EPYC,
        # 2026-12-06, 15 words of the third sentence said twice: the same without any cut)
        assert wer(" ".join([JFK] * 3), result.text) <= 0.25, (vad, result.text)
        assert all(b.start >= a.end - 0.05 for a, b in itertools.pairwise(result.segments)), vad
        assert result.duration_s == pytest.approx(33.0, abs=0.05)
        assert result.segments[-1].start > 22.0 and result.segments[-1].end <= 33.0


def test_repetitive_speech_does_not_come_back_as_a_loop(runner: WhisperRunner, tmp_path: Path) -> None:
    """jfk.flac three times in one 30-s window: the right text compresses 2.48x (> 2.4), so every
    fallback temperature "fails" and faster-whisper keeps the attempt of best log-probability,
    seen here as a sampled loop (199 words, ratio 10.1) now and then. The runner decodes such a
    window again at the first temperature and keeps the text that compresses less.

    A sampled attempt that drops a clause compresses below 2.4 and is accepted as it is (seen
    once in CI, 2026-12-06: 42 words, the second "ask what you can do for your country" left
    out); that is the model's slip, not a loop, so the sampled runs are held to "no loop, the
    first sentence whole, at least 40 words" and only the greedy run to the exact count.

    The sampled runs are seeded (CTranslate2's generator, seeds 1-3): unseeded, another
    attempt in CI read "ask not what your country can do for you. Aspargy you can do for
    your country" (first sentence WER 0.14, 2026-12-06), a slip that passes or fails by
    chance. Seeded, every run samples the same way; the loop itself is reproduced without
    chance by ``LoopingEngine`` below."""
    import ctranslate2

    one = decoded("jfk.flac")
    path = write_audio(
        tmp_path / "jfk3.wav",
        np.concatenate([one, one, one], axis=1)[:, : 30 * AUDIO_RATE],
        "wav",
        "pcm_s16le",
    )
    # ~58 words: two sentences and most of the third
    words = len(JFK.split())  # 22
    for seed in (1, 2, 3):
        ctranslate2.set_random_seed(seed)
        result = run(runner, path, vad_filter=False)
        said = norm(result.text).split()
        assert 40 <= len(said) <= 60, result.text  # a loop: 199 words
        assert max(s.compression_ratio for s in result.segments) < 3.0, result.segments
        assert wer(JFK, " ".join(said[:words])) <= 0.1, result.text
    greedy = run(runner, path, vad_filter=False, temperature=[0.0])
    assert {s.temperature for s in greedy.segments} == {0.0}
    assert 52 <= len(norm(greedy.text).split()) <= 60, greedy.text
    with pytest.raises(BadRequest) as err:
        run(runner, path, temperature=[3.0])
    assert err.value.code == "invalid_option"


class LoopingEngine:
    """faster-whisper's answers as seen on jfk.flac x3: a loop at the last temperature, the
    right text at temperature 0. Records the temperatures asked for."""

    def __init__(self, real) -> None:
        self.real, self.asked = real, []

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    def decode(self, audio: np.ndarray, **kwargs):
        from types import SimpleNamespace as NS

        self.asked.append(kwargs["temperature"])
        info = NS(language="en", language_probability=0.95)
        if len(kwargs["temperature"]) > 1:
            loop = NS(
                start=0.0,
                end=30.0,
                text=" ask not" * 99,
                words=[],
                avg_logprob=-0.09,
                no_speech_prob=0.0,
                compression_ratio=10.06,
                temperature=1.0,
            )
            return [loop], info
        right = NS(
            start=0.0,
            end=11.0,
            text=" " + JFK,
            words=[],
            avg_logprob=-0.16,
            no_speech_prob=0.0,
            compression_ratio=2.48,
            temperature=0.0,
        )
        return [right], info


def test_a_loop_at_the_last_temperature_is_decoded_again(runner: WhisperRunner, tmp_path: Path) -> None:
    path = write_audio(tmp_path / "jfk.wav", decoded("jfk.flac"), "wav", "pcm_s16le")
    looping = WhisperRunner(runner.settings)
    looping.engine = LoopingEngine(runner.engine)
    result = run(looping, path, vad_filter=False)
    assert looping.engine.asked == [[0.0, 0.2, 0.4, 0.6, 0.8, 1.0], [0.0]]
    assert norm(result.text) == JFK and result.segments[0].temperature == 0.0
    # a schedule of one temperature has no fallback to distrust: no second decode
    looping.engine.asked.clear()
    run(looping, path, vad_filter=False, temperature=[0.0])
    assert looping.engine.asked == [[0.0]]


def test_silence_gives_no_segments_not_an_error(runner: WhisperRunner, tmp_path: Path) -> None:
    path = write_audio(
        tmp_path / "silence.wav", np.zeros((1, 5 * AUDIO_RATE), np.float32), "wav", "pcm_s16le"
    )
    result = run(runner, path)
    assert (result.segments, result.language, result.text, result.speech_s) == ([], None, "", 0.0)
    assert result.duration_s == pytest.approx(5.0) and CAPABILITY.task("transcribe").summary(
        result
    ).startswith("no speech")


def test_bad_audio_fails_with_the_reason(runner: WhisperRunner, tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia) as no_audio:
        run(runner, sample("mmpose_demo.mp4"))  # video without an audio track
    assert no_audio.value.code == "no_audio"
    short = WhisperRunner(runner.settings.model_copy(update={"max_duration_s": 5.0}))
    short.engine, short.engines = runner.engine, runner.engines
    with pytest.raises(InvalidMedia) as too_long:
        run(short, sample("jfk.flac"))
    assert too_long.value.code == "media_too_long" and "11 s" in too_long.value.message
    truncated = tmp_path / "cut.flac"
    truncated.write_bytes(sample("jfk.flac").read_bytes()[:300_000])
    with pytest.raises(InvalidMedia, match="truncated: its header says 11.0 s, its data ends at 2.8 s"):
        probe_media(truncated)
    # a worker given such a file anyway (stored before this check) fails the task with the reason
    with pytest.raises(InvalidMedia, match=r"audio cannot be decoded after 2\.\d s"):
        run(runner, truncated)


def test_video_audio_track(runner: WhisperRunner) -> None:
    """short_hamilton_clip.mp4: its AAC track is transcribed (rap lyrics, no reference text)."""
    result = run(runner, sample("short_hamilton_clip.mp4"))
    assert result.language == "en" and result.duration_s == pytest.approx(10.0, abs=0.1)
    assert len(norm(result.text).split()) >= 15 and all(s.end <= 10.1 for s in result.segments)


def test_exports_parse_with_standard_parsers(runner: WhisperRunner) -> None:
    result = run(runner, sample("multilingual.mp3"))
    """SRT and VTT parse; cues cut for reading (2 lines of 42 characters, 7 s; test_subtitles.py
    has the exact cuts) hold every word of every segment, within the segment's time."""
    cues = list(srt.parse(to_srt(result)))
    # Whisper base's segmentation differs per CPU (int8 kernels): 4 or more segments on the AMD
    # EPYC of earlier runs, 3 on an Intel Xeon with AVX-512 (2026-12-07); the cues are cut from them
    assert len(result.segments) >= 3 and len(cues) > len(result.segments)
    assert " ".join(c.content.replace("\n", " ") for c in cues).split() == result.text.split()
    for cue in cues:
        lines = cue.content.splitlines()
        assert len(lines) <= 2 and all(len(x) <= 42 or " " not in x for x in lines), cue.content
        start, end = cue.start.total_seconds(), cue.end.total_seconds()
        assert end - start <= 7.001 and any(
            s.start - 0.001 <= start <= end <= s.end + 0.001 for s in result.segments
        )
    vtt_text = to_vtt(result)
    vtt = webvtt.from_buffer(io.StringIO(vtt_text))
    assert [c.text for c in vtt] == [c.content for c in cues]
    assert set(re.findall(r"<lang ([a-z]+)>", vtt_text)) == {s.language for s in result.segments}
    stamp = srt.timedelta_to_srt_timestamp
    assert [(c.start, c.end) for c in vtt] == [
        (stamp(c.start).replace(",", "."), stamp(c.end).replace(",", ".")) for c in cues
    ]
    assert to_txt(result).splitlines() == [" ".join(s.text.split()) for s in result.segments]


def test_loading_and_transcribing_open_no_socket(
    real_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"a socket was opened: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    r = WhisperRunner(WhisperSettings(core={"models_dir": real_models_dir}))
    r.preload()
    assert wer(JFK, run(r, sample("jfk.flac")).text) == 0.0


def test_missing_weights_name_the_pull_command(tmp_path: Path) -> None:
    r = WhisperRunner(WhisperSettings(core={"models_dir": tmp_path}))
    r.preload()
    assert "mediafleet models pull whisper-base" in (r.ready() or "")


def test_a_model_directory_outside_the_catalogue(real_models_dir: Path, tmp_path: Path) -> None:
    """WHISPER_MODEL as an absolute path: a CTranslate2 directory the operator provides."""
    import shutil

    local = tmp_path / "my-whisper"
    shutil.copytree(real_models_dir / "whisper/base", local)
    r = WhisperRunner(WhisperSettings(core={"models_dir": tmp_path / "empty"}, model=str(local)))
    r.preload()
    assert r.ready() is None and r.engine.model == str(local)
    assert wer(JFK, run(r, sample("jfk.flac")).text) == 0.0
    missing = WhisperRunner(WhisperSettings(core={"models_dir": tmp_path}, model=str(tmp_path / "nowhere")))
    missing.preload()
    assert "nowhere/model.bin not found" in (missing.ready() or "")


def test_an_openmp_thread_limit_below_the_threads_keeps_the_text(real_models_dir: Path) -> None:
    """OMP_THREAD_LIMIT=1 with CTranslate2 on 2 threads decoded jfk.flac as ")))))..." (a fleet
    test saw it); the engine keeps its threads within the limit. A fresh process: OpenMP reads
    the variable once."""
    import os
    import subprocess
    import sys

    code = (
        "from pathlib import Path\n"
        "from mediafleet.whisper_transcriber.runner import WhisperRunner\n"
        "from mediafleet.whisper_transcriber.settings import WhisperSettings\n"
        f"r = WhisperRunner(WhisperSettings(core={{'models_dir': {str(real_models_dir)!r}}}, cpu_threads=2))\n"
        f"print(r.engine.threads(), r.run('transcribe', Path({str(sample('jfk.flac'))!r}), {{}}, {{}}, "
        "lambda *a: None).text)\n"
    )
    env = {**os.environ, "OMP_THREAD_LIMIT": "1", "MEDIAFLEET_LOG_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    threads, text = out.stdout.strip().splitlines()[-1].split(" ", 1)
    assert threads == "1" and wer(JFK, text) == 0.0, text
