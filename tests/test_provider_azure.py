"""The azure_cdn and azure_frontdoor provider kinds against a fake Azure Resource Manager on loopback."""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest

import edgectl.config
from edgectl.errors import ConfigError
from edgectl.providers.base import (
    AuthError,
    Batch,
    InvalidTarget,
    ProviderContext,
    ProviderError,
    RetryableError,
)
from edgectl.providers.registry import provider_class
from tests.fakes.azure_arm import FakeArm
from tests.fakes.health_servers import closed_port

SUB = "6f1c1d3e-0c55-4a0b-9a55-3e0d2b0c7a11"
TOKEN = "arm-token-for-tests-0123456789"


@pytest.fixture
def arm():
    server = FakeArm(token=TOKEN, polls_before_done=1).start()
    server.add_endpoint(SUB, "rg-edge", "cdn-profile", "assets")
    server.add_endpoint(SUB, "rg-edge", "afd-profile", "web", kind="afd")
    yield server
    server.stop()


@pytest.fixture
def make(arm, monkeypatch):
    """make('azure_cdn', **settings) -> a provider talking to the fake, its token in AZURE_ARM_TOKEN."""
    monkeypatch.setenv("AZURE_ARM_TOKEN", TOKEN)
    made = []

    def build(kind: str = "azure_cdn", timeout: float = 5, **overrides):
        settings = {"kind": kind, "subscription_id": SUB, "resource_group": "rg-edge",
                    "profile": "cdn-profile" if kind == "azure_cdn" else "afd-profile",
                    "endpoint": "assets" if kind == "azure_cdn" else "web",
                    "endpoint_url": arm.url, "access_token": "env:AZURE_ARM_TOKEN"}
        settings.update(overrides)
        settings = {k: v for k, v in settings.items() if v is not None}
        context = ProviderContext(resolve_secret=lambda key, ref: edgectl.config.resolve_secret(ref, key=key),
                                  timeout=timeout)
        provider = provider_class(kind)("edge", settings, context)
        made.append(provider)
        return provider

    yield build
    for provider in made:
        provider.close()


def body_of(request) -> dict:
    return json.loads(request.body)


def status_gets(arm: FakeArm) -> list:
    return [r for r in arm.requests if "/operationresults/" in r.path]


# ---- purging ----------------------------------------------------------------------

def test_cdn_purge_sends_camel_case_paths_and_does_not_wait(arm, make):
    provider = make("azure_cdn")
    items = tuple(provider.normalise("url", u) for u in ("https://cdn.example.com/css/site.css?v=3",
                                                         "https://cdn.example.com/img/a b.png"))
    items += (provider.normalise("prefix", "/fonts/"),)

    accepted = provider.purge(Batch("url", items, "job-1:1"))

    assert accepted.completed is False
    assert accepted.provider_ref
    [post] = arm.purge_posts()
    assert post.path.endswith("/profiles/cdn-profile/endpoints/assets/purge")
    assert body_of(post) == {"contentPaths": ["/css/site.css", "/img/a%20b.png", "/fonts/*"]}
    assert arm.purges[0].paths == ["/css/site.css", "/img/a%20b.png", "/fonts/*"]
    time.sleep(0.1)
    assert status_gets(arm) == []  # the SDK left nothing polling behind the executor's back
    assert TOKEN not in accepted.provider_ref and TOKEN not in base64.b64decode(accepted.provider_ref).decode()


def test_frontdoor_purge_sends_domains_from_settings(arm, make):
    provider = make("azure_frontdoor", domains=["www.example.com", "Shop.Example.com."])

    provider.purge(Batch("url", ("/index.html",), "job-1:1"))
    provider.purge(Batch("everything", ("/*",), "job-1:2"))

    first, second = arm.purge_posts()
    assert first.path.endswith("/profiles/afd-profile/afdEndpoints/web/purge")
    assert body_of(first) == {"contentPaths": ["/index.html"], "domains": ["www.example.com", "shop.example.com"]}
    assert body_of(second) == {"contentPaths": ["/*"], "domains": ["www.example.com", "shop.example.com"]}


def test_frontdoor_without_domains_purges_every_domain_and_host_purges_name_them(arm, make):
    provider = make("azure_frontdoor")

    provider.purge(Batch("prefix", ("/img/*",), "job-1:1"))
    provider.purge(Batch("host", (provider.normalise("host", "WWW.example.com"),), "job-1:2"))

    first, second = arm.purge_posts()
    assert body_of(first) == {"contentPaths": ["/img/*"]}
    assert body_of(second) == {"contentPaths": ["/*"], "domains": ["www.example.com"]}
    assert arm.purges[1].domains == ["www.example.com"]


@pytest.mark.parametrize("kind", ["azure_cdn", "azure_frontdoor"])
def test_completion_polls_to_succeeded_and_never_resends_the_purge(arm, make, kind):
    arm.polls_before_done = 2
    provider = make(kind)
    accepted = provider.purge(Batch("url", ("/a.js",), "job-1:1"))

    states = [provider.completion(accepted.provider_ref).state for _ in range(3)]

    assert states == ["in_progress", "in_progress", "completed"]
    assert len(arm.purge_posts()) == 1
    assert len(status_gets(arm)) == 3


def test_the_wait_arm_asks_for_comes_with_the_acceptance_and_each_status(arm, make):
    arm.polls_before_done, arm.retry_after = 2, 7
    provider = make("azure_frontdoor")
    accepted = provider.purge(Batch("url", ("/a.js",), "job-1:1"))

    looks = [provider.completion(accepted.provider_ref) for _ in range(3)]

    assert accepted.retry_after == 7
    assert [(c.state, c.retry_after) for c in looks] == [("in_progress", 7), ("in_progress", 7), ("completed", None)]


def test_no_retry_after_is_no_suggestion(arm, make):
    arm.retry_after = 0  # azure-core reads 0 as absent, and so does edgectl: its own schedule applies
    provider = make("azure_cdn")
    accepted = provider.purge(Batch("url", ("/a.js",), "job-1:1"))

    assert accepted.retry_after is None
    assert provider.completion(accepted.provider_ref).retry_after is None


def test_purges_from_many_threads_share_one_client(arm, make):
    from concurrent.futures import ThreadPoolExecutor

    provider = make("azure_cdn")
    batches = [Batch("url", (f"/f{i}.js",), f"job-1:{i}") for i in range(8)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        accepted = list(pool.map(provider.purge, batches))
        states = list(pool.map(lambda a: provider.completion(a.provider_ref).state, accepted))

    assert states == ["in_progress"] * 8
    assert sorted(p.paths[0] for p in arm.purges) == sorted(f"/f{i}.js" for i in range(8))
    assert len({a.provider_ref for a in accepted}) == 8


def test_completion_from_a_fresh_provider_uses_only_the_reference(arm, make):
    accepted = make("azure_cdn").purge(Batch("url", ("/a.js",), "job-1:1"))

    assert make("azure_cdn").completion(accepted.provider_ref).state == "in_progress"
    assert make("azure_cdn").completion(accepted.provider_ref).state == "completed"
    assert len(arm.purge_posts()) == 1


def test_failed_operation_reports_azure_error(arm, make):
    arm.polls_before_done = 0
    arm.fail_operations("PurgeFailed", "Edge nodes rejected the purge.")
    provider = make("azure_frontdoor")
    accepted = provider.purge(Batch("url", ("/a.js",), "job-1:1"))

    completion = provider.completion(accepted.provider_ref)

    assert completion.state == "failed"
    assert completion.detail == "PurgeFailed: Edge nodes rejected the purge."


def test_completion_of_a_reference_from_elsewhere_is_a_provider_error(make):
    with pytest.raises(ProviderError) as caught:
        make("azure_cdn").completion("not-a-token")
    assert not isinstance(caught.value, RetryableError)


# ---- what the API refuses --------------------------------------------------------

@pytest.mark.parametrize("path", ["pictures/a.png", "/img/*.png", "/img*", "/*/x", "/$web/*", "/a//b", "/a~b"])
def test_fake_refuses_paths_azure_refuses(arm, make, path):
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.cdn.models import PurgeParameters

    provider = make("azure_cdn")
    client = provider._arm_client()

    with pytest.raises(HttpResponseError) as caught:
        client.endpoints.begin_purge_content("rg-edge", "cdn-profile", "assets",
                                             content_file_paths=PurgeParameters(content_paths=[path]))

    assert caught.value.status_code == 400
    assert caught.value.error.code == "BadRequest"
    assert f'Invalid ContentPath "{path}"' in caught.value.error.message
    with pytest.raises(ProviderError) as mapped:
        provider.purge(Batch("url", (path,), "job-1:1"))
    assert "HTTP 400: BadRequest: Invalid ContentPath" in mapped.value.message
    assert not isinstance(mapped.value, (RetryableError, AuthError))
    assert arm.purges == []


@pytest.mark.parametrize("body", [{"content_paths": ["/a.css"]}, {}, {"contentPaths": []},
                                  {"contentPaths": ["/a.css"], "content_paths": ["/a.css"]}])
def test_fake_refuses_bodies_that_are_not_purge_parameters(arm, make, body):
    from azure.core.exceptions import HttpResponseError

    client = make("azure_cdn")._arm_client()

    with pytest.raises(HttpResponseError) as caught:
        client.endpoints.begin_purge_content("rg-edge", "cdn-profile", "assets", content_file_paths=body)

    assert caught.value.status_code == 400
    assert caught.value.error.code == "BadRequest"
    assert arm.purges == []


def test_fake_refuses_more_than_a_hundred_paths(arm, make):
    provider = make("azure_cdn")
    assert provider.limits().batch_size["url"] == 100

    provider.purge(Batch("url", tuple(f"/f{i}.js" for i in range(100)), "job-1:1"))
    with pytest.raises(ProviderError, match="At most 100"):
        provider.purge(Batch("url", tuple(f"/f{i}.js" for i in range(101)), "job-1:2"))


@pytest.mark.parametrize("kind, value, expected", [
    ("url", "https://cdn.example.com/css/site.css", "/css/site.css"),
    ("url", "https://cdn.example.com/css/site.css?v=3#top", "/css/site.css"),
    ("url", "https://cdn.example.com", "/"),
    ("url", "/img/a b.png", "/img/a%20b.png"),
    ("url", "/img/caf\u00e9.png", "/img/caf%C3%A9.png"),
    ("url", "/img/already%20encoded.png", "/img/already%20encoded.png"),
    ("url", "/100%/x", "/100%25/x"),
    ("url", "/docs/a_(1)=b.html", "/docs/a_(1)=b.html"),
    ("prefix", "/img", "/img/*"),
    ("prefix", "/img/", "/img/*"),
    ("prefix", "/img/*", "/img/*"),
    ("prefix", "https://cdn.example.com/a/b/", "/a/b/*"),
    ("prefix", "/", "/*"),
    ("everything", "", "/*"),
])
def test_normalise_writes_paths_azure_accepts(arm, make, kind, value, expected):
    provider = make("azure_cdn")

    assert provider.normalise(kind, value) == expected
    provider.purge(Batch(kind, (expected,), "job-1:1"))
    assert arm.purges[-1].paths == [expected]


@pytest.mark.parametrize("kind, value, why", [
    ("url", "cdn.example.com/a.css", "starting with /"),
    ("url", "ftp://cdn.example.com/a.css", "not an http"),
    ("url", "/img/*.png", "wildcard"),
    ("url", "/a/*", "wildcard"),
    ("url", "/$web/index.html", "refuses '$'"),
    ("url", "/img/logo@2x.png", "refuses '@'"),
    ("url", "/a//b.css", "empty path segment"),
    ("prefix", "/img*/", "wildcard"),
    ("url", "", "empty"),
])
def test_normalise_refuses_what_azure_would(make, kind, value, why):
    with pytest.raises(InvalidTarget, match=why.replace("$", r"\$")):
        make("azure_cdn").normalise(kind, value)


def test_host_purges_are_front_door_only(make):
    with pytest.raises(InvalidTarget, match="cannot purge by host"):
        make("azure_cdn").normalise("host", "www.example.com")
    frontdoor = make("azure_frontdoor")
    assert frontdoor.normalise("host", "WWW.Example.com.") == "www.example.com"
    with pytest.raises(InvalidTarget, match="wildcard domains"):
        frontdoor.normalise("host", "*.example.com")
    with pytest.raises(InvalidTarget, match="not a hostname"):
        frontdoor.normalise("host", "www.example.com:8443")


# ---- errors -------------------------------------------------------------------------

def test_throttling_is_retryable_with_retry_after_and_not_retried_by_the_sdk(arm, make):
    arm.fail_next(429, retry_after=7)
    provider = make("azure_cdn")

    with pytest.raises(RetryableError) as caught:
        provider.purge(Batch("url", ("/a.js",), "job-1:1"))

    assert caught.value.retry_after == 7
    assert "TooManyRequests" in caught.value.message
    assert len(arm.purge_posts()) == 1
    provider.purge(Batch("url", ("/a.js",), "job-1:1"))
    assert len(arm.purges) == 1


def test_server_errors_are_retryable_and_sent_once(arm, make):
    arm.fail_next(500)
    provider = make("azure_frontdoor")

    with pytest.raises(RetryableError) as caught:
        provider.purge(Batch("url", ("/a.js",), "job-1:1"))

    assert caught.value.retry_after is None
    assert "HTTP 500: InternalServerError" in caught.value.message
    assert len(arm.requests) == 1


def test_errors_while_looking_at_an_operation_are_mapped_too(arm, make):
    provider = make("azure_cdn")
    accepted = provider.purge(Batch("url", ("/a.js",), "job-1:1"))
    arm.fail_next(429, retry_after=3)

    with pytest.raises(RetryableError) as caught:
        provider.completion(accepted.provider_ref)

    assert caught.value.retry_after == 3
    assert provider.completion(accepted.provider_ref).state == "in_progress"
    assert len(arm.purge_posts()) == 1


def test_a_refused_token_is_an_auth_error_that_does_not_show_the_token(arm, make, monkeypatch, caplog):
    provider = make("azure_cdn")
    monkeypatch.setenv("AZURE_ARM_TOKEN", "expired-token-abcdef")

    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError) as caught:
        provider.purge(Batch("url", ("/a.js",), "job-1:1"))

    assert "HTTP 401: InvalidAuthenticationToken" in caught.value.message
    assert "expired-token-abcdef" not in caught.value.message
    assert "'Authorization': 'REDACTED'" in caplog.text  # the SDK did log the request's headers
    assert "expired-token-abcdef" not in caplog.text
    assert arm.purges == []


def test_token_is_resolved_only_when_the_client_is_built(arm, make, monkeypatch):
    monkeypatch.delenv("AZURE_ARM_TOKEN")
    provider = make("azure_cdn")
    assert provider.limits().batch_size["url"] == 100
    assert provider.normalise("url", "/a.js") == "/a.js"

    with pytest.raises(ConfigError, match="AZURE_ARM_TOKEN is not set"):
        provider.purge(Batch("url", ("/a.js",), "job-1:1"))
    assert arm.requests == []


@pytest.mark.parametrize("overrides, code", [
    ({"endpoint": "missing"}, "ResourceNotFound"),
    ({"profile": "other-profile"}, "ResourceNotFound"),
    ({"resource_group": "rg-missing"}, "ResourceGroupNotFound"),
])
def test_unknown_resources_are_provider_errors_with_azure_code(arm, make, overrides, code):
    provider = make("azure_cdn", **overrides)

    with pytest.raises(ProviderError) as caught:
        provider.purge(Batch("url", ("/a.js",), "job-1:1"))

    assert not isinstance(caught.value, (RetryableError, AuthError))
    assert f"HTTP 404: {code}:" in caught.value.message
    with pytest.raises(ProviderError, match=code):
        provider.test()


def test_nothing_listening_is_retryable(make):
    provider = make("azure_cdn", endpoint_url=f"http://127.0.0.1:{closed_port()}")

    with pytest.raises(RetryableError, match="ServiceRequestError"):
        provider.purge(Batch("url", ("/a.js",), "job-1:1"))


def test_a_silent_server_times_out_as_retryable(fleet, make):
    port = fleet.add("blackhole")
    provider = make("azure_cdn", endpoint_url=f"http://127.0.0.1:{port}", timeout=0.5)

    started = time.monotonic()
    with pytest.raises(RetryableError):
        provider.purge(Batch("url", ("/a.js",), "job-1:1"))
    assert time.monotonic() - started < 3


# ---- test(), settings, limits ---------------------------------------------------------

def test_test_reads_the_endpoint_and_changes_nothing(arm, make):
    assert make("azure_cdn").test() == "endpoint assets found (provisioningState Succeeded, assets.azureedge.net)"
    assert make("azure_frontdoor").test() == ("endpoint web found "
                                              "(provisioningState Succeeded, web-abc123.z01.azurefd.net)")
    assert {r.method for r in arm.requests} == {"GET"}
    assert arm.purges == []


def test_check_settings():
    cdn = provider_class("azure_cdn")
    frontdoor = provider_class("azure_frontdoor")
    good = {"kind": "azure_cdn", "subscription_id": SUB, "resource_group": "rg", "profile": "p", "endpoint": "e"}

    assert cdn.check_settings(good) == []
    assert cdn.check_settings({**good, "endpoint_url": "http://127.0.0.1:8080",
                               "access_token": "env:AZURE_ARM_TOKEN"}) == []
    assert frontdoor.check_settings({**good, "domains": ["www.example.com"]}) == []

    def problems(kind, **changes):
        settings = {**good, **changes}
        return " | ".join(kind.check_settings({k: v for k, v in settings.items() if v is not None}))

    assert "endpoint: required" in problems(cdn, endpoint=None)
    assert "subscription_id: must be a subscription GUID" in problems(cdn, subscription_id="my-sub")
    assert "endpoint_url: plain http is allowed only for a loopback" in problems(
        cdn, endpoint_url="http://management.example.com")
    assert "give the ARM base URL alone" in problems(cdn, endpoint_url="https://management.azure.com/x")
    assert "access_token: must be a reference" in problems(cdn, access_token="eyJ0eXAiOiJKV1Qi")
    assert "domains: unknown setting 'domains' (did you mean 'hosts'?)" in problems(cdn, domains=["www.example.com"])
    assert "domains: must be a list" in problems(frontdoor, domains="www.example.com")
    assert "domains: *.example.com: wildcard domains" in problems(frontdoor, domains=["*.example.com"])
    assert "profile: must be a resource name" in problems(cdn, profile="a/b")


def test_describe_states_capabilities_and_limits(make):
    cdn = make("azure_cdn").describe()
    frontdoor = make("azure_frontdoor", max_in_flight=2).describe()

    assert cdn["capabilities"] == frontdoor["capabilities"] == ["purge", "analytics"]
    assert cdn["purge_kinds"] == ["url", "prefix", "everything"]
    assert frontdoor["purge_kinds"] == ["url", "prefix", "host", "everything"]
    assert cdn["async_completion"] is True
    assert cdn["limits"]["batch_size"] == {"everything": 1, "prefix": 100, "url": 100}
    assert frontdoor["limits"]["batch_size"]["host"] == 100
    assert cdn["limits"]["buckets"]["purge_requests"] == {"rate_per_s": 50 / 600, "burst": 50, "unit": "request"}
    assert frontdoor["limits"]["max_in_flight"] == 2
