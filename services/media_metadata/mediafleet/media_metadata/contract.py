"""Contract of the media_metadata capability (light: pydantic and mediafleet.common only).

Task ``metadata``: where and when a file was made, read from the file itself. Images: EXIF
(camera, lens, exposure, orientation, taken-at with its UTC offset, GPS) through Pillow.
Audio and video: the container's tags through PyAV (creation time, the recording device,
an ISO 6709 location as phones write it). GPS coordinates become a place name offline
(the nearest GeoNames city of at least 1,000 people, no network). A file without any of
it gives a result with those fields ``null``, never an error.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mediafleet.common.capability import Capability, MediaFacts, TaskSpec, TextSegment

#: The place-name data: its catalogue name (models.toml) and the attribution its licence asks for.
GEONAMES_MODEL = "geonames-cities1000"
GEONAMES_ATTRIBUTION = "GeoNames (geonames.org), CC BY 4.0"


class MetadataOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    geocode: bool = Field(default=True, description="turn GPS coordinates into a place name (offline)")
    max_place_km: float = Field(
        default=100.0,
        ge=1.0,
        le=20_000.0,
        description="no place name when the nearest town is farther than this, km (at sea, in a desert)",
    )


class Camera(BaseModel):
    """The device that made the file (EXIF Make/Model/LensModel/Software, or a phone's container tags)."""

    make: str | None = None
    model: str | None = None
    lens: str | None = None
    software: str | None = None


class Exposure(BaseModel):
    """EXIF exposure settings (CIPA DC-008, EXIF 2.32), each ``null`` when not recorded."""

    exposure_time_s: float | None = Field(default=None, ge=0, description="seconds (ExposureTime)")
    f_number: float | None = Field(default=None, ge=0, description="FNumber")
    iso: int | None = Field(default=None, ge=0, description="PhotographicSensitivity")
    focal_length_mm: float | None = Field(default=None, ge=0, description="FocalLength, mm")
    focal_length_35mm: float | None = Field(default=None, ge=0, description="FocalLengthIn35mmFilm, mm")
    flash_fired: bool | None = Field(default=None, description="bit 0 of Flash")


class Gps(BaseModel):
    """A position in WGS 84 decimal degrees (north and east positive)."""

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    altitude_m: float | None = Field(default=None, description="metres above sea level (below: negative)")
    source: str = Field(description="where it was read: exif:GPSInfo, container:location (ISO 6709), ...")


class Place(BaseModel):
    """The nearest populated place to ``gps`` (GeoNames cities with 1,000+ people)."""

    name: str = Field(description="the city or town")
    admin1: str = Field(description="first-level region (state, province); may be empty")
    admin2: str = Field(description="second-level region (county, district); may be empty")
    country_code: str = Field(description="ISO 3166-1 alpha-2")
    distance_km: float = Field(ge=0, description="great-circle distance from the position to the place, km")
    attribution: str = GEONAMES_ATTRIBUTION

    def label(self) -> str:
        """``"Paris, Île-de-France, FR"``: the name, its region when it differs, the country code."""
        parts = [self.name] + ([self.admin1] if self.admin1 and self.admin1 != self.name else [])
        return ", ".join([*parts, self.country_code])


class MetadataResult(BaseModel):
    engine: Literal["pillow", "pyav"] = Field(description="which library read the file")
    model: str = Field(description="the place-name data used (GEONAMES_MODEL), or '' when not geocoded")
    model_version: str = Field(description="first 12 hex digits of the data file's SHA-256, or ''")
    media_kind: Literal["image", "audio", "video"]
    format: str = Field(description="container or image format as the library names it (JPEG, mov,mp4,...)")
    width: int | None = Field(default=None, description="pixels as stored (before EXIF orientation)")
    height: int | None = None
    duration_s: float | None = Field(default=None, ge=0, description="audio and video: seconds")
    taken_at: str | None = Field(
        default=None,
        description="when it was made, ISO 8601: local time with its UTC offset when the file records "
        "one (2024-05-01T14:03:22+02:00), local time without offset when it does not",
    )
    taken_at_utc: str | None = Field(
        default=None, description="the same instant in UTC (…Z), when the offset is known"
    )
    taken_at_source: str | None = Field(
        default=None,
        description="exif:DateTimeOriginal, exif:DateTimeDigitized, exif:DateTime, container:creation_time, ...",
    )
    camera: Camera | None = None
    exposure: Exposure | None = None
    orientation: int | None = Field(default=None, ge=1, le=8, description="EXIF Orientation, 1-8")
    gps: Gps | None = None
    place: Place | None = None
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="audio/video container tags (title, artist, ...), at most 32, values cut at 256 characters",
    )
    elapsed_ms: float


def metadata_segments(result: MetadataResult) -> list[TextSegment]:
    """The place and the camera as searchable text (``mediafleet search paris`` finds the photo)."""
    out = []
    if result.place is not None:
        out.append(TextSegment(text=result.place.label(), ref="place"))
    if result.camera is not None:
        text = " ".join(v for v in (result.camera.make, result.camera.model, result.camera.lens) if v)
        if text:
            out.append(TextSegment(text=text, ref="camera"))
    return out


def metadata_facts(result: MetadataResult) -> MediaFacts:
    """The file's local date and place for the library's filters (every field may be None)."""
    taken = None
    if result.taken_at:
        try:
            taken = datetime.fromisoformat(result.taken_at.replace("Z", "+00:00")).replace(tzinfo=None)
        except ValueError:
            taken = None
    place = result.place
    code = place.country_code if place is not None and re.fullmatch(r"[A-Z]{2}", place.country_code) else None
    return MediaFacts(taken_at=taken, place=place.label()[:200] if place else None, country_code=code)


def metadata_summary(result: MetadataResult) -> str:
    parts = [f"taken {result.taken_at}" if result.taken_at else "no date"]
    if result.place is not None:
        parts.append(f"near {result.place.label()}")
    elif result.gps is not None:
        parts.append(f"at {result.gps.latitude:.5f}, {result.gps.longitude:.5f}")
    if result.camera is not None and (result.camera.make or result.camera.model):
        parts.append(" ".join(v for v in (result.camera.make, result.camera.model) if v))
    return "; ".join(parts)


CAPABILITY = Capability(
    name="media_metadata",
    title="media_metadata: where and when a file was made (EXIF, GPS to a place name offline, container tags)",
    http_port=8116,
    env_prefix="MEDIA_METADATA_",
    runner="mediafleet.media_metadata.runner:MetadataRunner",
    settings="mediafleet.media_metadata.settings:MediaMetadataSettings",
    tasks=(
        TaskSpec(
            name="metadata",
            options=MetadataOptions,
            result=MetadataResult,
            media_kinds=("image", "audio", "video"),
            video_frames=False,
            segments=metadata_segments,
            facts=metadata_facts,
            summary=metadata_summary,
            description="where and when: EXIF, GPS to a place name, container tags",
            default=True,
        ),
    ),
)
