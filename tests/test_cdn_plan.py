"""The purge planner and the token bucket, with real provider classes (planning contacts nothing)."""

from __future__ import annotations

import pytest

from edgectl.cdn.execute import JITTER_RESERVE_S, TokenBucket
from edgectl.cdn.plan import Target, build_targets, estimate_seconds, make_plan, read_urls
from edgectl.errors import UsageError
from edgectl.providers.base import NodeEndpoint, ProviderContext
from edgectl.providers.registry import provider_class

ZONE = "023e105f4ecef8ad9ca31a8372d0c353"


def provider(kind: str, name: str, **settings):
    context = ProviderContext(resolve_secret=lambda key, ref: "unused", nodes=[NodeEndpoint("n1", "http://127.0.0.1:9")])
    return provider_class(kind)(name, {"kind": kind, **settings}, context)


def cloudflare(name="cf", **settings):
    return provider("cloudflare", name, zone_id=ZONE, api_token="env:CF", **settings)


def cloudfront(name="front", **settings):
    return provider("cloudfront", name, distribution_id="E2EXAMPLE1ABCD", **settings)


def urls(*paths: str, host: str = "www.example.com") -> list[Target]:
    return build_targets([f"https://{host}{p}" for p in paths], [], [], [], [], False)


def test_urls_are_batched_at_the_provider_limit_after_de_duplication():
    targets = urls(*(f"/a/{i}.css" for i in range(95)), "/a/0.css", "/a/1.css")
    plan = make_plan(targets, [cloudflare(hosts=["www.example.com"])], explicit=False)
    [cf] = plan.providers
    assert [len(b.items) for b in cf.batches] == [30, 30, 30, 5]
    assert cf.targets == 97 and cf.items == 95


def test_layered_cdns_both_purge_a_host_they_declare():
    plan = make_plan(urls("/x.js"), [cloudflare(hosts=["www.example.com"]), cloudfront(hosts=["www.example.com"])],
                     explicit=False)
    assert {p.name: [b.items for b in p.batches] for p in plan.providers} == {
        "cf": [("https://www.example.com/x.js",)], "front": [("/x.js",)]}


def test_an_unmapped_url_is_an_error_naming_it_and_the_declared_hosts():
    with pytest.raises(UsageError) as caught:
        make_plan(urls("/x.js", host="shop.example.net"), [cloudflare(hosts=["www.example.com"]), cloudfront()],
                  explicit=False)
    assert "shop.example.net" in caught.value.message and "www.example.com" in caught.value.hint


def test_a_named_provider_refuses_a_url_of_a_host_it_does_not_serve():
    with pytest.raises(UsageError, match="front does not serve shop.example.net"):
        make_plan(urls("/x.js", host="shop.example.net"), [cloudfront(hosts=["www.example.com"])], explicit=True)


def test_a_tag_needs_a_named_provider_unless_only_one_is_configured():
    tag = build_targets([], [], [], ["release-7"], [], False)
    assert make_plan(tag, [cloudflare()], explicit=False).providers[0].batches[0].items == ("release-7",)
    with pytest.raises(UsageError, match="names no host"):
        make_plan(tag, [cloudflare(), cloudfront()], explicit=False)


def test_an_unsupported_kind_is_an_error_listing_capabilities_or_skipped_on_request():
    targets = build_targets(["https://www.example.com/a"], [], [], ["t1"], [], False)
    with pytest.raises(UsageError, match=r"front \(cloudfront\) cannot purge by tag .*purges by url, prefix"):
        make_plan(targets, [cloudfront()], explicit=True)
    plan = make_plan(targets, [cloudfront()], explicit=True, skip_unsupported=True)
    assert plan.providers[0].skipped == {"tag": 1}
    assert [b.kind for b in plan.providers[0].batches] == ["url"]


def test_request_headers_only_go_to_providers_that_can_purge_with_them():
    with pytest.raises(UsageError, match="cannot purge with request headers"):
        make_plan(urls("/a"), [cloudfront()], explicit=True, headers={"CF-Device-Type": "mobile"})
    plan = make_plan(urls("/a"), [cloudflare()], explicit=True, headers={"CF-Device-Type": "mobile"})
    assert plan.headers == {"CF-Device-Type": "mobile"}


def test_bad_lines_in_a_url_file_are_reported_with_file_and_line():
    lines = ["# deploy 42", "https://www.example.com/ok", "", "ftp://x/y", "not a url", "https://www.example.com/#frag"]
    with pytest.raises(UsageError) as caught:
        list(read_urls(lines, "changed.txt"))
    assert caught.value.message.startswith("3 bad URL line(s) in changed.txt")
    for where in ("changed.txt:4", "changed.txt:5", "changed.txt:6"):
        assert where in caught.value.message


def test_unicode_hosts_are_planned_in_their_idna_form_and_match_unicode_hosts_in_config():
    targets = build_targets(["https://Bücher.example.com/ü.css"], [], ["https://bücher.example.com/docs/"], [],
                            ["bücher.example.com."], False)
    assert {t.host for t in targets} == {"xn--bcher-kva.example.com"}

    plan = make_plan(targets, [cloudflare(hosts=["bücher.example.com"])], explicit=False)

    assert sorted(item for batch in plan.providers[0].batches for item in batch.items) == [
        "https://xn--bcher-kva.example.com/%C3%BC.css",  # the path percent-encoded, as before
        "xn--bcher-kva.example.com",
        "xn--bcher-kva.example.com/docs/",
    ]


def test_an_invalid_unicode_host_is_one_line_naming_where():
    with pytest.raises(UsageError) as raised:
        list(read_urls(["https://ok.example.com/", "https://-ü.example.com/x"], "urls.txt"))
    assert "urls.txt:2: URL host '-ü.example.com' is not a valid internationalised domain name" in raised.value.message
    with pytest.raises(UsageError, match="host '☃.example.com' is not a valid internationalised domain name"):
        build_targets([], [], [], [], ["☃.example.com"], False)


def test_a_provider_hosts_setting_must_be_idna_too():
    problems = provider_class("cloudflare").check_settings(
        {"kind": "cloudflare", "zone_id": ZONE, "api_token": "env:CF", "hosts": ["bücher.example.com", "☃.example"]})
    assert problems == ["hosts: hostname '☃.example' is not a valid internationalised domain name: "
                        "Codepoint U+2603 at position 1 of '☃' not allowed"]


def test_the_estimate_is_what_the_token_buckets_allow():
    limits = cloudflare(plan="free").limits()  # 800 URLs/s, a bucket of 800; 4 in flight
    depth = 800 - 4 * 30 - 800 * JITTER_RESERVE_S
    assert estimate_seconds(limits, [("url", 30)] * 334) == pytest.approx((334 * 30 - depth) / 800)
    assert estimate_seconds(limits, [("tag", 100)] * 30) == pytest.approx((30 - (25 - 4 - 5 / 60 * JITTER_RESERVE_S)) / (5 / 60))
    assert estimate_seconds(limits, [("url", 30)] * 10) == 0


def test_the_bucket_paces_at_its_rate_and_a_retry_after_drains_it():
    bucket = TokenBucket(rate=100, burst=100 - 20 - 100 * JITTER_RESERVE_S, now=0.0)
    capacity = 100 - 20 - 100 * JITTER_RESERVE_S
    assert bucket.wait_time(capacity, 0.0) == 0
    bucket.take(capacity)
    assert bucket.wait_time(30, 0.0) == pytest.approx(0.3)
    assert bucket.wait_time(30, 0.3) == 0
    bucket.drain_until(5.0, leave=10)
    assert bucket.wait_time(10, 1.0) == pytest.approx(4.0)  # the request told to wait goes when told, not later
    assert bucket.wait_time(30, 1.0) == pytest.approx(4.0 + 0.2)  # more than it waits for the refill
    bucket.drain_until(6.0)
    assert bucket.wait_time(1, 6.0) == 0 and bucket.wait_time(2, 6.0) == pytest.approx(0.01)
