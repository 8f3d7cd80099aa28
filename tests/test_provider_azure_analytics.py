"""The azure_cdn and azure_frontdoor kinds' analytics: Azure Monitor metrics from the fake ARM on loopback."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import pytest

from edgectl.providers.analytics import PullWindow
from edgectl.providers.base import AuthError, ProviderError, RateLimited, RetryableError
from tests.fakes.azure_metrics import Traffic
from tests.test_provider_azure import SUB, TOKEN, arm, make  # noqa: F401

MINUTE = 60_000
HOUR = 60 * MINUTE
FRONTDOOR_HOST = "web-abc123.z01.azurefd.net"
CDN_HOST = "assets.azureedge.net"


def minute(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


@pytest.fixture
def start() -> int:
    return int(time.time() * 1000) // HOUR * HOUR - 2 * HOUR


def rows(points) -> list[tuple]:
    return sorted((p.metric, p.at_ms, p.country, p.value, p.kind, dict(p.labels)) for p in points)


def metric_requests(arm) -> list:
    return [r for r in arm.requests if r.path.lower().endswith("/providers/microsoft.insights/metrics")]


def test_frontdoor_minutes_become_counts_by_country_and_gauges(arm, make, start):
    arm.traffic += [
        Traffic("afd-profile", FRONTDOOR_HOST, minute(start), "Germany", requests_2xx=90, requests_4xx=8,
                requests_5xx=2, response_bytes=10_000, cached_bytes=7_500, latency_ms=100 * 40.0,
                origin_requests=10, origin_latency_ms=10 * 120.0),
        Traffic("afd-profile", FRONTDOOR_HOST, minute(start), "United States", requests_2xx=50,
                response_bytes=5_000, latency_ms=50 * 22.0),
        Traffic("afd-profile", FRONTDOOR_HOST, minute(start + MINUTE), "Germany", requests_2xx=20, requests_4xx=5,
                response_bytes=2_000, cached_bytes=2_000, latency_ms=25 * 10.0, origin_requests=4,
                origin_latency_ms=4 * 50.0),
        # another endpoint of the same profile, and the minute after the window: neither is read
        Traffic("afd-profile", "other-xyz.z01.azurefd.net", minute(start), "Germany", requests_2xx=1_000),
        Traffic("afd-profile", FRONTDOOR_HOST, minute(start + 2 * MINUTE), "Germany", requests_2xx=7),
    ]
    provider = make("azure_frontdoor")

    points = list(provider.pull(PullWindow(start, start + 2 * MINUTE)))

    avg = {"stat": "avg"}
    nxt = start + MINUTE
    assert rows(points) == sorted([
        ("requests", start, "DE", 100.0, "value", {}), ("requests", start, "US", 50.0, "value", {}),
        ("requests", nxt, "DE", 25.0, "value", {}),
        ("bytes", start, "DE", 10_000.0, "value", {}), ("bytes", start, "US", 5_000.0, "value", {}),
        ("bytes", nxt, "DE", 2_000.0, "value", {}),
        ("errors.4xx", start, "DE", 8.0, "value", {}), ("errors.4xx", start, "US", 0.0, "value", {}),
        ("errors.4xx", nxt, "DE", 5.0, "value", {}),
        ("errors.5xx", start, "DE", 2.0, "value", {}), ("errors.5xx", start, "US", 0.0, "value", {}),
        ("errors.5xx", nxt, "DE", 0.0, "value", {}),
        ("latency", start, "DE", 40.0, "gauge", avg), ("latency", start, "US", 22.0, "gauge", avg),
        ("latency", nxt, "DE", 10.0, "gauge", avg),
        ("cache.byte_hit_ratio", start, "", 50.0, "gauge", avg), ("cache.byte_hit_ratio", nxt, "", 100.0, "gauge", avg),
        ("origin.latency", start, "", 120.0, "gauge", avg), ("origin.latency", nxt, "", 50.0, "gauge", avg),
    ])
    assert {p.step_ms for p in points} == {MINUTE}

    by_country, whole = (r.query for r in metric_requests(arm))
    assert by_country["metricnames"] == ["RequestCount,ResponseSize,Percentage4XX,Percentage5XX,TotalLatency"]
    assert by_country["$filter"] == [f"Endpoint eq '{FRONTDOOR_HOST}' and ClientCountry eq '*'"]
    assert (by_country["interval"], by_country["aggregation"]) == (["PT1M"], ["Total,Average"])
    assert by_country["metricnamespace"] == ["Microsoft.Cdn/profiles"]
    assert whole["metricnames"] == ["ByteHitRatio,OriginLatency"]
    assert whole["$filter"] == [f"Endpoint eq '{FRONTDOOR_HOST}'"]


def test_azure_cdn_reads_no_origin_latency(arm, make, start):
    arm.traffic.append(Traffic("cdn-profile", CDN_HOST, minute(start), "France", requests_2xx=4, response_bytes=400,
                               cached_bytes=100, latency_ms=4 * 5.0, origin_requests=1, origin_latency_ms=80.0))

    points = list(make("azure_cdn").pull(PullWindow(start, start + MINUTE)))

    assert {p.metric for p in points} == {"requests", "bytes", "errors.4xx", "errors.5xx", "latency",
                                          "cache.byte_hit_ratio"}
    assert [(p.country, p.value) for p in points if p.metric == "requests"] == [("FR", 4.0)]
    assert metric_requests(arm)[1].query["metricnames"] == ["ByteHitRatio"]


def test_countries_that_name_no_iso_country_add_up_without_one(arm, make, start):
    arm.traffic += [Traffic("afd-profile", FRONTDOOR_HOST, minute(start), "Unknown", requests_2xx=30, requests_5xx=10,
                            response_bytes=300, latency_ms=40 * 10.0),
                    Traffic("afd-profile", FRONTDOOR_HOST, minute(start), "Atlantis", requests_2xx=10,
                            response_bytes=100, latency_ms=10 * 60.0),
                    Traffic("afd-profile", FRONTDOOR_HOST, minute(start), "Türkiye", requests_2xx=1)]

    points = [p for p in make("azure_frontdoor").pull(PullWindow(start, start + MINUTE)) if p.country in ("", "TR")]

    assert rows(p for p in points if p.metric in ("requests", "errors.5xx", "latency")) == sorted([
        ("requests", start, "", 50.0, "value", {}), ("requests", start, "TR", 1.0, "value", {}),
        ("errors.5xx", start, "", 10.0, "value", {}), ("errors.5xx", start, "TR", 0.0, "value", {}),
        # (40 x 10 + 10 x 60) / 50 requests
        ("latency", start, "", 20.0, "gauge", {"stat": "avg"}), ("latency", start, "TR", 0.0, "gauge", {"stat": "avg"}),
    ])


def test_a_long_window_is_read_six_hours_a_request_and_twice_gives_the_same(arm, make, start):
    arm.traffic += [Traffic("afd-profile", FRONTDOOR_HOST, minute(start - 12 * HOUR + i * HOUR), "Japan",
                            requests_2xx=i + 1) for i in range(13)]
    provider = make("azure_frontdoor")
    window = PullWindow(start - 12 * HOUR, start + MINUTE)

    first = rows(provider.pull(window))

    assert [p[3] for p in first if p[0] == "requests"] == [float(i + 1) for i in range(13)]
    assert len(metric_requests(arm)) == 3 * 2
    assert rows(provider.pull(window)) == first
    assert len([r for r in arm.requests if "/afdEndpoints/" in r.path]) == 1  # the endpoint's host is read once


def test_nothing_is_pulled_for_a_quiet_window(arm, make, start):
    assert list(make("azure_frontdoor").pull(PullWindow(start, start + HOUR))) == []


# -- errors ---------------------------------------------------------------------------------------
def test_throttling_is_rate_limited_with_retry_after(arm, make, start):
    provider = make("azure_frontdoor")
    list(provider.pull(PullWindow(start, start)))  # an empty window: only the endpoint's host is read
    arm.fail_next(429, retry_after=7)

    with pytest.raises(RateLimited) as caught:
        list(provider.pull(PullWindow(start, start + MINUTE)))

    assert caught.value.retry_after == 7
    assert "HTTP 429: TooManyRequests" in caught.value.message
    assert len(metric_requests(arm)) == 1  # the SDK did not retry behind edgectl's back


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retryable(arm, make, start, status):
    provider = make("azure_cdn")
    list(provider.pull(PullWindow(start, start)))
    arm.fail_next(status)

    with pytest.raises(RetryableError) as caught:
        list(provider.pull(PullWindow(start, start + MINUTE)))
    assert not isinstance(caught.value, RateLimited)


def test_a_refused_token_is_an_auth_error_and_never_logged(arm, make, start, monkeypatch, caplog):
    provider = make("azure_frontdoor")
    monkeypatch.setenv("AZURE_ARM_TOKEN", "expired-token-abcdef")

    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError, match="HTTP 401: InvalidAuthenticationToken"):
        list(provider.pull(PullWindow(start, start + MINUTE)))
    assert "expired-token-abcdef" not in caplog.text


def test_the_token_stays_out_of_debug_logs_of_a_pull(arm, make, start, caplog):
    arm.traffic.append(Traffic("afd-profile", FRONTDOOR_HOST, minute(start), "Germany", requests_2xx=1))
    with caplog.at_level(logging.DEBUG):
        points = list(make("azure_frontdoor").pull(PullWindow(start, start + MINUTE)))
    assert points and "Microsoft.Insights/metrics" in caplog.text
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("overrides, code", [({"resource_group": "rg-missing"}, "ResourceGroupNotFound"),
                                             ({"endpoint": "missing"}, "ResourceNotFound")])
def test_an_unknown_resource_is_a_provider_error(arm, make, start, overrides, code):
    with pytest.raises(ProviderError, match=f"HTTP 404: {code}") as caught:
        list(make("azure_frontdoor", **overrides).pull(PullWindow(start, start + MINUTE)))
    assert not isinstance(caught.value, (RetryableError, AuthError))


def test_the_metrics_of_a_profile_the_fake_does_not_know_are_not_found(arm, make):
    from azure.core.exceptions import ResourceNotFoundError

    client = make("azure_frontdoor")._monitor_client()
    with pytest.raises(ResourceNotFoundError):
        client.metrics.list(RESOURCE.replace("afd-profile", "gone"), metricnames="RequestCount")


# -- what the fake refuses, through the SDK -----------------------------------------------------
RESOURCE = f"subscriptions/{SUB}/resourceGroups/rg-edge/providers/Microsoft.Cdn/profiles/afd-profile"


@pytest.mark.parametrize("change, message", [
    ({"metricnames": "RequestCount,Nope"}, "Failed to find metric configuration for provider: Microsoft.Cdn, "
                                           "resource Type: profiles, metric: Nope, Valid metrics: RequestCount,"),
    ({"interval": "PT2M"}, "Invalid time grain 'PT2M'"),
    ({"timespan": "2026-01-02T00:00:00Z/2026-01-01T00:00:00Z"}, "the start time must be before the end time"),
    ({"timespan": "yesterday"}, "Invalid timespan"),
    ({"aggregation": "Total,Median"}, "Invalid aggregation 'median'"),
    ({"metricnames": "ByteHitRatio", "filter": "ClientCountry eq '*'"},
     "Metric: ByteHitRatio does not support requested dimension combination: ClientCountry"),
    ({"filter": "ClientCountry = 'DE'"}, "Invalid $filter"),
    ({"metricnamespace": "Microsoft.Network/frontdoors"}, "Metric namespace"),
    ({"metricnames": ",".join(["RequestCount"] * 21)}, "At most 20 metric names"),
])
def test_the_fake_refuses_what_metrics_list_refuses(arm, make, change, message):
    from azure.core.exceptions import HttpResponseError

    client = make("azure_frontdoor")._monitor_client()
    params = {"timespan": "2026-01-01T00:00:00Z/2026-01-01T01:00:00Z", "interval": "PT1M",
              "metricnames": "RequestCount", "aggregation": "Total", "metricnamespace": "Microsoft.Cdn/profiles",
              **change}

    with pytest.raises(HttpResponseError) as caught:
        client.metrics.list(RESOURCE, **params)

    assert caught.value.status_code == 400
    assert caught.value.error.code == "BadRequest"
    assert message in caught.value.error.message


def test_the_fake_refuses_an_api_version_the_metrics_api_does_not_have(arm, make):
    from azure.core.exceptions import HttpResponseError

    client = make("azure_frontdoor")._monitor_client()
    with pytest.raises(HttpResponseError) as caught:
        client.metrics.list(RESOURCE, metricnames="RequestCount", api_version="2099-01-01")
    assert (caught.value.status_code, caught.value.error.code) == (400, "NoRegisteredProviderFound")


def test_the_fake_answers_the_documented_shape_and_top_ten_by_default(arm, make, start):
    arm.traffic += [Traffic("afd-profile", FRONTDOOR_HOST, minute(start), country, requests_2xx=1)
                    for country in ("Austria", "Belgium", "Chile", "Denmark", "Egypt", "Finland", "Ghana", "Hungary",
                                    "India", "Japan", "Kenya")]
    client = make("azure_frontdoor")._monitor_client()
    span = f"{minute(start):%Y-%m-%dT%H:%M:%SZ}/{minute(start + 2 * MINUTE):%Y-%m-%dT%H:%M:%SZ}"

    answer = client.metrics.list(RESOURCE, timespan=span, interval="PT1M", metricnames="RequestCount",
                                 aggregation="Total", filter="ClientCountry eq '*'")

    [metric] = answer.value
    assert (metric.name.value, metric.unit, metric.error_code, answer.interval) == ("RequestCount", "Count", "Success",
                                                                                   "PT1M")
    assert len(metric.timeseries) == 10
    first = metric.timeseries[0]
    assert [(m.name.value, m.value) for m in first.metadatavalues] == [("clientcountry", "Austria")]
    assert [(p.time_stamp, p.total) for p in first.data] == [(minute(start), 1.0), (minute(start + MINUTE), 0.0)]


# -- settings and description -------------------------------------------------------------------
def test_oldest_is_93_days_and_analytics_is_declared(make):
    provider = make("azure_frontdoor")
    now = int(time.time() * 1000)
    assert now - 93 * 24 * HOUR < provider.oldest_ms(now) <= now - 93 * 24 * HOUR + 2 * HOUR
    described = provider.describe()
    assert described["capabilities"] == ["purge", "analytics"]
    assert described["analytics"] == {"step_s": 60, "settle_s": 300}
