"""`edgectl cdn purge` through real varnishd: objects purged by URL, tag (xkey, soft, and banned), prefix, host and everything."""

from __future__ import annotations

import pytest

from edgectl_varnish import daemon
from varnish_servers import running_varnish, wait_for

HOST = "www.example.com"
OTHER = "shop.example.com"


def varnish_provider(**extra) -> dict:
    return {"kind": "varnish", "nodes": "label:cache=varnish", "hosts": [HOST, OTHER], **extra}


def add_node(cli, name: str, url: str, *labels: str) -> None:
    labels = labels or ("cache=varnish",)
    run = cli("nodes", "add", name, "--endpoint", url, *[a for label in labels for a in ("--label", label)])
    assert run.exit_code == 0, run.stderr


@pytest.fixture
def cache(isolated, origin, cli, request):
    """One varnishd with the VCL named by the test's `vcl` parameter (default edgectl-xkey.vcl), registered as
    node v1 with the label cache=varnish."""
    vcl = getattr(request, "param", daemon.XKEY_VCL)
    with running_varnish(isolated / "v1", origin.url, vcl=vcl) as varnish:
        add_node(cli, "v1", varnish.url)
        yield varnish


def test_a_url_purge_removes_that_object_only(cli, configure, cache, origin):
    configure(cache=varnish_provider())
    assert cache.get(HOST, "/a.css") == f"{HOST}/a.css #1"
    assert cache.get(HOST, "/b.css") == f"{HOST}/b.css #1"
    assert cache.get(HOST, "/a.css") == f"{HOST}/a.css #1"  # a hit

    run = cli("cdn", "purge", "--provider", "cache", "--url", f"https://{HOST}/a.css", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert cache.get(HOST, "/a.css") == f"{HOST}/a.css #2"  # the next request was a miss
    assert cache.get(HOST, "/b.css") == f"{HOST}/b.css #1"


@pytest.mark.parametrize("cache", [daemon.XKEY_VCL, daemon.CORE_VCL], indirect=True)
def test_an_object_purged_by_tag_is_fetched_again(cli, configure, cache, origin):
    """Through xkey where the VCL has it, else by a ban on the xkey header: either way the next request misses."""
    configure(cache=varnish_provider())
    origin.tags = {"/p/1": ["product-1", "page"], "/p/2": ["product-2", "page"], "/p/10": ["product-10"]}
    for path in ("/p/1", "/p/2", "/p/10"):
        assert cache.get(HOST, path).endswith("#1")

    run = cli("cdn", "purge", "--provider", "cache", "--tag", "product-1", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert details(cli, run) == ["1 node: xkey, 1 objects" if cache_has_xkey(cache) else "1 node: ban"]
    assert cache.get(HOST, "/p/1") == f"{HOST}/p/1 #2"
    assert cache.get(HOST, "/p/2") == f"{HOST}/p/2 #1"
    assert cache.get(HOST, "/p/10") == f"{HOST}/p/10 #1"  # product-10 holds product-1, and is another tag


def details(cli, run) -> list[str]:
    """What the provider said of each batch of the purge `run` made, as `cdn show` records it."""
    shown = cli("cdn", "show", run.json()["id"], "-o", "json")
    return [batch["detail"] for batch in shown.json()["batch_list"]]


def cache_has_xkey(cache) -> bool:
    return daemon.XKEY_VCL in (cache.root / "main.vcl").read_text()


def test_a_soft_purge_serves_stale_once_then_fresh(cli, configure, cache, origin):
    configure(cache=varnish_provider(xkey="on", soft_purge=True))
    origin.tags = {"/news": ["front"]}
    assert cache.get(HOST, "/news") == f"{HOST}/news #1"

    run = cli("cdn", "purge", "--provider", "cache", "--tag", "front", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert details(cli, run) == ["1 node: xkey-soft, 1 objects"]
    # expired but in grace: served once more while it is fetched again in the background ...
    assert cache.get(HOST, "/news") == f"{HOST}/news #1"
    wait_for(lambda: origin.fetches(HOST, "/news") == 2)
    # ... and from then on fresh
    assert wait_for(lambda: cache.get(HOST, "/news") == f"{HOST}/news #2")
    assert origin.fetches(HOST, "/news") == 2


def test_a_prefix_ban_takes_that_path_on_that_host(cli, configure, cache, origin):
    configure(cache=varnish_provider())
    paths = ("/docs/a", "/docs/b?x=1", "/docsearch", "/other")
    for host in (HOST, OTHER):
        for path in paths:
            assert cache.get(host, path).endswith("#1")

    run = cli("cdn", "purge", "--provider", "cache", "--prefix", f"https://{HOST}/docs/")
    assert run.exit_code == 0, run.stderr
    assert cache.get(HOST, "/docs/a").endswith("#2")
    assert cache.get(HOST, "/docs/b?x=1").endswith("#2")
    assert cache.get(HOST, "/docsearch").endswith("#1")
    assert cache.get(HOST, "/other").endswith("#1")
    assert all(cache.get(OTHER, path).endswith("#1") for path in paths)


def test_a_path_prefix_is_banned_on_every_host_the_provider_serves(cli, configure, cache, origin):
    configure(cache=varnish_provider())
    for host in (HOST, OTHER, "elsewhere.example.org"):
        cache.get(host, "/img/logo.png")
    assert cli("cdn", "purge", "--provider", "cache", "--prefix", "/img/").exit_code == 0
    assert cache.get(HOST, "/img/logo.png").endswith("#2")
    assert cache.get(OTHER, "/img/logo.png").endswith("#2")
    assert cache.get("elsewhere.example.org", "/img/logo.png").endswith("#1")


def test_a_host_purge_and_everything(cli, configure, cache, origin):
    configure(cache=varnish_provider())
    for host in (HOST, OTHER):
        cache.get(host, "/x")
    assert cli("cdn", "purge", "--provider", "cache", "--host", OTHER.upper()).exit_code == 0
    assert cache.get(HOST, "/x").endswith("#1")
    assert cache.get(OTHER, "/x").endswith("#2")

    assert cli("cdn", "purge", "--provider", "cache", "--everything", "--yes").exit_code == 0
    assert cache.get(HOST, "/x").endswith("#2")
    assert cache.get(OTHER, "/x").endswith("#3")


def test_a_host_header_with_a_port_or_capitals_is_the_same_object(cli, configure, cache, origin):
    """The VCL normalises Host as edgectl names hosts, so a purge finds what any client spelling cached."""
    configure(cache=varnish_provider())
    assert cache.get("WWW.Example.COM:443", "/page").endswith("#1")
    assert cli("cdn", "purge", "--provider", "cache", "--url", f"https://{HOST}/page").exit_code == 0
    assert cache.get(HOST, "/page").endswith("#2")


# given to `cdn purge --url` -> the request line a client sends for it, which Varnish keys the object by
AS_SENT = {
    "/(a|b)/x": "/(a|b)/x",
    "/v[1]/{id}^2": "/v[1]/{id}^2",
    "/q?tags=a|b&v={1}": "/q?tags=a|b&v={1}",
    "/my docs|x": "/my%20docs|x",
    "/café|x": "/caf%C3%A9|x",
    "/a%7cb": "/a%7cb",
}


def test_a_url_is_purged_in_the_form_clients_send_it(cli, configure, cache, origin):
    """Varnish never normalises req.url: '|', '[', ']', '{', '}' and '^' go raw, as curl sends them (and browsers
    '|', '[' and ']'), and only what cannot be on a request line is encoded. Another encoding is another object."""
    configure(cache=varnish_provider())
    for sent in [*AS_SENT.values(), "/(a%7Cb)/x"]:
        assert cache.get(HOST, sent) == f"{HOST}{sent} #1"
    for given, sent in AS_SENT.items():
        run = cli("cdn", "purge", "--provider", "cache", "--url", f"https://{HOST}{given}", "-o", "json")
        assert run.exit_code == 0, run.stderr
        assert cache.get(HOST, sent) == f"{HOST}{sent} #2", f"{given!r} did not purge {sent!r}"
    assert cache.get(HOST, "/(a%7Cb)/x").endswith("#1")


def test_a_prefix_is_banned_in_the_form_clients_send_it(cli, configure, cache, origin):
    configure(cache=varnish_provider())
    gone = ["/(a|b)/x", "/(a|b)/y?z=1", "/{v}^[2]/x"]
    kept = ["/(a%7Cb)/x", "/(a|c)/x", "/%7Bv%7D^[2]/x"]
    for path in gone + kept:
        assert cache.get(HOST, path).endswith("#1")
    for prefix in ("/(a|b)/", "/{v}^[2]/"):
        run = cli("cdn", "purge", "--provider", "cache", "--prefix", f"https://{HOST}{prefix}")
        assert run.exit_code == 0, run.stderr
    assert [path for path in gone if not cache.get(HOST, path).endswith("#2")] == []
    assert [path for path in kept if not cache.get(HOST, path).endswith("#1")] == []
