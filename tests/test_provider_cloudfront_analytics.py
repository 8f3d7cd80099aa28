"""The cloudfront kind's analytics: CloudWatch's AWS/CloudFront metrics pulled from moto on loopback."""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timezone

import pytest

from edgectl.providers import aws
from edgectl.providers.analytics import Point, PullWindow
from edgectl.providers.base import AuthError, ProviderContext, RateLimited, RetryableError
from edgectl.providers.registry import provider_class
from tests.fakes.moto_server import TEST_KEYS

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
_DISTRIBUTIONS = itertools.count(1)


@pytest.fixture(scope="module")
def cloudwatch(moto):
    """A boto3 client of our own, putting the data points CloudFront would publish."""
    import boto3

    return boto3.client("cloudwatch", endpoint_url=moto.url, **TEST_KEYS)


@pytest.fixture
def proxy(cloudwatch_faults):
    return cloudwatch_faults


@pytest.fixture
def distribution() -> str:
    """A distribution id of the test's own: its series hold no other test's points."""
    return f"EANALYTICS{next(_DISTRIBUTIONS)}"


@pytest.fixture
def make(aws_env, distribution):
    made = []

    def build(endpoint_url: str, **settings):
        cls = provider_class("cloudfront")
        merged = {"kind": "cloudfront", "distribution_id": distribution, "endpoint_url": endpoint_url, **settings}
        assert cls.check_settings(merged) == []
        provider = cls("cdn", merged, ProviderContext(resolve_secret=lambda key, ref: ref, timeout=5))
        made.append(provider)
        return provider

    yield build
    for provider in made:
        provider.close()


def whole_minute_ago(minutes: int) -> int:
    return (int(time.time() * 1000) // HOUR * HOUR) - minutes * MINUTE


def put(cloudwatch, distribution: str, metric: str, at_ms: int, *values: float, region: str = "us-east-1") -> None:
    dimensions = [{"Name": "DistributionId", "Value": distribution}, {"Name": "Region", "Value": "Global"}]
    datum = {"MetricName": metric, "Dimensions": dimensions, "Timestamp": datetime.fromtimestamp(at_ms / 1000, timezone.utc)}
    datum.update({"Value": values[0]} if len(values) == 1 else {"Values": list(values)})
    client = cloudwatch if region == "us-east-1" else _client_in(cloudwatch, region)
    client.put_metric_data(Namespace="AWS/CloudFront", MetricData=[datum])


def _client_in(cloudwatch, region: str):
    import boto3

    return boto3.client("cloudwatch", endpoint_url=cloudwatch.meta.endpoint_url,
                        **{**TEST_KEYS, "region_name": region})


def publish(cloudwatch, distribution: str, at_ms: int, requests: float, downloaded: float, rate_4xx: float,
            rate_5xx: float, hit_rate: float | None = None, latency: float | None = None) -> None:
    """One minute's figures, as CloudFront publishes them."""
    for metric, value in (("Requests", requests), ("BytesDownloaded", downloaded), ("4xxErrorRate", rate_4xx),
                          ("5xxErrorRate", rate_5xx), ("TotalErrorRate", rate_4xx + rate_5xx),
                          ("CacheHitRate", hit_rate), ("OriginLatency", latency)):
        if value is not None:
            put(cloudwatch, distribution, metric, at_ms, value)


def rows(points) -> list[tuple]:
    return sorted((p.metric, p.at_ms, p.value, p.kind, p.step_ms, dict(p.labels)) for p in points)


# -- what is pulled -------------------------------------------------------------------------------
def test_each_minute_becomes_counts_and_an_origin_latency_gauge(cloudwatch, moto, make, distribution):
    start = whole_minute_ago(60)
    publish(cloudwatch, distribution, start, 150, 51_200, 2.0, 0.5, 80.0, 31.5)
    # two data points in one minute tell the statistics apart: Requests is a Sum, the rates Averages
    put(cloudwatch, distribution, "Requests", start, 50.0)
    put(cloudwatch, distribution, "4xxErrorRate", start, 3.0)
    publish(cloudwatch, distribution, start + MINUTE, 40, 9_000, 10.0, 0.0, 25.0, 120.0)
    provider = make(moto.url, origin_latency_stats=["avg"])

    points = list(provider.pull(PullWindow(start, start + 5 * MINUTE)))

    avg = {"stat": "avg"}
    assert rows(points) == sorted([
        ("requests", start, 200.0, "value", MINUTE, {}), ("requests", start + MINUTE, 40.0, "value", MINUTE, {}),
        ("bytes", start, 51_200.0, "value", MINUTE, {}), ("bytes", start + MINUTE, 9_000.0, "value", MINUTE, {}),
        ("errors.4xx", start, 5.0, "value", MINUTE, {}), ("errors.4xx", start + MINUTE, 4.0, "value", MINUTE, {}),
        ("errors.5xx", start, 1.0, "value", MINUTE, {}), ("errors.5xx", start + MINUTE, 0.0, "value", MINUTE, {}),
        ("cache.hits", start, 160.0, "value", MINUTE, {}), ("cache.hits", start + MINUTE, 10.0, "value", MINUTE, {}),
        ("origin.latency", start, 31.5, "gauge", MINUTE, avg),
        ("origin.latency", start + MINUTE, 120.0, "gauge", MINUTE, avg),
    ])
    assert all(isinstance(p, Point) and p.unit is None and not p.country for p in points)


def test_only_the_window_is_read_and_a_rate_without_requests_counts_nothing(cloudwatch, moto, make, distribution):
    start = whole_minute_ago(30)
    publish(cloudwatch, distribution, start - MINUTE, 7, 700, 0, 0)  # before the window
    publish(cloudwatch, distribution, start, 10, 1_000, 20.0, 10.0)
    put(cloudwatch, distribution, "5xxErrorRate", start + MINUTE, 50.0)  # no Requests that minute
    publish(cloudwatch, distribution, start + 2 * MINUTE, 9, 900, 0, 0)  # the window's end: not in it

    points = list(make(moto.url, origin_latency_stats=[]).pull(PullWindow(start, start + 2 * MINUTE)))

    assert rows(points) == sorted([("requests", start, 10.0, "value", MINUTE, {}),
                                   ("bytes", start, 1_000.0, "value", MINUTE, {}),
                                   ("errors.4xx", start, 2.0, "value", MINUTE, {}),
                                   ("errors.5xx", start, 1.0, "value", MINUTE, {})])


def test_without_additional_metrics_there_are_no_hits_or_latency(cloudwatch, moto, make, distribution):
    start = whole_minute_ago(20)
    publish(cloudwatch, distribution, start, 30, 3_000, 0.0, 0.0)

    metrics = {p.metric for p in make(moto.url).pull(PullWindow(start, start + MINUTE))}

    assert metrics == {"requests", "bytes", "errors.4xx", "errors.5xx"}


def test_pulling_twice_gives_the_same_points(cloudwatch, moto, make, distribution):
    start = whole_minute_ago(40)
    for minute in range(3):
        publish(cloudwatch, distribution, start + minute * MINUTE, 10 + minute, 100, 10.0, 0.0, 50.0, 12.0)
    provider = make(moto.url, origin_latency_stats=["avg"])

    first = rows(provider.pull(PullWindow(start, start + 3 * MINUTE)))

    assert first == rows(provider.pull(PullWindow(start, start + 3 * MINUTE)))
    assert len(first) == 3 * 6


def test_metrics_are_read_in_us_east_1_whatever_the_region_setting(cloudwatch, moto, make, distribution):
    start = whole_minute_ago(10)
    put(cloudwatch, distribution, "Requests", start, 5.0)
    put(cloudwatch, distribution, "Requests", start, 1_000.0, region="eu-west-1")

    points = list(make(moto.url, region="eu-west-1").pull(PullWindow(start, start + MINUTE)))

    assert [(p.metric, p.value) for p in points] == [("requests", 5.0)]


def test_origin_latency_percentiles_are_gauges_by_statistic(cloudwatch, proxy, make, distribution):
    start = whole_minute_ago(50)
    put(proxy_client(proxy), distribution, "Requests", start, 100.0)
    put(proxy_client(proxy), distribution, "OriginLatency", start, *[float(v) for v in range(1, 101)])

    points = [p for p in make(proxy.url).pull(PullWindow(start, start + MINUTE)) if p.metric == "origin.latency"]

    # the default statistics: p50, p95 and p99, nearest rank over the minute's 100 values
    assert [(p.labels["stat"], p.value, p.kind) for p in points] == [("p50", 50.0, "gauge"), ("p95", 95.0, "gauge"),
                                                                    ("p99", 99.0, "gauge")]


def proxy_client(proxy):
    import boto3

    return boto3.client("cloudwatch", endpoint_url=proxy.url, **TEST_KEYS)


def test_pages_are_followed_to_the_last_next_token(cloudwatch, proxy, make, distribution, monkeypatch):
    start = whole_minute_ago(90)
    for minute in range(10):
        publish(cloudwatch, distribution, start + minute * MINUTE, 100 + minute, 1_000, 1.0, 1.0)
    provider = make(proxy.url, origin_latency_stats=[])
    whole = rows(provider.pull(PullWindow(start, start + 10 * MINUTE)))
    assert len(proxy.calls(operation="GetMetricData")) == 1

    proxy.reset()
    proxy.page_size = 7
    paged = rows(provider.pull(PullWindow(start, start + 10 * MINUTE)))

    assert paged == whole
    assert len(whole) == 40
    # 5 queries x 10 minutes, less the empty CacheHitRate: 40 points in pages of 7
    assert len(proxy.calls(operation="GetMetricData")) == 6


# -- which period, by age -------------------------------------------------------------------------
def test_a_window_15_to_63_days_old_is_read_in_five_minutes(cloudwatch, moto, make, distribution):
    start = whole_minute_ago(20 * 24 * 60)
    for minute in range(10):
        publish(cloudwatch, distribution, start + minute * MINUTE, 10, 100, 10.0, 0.0)

    points = list(make(moto.url).pull(PullWindow(start + 2 * MINUTE, start + 12 * MINUTE)))

    # whole 5-minute intervals inside the window only: [start+5, start+10)
    assert rows(points) == sorted([("requests", start + 5 * MINUTE, 50.0, "value", 5 * MINUTE, {}),
                                   ("bytes", start + 5 * MINUTE, 500.0, "value", 5 * MINUTE, {}),
                                   ("errors.4xx", start + 5 * MINUTE, 5.0, "value", 5 * MINUTE, {}),
                                   ("errors.5xx", start + 5 * MINUTE, 0.0, "value", 5 * MINUTE, {})])


def test_a_window_older_than_63_days_is_read_by_the_hour(cloudwatch, moto, make, distribution):
    start = whole_minute_ago(100 * 24 * 60)
    for minute in (0, 59, 60):
        publish(cloudwatch, distribution, start + minute * MINUTE, 6, 60, 50.0, 0.0)

    points = list(make(moto.url, origin_latency_stats=[]).pull(PullWindow(start, start + 2 * HOUR)))

    assert [(p.metric, p.at_ms, p.value, p.step_ms) for p in points if p.metric in ("requests", "errors.4xx")] == [
        ("requests", start, 12.0, HOUR), ("requests", start + HOUR, 6.0, HOUR),
        ("errors.4xx", start, 6.0, HOUR), ("errors.4xx", start + HOUR, 3.0, HOUR)]


def test_nothing_older_than_455_days_is_asked_for(proxy, make):
    provider = make(proxy.url)
    now = int(time.time() * 1000)
    assert provider.oldest_ms(now) == aws.cloudwatch_oldest_ms(now)
    assert now - 455 * DAY < provider.oldest_ms(now) <= now - 455 * DAY + 2 * HOUR

    start = whole_minute_ago(460 * 24 * 60)
    assert list(provider.pull(PullWindow(start, start + DAY))) == []
    assert proxy.calls() == []


def test_segments_follow_the_retention_bands_and_the_points_per_call():
    now = 1_000 * DAY + 17 * MINUTE + 5_000
    start, end = now - 80 * DAY - 37 * MINUTE, now // MINUTE * MINUTE
    pieces = aws.cloudwatch_segments(start, end, now, queries=8)

    one_minute_from = -(-(now - 15 * DAY + HOUR) // HOUR) * HOUR
    five_minutes_from = -(-(now - 63 * DAY + HOUR) // HOUR) * HOUR
    assert [p for p in pieces if p[2] == 3600][0][0] == -(-start // HOUR) * HOUR
    assert [p for p in pieces if p[2] == 3600][-1][1] == five_minutes_from
    assert [p for p in pieces if p[2] == 300][0][0] == five_minutes_from
    assert [p for p in pieces if p[2] == 300][-1][1] == one_minute_from
    assert [p for p in pieces if p[2] == 60][0][0] == one_minute_from
    assert pieces[-1] == (pieces[-1][0], end, 60)
    # contiguous, and no call asks for more than 100,800 data points over its 8 queries
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
    assert all((stop - begin) // (period * 1000) * 8 <= 100_800 for begin, stop, period in pieces)
    assert len([p for p in pieces if p[2] == 60]) == 2  # 15 days of minutes need two calls


# -- faults ---------------------------------------------------------------------------------------
def test_throttling_is_rate_limited_after_one_attempt(proxy, make):
    proxy.inject("throttling", retry_after="4")
    start = whole_minute_ago(10)
    with pytest.raises(RateLimited, match="CloudWatch GetMetricData for .*: Throttling: Rate exceeded") as caught:
        list(make(proxy.url).pull(PullWindow(start, start + MINUTE)))
    assert caught.value.retry_after == 4.0
    assert len(proxy.calls(operation="GetMetricData")) == 1  # the SDK did not retry on its own


@pytest.mark.parametrize("kind, code", [("internal", "InternalServiceError"), ("unavailable", "ServiceUnavailable"),
                                        ("reset", "CloudWatch GetMetricData")])
def test_server_errors_and_resets_are_retryable(proxy, make, kind, code):
    proxy.inject(kind)
    start = whole_minute_ago(10)
    with pytest.raises(RetryableError, match=code) as caught:
        list(make(proxy.url).pull(PullWindow(start, start + MINUTE)))
    assert not isinstance(caught.value, RateLimited)
    assert len(proxy.calls(operation="GetMetricData")) == 1


def test_access_denied_is_an_auth_error(proxy, make):
    proxy.inject("denied")
    start = whole_minute_ago(10)
    with pytest.raises(AuthError, match="AccessDenied: User: .* cloudwatch:GetMetricData"):
        list(make(proxy.url).pull(PullWindow(start, start + MINUTE)))


def test_metrics_endpoint_url_sends_cloudwatch_calls_elsewhere(proxy, moto, make):
    start = whole_minute_ago(10)
    list(make(moto.url, metrics_endpoint_url=proxy.url).pull(PullWindow(start, start + MINUTE)))
    assert len(proxy.calls(operation="GetMetricData")) == 1


# -- settings and description -------------------------------------------------------------------
def test_check_settings_of_the_analytics_settings():
    cls = provider_class("cloudfront")
    good = {"kind": "cloudfront", "distribution_id": "E2QWRUHAPOMQZL"}
    assert cls.check_settings({**good, "origin_latency_stats": ["avg", "p90", "p99.9"],
                               "metrics_endpoint_url": "https://monitoring.us-east-1.amazonaws.com"}) == []
    problems = cls.check_settings({**good, "origin_latency_stats": ["median"], "metrics_endpoint_url": "nowhere"})
    assert [p.split(":")[0] for p in problems] == ["origin_latency_stats", "metrics_endpoint_url"]


def test_description_declares_analytics(make, moto):
    described = make(moto.url).describe()
    assert described["capabilities"] == ["purge", "analytics"]
    assert described["analytics"] == {"step_s": 60, "settle_s": 600}
    assert described["purge_kinds"] == ["url", "prefix", "everything"]
