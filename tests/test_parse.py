"""The parsers for what users type, checked on examples and on generated input."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgectl.errors import UsageError
from edgectl.parse import (
    format_duration,
    parse_coordinates,
    parse_country,
    parse_duration,
    parse_label,
    parse_name,
    parse_secret_ref,
    parse_url,
)


@pytest.mark.parametrize("text, seconds", [
    ("500ms", 0.5), ("2s", 2), ("1m30s", 90), ("24h", 86400), ("7d", 604800), ("1.5s", 1.5),
    ("3", 3), ("0", 0), ("1h1m1s", 3661), (" 5M ", 300), ("1w", 604800),
])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "5x", "-1s", "1s1h", "1h1h", "s", "1.s", "nan", "inf", "1 h"])
def test_bad_durations(text):
    with pytest.raises(UsageError):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10**7))
def test_whole_second_durations_round_trip(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text(max_size=12))
def test_durations_never_crash(text):
    try:
        value = parse_duration(text)
    except UsageError:
        return
    assert value >= 0 and math.isfinite(value)


@given(st.floats(min_value=-90, max_value=90), st.floats(min_value=-180, max_value=180))
def test_coordinates_in_range_accepted(lat, lon):
    assert parse_coordinates(lat, lon) == (lat, lon)


@given(st.floats(allow_nan=True), st.floats(allow_nan=True))
def test_coordinates_out_of_range_rejected(lat, lon):
    ok = -90 <= lat <= 90 and -180 <= lon <= 180
    if ok:
        assert parse_coordinates(lat, lon) == (lat, lon)
    else:
        with pytest.raises(UsageError):
            parse_coordinates(lat, lon)


def test_coordinates_go_together():
    assert parse_coordinates(None, None) is None
    with pytest.raises(UsageError, match="together"):
        parse_coordinates(1.0, None)


_key = st.from_regex(r"\A[a-z0-9]([a-z0-9._/-]{0,20}[a-z0-9])?\Z")


@given(_key, st.text(alphabet=st.characters(blacklist_characters="\r\n\t", blacklist_categories=("Cs",)), max_size=40))
def test_labels_round_trip(key, value):
    assert parse_label(f"{key}={value}") == (key, value)


@pytest.mark.parametrize("text", ["novalue", "=v", "-a=b", "a b=c", "a=b\nc"])
def test_bad_labels(text):
    with pytest.raises(UsageError):
        parse_label(text)


def test_countries():
    assert parse_country("de") == "DE"
    with pytest.raises(UsageError) as raised:
        parse_country("UK")
    assert "GB" in raised.value.hint
    for bad in ("XX", "DEU", "", "1"):
        with pytest.raises(UsageError):
            parse_country(bad)


@pytest.mark.parametrize("url", ["http://a", "https://edge.example.net:8443/x", "http://127.0.0.1:9/"])
def test_urls(url):
    assert parse_url(url) == url


@pytest.mark.parametrize("url", ["edge.example.net", "ftp://a", "http://", "http://a:99999", "http://a b", "https://:80"])
def test_bad_urls(url):
    with pytest.raises(UsageError):
        parse_url(url)


def test_names_and_secret_refs():
    assert parse_name("edge-fra-1") == "edge-fra-1"
    for bad in ("Edge", "-a", "a-", "a" * 64, "a b", ""):
        with pytest.raises(UsageError):
            parse_name(bad)
    assert parse_secret_ref("env:EDGE_TOKEN") == "env:EDGE_TOKEN"
    assert parse_secret_ref("file:/run/secrets/t") == "file:/run/secrets/t"
    for bad in ("s3cr3t", "env:", "env:1BAD", "vault:x"):
        with pytest.raises(UsageError):
            parse_secret_ref(bad)
