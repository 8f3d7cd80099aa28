"""Routing's locations and geographic data: geo.csv against its sources, every LOCATION form, GeoIP."""

from __future__ import annotations

import csv
import dataclasses
import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgectl.errors import ConfigError, UsageError
from edgectl.parse import parse_country
from edgectl.routing import geo
from edgectl.routing.locations import all_locations, parse_location

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


# --- parse_location, every form --------------------------------------------------------------


@pytest.mark.parametrize("text, kind, code, country, subdivision, continent, cf_region", [
    ("DE", "country", "DE", "DE", None, "EU", "WEU"),
    (" jp ", "country", "JP", "JP", None, "AS", "NEAS"),
    ("US", "country", "US", "US", None, "NA", "ENAM"),
    ("country:AF", "country", "AF", "AF", None, "AS", "SAS"),
    ("country:me", "country", "ME", "ME", None, "EU", "EEU"),
    ("US-GU", "country", "GU", "GU", None, "OC", "OC"),
    ("US-CA", "subdivision", "US-CA", "US", "US-CA", "NA", "WNAM"),
    ("ca-qc", "subdivision", "CA-QC", "CA", "CA-QC", "NA", "ENAM"),
    ("DE-BY", "subdivision", "DE-BY", "DE", "DE-BY", "EU", "WEU"),
    ("EU", "continent", "EU", None, None, "EU", None),
    ("continent:NA", "continent", "NA", None, None, "NA", None),
    ("OC", "continent", "OC", None, None, "OC", "OC"),
    ("AN", "continent", "AN", None, None, "AN", None),
    ("WNAM", "cf_region", "WNAM", None, None, "NA", "WNAM"),
    ("cf:OC", "cf_region", "OC", None, None, None, "OC"),
    ("cf:me", "cf_region", "ME", None, None, "AS", "ME"),
    ("us-east-1", "cloud_region", "us-east-1", "US", "US-VA", "NA", "ENAM"),
    ("us-west-2", "cloud_region", "us-west-2", "US", "US-OR", "NA", "WNAM"),
    ("westeurope", "cloud_region", "westeurope", "NL", None, "EU", "WEU"),
    ("europe-west3", "cloud_region", "europe-west3", "DE", None, "EU", "WEU"),
    ("EU-CENTRAL-1", "cloud_region", "eu-central-1", "DE", None, "EU", "WEU"),
    ("50.11,8.68", "coordinates", "50.11,8.68", None, None, None, None),
    ("-33.87, 151.21", "coordinates", "-33.87,151.21", None, None, None, None),
])
def test_each_form_parses(text, kind, code, country, subdivision, continent, cf_region):
    location = parse_location(text)
    assert (location.kind, location.code, location.country, location.subdivision, location.continent,
            location.cf_region) == (kind, code, country, subdivision, continent, cf_region)
    assert location.text == text.strip()
    assert location.name and location.lat is not None and location.lon is not None


def test_what_each_form_carries_for_routing():
    germany = parse_location("DE")
    assert germany.countries == {"DE"} and (germany.lat, germany.lon) == (51.0, 9.0)
    assert germany.name == "Germany"
    california = parse_location("US-CA")
    assert california.name == "California, United States" and california.lat == pytest.approx(36.78, abs=0.01)
    bavaria = parse_location("DE-BY")  # no point of its own in geo.csv: its country's
    assert bavaria.name == "Bayern, Germany" and (bavaria.lat, bavaria.lon) == (germany.lat, germany.lon)
    europe = parse_location("EU")
    assert {"DE", "FR", "PL"} <= europe.countries and "US" not in europe.countries
    wnam = parse_location("WNAM")
    assert wnam.countries == {"US", "CA"} and "US-CA" in wnam.subdivisions and "US-NY" not in wnam.subdivisions
    assert parse_location("OC").countries == geo.continent_countries("OC")
    assert parse_location("cf:OC").countries == geo.cf_region_countries("OC")
    frankfurt = parse_location("europe-west3")
    assert frankfurt.provider == "gcp" and frankfurt.countries == {"DE"} and "GCP" in frankfurt.name
    assert parse_location("us-east-1").provider == "aws" and parse_location("westeurope").provider == "azure"
    point = parse_location("-0.0,10")
    assert point.code == "0,10" and point.countries == frozenset()


def test_a_location_is_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse_location("DE").country = "FR"


@pytest.mark.parametrize("code, country, other", [
    ("AF", "Afghanistan", "continent:AF"), ("AS", "American Samoa", "continent:AS"),
    ("NA", "Namibia", "continent:NA"), ("SA", "Saudi Arabia", "continent:SA"), ("ME", "Montenegro", "cf:ME"),
])
def test_a_code_that_names_a_country_and_another_place_is_refused_alone(code, country, other):
    with pytest.raises(UsageError) as raised:
        parse_location(code)
    assert raised.value.exit_code == 2
    assert country in raised.value.message and f"country:{code}" in raised.value.message
    assert other in raised.value.message


@pytest.mark.parametrize("text, says", [
    ("XX", "is not a location: expected a country (DE)"),
    ("US-ZZ", "not an ISO 3166-2 subdivision of United States: expected"),
    ("XX-AB", "'XX' is not an ISO 3166-1 country: expected"),
    ("91,0", "latitude 91 is out of range: expected lat,lon"),
    ("0,-180.5", "longitude -180.5 is out of range: expected lat,lon"),
    ("not-a-place", "is not a location: expected"),
    ("300.1.2.3", "is not a valid IP address: expected IPv4"),
    ("1.2.3", "is not a valid IP address: expected IPv4"),
    ("2001:db8::g", "is not a location: expected"),
    ("cf:XX", "is not a Cloudflare Load Balancing region: expected one of EEU ENAM"),
    ("continent:EA", "is not a continent: expected one of AF AN AS EU NA OC SA"),
    ("country:XX", "is not an ISO 3166-1 country: expected"),
    ("", "empty location: expected"),
    ("aws:us-east-1", "is not a location: expected"),
])
def test_bad_locations_are_usage_errors_of_one_line(text, says):
    with pytest.raises(UsageError) as raised:
        parse_location(text)
    assert raised.value.exit_code == 2
    assert says in raised.value.message
    assert "\n" not in raised.value.message


@pytest.mark.parametrize("text, hint", [
    ("westeuropa", "did you mean 'westeurope'?"),
    ("WNAN", "did you mean 'WNAM'?"),
    ("UK", "the ISO 3166-1 code for the United Kingdom is GB"),
    ("country:UK", "the ISO 3166-1 code for the United Kingdom is GB"),
    ("germany", "write DE for germany"),
    ("Western Europe", "write cf:WEU for Western Europe"),
])
def test_a_close_miss_gets_a_suggestion(text, hint):
    with pytest.raises(UsageError) as raised:
        parse_location(text)
    assert raised.value.hint == hint


def test_a_miss_close_to_several_names_lists_them():
    with pytest.raises(UsageError) as raised:
        parse_location("us-east-l")
    assert raised.value.hint.startswith("did you mean one of ") and "'us-east-1'" in raised.value.hint


@pytest.mark.parametrize("text", ["XX", "QQ", "zzzzzz"])
def test_a_far_miss_gets_no_guess(text):
    with pytest.raises(UsageError) as raised:
        parse_location(text)
    assert raised.value.hint is None


def test_every_country_and_continent_is_listed():
    countries = all_locations("countries")
    assert [loc.code for loc in countries] == sorted(geo.geo_data().countries)
    assert all(loc.kind == "country" and loc.countries == {loc.code} for loc in countries)
    continents = all_locations("continents")
    assert [loc.code for loc in continents] == ["AF", "AN", "AS", "EU", "NA", "OC", "SA"]
    assert frozenset().union(*(loc.countries for loc in continents)) == {loc.code for loc in countries}
    with pytest.raises(UsageError):
        all_locations("planets")


def test_node_countries_are_checked_against_pycountry():
    import pycountry

    assert all(parse_country(c.alpha_2.lower()) == c.alpha_2 for c in pycountry.countries)
    for bad in ("XK", "EU", "U", "USA"):
        with pytest.raises(UsageError):
            parse_country(bad)


def test_help_and_plain_locations_do_not_load_pycountry_or_maxminddb():
    code = (
        "import sys\n"
        "from edgectl.cli.app import run\n"
        "try:\n"
        "    run(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "from edgectl.routing.locations import parse_location\n"
        "for text in ('DE', 'US-CA', 'EU', 'cf:OC', 'us-east-1', '1,2'):\n"
        "    parse_location(text)\n"
        "print('LOADED=' + ','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('pycountry', 'maxminddb'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "LOADED="


# --- IP addresses through a GeoIP database ---------------------------------------------------


def test_maxminddb_reads_the_test_database_as_geolite2_city(geoip_db):
    import maxminddb

    with maxminddb.open_database(geoip_db) as reader:
        record = reader.get("203.0.113.9")
        assert reader.metadata().database_type == "GeoLite2-City"
    assert record["country"]["iso_code"] == "US" and record["subdivisions"][0]["iso_code"] == "CA"
    assert (record["location"]["latitude"], record["location"]["longitude"]) == (37.7749, -122.4194)


def test_an_ip_resolves_to_country_subdivision_and_point(geoip_db):
    location = parse_location("203.0.113.9", geoip_db=geoip_db)
    assert (location.kind, location.code, location.country, location.subdivision) == ("ip", "203.0.113.9", "US", "US-CA")
    assert (location.continent, location.cf_region) == ("NA", "WNAM")
    assert (location.lat, location.lon) == (37.7749, -122.4194)
    assert location.name == "203.0.113.9 (California, United States)"
    assert parse_location("::ffff:203.0.113.9", geoip_db=geoip_db).subdivision == "US-CA"


def test_an_ip_without_a_location_stands_at_its_country_or_subdivision(geoip_db):
    berlin = parse_location("198.51.100.7", geoip_db=geoip_db)
    germany = geo.country("DE")
    assert (berlin.country, berlin.subdivision, berlin.cf_region) == ("DE", None, "WEU")
    assert (berlin.lat, berlin.lon) == (germany.lat, germany.lon)
    tokyo = parse_location("2001:db8::1", geoip_db=geoip_db)
    assert (tokyo.country, tokyo.subdivision, tokyo.continent, tokyo.cf_region) == ("JP", "JP-13", "AS", "NEAS")
    assert tokyo.name == "2001:db8::1 (Tokyo, Japan)"


@pytest.mark.parametrize("address, says", [
    ("10.0.0.1", "is not in the GeoIP database"),
    ("198.51.100.200", "is not in the GeoIP database"),  # a record with a continent and no country
    ("192.0.2.1", "places 192.0.2.1 in 'XK': expected an ISO 3166-1 country"),
])
def test_an_ip_the_database_cannot_place_is_a_usage_error(geoip_db, address, says):
    with pytest.raises(UsageError) as raised:
        parse_location(address, geoip_db=geoip_db)
    assert raised.value.exit_code == 2 and says in raised.value.message and "\n" not in raised.value.message


def test_an_ip_without_a_database_says_how_to_configure_one():
    with pytest.raises(ConfigError) as raised:
        parse_location("203.0.113.9")
    assert raised.value.exit_code == 2
    assert "routing.geoip_db is not set" in raised.value.message
    assert "edgectl config set routing.geoip_db /path/GeoLite2-City.mmdb" in raised.value.hint


def test_a_missing_or_foreign_database_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as missing:
        parse_location("203.0.113.9", geoip_db=str(tmp_path / "none.mmdb"))
    assert "does not exist" in missing.value.message and missing.value.exit_code == 2
    foreign = tmp_path / "notes.mmdb"
    foreign.write_text("not a database\n")
    with pytest.raises(ConfigError) as invalid:
        parse_location("203.0.113.9", geoip_db=str(foreign))
    assert "is not a MaxMind DB file" in invalid.value.message


# --- properties ------------------------------------------------------------------------------

latitudes = st.floats(min_value=-90, max_value=90, allow_nan=False)
longitudes = st.floats(min_value=-180, max_value=180, allow_nan=False)
HALF_CIRCUMFERENCE_KM = math.pi * geo.EARTH_RADIUS_KM


@given(latitudes, longitudes, st.sampled_from(["{},{}", "{}, {}", " {} ,{} "]))
def test_coordinates_round_trip(lat, lon, layout):
    location = parse_location(layout.format(f"{lat:.6f}", f"{lon:.6f}"))
    assert location.kind == "coordinates"
    assert location.lat == pytest.approx(lat, abs=1e-6) and location.lon == pytest.approx(lon, abs=1e-6)
    assert parse_location(location.code).code == location.code


@given(st.floats(min_value=90.000001, max_value=1000), longitudes, st.booleans())
def test_latitudes_beyond_the_poles_are_refused(lat, lon, south):
    with pytest.raises(UsageError):
        parse_location(f"{-lat if south else lat:.6f},{lon:.6f}")


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
