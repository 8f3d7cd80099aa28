"""The cloudflare provider through the real SDK, over real HTTP, against the local fake of the v4 API."""

from __future__ import annotations

import json
import signal
import threading
import time
from types import SimpleNamespace

import httpx
import pytest

from edgectl.config import resolve_secret
from edgectl.providers.base import (AuthError, Batch, InvalidTarget, ProviderContext, ProviderError, PurgeAccepted,
                                    RetryableError)
from edgectl.providers.registry import provider_class
from tests.fakes.cloudflare_api import DEFAULT_TOKEN, DEFAULT_ZONES, FakeCloudflare, launch

ZONE = "example.com"
ZONE_ID = DEFAULT_ZONES[ZONE]
TOKEN_ENV = "EDGECTL_TEST_CF_TOKEN"


@pytest.fixture
def fake():
    server = FakeCloudflare().start()
    yield server
    server.stop()


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, DEFAULT_TOKEN)
    return DEFAULT_TOKEN


@pytest.fixture(scope="module")
def raw():
    """Plain HTTP to the fake, for what the SDK would never send."""
    with httpx.Client(trust_env=False, timeout=5) as client:
        yield client


def make(fake=None, timeout=5.0, resolve=None, **settings):
    """A provider on the fake (on nothing, for tests that never call out); zone_id unless one is named."""
    if "zone" not in settings and "zone_id" not in settings:
        settings["zone_id"] = ZONE_ID
    endpoint = fake.url if fake else "http://127.0.0.1:9/client/v4"
    settings = {"kind": "cloudflare", "api_token": f"env:{TOKEN_ENV}", "endpoint_url": endpoint, **settings}
    resolve = resolve or (lambda key, ref: resolve_secret(ref, key=key))
    return provider_class("cloudflare")("cf", settings, ProviderContext(resolve_secret=resolve, timeout=timeout))


def urls(n, host="www.example.com"):
    return tuple(f"https://{host}/assets/{i}.css" for i in range(n))


# -- purging -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, items, body", [
    ("url", ("https://www.example.com/a.css", "https://www.example.com/b.js"),
     {"files": ["https://www.example.com/a.css", "https://www.example.com/b.js"]}),
    ("prefix", ("www.example.com/blog/", "images.example.com"),
     {"prefixes": ["www.example.com/blog/", "images.example.com"]}),
    ("tag", ("product-1", "Product-2"), {"tags": ["product-1", "Product-2"]}),
    ("host", ("www.example.com",), {"hosts": ["www.example.com"]}),
    ("everything", ("*",), {"purge_everything": True}),
])
def test_each_kind_reaches_cloudflare_as_its_own_body(fake, token, kind, items, body):
    accepted = make(fake).purge(Batch(kind, items, "j1:1"))

    assert accepted == PurgeAccepted(provider_ref=ZONE_ID, completed=True, detail=accepted.detail)
    [purge] = fake.purged
    assert purge["body"] == body
    assert purge["zone_id"] == ZONE_ID


def test_files_cached_under_request_headers_are_sent_with_them(fake, token):
    headers = {"CF-Device-Type": "mobile", "Accept-Language": "de"}
    make(fake).purge(Batch("url", ("https://www.example.com/", "https://www.example.com/de/"), "j1:1", headers=headers))

    assert fake.purged[0]["body"] == {"files": [{"url": "https://www.example.com/", "headers": headers},
                                                {"url": "https://www.example.com/de/", "headers": headers}]}


def test_a_zone_named_is_looked_up_once_for_all_threads(fake, token):
    resolved = []

    def resolve(key, ref):
        resolved.append(key)
        return resolve_secret(ref, key=key)

    provider = make(fake, zone="Example.COM.", resolve=resolve)
    assert resolved == []  # nothing is resolved before the first call

    errors = []

    def purge(i):
        try:
            provider.purge(Batch("url", urls(3, host=f"h{i}.example.com"), f"j1:{i}"))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=purge, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)

    assert errors == []
    assert len(fake.purged) == 8 and {p["zone_id"] for p in fake.purged} == {ZONE_ID}
    assert [c for c in fake.calls if c[1].startswith("/zones?")] == [("GET", "/zones?name=example.com&per_page=50")]
    assert resolved == ["providers.cf.api_token"]  # the client is built once


def test_an_unknown_zone_name_is_an_error_that_names_it(fake, token):
    with pytest.raises(ProviderError) as caught:
        make(fake, zone="nowhere.example").purge(Batch("url", urls(1), "j1:1"))
    assert type(caught.value) is ProviderError
    assert "'nowhere.example'" in str(caught.value)
    assert fake.purged == []


def test_a_wrong_token_is_an_auth_error_in_cloudflares_words(fake, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "not-the-token")
    provider = make(fake)

    with pytest.raises(AuthError) as caught:
        provider.purge(Batch("url", urls(1), "j1:1"))
    assert str(caught.value) == "cloudflare: 10000 Authentication error (HTTP 403)"

    with pytest.raises(AuthError) as caught:
        provider.test()
    assert "1000 Invalid API Token" in str(caught.value)


def test_the_environment_cannot_swap_the_configured_token_for_another_credential(fake, token, monkeypatch):
    # the SDK would send these instead of the token if the provider let it read them
    monkeypatch.setenv("CLOUDFLARE_EMAIL", "someone@example.com")
    monkeypatch.setenv("CLOUDFLARE_API_KEY", "global-key")

    make(fake).purge(Batch("tag", ("a",), "j1:1"))
    assert len(fake.purged) == 1


# -- the limits, and the fake holding Cloudflare's line --------------------------------------------

def test_thirty_files_go_in_one_request_and_the_fake_refuses_thirty_one(fake, token, raw):
    provider = make(fake)
    assert provider.limits().batch_size["url"] == 30

    provider.purge(Batch("url", urls(30), "j1:1"))
    assert len(fake.purged[0]["items"]) == 30

    answer = raw.post(f"{fake.url}/zones/{ZONE_ID}/purge_cache", json={"files": list(urls(31))},
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400
    assert answer.json()["success"] is False and answer.json()["errors"][0]["message"]
    with pytest.raises(ProviderError) as caught:
        provider.purge(Batch("url", urls(31), "j1:2"))
    assert type(caught.value) is ProviderError and "31" in str(caught.value)
    assert len(fake.purged) == 1


@pytest.mark.parametrize("body", [
    {},
    {"files": ["https://www.example.com/a"], "tags": ["a"]},
    {"purge_everything": False},
    {"files": []},
    {"tags": [f"t{i}" for i in range(101)]},
    {"hosts": [f"h{i}.example.com" for i in range(101)]},
    {"prefixes": [f"www.example.com/{i}" for i in range(101)]},
    {"files": ["/relative/path.css"]},
    {"files": [{"url": "www.example.com/no-scheme"}]},
    {"prefixes": ["https://www.example.com/foo"]},
    {"prefixes": ["www.example.com/foo?page=2"]},
    {"hosts": ["https://www.example.com"]},
])
def test_the_fake_refuses_what_cloudflare_refuses(fake, token, raw, body):
    answer = raw.post(f"{fake.url}/zones/{ZONE_ID}/purge_cache", json=body,
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400
    doc = answer.json()
    assert doc["success"] is False and doc["result"] is None and doc["errors"][0]["code"]
    assert fake.purged == []


@pytest.mark.parametrize("headers, status, code", [
    ({}, 400, 9106),
    ({"Authorization": "Token abc"}, 400, 6003),
    ({"Authorization": "Bearer wrong"}, 403, 10000),
])
def test_the_fake_refuses_a_missing_or_wrong_token(fake, raw, headers, status, code):
    answer = raw.post(f"{fake.url}/zones/{ZONE_ID}/purge_cache", json={"purge_everything": True}, headers=headers)
    assert (answer.status_code, answer.json()["errors"][0]["code"]) == (status, code)
    verify = raw.get(f"{fake.url}/user/tokens/verify", headers={"Authorization": "Bearer wrong"})
    assert (verify.status_code, verify.json()["errors"][0]["code"]) == (401, 1000)


@pytest.mark.parametrize("plan, files, url_rate, bulk", [
    ("free", 30, 800, (5 / 60, 25)),
    ("pro", 30, 1500, (5, 25)),
    ("business", 30, 1500, (10, 50)),
    ("enterprise", 500, 3000, (50, 500)),
])
def test_limits_follow_the_plan(plan, files, url_rate, bulk):
    limits = make(plan=plan).limits()
    assert limits.batch_size == {"url": files, "prefix": 100, "tag": 100, "host": 100, "everything": 1}
    assert limits.bucket("url").rate == limits.bucket("url").burst == url_rate and limits.bucket("url").per_item
    for kind in ("tag", "host", "prefix", "everything"):
        assert limits.bucket_for[kind] == "bulk"
        assert (limits.bucket(kind).rate, limits.bucket(kind).burst) == pytest.approx(bulk)
        assert not limits.bucket(kind).per_item
    assert limits.max_in_flight == 4
    assert any("without scheme" in note for note in limits.notes)


def test_files_per_request_raises_the_batch():
    assert make(files_per_request=100).limits().batch_size["url"] == 100
    assert make(plan="enterprise", files_per_request=50).limits().batch_size["url"] == 50
    assert make(max_in_flight=9).limits().max_in_flight == 9


# -- failures the executor retries -----------------------------------------------------------------

def test_429_is_retried_after_cloudflares_retry_after(fake, token):
    fake.fail_next(status=429, retry_after=3)
    with pytest.raises(RetryableError) as caught:
        make(fake).purge(Batch("url", urls(1), "j1:1"))
    assert caught.value.retry_after == 3.0
    assert "971" in str(caught.value)


def test_the_fakes_url_bucket_answers_429_with_whole_seconds(token):
    server = FakeCloudflare(url_rate=40).start()
    try:
        provider = make(server)
        provider.purge(Batch("url", urls(30), "j1:1"))  # 30 of the 40 in the bucket
        with pytest.raises(RetryableError) as caught:
            provider.purge(Batch("url", urls(30), "j1:2"))
        assert caught.value.retry_after == 1.0
        assert server.stats() == {"requests": 2, "purge_calls": 1, "urls": 30, "rejected_429": 1}
    finally:
        server.stop()


def test_server_errors_are_retryable_and_then_it_goes_through(fake, token):
    provider = make(fake)
    fake.fail_next(status=500, count=2)
    for attempt in (1, 2):
        with pytest.raises(RetryableError) as caught:
            provider.purge(Batch("url", urls(1), "j1:1"))
        assert "(HTTP 500)" in str(caught.value)
    assert provider.purge(Batch("url", urls(1), "j1:1")).completed
    assert len(fake.requests) == 3 and len(fake.purged) == 1  # no retry of its own: one request per call


def test_a_dropped_connection_is_retryable(fake, token):
    provider = make(fake)
    fake.reset_next_connection()
    with pytest.raises(RetryableError) as caught:
        provider.purge(Batch("url", urls(1), "j1:1"))
    assert "connection failed" in str(caught.value)
    assert fake.purged == []
    assert provider.purge(Batch("url", urls(1), "j1:1")).completed


def test_a_slow_answer_times_out_as_retryable(fake, token):
    provider = make(fake, timeout=0.3)
    fake.delay_next(3)
    started = time.monotonic()
    with pytest.raises(RetryableError) as caught:
        provider.purge(Batch("url", urls(1), "j1:1"))
    assert time.monotonic() - started < 2
    assert "timed out after 0.3s" in str(caught.value)


def test_the_token_never_shows_in_an_error(fake, monkeypatch):
    secret = "s3cret-token-value"
    monkeypatch.setenv(TOKEN_ENV, secret)
    fake.token = secret
    provider = make(fake, timeout=0.3)
    raised = []

    def attempt(call):
        try:
            call()
        except ProviderError as exc:
            raised.append(exc)

    purge = lambda: provider.purge(Batch("url", urls(1), "j1:1"))  # noqa: E731 (a name reads better here)
    fake.fail_next(status=403, errors=[{"code": 9109, "message": f"bad token {secret}"}])
    attempt(purge)
    fake.fail_next(status=400, errors=[{"code": 1, "message": f"Bearer {secret} refused"}])
    attempt(purge)
    fake.fail_next(status=429, retry_after=1)
    attempt(purge)
    fake.reset_next_connection()
    attempt(purge)
    fake.delay_next(2)
    attempt(purge)
    fake.token = "another-token"
    attempt(purge)
    attempt(provider.test)

    assert len(raised) == 7
    assert isinstance(raised[0], AuthError) and "********" in str(raised[0])
    for exc in raised:
        assert secret not in str(exc) and secret not in repr(exc)
        assert exc.__cause__ is None and exc.__context__ is None  # the SDK's exception holds the raw answer


# -- targets ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("given, written", [
    ("https://WWW.Example.com/a b/c.css", "https://www.example.com/a%20b/c.css"),
    ("https://www.example.com/caf\u00e9/\u00fcber", "https://www.example.com/caf%C3%A9/%C3%BCber"),
    ("https://www.example.com/~user/x", "https://www.example.com/~user/x"),
    ("https://www.example.com/already%20encoded/%7E", "https://www.example.com/already%20encoded/%7E"),
    ("https://www.example.com/100%", "https://www.example.com/100%25"),
    ("https://www.example.com/search?q=a b&lang=\u00e9&x=%41", "https://www.example.com/search?q=a%20b&lang=%C3%A9&x=%41"),
    ("https://www.example.com/page#section", "https://www.example.com/page"),
    ("http://www.example.com", "http://www.example.com/"),
    ("https://www.example.com:8443/x", "https://www.example.com:8443/x"),
    ("https://b\u00fccher.example.com/", "https://xn--bcher-kva.example.com/"),
    ("  https://www.example.com/x  ", "https://www.example.com/x"),
])
def test_urls_are_written_as_cloudflare_keys_them(given, written):
    assert make().normalise("url", given) == written


@pytest.mark.parametrize("given, written", [
    ("https://www.example.com/blog/", "www.example.com/blog/"),
    ("http://WWW.example.com/blog", "www.example.com/blog"),
    ("www.example.com/blog/", "www.example.com/blog/"),
    ("www.example.com", "www.example.com"),
    ("www.example.com/caf\u00e9 menu/", "www.example.com/caf%C3%A9%20menu/"),
])
def test_prefixes_are_host_and_path_without_scheme(given, written):
    assert make().normalise("prefix", given) == written


@pytest.mark.parametrize("kind, value", [
    ("url", "/relative/path"),
    ("url", "www.example.com/no-scheme"),
    ("url", "ftp://www.example.com/file"),
    ("url", "https://user:pass@www.example.com/"),
    ("url", "https://www.example.com/line\nbreak"),
    ("url", "https://localhost/x"),
    ("url", "https://192.168.0.1/x"),
    ("url", "https://www.example.com:99999/x"),
    ("prefix", "www.example.com/search?q=1"),
    ("prefix", "www.example.com/images/*"),
    ("prefix", "www.example.com/page#top"),
    ("prefix", "ftp://www.example.com/x"),
    ("prefix", "www.example.com:8080/x"),
    ("prefix", "www.example.com" + "/a" * 32),
    ("prefix", "/just/a/path"),
    ("host", "https://www.example.com"),
    ("host", "www.example.com/path"),
    ("host", "bad_host!.example.com"),
    ("host", "-lead.example.com"),
    ("tag", ""),
    ("tag", "a,b"),
    ("tag", "has space"),
    ("tag", "x" * 1025),
    ("tag", "caf\u00e9"),
    ("wildcard", "x"),
])
def test_targets_cloudflare_cannot_purge_are_refused_before_sending(kind, value):
    with pytest.raises(InvalidTarget):
        make().normalise(kind, value)


def test_hosts_tags_and_everything():
    provider = make()
    assert provider.normalise("host", "WWW.Example.com.") == "www.example.com"
    assert provider.normalise("tag", "Product-42") == "Product-42"
    assert provider.normalise("tag", "x" * 1024) == "x" * 1024
    assert provider.normalise("everything", "anything") == "*"
    assert provider.normalise("prefix", "www.example.com" + "/a" * 31) == "www.example.com" + "/a" * 31


# -- settings --------------------------------------------------------------------------------------

GOOD = {"kind": "cloudflare", "api_token": "env:CF_TOKEN", "zone_id": ZONE_ID}


@pytest.mark.parametrize("settings", [
    GOOD,
    {"kind": "cloudflare", "api_token": "file:~/.cf-token", "zone": "example.com", "plan": "enterprise",
     "files_per_request": 500, "endpoint_url": "http://127.0.0.1:8080/client/v4", "max_in_flight": 8},
])
def test_good_settings_have_no_problems(settings):
    assert provider_class("cloudflare").check_settings(settings) == []


@pytest.mark.parametrize("change, problem", [
    ({"api_token": None}, "api_token: required"),
    ({"api_token": "abcdef0123456789"}, "api_token: must be a reference"),
    ({"zone_id": None}, "zone_id: required"),
    ({"zone": "example.com"}, "zone: give zone_id or zone, not both"),
    ({"zone_id": "example.com"}, "zone_id: must be the zone's ID"),
    ({"zone_id": None, "zone": "not a domain"}, "zone: 'not a domain' is not a domain name"),
    ({"plan": "team"}, "plan: 'team' is not one of free, pro, business, enterprise"),
    ({"plan": "Pro"}, "plan: 'Pro' is not one of"),
    ({"files_per_request": 0}, "files_per_request: must be a whole number from 1 to 500"),
    ({"files_per_request": 501}, "files_per_request:"),
    ({"files_per_request": True}, "files_per_request:"),
    ({"endpoint_url": "api.cloudflare.com"}, "endpoint_url: must be an http(s) URL"),
    ({"account_id": "x"}, "account_id: unknown setting 'account_id' for kind 'cloudflare' (known: api_token,"),
    ({"token": "env:CF"}, "token: unknown setting 'token' (did you mean 'api_token'?)"),
])
def test_settings_problems(change, problem):
    settings = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    problems = provider_class("cloudflare").check_settings(settings)
    assert any(line.startswith(problem) for line in problems), problems


# -- test() ----------------------------------------------------------------------------------------

def test_test_checks_token_and_zone_and_changes_nothing(fake, token):
    assert make(fake).test() == f"token active; zone example.com (id {ZONE_ID}) reachable"
    assert make(fake, zone="example.com").test() == f"token active; zone example.com (id {ZONE_ID}) reachable"
    assert fake.purged == []
    assert {method for method, _ in fake.calls} == {"GET"}


def test_test_lets_the_zone_vouch_for_an_account_token(fake, token):
    fake.user_token = False  # /user/tokens/verify refuses account-owned tokens that purge fine
    line = make(fake).test()
    assert line.startswith("token accepted by the zone") and line.endswith(f"zone example.com (id {ZONE_ID}) reachable")


def test_test_reports_a_token_that_is_not_active(fake, token):
    fake.token_status = "disabled"
    with pytest.raises(AuthError, match="the API token is disabled"):
        make(fake).test()


def test_test_reports_a_zone_it_cannot_reach(fake, token):
    with pytest.raises(ProviderError) as caught:
        make(fake, zone_id="0" * 32).test()
    assert type(caught.value) is ProviderError
    assert "7003 Could not route" in str(caught.value)
    with pytest.raises(ProviderError, match="'missing.example.com'"):
        make(fake, zone="missing.example.com").test()


# -- the fake as a program -------------------------------------------------------------------------

def test_the_fake_runs_as_a_program_and_reports_what_it_served(tmp_path, token):
    port_file, stats_file = tmp_path / "port", tmp_path / "stats.json"
    process, port = launch("tests.fakes.cloudflare_api", port_file, "--stats-file", str(stats_file),
                           "--url-rate", "800", "--zone", f"example.org={'1' * 32}")
    try:
        provider = make(SimpleNamespace(url=f"http://127.0.0.1:{port}/client/v4"), zone="example.org")
        for i in range(3):
            provider.purge(Batch("url", urls(30, host="www.example.org"), f"j1:{i}"))
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0 and out == b"" and err == b""
    assert json.loads(stats_file.read_text()) == {"requests": 4, "purge_calls": 3, "urls": 90, "rejected_429": 0}
