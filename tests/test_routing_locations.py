"""Routing's geographic data: geo.csv against its sources, the lookups on it, distances."""

from __future__ import annotations

import csv
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgectl.errors import UsageError
from edgectl.parse import parse_country
from edgectl.routing import geo

# pycountry countries that geo.csv leaves out, each with the reason; none today.
EXCLUDED_COUNTRIES: dict[str, str] = {}


def _rows() -> list[dict[str, str]]:
    with geo.DATA_FILE.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def _rows_of(kind: str) -> list[dict[str, str]]:
    return [row for row in _rows() if row["kind"] == kind]


# --- geo.csv against its sources -------------------------------------------------------------


def test_the_countries_are_exactly_pycountrys():
    import pycountry

    iso = {country.alpha_2 for country in pycountry.countries}
    ours = {row["code"] for row in _rows_of("country")}
    assert ours <= iso, f"not ISO 3166-1 alpha-2: {sorted(ours - iso)}"
    assert iso - ours == set(EXCLUDED_COUNTRIES), f"missing from geo.csv: {sorted(iso - ours - set(EXCLUDED_COUNTRIES))}"


def test_the_us_and_canadian_subdivisions_are_exactly_pycountrys_but_the_outlying_areas():
    import pycountry

    from edgectl.routing.geo import US_OUTLYING_AREAS

    iso = {sub.code for cc in ("US", "CA") for sub in pycountry.subdivisions.get(country_code=cc)}
    assert {row["code"] for row in _rows_of("subdivision")} == iso - US_OUTLYING_AREAS
    assert {code[3:] for code in US_OUTLYING_AREAS} <= {row["code"] for row in _rows_of("country")}


def test_the_aws_regions_are_route53s_latency_regions():
    import botocore.session

    model = botocore.session.get_session().get_service_model("route53")
    latency_regions = set(model.shape_for("ResourceRecordSetRegion").enum)
    ours = {row["code"] for row in _rows_of("cloud_region") if row["provider"] == "aws"}
    assert ours - latency_regions == set(), "not a Route 53 latency region"
    assert latency_regions - ours == set(), "botocore knows AWS regions geo.csv lacks: add them"


def test_every_cloudflare_region_has_countries_and_every_country_one_region():
    data = geo.geo_data()
    assert set(data.cf_regions) == {"WNAM", "ENAM", "WEU", "EEU", "NSAM", "SSAM", "OC", "ME", "NAF", "SAF",
                                    "SAS", "SEAS", "NEAS"}
    for code in data.cf_regions:
        assert geo.cf_region_countries(code), code
    for country in data.countries.values():
        assert country.cf_region in data.cf_regions, country.code
        holding = {code for code in data.cf_regions if country.code in geo.cf_region_countries(code)}
        assert holding == set(geo.cf_regions_of(country.code)), country.code
    # only the countries Cloudflare splits by state or province are in two regions
    assert {c for c in data.countries if len(geo.cf_regions_of(c)) > 1} == {"US", "CA"}


def test_us_and_canada_split_between_western_and_eastern_north_america():
    assert geo.cf_region_of("US", "US-CA") == "WNAM"
    assert geo.cf_region_of("US", "US-NY") == "ENAM"
    assert geo.cf_region_of("CA", "CA-BC") == "WNAM"
    assert geo.cf_region_of("CA", "CA-ON") == "ENAM"
    assert geo.cf_region_of("US") == "ENAM"  # no state known
    assert geo.cf_region_of("US", "CA-BC") == "ENAM"  # a subdivision of another country says nothing
    wnam = geo.cf_region("WNAM")
    assert wnam.countries == {"US", "CA"} and "US-WA" in wnam.subdivisions and "US-TX" not in wnam.subdivisions


def test_every_country_is_on_one_continent():
    data = geo.geo_data()
    members = [geo.continent_countries(code) for code in data.continents]
    assert sum(len(m) for m in members) == len(data.countries)
    assert frozenset().union(*members) == set(data.countries)
    assert geo.continent_of("DE") == "EU" and geo.continent_of("BR") == "SA" and geo.continent_of("MX") == "NA"


def test_oceania_the_continent_and_cloudflares_oceania_differ_only_by_antarctic_territories():
    continent, region = geo.continent_countries("OC"), geo.cf_region_countries("OC")
    assert continent < region and region - continent == {"AQ", "HM"}


def test_subdivisions_and_cloud_regions_agree_with_their_country():
    data = geo.geo_data()
    for place in [*data.subdivisions.values(), *data.cloud_regions.values()]:
        assert place.country in data.countries, place.code
        assert place.continent == data.countries[place.country].continent, place.code
        assert place.cf_region == geo.cf_region_of(place.country, place.subdivision), place.code
        assert -90 <= place.lat <= 90 and -180 <= place.lon <= 180, place.code
    for region in data.cloud_regions.values():
        assert region.provider in ("aws", "azure", "gcp") and region.place, region.code
        if region.country in ("US", "CA"):
            assert region.subdivision, f"{region.code} needs its state or province for its Cloudflare region"


def test_cloud_region_names_are_unique_across_providers():
    names = [row["code"].lower() for row in _rows_of("cloud_region")]
    assert len(names) == len(set(names)) > 120


def test_the_file_is_sorted_and_each_column_has_its_source_named():
    rows = _rows()
    order = ["continent", "cf_region", "country", "subdivision", "cloud_region"]
    keys = [(order.index(row["kind"]), row["provider"], row["code"]) for row in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    comments = [line for line in geo.DATA_FILE.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    for column in rows[0]:
        assert any(line.startswith(f"# {column}") or f" {column} " in line for line in comments), column


def test_areas_stand_at_a_point_among_their_members():
    # a plain mean of longitudes would put Oceania in the Indian Ocean: its islands straddle 180°
    oceania = geo.continent("OC")
    assert oceania.lon > 120 or oceania.lon < -150
    assert 35 < geo.continent("EU").lat < 65 and -10 < geo.continent("EU").lon < 40
    assert geo.cf_region("WNAM").lon < -105 < geo.cf_region("ENAM").lon


def test_the_data_is_read_once():
    assert geo.geo_data() is geo.geo_data()


def test_node_countries_are_checked_against_pycountry():
    import pycountry

    assert all(parse_country(c.alpha_2.lower()) == c.alpha_2 for c in pycountry.countries)
    for bad in ("XK", "EU", "U", "USA"):
        with pytest.raises(UsageError):
            parse_country(bad)


# --- distances -------------------------------------------------------------------------------

latitudes = st.floats(min_value=-90, max_value=90, allow_nan=False)
longitudes = st.floats(min_value=-180, max_value=180, allow_nan=False)
HALF_CIRCUMFERENCE_KM = math.pi * geo.EARTH_RADIUS_KM


@given(latitudes, longitudes, latitudes, longitudes)
def test_distance_is_symmetric_and_bounded(lat1, lon1, lat2, lon2):
    there = geo.distance_km(lat1, lon1, lat2, lon2)
    assert there == pytest.approx(geo.distance_km(lat2, lon2, lat1, lon1), abs=1e-6)
    assert 0 <= there <= HALF_CIRCUMFERENCE_KM + 1e-6


@given(latitudes, longitudes)
def test_distance_to_itself_is_zero(lat, lon):
    assert geo.distance_km(lat, lon, lat, lon) == pytest.approx(0, abs=1e-6)


@given(latitudes, longitudes, latitudes, longitudes, latitudes, longitudes)
def test_distance_obeys_the_triangle_inequality(lat1, lon1, lat2, lon2, lat3, lon3):
    direct = geo.distance_km(lat1, lon1, lat3, lon3)
    assert direct <= geo.distance_km(lat1, lon1, lat2, lon2) + geo.distance_km(lat2, lon2, lat3, lon3) + 1e-6


def test_known_distances():
    assert geo.distance_km(0, 0, 0, 180) == pytest.approx(HALF_CIRCUMFERENCE_KM)
    assert geo.distance_km(90, 0, -90, 0) == pytest.approx(HALF_CIRCUMFERENCE_KM)
    # Frankfurt to New York is about 6,200 km
    assert geo.distance_km(50.11, 8.68, 40.71, -74.01) == pytest.approx(6200, rel=0.01)
