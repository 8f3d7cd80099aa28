"""Purging through the fastly kind: the requests Fastly gets for each purge kind, soft purges, batches, the rate limit, errors."""

from __future__ import annotations

import json
import math
import time

import httpx
import pytest

from conftest import provider_table
from fake_fastly import KEY, SERVICE, FakeFastly, Token


def wall(seen) -> float:
    """A request's arrival on the wall clock (Seen.at is monotonic)."""
    return seen.at + (time.time() - time.monotonic())


def purge(cli, *args):
    return cli("cdn", "purge", "--provider", "fastly-prod", *args, "--yes", "-o", "json")


def test_a_url_tags_and_everything_are_each_their_documented_request_with_the_key(cli, fake, config):
    run = purge(cli, "--url", "https://www.example.com/caf\u00e9/menu?lang=fr", "--tag", "menu", "--tag", "prices")
    assert run.exit_code == 0, run.stderr
    assert run.json()["batches"] == {"completed": 2}
    url, keys = sorted(fake.requests, key=lambda seen: seen.path.endswith("/purge"))  # sent side by side
    assert (url.method, url.target) == ("POST", "/purge/www.example.com/caf%C3%A9/menu?lang=fr")
    assert (keys.method, keys.path, keys.json()) == ("POST", f"/service/{SERVICE}/purge",
                                                     {"surrogate_keys": ["menu", "prices"]})
    for seen in fake.requests:
        assert seen.headers["fastly-key"] == KEY and "fastly-soft-purge" not in seen.headers
    everything = purge(cli, "--everything")
    assert everything.exit_code == 0, everything.stderr
    assert (fake.requests[-1].method, fake.requests[-1].path) == ("POST", f"/service/{SERVICE}/purge_all")
    assert sorted(p.kind for p in fake.purged()) == ["all", "keys", "url"]


def test_257_keys_are_two_requests_of_256_and_1(cli, fake, config):
    keys = [f"product-{n}" for n in range(257)]
    run = purge(cli, *[a for k in keys for a in ("--tag", k)])
    assert run.exit_code == 0, run.stderr
    sent = sorted((seen.json()["surrogate_keys"] for seen in fake.requests), key=len, reverse=True)
    assert [len(s) for s in sent] == [256, 1] and [k for s in sent for k in s] == keys
    assert all(seen.status == 200 for seen in fake.requests)


def test_soft_purge_sends_the_header_and_refuses_everything_before_anything_is_sent(cli, fake, config):
    config(soft_purge=True)
    run = purge(cli, "--url", "https://www.example.com/a", "--tag", "news")
    assert run.exit_code == 0, run.stderr
    assert [seen.headers.get("fastly-soft-purge") for seen in fake.requests] == ["1", "1"]
    assert [p.soft for p in fake.purged()] == [True, True]

    fake.clear()
    refused = purge(cli, "--everything", "--tag", "news")
    assert refused.exit_code == 2
    assert "cannot soft-purge everything" in refused.stderr and len(refused.stderr.strip().splitlines()) <= 2
    assert fake.requests == []
    assert cli("cdn", "history", "-o", "json").json()[0]["targets"] == {"url": 1, "tag": 1}  # nothing recorded


def test_prefixes_and_hosts_are_refused_as_fastly_cannot_purge_them(cli, fake, config):
    run = purge(cli, "--prefix", "https://www.example.com/docs/")
    assert run.exit_code == 2 and "cannot purge by prefix" in run.stderr and "url, tag, everything" in run.stderr
    assert fake.requests == []


@pytest.mark.parametrize("tag, says", [("two words", "without spaces"), ("x" * 1025, "1024"),
                                       ("caf\u00e9", "printable ASCII")])
def test_a_key_fastly_would_refuse_is_refused_before_anything_is_sent(cli, fake, config, tag, says):
    run = purge(cli, "--tag", tag)
    assert run.exit_code == 2 and says in run.stderr
    assert fake.requests == []


def test_fastlys_msg_and_detail_make_the_one_line_error(cli, fake, config, isolated):
    (isolated / "edgectl.toml").write_text(provider_table("fastly-prod", fake.url).replace(SERVICE, "NoSuchService1"))
    run = purge(cli, "--tag", "news")
    assert run.exit_code == 1
    [failed] = run.json()["failed"]
    assert failed["error"] == ("fastly: purge surrogate keys: Record not found: Cannot find service "
                               "'NoSuchService1' (HTTP 404)")
    assert len(fake.requests) == 1  # not retried: sending again cannot help


def test_a_wrong_key_fails_at_once_and_never_shows_the_key(cli, fake, config, monkeypatch):
    monkeypatch.setenv("FASTLY_TEST_KEY", "k-not-the-right-one")
    run = cli("--debug", "cdn", "purge", "--provider", "fastly-prod", "--tag", "a", "--url", "https://www.example.com/x",
              "--yes", "-o", "json")
    assert run.exit_code == 1
    errors = {f["error"] for f in run.json()["failed"]}
    assert "fastly: purge surrogate keys: Provided credentials are missing or invalid (HTTP 401)" in errors
    assert "k-not-the-right-one" not in run.stdout + run.stderr
    assert len(fake.requests) <= 2 and all(seen.status == 401 for seen in fake.requests)

    tested = cli("cdn", "providers", "test", "fastly-prod", "-o", "json")
    assert tested.exit_code == 1
    assert tested.json()[0]["detail"] == "fastly: token check: Provided credentials are missing or invalid (HTTP 401)"


def test_providers_test_checks_the_key_and_the_service_with_two_reads(cli, fake, config):
    run = cli("cdn", "providers", "test", "fastly-prod", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()[0]["detail"] == f"token accepted (scope global); service www.example.com (id {SERVICE}) found"
    assert [(s.method, s.path) for s in fake.requests] == [("GET", "/tokens/self"), ("GET", f"/service/{SERVICE}")]
    assert fake.purged() == []


def test_providers_test_says_what_a_purge_only_token_cannot_check(cli, isolated, key):
    with FakeFastly(tokens={KEY: Token("purge_select purge_all")}) as fake:
        (isolated / "edgectl.toml").write_text(provider_table("fastly-prod", fake.url))
        run = cli("cdn", "providers", "test", "fastly-prod", "-o", "json")
        assert run.exit_code == 0, run.stderr
        assert "scope purge_select purge_all" in run.json()[0]["detail"]
        assert "not read: the token's scope cannot read services" in run.json()[0]["detail"]
    with FakeFastly(tokens={KEY: Token("global", ["AnotherService1"])}) as fake:
        (isolated / "edgectl.toml").write_text(provider_table("fastly-prod", fake.url))
        run = cli("cdn", "providers", "test", "fastly-prod", "-o", "json")
        assert run.exit_code == 1 and f"not service {SERVICE}" in run.json()[0]["detail"]


def test_remaining_zero_holds_the_next_counted_request_until_the_reset(cli, isolated, key):
    with FakeFastly(budget=1, window=3) as fake:
        (isolated / "edgectl.toml").write_text(provider_table("fastly-prod", fake.url))
        first = purge(cli, "--everything")
        assert first.exit_code == 0, first.stderr
        reset = fake.window_reset
        assert fake.requests[0].status == 200 and reset is not None
        # the same key in the same process: Fastly said none remain, so the next purge_all waits unsent
        second = purge(cli, "--everything", "--tag", "still-sent-at-once")
        assert second.exit_code == 0, second.stderr
        purge_alls = [s for s in fake.requests if s.path.endswith("/purge_all")]
        assert [s.status for s in purge_alls] == [200, 200]  # never a 429: it was not sent before the reset
        assert wall(purge_alls[1]) >= reset
        keys = [s for s in fake.requests if s.path.endswith("/purge")]
        assert wall(keys[0]) < reset  # key purges are not counted, so not held
        assert second.json()["run"]["rate_limited"] == 0


def test_a_429_is_sent_again_after_the_reset(cli, isolated, key):
    with FakeFastly(budget=1, window=2) as fake:
        (isolated / "edgectl.toml").write_text(provider_table("fastly-prod", fake.url))
        # another client spent the budget: edgectl learns of it from the 429
        with httpx.Client(base_url=fake.url, headers={"Fastly-Key": "other"}, trust_env=False) as other:
            fake.tokens["other"] = Token()
            assert other.post(f"/service/{SERVICE}/purge_all").status_code == 200
        reset = fake.window_reset
        fake.clear()
        run = purge(cli, "--everything")
        assert run.exit_code == 0, run.stderr
        assert [s.status for s in fake.requests] == [429, 200]
        assert wall(fake.requests[1]) >= reset
        assert run.json()["batches"] == {"completed": 1} and run.json()["run"]["requests"] == 2


def test_the_provider_holds_a_counted_request_without_sending_it(fake, key):
    from edgectl.providers.base import Backpressure, Batch, ProviderContext, RateLimited

    from edgectl_fastly.provider import FastlyProvider

    fake.budget, fake.window = 1, 30
    context = ProviderContext(resolve_secret=lambda name, ref: KEY, timeout=10)
    provider = FastlyProvider("fastly-prod", {"kind": "fastly", "service_id": SERVICE, "api_token": "env:X",
                                              "endpoint": fake.url + "/"}, context)
    try:
        provider.purge(Batch("everything", ("*",), "r1"))
        with pytest.raises(Backpressure) as held:
            provider.purge(Batch("everything", ("*",), "r2"))
        assert isinstance(held.value, RateLimited)
        assert 25 < held.value.retry_after <= 33 and "limit resets in" in held.value.message
        assert len(fake.requests) == 1
        provider.purge(Batch("tag", ("k",), "r3"))  # not counted: sent while purge_all is held
        assert len(fake.requests) == 2
    finally:
        provider.close()


def test_a_dropped_answer_is_sent_again_and_the_purge_completes(cli, fake, config):
    fake.drop_next()
    run = purge(cli, "--url", "https://www.example.com/page")
    assert run.exit_code == 0, run.stderr
    assert [s.fault for s in fake.requests] == ["drop", None]
    assert [p.items for p in fake.purged()] == [("www.example.com/page",)] * 2


@pytest.mark.parametrize("setting, value, says", [
    ("service_id", "not an id!", "service_id: must be the service's alphanumeric id"),
    ("api_token", "k-1234567890", "api_token: must be a reference"),
    ("endpoint", "ftp://api.fastly.com", "endpoint: must be an http(s) URL"),
    ("soft_purge", "yes", "soft_purge: must be true or false"),
    ("purge_rate", 0, "purge_rate: must be requests per second"),
    ("hourly_limit", 1.5, "hourly_limit: must be a whole number"),
    ("zone_id", "x", "zone_id: unknown setting"),
])
def test_bad_settings_are_one_line_and_exit_2(cli, fake, config, setting, value, says, isolated):
    config(**{setting: value})
    run = purge(cli, "--tag", "news")
    assert run.exit_code == 2, run.stderr
    assert says in run.stderr and "Traceback" not in run.stderr
    assert fake.requests == []


def test_the_limits_are_what_fastly_documents(cli, fake, config):
    config(purge_rate=20, hourly_limit=5000)
    [row] = cli("cdn", "providers", "list", "-o", "json").json()
    limits = row["limits"]
    assert row["purge_kinds"] == ["url", "tag", "everything"] and row["service_id"] == SERVICE
    assert limits["batch_size"] == {"url": 1, "tag": 256, "everything": 1}
    assert limits["buckets"]["purges"] == {"rate_per_s": 20.0, "burst": 20.0, "unit": "request"}
    assert limits["buckets"]["api"]["burst"] == 5000 and math.isclose(limits["buckets"]["api"]["rate_per_s"], 5000 / 3600)
    assert limits["bucket_for"] == {"url": "purges", "tag": "purges", "everything": "api"}
    assert json.dumps(row).count(KEY) == 0


def test_a_urls_default_port_is_dropped_as_clients_send_no_port_in_host(cli, fake, config):
    """Fastly caches by the Host header, which carries no port for 443 (https) or 80 (http); another port is kept."""
    sent = {"https://www.example.com:443/a": "/purge/www.example.com/a",
            "http://www.example.com:80/b?x=1": "/purge/www.example.com/b?x=1",
            "https://www.example.com:8443/c": "/purge/www.example.com:8443/c",
            "http://www.example.com:443/d": "/purge/www.example.com:443/d"}
    for url, target in sent.items():
        fake.clear()
        run = purge(cli, "--url", url)
        assert run.exit_code == 0, run.stderr
        assert [seen.target for seen in fake.requests] == [target], url


@pytest.mark.parametrize("scope, cannot", [("global:read", None), ("purge_all", "purge_select"),
                                           ("global:read purge_select", "purge_all")])
def test_providers_test_names_the_purge_scope_a_token_lacks(cli, isolated, key, scope, cannot):
    """Fastly's scopes: purge_select purges URLs and keys, purge_all everything, global both; global:read neither."""
    with FakeFastly(tokens={KEY: Token(scope)}) as fake:
        (isolated / "edgectl.toml").write_text(provider_table("fastly-prod", fake.url))
        run = cli("cdn", "providers", "test", "fastly-prod", "-o", "json")
        [result] = run.json()
        if cannot is None:
            assert run.exit_code == 1 and result["result"] == "failed"
            assert result["detail"] == ("fastly: the API token (scope global:read) cannot purge: URLs and surrogate "
                                        "keys need the purge_select scope, everything purge_all (global has both); "
                                        "its stats can still be pulled")
            assert purge(cli, "--url", "https://www.example.com/a").exit_code == 1  # as Fastly refuses it: 403
        else:
            assert run.exit_code == 0, run.stderr
            what = {"purge_select": "URLs or surrogate keys", "purge_all": "everything"}[cannot]
            assert f"; it cannot purge {what}: the scope lacks {cannot}" in result["detail"]
