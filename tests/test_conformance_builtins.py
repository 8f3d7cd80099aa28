"""The built-in provider kinds pass the conformance suite, against the fakes and the sandbox edgectl's own tests use."""

from __future__ import annotations

from datetime import datetime

import pytest

from edgectl.testing import FaultProxy, Seen
from edgectl.testing.conformance import AnalyticsConformance, PurgeConformance
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
