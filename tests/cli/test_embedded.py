"""The ``mediafleet`` command in embedded mode (no Redis, no database server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import sample


def _cli(*args: str, db: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mediafleet.cli.main", *args, "--db", db],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_analyze_json_then_search(sqlite_url: str) -> None:
    files = [sample("english.png"), sample("french.jpg")]
    out = _cli(
        "analyze", *map(str, files), "--tasks", "ocr", "-o", "ocr.engine=rapidocr", "--json", db=sqlite_url
    )
    assert out.returncode == 0, out.stderr
    items = [json.loads(line) for line in out.stdout.splitlines()]
    assert [Path(i["file"]).name for i in items] == ["english.png", "french.jpg"]
    first = items[0]
    assert first["media"]["media_id"] == "f9f8c82b6b15ac6c9367c7939129395d6c45a882a2dadde33aaa810da4d450d5"
    assert (first["media"]["width"], first["media"]["height"], first["media"]["mime"]) == (
        905,
        480,
        "image/png",
    )
    ocr = first["results"]["ocr"]
    assert set(ocr) >= {"engine", "model", "text", "lines", "elapsed_ms"}
    assert set(ocr["lines"][0]) == {"text", "box", "polygon", "score"}

    found = _cli("search", "coronavirus", "--json", db=sqlite_url)
    hits = json.loads(found.stdout)["data"]
    assert [h["filename"] for h in hits] == ["english.png"]
    assert "coronavirus" in hits[0]["matches"][0]["text"]
    louvre = json.loads(_cli("search", "Louvre", "--json", db=sqlite_url).stdout)["data"]
    assert [h["filename"] for h in louvre] == ["french.jpg"] and len(louvre[0]["matches"]) == 2


def test_human_output_prints_the_text(sqlite_url: str) -> None:
    out = _cli("analyze", str(sample("phototest.tif")), db=sqlite_url)
    assert out.returncode == 0
    assert "The quick brown dog jumped over the" in out.stdout


def test_unreadable_files_exit_nonzero_with_one_line_each(sqlite_url: str, tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    out = _cli(
        "analyze",
        str(text),
        str(sample("phototest.tif")),
        str(empty),
        str(tmp_path / "missing.png"),
        "--json",
        db=sqlite_url,
        env={"MEDIAFLEET_MODELS_DIR": str(tmp_path / "no-models")},
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    # no --tasks: the image defaults that cannot run here (no weights in this models dir) are
    # named once each, with the command that provisions them; OCR runs
    skipped = [ln for ln in lines if " skipped: " in ln]
    assert skipped and all(ln.startswith(f"mediafleet: {sample('phototest.tif')}: ") for ln in skipped)
    assert any("pose skipped: the model yolo11n-pose is not installed" in ln for ln in skipped), skipped
    assert any("run `mediafleet models pull yolo11n-pose`" in ln for ln in skipped), skipped
    errors = [ln for ln in lines if ln not in skipped]
    assert len(errors) == 3, lines
    assert errors[0].startswith(f"mediafleet: {text}: ") and "not a supported image" in errors[0]
    assert errors[1].startswith(f"mediafleet: {empty}: ") and "empty" in errors[1]
    assert errors[2] == f"mediafleet: {tmp_path / 'missing.png'}: no such file"
    assert len(out.stdout.splitlines()) == 1  # the good file still got its result
    assert "ocr" in json.loads(out.stdout)["results"]


def test_version() -> None:
    from importlib.metadata import version

    out = subprocess.run(
        [sys.executable, "-m", "mediafleet.cli.main", "--version"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == f"mediafleet {version('mediafleet')}"


def test_unknown_task_is_a_usage_error(sqlite_url: str) -> None:
    out = _cli("analyze", str(sample("phototest.tif")), "--tasks", "ocr,telepathy", db=sqlite_url)
    assert out.returncode == 2 and "telepathy" in out.stderr and out.stdout == ""


def test_embedded_faces_are_kept_and_grouped_into_people(sqlite_url: str, real_models_dir: Path) -> None:
    """``analyze --tasks faces`` records through the fleet's recorder (pipeline.record): the
    faces are kept and grouped into people without any server, and ``people`` lists them. The
    corpus (MANIFEST.md): obama.jpg and obama2.jpg are one person, biden.jpg another."""
    env = {"MEDIAFLEET_MODELS_DIR": str(real_models_dir)}
    files = [sample("obama.jpg"), sample("obama2.jpg"), sample("biden.jpg")]
    out = _cli("analyze", *map(str, files), "--tasks", "faces", "--json", db=sqlite_url, env=env)
    assert out.returncode == 0, out.stderr
    assert [len(json.loads(line)["results"]["faces"]["faces"]) for line in out.stdout.splitlines()] == [
        1,
        1,
        1,
    ]
    listed = _cli("people", "--json", db=sqlite_url)
    assert listed.returncode == 0, listed.stderr
    people = {tuple(p["files"]): p["faces"] for p in json.loads(listed.stdout)["data"]}
    assert people == {("obama.jpg", "obama2.jpg"): 2, ("biden.jpg",): 1}
    again = _cli("analyze", str(files[0]), "--tasks", "faces", "--json", db=sqlite_url, env=env)
    assert again.returncode == 0, again.stderr  # the same face again: kept once, same person
    assert {
        tuple(p["files"]): p["faces"]
        for p in json.loads(_cli("people", "--json", db=sqlite_url).stdout)["data"]
    } == people
    human = _cli("people", db=sqlite_url)
    assert human.returncode == 0 and "2 faces in obama.jpg, obama2.jpg" in human.stdout

    # corrections in the embedded store: split a face off, then "not this person", remembered
    obama = next(
        p for p in json.loads(_cli("people", "--json", db=sqlite_url).stdout)["data"] if p["faces"] == 2
    )
    face2 = next(f["face_id"] for f in obama["face_ids"] if f["file"] == "obama2.jpg")
    split = _cli("faces", "split", obama["id"], face2, "--name", "At the podium", db=sqlite_url)
    assert split.returncode == 0 and split.stdout.startswith("split off 1 face(s) into person "), split.stderr

    def groups() -> dict[tuple[str, ...], str | None]:
        listed = json.loads(_cli("people", "--json", db=sqlite_url).stdout)["data"]
        return {tuple(p["files"]): p["name"] for p in listed}

    assert groups() == {("obama.jpg",): None, ("obama2.jpg",): "At the podium", ("biden.jpg",): None}
    third = _cli("analyze", str(sample("obama-480p.jpg")), "--tasks", "faces", db=sqlite_url, env=env)
    assert third.returncode == 0, third.stderr
    joined = next(
        p for p in json.loads(_cli("people", "--json", db=sqlite_url).stdout)["data"] if p["faces"] == 2
    )
    assert joined["files"] == ["obama-480p.jpg", "obama.jpg"]
    face3 = next(f["face_id"] for f in joined["face_ids"] if f["file"] == "obama-480p.jpg")
    out = _cli("faces", "not-this-person", face3, db=sqlite_url)
    assert out.returncode == 0 and "stays out of its former one" in out.stdout
    assert ("obama.jpg",) in groups() and ("obama-480p.jpg", "obama.jpg") not in groups()
    again = _cli("analyze", str(sample("obama-480p.jpg")), "--tasks", "faces", db=sqlite_url, env=env)
    assert again.returncode == 0 and ("obama.jpg",) in groups()  # the same face again: still out
    bad = _cli("faces", "split", joined["id"], face3, db=sqlite_url)
    assert bad.returncode == 2 and bad.stderr.startswith("mediafleet: faces split: face ")


def _byte_histogram(path: Path) -> np.ndarray:
    """The echo task's ``embed`` vector, computed here on its own: 16 bins of each byte's high
    nibble, L2-normalised."""
    counts = np.bincount(np.frombuffer(path.read_bytes(), dtype=np.uint8) >> 4, minlength=16)
    return counts / np.linalg.norm(counts)


def test_embedded_vectors_are_kept_and_similar_files_found(sqlite_url: str) -> None:
    """Without vector_db, ``analyze`` keeps a task's whole-media vectors in a FAISS store
    beside the SQLite file and ``similar FILE`` ranks the other analysed files by cosine
    similarity (echo's byte histograms: no model needed)."""
    files = [sample("english.png"), sample("french.jpg"), sample("bus.jpg"), sample("phototest.tif")]
    out = _cli(
        "analyze", *map(str, files), "--tasks", "echo", "-o", "echo.embed=true", "--json", db=sqlite_url
    )
    assert out.returncode == 0, out.stderr
    db = Path(sqlite_url.removeprefix("sqlite:///"))
    assert (db.with_name("mediafleet.vectors") / "echo-bytes" / "spec.json").is_file()

    query = _byte_histogram(files[0])
    expected = sorted(((float(_byte_histogram(f) @ query), f.name) for f in files[1:]), reverse=True)
    found = _cli("similar", str(files[0]), "--json", db=sqlite_url)
    assert found.returncode == 0, found.stderr
    body = json.loads(found.stdout)
    assert body["collection"] == "echo-bytes" and body["count"] == 3
    assert [h["filename"] for h in body["data"]] == [name for _, name in expected]
    for hit, (similarity, _) in zip(body["data"], expected, strict=True):
        assert hit["similarity"] == pytest.approx(similarity, abs=1e-5) and hit["task"] == "echo"
    top = _cli("similar", str(files[0]), "--limit", "1", db=sqlite_url)
    assert top.returncode == 0 and top.stdout.splitlines() == [
        f"{expected[0][0]:+.3f}  {expected[0][1]}  ({sample(expected[0][1]).resolve()})"
    ]

    # analysing a file again replaces its vector (one per media and task), nothing doubles
    again = _cli(
        "analyze", str(files[1]), "--tasks", "echo", "-o", "echo.embed=true", "--json", db=sqlite_url
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(_cli("similar", str(files[0]), "--json", db=sqlite_url).stdout)["count"] == 3


def test_similar_refuses_what_it_cannot_compare(sqlite_url: str, tmp_path: Path) -> None:
    plain = _cli("analyze", str(sample("english.png")), "--tasks", "echo", "--json", db=sqlite_url)
    assert plain.returncode == 0, plain.stderr
    never = _cli("similar", str(sample("english.png")), db=sqlite_url)
    assert never.returncode == 2 and never.stdout == ""
    assert never.stderr.splitlines() == [
        f"mediafleet: {sample('english.png')}: english.png has no embedding yet: analyze it with one of "
        "clip, echo, faces first (--tasks)"
    ]
    missing = _cli("similar", str(tmp_path / "gone.jpg"), db=sqlite_url)
    assert (
        missing.returncode == 2
        and missing.stderr.strip() == f"mediafleet: {tmp_path / 'gone.jpg'}: no such file"
    )
    bad = _cli("similar", str(sample("english.png")), "--limit", "0", db=sqlite_url)
    assert bad.returncode == 2 and "0 is not in 1-100" in bad.stderr


def test_embedded_where_and_when_then_search_by_place(sqlite_url: str, real_models_dir: Path) -> None:
    """services/media_metadata/README.md's commands: bus.jpg (a Madrid street, MANIFEST.md) gives
    its place, time and camera, and ``search madrid`` finds it; a file without EXIF gives an
    empty, well-formed result."""
    env = {"MEDIAFLEET_MODELS_DIR": str(real_models_dir)}
    out = _cli(
        "analyze",
        str(sample("bus.jpg")),
        str(sample("english.png")),
        "--tasks",
        "metadata",
        db=sqlite_url,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "metadata: taken 2019-03-01T13:06:33.823000; near Madrid, ES; Apple iPhone XS" in out.stdout
    assert "metadata: no date" in out.stdout  # english.png records nothing
    found = _cli("search", "madrid", db=sqlite_url)
    assert found.returncode == 0 and found.stdout.splitlines()[1:] == ["    metadata: 'Madrid, ES'"], (
        found.stdout
    )
    assert found.stdout.startswith("bus.jpg  (")


def test_a_reason_given_once_is_not_repeated_for_each_file(sqlite_url: str, tmp_path: Path) -> None:
    """Without weights, every image default but OCR is skipped: the first file names each task
    with its reason and command, the next one only lists them."""
    files = [sample("english.png"), sample("phototest.tif")]
    out = _cli(
        "analyze", *map(str, files), db=sqlite_url, env={"MEDIAFLEET_MODELS_DIR": str(tmp_path / "none")}
    )
    assert out.returncode == 0, out.stderr
    lines = out.stderr.strip().splitlines()
    first = [ln for ln in lines if ln.startswith(f"mediafleet: {files[0]}: ")]
    second = [ln for ln in lines if ln.startswith(f"mediafleet: {files[1]}: ")]
    assert first and all(" skipped: " in ln for ln in first), first
    tasks = [ln.split(": ")[2].removesuffix(" skipped") for ln in first]
    assert {"pose", "metadata"} <= set(tasks) and "ocr" not in tasks, tasks
    assert any("run `mediafleet models pull geonames-cities1000`" in ln for ln in first), first
    assert second == [f"mediafleet: {files[1]}: skipped as above: {', '.join(tasks)}"], second
    assert out.stdout.count("  ocr: rapidocr") == 2  # both files still read


def test_embedded_near_duplicates_are_grouped(sqlite_url: str, tmp_path: Path) -> None:
    """``analyze`` fingerprints by default and the recorder keeps the near-duplicate pairs:
    ``duplicates`` groups a photo with its resized, re-encoded copy, the corpus' letter-boxed
    Obama portrait with its original (MANIFEST.md), a recording with its AAC re-encode; a
    different photo stays alone, and analysing a file again keeps its pairs once."""
    from PIL import Image

    from tests.media_files import transcode

    copy = tmp_path / "bus-small.jpg"
    bus = Image.open(sample("bus.jpg"))
    bus.resize((bus.width // 2, bus.height // 2)).save(copy, "JPEG", quality=60)
    m4a = transcode(sample("jfk.flac"), tmp_path / "jfk.m4a", bit_rate=0, audio_bit_rate=32_000)
    files = [sample("bus.jpg"), copy, sample("obama.jpg"), sample("obama-480p.jpg"), sample("zidane.jpg")]
    out = _cli(
        "analyze",
        *map(str, files),
        str(sample("jfk.flac")),
        str(m4a),
        "--tasks",
        "fingerprint",
        db=sqlite_url,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("fingerprint: pHash ") == 5 and out.stdout.count("fingerprint: sound: ") == 2

    def groups() -> list[list[str]]:
        listed = _cli("duplicates", "--json", db=sqlite_url)
        assert listed.returncode == 0, listed.stderr
        return sorted(sorted(f["filename"] for f in g["files"]) for g in json.loads(listed.stdout)["data"])

    expected = [["bus-small.jpg", "bus.jpg"], ["jfk.flac", "jfk.m4a"], ["obama-480p.jpg", "obama.jpg"]]
    assert groups() == expected
    again = _cli("analyze", str(copy), "--tasks", "fingerprint", db=sqlite_url)
    assert again.returncode == 0 and groups() == expected
    human = _cli("duplicates", db=sqlite_url).stdout
    assert "jfk.flac ~ jfk.m4a: chromaprint, sound bit error rate" in human, human
