"""Cache status: every vendor's header forms, precedence, multi-cache lists, input shapes, the sandbox."""

from __future__ import annotations

import asyncio
import email.message
import math
import socket

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from edgectl.cache.status import SOURCES, STATUSES, CacheStatus, classify

# Each vendor's values, as its documentation (cited in edgectl/cache/status.py) lists them.
CLOUDFLARE = [("HIT", "hit"), ("MISS", "miss"), ("EXPIRED", "expired"), ("STALE", "stale"), ("BYPASS", "bypass"),
              ("REVALIDATED", "revalidated"), ("UPDATING", "stale"), ("DYNAMIC", "dynamic"),
              ("NONE/UNKNOWN", "unknown"), ("NONE", "unknown"), ("hit", "hit")]
CLOUDFRONT = [("Hit", "hit"), ("Miss", "miss"), ("RefreshHit", "revalidated"), ("OriginShieldHit", "hit"),
              ("Error", "unknown"), ("LimitExceeded", "unknown"), ("CapacityExceeded", "unknown"),
              ("Redirect", "unknown"), ("FunctionGeneratedResponse", "unknown")]
AZURE = [("TCP_HIT", "hit"), ("TCP_REMOTE_HIT", "hit"), ("TCP_MISS", "miss"), ("PRIVATE_NOSTORE", "dynamic"),
         ("CONFIG_NOCACHE", "dynamic"), ("N/A", "unknown"), ("TCP_EXPIRED_HIT", "revalidated"),
         ("TCP_EXPIRED_MISS", "expired"), ("TCP_CLIENT_REFRESH_MISS", "bypass"), ("UNCACHEABLE", "dynamic"),
         ("NONE", "unknown")]
AKAMAI = [("TCP_HIT", "hit"), ("TCP_MEM_HIT", "hit"), ("TCP_IMS_HIT", "hit"), ("TCP_NEGATIVE_HIT", "hit"),
          ("TCP_MISS", "miss"), ("TCP_REFRESH_HIT", "revalidated"), ("TCP_REFRESH_MISS", "expired"),
          ("TCP_REFRESH_FAIL_HIT", "stale")]
AKAMAI_SERVER = "a23-4-5-6.deploy.akamaitechnologies.com"
NGINX = [("HIT", "hit"), ("MISS", "miss"), ("EXPIRED", "expired"), ("STALE", "stale"), ("UPDATING", "stale"),
         ("REVALIDATED", "revalidated"), ("BYPASS", "bypass"), ("hit", "hit")]

# (case id, headers, expected fields). Only the fields named are checked.
CASES = [
    # ---- RFC 9211 Cache-Status; the first ten are the RFC's own examples (section 3)
    ("rfc-minimal-hit", {"cache-status": "ExampleCache; hit"},
     dict(status="hit", source="cache-status", cache="ExampleCache", ttl=None, stored=None)),
    ("rfc-hit-ttl", {"cache-status": "ExampleCache; hit; ttl=376"}, dict(status="hit", ttl=376.0)),
    ("rfc-stale-hit", {"cache-status": "ExampleCache; hit; ttl=-412"}, dict(status="stale", ttl=-412.0)),
    ("rfc-complete-miss", {"cache-status": "ExampleCache; fwd=uri-miss"}, dict(status="miss", stored=False)),
    ("rfc-validated-miss", {"cache-status": "ExampleCache; fwd=stale; fwd-status=304"}, dict(status="revalidated")),
    ("rfc-collapsed", {"cache-status": "ExampleCache; fwd=uri-miss; collapsed"}, dict(status="miss")),
    ("rfc-not-collapsed", {"cache-status": "ExampleCache; fwd=uri-miss; collapsed=?0"}, dict(status="miss")),
    ("rfc-detail", {"cache-status": "ExampleCache; hit; detail=MEMORY"}, dict(status="hit")),
    ("rfc-two-layers", {"cache-status": 'OriginCache; hit; ttl=1100,\n              "CDN Company Here"; hit; ttl=545'},
     dict(status="hit", cache="CDN Company Here", ttl=545.0)),
    ("rfc-three-lines", [("Cache-Status", "ReverseProxyCache; hit"),
                         ("Cache-Status", "ForwardProxyCache; fwd=uri-miss; collapsed; stored"),
                         ("Cache-Status", "BrowserCache; fwd=uri-miss")],
     dict(status="miss", cache="BrowserCache", stored=False)),
    ("rfc-origin-hit-edge-miss", {"cache-status": "OriginCache; hit, Edge; fwd=uri-miss; stored"},
     dict(status="miss", cache="Edge", stored=True)),
    ("rfc-stale-replaced", {"cache-status": "C; fwd=stale; fwd-status=200; stored"}, dict(status="expired", stored=True)),
    ("rfc-stale-no-status", {"cache-status": "C; fwd=stale"}, dict(status="expired")),
    ("rfc-vary-miss", {"cache-status": "C; fwd=vary-miss"}, dict(status="miss")),
    ("rfc-miss", {"cache-status": "C; fwd=miss"}, dict(status="miss")),
    ("rfc-partial", {"cache-status": "C; fwd=partial; fwd-status=206"}, dict(status="miss")),
    ("rfc-bypass", {"cache-status": "C; fwd=bypass"}, dict(status="bypass")),
    ("rfc-method", {"cache-status": "C; fwd=method"}, dict(status="bypass")),
    ("rfc-request", {"cache-status": "C; fwd=request"}, dict(status="bypass")),
    ("rfc-unknown-fwd-went-forward", {"cache-status": "C; fwd=teleport"}, dict(status="miss")),
    ("rfc-boolean-false-hit", {"cache-status": "C; hit=?0; fwd=uri-miss; stored=?0"}, dict(status="miss", stored=False)),
    ("rfc-boolean-true-hit", {"cache-status": "C; hit=?1; ttl=10"}, dict(status="hit", ttl=10.0)),
    ("rfc-name-only", {"cache-status": "C"}, dict(status="unknown", source="cache-status", cache="C")),
    ("rfc-quoted-key", {"cache-status": 'Edge; fwd=uri-miss; key="https://x.test/a?b=1,2;c=3"; stored'},
     dict(status="miss", cache="Edge", stored=True)),
    ("rfc-quoted-detail-escape", {"cache-status": 'Edge; hit; detail="say \\"hi\\", bye"; ttl=5'},
     dict(status="hit", ttl=5.0)),
    ("rfc-trailing-comma", {"cache-status": "Edge; hit; ttl=3,"}, dict(status="hit", cache="Edge")),
    ("rfc-case-lenient", {"CACHE-STATUS": "Edge; FWD=URI-MISS; STORED"}, dict(status="miss", stored=True)),
    # ---- Cloudflare CF-Cache-Status (developers.cloudflare.com/cache/concepts/cache-responses/)
    *[(f"cloudflare-{value.lower()}", {"cf-cache-status": value},
       dict(status=want, source="cf-cache-status", cache="cloudflare")) for value, want in CLOUDFLARE],
    ("cloudflare-miss-private-trusted", {"cf-cache-status": "MISS", "cache-control": "private"}, dict(status="miss")),
    # ---- CloudFront X-Cache: "<x-edge-result-type> from cloudfront"
    *[(f"cloudfront-{value.lower()}", {"x-cache": f"{value} from cloudfront"},
       dict(status=want, source="x-cache", cache="cloudfront")) for value, want in CLOUDFRONT],
    ("cloudfront-miss-no-store", {"x-cache": "Miss from cloudfront", "cache-control": "no-store"}, dict(status="dynamic")),
    # ---- Azure Front Door / Azure CDN from Microsoft X-Cache, and Azure CDN (Edgio) status codes
    *[(f"azure-{value.lower()}", {"x-cache": value}, dict(status=want, source="x-cache", cache=None))
      for value, want in AZURE],
    # ---- Akamai X-Cache (Pragma: akamai-x-cache-on)
    *[(f"akamai-{value.lower()}", {"x-cache": f"{value} from {AKAMAI_SERVER} (AkamaiGHost/22.1.0-1) (-)"},
       dict(status=want, cache=AKAMAI_SERVER)) for value, want in AKAMAI],
    # ---- Fastly X-Cache with X-Served-By; with shielding the last entry is the edge
    ("fastly-hit", {"x-cache": "HIT", "x-served-by": "cache-jfk1041-JFK"}, dict(status="hit", cache="cache-jfk1041-JFK")),
    ("fastly-shield-hit-edge-miss", {"x-cache": "HIT, MISS", "x-served-by": "cache-jfk1041-JFK, cache-ord1720-ORD"},
     dict(status="miss", cache="cache-ord1720-ORD", detail="HIT, MISS")),
    ("fastly-shield-miss-edge-hit", {"x-cache": "MISS, HIT", "x-served-by": "cache-jfk1041-JFK, cache-ord1720-ORD"},
     dict(status="hit", cache="cache-ord1720-ORD")),
    ("fastly-hit-hit", {"x-cache": "HIT, HIT", "x-cache-hits": "1, 7"}, dict(status="hit", cache=None)),
    ("fastly-pass-reported-as-miss", {"x-cache": "MISS", "cache-control": "private, max-age=0"}, dict(status="dynamic")),
    ("fastly-miss-cacheable", {"x-cache": "MISS", "cache-control": "public, max-age=60"}, dict(status="miss", ttl=60.0)),
    # ---- nginx ($upstream_cache_status) / Varnish-style X-Cache, and Squid "HIT from <host>"
    *[(f"nginx-{value.lower()}", {"x-cache": value}, dict(status=want, source="x-cache")) for value, want in NGINX],
    ("squid-hit", {"x-cache": "HIT from proxy.example.net"}, dict(status="hit", cache="proxy.example.net")),
    ("squid-miss", {"x-cache": "MISS from proxy.example.net"}, dict(status="miss", cache="proxy.example.net")),
    ("squid-two-proxies", [("X-Cache", "HIT from parent.example.net"), ("X-Cache", "MISS from child.example.net")],
     dict(status="miss", cache="child.example.net")),
    # ---- no cache header: Cache-Control, Age, nothing
    ("age-hit", {"age": "120"}, dict(status="hit", source="age", cache=None, ttl=None)),
    ("age-zero", {"age": "0"}, dict(status="unknown", source="age")),
    ("age-garbage", {"age": "soon"}, dict(status="unknown", source="none")),
    ("age-negative", {"age": "-3"}, dict(status="unknown", source="none")),
    ("age-with-max-age", {"age": "100", "cache-control": "public, max-age=300"}, dict(status="hit", ttl=200.0)),
    ("private", {"cache-control": "private, max-age=60"}, dict(status="dynamic", source="cache-control", ttl=None)),
    ("no-store", {"cache-control": "no-store", "age": "5"}, dict(status="dynamic", source="cache-control")),
    ("private-qualified-is-storable", {"cache-control": 'private="Set-Cookie", max-age=60', "age": "5"},
     dict(status="hit", source="age", ttl=55.0)),
    ("no-cache-is-storable", {"cache-control": "no-cache"}, dict(status="unknown", source="none")),
    ("max-age-only", {"cache-control": "max-age=60"}, dict(status="unknown", source="none", ttl=60.0)),
    ("nothing", {}, dict(status="unknown", source="none", cache=None, ttl=None, stored=None, detail=None)),
    ("unrelated", {"content-type": "text/html", "via": "1.1 varnish"}, dict(status="unknown", source="none")),
    # ---- ttl from Cache-Control minus Age when the cache header does not say
    ("ttl-s-maxage-wins", {"x-cache": "HIT", "age": "100", "cache-control": "public, max-age=60, s-maxage=300"},
     dict(status="hit", ttl=200.0)),
    ("ttl-may-go-negative", {"cf-cache-status": "HIT", "age": "90", "cache-control": "max-age=60"}, dict(ttl=-30.0)),
    ("ttl-cache-status-wins", {"cache-status": "E; hit; ttl=7", "age": "1", "cache-control": "max-age=600"}, dict(ttl=7.0)),
    ("ttl-quoted-max-age", {"x-cache": "HIT", "cache-control": 'max-age="30"'}, dict(ttl=30.0)),
    # ---- precedence
    ("cache-status-over-x-cache", {"cache-status": "E; fwd=uri-miss", "x-cache": "HIT"},
     dict(status="miss", source="cache-status")),
    ("cache-status-over-cloudflare", {"cache-status": "E; hit", "cf-cache-status": "MISS"},
     dict(status="hit", source="cache-status")),
    ("cloudflare-over-x-cache", {"cf-cache-status": "MISS", "x-cache": "HIT"}, dict(status="miss", source="cf-cache-status")),
    ("x-cache-over-age", {"x-cache": "MISS", "age": "50"}, dict(status="miss", source="x-cache")),
    ("unreadable-cache-status-falls-through", {"cache-status": " , ", "x-cache": "HIT"}, dict(status="hit", source="x-cache")),
    ("unreadable-cloudflare-falls-through", {"cf-cache-status": "WHATEVER", "x-cache": "MISS"},
     dict(status="miss", source="x-cache")),
    ("unreadable-x-cache-falls-through", {"x-cache": "cached-ish", "age": "4"}, dict(status="hit", source="age")),
    ("empty-values-are-absent", {"cache-status": "", "cf-cache-status": "", "x-cache": "", "age": "3"},
     dict(status="hit", source="age")),
]


@pytest.mark.parametrize("headers, expected", [pytest.param(h, e, id=i) for i, h, e in CASES])
def test_classify(headers, expected):
    result = classify(headers)
    assert {field: getattr(result, field) for field in expected} == expected
    assert result.status in STATUSES and result.source in SOURCES


# ---- the sandbox edge nodes (edgectl/sandbox/servers.py), header shapes exactly as written there

NODE = "edge-us-east-1"
SANDBOX_SHAPES = [
    # (id, Cache-Status, X-Cache, origin Cache-Control, expected via Cache-Status, expected via X-Cache alone)
    ("hit", f"{NODE}; hit; ttl=297", "HIT", "public, max-age=60, s-maxage=300", "hit", "hit"),
    ("miss-stored", f"{NODE}; fwd=uri-miss; fwd-status=200; stored; ttl=300", "MISS", "public, max-age=60, s-maxage=300",
     "miss", "miss"),
    ("miss-404-stored", f"{NODE}; fwd=uri-miss; fwd-status=404; stored; ttl=30", "MISS", "public, max-age=30, s-maxage=30",
     "miss", "miss"),
    ("expired", f"{NODE}; fwd=stale; fwd-status=200; stored; ttl=300", "EXPIRED", "public, max-age=60, s-maxage=300",
     "expired", "expired"),
    ("revalidated", f"{NODE}; fwd=stale; fwd-status=304; ttl=300", "REVALIDATED", "public, max-age=60, s-maxage=300",
     "revalidated", "revalidated"),
    ("private-bypass", f"{NODE}; fwd=uri-miss; fwd-status=200", "BYPASS", "private, no-store", "dynamic", "bypass"),
    ("private-was-cached", f"{NODE}; fwd=stale; fwd-status=200", "BYPASS", "private, no-store", "dynamic", "bypass"),
    ("no-freshness", f"{NODE}; fwd=uri-miss; fwd-status=200", "BYPASS", "public", "miss", "bypass"),
    ("error-not-stored", f"{NODE}; fwd=uri-miss; fwd-status=500", "MISS", None, "miss", "miss"),
]


@pytest.mark.parametrize("cache_status, x_cache, cache_control, via_rfc, via_x_cache",
                         [pytest.param(*shape[1:], id=shape[0]) for shape in SANDBOX_SHAPES])
def test_sandbox_header_shapes(cache_status, x_cache, cache_control, via_rfc, via_x_cache):
    common = [("X-Served-By", NODE), ("Age", "3")] + ([("Cache-Control", cache_control)] if cache_control else [])
    both = classify([("X-Cache", x_cache), ("Cache-Status", cache_status)] + common)
    assert (both.status, both.source, both.cache, both.detail) == (via_rfc, "cache-status", NODE, cache_status)
    alone = classify([("X-Cache", x_cache)] + common)
    assert (alone.status, alone.source, alone.cache) == (via_x_cache, "x-cache", NODE)


def test_sandbox_origin_error_shape():
    result = classify({"cache-status": f"{NODE}; fwd=uri-miss; detail=origin-error"})
    assert (result.status, result.cache, result.stored, result.ttl) == ("miss", NODE, False, None)


async def _sandbox_responses() -> dict[str, list[tuple[str, str]]]:
    """Drive a real sandbox origin and edge node in-process; the raw response headers of each case."""
    from aiohttp import ClientSession
    from aiohttp.test_utils import TestServer

    from edgectl.sandbox.servers import EdgeNode, edge_app, origin_app
    from edgectl.sandbox.site import Site

    with socket.socket() as sock:  # a port nobody listens on: the origin of a node that cannot reach it
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    site = Site(pages=8)
    origin = TestServer(origin_app(site))
    await origin.start_server()
    node = EdgeNode(NODE, "us-east", f"http://127.0.0.1:{origin.port}", "token")
    edge = TestServer(edge_app(node))
    await edge.start_server()
    cut_off = TestServer(edge_app(EdgeNode("edge-cut-off", "us-east", f"http://127.0.0.1:{closed_port}", "token")))
    await cut_off.start_server()
    page, seen = "/docs/page-0001.html", {}
    try:
        async with ClientSession() as session:
            async def fetch(server, path, method="GET"):
                async with session.request(method, server.make_url(path)) as response:
                    await response.read()
                    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]

            seen["miss"] = await fetch(edge, page)
            seen["hit"] = await fetch(edge, page)
            seen["head-hit"] = await fetch(edge, page, "HEAD")
            node.cache[page].stored_at -= 3600  # expire it without waiting; the origin still has it
            seen["revalidated"] = await fetch(edge, page)
            node.cache[page].stored_at -= 3600
            site.touch(page)  # a deploy: the origin now has a new version
            seen["expired"] = await fetch(edge, page)
            seen["private"] = await fetch(edge, "/account/profile.html")
            seen["not-found"] = await fetch(edge, "/no/such/page.html")
            seen["origin-unreachable"] = await fetch(cut_off, page)
            node.faults.down = True
            seen["node-down"] = await fetch(edge, page)
    finally:
        for server in (cut_off, edge, origin):
            await server.close()
    return seen


@pytest.fixture(scope="module")
def sandbox_responses():
    return asyncio.run(_sandbox_responses())


@pytest.mark.parametrize("case, status, source, stored, cache, fresh", [
    ("miss", "miss", "cache-status", True, NODE, True),
    ("hit", "hit", "cache-status", None, NODE, True),
    ("head-hit", "hit", "cache-status", None, NODE, True),
    ("revalidated", "revalidated", "cache-status", False, NODE, True),
    ("expired", "expired", "cache-status", True, NODE, True),
    ("private", "dynamic", "cache-status", False, NODE, False),
    ("not-found", "miss", "cache-status", True, NODE, True),
    ("origin-unreachable", "miss", "cache-status", False, "edge-cut-off", False),
    ("node-down", "unknown", "none", None, None, False),
])
def test_live_sandbox_edge(sandbox_responses, case, status, source, stored, cache, fresh):
    pairs = sandbox_responses[case]
    result = classify(pairs)
    assert (result.status, result.source, result.stored, result.cache) == (status, source, stored, cache)
    assert (result.ttl is not None and 0 < result.ttl <= 300) if fresh else result.ttl is None
    assert classify(CIMultiDict(pairs)) == result == classify(httpx.Headers(pairs))


# ---- input shapes: mappings, pairs, bytes, repeated fields, case of names

def test_every_input_shape_reads_the_same():
    pairs = [("X-Cache", "HIT"), ("x-cache", "MISS"), ("X-Served-By", "cache-a"), ("X-SERVED-BY", "cache-b"),
             ("Age", "0")]
    message = email.message.Message()
    for name, value in pairs:
        message[name] = value
    expected = CacheStatus("miss", "x-cache", "cache-b", None, None, "HIT, MISS")
    shapes = [pairs, tuple(pairs), CIMultiDict(pairs), httpx.Headers(pairs), message,
              [(k.encode(), v.encode()) for k, v in pairs],  # bytes, as sent
              [(k.lower().encode(), v.encode()) for k, v in pairs]]  # bytes, as h11 hands them over
    for shape in shapes:
        assert classify(shape) == expected, type(shape)


def test_dicts_with_any_case_of_names():
    assert classify({"Cache-Status": "Edge; hit; ttl=9"}).ttl == 9.0
    assert classify({"CF-Cache-Status": "EXPIRED"}).status == "expired"
    both = classify({"X-Cache": "HIT", "x-cache": "MISS"})  # two spellings in one dict: both count, in order
    assert both.status == "miss" and both.detail == "HIT, MISS"


def test_non_text_values_are_read_as_text():
    assert classify({"age": 42}).status == "hit"
    assert classify({"x-cache": None, "age": b"7"}).status == "hit"


# ---- malformed values never raise

NAMES = st.sampled_from(["Cache-Status", "cache-status", "CF-Cache-Status", "X-Cache", "x-cache", "X-Served-By",
                         "Age", "Cache-Control", "Via"])
PIECES = st.sampled_from(['"', ",", ";", "=", "?0", "?1", "\\", " ", "hit", "fwd", "stale", "uri-miss", "ttl",
                          "fwd-status", "304", "-", "stored", "from", "HIT", "Miss", "TCP_HIT", "private", "no-store",
                          "max-age", "s-maxage", "9" * 400, "1e400", "nan", "\x00", "é"])
VALUES = st.one_of(st.text(max_size=40), st.lists(PIECES, max_size=16).map("".join), st.binary(max_size=20))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(NAMES, VALUES), max_size=8))
def test_malformed_values_never_raise(pairs):
    texts = [(k, v if isinstance(v, str) else v.decode("latin-1")) for k, v in pairs]
    for shape in (pairs, dict(pairs), CIMultiDict(texts)):
        result = classify(shape)
        assert isinstance(result, CacheStatus)
        assert result.status in STATUSES and result.source in SOURCES
        assert result.ttl is None or math.isfinite(result.ttl)
        assert result.cache is None or isinstance(result.cache, str)
        assert result.stored in (None, True, False)
