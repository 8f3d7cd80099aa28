"""The varnish kind's nodes: chosen by label from the inventory, each purged, probed by `providers test`, refused by ACL."""

from __future__ import annotations

import httpx
import pytest

from edgectl.testing import Answer, FakeAPI, FaultProxy
from edgectl_varnish import daemon
from varnish_servers import running_varnish, wait_for

HOST = "www.example.com"


def add_node(cli, name: str, url: str, label: str = "cache=varnish") -> None:
    run = cli("nodes", "add", name, "--endpoint", url, "--label", label)
    assert run.exit_code == 0, run.stderr


def table(**extra) -> dict:
    return {"kind": "varnish", "nodes": "label:cache=varnish", "hosts": [HOST], **extra}


@pytest.fixture
def two(isolated, origin, cli):
    """Two caches labelled cache=varnish (v1 with xkey, v2 without, behind a fault proxy) and one labelled otherwise."""
    with running_varnish(isolated / "v1", origin.url) as v1, \
            running_varnish(isolated / "v2", origin.url, vcl=daemon.CORE_VCL) as v2, \
            FaultProxy(v2.url) as proxy2, \
            running_varnish(isolated / "v3", origin.url) as v3:
        add_node(cli, "v1", v1.url)
        add_node(cli, "v2", proxy2.url)
        add_node(cli, "v3", v3.url, label="cache=nginx")
        yield v1, v2, proxy2, v3


def test_every_labelled_node_is_purged_and_no_other(cli, configure, two, origin):
    v1, v2, _, v3 = two
    configure(cache=table())
    origin.tags["/a"] = ["t1"]
    before = [cache.get(HOST, "/a") for cache in (v1, v2, v3)]

    run = cli("cdn", "purge", "--provider", "cache", "--tag", "t1", "-o", "json")
    assert run.exit_code == 0, run.stderr
    shown = cli("cdn", "show", run.json()["id"], "-o", "json").json()
    assert [b["detail"] for b in shown["batch_list"]] == ["2 nodes: ban, xkey, 1 objects"]
    after = [cache.get(HOST, "/a") for cache in (v1, v2, v3)]
    assert after[0] != before[0] and after[1] != before[1]
    assert after[2] == before[2]  # labelled cache=nginx: not this provider's


def test_one_node_failing_fails_the_batch_and_a_resume_purges_it(cli, configure, two, origin):
    v1, v2, proxy2, _ = two
    configure(cache=table())
    proxy2.fail_next(500, count=50)
    run = cli("cdn", "purge", "--provider", "cache", "--url", f"https://{HOST}/b", "--timeout", "3s", "-o", "json")
    assert run.exit_code == 1
    assert "1 of 2 nodes failed (1 purged)" in run.stderr and "node v2: HTTP 500" in run.stderr
    proxy2.clear()
    again = cli("cdn", "purge", "--resume", run.json()["id"])
    assert again.exit_code == 0, again.stderr
    assert [(r.method, r.path, r.status) for r in proxy2.requests] == [("PURGE", "/b", 200)]


def test_providers_test_probes_each_node_and_names_what_it_lacks(cli, configure, two):
    configure(auto=table(), on=table(xkey="on"), soft=table(soft_purge=True), off=table(xkey="off"))
    run = cli("providers", "test", "--all", "-o", "json")
    results = {row["name"]: row for row in run.json()}
    assert results["auto"]["result"] == "ok"
    assert results["auto"]["detail"] == ("2 node(s) run edgectl.vcl v1 and admit purges from here; xkey on v1 "
                                         "(tags are banned where it is missing)")
    assert results["off"]["result"] == "ok"
    assert results["on"]["result"] == "failed"
    assert "node v2: its VCL has no xkey, and xkey = 'on'" in results["on"]["detail"]
    assert "1 of 2 nodes failed (1 fine)" in results["on"]["detail"]
    assert results["soft"]["result"] == "failed" and "soft_purge needs xkey" in results["soft"]["detail"]
    assert run.exit_code == 1


def test_a_purger_outside_the_acl_is_refused_as_an_auth_error(cli, configure, isolated, origin):
    with running_varnish(isolated / "v1", origin.url, purgers=["192.0.2.1"]) as varnish:
        add_node(cli, "v1", varnish.url)
        configure(cache=table())
        varnish.get(HOST, "/a")
        tested = cli("providers", "test", "cache", "-o", "json")
        assert tested.exit_code == 1
        assert tested.json()[0]["detail"].startswith("node v1 refused the BAN (HTTP 403: edgectl: this client is not "
                                                     "in acl edgectl_purgers); add the address edgectl purges from")
        run = cli("cdn", "purge", "--provider", "cache", "--url", f"https://{HOST}/a", "-o", "json")
        assert run.exit_code == 1
        failed = run.json()["failed"][0]
        assert failed["attempts"] == 1 and "acl edgectl_purgers" in failed["error"]  # refused, not retried
        assert varnish.get(HOST, "/a").endswith("#1")


class NotEdgectl(FakeAPI):
    """A cache (or the origin behind one) that answers 200 to anything, as a Varnish without edgectl.vcl may."""

    def handle(self, seen):
        return Answer(200, "ok")


def test_a_node_without_edgectls_vcl_is_found_by_test_and_fails_a_purge(cli, configure):
    with NotEdgectl() as plain:
        add_node(cli, "plain", plain.url)
        configure(cache=table())
        tested = cli("providers", "test", "cache", "-o", "json")
        assert tested.exit_code == 1
        assert "node plain answered BAN without X-Edgectl-Vcl: it does not run edgectl.vcl" in tested.json()[0]["detail"]
        run = cli("cdn", "purge", "--provider", "cache", "--tag", "t", "-o", "json")
        assert run.exit_code == 1 and "nothing was purged" in run.stderr


def test_no_labelled_node_is_a_clear_error(cli, configure):
    configure(cache=table())
    run = cli("cdn", "purge", "--provider", "cache", "--tag", "t")
    assert run.exit_code == 1
    assert "no nodes match nodes = 'label:cache=varnish'" in run.stderr


def test_purge_port_and_scheme_replace_the_endpoints(cli, configure, isolated, origin):
    """A node registered by its public endpoint, purged where varnishd listens."""
    with running_varnish(isolated / "v1", origin.url) as varnish:
        port = int(varnish.url.rsplit(":", 1)[1])
        add_node(cli, "v1", "https://127.0.0.1")
        configure(cache=table(scheme="http", port=port))
        assert cli("providers", "test", "cache").exit_code == 0
        varnish.get(HOST, "/p")
        assert cli("cdn", "purge", "--provider", "cache", "--url", f"https://{HOST}/p").exit_code == 0
        assert varnish.get(HOST, "/p").endswith("#2")


@pytest.mark.parametrize("settings,problem", [
    ({"nodes": "cache=varnish"}, "nodes: must be 'label:key=value'"),
    ({"nodes": "label:cache"}, "nodes: label 'cache' is not key=value"),
    ({"xkey": "maybe"}, "xkey: must be 'auto'"),
    ({"soft_purge": True, "xkey": "off"}, "soft_purge: needs xkey"),
    ({"port": 0}, "port: must be a TCP port"),
    ({"scheme": "ftp"}, "scheme: must be 'http' or 'https'"),
    ({"rate": -1}, "rate: must be PURGE and xkey requests per second"),
    ({"tag_batch_size": 1000}, "tag_batch_size: must be a whole number from 1 to 64"),
    ({"secret": "x"}, "secret: "),
])
def test_bad_settings_are_a_config_error_naming_the_key(cli, configure, settings, problem):
    configure(cache=table(**settings))
    run = cli("cdn", "purge", "--provider", "cache", "--tag", "t")
    assert run.exit_code == 2
    assert f"providers.cache.{problem}" in run.stderr


def test_limits_are_declared_as_data(cli, configure):
    configure(cache=table(rate=20, ban_rate=2, tag_batch_size=8, xkey="on"))
    shown = cli("providers", "show", "cache", "-o", "json").json()
    limits = shown["limits"]
    assert shown["purge_kinds"] == ["url", "prefix", "tag", "host", "everything"]
    assert limits["batch_size"] == {"url": 1, "prefix": 1, "tag": 8, "host": 1, "everything": 1}
    assert limits["buckets"] == {"purge": {"rate_per_s": 20.0, "burst": 20.0, "unit": "request"},
                                 "ban": {"rate_per_s": 2.0, "burst": 2.0, "unit": "request"}}
    assert limits["bucket_for"]["tag"] == "purge" and limits["bucket_for"]["prefix"] == "ban"
    configure(cache=table(soft_purge=True))  # tags never banned then: paced as xkey requests
    assert cli("providers", "show", "cache", "-o", "json").json()["limits"]["bucket_for"]["tag"] == "purge"


def test_a_soft_purge_fails_on_a_node_without_xkey_and_bans_nothing_there(cli, configure, two, origin):
    """soft_purge asks for objects served stale once: a ban on a node without xkey would be a hard purge instead."""
    v1, v2, proxy2, _ = two
    configure(cache=table(soft_purge=True))
    origin.tags["/s"] = ["soft"]
    first, second = v1.get(HOST, "/s"), v2.get(HOST, "/s")

    run = cli("cdn", "purge", "--provider", "cache", "--tag", "soft", "-o", "json")
    assert run.exit_code == 1
    assert "1 of 2 nodes failed (1 purged)" in run.stderr
    assert "node v2: soft_purge needs xkey, and its VCL has none: nothing was purged there" in run.stderr
    assert [r.headers.get("x-edgectl-match") for r in proxy2.requests if r.method == "BAN"] == [None]
    assert v2.get(HOST, "/s") == second  # neither banned nor purged
    assert v1.get(HOST, "/s") == first  # soft-purged: stale once, while it is fetched again
    wait_for(lambda: origin.fetches(HOST, "/s") == 3)


def test_the_vcl_without_xkey_refuses_a_soft_purge_rather_than_ban(isolated, origin):
    """For purgers that write their own requests: X-Edgectl-Soft with a match is never a ban there."""
    with running_varnish(isolated / "v1", origin.url, vcl=daemon.CORE_VCL) as varnish:
        origin.tags["/s"] = ["soft"]
        cached = varnish.get(HOST, "/s")
        response = httpx.request("BAN", varnish.url + "/", timeout=10, trust_env=False, headers={
            "X-Edgectl-Ban": "tags", "X-Edgectl-Match": "soft", "X-Edgectl-Soft": "1"})
        assert response.status_code == 501 and response.text.startswith("edgectl: a soft purge needs xkey")
        assert varnish.get(HOST, "/s") == cached
