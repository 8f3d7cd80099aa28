"""Hostile purge values: refused before anything is sent, or escaped so that against real varnishd they match only themselves."""

from __future__ import annotations

import httpx
import pytest

from edgectl.providers.base import Batch, InvalidTarget, NodeEndpoint, ProviderContext, ProviderError
from edgectl.testing import FaultProxy
from edgectl_varnish import daemon
from edgectl_varnish.provider import VarnishProvider, regex_literal
from varnish_servers import running_varnish

HOST = "www.example.com"


@pytest.fixture
def node(isolated, origin, cli):
    """varnishd with edgectl.vcl (tags by ban) behind a fault proxy that records what reaches it, as node v1."""
    with running_varnish(isolated / "v1", origin.url, vcl=daemon.CORE_VCL) as varnish, FaultProxy(varnish.url) as proxy:
        assert cli("nodes", "add", "v1", "--endpoint", proxy.url, "--label", "cache=varnish").exit_code == 0
        yield varnish, proxy


def provider(**settings) -> VarnishProvider:
    return VarnishProvider("v", {"kind": "varnish", "nodes": "label:cache=varnish", **settings},
                           ProviderContext(resolve_secret=lambda key, ref: ref,
                                           nodes=[NodeEndpoint("v1", "http://127.0.0.1:9")]))


REFUSED = [
    ("--tag", "two words"),
    ("--tag", 'a"quote'),
    ("--tag", "tab\there"),
    ("--tag", "line\nbreak"),
    ("--tag", "crlf\r\nX-Injected: 1"),
    ("--tag", "café"),
    ("--tag", "t" * 129),
    ("--tag", "a,b"),
    ("--prefix", f"https://{HOST}/docs/*"),
    ("--prefix", f"https://{HOST}/search?q=x"),
    ("--prefix", "/search?q=x"),
    ("--prefix", "docs/"),
    ("--host", "bad host.example.com"),
]


@pytest.mark.parametrize("option,value", REFUSED, ids=[repr(v) for _, v in REFUSED])
def test_a_value_that_cannot_be_a_ban_is_refused_before_anything_is_sent(cli, configure, node, option, value):
    configure(cache={"kind": "varnish", "nodes": "label:cache=varnish", "hosts": [HOST], "xkey": "off"})
    _, proxy = node
    run = cli("cdn", "purge", "--provider", "cache", option, value)
    assert run.exit_code == 2, run.stdout + run.stderr
    assert run.stderr.startswith("error: ") and "Traceback" not in run.stderr
    assert proxy.requests == []


@pytest.mark.parametrize("value", ["two words", 'a"b', "a\nb", "a\r\nX-Injected: 1", "é", "a,b", "", "t" * 129])
def test_normalise_refuses_a_tag_that_is_not_one_word_of_printable_ascii(value):
    with pytest.raises(InvalidTarget):
        provider().normalise("tag", value)


def test_a_tag_may_hold_a_single_quote_and_the_readme_says_what_is_refused():
    """Only a double quote can end a word in a ban expression; `it's` is a tag like any other."""
    from pathlib import Path

    assert provider().normalise("tag", "it's") == "it's"
    with pytest.raises(InvalidTarget) as refused:
        provider().normalise("tag", 'say"hi"')
    rule = "a tag is 1 to 128 printable ASCII characters without spaces, commas or double quotes"
    assert rule in refused.value.message
    readme = " ".join((Path(__file__).parent.parent / "README.md").read_text().split())
    assert rule[0].upper() + rule[1:] in readme


def test_a_value_that_slipped_past_normalise_is_still_not_sent(node):
    """Whoever calls purge: no header with whitespace or a double quote leaves edgectl."""
    _, proxy = node
    varnish = provider(xkey="off")
    varnish.context.nodes = [NodeEndpoint("v1", proxy.url)]
    for batch in (Batch("tag", ("a b",), "r1"), Batch("prefix", ('/x" y',), "r2"), Batch("host", ("a\nb",), "r3")):
        with pytest.raises(ProviderError, match="refusing to send"):
            varnish.purge(batch)
    assert proxy.requests == []


TAGS = {  # hostile tag -> a tag it must not be taken for
    "a.b": "axb",
    "x|y": "x",
    "(": "((",
    ".*": "anything",
    "a&&b": "a",
    "obj.status!=0": "obj",
    "^$[]{}+?\\": "plain",
    "$(touch)": "touch",
    "'quoted'": "quoted",
}


@pytest.mark.parametrize("xkey", ["off", "on"])
def test_regex_metacharacters_in_tags_match_only_themselves(cli, configure, isolated, origin, xkey):
    """By ban (escaped into the regex) and by xkey (literal keys): each hostile tag purges its own object only."""
    vcl = daemon.CORE_VCL if xkey == "off" else daemon.XKEY_VCL
    with running_varnish(isolated / "v1", origin.url, vcl=vcl) as varnish:
        assert cli("nodes", "add", "v1", "--endpoint", varnish.url, "--label", "cache=varnish").exit_code == 0
        configure(cache={"kind": "varnish", "nodes": "label:cache=varnish", "hosts": [HOST], "xkey": xkey})
        paths = {}
        for i, (hostile, decoy) in enumerate(TAGS.items()):
            paths[hostile], paths[decoy] = f"/hostile/{i}", f"/decoy/{i}"
            origin.tags[f"/hostile/{i}"], origin.tags[f"/decoy/{i}"] = [hostile], [decoy]
        for path in paths.values():
            assert varnish.get(HOST, path).endswith("#1")

        run = cli("cdn", "purge", "--provider", "cache", *[a for tag in TAGS for a in ("--tag", tag)])
        assert run.exit_code == 0, run.stderr
        for hostile, decoy in TAGS.items():
            assert varnish.get(HOST, paths[hostile]).endswith("#2"), hostile
            assert varnish.get(HOST, paths[decoy]).endswith("#1"), f"{decoy!r} was purged by {hostile!r}"


def test_regex_metacharacters_and_spaces_in_a_prefix_match_only_that_path(cli, configure, node, origin):
    varnish, _ = node
    configure(cache={"kind": "varnish", "nodes": "label:cache=varnish", "hosts": [HOST]})
    kept = ["/v1x0/a", "/ab/x", "/my-docs/x", "/(a)/"]
    gone = ["/v1.0/a", "/a+b/x", "/my%20docs/x"]
    for path in kept + gone:
        varnish.get(HOST, path)
    for prefix in ("/v1.0/", "/a+b/", "/my docs/"):
        run = cli("cdn", "purge", "--provider", "cache", "--prefix", f"https://{HOST}{prefix}")
        assert run.exit_code == 0, run.stderr
    assert all(varnish.get(HOST, path).endswith("#2") for path in gone)
    assert all(varnish.get(HOST, path).endswith("#1") for path in kept)


@pytest.mark.parametrize("headers", [
    {"X-Edgectl-Ban": "prefix", "X-Edgectl-Match": "/ && obj.status != 0"},
    {"X-Edgectl-Ban": "prefix", "X-Edgectl-Match": '/"x'},
    {"X-Edgectl-Ban": "tags", "X-Edgectl-Match": "a )|(."},
    {"X-Edgectl-Ban": "host", "X-Edgectl-Host": "www.example.com && obj.status != 0"},
    {"X-Edgectl-Ban": "host", "X-Edgectl-Host": "WWW.example.com"},
    {"X-Edgectl-Ban": "prefix", "X-Edgectl-Match": "docs"},
    {"X-Edgectl-Ban": "prefix", "X-Edgectl-Match": "/("},
    {"X-Edgectl-Ban": "nonsense"},
], ids=lambda h: repr(h))
def test_the_vcl_refuses_what_edgectl_would_never_send(node, headers):
    """A purger in the ACL that writes its own headers still cannot widen a ban: 400, and nothing is banned."""
    varnish, _ = node
    assert varnish.get(HOST, "/kept").endswith("#1")
    response = httpx.request("BAN", varnish.url + "/", headers=headers, timeout=10, trust_env=False)
    assert response.status_code == 400
    assert response.text.startswith("edgectl: ")
    assert varnish.get(HOST, "/kept").endswith("#1")


@pytest.mark.parametrize("text,other", [("a.b", "axb"), ("x|y", "x"), ("[a-z]+", "q"), ("^$", ""), ("a\\b", "ab"),
                                        ("a{1,2}", "aa"), ("a?", ""), ("a*", "aaa"), ("(a)", "a")])
def test_regex_literal_matches_its_text_and_nothing_else(text, other):
    import re

    assert re.fullmatch(regex_literal(text), text)
    assert re.fullmatch(regex_literal(text), other) is None
