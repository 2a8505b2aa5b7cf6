"""What a file says about itself: EXIF of images (Pillow), container tags of audio and video (PyAV).

Every reader is forgiving: a field that is absent, empty or malformed (an EXIF date of
``0000:00:00 00:00:00``, a rational with denominator 0, a latitude of 91 degrees) is left
``None``; only a file that cannot be opened at all raises.

Sources of the formats: EXIF 2.32 (CIPA DC-008-2019) for tag numbers, the ``YYYY:MM:DD
HH:MM:SS`` date layout and ``OffsetTime*`` (``+HH:MM``); ISO 6709 for the location strings
that phones write into MP4/QuickTime (``+48.8584+002.2945+035.000/``); FFmpeg's
``creation_time`` tag (ISO 8601, UTC).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import ExifTags, Image, UnidentifiedImageError

from mediafleet.common.errors import UnsupportedMediaType
from mediafleet.common.media import AV_FORMATS, open_av, open_image
from mediafleet.media_metadata.contract import Camera, Exposure, Gps

if TYPE_CHECKING:
    from av.container import InputContainer

#: At most this many container tags are kept, each value cut to this many characters.
MAX_TAGS, MAX_TAG_CHARS = 32, 256


@dataclass
class Facts:
    """What one reader found (the runner adds the place and the timing)."""

    engine: str
    media_kind: str
    format: str
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    taken_at: str | None = None
    taken_at_utc: str | None = None
    taken_at_source: str | None = None
    camera: Camera | None = None
    exposure: Exposure | None = None
    orientation: int | None = None
    gps: Gps | None = None
    tags: dict[str, str] = field(default_factory=dict)


# -- values ---------------------------------------------------------------------------------


def _text(value: object) -> str | None:
    """An EXIF/tag string without padding (NULs, spaces), or None when empty or not text."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", " ").strip()
    return value or None


def _number(value: object) -> float | None:
    """A finite float from an int, float or EXIF rational (IFDRational), else None."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def _offset(value: str | None) -> timezone | None:
    """``+02:00`` / ``-0530`` -> a timezone (at most 14 hours from UTC), else None."""
    m = _OFFSET.match(value or "")
    if not m:
        return None
    delta = timedelta(hours=int(m[2]), minutes=int(m[3]))
    if delta > timedelta(hours=14) or int(m[3]) >= 60:
        return None
    return timezone(-delta if m[1] == "-" else delta)


def _iso(moment: datetime) -> str:
    """ISO 8601 without microseconds unless there are some; UTC written ``Z``."""
    text = moment.isoformat()
    return text[:-6] + "Z" if moment.utcoffset() == timedelta(0) and text.endswith("+00:00") else text


def _when(local: datetime, tz: timezone | None, source: str) -> tuple[str, str | None, str]:
    """(taken_at, taken_at_utc, source) for a local time and its offset when known."""
    if tz is None:
        return _iso(local), None, source
    aware = local.replace(tzinfo=tz)
    return _iso(aware), _iso(aware.astimezone(UTC)), source


# -- images: EXIF ---------------------------------------------------------------------------

Base, Gpst = ExifTags.Base, ExifTags.GPS
#: (date tag, sub-second tag, offset tag, name) in order of preference.
_EXIF_DATES = (
    (Base.DateTimeOriginal, Base.SubsecTimeOriginal, Base.OffsetTimeOriginal, "exif:DateTimeOriginal"),
    (Base.DateTimeDigitized, Base.SubsecTimeDigitized, Base.OffsetTimeDigitized, "exif:DateTimeDigitized"),
    (Base.DateTime, Base.SubsecTime, Base.OffsetTime, "exif:DateTime"),
)


def _exif_datetime(value: object, subsec: object) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        moment = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:  # 0000:00:00 00:00:00, blanks, other layouts
        return None
    digits = re.sub(r"\D", "", _text(subsec) or "")[:6]
    return moment.replace(microsecond=int(digits.ljust(6, "0"))) if digits else moment


def _degrees(dms: object, ref: object, negative: str) -> float | None:
    """EXIF (degrees, minutes, seconds) rationals and N/S or E/W -> signed decimal degrees."""
    if not isinstance(dms, tuple) or len(dms) != 3:
        return None
    parts = [_number(v) for v in dms]
    if any(p is None or p < 0 for p in parts):
        return None
    d, m, s = (p or 0.0 for p in parts)
    value = d + m / 60 + s / 3600
    return -value if (_text(ref) or "").upper().startswith(negative) else value


def _exif_gps(gps: dict[int, object]) -> Gps | None:
    lat = _degrees(gps.get(Gpst.GPSLatitude), gps.get(Gpst.GPSLatitudeRef), "S")
    lon = _degrees(gps.get(Gpst.GPSLongitude), gps.get(Gpst.GPSLongitudeRef), "W")
    if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
        return None
    altitude = _number(gps.get(Gpst.GPSAltitude))
    ref = gps.get(Gpst.GPSAltitudeRef)
    if altitude is not None and ref in (1, b"\x01"):  # 1: below sea level
        altitude = -altitude
    return Gps(latitude=round(lat, 7), longitude=round(lon, 7), altitude_m=altitude, source="exif:GPSInfo")


def read_image(path: Path) -> Facts:
    """EXIF of the image at ``path`` (JPEG, TIFF, PNG eXIf, WebP). Raises InvalidMedia /
    UnsupportedMediaType when Pillow cannot open it; a file without EXIF gives empty fields."""
    with open_image(path) as img:
        facts = Facts(
            engine="pillow", media_kind="image", format=img.format or "", width=img.width, height=img.height
        )
        exif = img.getexif()
        sub = dict(exif.get_ifd(ExifTags.IFD.Exif))
        gps = dict(exif.get_ifd(ExifTags.IFD.GPSInfo))
    tags = {**dict(exif), **sub}
    for date_tag, subsec_tag, offset_tag, source in _EXIF_DATES:
        local = _exif_datetime(tags.get(date_tag), tags.get(subsec_tag))
        if local is not None:
            facts.taken_at, facts.taken_at_utc, facts.taken_at_source = _when(
                local, _offset(_text(tags.get(offset_tag))), source
            )
            break
    camera = Camera(
        make=_text(tags.get(Base.Make)),
        model=_text(tags.get(Base.Model)),
        lens=_text(tags.get(Base.LensModel)),
        software=_text(tags.get(Base.Software)),
    )
    facts.camera = camera if any(camera.model_dump().values()) else None
    flash = tags.get(Base.Flash)
    iso = _number(tags.get(Base.ISOSpeedRatings))
    exposure = Exposure(
        exposure_time_s=_positive(tags.get(Base.ExposureTime)),
        f_number=_positive(tags.get(Base.FNumber)),
        iso=int(iso) if iso is not None and iso >= 0 else None,
        focal_length_mm=_positive(tags.get(Base.FocalLength)),
        focal_length_35mm=_positive(tags.get(Base.FocalLengthIn35mmFilm)),
        flash_fired=bool(flash & 1) if isinstance(flash, int) else None,
    )
    facts.exposure = exposure if any(v is not None for v in exposure.model_dump().values()) else None
    orientation = tags.get(Base.Orientation)
    facts.orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None
    facts.gps = _exif_gps(gps)
    return facts


def _positive(value: object) -> float | None:
    number = _number(value)
    return round(number, 6) if number is not None and number >= 0 else None


# -- audio and video: container tags --------------------------------------------------------

_ISO6709 = re.compile(r"^([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?(?:CRS[^/]*)?/?$")
#: Tags read into fields (not repeated in ``tags``); the phone keys are Apple's QuickTime
#: metadata keys and Android's, as FFmpeg names them.
_LOCATION_KEYS = ("com.apple.quicktime.location.ISO6709", "location")
_MAKE_KEYS = ("com.apple.quicktime.make", "com.android.manufacturer", "make")
_MODEL_KEYS = ("com.apple.quicktime.model", "com.android.model", "model")
#: The MP4/QuickTime file-type box as FFmpeg reports it: format detail, not the file's story.
_BRANDS = ("major_brand", "minor_version", "compatible_brands")
_SOFTWARE_KEYS = ("com.apple.quicktime.software", "com.android.version", "encoder")


def parse_iso6709(text: str) -> tuple[float, float, float | None] | None:
    """``+48.8584+002.2945+035.000/`` -> (latitude, longitude, altitude m); decimal degrees
    only (the form phones write), else None."""
    m = _ISO6709.match(text.strip())
    if not m:
        return None
    lat, lon = float(m[1]), float(m[2])
    if abs(lat) > 90 or abs(lon) > 180:
        return None
    return lat, lon, float(m[3]) if m[3] else None


def _first(tags: dict[str, str], keys: tuple[str, ...]) -> tuple[str, str] | None:
    for key in keys:
        value = _text(tags.get(key))
        if value:
            return key, value
    return None


def _container_time(tags: dict[str, str]) -> tuple[str, str | None, str] | None:
    """Apple's ``creationdate`` (local time with offset) first, then FFmpeg's ``creation_time`` (UTC)."""
    apple = _text(tags.get("com.apple.quicktime.creationdate"))
    if apple:
        try:
            moment = datetime.fromisoformat(apple)
        except ValueError:
            moment = None
        if moment is not None:
            tz = moment.tzinfo if isinstance(moment.tzinfo, timezone) else None
            return _when(moment.replace(tzinfo=None), tz, "container:com.apple.quicktime.creationdate")
    created = _text(tags.get("creation_time"))
    if created:
        try:
            moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.year < 1971:  # 1904-01-01 / 1970-01-01: a muxer's zero, not a date
            return None
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        return _iso(moment), _iso(moment), "container:creation_time"
    return None


def read_av(path: Path) -> Facts:
    """Container tags of the audio or video file at ``path`` (PyAV). Raises InvalidMedia when
    FFmpeg cannot open it, UnsupportedMediaType when it is not one of the containers uploads
    accept (``AV_FORMATS``) or has no audio or video stream; a file without tags gives empty
    fields."""
    container: InputContainer
    with open_av(path) as container:
        if container.format.name not in AV_FORMATS or not (
            container.streams.audio or container.streams.video
        ):
            raise UnsupportedMediaType("not a supported image, audio or video file")
        video = next((s for s in container.streams.video if s.codec_context is not None), None)
        facts = Facts(
            engine="pyav",
            media_kind="video" if video is not None else "audio",
            format=container.format.name,
            width=video.codec_context.width if video is not None else None,
            height=video.codec_context.height if video is not None else None,
            duration_s=round(container.duration / 1_000_000, 3) if container.duration else None,
        )
        tags: dict[str, str] = {}
        for stream in container.streams:  # the container's own tags win over its streams'
            tags.update({k: v for k, v in stream.metadata.items() if k in ("creation_time", "location")})
        tags.update(dict(container.metadata))
    when = _container_time(tags)
    if when is not None:
        facts.taken_at, facts.taken_at_utc, facts.taken_at_source = when
    location = _first(tags, _LOCATION_KEYS)
    position = parse_iso6709(location[1]) if location else None
    if location is not None and position is not None:
        lat, lon, alt = position
        facts.gps = Gps(
            latitude=lat, longitude=lon, altitude_m=alt, source=f"container:{location[0]} (ISO 6709)"
        )
    make, model, software = (_first(tags, keys) for keys in (_MAKE_KEYS, _MODEL_KEYS, _SOFTWARE_KEYS))
    if make or model:
        facts.camera = Camera(
            make=make[1] if make else None,
            model=model[1] if model else None,
            software=software[1] if software else None,
        )
    parsed = {"creation_time", "com.apple.quicktime.creationdate", *_MAKE_KEYS, *_MODEL_KEYS, *_BRANDS}
    # every location key (location, location-eng, Apple's) is read into gps or left out
    kept = [(k, _text(v)) for k, v in tags.items() if k not in parsed and "location" not in k]
    facts.tags = {k[:64]: v[:MAX_TAG_CHARS] for k, v in kept if v}
    facts.tags = dict(list(facts.tags.items())[:MAX_TAGS])
    return facts


def read_media(path: Path) -> Facts:
    """:func:`read_image` for anything Pillow identifies, else :func:`read_av`."""
    try:
        with Image.open(path):
            is_image = True
    except UnidentifiedImageError:
        is_image = False
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        is_image = True  # an image header Pillow knows, broken: read_image says why
    return read_image(path) if is_image else read_av(path)
