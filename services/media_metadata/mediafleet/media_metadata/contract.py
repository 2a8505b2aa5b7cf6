"""Contract of the media_metadata capability (light: pydantic, NumPy and mediafleet.common only).

Task ``fingerprint``: a perceptual fingerprint of the file (pHash and dHash of an image, of
many sampled video frames, and the Chromaprint of the audio) and the rule that calls two
fingerprints near-duplicates (:func:`fingerprint_likeness`); the recorder keeps the pairs of
one owner's files.

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

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mediafleet.common.capability import Capability, Likeness, MediaFacts, TaskSpec, TextSegment

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


# --- fingerprint ------------------------------------------------------------------------

#: Duplicate rule for images and video frames: pHash + dHash Hamming distance in bits (of 128).
#: Calibrated on the 24 shared images (bench/duplicates, 2026-12-07): a 3 % crop differs by at
#: most 22 bits, a 50 % resize by 21, JPEG quality 40 by 7; the closest two different images by 44.
MAX_HASH_BITS = 30
#: A video is a duplicate when at least this share of its informative sampled frames match.
MIN_FRAME_MATCH = 0.8
#: Audio is a duplicate when its Chromaprint bit error rate, at the best offset, is at most
#: this. Measured on the shared recordings and their AAC re-encodes (bench/duplicates,
#: 2026-12-07): the same recording 0.00-0.23 (0.23: the Hamilton song at AAC 24 kbit/s),
#: different recordings 0.31-0.45.
MAX_AUDIO_BER = 0.27
#: Offsets tried between two Chromaprints, in items (one item is about 0.124 s).
AUDIO_MAX_SHIFT = 16
#: Durations of two duplicates differ by at most this share (and 1 s whatever the length).
DURATION_TOLERANCE = 0.05


class FingerprintOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audio: bool = Field(default=True, description="audio and video: add the Chromaprint of the sound")


class FrameHash(BaseModel):
    """One sampled video frame's hashes."""

    t: float = Field(ge=0, description="seconds from the start of the video stream")
    phash: str = Field(pattern=r"^[0-9a-f]{16}$", description="64-bit pHash (DCT of 32x32 grey), hex")
    dhash: str = Field(pattern=r"^[0-9a-f]{16}$", description="64-bit dHash (9x8 grey gradients), hex")
    informative: bool = Field(
        description="false for a flat frame (black, a fade's first frames: grey std < 8 of 255): never "
        "compared, so two clips sharing a black fade-in are not duplicates by it"
    )


class FingerprintResult(BaseModel):
    engine: Literal["imagehash", "chromaprint", "imagehash+chromaprint"]
    model: str = Field(description="the fingerprints in it: 'pHash+dHash', 'Chromaprint', both")
    model_version: str = Field(description="imagehash and fpcalc versions")
    media_kind: Literal["image", "audio", "video"]
    width: int | None = Field(default=None, description="image or video frame, pixels as displayed")
    height: int | None = None
    duration_s: float | None = Field(default=None, ge=0, description="audio and video, seconds")
    phash: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$", description="image: 64-bit pHash, hex")
    dhash: str | None = Field(default=None, pattern=r"^[0-9a-f]{16}$", description="image: 64-bit dHash, hex")
    flat: bool = Field(
        default=False,
        description="image: one tone all over (grey std < 8 of 255): its hashes say nothing, it is "
        "never called a duplicate",
    )
    trimmed: list[int] | None = Field(
        default=None,
        min_length=4,
        max_length=4,
        description="image: uniform bars cut before hashing (letterbox), pixels [left, top, right, bottom]",
    )
    step_s: float | None = Field(default=None, gt=0, description="video: seconds between sampled frames")
    frames: list[FrameHash] = Field(default_factory=list, description="video: the sampled frames' hashes")
    audio: list[int] | None = Field(
        default=None,
        description="Chromaprint raw fingerprint (fpcalc -raw, algorithm 2): unsigned 32-bit items, "
        "one per ~0.124 s of the first 120 s; null without sound",
    )
    elapsed_ms: float


def hamming(a: str, b: str) -> int:
    """Differing bits of two hex hashes of equal length."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def audio_ber(a: list[int], b: list[int], max_shift: int = AUDIO_MAX_SHIFT) -> float:
    """The lowest bit error rate of two Chromaprint raw fingerprints over the shifts
    -max_shift..max_shift items (overlap of at least half the shorter one), in [0, 1];
    1.0 when either is empty. Unrelated sounds give about 0.35-0.5."""
    x, y = np.asarray(a, dtype=np.uint32), np.asarray(b, dtype=np.uint32)
    n = min(len(x), len(y))
    if n == 0:
        return 1.0
    best = 1.0
    for shift in range(-max_shift, max_shift + 1):
        xs, ys = (x[shift:], y) if shift >= 0 else (x, y[-shift:])
        m = min(len(xs), len(ys))
        if m < max(1, n // 2):
            continue
        bits = int(np.bitwise_count(np.bitwise_xor(xs[:m], ys[:m])).sum())
        best = min(best, bits / (32 * m))
    return best


def _frame_match(a: list[FrameHash], b: list[FrameHash], tolerance_s: float) -> tuple[int, int]:
    """(matched, compared) informative frames of ``a`` against ``b``'s frame nearest in time."""
    times = np.asarray([f.t for f in b])
    matched = compared = 0
    for fa in a:
        if not fa.informative or not len(times):
            continue
        i = int(np.abs(times - fa.t).argmin())
        if abs(times[i] - fa.t) > tolerance_s:
            continue
        compared += 1
        fb = b[i]
        matched += (
            fb.informative and hamming(fa.phash, fb.phash) + hamming(fa.dhash, fb.dhash) <= MAX_HASH_BITS
        )
    return matched, compared


def fingerprint_likeness(a: FingerprintResult, b: FingerprintResult) -> Likeness:
    """Whether two files are near-duplicates, by their fingerprints.

    - Images: pHash + dHash Hamming distance d <= :data:`MAX_HASH_BITS` (similarity 1 - d/128);
      a flat image (one tone) is nobody's duplicate.
    - Video: durations within :data:`DURATION_TOLERANCE`; of the informative frames of each, at
      least :data:`MIN_FRAME_MATCH` match the other's frame nearest in time (within half a
      sampling step); when both have sound, its Chromaprint bit error rate is at most
      :data:`MAX_AUDIO_BER` too. Flat frames (black) never count, so clips that share only a
      fade-in are not duplicates; a video without an informative frame is judged by its sound.
    - Audio: durations as for video, and the Chromaprint rule.

    Media of different kinds are never duplicates.
    """
    if a.media_kind != b.media_kind:
        return Likeness(duplicate=False, similarity=0.0, method="kind", detail="different kinds of media")
    if a.media_kind == "image":
        if not (a.phash and a.dhash and b.phash and b.dhash) or a.flat or b.flat:
            return Likeness(duplicate=False, similarity=0.0, method="pHash+dHash", detail="a flat image")
        d = hamming(a.phash, b.phash) + hamming(a.dhash, b.dhash)
        return Likeness(
            duplicate=d <= MAX_HASH_BITS,
            similarity=round(1 - d / 128, 4),
            method="pHash+dHash",
            detail=f"{d} of 128 bits differ (duplicate at {MAX_HASH_BITS} or fewer)",
        )
    da, db = a.duration_s or 0.0, b.duration_s or 0.0
    if abs(da - db) > max(1.0, DURATION_TOLERANCE * max(da, db)):
        return Likeness(
            duplicate=False, similarity=0.0, method="duration", detail=f"{da:.1f} s vs {db:.1f} s"
        )
    scores: list[float] = []
    details: list[str] = []
    methods: list[str] = []
    duplicate = True
    if a.media_kind == "video":
        tolerance = max(a.step_s or 0.5, b.step_s or 0.5) / 2 + 0.05
        ma, ca = _frame_match(a.frames, b.frames, tolerance)
        mb, cb = _frame_match(b.frames, a.frames, tolerance)
        if ca and cb:
            share = min(ma / ca, mb / cb)
            scores.append(share)
            methods.append("frames")
            details.append(f"{min(ma, mb)} of {max(ca, cb)} frames match")
            duplicate = duplicate and share >= MIN_FRAME_MATCH
    if a.audio and b.audio:
        ber = audio_ber(a.audio, b.audio)
        scores.append(round(1 - ber, 4))
        methods.append("chromaprint")
        details.append(f"sound bit error rate {ber:.2f} (duplicate at {MAX_AUDIO_BER})")
        duplicate = duplicate and ber <= MAX_AUDIO_BER
    if not scores:
        return Likeness(
            duplicate=False,
            similarity=0.0,
            method="none",
            detail="nothing to compare (flat frames, no sound)",
        )
    return Likeness(
        duplicate=duplicate,
        similarity=round(min(scores), 4),
        method="+".join(methods),
        detail="; ".join(details),
    )


def fingerprint_summary(result: FingerprintResult) -> str:
    if result.media_kind == "image":
        return f"pHash {result.phash}, dHash {result.dhash}"
    parts = []
    if result.frames:
        flat = sum(not f.informative for f in result.frames)
        parts.append(f"{len(result.frames)} frames hashed ({flat} flat)")
    parts.append(f"sound: {len(result.audio)} Chromaprint items" if result.audio else "no sound fingerprint")
    return "; ".join(parts)


CAPABILITY = Capability(
    name="media_metadata",
    title="media_metadata: where and when a file was made (EXIF, GPS to a place name offline, container "
    "tags) and its fingerprint for near-duplicates",
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
        TaskSpec(
            name="fingerprint",
            options=FingerprintOptions,
            result=FingerprintResult,
            media_kinds=("image", "audio", "video"),
            video_frames=False,
            likeness=fingerprint_likeness,
            summary=fingerprint_summary,
            description="near-duplicates: pHash/dHash of the image or of many video frames, Chromaprint of the sound",
            timeout_per_media_s=0.5,
            default=True,
        ),
    ),
)
