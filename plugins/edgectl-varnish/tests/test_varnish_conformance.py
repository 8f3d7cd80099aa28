"""The varnish kind passes edgectl's purge conformance suite against real varnishd, behind a fault proxy registered as a node."""

from __future__ import annotations

import re

import pytest

from edgectl.testing import FaultProxy, Seen
from edgectl.testing.conformance import PurgeConformance
from edgectl_varnish import daemon
from varnish_servers import Origin, running_varnish

HOST = "www.example.com"


@pytest.fixture(scope="module", params=[daemon.XKEY_VCL, daemon.CORE_VCL])
def conformance_varnish(request, tmp_path_factory):
    """One varnishd a module per VCL variant; what it caches does not matter to the suite, only what it is sent."""
    with Origin() as origin, running_varnish(tmp_path_factory.mktemp("varnish"), origin.url, vcl=request.param) as v:
        yield v


def literal(pattern: str) -> str:
    """The text a regex_literal pattern matches: each escaped character without its backslash."""
    return re.sub(r"\\(.)", r"\1", pattern)


def applied(seen: Seen) -> tuple[str, tuple[str, ...]] | None:
    """What a request to the node purges, named as edgectl's targets name it; None when it purges nothing."""
    headers = seen.headers
    if seen.method == "PURGE":
        return "url", (f"https://{headers['host']}{seen.target}",)
    ban = headers.get("x-edgectl-ban")
    if seen.method != "BAN" or ban in (None, "probe"):
        return None
    match = literal(headers.get("x-edgectl-match", ""))
    if ban == "prefix":
        host = headers.get("x-edgectl-host")
        return "prefix", (f"https://{host}{match}" if host else match,)
    if ban == "host":
        return "host", (headers["x-edgectl-host"],)
    if ban == "tags":
        keys = headers.get("x-edgectl-keys")
        if keys:
            return "tag", tuple(keys.split(" "))
        return "tag", tuple(literal(tag) for tag in re.split(r"(?<!\\)\|", headers["x-edgectl-match"]))
    if ban == "everything":
        return "everything", ("*",)
    return None


class TestVarnishPurgeConformance(PurgeConformance):
    kind = "varnish"

    @pytest.fixture
    def api(self, conformance_varnish):
        self.varnish = conformance_varnish
        with FaultProxy(conformance_varnish.url) as proxy:
            yield proxy

    def settings(self, api) -> dict:
        return {"kind": "varnish", "nodes": "label:conformance=true", "hosts": [HOST]}

    def setup(self, api) -> None:
        added = self.edgectl("nodes", "add", "conformance-1", "--endpoint", api.url, "-l", "conformance=true")
        assert added.exit_code == 0, added.explain()

    def purges(self, api):
        found = []
        for seen in api.requests:
            purge = applied(seen)
            # a dropped answer was forwarded first, so varnishd did purge
            if purge and seen.reached and (seen.fault == "drop" or seen.status == 200):
                found.append(purge)
        return found

    def is_purge_request(self, seen: Seen) -> bool:
        return applied(seen) is not None
