"""The fingerprint task and its near-duplicate rule on media the tests make: copies of shared
photos (resized, re-encoded, cropped), clips that share only a black fade-in, the same clip
re-encoded at another bit rate, shared recordings re-encoded; and the recorder keeping the
pairs of one owner's files (embedded store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mediafleet.common import registry
from mediafleet.common.capability import Capability
from mediafleet.common.errors import InvalidMedia, UnsupportedMediaType
from mediafleet.common.settings import CoreSettings
from mediafleet.media_metadata.contract import (
    MAX_AUDIO_BER,
    FingerprintResult,
    audio_ber,
    fingerprint_likeness,
    hamming,
)
from mediafleet.media_metadata.fingerprint import trim_bars
from mediafleet.media_metadata.runner import MetadataRunner
from tests.conftest import SHARED_MEDIA
from tests.media_files import transcode, write_clip, write_video

IMAGES = sorted(p for p in SHARED_MEDIA.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif"))


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> MetadataRunner:
    cap: Capability = registry.get("media_metadata")
    # fingerprints need no catalogued model: an empty models directory
    built = cap.build_runner(cap.load_settings(core=CoreSettings(models_dir=tmp_path_factory.mktemp("none"))))
    assert isinstance(built, MetadataRunner)
    return built


def fp(runner: MetadataRunner, path: Path, **options: object) -> FingerprintResult:
    out = runner.run("fingerprint", path, dict(options), {}, lambda *_: None)
    assert isinstance(out, FingerprintResult)
    return out


def copy_of(src: Path, dst: Path) -> Path:
    """``src`` at 60 % of its size, 3 % cut from each side, saved again as JPEG quality 70."""
    img = Image.open(src).convert("RGB")
    w, h = img.size
    img = img.resize((int(w * 0.6), int(h * 0.6)), Image.Resampling.LANCZOS)
    w, h = img.size
    img = img.crop((int(w * 0.03), int(h * 0.03), w - int(w * 0.03), h - int(h * 0.03)))
    img.save(dst, "JPEG", quality=70)
    return dst


def test_resized_reencoded_cropped_copies_are_duplicates_and_different_photos_are_not(
    runner: MetadataRunner, tmp_path: Path
) -> None:
    assert len(IMAGES) >= 20  # the shared corpus' photos and scans
    originals = {p.name: fp(runner, p) for p in IMAGES}
    for p in IMAGES:
        copy = fp(runner, copy_of(p, tmp_path / f"{p.stem}-copy.jpg"))
        likeness = fingerprint_likeness(originals[p.name], copy)
        assert likeness.duplicate, (p.name, likeness)
    # every pair of different photos is not a duplicate, except the one the corpus' manifest
    # names as a near-duplicate (obama-480p.jpg: obama.jpg downscaled and letter-boxed)
    names = sorted(originals)
    found = {
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if fingerprint_likeness(originals[a], originals[b]).duplicate
    }
    assert found == {("obama-480p.jpg", "obama.jpg")}
    assert originals["obama-480p.jpg"].trimmed is not None  # the bars were cut before hashing


def test_the_duplicate_rule_in_figures() -> None:
    assert hamming("ffff0000ffff0000", "ffff0000ffff0001") == 1
    assert hamming("0" * 16, "f" * 16) == 64
    same = [int(v) for v in np.random.default_rng(0).integers(0, 2**32, 40)]
    assert audio_ber(same, same) == 0.0
    assert 0.4 < audio_ber(same, [v ^ 0xFFFFFFFF for v in same]) < 0.6  # inverted: some shift half-matches
    assert audio_ber([], same) == 1.0
    shifted = [0xDEADBEEF, 0x01234567] + same  # the same sound starting 2 items later
    assert audio_ber(same, shifted) == 0.0


def test_two_clips_sharing_only_a_black_fade_in_are_not_duplicates(
    runner: MetadataRunner, tmp_path: Path
) -> None:
    a = fp(runner, write_clip(tmp_path / "a.mp4", seed=1))
    b = fp(runner, write_clip(tmp_path / "b.mp4", seed=2))
    assert a.media_kind == "video" and a.step_s == 0.5 and len(a.frames) == 12
    # the first 2 s are black in both: flat frames, never compared
    assert [f.informative for f in a.frames] == [False] * 4 + [True] * 8
    assert a.frames[0].phash == b.frames[0].phash  # what a one-frame comparison would see
    likeness = fingerprint_likeness(a, b)
    assert not likeness.duplicate and likeness.similarity < 0.2, likeness


def test_the_same_clip_reencoded_at_another_bit_rate_is_a_duplicate(
    runner: MetadataRunner, tmp_path: Path
) -> None:
    src = write_clip(tmp_path / "a.mp4", seed=1, bit_rate=1_500_000)
    low = transcode(src, tmp_path / "a-150k.mp4", bit_rate=150_000)
    assert low.stat().st_size < src.stat().st_size
    likeness = fingerprint_likeness(fp(runner, src), fp(runner, low))
    assert likeness.duplicate and likeness.method == "frames", likeness


def test_video_with_sound_compares_frames_and_sound(runner: MetadataRunner, tmp_path: Path) -> None:
    speech = SHARED_MEDIA / "jfk.flac"
    a = write_clip(tmp_path / "a.mp4", seed=1, audio_from=speech)
    a_low = transcode(a, tmp_path / "a-low.mp4", bit_rate=200_000, audio_bit_rate=24_000)
    dubbed = write_clip(tmp_path / "a-de.mp4", seed=1, audio_from=SHARED_MEDIA / "fleurs-de-000.ogg")
    fa, flow, fdub = fp(runner, a), fp(runner, a_low), fp(runner, dubbed)
    assert fa.engine == "imagehash+chromaprint" and fa.audio and len(fa.audio) > 20
    same = fingerprint_likeness(fa, flow)
    assert same.duplicate and same.method == "frames+chromaprint", same
    # the same pictures with another soundtrack: not the same video
    other = fingerprint_likeness(fa, fdub)
    assert not other.duplicate and "bit error rate" in other.detail, other
    assert fp(runner, a, audio=False).audio is None


def test_the_same_recording_reencoded_is_a_duplicate_and_other_recordings_are_not(
    runner: MetadataRunner, tmp_path: Path
) -> None:
    jfk = fp(runner, SHARED_MEDIA / "jfk.flac")
    aac = fp(
        runner, transcode(SHARED_MEDIA / "jfk.flac", tmp_path / "jfk.m4a", bit_rate=0, audio_bit_rate=24_000)
    )
    assert jfk.media_kind == "audio" and jfk.engine == "chromaprint" and jfk.frames == []
    likeness = fingerprint_likeness(jfk, aac)
    assert likeness.duplicate and 1 - likeness.similarity <= MAX_AUDIO_BER, likeness
    # the shared speech recordings, each against the others (durations within 5 % or not)
    others = [
        fp(runner, SHARED_MEDIA / n) for n in ("fleurs-de-000.ogg", "fleurs-fr-000.ogg", "hotwords.mp3")
    ]
    assert not any(fingerprint_likeness(jfk, o).duplicate for o in others)
    # compared at the same length: the first 11 s of a French and a German speaker
    de, fr = (
        fp(runner, transcode(SHARED_MEDIA / n, tmp_path / f"{n}.m4a", bit_rate=0))
        for n in ("fleurs-de-000.ogg", "fleurs-fr-000.ogg")
    )
    assert audio_ber(de.audio or [], fr.audio or []) > MAX_AUDIO_BER + 0.03


def test_letterbox_bars_are_cut_and_flat_images_stay_whole() -> None:
    inner = (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)
    boxed = np.zeros((100, 80, 3), np.uint8)
    boxed[20:80] = inner
    img, cut = trim_bars(Image.fromarray(boxed))
    assert cut == [0, 20, 0, 20] and img.size == (80, 60)
    flat = Image.new("RGB", (50, 40), (0, 0, 0))
    assert trim_bars(flat) == (flat, [0, 0, 0, 0])


def test_little_to_compare_gives_a_well_formed_result(runner: MetadataRunner, tmp_path: Path) -> None:
    black = tmp_path / "black.png"
    Image.new("RGB", (64, 48)).save(black)
    white = tmp_path / "white.png"
    Image.new("RGB", (64, 48), (255, 255, 255)).save(white)
    fb, fw = fp(runner, black), fp(runner, white)
    assert fb.flat and fw.flat and not fingerprint_likeness(fb, fw).duplicate  # blank is nobody's copy
    one = fp(runner, write_video(tmp_path / "one.mp4", {}, frames=1))
    assert one.media_kind == "video" and len(one.frames) == 1 and one.audio is None
    assert not fingerprint_likeness(one, one).duplicate  # a flat frame: nothing to compare
    silence = tmp_path / "silence.wav"
    _write_wav(silence, np.zeros(16000, np.int16))
    quiet = fp(runner, silence)
    assert quiet.media_kind == "audio" and quiet.audio is None
    assert fingerprint_likeness(quiet, quiet).method == "none"
    assert not fingerprint_likeness(fp(runner, SHARED_MEDIA / "bus.jpg"), quiet).duplicate  # other kinds


def _write_wav(path: Path, samples: np.ndarray) -> None:
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())


def test_not_media_is_refused(runner: MetadataRunner, tmp_path: Path) -> None:
    for name, error in (("notes.jpg", UnsupportedMediaType), ("notes.mp4", InvalidMedia)):
        junk = tmp_path / name
        junk.write_text("not an image or a video")
        with pytest.raises(error):  # 415 / 422 through the API
            fp(runner, junk)


def test_without_fpcalc_the_task_is_not_ready_and_says_what_to_install(
    runner: MetadataRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert runner.task_ready("fingerprint") is None  # fpcalc is installed here (install-system-deps.sh)
    cap = registry.get("media_metadata")
    bare = cap.build_runner(cap.load_settings(core=CoreSettings(models_dir=tmp_path)))
    monkeypatch.setattr("shutil.which", lambda name: None)
    problem = bare.task_ready("fingerprint")
    assert problem is not None and "libchromaprint-tools" in problem.message
    assert bare.task_ready("metadata") is not None  # no GeoNames data in tmp_path: its own reason
    assert "geonames" in (bare.task_ready("metadata") or problem).message
