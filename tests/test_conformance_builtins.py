"""The built-in provider kinds pass the conformance suite, against the fakes and the sandbox edgectl's own tests use."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import pytest

from edgectl.testing import FaultProxy, Seen
from edgectl.testing.conformance import AnalyticsConformance, PurgeConformance
from tests.fakes.azure_arm import FakeArm
from tests.fakes.azure_metrics import Traffic
from tests.fakes.cloudflare_api import DEFAULT_ZONES, FakeCloudflare
from tests.fakes.cloudflare_graphql import CACHED, FakeCloudflareGraphQL
from tests.fakes.cloudfront_faults import CloudFrontFaults
from tests.fakes.cloudwatch_faults import CloudWatchFaults
from tests.fakes.moto_server import DISTRIBUTION_CONFIG, TEST_KEYS
from tests.fakes.sandbox_fleet import running_fleet

SANDBOX_HOST = "www.sandbox.test"
TOKEN_VAR = "SANDBOX_NODE_TOKEN"


# ==== http: a sandbox edge node behind a fault proxy ======================================================

@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with running_fleet(tmp_path_factory.mktemp("conformance-sandbox"), nodes=1, regions=("us-east",), pages=20) as box:
        yield box


class SandboxNode:
    """The http kind's world: one sandbox node, reached through a FaultProxy registered as a node."""

    @pytest.fixture
    def api(self, sandbox):
        self.box = sandbox
        with FaultProxy(sandbox.nodes[0].url) as proxy:
            yield proxy

    @property
    def secrets(self):
        return {TOKEN_VAR: self.box.token()}

    def settings(self, api) -> dict:
        return {"kind": "http", "nodes": "label:conformance=true", "hosts": [SANDBOX_HOST], "token": f"env:{TOKEN_VAR}"}

    def setup(self, api) -> None:
        added = self.edgectl("nodes", "add", "conformance-1", "--endpoint", api.url, "-l", "conformance=true")
        assert added.exit_code == 0, added.explain()


def _sandbox_purge(seen: Seen) -> tuple[str, tuple[str, ...]] | None:
    """What a request to the node purges, named as the targets name it; None when it purges nothing."""
    if seen.method == "PURGE":
        return "url", (f"https://{SANDBOX_HOST}{seen.target}",)
    if seen.method != "POST" or seen.path != "/.edge/purge":
        return None
    body = seen.json()
    if not isinstance(body, dict):
        return None
    if body.get("all") is True:
        return "everything", ("*",)
    for key, kind in (("urls", "url"), ("prefixes", "prefix"), ("tags", "tag")):
        if body.get(key):
            items = body[key] if kind != "prefix" else [f"https://{SANDBOX_HOST}{p}" for p in body[key]]
            return kind, tuple(items)
    return None


class TestHttpPurgeConformance(SandboxNode, PurgeConformance):
    kind = "http"

    def purges(self, api):
        applied = []
        for seen in api.requests:
            purge = _sandbox_purge(seen)
            # a dropped answer was forwarded, so the node purged; 404 to a PURGE is "nothing cached there"
            ok = seen.fault == "drop" or (seen.status is not None and (seen.status < 300 or (
                seen.method == "PURGE" and seen.status == 404)))
            if purge and ok and seen.reached:
                applied.append(purge)
        return applied

    def is_purge_request(self, seen: Seen) -> bool:
        return _sandbox_purge(seen) is not None

    def pacing_settings(self, api) -> dict:
        return {"batch_size": 1, "rate": 20}


class TestHttpAnalyticsConformance(SandboxNode, AnalyticsConformance):
    kind = "http"
    running_totals = True  # /.edge/stats: running totals since the node started
    wrong_secrets = {}  # the sandbox serves /.edge/stats to anyone: a refusal is injected instead

    def seed(self, api, start: datetime, end: datetime) -> dict[str, float]:
        from edgectl.sandbox import fleet

        seen = {"requests": 0, "cache.hits": 0, "bytes": 0, "errors.4xx": 0}
        node = self.box.nodes[0].name
        for path in ("/", "/static/css/site-0000.css", "/", "/no-such-page", "/"):
            answer = fleet.fetch(self.box, node, path)
            seen["requests"] += 1
            seen["cache.hits"] += answer["x_cache"] == "HIT"
            seen["bytes"] += answer["bytes"]
            seen["errors.4xx"] += 400 <= answer["status"] < 500
        return seen


# ==== cloudflare: the v4 API fake for purges, its GraphQL Analytics API fake for analytics ====================

CF_ZONE = DEFAULT_ZONES["example.com"]
CF_TOKEN_VAR = "CF_CONFORMANCE_TOKEN"


class CloudflareZone:
    secrets = {CF_TOKEN_VAR: "cf-Conf0rmance-t0ken-8512"}
    fake = FakeCloudflare

    @pytest.fixture
    def api(self):
        with self.fake(token=self.secrets[CF_TOKEN_VAR]) as fake:
            yield fake

    def settings(self, api) -> dict:
        return {"kind": "cloudflare", "zone_id": CF_ZONE, "api_token": f"env:{CF_TOKEN_VAR}", "endpoint_url": api.url,
                "hosts": ["www.example.com"]}


class TestCloudflarePurgeConformance(CloudflareZone, PurgeConformance):
    kind = "cloudflare"

    def purges(self, api):
        # Cloudflare's prefixes are host/path; the targets name them as URLs
        named = {"prefix": lambda item: f"https://{item}"}
        return [(p["kind"], tuple(named.get(p["kind"], str)(i) for i in p["items"]) or ("*",)) for p in api.purged]

    def pacing_settings(self, api) -> dict:
        return {"plan": "pro"}  # the Free plan's bulk bucket refills one request in 12 s


class TestCloudflareAnalyticsConformance(CloudflareZone, AnalyticsConformance):
    kind = "cloudflare"
    fake = FakeCloudflareGraphQL

    def seed(self, api, start: datetime, end: datetime) -> dict[str, float]:
        # the fake's traffic is synthetic and already there: the window's totals come from its cells
        cells = api.cells(CF_ZONE, start, end)
        return {"requests": sum(c.requests for c in cells), "bytes": sum(c.bytes for c in cells),
                "cache.hits": sum(c.requests for c in cells if c.cache_status in CACHED),
                "errors.4xx": sum(c.requests for c in cells if 400 <= c.status < 500),
                "errors.5xx": sum(c.requests for c in cells if 500 <= c.status < 600)}


def path_purge(paths, host: str) -> tuple[str, tuple[str, ...]]:
    """A purge of paths (CloudFront's and Azure's: /a/b a URL, /dir/* a prefix, /* everything), as targets name it."""
    if list(paths) == ["/*"]:
        return "everything", ("*",)
    if paths[0].endswith("/*"):
        return "prefix", tuple(f"https://{host}{p[:-1]}" for p in paths)
    return "url", tuple(f"https://{host}{p}" for p in paths)


# ==== azure_cdn: the fake Resource Manager ===================================================================

ARM_SUBSCRIPTION = "6f1c1d3e-0c55-4a0b-9a55-3e0d2b0c7a11"
ARM_TOKEN_VAR = "ARM_CONFORMANCE_TOKEN"
AZURE_HOST = "cdn.example.com"


class AzureCdnEndpoint:
    secrets = {ARM_TOKEN_VAR: "arm-Conf0rmance-t0ken-7730"}

    @pytest.fixture
    def api(self):
        with FakeArm(token=self.secrets[ARM_TOKEN_VAR], polls_before_done=0) as arm:
            arm.add_endpoint(ARM_SUBSCRIPTION, "rg-edge", "cdn-profile", "assets")
            yield arm

    def settings(self, api) -> dict:
        return {"kind": "azure_cdn", "subscription_id": ARM_SUBSCRIPTION, "resource_group": "rg-edge",
                "profile": "cdn-profile", "endpoint": "assets", "endpoint_url": api.url,
                "access_token": f"env:{ARM_TOKEN_VAR}", "hosts": [AZURE_HOST]}


class TestAzureCdnAnalyticsConformance(AzureCdnEndpoint, AnalyticsConformance):
    kind = "azure_cdn"

    def seed(self, api, start: datetime, end: datetime) -> dict[str, float]:
        totals = {"requests": 0.0, "bytes": 0.0, "errors.4xx": 0.0, "errors.5xx": 0.0}
        minute, n = start, 0
        while minute < end:
            n += 1
            for country, share in (("Germany", 1), ("France", 2)):
                traffic = Traffic("cdn-profile", "assets.azureedge.net", minute, country, requests_2xx=90 * n * share,
                                  requests_4xx=8 * n * share, requests_5xx=2 * n * share,
                                  response_bytes=10_000 * n * share, cached_bytes=5_000 * n * share,
                                  latency_ms=100 * 40.0 * n * share)
                api.traffic.append(traffic)
                totals["requests"] += 100 * n * share
                totals["bytes"] += 10_000 * n * share
                totals["errors.4xx"] += 8 * n * share
                totals["errors.5xx"] += 2 * n * share
            minute += timedelta(minutes=1)
        return totals


class TestAzureCdnPurgeConformance(AzureCdnEndpoint, PurgeConformance):
    kind = "azure_cdn"

    def purges(self, api):
        return [path_purge(purge.paths, AZURE_HOST) for purge in api.purges]


# ==== cloudfront: moto behind the CloudFront and CloudWatch fault proxies ====================================

CF_HOST = "www.example.com"
_REFERENCES = itertools.count(1)


class CloudFrontDistribution:
    secrets = {"AWS_ACCESS_KEY_ID": "AKIACONFORMANCE00001", "AWS_SECRET_ACCESS_KEY": "conformance/Secr3t+key/00001"}
    wrong_secrets = {}  # moto takes any credentials: a refusal is injected instead
    proxy = CloudFrontFaults

    @pytest.fixture
    def api(self, moto):
        import boto3

        admin = boto3.client("cloudfront", endpoint_url=moto.url, **TEST_KEYS)
        self.admin = boto3.client("cloudwatch", endpoint_url=moto.url, **TEST_KEYS)
        self.distribution = admin.create_distribution(DistributionConfig={
            "CallerReference": f"edgectl-conformance-{next(_REFERENCES)}", **DISTRIBUTION_CONFIG})["Distribution"]["Id"]
        with self.proxy(moto.url) as proxy:
            yield proxy

    def settings(self, api) -> dict:
        return {"kind": "cloudfront", "distribution_id": self.distribution, "endpoint_url": api.url,
                "hosts": [CF_HOST], "poll_interval": 0.5}


class TestCloudFrontPurgeConformance(CloudFrontDistribution, PurgeConformance):
    kind = "cloudfront"

    def purges(self, api):
        # each CreateInvalidation that reached moto (a dropped answer's did), as its paths name the targets
        applied = []
        for seen in api.requests:
            if not self.is_purge_request(seen) or not seen.reached or seen.status not in (201, None):
                continue
            paths = [el.text or "" for el in ET.fromstring(seen.body).iter() if el.tag.rsplit("}", 1)[-1] == "Path"]
            applied.append(path_purge(paths, CF_HOST))
        return applied

    def is_purge_request(self, seen: Seen) -> bool:
        return seen.method == "POST" and seen.path.endswith("/invalidation")


class TestCloudFrontAnalyticsConformance(CloudFrontDistribution, AnalyticsConformance):
    kind = "cloudfront"
    proxy = CloudWatchFaults

    def seed(self, api, start: datetime, end: datetime) -> dict[str, float]:
        dimensions = [{"Name": "DistributionId", "Value": self.distribution}, {"Name": "Region", "Value": "Global"}]
        totals = {"requests": 0.0, "bytes": 0.0, "errors.4xx": 0.0, "errors.5xx": 0.0, "cache.hits": 0.0}
        minute, n = start, 0
        while minute < end:
            n += 1
            requests = 100.0 * n
            figures = {"Requests": requests, "BytesDownloaded": 5_000.0 * n, "4xxErrorRate": 2.0, "5xxErrorRate": 1.0,
                       "CacheHitRate": 60.0}
            self.admin.put_metric_data(Namespace="AWS/CloudFront", MetricData=[
                {"MetricName": name, "Dimensions": dimensions, "Timestamp": minute, "Value": value}
                for name, value in figures.items()])
            totals["requests"] += requests
            totals["bytes"] += 5_000.0 * n
            totals["errors.4xx"] += 0.02 * requests  # the rates are shares of the minute's requests
            totals["errors.5xx"] += 0.01 * requests
            totals["cache.hits"] += 0.6 * requests
            minute += timedelta(minutes=1)
        return totals


class FrontDoorEndpoint(AzureCdnEndpoint):
    @pytest.fixture
    def api(self):
        with FakeArm(token=self.secrets[ARM_TOKEN_VAR], polls_before_done=0) as arm:
            arm.add_endpoint(ARM_SUBSCRIPTION, "rg-edge", "afd-profile", "web", kind="afd")
            yield arm

    def settings(self, api) -> dict:
        return {"kind": "azure_frontdoor", "subscription_id": ARM_SUBSCRIPTION, "resource_group": "rg-edge",
                "profile": "afd-profile", "endpoint": "web", "endpoint_url": api.url,
                "access_token": f"env:{ARM_TOKEN_VAR}", "hosts": [AZURE_HOST]}


class TestAzureFrontDoorPurgeConformance(FrontDoorEndpoint, PurgeConformance):
    kind = "azure_frontdoor"

    def purges(self, api):
        # a host purge is /* on the domains it names; the others purge paths on every domain
        return [("host", tuple(purge.domains)) if purge.domains else path_purge(purge.paths, AZURE_HOST)
                for purge in api.purges]
