"""Locations routing resolves: what a user writes as LOCATION, parsed into a typed Location.

A LOCATION is a country (DE), an ISO 3166-2 subdivision (US-CA), a continent (EU), a Cloudflare
Load Balancing region (WNAM), a cloud region (us-east-1, westeurope, europe-west3), `lat,lon`,
or an IP address located through a MaxMind-format GeoIP database.

Some two-letter codes mean two things. OC is both the continent Oceania and Cloudflare's Oceania
region: alone it is the continent, and `cf:OC` is the Cloudflare region (the two hold the same
countries but for the Antarctic territories edgectl's data puts in Cloudflare's, AQ and HM).
AF, AS, NA and SA are continents and countries (Afghanistan, American Samoa, Namibia, Saudi
Arabia), and ME is Cloudflare's Middle East and Montenegro: these are refused alone, since either
reading would send some users to the wrong place, and the prefixes `country:`, `continent:` and
`cf:` say which is meant.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Literal

from edgectl.errors import ConfigError, UsageError
from edgectl.routing import geo

LocationKind = Literal["country", "subdivision", "continent", "cf_region", "cloud_region", "coordinates", "ip"]
Scope = Literal["countries", "continents"]

EXPECTED = ("expected a country (DE), subdivision (US-CA), continent (EU), Cloudflare region (WNAM), "
            "cloud region (us-east-1), lat,lon or an IP address")
GEOIP_HINT = "set routing.geoip_db to a MaxMind City database: edgectl config set routing.geoip_db /path/GeoLite2-City.mmdb"
PROVIDER_NAMES = {"aws": "AWS", "azure": "Azure", "gcp": "GCP"}

_COORDINATES = re.compile(r"([-+]?\d+(?:\.\d+)?)\s*,\s*([-+]?\d+(?:\.\d+)?)")
_SUBDIVISION = re.compile(r"[A-Za-z]{2}-[A-Za-z0-9]{1,3}")
_CODE = re.compile(r"[A-Za-z]{2,4}")
# What is meant as an address, so that a typo in one says so rather than "not a location".
_IP_LIKE = re.compile(r"\d+(?:\.\d+){2,}|[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(?:%\S+)?")


@dataclass(frozen=True, slots=True)
class Location:
    """A parsed LOCATION and what routing needs of it.

    country, subdivision, continent and cf_region are filled where the location determines them;
    lat/lon is the point itself, a centroid (countries, subdivisions), the place a cloud region is
    in, for an IP the database's point (else its subdivision's or country's), and for continents
    and Cloudflare regions the spherical mean of their members' points.
    countries holds the countries the location covers; for a Cloudflare region, subdivisions
    names the parts of the countries it only partly covers (US, CA).
    """

    kind: LocationKind
    text: str
    code: str
    name: str
    country: str | None = None
    subdivision: str | None = None
    continent: str | None = None
    cf_region: str | None = None
    lat: float | None = None
    lon: float | None = None
    countries: frozenset[str] = frozenset()
    subdivisions: frozenset[str] = frozenset()
    provider: str | None = None


def parse_location(text: str, *, geoip_db: str | None = None) -> Location:
    """LOCATION -> Location; UsageError (exit 2) saying what was expected when it is none.

    geoip_db is the MaxMind database path (config routing.geoip_db), needed only for IP addresses.
    """
    raw = str(text).strip()
    if not raw:
        raise UsageError(f"empty location: {EXPECTED}")
    prefix, sep, rest = raw.partition(":")
    if sep and prefix.lower() in _PREFIXES:
        return _PREFIXES[prefix.lower()](rest.strip(), raw)
    if _IP_LIKE.fullmatch(raw):
        return _ip_location(raw, geoip_db)
    if match := _COORDINATES.fullmatch(raw):
        return _coordinates_location(float(match.group(1)), float(match.group(2)), raw)
    data = geo.geo_data()
    if raw.lower() in data.cloud_regions:
        return _cloud_location(data.cloud_regions[raw.lower()], raw)
    if _SUBDIVISION.fullmatch(raw):
        return _subdivision_location(raw.upper(), raw)
    if _CODE.fullmatch(raw):
        return _code_location(raw.upper(), raw)
    raise _not_a_location(raw)


def all_locations(scope: Scope) -> tuple[Location, ...]:
    """Every country, or every continent, as a Location, sorted by code."""
    if scope == "countries":
        return _all_countries()
    if scope == "continents":
        return _all_continents()
    raise UsageError(f"locations {scope!r}: expected countries or continents")


@cache
def _all_countries() -> tuple[Location, ...]:
    return tuple(country_location(code) for code in sorted(geo.geo_data().countries))


@cache
def _all_continents() -> tuple[Location, ...]:
    return tuple(continent_location(code) for code in sorted(geo.geo_data().continents))


def country_location(code: str, text: str | None = None) -> Location:
    place = geo.country(code)
    return Location(
        kind="country", text=text or place.code, code=place.code, name=place.name, country=place.code,
        continent=place.continent, cf_region=place.cf_region, lat=place.lat, lon=place.lon,
        countries=frozenset({place.code}),
    )


def continent_location(code: str, text: str | None = None) -> Location:
    area = geo.continent(code)
    # a continent has a Cloudflare region only where all of it lies in one (OC); likewise below
    regions = set().union(*(geo.cf_regions_of(member) for member in area.countries))
    return Location(
        kind="continent", text=text or area.code, code=area.code, name=area.name, continent=area.code,
        cf_region=regions.pop() if len(regions) == 1 else None, lat=area.lat, lon=area.lon,
        countries=area.countries,
    )


def cf_region_location(code: str, text: str | None = None) -> Location:
    area = geo.cf_region(code)
    continents = {geo.continent_of(member) for member in area.countries}
    return Location(
        kind="cf_region", text=text or area.code, code=area.code, name=f"{area.name} (Cloudflare {area.code})",
        continent=continents.pop() if len(continents) == 1 else None, cf_region=area.code,
        lat=area.lat, lon=area.lon, countries=area.countries, subdivisions=area.subdivisions,
    )


_PREFIXES = {
    "country": lambda code, raw: country_location(code, raw),
    "continent": lambda code, raw: continent_location(code, raw),
    "cf": lambda code, raw: cf_region_location(code, raw),
}


def _code_location(code: str, raw: str) -> Location:
    data = geo.geo_data()
    readings = [kind for kind, table in (("country", data.countries), ("continent", data.continents),
                                         ("cf", data.cf_regions)) if code in table]
    if "country" in readings and len(readings) > 1:
        other = readings[1]
        other_name = (data.continents if other == "continent" else data.cf_regions)[code].name
        raise UsageError(
            f"location {raw!r} is both the country {data.countries[code].name} and "
            f"{'the continent' if other == 'continent' else 'the Cloudflare region'} {other_name}: "
            f"expected country:{code} or {other}:{code}"
        )
    if readings:
        # a continent and a Cloudflare region at once is OC: the continent (see the module docstring)
        return _PREFIXES[readings[0]](code, raw)
    raise _not_a_location(raw)


def _subdivision_location(code: str, raw: str) -> Location:
    try:
        country = geo.country(code[:2])
    except UsageError as exc:
        raise UsageError(f"location {raw!r}: {exc.message}", hint=exc.hint) from None
    if code in geo.US_OUTLYING_AREAS:
        return country_location(code[3:], raw)
    part = geo.geo_data().subdivisions.get(code)
    if part is not None:
        name, lat, lon, region = part.name, part.lat, part.lon, part.cf_region
    else:
        import pycountry  # its subdivision table takes ~0.1 s to load, so only for codes not in geo.csv

        found = pycountry.subdivisions.get(code=code)
        if found is None:
            raise UsageError(f"location {raw!r} is not an ISO 3166-2 subdivision of {country.name}: "
                             "expected a code such as US-CA, DE-BY or JP-13")
        # geo.csv has points only for the subdivisions Cloudflare routes by; the country's stands in
        name, lat, lon, region = found.name, country.lat, country.lon, country.cf_region
    return Location(
        kind="subdivision", text=raw, code=code, name=f"{name}, {country.name}", country=country.code,
        subdivision=code, continent=country.continent, cf_region=region, lat=lat, lon=lon,
        countries=frozenset({country.code}),
    )


def _cloud_location(place: geo.Place, raw: str) -> Location:
    return Location(
        kind="cloud_region", text=raw, code=place.code,
        name=f"{place.name} ({PROVIDER_NAMES[place.provider]} {place.code})",
        country=place.country, subdivision=place.subdivision, continent=place.continent,
        cf_region=place.cf_region, lat=place.lat, lon=place.lon, countries=frozenset({place.country}),
        provider=place.provider,
    )


def _coordinates_location(lat: float, lon: float, raw: str) -> Location:
    for what, value, limit in (("latitude", lat, 90), ("longitude", lon, 180)):
        if not -limit <= value <= limit:
            raise UsageError(f"location {raw!r}: {what} {value:g} is out of range: "
                             "expected lat,lon with latitude in [-90, 90] and longitude in [-180, 180]")
    code = f"{_decimal(lat)},{_decimal(lon)}"
    return Location(kind="coordinates", text=raw, code=code, name=code, lat=lat + 0.0, lon=lon + 0.0)


def _decimal(value: float) -> str:
    # plain decimals, as the parser reads them ('1e-05' is not), to a micro-degree (~0.1 m);
    # adding 0.0 turns -0.0 into 0.0
    return f"{round(value, 6) + 0.0:.6f}".rstrip("0").rstrip(".")


def _ip_location(raw: str, geoip_db: str | None) -> Location:
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        raise UsageError(f"location {raw!r} is not a valid IP address: "
                         "expected IPv4 (203.0.113.9) or IPv6 (2001:db8::1)") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not geoip_db:
        raise ConfigError("locating an IP address needs a GeoIP database, and routing.geoip_db is not set",
                          hint=GEOIP_HINT)
    record = _geoip_reader(str(geoip_db)).get(str(address))
    if not isinstance(record, dict) or not isinstance(record.get("country"), dict):
        raise UsageError(f"location {address} is not in the GeoIP database {geoip_db}: expected an address it locates",
                         hint="private and unrouted addresses have no location; give a country or lat,lon instead")
    data = geo.geo_data()
    country_code = str(record["country"].get("iso_code", "")).upper()
    if country_code not in data.countries:
        raise UsageError(f"the GeoIP database places {address} in {country_code!r}: "
                         "expected an ISO 3166-1 country, which edgectl's data does not have for it")
    country = data.countries[country_code]
    subdivision = sub_name = None
    subdivisions = record.get("subdivisions") or []
    if subdivisions and isinstance(subdivisions[0], dict) and subdivisions[0].get("iso_code"):
        subdivision = f"{country_code}-{str(subdivisions[0]['iso_code']).upper()}"
        sub_name = (subdivisions[0].get("names") or {}).get("en")
    part = data.subdivisions.get(subdivision) if subdivision else None
    sub_name = sub_name or (part.name if part else None)
    location = record.get("location") or {}
    if location.get("latitude") is not None and location.get("longitude") is not None:
        lat, lon = float(location["latitude"]), float(location["longitude"])
    elif part is not None:
        lat, lon = part.lat, part.lon
    else:
        lat, lon = country.lat, country.lon
    where = f"{sub_name}, {country.name}" if sub_name else country.name
    return Location(
        kind="ip", text=raw, code=str(address), name=f"{address} ({where})", country=country_code,
        subdivision=subdivision, continent=country.continent, cf_region=geo.cf_region_of(country_code, subdivision),
        lat=lat, lon=lon, countries=frozenset({country_code}),
    )


@lru_cache(maxsize=4)
def _geoip_reader(path: str):
    # one open reader per database for the process: opening costs far more than a lookup
    import maxminddb

    try:
        return maxminddb.open_database(path)
    except FileNotFoundError:
        raise ConfigError(f"routing.geoip_db: {path} does not exist", hint=GEOIP_HINT) from None
    except OSError as exc:
        raise ConfigError(f"routing.geoip_db: {path} cannot be read: {exc.strerror or exc}", hint=GEOIP_HINT) from None
    except maxminddb.InvalidDatabaseError:
        raise ConfigError(f"routing.geoip_db: {path} is not a MaxMind DB file", hint=GEOIP_HINT) from None


def _not_a_location(raw: str) -> UsageError:
    return UsageError(f"{raw!r} is not a location: {EXPECTED}", hint=_suggestion(raw))


def _suggestion(raw: str) -> str | None:
    data = geo.geo_data()
    if raw.upper() == "UK":
        return "the ISO 3166-1 code for the United Kingdom is GB"
    by_name = {p.name.lower(): p.code for p in data.countries.values()}
    by_name |= {a.name.lower(): a.code for a in data.continents.values()}
    by_name |= {a.name.lower(): f"cf:{a.code}" for a in data.cf_regions.values()}
    if raw.lower() in by_name:
        return f"write {by_name[raw.lower()]} for {raw}"
    if len(raw) < 4:  # a short code is close to dozens of others; a guess would mislead
        return None
    candidates = list(data.cloud_regions) + [code.lower() for code in data.cf_regions]
    close = [match if match in data.cloud_regions else match.upper()
             for match in difflib.get_close_matches(raw.lower(), candidates, n=3, cutoff=0.75)]
    if not close:
        return None
    if len(close) == 1:
        return f"did you mean {close[0]!r}?"
    return "did you mean one of " + ", ".join(repr(match) for match in close) + "?"
