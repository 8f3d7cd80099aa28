"""The parsers for what users type, checked on examples and on generated input."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgectl.errors import UsageError
from edgectl.parse import (
    ascii_host,
    ascii_url,
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


@pytest.mark.parametrize("url, expected", [
    ("https://bücher.example/ü b?q=ä#top", "https://xn--bcher-kva.example/ü b?q=ä#top"),  # the rest as written
    ("https://Bücher.Example:8443/", "https://xn--bcher-kva.example:8443/"),
    ("https://faß.de/", "https://xn--fa-hia.de/"),  # IDNA 2008: ß is its own letter, not "ss"
    ("https://bücher。example/", "https://xn--bcher-kva.example/"),  # an ideographic full stop separates labels
    ("https://_acme.bücher.example/", "https://_acme.xn--bcher-kva.example/"),  # ASCII labels left to the caller
    ("https://xn--bcher-kva.example/ü", "https://xn--bcher-kva.example/ü"),
    ("http://[::1]:8080/ü", "http://[::1]:8080/ü"),
])
def test_a_unicode_host_becomes_its_idna_form(url, expected):
    assert ascii_url(url) == expected


@pytest.mark.parametrize("host", ["-ü.example", "bü_cher.example", "☃.net", "ab\u200dc.example", "ü" * 64 + ".example",
                                  "ü" * 254])
def test_a_host_that_is_not_idna_2008_is_one_usage_error(host):
    with pytest.raises(UsageError) as raised:
        parse_url(f"https://{host}/")
    assert "not a valid internationalised domain name" in raised.value.message or "longer" in raised.value.message
    assert "\n" not in raised.value.message


def test_an_idna_error_never_repeats_credentials():
    with pytest.raises(UsageError) as raised:
        parse_url("https://ops:hunter2@-ü.example/")
    assert "hunter2" not in raised.value.message


_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789äöüßéèñçøåæœžšłığəяжщыдфλπσωאבג中文字日本語한국"
_label = st.text(alphabet=_LETTERS, min_size=1, max_size=20)
_path = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
                                       blacklist_characters="#?"), max_size=30)


@given(st.lists(_label, min_size=1, max_size=3), _path)
def test_idna_urls_keep_everything_but_the_host(labels, path):
    import idna

    host = ".".join(labels) + ".example"
    url = f"https://{host}/{path}"
    try:
        converted = parse_url(url)
    except UsageError as exc:  # a label idna refuses (mixed right-to-left, say): refused as a host, in one line
        assert "host" in exc.message and "\n" not in exc.message
        return
    assert converted.isascii() or not path.isascii()
    assert converted.endswith(f"/{path}")
    written = converted[len("https://"):len(converted) - len(path) - 1]
    assert written.isascii() and idna.decode(written) == idna.decode(idna.encode(host, uts46=True))
    assert ascii_url(converted) == converted  # once is enough


@given(st.text(max_size=40))
def test_any_host_gives_a_host_or_a_usage_error(text):
    try:
        host = ascii_host(text)
    except UsageError:
        return
    assert host.isascii()


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
