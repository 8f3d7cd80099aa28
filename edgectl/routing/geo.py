"""Geographic facts for routing: countries, continents, Cloudflare regions, cloud regions, distances.

Everything comes from edgectl/data/geo.csv (its header names each column's source), read once
on first use.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple

from edgectl.errors import UsageError

DATA_FILE = Path(__file__).resolve().parent.parent / "data" / "geo.csv"

# ISO 3166-2:US lists these outlying areas, which ISO 3166-1 also codes as countries; GeoIP
# databases and Cloudflare report them as the country, so geo.csv has them only as countries.
US_OUTLYING_AREAS = frozenset({"US-AS", "US-GU", "US-MP", "US-PR", "US-UM", "US-VI"})

# The IUGG mean radius: great-circle distances on it are within about 0.5% of the ellipsoid's.
EARTH_RADIUS_KM = 6371.0088


# a NamedTuple rather than a frozen dataclass: some 450 are built on first use, several times faster
class Place(NamedTuple):
    """A row of geo.csv with a point: a country, a subdivision or a cloud region."""

    kind: str
    code: str
    name: str
    country: str
    subdivision: str | None
    continent: str
    cf_region: str
    provider: str | None
    lat: float
    lon: float
    place: str | None


@dataclass(frozen=True, slots=True)
class Area:
    """A continent or a Cloudflare region: the countries in it and a point that stands for it.

    `countries` holds every country with any part in the area. A country that Cloudflare splits
    between regions (US, CA) is only partly in each; `subdivisions` lists its parts in this one.
    """

    kind: str
    code: str
    name: str
    countries: frozenset[str]
    subdivisions: frozenset[str]
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class GeoData:
    continents: dict[str, Area]
    cf_regions: dict[str, Area]
    countries: dict[str, Place]
    subdivisions: dict[str, Place]
    cloud_regions: dict[str, Place]  # by lower-case name; names are unique across providers
    split: dict[str, frozenset[str]]  # the countries Cloudflare splits (US, CA) -> their regions


@cache
def geo_data() -> GeoData:
    """geo.csv, parsed once per process."""
    with DATA_FILE.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(line for line in handle if not line.startswith("#"))
        header = next(reader)
        rows = [dict(zip(header, values)) for values in reader]
    names: dict[tuple[str, str], str] = {}
    countries: dict[str, Place] = {}
    subdivisions: dict[str, Place] = {}
    cloud_regions: dict[str, Place] = {}
    for row in rows:
        kind = row["kind"]
        if kind in ("continent", "cf_region"):
            names[kind, row["code"]] = row["name"]
        elif kind == "country":
            countries[row["code"]] = _place(row)
        elif kind == "subdivision":
            subdivisions[row["code"]] = _place(row)
        else:
            cloud_regions[row["code"].lower()] = _place(row)
    split_regions: dict[str, set[str]] = defaultdict(set)
    for part in subdivisions.values():
        split_regions[part.country].add(part.cf_region)
    split = {code: frozenset(regions) for code, regions in split_regions.items()}
    by_continent: dict[str, list[Place]] = defaultdict(list)
    by_region: dict[str, list[Place]] = defaultdict(list)
    for place in countries.values():
        by_continent[place.continent].append(place)
        if place.code not in split:
            by_region[place.cf_region].append(place)
    by_region_parts: dict[str, list[Place]] = defaultdict(list)
    for part in subdivisions.values():
        by_region_parts[part.cf_region].append(part)
    continents = {code: _area("continent", code, name, by_continent[code], [])
                  for (kind, code), name in names.items() if kind == "continent"}
    cf_regions = {code: _area("cf_region", code, name, by_region[code], by_region_parts[code])
                  for (kind, code), name in names.items() if kind == "cf_region"}
    return GeoData(continents, cf_regions, countries, subdivisions, cloud_regions, split)


def _place(row: dict[str, str]) -> Place:
    return Place(
        kind=row["kind"], code=row["code"], name=row["name"], country=row["country"],
        subdivision=row["subdivision"] or None, continent=row["continent"], cf_region=row["cf_region"],
        provider=row["provider"] or None, lat=float(row["lat"]), lon=float(row["lon"]),
        place=row["place"] or None,
    )


def _area(kind: str, code: str, name: str, whole: list[Place], parts: list[Place]) -> Area:
    # The point is the mean of the members' points on the sphere, unweighted: whole countries by
    # their centroid, split countries by their subdivisions in the area. Averaging unit vectors
    # rather than degrees keeps areas across the antimeridian (Oceania) in the right ocean.
    lat, lon = mean_point([(p.lat, p.lon) for p in whole + parts])
    return Area(
        kind=kind, code=code, name=name,
        countries=frozenset(p.country for p in whole + parts),
        subdivisions=frozenset(p.code for p in parts),
        lat=lat, lon=lon,
    )


def mean_point(points: list[tuple[float, float]]) -> tuple[float, float]:
    """The spherical mean of (lat, lon) points: the direction of the sum of their unit vectors."""
    x = y = z = 0.0
    for lat, lon in points:
        phi, lam = math.radians(lat), math.radians(lon)
        x += math.cos(phi) * math.cos(lam)
        y += math.cos(phi) * math.sin(lam)
        z += math.sin(phi)
    return (round(math.degrees(math.atan2(z, math.hypot(x, y))), 4),
            round(math.degrees(math.atan2(y, x)), 4))


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance by the haversine formula."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlam = phi2 - phi1, math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    # rounding can put h a hair above 1 for antipodal points, where asin is undefined
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


def country(code: str) -> Place:
    try:
        return geo_data().countries[code.upper()]
    except KeyError:
        hint = "the ISO 3166-1 code for the United Kingdom is GB" if code.upper() == "UK" else None
        raise UsageError(f"{code!r} is not an ISO 3166-1 country: expected an alpha-2 code such as DE, US or JP",
                         hint=hint) from None


def continent(code: str) -> Area:
    try:
        return geo_data().continents[code.upper()]
    except KeyError:
        raise UsageError(f"{code!r} is not a continent: expected one of " + " ".join(sorted(geo_data().continents))) from None


def cf_region(code: str) -> Area:
    try:
        return geo_data().cf_regions[code.upper()]
    except KeyError:
        raise UsageError(f"{code!r} is not a Cloudflare Load Balancing region: expected one of "
                         + " ".join(sorted(geo_data().cf_regions))) from None


def continent_of(country_code: str) -> str:
    return country(country_code).continent


def cf_region_of(country_code: str, subdivision: str | None = None) -> str:
    """The Cloudflare region of a country, or of one of its subdivisions where Cloudflare splits it."""
    place = country(country_code)
    if subdivision is not None:
        part = geo_data().subdivisions.get(subdivision.upper())
        if part is not None and part.country == place.code:
            return part.cf_region
    return place.cf_region


def cf_regions_of(country_code: str) -> frozenset[str]:
    """The Cloudflare regions a country lies in: one, or two for the countries Cloudflare splits."""
    place = country(country_code)
    return geo_data().split.get(place.code) or frozenset({place.cf_region})


def continent_countries(code: str) -> frozenset[str]:
    return continent(code).countries


def cf_region_countries(code: str) -> frozenset[str]:
    """Every country with any part in the region; cf_region(code).subdivisions says which parts of US and CA."""
    return cf_region(code).countries
