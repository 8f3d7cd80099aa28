"""`edgectl cdn purge` end to end through the CLI, against the Cloudflare and ARM fakes, moto and the sandbox fleet."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.fakes.azure_arm import FakeArm
from tests.fakes.cloudflare_api import DEFAULT_TOKEN, DEFAULT_ZONES, FakeCloudflare
from tests.fakes.cloudfront_faults import CloudFrontFaults
from tests.fakes.sandbox_fleet import register, running_fleet
from tests.fakes.moto_server import DISTRIBUTION_CONFIG, TEST_KEYS as AWS_KEYS

ZONE_ID = DEFAULT_ZONES["example.com"]
WWW = "https://www.example.com"
SUB = "6f1c1d3e-0c55-4a0b-9a55-3e0d2b0c7a11"
ARM_TOKEN = "arm-token-for-purge-tests-0123"
SANDBOX_HOST = "www.sandbox.test"


# -- config --------------------------------------------------------------------------------------

def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)  # a TOML basic string for everything used here


def write_config(path: Path, providers: dict[str, dict]) -> str:
    lines = []
    for name, settings in providers.items():
        lines.append(f"[providers.{name}]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in settings.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return str(path)


def cloudflare(fake: FakeCloudflare, **extra) -> dict:
    return {"kind": "cloudflare", "zone_id": ZONE_ID, "api_token": "env:CF_TOKEN", "endpoint_url": fake.url,
            "hosts": ["www.example.com"], **extra}


def cloudfront(proxy: CloudFrontFaults, distribution: str, **extra) -> dict:
    return {"kind": "cloudfront", "distribution_id": distribution, "endpoint_url": proxy.url,
            "hosts": ["www.example.com"], "poll_interval": 0.5, **extra}


def azure(arm: FakeArm, kind: str, **extra) -> dict:
    return {"kind": kind, "subscription_id": SUB, "resource_group": "rg-edge",
            "profile": "cdn-profile" if kind == "azure_cdn" else "afd-profile",
            "endpoint": "assets" if kind == "azure_cdn" else "web",
            "endpoint_url": arm.url, "access_token": "env:AZURE_ARM_TOKEN", **extra}


# -- servers ------------------------------------------------------------------------------------------

@pytest.fixture
def cf(monkeypatch):
    monkeypatch.setenv("CF_TOKEN", DEFAULT_TOKEN)
    server = FakeCloudflare().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def _proxy(moto):
    proxy = CloudFrontFaults(moto.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy(_proxy, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    _proxy.reset()
    yield _proxy
    _proxy.reset()


@pytest.fixture(scope="module")
def admin(moto):
    import boto3

    return boto3.client("cloudfront", endpoint_url=moto.url, **AWS_KEYS)


@pytest.fixture
def distribution(admin) -> str:
    reference = f"edgectl-purge-test-{time.monotonic_ns()}"
    return admin.create_distribution(
        DistributionConfig={"CallerReference": reference, **DISTRIBUTION_CONFIG})["Distribution"]["Id"]


def invalidations(admin, distribution: str) -> list[dict]:
    """Every invalidation moto holds for the distribution, oldest first, with its paths."""
    listed = admin.list_invalidations(DistributionId=distribution)["InvalidationList"].get("Items") or []
    found = [admin.get_invalidation(DistributionId=distribution, Id=item["Id"])["Invalidation"] for item in listed]
    return sorted(found, key=lambda inv: inv["CreateTime"])


def invalidated_paths(admin, distribution: str) -> list[list[str]]:
    return [inv["InvalidationBatch"]["Paths"].get("Items") or [] for inv in invalidations(admin, distribution)]


@pytest.fixture
def arm(monkeypatch):
    monkeypatch.setenv("AZURE_ARM_TOKEN", ARM_TOKEN)
    server = FakeArm(token=ARM_TOKEN, polls_before_done=0).start()
    server.add_endpoint(SUB, "rg-edge", "cdn-profile", "assets")
    server.add_endpoint(SUB, "rg-edge", "afd-profile", "web", kind="afd")
    yield server
    server.stop()


def arm_bodies(arm: FakeArm) -> list[dict]:
    return [json.loads(r.body) for r in arm.purge_posts()]


def operation_gets(arm: FakeArm) -> list:
    return [r for r in arm.requests if "/operationresults/" in r.path]


# -- running edgectl ---------------------------------------------------------------------------------

def purge_posts(fake: FakeCloudflare) -> list:
    return [c for c in fake.calls if c[0] == "POST" and c[1].endswith("/purge_cache")]


def show(cli, config: str, purge_id) -> dict:
    run = cli("--config", config, "cdn", "show", str(purge_id), "-o", "json")
    assert run.exit_code == 0, run.stderr
    return run.json()


def history(cli, config: str, *args) -> list[dict]:
    run = cli("--config", config, "cdn", "history", *args, "-o", "json")
    assert run.exit_code == 0, run.stderr
    return run.json()


def url_args(urls) -> list[str]:
    return [arg for url in urls for arg in ("--url", url)]


# ==== each provider kind =================================================================================

def test_cloudflare_purge_reaches_the_api(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf)})

    run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a.css", "--url", f"{WWW}/b.js", "-o", "json")

    assert run.exit_code == 0, run.stderr
    record = run.json()
    assert record["status"] == "completed" and record["resume"] is None and record["failed"] == []
    assert [p["body"] for p in cf.purged] == [{"files": [f"{WWW}/a.css", f"{WWW}/b.js"]}]
    assert cf.purged[0]["zone_id"] == ZONE_ID
    [batch] = show(cli, config, record["id"])["batch_list"]
    assert (batch["state"], batch["attempts"], batch["provider_ref"]) == ("completed", 1, ZONE_ID)


def test_cloudfront_purge_creates_an_invalidation_at_moto(cli, isolated, proxy, admin, distribution):
    config = write_config(isolated / "c.toml", {"front": cloudfront(proxy, distribution)})

    run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/index.html", "--prefix", f"{WWW}/docs/",
              "-o", "json")

    assert run.exit_code == 0, run.stderr
    record = run.json()
    assert record["status"] == "completed"  # moto reports every invalidation Completed at once
    assert sorted(invalidated_paths(admin, distribution)) == [["/docs/*"], ["/index.html"]]
    batches = show(cli, config, record["id"])["batch_list"]
    ids = {inv["Id"] for inv in invalidations(admin, distribution)}
    assert {b["provider_ref"] for b in batches} == ids
    assert {b["state"] for b in batches} == {"completed"}


def test_azure_cdn_and_front_door_purges_reach_arm(cli, isolated, arm):
    config = write_config(isolated / "c.toml", {
        "cdn": azure(arm, "azure_cdn", hosts=["cdn.example.com"]),
        "afd": azure(arm, "azure_frontdoor", hosts=["www.example.com", "shop.example.com"],
                     domains=["www.example.com"]),
    })

    run = cli("--config", config, "cdn", "purge", "--url", "https://cdn.example.com/css/site.css",
              "--prefix", "https://cdn.example.com/img/", "--url", f"{WWW}/index.html", "--host", "shop.example.com",
              "-o", "json")

    assert run.exit_code == 0, run.stderr
    got = sorted((p.kind, p.endpoint, tuple(p.paths), tuple(p.domains or ())) for p in arm.purges)
    assert got == [
        ("afd", "web", ("/*",), ("shop.example.com",)),
        ("afd", "web", ("/index.html",), ("www.example.com",)),
        ("cdn", "assets", ("/css/site.css",), ()),
        ("cdn", "assets", ("/img/*",), ()),
    ]
    record = run.json()
    assert record["status"] == "accepted"
    assert {(p["provider"], p["accepted"]) for p in record["providers"]} == {("cdn", 2), ("afd", 2)}


# -- the sandbox fleet, through the http kind ------------------------------------------------------------

@pytest.fixture(scope="module")
def box(tmp_path_factory):
    with running_fleet(tmp_path_factory.mktemp("purge-sandbox")) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(box, isolated):
    """The fleet's nodes in this test's inventory, and a config whose `http` provider purges them."""
    register(box, isolated / "state.db")
    config = write_config(isolated / "c.toml", {"edge": {
        "kind": "http", "nodes": "label:sandbox=true", "hosts": [SANDBOX_HOST], "token": f"file:{box.token_file}"}})
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield box, config, client


def fetch(client, node, path: str) -> str:
    response = client.get(node.url + path, headers={"Host": SANDBOX_HOST})
    assert response.status_code in (200, 404), response.text
    return response.headers["x-cache"]


def fill(client, box, paths) -> None:
    """Fetch every path through every node until it is a cache hit there."""
    for node in box.nodes:
        for path in paths:
            fetch(client, node, path)
            assert fetch(client, node, path) == "HIT", (node.name, path)


def stats(client, node) -> dict:
    return client.get(node.url + "/.edge/stats").json()


def test_http_purge_empties_every_sandbox_node(cli, sandbox):
    box, config, client = sandbox
    one, two, three, kept = "/docs/page-0001.html", "/docs/page-0005.html", "/news/page-0004.html", "/shop/page-0003.html"
    fill(client, box, [one, two, three, kept])
    before = [stats(client, node) for node in box.nodes]

    single = cli("--config", config, "cdn", "purge", "--url", f"http://{SANDBOX_HOST}{one}", "-o", "json")
    assert single.exit_code == 0, single.stderr
    after_single = [stats(client, node) for node in box.nodes]
    for old, new in zip(before, after_single):
        assert new["entries"] == old["entries"] - 1 and new["purges"] == old["purges"] + 1

    bulk = cli("--config", config, "cdn", "purge", "--url", f"http://{SANDBOX_HOST}{two}",
               "--prefix", "/news/", "-o", "json")
    assert bulk.exit_code == 0, bulk.stderr
    after_bulk = [stats(client, node) for node in box.nodes]
    for old, new in zip(after_single, after_bulk):
        assert new["entries"] <= old["entries"] - 2 and new["purges"] >= old["purges"] + 2

    for node in box.nodes:
        assert [fetch(client, node, p) for p in (one, two, three)] == ["MISS", "MISS", "MISS"], node.name
        assert fetch(client, node, kept) == "HIT", node.name
    batches = show(cli, config, bulk.json()["id"])["batch_list"]
    assert sorted((b["kind"], b["state"]) for b in batches) == [("prefix", "completed"), ("url", "completed")]
    assert all("2 nodes" in b["detail"] for b in batches)


def test_http_purge_by_tag_and_everything(cli, sandbox):
    box, config, client = sandbox
    docs, blog = "/docs/page-0009.html", "/blog/page-0010.html"
    fill(client, box, [docs, blog])

    assert cli("--config", config, "cdn", "purge", "--tag", "section-docs").exit_code == 0
    for node in box.nodes:
        assert (fetch(client, node, docs), fetch(client, node, blog)) == ("MISS", "HIT")

    refused = cli("--config", config, "cdn", "purge", "--everything")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert all(stats(client, node)["entries"] > 0 for node in box.nodes)
    assert cli("--config", config, "cdn", "purge", "--everything", "--yes").exit_code == 0
    assert [stats(client, node)["entries"] for node in box.nodes] == [0, 0]


# ==== mapping targets to providers ======================================================================

@pytest.fixture
def two(cli, isolated, cf, proxy, distribution):
    """Cloudflare for www; CloudFront for www and static."""
    return write_config(isolated / "c.toml", {
        "cf": cloudflare(cf),
        "front": cloudfront(proxy, distribution, hosts=["www.example.com", "static.example.com"]),
    })


def test_urls_go_to_the_providers_that_declare_their_host(cli, two, cf, admin, distribution):
    run = cli("--config", two, "cdn", "purge", "--url", f"{WWW}/page.html", "--url", "https://static.example.com/x.js",
              "-o", "json")

    assert run.exit_code == 0, run.stderr
    assert [p["items"] for p in cf.purged] == [[f"{WWW}/page.html"]]
    assert invalidated_paths(admin, distribution) == [["/page.html", "/x.js"]]
    assert sorted(run.json()["providers"][i]["provider"] for i in range(2)) == ["cf", "front"]


def test_an_unmapped_url_is_exit_2_naming_it(cli, two, cf, admin, distribution):
    run = cli("--config", two, "cdn", "purge", "--url", f"{WWW}/fine.html", "--url", "https://other.example.org/x")

    assert run.exit_code == 2
    assert "other.example.org" in run.stderr and "https://other.example.org/x" in run.stderr
    assert "www.example.com/fine.html" not in run.stderr
    assert len(cf.requests) == 0 and invalidations(admin, distribution) == []
    assert history(cli, two) == []


def test_provider_is_repeatable_and_all_providers_takes_every_one(cli, isolated, cf, proxy, distribution, admin, arm):
    config = write_config(isolated / "c.toml", {
        "cf": cloudflare(cf),
        "front": cloudfront(proxy, distribution),
        "afd": azure(arm, "azure_frontdoor", hosts=["www.example.com"]),
    })

    only = cli("--config", config, "cdn", "purge", "-p", "front", "--url", f"{WWW}/one.html")
    assert only.exit_code == 0, only.stderr
    assert (len(cf.purged), len(invalidations(admin, distribution)), len(arm.purges)) == (0, 1, 0)

    both = cli("--config", config, "cdn", "purge", "-p", "cf", "--provider", "afd", "--url", f"{WWW}/two.html")
    assert both.exit_code == 0, both.stderr
    assert [p["items"] for p in cf.purged] == [[f"{WWW}/two.html"]]
    assert [p.paths for p in arm.purges] == [["/two.html"]]
    assert len(invalidations(admin, distribution)) == 1

    every = cli("--config", config, "cdn", "purge", "--all-providers", "--url", f"{WWW}/three.html", "-o", "json")
    assert every.exit_code == 0, every.stderr
    assert sorted(p["provider"] for p in every.json()["providers"]) == ["afd", "cf", "front"]
    assert [p["items"] for p in cf.purged][-1] == [f"{WWW}/three.html"]
    assert arm.purges[-1].paths == ["/three.html"]
    assert invalidated_paths(admin, distribution)[-1] == ["/three.html"]

    assert cli("--config", config, "cdn", "purge", "-p", "cf", "--all-providers", "--url", f"{WWW}/x").exit_code == 2
    unknown = cli("--config", config, "cdn", "purge", "-p", "cff", "--url", f"{WWW}/x")
    assert unknown.exit_code == 2 and "cff" in unknown.stderr
    assert len(cf.purged) == 2


def test_an_unsupported_kind_is_exit_2_listing_capabilities(cli, two, cf, admin, distribution):
    run = cli("--config", two, "cdn", "purge", "--all-providers", "--tag", "product-1", "--url", f"{WWW}/a")

    assert run.exit_code == 2
    assert "front (cloudfront) cannot purge by tag" in run.stderr
    assert "it purges by url, prefix, everything" in run.stderr
    assert "--skip-unsupported" in run.stderr
    assert len(cf.requests) == 0 and invalidations(admin, distribution) == []


def test_skip_unsupported_purges_the_rest_with_a_warning(cli, two, cf, admin, distribution):
    run = cli("--config", two, "cdn", "purge", "--all-providers", "--skip-unsupported", "--tag", "product-1",
              "--url", f"{WWW}/a", "-o", "json")

    assert run.exit_code == 0, run.stderr
    assert "front (cloudfront) cannot purge by tag: 1 target(s) skipped" in run.stderr
    assert sorted(p["kind"] for p in cf.purged) == ["tag", "url"]
    assert invalidated_paths(admin, distribution) == [["/a"]]
    front = next(p for p in run.json()["providers"] if p["provider"] == "front")
    assert front["batches"] == 1


def test_skip_unsupported_warns_about_a_provider_left_with_nothing(cli, two, cf, admin, distribution):
    run = cli("--config", two, "cdn", "purge", "-p", "cf", "-p", "front", "--skip-unsupported", "--tag", "product-1")

    assert run.exit_code == 0, run.stderr
    assert [p["items"] for p in cf.purged] == [["product-1"]]
    assert invalidations(admin, distribution) == []
    # CloudFront was named and purged nothing: saying so is the point of the warning
    assert "front (cloudfront) cannot purge by tag: 1 target(s) skipped" in run.stderr


# ==== normalisation ===================================================================================

SPACE_UNICODE = f"{WWW}/a b/ü.css"
SPACE_UNICODE_ENCODED = f"{WWW}/a%20b/%C3%BC.css"
TILDE = f"{WWW}/~user/page.html"
QUERY = f"{WWW}/search?q=a b&lang=de"


def test_cloudflare_and_cloudfront_get_targets_in_their_documented_form(cli, two, cf, admin, distribution):
    run = cli("--config", two, "cdn", "purge", *url_args([SPACE_UNICODE, TILDE, QUERY, SPACE_UNICODE_ENCODED, TILDE]))

    assert run.exit_code == 0, run.stderr
    # Cloudflare: path and query percent-encoded as UTF-8, '~' left as written (RFC 3986 unreserved)
    assert [p["body"] for p in cf.purged] == [{"files": [
        f"{WWW}/a%20b/%C3%BC.css", f"{WWW}/~user/page.html", f"{WWW}/search?q=a%20b&lang=de"]}]
    # CloudFront: paths, RFC 1738 unsafe characters encoded ('~' too), the query string part of the path
    assert invalidated_paths(admin, distribution) == [["/a%20b/%C3%BC.css", "/%7Euser/page.html",
                                                       "/search?q=a%20b&lang=de"]]


def test_azure_gets_paths_without_query_and_refuses_a_tilde(cli, isolated, arm):
    config = write_config(isolated / "c.toml", {"afd": azure(arm, "azure_frontdoor", hosts=["www.example.com"])})

    run = cli("--config", config, "cdn", "purge", *url_args([SPACE_UNICODE, QUERY, f"{WWW}/search?q=other",
                                                             SPACE_UNICODE_ENCODED]))
    assert run.exit_code == 0, run.stderr
    # query strings are ignored by Azure, so /search is sent once for both
    assert arm_bodies(arm) == [{"contentPaths": ["/a%20b/%C3%BC.css", "/search"]}]

    refused = cli("--config", config, "cdn", "purge", "--url", TILDE, "--url", f"{WWW}/fine.html")
    assert refused.exit_code == 2
    assert "~" in refused.stderr and "/~user/page.html" in refused.stderr
    assert len(arm.purge_posts()) == 1


def test_unicode_hosts_are_purged_by_their_idna_form(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf, hosts=["bücher.example.com"])})

    run = cli("--config", config, "cdn", "purge", "--url", "https://bücher.example.com/ü.css",
              "--host", "Bücher.Example.com")

    assert run.exit_code == 0, run.stderr
    assert sorted(json.dumps(p["body"]) for p in cf.purged) == [
        json.dumps({"files": ["https://xn--bcher-kva.example.com/%C3%BC.css"]}),
        json.dumps({"hosts": ["xn--bcher-kva.example.com"]}),
    ]


def test_a_host_that_is_not_idna_is_exit_2_in_one_line_and_sends_nothing(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf)})

    run = cli("--config", config, "cdn", "purge", "--url", "https://www.example.com/a", "--url",
              "https://☃.example.com/a")

    assert run.exit_code == 2
    assert run.stderr.startswith("error: URL host '☃.example.com' is not a valid internationalised domain name")
    assert "hint: " in run.stderr and "Traceback" not in run.stderr
    assert len(cf.requests) == 0


def test_sandbox_nodes_purge_encoded_urls_and_query_strings(cli, sandbox):
    box, config, client = sandbox
    odd = ["/odd path/ü.html", "/~user/page.html", "/docs/page-0013.html?v=2", "/docs/page-0017.html"]
    fill(client, box, odd)  # the origin's 404s are cached too

    run = cli("--config", config, "cdn", "purge", *url_args(f"http://{SANDBOX_HOST}{p}" for p in odd))

    assert run.exit_code == 0, run.stderr
    for node in box.nodes:
        assert [fetch(client, node, p) for p in odd] == ["MISS"] * len(odd), node.name


def test_sandbox_purges_one_url_with_a_space_in_its_query(cli, sandbox):
    box, config, client = sandbox
    path = "/find.html?q=x y"
    fill(client, box, [path])

    run = cli("--config", config, "cdn", "purge", "--url", f"http://{SANDBOX_HOST}{path}")

    assert run.exit_code == 0, run.stderr
    assert [fetch(client, node, path) for node in box.nodes] == ["MISS", "MISS"]


def test_sandbox_bulk_purge_matches_queries_with_spaces_and_unicode(cli, sandbox):
    box, config, client = sandbox
    paths = ["/search.html?q=a b", "/search.html?q=ü", "/docs/page-0021.html"]
    fill(client, box, paths)

    run = cli("--config", config, "cdn", "purge", *url_args(f"http://{SANDBOX_HOST}{p}" for p in paths))

    assert run.exit_code == 0, run.stderr
    # a query is cached under its encoded form (q=a%20b), as a single-URL PURGE finds it
    for node in box.nodes:
        assert [fetch(client, node, p) for p in paths] == ["MISS", "MISS", "MISS"], node.name


# ==== batching and URL files =============================================================================

def test_95_urls_go_to_cloudflare_in_4_requests_of_at_most_30(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf)})
    urls = [f"{WWW}/assets/{i}.css" for i in range(95)]
    listing = isolated / "urls.txt"
    listing.write_text("# assets to purge\n\n" + "\n".join(urls) + "\n", encoding="utf-8")

    run = cli("--config", config, "cdn", "purge", "--urls-file", str(listing), "-o", "json")

    assert run.exit_code == 0, run.stderr
    assert sorted(len(p["items"]) for p in cf.purged) == [5, 30, 30, 30]
    assert len(purge_posts(cf)) == 4
    assert sorted(u for p in cf.purged for u in p["items"]) == sorted(urls)
    batches = show(cli, config, run.json()["id"])["batch_list"]
    assert [(b["seq"], b["items"], b["state"]) for b in batches] == [
        (1, 30, "completed"), (2, 30, "completed"), (3, 30, "completed"), (4, 5, "completed")]


def test_urls_from_stdin(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf)})

    run = cli("--config", config, "cdn", "purge", "--urls-file", "-", input=f"{WWW}/one\n  {WWW}/two  \n# no\n")

    assert run.exit_code == 0, run.stderr
    assert [p["items"] for p in cf.purged] == [[f"{WWW}/one", f"{WWW}/two"]]


def test_bad_lines_in_a_urls_file_are_exit_2_naming_file_and_line(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf)})
    listing = isolated / "urls.txt"
    listing.write_text(f"{WWW}/ok\nnot a url\n{WWW}/fine\nftp://www.example.com/x\n{WWW}/frag#x\n", encoding="utf-8")

    run = cli("--config", config, "cdn", "purge", "--urls-file", str(listing))

    assert run.exit_code == 2
    assert f"{listing}:2" in run.stderr and f"{listing}:4" in run.stderr and f"{listing}:5" in run.stderr
    assert f"{listing}:1" not in run.stderr and f"{listing}:3" not in run.stderr
    assert len(cf.requests) == 0 and history(cli, config) == []

    from_stdin = cli("--config", config, "cdn", "purge", "--urls-file", "-", input=f"{WWW}/ok\nnope\n")
    assert from_stdin.exit_code == 2 and "stdin:2" in from_stdin.stderr
    assert len(cf.requests) == 0


# ==== dry run ===========================================================================================

def test_dry_run_prints_the_plan_and_sends_nothing(cli, isolated, cf, proxy, distribution, admin):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf), "front": cloudfront(proxy, distribution)})
    urls = [f"{WWW}/assets/{i}.css" for i in range(95)]
    # CloudFront: 10 invalidations of 15 wildcards and 1 of 95 files, paced at 2/s after 5 at once
    prefixes = [f"{WWW}/dir{i}/" for i in range(150)]
    args = ["--config", config, "cdn", "purge", *url_args(urls), *[a for p in prefixes for a in ("--prefix", p)],
            "--dry-run"]

    table = cli(*args)
    assert table.exit_code == 0, table.stderr
    rows = {line.split()[0]: line for line in table.stdout.splitlines()[1:] if line.strip()}
    assert set(rows) == {"cf", "front"}
    assert rows["cf"].split()[2:5] == ["245", "245", "6"] and "url=4, prefix=2" in rows["cf"]
    assert rows["front"].split()[2:5] == ["245", "245", "11"] and "url=1, prefix=10" in rows["front"]
    # 11 requests, 2/s, a bucket of 5 less the 2 in flight and the jitter reserve: about 4 s
    assert rows["front"].split()[-2] == "4s" and rows["cf"].split()[-2] == "<1s"
    assert "dry run: 17 API call(s) planned; nothing sent" in table.stderr

    as_json = cli(*args, "-o", "json")
    assert as_json.exit_code == 0, as_json.stderr
    plan = as_json.json()
    assert plan["dry_run"] is True and plan["calls"] == 17 and plan["targets"] == {"url": 95, "prefix": 150}
    by_name = {p["provider"]: p for p in plan["providers"]}
    assert by_name["cf"]["calls"] == 6
    assert by_name["cf"]["by_kind"] == {"url": {"batches": 4, "items": 95}, "prefix": {"batches": 2, "items": 150}}
    assert by_name["front"]["by_kind"] == {"url": {"batches": 1, "items": 95}, "prefix": {"batches": 10, "items": 150}}
    # 11 requests at 2 a second from a bucket of 5, less 2 in flight and 0.1 of jitter reserve
    assert by_name["front"]["estimate_s"] == pytest.approx((11 - (5 - 2 - 2 * 0.05)) / 2)
    assert plan["estimate_s"] == by_name["front"]["estimate_s"]

    assert len(cf.requests) == 0 and len(purge_posts(cf)) == 0
    assert invalidations(admin, distribution) == [] and proxy.calls() == []
    assert history(cli, config) == []


# ==== everything ==========================================================================================

def test_everything_needs_yes_off_a_terminal(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf)})

    refused = cli("--config", config, "cdn", "purge", "--everything", "-o", "json")
    assert refused.exit_code == 2 and refused.error["kind"] == "usage"
    assert "--yes" in refused.error["hint"]
    assert len(cf.requests) == 0 and history(cli, config) == []

    done = cli("--config", config, "cdn", "purge", "--everything", "--yes")
    assert done.exit_code == 0, done.stderr
    assert [p["body"] for p in cf.purged] == [{"purge_everything": True}]


def test_everything_at_several_providers(cli, two, cf, admin, distribution):
    unnamed = cli("--config", two, "cdn", "purge", "--everything", "--yes")
    assert unnamed.exit_code == 2 and "names no host" in unnamed.stderr
    assert len(cf.requests) == 0

    done = cli("--config", two, "cdn", "purge", "--everything", "--all-providers", "--yes")
    assert done.exit_code == 0, done.stderr
    assert [p["body"] for p in cf.purged] == [{"purge_everything": True}]
    assert invalidated_paths(admin, distribution) == [["/*"]]


# ==== the journal =======================================================================================

def test_history_since_and_show(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf, max_in_flight=1)})
    first = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/old", "--reason", "old one", "-o", "json")
    assert first.exit_code == 0, first.stderr
    # the first purge is made two hours old, in the journal itself
    from edgectl.timeutil import to_iso, utcnow

    with sqlite3.connect(isolated / "state.db") as db:
        db.execute("UPDATE purges SET created_at = ? WHERE id = ?",
                   [to_iso(utcnow() - timedelta(hours=2)), first.json()["id"]])
    db.close()
    cf.fail_next(500)
    second = cli("--config", config, "cdn", "purge", *url_args(f"{WWW}/new/{i}" for i in range(40)),
                 "--reason", "new one", "-o", "json")
    assert second.exit_code == 0, second.stderr
    new_id = second.json()["id"]

    assert [(p["id"], p["reason"]) for p in history(cli, config)] == [(new_id, "new one"), (first.json()["id"], "old one")]
    assert [p["id"] for p in history(cli, config, "--since", "1h")] == [new_id]
    assert [p["id"] for p in history(cli, config, "--limit", "1")] == [new_id]
    table = cli("--config", config, "cdn", "history", "--since", "1h")
    assert table.exit_code == 0 and "new one" in table.stdout and "old one" not in table.stdout

    record = show(cli, config, new_id)
    assert record["status"] == "completed" and record["batches"] == {"completed": 2}
    assert [(b["seq"], b["items"], b["state"], b["attempts"], b["provider_ref"]) for b in record["batch_list"]] == [
        (1, 30, "completed", 2, ZONE_ID), (2, 10, "completed", 1, ZONE_ID)]
    assert len(record["target_list"]) == 40
    shown = cli("--config", config, "cdn", "show", str(new_id))
    assert shown.exit_code == 0
    for header in ("STATE", "ATTEMPTS", "PROVIDER ID", "LAST ERROR"):
        assert header in shown.stdout
    assert shown.stdout.count("completed") >= 2
    assert cli("--config", config, "cdn", "show", "999").exit_code == 2


# ==== failures and exit codes ================================================================================

def test_a_refused_token_fails_the_first_batch_and_sends_no_more(cli, isolated, cf, monkeypatch):
    monkeypatch.setenv("CF_TOKEN", "not-the-right-token")
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf, max_in_flight=1)})

    run = cli("--config", config, "cdn", "purge", *url_args(f"{WWW}/x/{i}" for i in range(95)), "-o", "json")

    assert run.exit_code == 1
    record = run.json()
    assert record["status"] == "failed"
    assert record["resume"] == f"edgectl cdn purge --resume {record['id']}"
    assert run.error["kind"] == "failed"
    assert run.error["hint"] == ("fix the credentials of cf (edgectl cdn providers test shows them), then "
                                 f"resume it: {record['resume']}")
    assert "4 of 4 batch(es) not accepted" in run.error["message"]
    assert "10000 Authentication error" in run.error["message"]
    assert len(purge_posts(cf)) == 1 and cf.purged == []
    batches = show(cli, config, record["id"])["batch_list"]
    first, rest = batches[0], batches[1:]
    assert first["state"] == "failed" and first["attempts"] == 1
    assert first["last_error"] == "cloudflare: 10000 Authentication error (HTTP 403)"
    assert [(b["state"], b["attempts"]) for b in rest] == [("failed", 0)] * 3
    assert all(b["last_error"].startswith("not sent: cloudflare: 10000 Authentication error") for b in rest)
    table = cli("--config", config, "cdn", "show", str(record["id"]))
    assert table.stdout.count("failed") >= 4 and table.stdout.count("not sent: cloudflare: 10000") == 3

    plan = cli("--config", config, "cdn", "purge", "--resume", str(record["id"]), "--dry-run", "-o", "json")
    assert plan.exit_code == 0 and [b["seq"] for b in plan.json()] == [1, 2, 3, 4]
    assert len(purge_posts(cf)) == 1
    monkeypatch.setenv("CF_TOKEN", DEFAULT_TOKEN)
    resumed = cli("--config", config, "cdn", "purge", "--resume", str(record["id"]), "-o", "json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["status"] == "completed" and resumed.json()["resume"] is None
    assert sorted(u for p in cf.purged for u in p["items"]) == sorted(f"{WWW}/x/{i}" for i in range(95))
    assert len(purge_posts(cf)) == 5
    again = cli("--config", config, "cdn", "purge", "--resume", str(record["id"]))
    assert again.exit_code == 2 and "nothing left to send" in again.stderr
    mixed = cli("--config", config, "cdn", "purge", "--resume", str(record["id"]), "--url", f"{WWW}/x")
    assert mixed.exit_code == 2 and len(purge_posts(cf)) == 5


def test_a_refused_token_with_requests_in_flight_sends_nothing_more(cli, isolated, cf, monkeypatch):
    monkeypatch.setenv("CF_TOKEN", "not-the-right-token")
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf)})

    run = cli("--config", config, "cdn", "purge", *url_args(f"{WWW}/x/{i}" for i in range(300)))

    assert run.exit_code == 1
    assert "10 of 10 batch(es) not accepted" in run.stderr and "resume it: edgectl cdn purge --resume" in run.stderr
    batches = show(cli, config, 1)["batch_list"]
    sent = [b for b in batches if b["attempts"]]
    assert len(purge_posts(cf)) == len(sent) == sum(b["attempts"] for b in batches) <= 4
    assert all(b["last_error"].startswith("not sent: ") for b in batches if not b["attempts"])


def test_a_batch_in_flight_when_the_token_is_refused_is_not_sent_again(cli, isolated, monkeypatch):
    # two requests on the wire at once: the first is refused (403), the second answers 429 a moment
    # later (2 URLs against a bucket of 1 URL a second, so never accepted)
    with FakeCloudflare(url_rate=1) as fake:
        monkeypatch.setenv("CF_TOKEN", DEFAULT_TOKEN)
        config = write_config(isolated / "c.toml", {"cf": cloudflare(fake, max_in_flight=2, files_per_request=2)})
        fake.fail_next(403, errors=[{"code": 10000, "message": "Authentication error"}])
        fake.delay_next(0.5)

        run = cli("--config", config, "cdn", "purge", *url_args(f"{WWW}/f/{i}" for i in range(6)), "--timeout", "2s",
                  "-o", "json")
        time.sleep(0.2)
        requests = len(fake.requests)  # the refused one included: faults are not in fake.calls

    assert run.exit_code == 1
    batches = show(cli, config, run.json()["id"])["batch_list"]
    assert batches[2]["attempts"] == 0 and batches[2]["last_error"].startswith("not sent: ")
    # credentials were refused: nothing goes to the provider after that, retries included
    assert requests == 2, batches
    assert sum(b["attempts"] for b in batches) == 2
    assert [b["state"] for b in batches] == ["failed", "failed", "failed"]


def test_an_unknown_zone_is_a_failure_with_cloudflares_message(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf, zone_id="0" * 32)})

    run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a")

    assert run.exit_code == 1
    assert "7003 Could not route to" in run.stderr and "(HTTP 404)" in run.stderr
    assert "resume it: edgectl cdn purge --resume 1" in run.stderr


# ==== faults ==========================================================================================

def test_a_429_storm_with_retry_after_is_waited_out(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf)})
    cf.fail_next(429, retry_after=1, count=3)

    started = time.monotonic()
    run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a", "--url", f"{WWW}/b", "-o", "json")

    assert run.exit_code == 0, run.stderr
    assert time.monotonic() - started >= 2.9  # Retry-After: 1, three times
    assert len(cf.requests) == 4 and [p["items"] for p in cf.purged] == [[f"{WWW}/a", f"{WWW}/b"]]
    record = run.json()
    assert record["run"]["retries"] == 3 and record["run"]["rate_limited"] == 3 and record["run"]["requests"] == 4
    [batch] = show(cli, config, record["id"])["batch_list"]
    assert (batch["state"], batch["attempts"], batch["last_error"]) == ("completed", 4, None)


def test_a_500_is_retried(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf)})
    cf.fail_next(500)

    run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a", "-o", "json")

    assert run.exit_code == 0, run.stderr
    assert len(cf.requests) == 2 and len(cf.purged) == 1
    [batch] = show(cli, config, run.json()["id"])["batch_list"]
    assert (batch["state"], batch["attempts"]) == ("completed", 2)


def test_500s_until_attempts_run_out_fail_the_batch_with_the_message(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf)})
    cf.fail_next(503, count=6, retry_after=0)

    run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a", "-o", "json")

    assert run.exit_code == 1
    assert len(cf.requests) == 6 and cf.purged == []
    [failed] = run.json()["failed"]
    assert failed["attempts"] == 6 and "gave up after 6 attempts" in failed["error"]
    assert "10001 Service unavailable" in failed["error"]


def test_a_request_timeout_is_journaled_and_resumable(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf)})
    cf.delay_next(8)

    started = time.monotonic()
    run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/slow", "--timeout", "1s", "-o", "json")
    took = time.monotonic() - started

    assert run.exit_code == 1
    # the request gave up after min(30 s, --timeout), long before the fake would have answered
    assert 0.9 <= took < 6
    record = run.json()
    assert record["run"]["timed_out"] is True
    [batch] = show(cli, config, record["id"])["batch_list"]
    assert batch["state"] == "pending" and batch["attempts"] == 1
    assert batch["last_error"] == "cloudflare: purge timed out after 1s"
    assert "timed out" in run.error["message"]

    resumed = cli("--config", config, "cdn", "purge", "--resume", str(record["id"]), "-o", "json")
    assert resumed.exit_code == 0, resumed.stderr
    [batch] = show(cli, config, record["id"])["batch_list"]
    assert (batch["state"], batch["attempts"]) == ("completed", 2)
    assert [p["items"] for p in cf.purged][-1] == [f"{WWW}/slow"]


def test_a_connection_reset_mid_run_is_retried(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf, max_in_flight=1)})
    cf.delay_next(0)  # the first request goes through; the second one's connection is torn down
    cf.reset_next_connection()

    run = cli("--config", config, "cdn", "purge", *url_args(f"{WWW}/r/{i}" for i in range(65)), "-o", "json")

    assert run.exit_code == 0, run.stderr
    assert len(cf.requests) == 4 and len(cf.purged) == 3
    assert sorted(u for p in cf.purged for u in p["items"]) == sorted(f"{WWW}/r/{i}" for i in range(65))
    batches = show(cli, config, run.json()["id"])["batch_list"]
    assert [(b["state"], b["attempts"]) for b in batches] == [("completed", 1), ("completed", 2), ("completed", 1)]


def test_cloudfront_throttling_backpressure_and_a_reset_are_retried(cli, isolated, proxy, distribution, admin):
    config = write_config(isolated / "c.toml", {"front": cloudfront(proxy, distribution)})
    proxy.inject("throttling", retry_after="0")
    proxy.inject("too_many")
    proxy.inject("reset")

    run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a", "-o", "json")

    assert run.exit_code == 0, run.stderr
    assert invalidated_paths(admin, distribution) == [["/a"]]
    [batch] = show(cli, config, run.json()["id"])["batch_list"]
    assert (batch["state"], batch["attempts"], batch["last_error"]) == ("completed", 4, None)
    assert len(proxy.calls("POST", "/invalidation")) == 4


# ==== waiting for asynchronous providers ===========================================================================

def test_wait_polls_azure_until_the_purge_completes(cli, isolated, arm):
    config = write_config(isolated / "c.toml", {"cdn": azure(arm, "azure_cdn", hosts=["cdn.example.com"])})

    run = cli("--config", config, "cdn", "purge", "--url", "https://cdn.example.com/a.css", "--wait", "-o", "json")

    assert run.exit_code == 0, run.stderr
    assert run.json()["status"] == "completed"
    assert len(arm.purge_posts()) == 1
    assert len(operation_gets(arm)) == 1  # accepted (202), then Succeeded at the first look
    [batch] = show(cli, config, run.json()["id"])["batch_list"]
    assert batch["state"] == "completed" and batch["completed_at"]


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in zip(times, times[1:])]


def test_wait_polls_azure_when_arm_says_to(cli, isolated, arm):
    arm.polls_before_done, arm.retry_after = 1, 3
    config = write_config(isolated / "c.toml", {"cdn": azure(arm, "azure_cdn", hosts=["cdn.example.com"])})

    run = cli("--config", config, "cdn", "purge", "--url", "https://cdn.example.com/a.css", "--wait", "-o", "json")

    assert run.exit_code == 0, run.stderr
    assert run.json()["status"] == "completed"
    [post] = arm.purge_posts()
    looks = operation_gets(arm)
    assert len(looks) == 2
    # Retry-After came on the 202 and on the InProgress status; without it the first look is at 2 s
    assert all(gap >= 3 for gap in gaps([post.at] + [look.at for look in looks]))


def test_a_retry_after_beyond_the_timeout_still_gets_a_last_look_before_it(cli, isolated, arm):
    arm.polls_before_done, arm.retry_after = 0, 3600
    config = write_config(isolated / "c.toml", {"cdn": azure(arm, "azure_cdn", hosts=["cdn.example.com"])})

    run = cli("--config", config, "cdn", "purge", "--url", "https://cdn.example.com/a.css", "--wait",
              "--timeout", "6s", "-o", "json")

    assert run.exit_code == 0, run.stderr
    assert run.json()["status"] == "completed"
    assert len(operation_gets(arm)) == 1


def test_wait_polls_cloudfront_no_faster_than_once_a_second(cli, isolated, proxy, distribution):
    config = write_config(isolated / "c.toml", {"front": cloudfront(proxy, distribution, poll_interval=0.2)})
    proxy.hold = True
    stop = threading.Event()

    def release_later() -> None:  # 3 s after the invalidation was created, however long start-up took
        deadline = time.monotonic() + 60
        while not proxy.request_times("POST", "/invalidation") and time.monotonic() < deadline:
            if stop.wait(0.05):
                return
        if not stop.wait(3.0):
            proxy.release()

    release = threading.Thread(target=release_later, daemon=True)
    release.start()
    try:
        run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a", "--wait", "-o", "json")
    finally:
        stop.set()
        release.join(5)

    assert run.exit_code == 0, run.stderr
    assert run.json()["status"] == "completed"
    looks = proxy.request_times("GET", "/invalidation/")
    assert len(looks) >= 2
    # each look is scheduled a full second after the previous one answered, so no two arrive closer
    assert min(gaps(proxy.request_times("POST", "/invalidation")[:1] + looks)) >= 1.0


@pytest.mark.parametrize("suggested, remaining, delay", [
    (None, 600, 2.0),  # nothing suggested: our own schedule
    (0.2, 600, 1.0),  # never more often than the floor
    (30, 600, 30),
    (3600, 6000, 120),  # nor less often than the ceiling
    (3600, 10, 9.5),  # past the timeout: a last look just before it
    (3600, 1.2, 1.0),  # ... unless too little is left: the next look is past the timeout, and not sent
])
def test_the_next_poll_is_the_providers_word_within_bounds(suggested, remaining, delay):
    from edgectl.cdn.execute import poll_delay

    assert poll_delay(suggested, 2.0, remaining) == pytest.approx(delay)


def test_wait_polls_cloudfront_until_the_invalidation_completes(cli, isolated, proxy, distribution):
    config = write_config(isolated / "c.toml", {"front": cloudfront(proxy, distribution)})
    proxy.hold = True

    def release_once_both_are_held():
        # bounded; a release before the purge has created its invalidations would hold them forever
        deadline = time.monotonic() + 60
        while proxy.in_progress(distribution) != (1, 1) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # long enough for at least one poll to find them in progress
        proxy.release()

    release = threading.Thread(target=release_once_both_are_held, daemon=True)
    release.start()
    run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a", "--prefix", "/b/", "--wait",
              "--timeout", "2m", "-o", "json")
    release.join(timeout=60)

    assert run.exit_code == 0, run.stderr
    assert run.json()["status"] == "completed"
    batches = show(cli, config, run.json()["id"])["batch_list"]
    assert [b["state"] for b in batches] == ["completed", "completed"]
    assert len(proxy.calls("GET", "/invalidation/")) >= 2


def test_a_throttled_status_check_waits_at_least_the_floor_before_asking_again(cli, isolated, proxy, distribution):
    """`Retry-After: 0` on a completion poll must not become a loop of polls as fast as they answer."""
    config = write_config(isolated / "c.toml", {"front": cloudfront(proxy, distribution)})
    proxy.hold = True

    def throttle_once_created():
        deadline = time.monotonic() + 60
        while proxy.in_progress(distribution) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        proxy.inject("throttling", 10_000, retry_after="0", create_only=False)

    thrower = threading.Thread(target=throttle_once_created, daemon=True)
    thrower.start()
    run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a", "--wait", "--timeout", "4s", "-o", "json")
    thrower.join(timeout=60)
    assert run.exit_code == 1 and run.json()["status"] == "accepted"
    polls = len(proxy.calls("GET", "/invalidation/"))
    assert 1 <= polls <= 8, polls  # about one a second (the floor) over four seconds, not hundreds


def test_a_wait_that_times_out_leaves_batches_accepted_and_resume_wait_finishes_them(cli, isolated, proxy,
                                                                                     distribution, admin):
    config = write_config(isolated / "c.toml", {"front": cloudfront(proxy, distribution)})
    proxy.hold = True

    run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a", "--prefix", "/b/", "--wait", "--timeout", "2s",
              "-o", "json")

    assert run.exit_code == 1
    record = run.json()
    assert record["resume"] == f"edgectl cdn purge --resume {record['id']} --wait"
    assert "2 batch(es) still in progress" in run.error["message"]
    batches = show(cli, config, record["id"])["batch_list"]
    assert [b["state"] for b in batches] == ["accepted", "accepted"]
    refs = [b["provider_ref"] for b in batches]
    assert sorted(refs) == sorted(inv["Id"] for inv in invalidations(admin, distribution))

    nothing = cli("--config", config, "cdn", "purge", "--resume", str(record["id"]))
    assert nothing.exit_code == 2 and "--wait" in nothing.stderr

    proxy.release()
    resumed = cli("--config", config, "cdn", "purge", "--resume", str(record["id"]), "--wait", "-o", "json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["status"] == "completed"
    batches = show(cli, config, record["id"])["batch_list"]
    assert [b["state"] for b in batches] == ["completed", "completed"]
    assert [b["provider_ref"] for b in batches] == refs and [b["attempts"] for b in batches] == [1, 1]
    assert len(proxy.calls("POST", "/invalidation")) == 2  # one per batch, never sent again
    assert len(invalidations(admin, distribution)) == 2


# ==== secrets ============================================================================================

SECRET = "cf-Sup3r-s3cret-t0ken-4711"


def _edgectl(*args, env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EDGECTL_", "CF_", "CLOUDFLARE_"))}
    return subprocess.run([sys.executable, "-m", "edgectl", *args], env={**base, **env}, capture_output=True,
                          text=True, timeout=timeout)


def _state_bytes(isolated: Path) -> bytes:
    return b"".join(p.read_bytes() for p in isolated.glob("state.db*"))


def test_the_token_never_reaches_state_or_output(cli, isolated, monkeypatch):
    monkeypatch.setenv("CF_TOKEN", SECRET)
    with FakeCloudflare(token=SECRET) as fake:
        config = write_config(isolated / "c.toml", {"cf": cloudflare(fake)})
        runs = [cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a", "-v"),
                cli("--config", config, "cdn", "purge", "--url", f"{WWW}/b", "-o", "json"),
                cli("--config", config, "cdn", "providers", "show", "cf", "-o", "json"),
                cli("--config", config, "cdn", "show", "1", "-o", "json")]
        assert len(fake.purged) == 2
    assert all(r.exit_code == 0 for r in runs), [r.stderr for r in runs]
    assert not any(SECRET in r.stdout + r.stderr for r in runs)
    assert SECRET.encode() not in _state_bytes(isolated)


def test_the_token_never_reaches_debug_output_even_when_refused(isolated):
    with FakeCloudflare(token=SECRET) as fake:
        config = write_config(isolated / "c.toml", {"cf": cloudflare(fake)})
        env = {"EDGECTL_STATE": str(isolated / "state.db"), "EDGECTL_CONFIG": config, "CF_TOKEN": SECRET}
        good = _edgectl("--debug", "cdn", "purge", "--url", f"{WWW}/a", "-o", "json", env=env)
        wrong = "cf-Wr0ng-t0ken-0815"
        bad = _edgectl("--debug", "cdn", "purge", "--url", f"{WWW}/b", env={**env, "CF_TOKEN": wrong})
        assert len(fake.purged) == 1

    assert good.returncode == 0, good.stderr
    assert "debug: " in good.stderr  # the debug log is really on
    assert SECRET not in good.stdout + good.stderr
    assert bad.returncode == 1
    assert "debug: " in bad.stderr and "10000 Authentication error" in bad.stderr
    assert wrong not in bad.stdout + bad.stderr and SECRET not in bad.stdout + bad.stderr
    blob = _state_bytes(isolated)
    assert SECRET.encode() not in blob and wrong.encode() not in blob


def test_the_sandbox_token_never_reaches_state_or_debug_output(sandbox, isolated):
    box, config, client = sandbox
    path = "/blog/page-0014.html"
    fill(client, box, [path])
    env = {"EDGECTL_STATE": str(isolated / "state.db"), "EDGECTL_CONFIG": config}

    run = _edgectl("--debug", "cdn", "purge", "--url", f"http://{SANDBOX_HOST}{path}", env=env)

    assert run.returncode == 0, run.stderr
    assert "debug: " in run.stderr
    assert box.token() not in run.stdout + run.stderr
    assert box.token().encode() not in _state_bytes(isolated)
    assert [fetch(client, node, path) for node in box.nodes] == ["MISS", "MISS"]


# ==== edges a first trial run found ================================================================

def test_a_node_that_is_down_does_not_keep_the_others_from_being_purged(cli, sandbox):
    from edgectl.sandbox.fleet import set_fault

    box, config, client = sandbox
    page = "/docs/page-0011.html"
    fill(client, box, [page])
    down, up = box.nodes
    set_fault(box, down.name, {"down": True})
    try:
        run = cli("--config", config, "cdn", "purge", "--url", f"http://{SANDBOX_HOST}{page}", "--timeout", "2s")
    finally:
        set_fault(box, down.name, {"down": False})
    assert run.exit_code == 1
    assert f"1 of 2 nodes failed (1 purged): node {down.name}: HTTP 503" in run.stderr
    assert fetch(client, up, page) == "MISS"


def test_a_provider_slower_than_documented_is_paced_down_not_failed(cli, isolated, monkeypatch):
    monkeypatch.setenv("CF_TOKEN", DEFAULT_TOKEN)
    fake = FakeCloudflare(url_rate=60).start()  # the config says Free: 800 URLs a second
    try:
        config = write_config(isolated / "c.toml", {"cf": cloudflare(fake)})
        run = cli("--config", config, "cdn", "purge", *url_args(f"{WWW}/slow/{i}" for i in range(150)), "-o", "json")
    finally:
        fake.stop()
    assert run.exit_code == 0, run.stderr
    record = run.json()
    assert record["status"] == "completed" and record["run"]["rate_limited"] >= 1
    assert sorted(u for p in fake.purged for u in p["items"]) == sorted(f"{WWW}/slow/{i}" for i in range(150))


def test_an_empty_url_file_is_nothing_to_purge_not_a_failure(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf)})
    (isolated / "none.txt").write_text("# nothing changed\n\n")
    run = cli("--config", config, "cdn", "purge", "--urls-file", str(isolated / "none.txt"), "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["status"] == "nothing to purge" and "holds no URLs" in run.stderr
    assert len(cf.requests) == 0 and history(cli, config) == []


def test_credentials_are_refused_as_purge_headers_and_a_padded_token_as_config(cli, isolated, cf, monkeypatch):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf)})
    run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a", "-H", "Authorization: Bearer xyz")
    assert run.exit_code == 2 and "carries credentials" in run.stderr
    monkeypatch.setenv("CF_TOKEN", DEFAULT_TOKEN + " ")
    padded = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a")
    assert padded.exit_code == 2 and "starts or ends with whitespace" in padded.stderr
    assert len(cf.requests) == 0 and history(cli, config) == []


def test_a_path_prefix_means_that_path_on_each_host_the_provider_serves(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf, hosts=["www.example.com", "static.example.com"])})
    run = cli("--config", config, "cdn", "purge", "--prefix", "/docs/")
    assert run.exit_code == 0, run.stderr
    assert [p["items"] for p in cf.purged] == [["www.example.com/docs/", "static.example.com/docs/"]]


def test_providers_test_all_reports_a_missing_credential_in_its_row_and_tests_the_rest(cli, isolated, cf, monkeypatch):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf), "other": cloudflare(cf, api_token="env:NOT_SET")})
    run = cli("--config", config, "cdn", "providers", "test", "--all", "-o", "json")
    assert run.exit_code == 1
    rows = {row["name"]: row for row in run.json()}
    assert rows["cf"]["result"] == "ok" and rows["other"]["result"] == "failed"
    assert "NOT_SET is not set" in rows["other"]["detail"]


def test_an_http_provider_naming_an_unknown_node_is_a_config_error(cli, sandbox):
    box, _, _ = sandbox
    config = write_config(Path(sandbox[1]).with_name("ghost.toml"), {"edge": {
        "kind": "http", "nodes": [box.nodes[0].name, "ghost-node"], "hosts": [SANDBOX_HOST],
        "token": f"file:{box.token_file}"}})
    run = cli("--config", config, "cdn", "purge", "--url", f"http://{SANDBOX_HOST}/docs/page-0001.html")
    assert run.exit_code == 2 and "unknown node(s): ghost-node" in run.stderr


def test_a_broken_provider_table_is_left_out_of_the_mapping_and_never_stops_the_others(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf), "typo": {"type": "cloudflare"},
                                                "gone": {"kind": "cloudfrnt", "hosts": ["static.example.org"]}})
    run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert [p["items"] for p in cf.purged] == [[f"{WWW}/a"]]
    assert "provider typo is left out" in run.stderr and "provider gone is left out" in run.stderr
    listed = {row["name"]: row for row in cli("--config", config, "providers", "list", "-o", "json").json()}
    assert "kind: missing" in listed["typo"]["problem"] and listed["cf"].get("problem") is None
    named = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a", "-p", "typo")
    assert named.exit_code == 2 and "providers.typo.kind: missing" in named.stderr
    everything = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a", "--all-providers")
    assert everything.exit_code == 0, everything.stderr  # every provider that can purge: the broken cannot
    assert "provider typo is left out" in everything.stderr


def test_a_broken_provider_table_that_serves_a_host_the_purge_names_stops_it(cli, isolated, cf):
    config = write_config(isolated / "c.toml", {"cf": cloudflare(cf),
                                                "gone": {"kind": "cloudfrnt", "hosts": ["www.example.com"]}})
    run = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/a")
    assert run.exit_code == 2
    assert "provider gone: unknown provider kind 'cloudfrnt'" in run.stderr and "serves www.example.com" in run.stderr
    assert cf.purged == []
