"""media_metadata on files the tests write (EXIF and GPS through Pillow, MP4/MOV tags through
PyAV), on the shared corpus' real photo with GPS (bus.jpg: a Madrid street, MANIFEST.md), and
through the HTTP app and an RQ worker on real Redis."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational
from rq import Queue

from mediafleet.common import registry
from mediafleet.common.capability import Capability
from mediafleet.common.errors import EngineError, UnsupportedMediaType
from mediafleet.common.queues import TASK_FUNCTION, family_queues
from mediafleet.common.service_app import create_service_app
from mediafleet.common.settings import CoreSettings
from mediafleet.common.taskrun import Runtime
from mediafleet.common.worker import ModelWorker
from mediafleet.media_metadata.contract import MetadataResult
from mediafleet.media_metadata.engines.geonames import haversine_km
from mediafleet.media_metadata.read import parse_iso6709
from mediafleet.media_metadata.runner import MetadataRunner
from tests.conftest import SHARED_MEDIA, sample
from tests.media_files import write_video

B, G = ExifTags.Base, ExifTags.GPS


def dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    """Decimal degrees -> EXIF (degrees, minutes, seconds) rationals, seconds to 1/100."""
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    s = round(((value - d) * 60 - m) * 60 * 100)
    return IFDRational(d, 1), IFDRational(m, 1), IFDRational(s, 100)


def write_jpeg(path: Path, ifd0: dict, sub: dict, gps: dict) -> Path:
    exif = Image.Exif()
    exif.update(ifd0)
    exif.get_ifd(ExifTags.IFD.Exif).update(sub)
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(gps)
    Image.new("RGB", (64, 48), (120, 140, 160)).save(path, exif=exif)
    return path


def gps_tags(lat: float, lon: float) -> dict:
    return {
        G.GPSLatitudeRef: "N" if lat >= 0 else "S",
        G.GPSLatitude: dms(lat),
        G.GPSLongitudeRef: "E" if lon >= 0 else "W",
        G.GPSLongitude: dms(lon),
    }


@pytest.fixture(scope="module")
def cap() -> Capability:
    return registry.get("media_metadata")


@pytest.fixture(scope="module")
def runner(cap: Capability, real_models_dir: Path) -> MetadataRunner:
    built = cap.build_runner(cap.load_settings(core=CoreSettings(models_dir=real_models_dir)))
    built.preload()
    assert isinstance(built, MetadataRunner)
    return built


def run(runner: MetadataRunner, path: Path, **options: object) -> MetadataResult:
    return runner.run("metadata", path, dict(options), {}, lambda *_: None)


def test_exif_written_with_pillow_reads_back_with_the_place(runner: MetadataRunner, tmp_path: Path) -> None:
    photo = write_jpeg(
        tmp_path / "notre-dame.jpg",
        {B.Make: "Canon", B.Model: "Canon EOS 5D Mark III", B.Orientation: 6, B.Software: "fw 1.2.3"},
        {
            B.DateTimeOriginal: "2024:05:01 14:03:22",
            B.SubsecTimeOriginal: "25",
            B.OffsetTimeOriginal: "+02:00",
            B.ExposureTime: IFDRational(1, 250),
            B.FNumber: IFDRational(28, 10),
            B.ISOSpeedRatings: 400,
            B.FocalLength: IFDRational(50, 1),
            B.FocalLengthIn35mmFilm: 50,
            B.LensModel: "EF50mm f/1.8 STM",
            B.Flash: 0x19,  # fired, auto mode
        },
        {**gps_tags(48.8530, 2.3499), G.GPSAltitudeRef: b"\x00", G.GPSAltitude: IFDRational(35, 1)},
    )
    r = run(runner, photo)
    assert (r.engine, r.media_kind, r.format, r.width, r.height) == ("pillow", "image", "JPEG", 64, 48)
    assert r.taken_at == "2024-05-01T14:03:22.250000+02:00"
    assert r.taken_at_utc == "2024-05-01T12:03:22.250000Z" and r.taken_at_source == "exif:DateTimeOriginal"
    assert r.camera is not None and (r.camera.make, r.camera.model, r.camera.lens, r.camera.software) == (
        "Canon", "Canon EOS 5D Mark III", "EF50mm f/1.8 STM", "fw 1.2.3",
    )  # fmt: skip
    assert r.exposure is not None
    assert (r.exposure.exposure_time_s, r.exposure.f_number, r.exposure.iso) == (0.004, 2.8, 400)
    assert (r.exposure.focal_length_mm, r.exposure.focal_length_35mm, r.exposure.flash_fired) == (
        50.0,
        50.0,
        True,
    )
    assert r.orientation == 6
    assert r.gps is not None and r.gps.source == "exif:GPSInfo" and r.gps.altitude_m == 35.0
    assert r.gps.latitude == pytest.approx(48.8530, abs=1e-5) and r.gps.longitude == pytest.approx(
        2.3499, abs=1e-5
    )
    assert r.place is not None
    assert (r.place.name, r.place.admin1, r.place.country_code) == ("Paris", "Ile-de-France", "FR")
    assert r.place.distance_km < 1 and "GeoNames" in r.place.attribution
    assert (r.model, len(r.model_version)) == ("geonames-cities1000", 12)
    assert r.place.label() == "Paris, Ile-de-France, FR"
    spec = registry.get("media_metadata").task("metadata")
    assert [(s.ref, s.text) for s in spec.derive(r.model_dump()).segments] == [
        ("place", "Paris, Ile-de-France, FR"),
        ("camera", "Canon Canon EOS 5D Mark III EF50mm f/1.8 STM"),
    ]


@pytest.mark.parametrize(
    ("lat", "lon", "place"),
    [
        (-22.9068, -43.1729, ("Rio de Janeiro", "BR")),  # south and west: S/W refs give negatives
        (-33.8688, 151.2093, ("Sydney", "AU")),
        (64.1466, -21.9426, ("Reykjavik", "IS")),
    ],
)
def test_every_hemisphere(
    runner: MetadataRunner, tmp_path: Path, lat: float, lon: float, place: tuple
) -> None:
    r = run(runner, write_jpeg(tmp_path / "p.jpg", {}, {}, gps_tags(lat, lon)))
    assert r.gps is not None and (r.gps.latitude, r.gps.longitude) == (
        pytest.approx(lat, abs=1e-5),
        pytest.approx(lon, abs=1e-5),
    )
    assert r.place is not None and (r.place.name, r.place.country_code) == place and r.place.distance_km < 5
    assert r.taken_at is None and r.camera is None and r.exposure is None


def test_the_shared_corpus_photo_of_a_madrid_street(runner: MetadataRunner) -> None:
    """bus.jpg: "Street scene in Madrid" (MANIFEST.md), an iPhone photo with its GPS kept."""
    r = run(runner, SHARED_MEDIA / "bus.jpg")
    assert r.place is not None and (r.place.name, r.place.country_code) == ("Madrid", "ES")
    assert r.camera is not None and (r.camera.make, r.camera.model) == ("Apple", "iPhone XS")
    # iOS 12 wrote no OffsetTimeOriginal: the local time stays without an offset, no UTC guessed
    assert r.taken_at == "2019-03-01T13:06:33.823000" and r.taken_at_utc is None
    assert r.exposure is not None and r.exposure.iso == 16 and r.exposure.f_number == 2.4


def test_nothing_recorded_gives_an_empty_well_formed_result(runner: MetadataRunner, tmp_path: Path) -> None:
    png = run(runner, sample("english.png"))
    assert (png.format, png.width, png.height) == ("PNG", 905, 480)
    one_frame = run(runner, write_video(tmp_path / "one.mp4", {}, frames=1))
    speech = run(runner, sample("jfk.flac"))
    for r in (png, one_frame, speech):
        assert (r.taken_at, r.camera, r.exposure, r.gps, r.place, r.model) == (
            None,
            None,
            None,
            None,
            None,
            "",
        )
        assert r.orientation is None and set(r.tags) <= {"encoder"}
    assert (one_frame.media_kind, one_frame.width, speech.media_kind, speech.width) == (
        "video",
        64,
        "audio",
        None,
    )
    assert speech.duration_s == pytest.approx(11.0, abs=0.1)


def test_malformed_values_are_left_out(runner: MetadataRunner, tmp_path: Path) -> None:
    photo = write_jpeg(
        tmp_path / "broken.jpg",
        {B.Make: "  \x00", B.Orientation: 9, B.DateTime: "2020:13:45 99:00:00"},
        {
            B.DateTimeOriginal: "0000:00:00 00:00:00",
            B.OffsetTimeOriginal: "+99:00",
            B.ExposureTime: IFDRational(1, 0),
        },
        {
            G.GPSLatitudeRef: "N",
            G.GPSLatitude: (IFDRational(95, 1), IFDRational(0, 1), IFDRational(0, 1)),  # beyond the pole
            G.GPSLongitudeRef: "E",
            G.GPSLongitude: (IFDRational(2, 1), IFDRational(0, 1), IFDRational(0, 1)),
        },
    )
    r = run(runner, photo)
    assert (r.taken_at, r.camera, r.exposure, r.orientation, r.gps, r.place) == (None,) * 6
    # a good date with an impossible offset: the local time, no offset invented
    r = run(
        runner,
        write_jpeg(
            tmp_path / "offset.jpg",
            {},
            {B.DateTimeOriginal: "2021:02:03 04:05:06", B.OffsetTimeOriginal: "+99:00"},
            {},
        ),
    )
    assert (r.taken_at, r.taken_at_utc) == ("2021-02-03T04:05:06", None)


def test_video_container_tags_as_phones_write_them(runner: MetadataRunner, tmp_path: Path) -> None:
    mp4 = write_video(
        tmp_path / "harbour.mp4",
        {
            "creation_time": "2023-07-14T09:30:00.000000Z",
            "location": "+40.6892-074.0445+010.000/",
            "title": "harbour",
        },
    )
    r = run(runner, mp4)
    assert (r.engine, r.media_kind, r.width, r.height, r.duration_s) == ("pyav", "video", 64, 48, 1.0)
    assert (r.taken_at, r.taken_at_utc, r.taken_at_source) == (
        "2023-07-14T09:30:00Z", "2023-07-14T09:30:00Z", "container:creation_time",
    )  # fmt: skip
    assert r.gps is not None and (r.gps.latitude, r.gps.longitude, r.gps.altitude_m) == (
        40.6892,
        -74.0445,
        10.0,
    )
    assert r.place is not None and (r.place.name, r.place.country_code) == ("New York City", "US")
    assert r.tags["title"] == "harbour" and not any("location" in k or k == "creation_time" for k in r.tags)
    mov = write_video(tmp_path / "phone.mov", {"make": "Google", "model": "Pixel 8"}, fmt="mov")
    r = run(runner, mov)
    assert r.camera is not None and (r.camera.make, r.camera.model) == ("Google", "Pixel 8")
    assert r.taken_at is None and r.gps is None


def test_iso6709_forms() -> None:
    assert parse_iso6709("+48.8584+002.2945+035.000/") == (48.8584, 2.2945, 35.0)
    assert parse_iso6709("-33.8688+151.2093/") == (-33.8688, 151.2093, None)
    assert parse_iso6709("+48.8584+002.2945CRSWGS_84/") == (48.8584, 2.2945, None)
    assert parse_iso6709("+95.0+002.0/") is None and parse_iso6709("somewhere") is None


def test_options_geocode_and_the_distance_bound(runner: MetadataRunner, tmp_path: Path) -> None:
    paris = write_jpeg(tmp_path / "p.jpg", {}, {}, gps_tags(48.8530, 2.3499))
    r = run(runner, paris, geocode=False)
    assert r.gps is not None and r.place is None and r.model == ""
    sea = write_jpeg(tmp_path / "sea.jpg", {}, {}, gps_tags(0.0, -160.0))  # mid-Pacific: 357 km to a town
    assert run(runner, sea).place is None
    far = run(runner, sea, max_place_km=1000)
    assert far.place is not None and far.place.distance_km > 300


def test_the_kd_tree_finds_what_a_brute_force_search_finds(runner: MetadataRunner) -> None:
    """The nearest city by chord on the unit sphere is the nearest by great-circle distance:
    checked against the haversine distance to every one of the 144,563 cities."""
    engine = runner.geonames
    cities = [engine.city(i) for i in range(len(engine))]
    lat = np.radians([c.latitude for c in cities])
    lon = np.radians([c.longitude for c in cities])
    rng = random.Random(7)
    for _ in range(50):
        qlat, qlon = rng.uniform(-60, 70), rng.uniform(-180, 180)
        p, q = math.radians(qlat), math.radians(qlon)
        a = np.sin((lat - p) / 2) ** 2 + np.cos(p) * np.cos(lat) * np.sin((lon - q) / 2) ** 2
        brute = cities[int(np.argmin(a))]
        found, km = engine.nearest(qlat, qlon)
        assert found == brute
        assert km == pytest.approx(haversine_km(qlat, qlon, brute.latitude, brute.longitude))
    assert len(cities) == 144_563
    assert haversine_km(48.8566, 2.3522, 51.5072, -0.1276) == pytest.approx(343.5, abs=0.5)  # Paris-London


def test_missing_data_is_named_with_its_command_and_only_geocoding_needs_it(tmp_path: Path) -> None:
    cap = registry.get("media_metadata")
    bare = cap.build_runner(cap.load_settings(core=CoreSettings(models_dir=tmp_path / "no-models")))
    bare.preload()  # a missing model does not stop the service: readiness says why
    not_ready = bare.task_ready("metadata")
    assert not_ready is not None and not_ready.code == "models_missing"
    assert "mediafleet models pull geonames-cities1000" in not_ready.message
    assert run(bare, sample("english.png")).format == "PNG"  # nothing to geocode: it runs
    with pytest.raises(EngineError, match="geonames-cities1000 is not installed"):
        run(bare, write_jpeg(tmp_path / "p.jpg", {}, {}, gps_tags(48.85, 2.35)))
    assert (
        run(bare, write_jpeg(tmp_path / "q.jpg", {}, {}, gps_tags(48.85, 2.35)), geocode=False).place is None
    )


def test_not_media_is_refused(runner: MetadataRunner, tmp_path: Path) -> None:
    junk = tmp_path / "notes.jpg"
    junk.write_text("not an image or a video")
    with pytest.raises(UnsupportedMediaType):
        run(runner, junk)


def test_http_predict(cap: Capability, runner: MetadataRunner) -> None:
    client = TestClient(create_service_app(cap, runner))
    resp = client.post(
        "/v1/predict",
        data={"task": "metadata"},
        files={"file": ("bus.jpg", (SHARED_MEDIA / "bus.jpg").read_bytes())},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["place"]["name"] == "Madrid"
    bad = client.post("/v1/predict", files={"file": ("x.png", b"not an image")})
    assert bad.status_code == 415 and bad.json()["error"]["code"] == "unsupported_media_type"
    refused = client.post(
        "/v1/predict",
        data={"options": '{"max_place_km": 0}'},
        files={"file": ("bus.jpg", (SHARED_MEDIA / "bus.jpg").read_bytes())},
    )
    assert refused.status_code == 400 and "max_place_km" in refused.text  # bad options: 400 (service_app)
    assert client.get("/readyz").status_code == 200


def test_task_through_a_worker(
    cap: Capability, runner: MetadataRunner, redis_url: str, tmp_path: Path
) -> None:
    photo = write_jpeg(tmp_path / "p.jpg", {B.Model: "X100V"}, {}, gps_tags(-33.8688, 151.2093))
    conn = redis.Redis.from_url(redis_url)
    queue = Queue(f"{cap.queue}:normal", connection=conn)
    payload = {
        "task": "metadata",
        "task_id": "t1",
        "job_id": "j1",
        "media_id": "m",
        "storage_path": photo.name,
    }
    job = queue.enqueue(TASK_FUNCTION, payload)
    ModelWorker(family_queues(cap), connection=conn, runtime=Runtime(cap, runner, conn, tmp_path)).work(
        burst=True
    )
    outcome = job.latest_result().return_value
    assert outcome["ok"] is True, outcome
    assert outcome["result"]["place"]["name"] == "Sydney" and outcome["result"]["camera"]["model"] == "X100V"
