"""`edgectl cache warm` through real varnishd: the shipped VCL's Cache-Status (RFC 9211) tells each hit from a miss."""

from __future__ import annotations

import pytest

from edgectl.cache.status import classify
from edgectl_varnish import daemon
from varnish_servers import running_varnish, wait_for

HOST = "www.example.com"


@pytest.fixture
def cache(isolated, origin, cli):
    with running_varnish(isolated / "v1", origin.url) as varnish:
        assert cli("nodes", "add", "v1", "--endpoint", varnish.url).exit_code == 0
        yield varnish


def test_a_warm_counts_a_miss_then_a_hit(cli, cache, origin):
    url = f"https://{HOST}/warm/a"
    runs = [cli("cache", "warm", "--url", url, "--nodes", "v1", "-o", "json") for _ in range(2)]
    assert [run.exit_code for run in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert [run.json()["cache_before"] for run in runs] == [{"v1": {"miss": 1}}, {"v1": {"hit": 1}}]
    assert runs[1].json()["hit_ratio_before"] == 1.0
    assert origin.fetches(HOST, "/warm/a") == 1


def test_cache_status_says_stale_bypass_and_follows_the_caches_behind(cli, configure, cache, origin):
    origin.tags["/news"] = ["front"]
    origin.headers["/private"] = {"Cache-Control": "private"}
    origin.headers["/shielded"] = {"Cache-Status": "shield; hit"}
    assert cache.response(HOST, "/news").headers["Cache-Status"] == "varnish; fwd=miss; stored"
    hit = cache.response(HOST, "/news").headers["Cache-Status"]
    assert hit.startswith("varnish; hit; ttl=") and 290 <= int(hit.rpartition("=")[2]) <= 300

    # soft-purged: in grace, served stale once while it is fetched again
    configure(cache={"kind": "varnish", "nodes": ["v1"], "hosts": [HOST], "xkey": "on", "soft_purge": True})
    assert cli("cdn", "purge", "--provider", "cache", "--tag", "front").exit_code == 0
    assert classify(cache.response(HOST, "/news").headers).status == "stale"
    wait_for(lambda: origin.fetches(HOST, "/news") == 2)

    assert [classify(cache.response(HOST, "/private").headers).status for _ in range(2)] == ["bypass", "bypass"]
    assert classify(cache.response(HOST, "/passed", Cookie="a=b").headers).status == "bypass"  # Varnish's builtin
    assert [cache.response(HOST, "/shielded").headers["Cache-Status"] for _ in range(2)] == [
        "shield; hit, varnish; fwd=miss; stored", "shield; hit, varnish; hit; ttl=299"]
