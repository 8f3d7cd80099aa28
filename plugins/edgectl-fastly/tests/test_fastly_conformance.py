"""The conformance suites every provider kind passes, run by the fastly kind against the fake Fastly API."""

from __future__ import annotations

import random

import pytest

from edgectl.testing.conformance import AnalyticsConformance, PurgeConformance

from fake_fastly import KEY, SERVICE, FakeFastly, seed


class _Fastly:
    kind = "fastly"
    secrets = {"FASTLY_TEST_KEY": KEY}

    @pytest.fixture
    def api(self):
        with FakeFastly() as fake:
            yield fake

    def settings(self, api) -> dict:
        return {"kind": "fastly", "service_id": SERVICE, "api_token": "env:FASTLY_TEST_KEY", "endpoint": api.url,
                "hosts": ["www.example.com"]}


class TestFastlyPurgeConformance(_Fastly, PurgeConformance):
    def purges(self, api) -> list[tuple[str, tuple[str, ...]]]:
        named = []
        for purged in api.purged():
            if purged.kind == "url":  # Fastly is sent host/path: the default cache key has no scheme
                named.append(("url", tuple(f"https://{item}" for item in purged.items)))
            elif purged.kind in ("key", "keys"):
                named.append(("tag", purged.items))
            else:
                named.append(("everything", ("*",)))
        return named


class TestFastlyAnalyticsConformance(_Fastly, AnalyticsConformance):
    def seed(self, api, start, end) -> dict[str, float]:
        return seed(api, SERVICE, int(start.timestamp()), int(end.timestamp()), random.Random(3))
