"""`edgectl analytics pull --provider NAME` end to end for the cloudfront and Azure kinds, against moto and the fake ARM."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from edgectl.state import open_state
from tests.fakes.azure_arm import FakeArm
from tests.fakes.azure_metrics import Traffic
from tests.fakes.moto_server import TEST_KEYS
from tests.test_analytics_pull import samples, total

MINUTE = 60_000
SUB = "6f1c1d3e-0c55-4a0b-9a55-3e0d2b0c7a11"
SECRET_KEY = "moto-accepts-any-secret-0123456789"
TOKEN = "arm-token-for-pull-tests-0123456789"
HOST = "web-abc123.z01.azurefd.net"


def minutes_ago(n: int) -> int:
    return int(time.time() * 1000) // MINUTE * MINUTE - n * MINUTE


@pytest.fixture
def state(state_path):
    def read():
        opened = open_state(state_path)
        return opened

    return read


# -- CloudFront -----------------------------------------------------------------------------------
@pytest.fixture
def proxy(cloudwatch_faults):
    return cloudwatch_faults


@pytest.fixture
def front(isolated, proxy, monkeypatch) -> str:
    """A config with one cloudfront provider whose CloudWatch calls go through the proxy, and its distribution."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPULLTESTS")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    distribution = f"EPULL{time.monotonic_ns()}"
    path = isolated / "edgectl.toml"
    path.write_text(f'[providers.front]\nkind = "cloudfront"\ndistribution_id = "{distribution}"\n'
                    f'endpoint_url = "{proxy.url}"\norigin_latency_stats = ["p95"]\n')
    return distribution


def put(proxy, distribution: str, metric: str, at_ms: int, *values: float) -> None:
    import boto3

    client = boto3.client("cloudwatch", endpoint_url=proxy.url, **TEST_KEYS)
    datum = {"MetricName": metric, "Timestamp": datetime.fromtimestamp(at_ms / 1000, timezone.utc),
             "Dimensions": [{"Name": "DistributionId", "Value": distribution}, {"Name": "Region", "Value": "Global"}]}
    datum.update({"Value": values[0]} if len(values) == 1 else {"Values": list(values)})
    client.put_metric_data(Namespace="AWS/CloudFront", MetricData=[datum])


def test_cloudfront_pull_stores_counts_hit_ratio_and_percentiles_once(cli, proxy, front, state):
    first, second = minutes_ago(30), minutes_ago(29)
    for at, requests, hit_rate in ((first, 200.0, 90.0), (second, 100.0, 60.0)):
        put(proxy, front, "Requests", at, requests)
        put(proxy, front, "BytesDownloaded", at, requests * 1_000)
        put(proxy, front, "4xxErrorRate", at, 1.0)
        put(proxy, front, "5xxErrorRate", at, 3.0)
        put(proxy, front, "CacheHitRate", at, hit_rate)
    put(proxy, front, "OriginLatency", first, *[float(v) for v in range(1, 21)])

    run = cli("analytics", "pull", "--provider", "front", "--since", "1h", "-o", "json")

    assert run.exit_code == 0, run.stderr
    [row] = run.json()["providers"]
    assert (row["provider"], row["kind"], row["status"], row["stored"], row["present"]) == ("front", "cloudfront",
                                                                                           "ok", 11, 0)
    opened = state()
    assert total(opened, "requests", provider="front") == 300
    assert total(opened, "cache.hits", provider="front") == 180 + 60
    assert total(opened, "errors.4xx", provider="front") == 2 + 1
    assert total(opened, "errors.5xx", provider="front") == 6 + 3
    assert total(opened, "bytes", provider="front") == 300_000
    assert samples(opened, "origin.latency") == [("front", "", "", '{"source":"pull","stat":"p95"}', "gauge",
                                                  first, 19.0)]
    opened.close()
    cache = cli("analytics", "cache", "--by", "provider", "--since", "2h", "-o", "json")
    assert cache.exit_code == 0, cache.stderr
    [group] = [g for g in cache.json()["groups"] if g["provider"] == "front"]
    assert (group["requests"], group["hits"], group["hit_ratio"]) == (300, 240, 0.8)

    again = cli("analytics", "pull", "--provider", "front", "--since", "1h", "-o", "json")
    assert again.exit_code == 0, again.stderr
    assert (again.json()["providers"][0]["stored"], again.json()["providers"][0]["present"]) == (0, 11)


def test_cloudfront_throttling_is_sent_again_and_the_pull_succeeds(cli, proxy, front):
    put(proxy, front, "Requests", minutes_ago(20), 5.0)
    proxy.inject("throttling", retry_after="0.2")

    run = cli("analytics", "pull", "--provider", "front", "--since", "1h", "-o", "json")

    assert run.exit_code == 0, run.stderr
    [row] = run.json()["providers"]
    assert (row["stored"], row["retries"], row["requests"]) == (1, 1, 2)
    assert len(proxy.calls(operation="GetMetricData")) == 2


def test_cloudfront_without_additional_metrics_says_so(cli, proxy, front):
    put(proxy, front, "Requests", minutes_ago(20), 5.0)

    run = cli("analytics", "pull", "--provider", "front", "--since", "1h", "-o", "json")

    assert run.exit_code == 0, run.stderr
    assert "additional metrics" in " ".join(run.json()["providers"][0]["notes"])


def test_cloudfront_access_denied_fails_without_retrying_and_keeps_secrets_out_of_debug(cli, proxy, front):
    proxy.inject("denied")

    run = cli("--debug", "analytics", "pull", "--provider", "front", "--since", "1h", "-o", "json")

    assert run.exit_code == 1
    assert run.json()["providers"][0]["status"] == "failed"
    assert "AccessDenied" in run.json()["providers"][0]["error"]
    assert len(proxy.calls(operation="GetMetricData")) == 1
    assert SECRET_KEY not in run.stderr + run.stdout
    assert "GetMetricData" in run.stderr  # --debug did log the request


# -- Azure ----------------------------------------------------------------------------------------
@pytest.fixture
def arm(isolated, monkeypatch):
    server = FakeArm(token=TOKEN).start()
    server.add_endpoint(SUB, "rg-edge", "afd-profile", "web", kind="afd", host_name=HOST)
    monkeypatch.setenv("AZURE_ARM_TOKEN", TOKEN)
    (isolated / "edgectl.toml").write_text(
        f'[providers.afd]\nkind = "azure_frontdoor"\nsubscription_id = "{SUB}"\nresource_group = "rg-edge"\n'
        f'profile = "afd-profile"\nendpoint = "web"\nendpoint_url = "{server.url}"\n'
        'access_token = "env:AZURE_ARM_TOKEN"\n')
    yield server
    server.stop()


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def test_azure_pull_stores_requests_by_country_and_gauges_once(cli, arm, state):
    minute = minutes_ago(30)
    arm.traffic += [Traffic("afd-profile", HOST, at(minute), "Germany", requests_2xx=45, requests_5xx=5,
                            response_bytes=5_000, cached_bytes=4_000, latency_ms=50 * 30.0, origin_requests=5,
                            origin_latency_ms=5 * 200.0),
                    Traffic("afd-profile", HOST, at(minute), "Japan", requests_2xx=10, requests_4xx=10,
                            response_bytes=1_000, latency_ms=20 * 90.0)]

    run = cli("analytics", "pull", "--provider", "afd", "--since", "1h", "-o", "json")

    assert run.exit_code == 0, run.stderr
    [row] = run.json()["providers"]
    assert (row["kind"], row["status"], row["stored"]) == ("azure_frontdoor", "ok", 12)
    opened = state()
    assert [(r[2], r[-1]) for r in samples(opened, "requests", provider="afd")] == [("DE", 50.0), ("JP", 20.0)]
    assert total(opened, "errors.5xx", provider="afd") == 5
    assert total(opened, "errors.4xx", provider="afd") == 10
    assert sorted((r[2], r[-1]) for r in samples(opened, "latency", provider="afd")) == [("DE", 30.0), ("JP", 90.0)]
    assert [r[-1] for r in samples(opened, "cache.byte_hit_ratio")] == [100.0 * 4_000 / 6_000]
    assert [r[-1] for r in samples(opened, "origin.latency")] == [200.0]
    opened.close()

    again = cli("analytics", "pull", "--provider", "afd", "--since", "1h", "-o", "json")
    assert (again.json()["providers"][0]["stored"], again.json()["providers"][0]["present"]) == (0, 12)


def test_azure_throttling_waits_for_retry_after_and_the_token_stays_out_of_debug(cli, arm):
    arm.traffic.append(Traffic("afd-profile", HOST, at(minutes_ago(20)), "France", requests_2xx=3))
    arm.fail_next(429, retry_after=1)

    run = cli("--debug", "analytics", "pull", "--provider", "afd", "--since", "1h", "-o", "json")

    assert run.exit_code == 0, run.stderr
    [row] = run.json()["providers"]
    assert (row["stored"], row["retries"]) == (5, 1)
    assert TOKEN not in run.stderr + run.stdout


def test_azure_refused_token_fails_the_provider(cli, arm, monkeypatch):
    monkeypatch.setenv("AZURE_ARM_TOKEN", "not-the-token-0123456789")

    run = cli("analytics", "pull", "--provider", "afd", "--since", "1h", "-o", "json")

    assert run.exit_code == 1
    assert "HTTP 401: InvalidAuthenticationToken" in run.json()["providers"][0]["error"]
    assert "not-the-token-0123456789" not in run.stdout + run.stderr
