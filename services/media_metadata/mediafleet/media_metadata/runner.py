"""The media_metadata runner (follows mediafleet.common.capability.Runner): ``metadata`` reads
the file and names the place; ``fingerprint`` hashes the image, the video's frames and the sound."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import structlog

from mediafleet.common.capability import ProgressFn
from mediafleet.common.engine import Engine, EngineRunner
from mediafleet.common.errors import UnsupportedMediaType
from mediafleet.common.media import AV_FORMATS, open_av
from mediafleet.media_metadata.contract import (
    FingerprintOptions,
    FingerprintResult,
    MetadataOptions,
    MetadataResult,
    Place,
)
from mediafleet.media_metadata.engines.chromaprint import ChromaprintEngine
from mediafleet.media_metadata.engines.geonames import GeoNamesEngine
from mediafleet.media_metadata.fingerprint import hash_frames, hash_image
from mediafleet.media_metadata.read import read_media
from mediafleet.media_metadata.settings import MediaMetadataSettings

log = structlog.get_logger("mediafleet.media_metadata")


class MetadataRunner(EngineRunner[Engine]):
    def __init__(self, settings: MediaMetadataSettings):
        self.settings = settings
        self.geonames = GeoNamesEngine(settings.core.models_dir)
        self.chromaprint = ChromaprintEngine()
        self.engines = {self.geonames.name: self.geonames, self.chromaprint.name: self.chromaprint}

    def task_engines(self, task: str) -> list[str]:
        return [self.chromaprint.name] if task == "fingerprint" else [self.geonames.name]

    def run(
        self, task: str, media: Path, options: dict[str, Any], inputs: dict[str, Any], progress: ProgressFn
    ) -> MetadataResult | FingerprintResult:
        """The contract's ``metadata`` or ``fingerprint`` task on the file at ``media``."""
        if task == "fingerprint":
            return self.fingerprint(media, FingerprintOptions.model_validate(options))
        return self.metadata(media, MetadataOptions.model_validate(options))

    def metadata(self, media: Path, opts: MetadataOptions) -> MetadataResult:
        """Where and when the file at ``media`` (image, audio or video) was made.

        Raises InvalidMedia / UnsupportedMediaType when the file cannot be opened at all, and
        EngineError (``model_not_available``) when a position is to be geocoded and the
        GeoNames data is not installed.
        """
        start = time.perf_counter()
        facts = read_media(media)
        place, model, version = None, "", ""
        if opts.geocode and facts.gps is not None:
            city, km = self.geonames.nearest(facts.gps.latitude, facts.gps.longitude)
            model, version = self.geonames.model, self.geonames.model_version
            if km <= opts.max_place_km:
                place = Place(
                    name=city.name,
                    admin1=city.admin1,
                    admin2=city.admin2,
                    country_code=city.country_code,
                    distance_km=round(km, 3),
                )
        result = MetadataResult(
            **vars(facts),
            model=model,
            model_version=version,
            place=place,
            elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
        )
        log.info(
            "metadata_done",
            kind=result.media_kind,
            dated=result.taken_at is not None,
            located=result.gps is not None,
        )
        return result

    def fingerprint(self, media: Path, opts: FingerprintOptions) -> FingerprintResult:
        """pHash and dHash of an image; of up to 120 frames of a video and the Chromaprint of
        its sound; the Chromaprint of audio. Raises InvalidMedia / UnsupportedMediaType when
        the file cannot be read, EngineError when fpcalc fails on sound it should read.
        """
        start = time.perf_counter()
        try:
            hashes = hash_image(media)
        except UnsupportedMediaType:
            pass  # not an image: audio or video below
        else:
            return FingerprintResult(
                engine="imagehash", model="pHash+dHash", model_version=f"imagehash {_imagehash_version()}",
                media_kind="image", width=hashes.width, height=hashes.height, phash=hashes.phash,
                dhash=hashes.dhash, flat=hashes.flat, trimmed=hashes.trimmed if any(hashes.trimmed) else None,
                elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
            )  # fmt: skip
        with open_av(media) as container:
            if container.format.name not in AV_FORMATS:
                raise UnsupportedMediaType("not a supported image, audio or video file")
            duration = container.duration / 1_000_000 if container.duration else None
            has_video = any(s.codec_context is not None for s in container.streams.video)
            has_audio = bool(container.streams.audio)
        if not (has_video or has_audio):
            raise UnsupportedMediaType("not a supported image, audio or video file")
        step, frames, width, height = hash_frames(media, duration) if has_video else (None, [], None, None)
        audio = self.chromaprint.fingerprint(media) if has_audio and opts.audio else None
        engine: Literal["imagehash", "chromaprint", "imagehash+chromaprint"] = (
            "imagehash+chromaprint" if has_video and audio else "imagehash" if has_video else "chromaprint"
        )
        versions = ([f"imagehash {_imagehash_version()}"] if has_video else []) + (
            [f"fpcalc {self.chromaprint.model_version}"] if audio else []
        )
        result = FingerprintResult(
            engine=engine,
            model="+".join((["pHash+dHash"] if has_video else []) + (["Chromaprint"] if audio else [])) or "none",
            model_version=", ".join(versions),
            media_kind="video" if has_video else "audio",
            width=width or None, height=height or None,
            duration_s=round(duration, 3) if duration else None,
            step_s=step, frames=frames, audio=audio,
            elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
        )  # fmt: skip
        log.info("fingerprint_done", kind=result.media_kind, frames=len(frames), audio_items=len(audio or []))
        return result


def _imagehash_version() -> str:
    import imagehash

    return str(imagehash.__version__)
