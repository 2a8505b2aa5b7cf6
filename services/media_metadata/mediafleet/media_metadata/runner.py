"""The metadata runner (follows mediafleet.common.capability.Runner): read the file, name the place."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import structlog

from mediafleet.common.capability import ProgressFn
from mediafleet.common.engine import EngineRunner
from mediafleet.media_metadata.contract import MetadataOptions, MetadataResult, Place
from mediafleet.media_metadata.engines.geonames import GeoNamesEngine
from mediafleet.media_metadata.read import read_media
from mediafleet.media_metadata.settings import MediaMetadataSettings

log = structlog.get_logger("mediafleet.media_metadata")


class MetadataRunner(EngineRunner[GeoNamesEngine]):
    def __init__(self, settings: MediaMetadataSettings):
        self.settings = settings
        self.geonames = GeoNamesEngine(settings.core.models_dir)
        self.engines = {self.geonames.name: self.geonames}

    def run(
        self, task: str, media: Path, options: dict[str, Any], inputs: dict[str, Any], progress: ProgressFn
    ) -> MetadataResult:
        """The contract's ``metadata`` task on the file at ``media`` (image, audio or video).

        Raises InvalidMedia / UnsupportedMediaType when the file cannot be opened at all, and
        EngineError (``model_not_available``) when a position is to be geocoded and the
        GeoNames data is not installed.
        """
        start = time.perf_counter()
        opts = MetadataOptions.model_validate(options)
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
