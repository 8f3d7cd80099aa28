"""`cache warm` against a real sandbox fleet: pinning, hits on the second pass, sources and bad input."""

from __future__ import annotations

import gzip

import httpx
import pytest

from tests.fakes.sandbox_fleet import register, running_fleet

HOST = "www.sandbox.test"


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    with running_fleet(tmp_path_factory.mktemp("warm-sandbox"), pages=60) as sandbox:
        yield sandbox


@pytest.fixture
def fleet(box, isolated):
    """The sandbox nodes in this test's inventory; their caches emptied first."""
    register(box, isolated / "state.db")
    token = box.token()
    for node in box.nodes:
        httpx.post(node.url + "/.edge/purge", json={"all": True}, headers={"Authorization": f"Bearer {token}"},
                   trust_env=False).raise_for_status()
    return box


def stats(node) -> dict:
    return httpx.get(node.url + "/.edge/stats", trust_env=False).json()


def pages(count: int, start: int = 1) -> list[str]:
    sections = ("news", "docs", "blog", "shop")
    return [f"https://{HOST}/{sections[i % 4]}/page-{i:04d}.html" for i in range(start, start + count)]


def test_warming_through_every_node_fills_each_node_and_a_second_pass_is_all_hits(cli, fleet, isolated):
    listing = isolated / "urls.txt"
    listing.write_text("\n".join(pages(20)) + "\n")
    before = {n.name: stats(n) for n in fleet.nodes}

    first = cli("cache", "warm", "--urls-file", str(listing), "--all-nodes", "-o", "json")
    assert first.exit_code == 0, first.stderr
    data = first.json()
    assert data["requests"] == 40 and data["errors"] == 0
    assert data["cache_before"] == {n.name: {"miss": 20} for n in fleet.nodes}
    for node in fleet.nodes:  # each node's own counters: the requests really went through it
        after = stats(node)
        assert after["misses"] - before[node.name]["misses"] == 20 and after["entries"] >= 20

    second = cli("cache", "warm", "--urls-file", str(listing), "--all-nodes", "-o", "json")
    assert second.json()["cache_before"] == {n.name: {"hit": 20} for n in fleet.nodes}
    assert second.json()["hit_ratio_before"] == 1.0

    runs = cli("cache", "runs", "-o", "json").json()
    assert [r["id"] for r in runs] == [2, 1] and runs[0]["status"] == "completed"
    shown = cli("cache", "show", "1", "-o", "json").json()
    assert shown["summary"]["requests"] == 40 and sorted(shown["options"]["nodes"]) == sorted(n.name for n in fleet.nodes)


def test_pinning_to_one_node_leaves_the_other_untouched(cli, fleet):
    one, other = fleet.nodes
    untouched = stats(other)
    run = cli("cache", "warm", "--url", pages(1)[0], "--nodes", one.name, "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["cache_before"] == {one.name: {"miss": 1}}
    assert stats(other)["misses"] == untouched["misses"] and stats(other)["hits"] == untouched["hits"]


def test_variants_multiply_requests(cli, fleet):
    node = fleet.nodes[0]
    run = cli("cache", "warm", "--url", pages(1, start=30)[0], "--nodes", node.name,
              "--accept-encoding", "gzip,br", "--user-agent", "desktop,mobile", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["requests"] == 4


def test_a_sitemap_index_with_a_gzip_sitemap_is_followed(cli, fleet):
    run = cli("cache", "warm", "--sitemap", fleet.origin + "/sitemap.xml", "--nodes", fleet.nodes[0].name,
              "--limit", "25", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["requests"] == 25 and run.json()["errors"] == 0


def test_shards_cover_the_list_exactly_once(cli, fleet, isolated):
    from edgectl.cache.jobs import shard_of

    urls = pages(40, start=1)
    listing = isolated / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    counts = []
    for k in (1, 2, 3):
        run = cli("cache", "warm", "--urls-file", str(listing), "--nodes", fleet.nodes[0].name, "--shard", f"{k}/3",
                  "-o", "json")
        assert run.exit_code == 0, run.stderr
        counts.append(run.json()["requests"])
    assert sum(counts) == 40 and all(counts)
    assert counts == [sum(1 for u in urls if shard_of(u, 3) == k) for k in range(3)]


def test_non_http_lines_are_skipped_with_a_warning_and_bad_sitemaps_are_bad_input(cli, fleet, isolated):
    listing = isolated / "urls.txt"
    listing.write_text(f"{pages(1)[0]}\nftp://example.com/x\njavascript:alert(1)\n")
    run = cli("cache", "warm", "--urls-file", str(listing), "--nodes", fleet.nodes[0].name, "-o", "json")
    assert run.exit_code == 0 and run.json()["requests"] == 1
    assert "urls.txt:2" in run.stderr and "urls.txt:3" in run.stderr

    bomb = isolated / "bomb.xml.gz"
    bomb.write_bytes(gzip.compress(b"<urlset>" + b" " * (8 * 1024 * 1024)))
    refused = cli("cache", "warm", "--sitemap", str(bomb), "--max-sitemap-bytes", "1048576")
    assert refused.exit_code == 2 and "larger than 1,048,576 bytes" in refused.stderr

    evil = isolated / "evil.xml"
    evil.write_text('<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]><urlset/>')
    assert cli("cache", "warm", "--sitemap", str(evil)).exit_code == 2


def test_a_unicode_host_is_warmed_and_recorded_by_its_idna_form(cli, fleet, isolated):
    node = fleet.nodes[0]
    listing = isolated / "urls.txt"
    listing.write_text("https://bücher.sandbox.test/blog/page-0050.html\nhttps://☃.sandbox.test/docs/page-0051.html\n",
                       encoding="utf-8")

    run = cli("cache", "warm", "--url", "https://Bücher.sandbox.test/news/page-0052.html", "--urls-file", str(listing),
              "--nodes", node.name)

    assert run.exit_code == 0, run.stderr
    assert "urls.txt:2: 'https://☃.sandbox.test/docs/page-0051.html' is not an http(s) URL with a valid host" in run.stderr
    entries = cli("cache", "entries", "--node", node.name, "-o", "json").json()
    assert sorted(e["url"] for e in entries) == ["https://xn--bcher-kva.sandbox.test/blog/page-0050.html",
                                                 "https://xn--bcher-kva.sandbox.test/news/page-0052.html"]


def test_the_error_rate_threshold_fails_a_cron_run(cli, fleet):
    from tests.fakes.health_servers import closed_port

    run = cli("cache", "warm", "--url", f"http://127.0.0.1:{closed_port()}/x", "--url", pages(1)[0],
              "--retries", "0", "--max-error-rate", "0.1", "-o", "json")
    assert run.exit_code == 1
    assert run.json()["errors"] == 2  # a closed port, and a hostname that does not resolve
    assert "error rate" in run.stderr


def test_a_second_warm_while_one_holds_the_lock_is_exit_4(cli, fleet, isolated):
    import fcntl

    with open(f"{isolated / 'state.db'}.warm.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        run = cli("cache", "warm", "--url", pages(1)[0], "--nodes", fleet.nodes[0].name)
        assert run.exit_code == 4 and "holds the lock" in run.stderr
        beside = cli("cache", "warm", "--url", pages(1)[0], "--nodes", fleet.nodes[0].name, "--no-lock")
        assert beside.exit_code == 0, beside.stderr


@pytest.mark.parametrize("stop", ["SIGINT", "SIGKILL"])
def test_an_interrupted_warm_is_resumed_without_repeating_what_was_done(fleet, isolated, stop):
    import fcntl
    import json
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    listing = isolated / "urls.txt"
    urls = pages(60, start=1)
    listing.write_text("\n".join(urls) + "\n")
    env = {**os.environ, "EDGECTL_STATE": str(isolated / "state.db")}
    args = [sys.executable, "-m", "edgectl", "cache", "warm", "--nodes", fleet.nodes[0].name]
    proc = subprocess.Popen(args + ["--urls-file", str(listing), "--rate", "20", "--concurrency", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def recorded() -> int:
        try:
            with sqlite3.connect(f"file:{isolated / 'state.db'}?mode=ro", uri=True) as db:
                return db.execute("SELECT count(*) FROM warm_results").fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    deadline = time.monotonic() + 20
    while recorded() < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(getattr(signal, stop))
    out, err = proc.communicate(timeout=20)
    if stop == "SIGINT":
        assert proc.returncode == 130, err
        assert "cache warm --resume 1" in err
    else:  # the results writer outlives its run: it records what reached it, then lets the lock go
        assert proc.returncode == -signal.SIGKILL
        with open(f"{isolated / 'state.db'}.warm.lock", "a+") as lock:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    time.sleep(0.05)
            else:
                pytest.fail("the killed run's writer kept the warm lock")
    done_before = recorded()
    assert 10 <= done_before < 60

    resumed = subprocess.run(args[:5] + ["--resume", "1", "--retries", "3", "-o", "json"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["requests_this_run"] == 60 - done_before
    # the run's own --rate 20 still holds on resume: a run that dropped it would take a moment
    assert report["elapsed_s"] >= 0.8 * (60 - done_before) / 20
    with sqlite3.connect(isolated / "state.db") as db:
        warmed = [row[0] for row in db.execute("SELECT url FROM warm_results WHERE run_id = 1")]
        status = db.execute("SELECT status FROM warm_runs WHERE id = 1").fetchone()[0]
    assert sorted(warmed) == sorted(urls) and status == "completed"
    with sqlite3.connect(isolated / "state.db") as db:
        engine = json.loads(db.execute("SELECT options FROM warm_runs WHERE id = 1").fetchone()[0])["engine"]
    assert (engine["rate"], engine["retries"]) == (20, 3)  # its own rate kept, the option given on resume stored


def test_two_workers_split_the_list_and_warm_each_url_once(cli, fleet, isolated):
    listing = isolated / "urls.txt"
    urls = pages(30, start=1)
    listing.write_text("\n".join(urls) + "\n")
    node = fleet.nodes[0]
    before = stats(node)["misses"]
    run = cli("cache", "warm", "--urls-file", str(listing), "--nodes", node.name, "--workers", "2", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["requests"] == 30 and run.json()["cache_before"] == {node.name: {"miss": 30}}
    assert stats(node)["misses"] - before == 30  # each URL reached the node exactly once


def test_warming_records_entries_with_policies_and_variants_apart(cli, fleet):
    node = fleet.nodes[0]
    assert cli("cache", "policies", "add", "--match", "/docs/*", "--ttl", "1d", "--tag", "docs-policy").exit_code == 0
    assert cli("cache", "policies", "add", "--match", "/docs/*", "--ttl", "1h").exit_code == 2
    docs, news = pages(1, start=41)[0], pages(1, start=44)[0]  # the sandbox serves pages 1-60
    assert "/docs/" in docs and "/news/" in news
    run = cli("cache", "warm", "--url", docs, "--url", news, "--nodes", node.name, "--accept-encoding", "gzip,br")
    assert run.exit_code == 0, run.stderr

    entries = cli("cache", "entries", "--node", node.name, "-o", "json").json()
    assert sorted(e["cache_key"] for e in entries) == sorted(
        f"{u} [{enc}]" for u in (docs, news) for enc in ("gzip", "br"))
    doc_entry = next(e for e in entries if e["url"] == docs)
    assert "docs-policy" in doc_entry["tags"] and "section-docs" in doc_entry["tags"]  # policy and Surrogate-Key
    assert doc_entry["content_hash"] and doc_entry["size"] > 0 and doc_entry["content_type"].startswith("text/html")
    news_entry = next(e for e in entries if e["url"] == news)
    assert news_entry["expires_at"] is not None and news_entry["expired"] is False  # from the response's s-maxage

    stats = {row["node"]: row for row in cli("cache", "stats", "-o", "json").json()}
    assert stats[node.name]["entries"] == 4 and stats[node.name]["bytes"] > 0


def test_invalidated_entries_are_purged_and_rewarmed_with_stale(cli, fleet, isolated):
    node = fleet.nodes[0]
    config = isolated / "c.toml"
    config.write_text(f'[providers.edge]\nkind = "http"\nnodes = "label:sandbox=true"\nhosts = ["{HOST}"]\n'
                      f'token = "file:{fleet.token_file}"\n')
    url = pages(1, start=42)[0]
    assert cli("--config", config, "cache", "warm", "--url", url, "--nodes", node.name).exit_code == 0
    assert cli("--config", config, "cache", "warm", "--stale", "--nodes", node.name, "-o", "json").json()["requests"] == 0

    run = cli("--config", config, "cache", "invalidate", "--url", url)
    assert run.exit_code == 0, run.stderr
    assert "1 entry marked invalidated" in run.stderr
    assert cli("--config", config, "cache", "entries", "--expired", "-o", "json").json()[0]["url"] == url
    path = url.split(HOST, 1)[1]
    response = httpx.get(node.url + path, headers={"Host": HOST}, trust_env=False)
    assert response.headers["x-cache"] == "MISS"  # the purge really reached the node

    again = cli("--config", config, "cache", "warm", "--stale", "--nodes", node.name, "-o", "json")
    assert again.exit_code == 0 and again.json()["requests"] == 1
    assert cli("--config", config, "cache", "entries", "--expired", "-o", "json").json() == []


def test_a_ten_million_line_url_stream_is_read_only_as_far_as_needed(fleet, isolated):
    """10,000,000 lines on stdin and --limit 2000: the warm stops early, in bounded memory."""
    import json
    import os
    import subprocess
    import sys

    url = pages(1)[0]
    generator = subprocess.Popen(
        [sys.executable, "-c", f"import sys\nurl = {url!r}\n"  # 10,000,000 distinct URLs: repeats are skipped
                               "try:\n    for block in range(10_000):\n"
                               "        sys.stdout.write(''.join(f'{url}?n={block * 1000 + i}\\n' for i in range(1000)))\n"
                               "except BrokenPipeError:\n    sys.exit(0)\n"],
        stdout=subprocess.PIPE)
    # A small launcher runs edgectl and reports its peak RSS: a child forked straight from this
    # (large) test process would count the test's own pages in its peak.
    launcher = ("import os, sys\npid = os.fork()\nif pid == 0:\n    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
                "_, status, usage = os.wait4(pid, 0)\nsys.stderr.write(f'\\npeak-rss-kib {usage.ru_maxrss}\\n')\n"
                "sys.exit(os.waitstatus_to_exitcode(status))\n")
    env = {**os.environ, "EDGECTL_STATE": str(isolated / "state.db")}
    warm = subprocess.run([sys.executable, "-c", launcher, "-m", "edgectl", "cache", "warm", "--urls-file", "-",
                           "--limit", "2000", "--nodes", fleet.nodes[0].name, "-o", "json"],
                          stdin=generator.stdout, capture_output=True, text=True, env=env, timeout=120)
    generator.stdout.close()
    assert warm.returncode == 0, warm.stderr
    assert json.loads(warm.stdout)["requests"] == 2000
    peak = int(warm.stderr.rsplit("peak-rss-kib ", 1)[1])
    assert peak < 150 * 1024, f"peak RSS {peak // 1024} MiB"
    generator.wait(timeout=30)  # it stopped at the broken pipe: the rest was never read


def test_robots_sources_with_include_exclude_and_lastmod_filters(cli, fleet, isolated):
    from edgectl.cache.sitemaps import walk
    from edgectl.cache.sources import _open_sitemap

    node = fleet.nodes[0].name
    every = list(walk(fleet.origin + "/sitemap.xml", lambda loc: _open_sitemap(loc, 10)))
    docs = [e for e in every if "/docs/" in e.url]
    cutoff = sorted(e.lastmod for e in docs)[len(docs) // 2]

    run = cli("cache", "warm", "--from-robots", fleet.origin + "/robots.txt", "--nodes", node,
              "--include", "/docs/*", "--exclude", "*page-0001.html", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["requests"] == len([e for e in docs if not e.url.endswith("page-0001.html")])

    since = cli("cache", "warm", "--sitemap", fleet.origin + "/sitemap.xml", "--nodes", node, "--include", "/docs/*",
                "--lastmod-since", cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"), "-o", "json")
    assert since.exit_code == 0, since.stderr
    assert since.json()["requests"] == len([e for e in docs if e.lastmod >= cutoff])

    (isolated / "robots.txt").write_text("User-agent: *\nDisallow: /\n")
    none = cli("cache", "warm", "--from-robots", str(isolated / "robots.txt"))
    assert none.exit_code == 2 and "names no sitemaps" in none.stderr


def test_from_purge_rewarms_what_a_purge_cleared(cli, fleet, isolated):
    node = fleet.nodes[0]
    config = isolated / "c.toml"
    config.write_text(f'[providers.edge]\nkind = "http"\nnodes = "label:sandbox=true"\nhosts = ["{HOST}"]\n'
                      f'token = "file:{fleet.token_file}"\n')
    urls = pages(3, start=50)
    assert cli("--config", config, "cache", "warm", *[a for u in urls for a in ("--url", u)], "--nodes", node.name).exit_code == 0
    purge = cli("--config", config, "cdn", "purge", *[a for u in urls for a in ("--url", u)], "--tag", "section-news", "-o", "json")
    assert purge.exit_code == 0, purge.stderr
    again = cli("--config", config, "cache", "warm", "--from-purge", str(purge.json()["id"]), "--nodes", node.name,
                "-o", "json")
    assert again.exit_code == 0, again.stderr
    assert again.json()["requests"] == 3 and again.json()["cache_before"] == {node.name: {"miss": 3}}

    # a purge by prefix names no URLs: the entries recorded under it are warmed again
    by_prefix = cli("--config", config, "cdn", "purge", "--prefix", f"https://{HOST}/news/", "-o", "json")
    assert by_prefix.exit_code == 0, by_prefix.stderr
    refill = cli("--config", config, "cache", "warm", "--from-purge", str(by_prefix.json()["id"]), "--nodes",
                 node.name, "-o", "json")
    news = [u for u in urls if "/news/" in u]
    assert refill.exit_code == 0 and refill.json()["requests"] == len(news) > 0


def test_invalidating_a_policy_tag_purges_the_entries_urls_and_a_bad_target_marks_nothing(cli, fleet, isolated):
    node = fleet.nodes[0]
    config = isolated / "c.toml"
    config.write_text(f'[providers.edge]\nkind = "http"\nnodes = "label:sandbox=true"\nhosts = ["{HOST}"]\n'
                      f'token = "file:{fleet.token_file}"\n')
    assert cli("--config", config, "cache", "policies", "add", "--match", "/shop/*", "--ttl", "1h", "--tag", "ours").exit_code == 0
    shop = [u for u in pages(12, start=1) if "/shop/" in u]
    assert cli("--config", config, "cache", "warm", *[a for u in shop for a in ("--url", u)], "--nodes", node.name).exit_code == 0

    refused = cli("--config", config, "cache", "invalidate", "--url", "https://elsewhere.example/x")
    assert refused.exit_code == 2
    assert cli("--config", config, "cache", "entries", "--expired", "-o", "json").json() == []  # nothing marked

    run = cli("--config", config, "cache", "invalidate", "--tag", "ours")
    assert run.exit_code == 0, run.stderr
    assert f"{len(shop)} entries marked invalidated" in run.stderr
    for url in shop:  # no CDN knows the tag "ours": the entries' URLs were purged
        response = httpx.get(node.url + url.split(HOST, 1)[1], headers={"Host": HOST}, trust_env=False)
        assert response.headers["x-cache"] == "MISS", url


def test_stale_rewarms_each_entry_at_its_node_and_variant_so_a_second_pass_has_nothing_left(cli, fleet):
    one, two = fleet.nodes
    url = pages(1, start=7)[0]
    assert cli("cache", "warm", "--url", url, "--all-nodes", "--accept-encoding", "gzip,br").exit_code == 0
    assert cli("cache", "invalidate", "--url", url, "--no-purge").exit_code == 0
    assert len(cli("cache", "entries", "--expired", "-o", "json").json()) == 4

    run = cli("cache", "warm", "--stale", "--nodes", one.name, "-o", "json")  # only that node's entries
    assert run.exit_code == 0, run.stderr
    assert run.json()["requests"] == 2 and set(run.json()["cache_before"]) == {one.name}
    left = cli("cache", "entries", "--expired", "-o", "json").json()
    assert sorted((e["node"], e["variant"]) for e in left) == [(two.name, "br"), (two.name, "gzip")]

    assert cli("cache", "warm", "--stale", "-o", "json").json()["requests"] == 2
    assert cli("cache", "warm", "--stale", "-o", "json").json()["requests"] == 0  # converged


def test_a_url_listed_twice_is_warmed_once_and_a_sitemap_may_come_on_stdin(cli, fleet, isolated):
    node = fleet.nodes[0]
    listing = isolated / "urls.txt"
    urls = pages(6, start=40)
    listing.write_text("\n".join(urls + urls[:4]) + "\n")
    before = stats(node)["misses"]
    run = cli("cache", "warm", "--urls-file", str(listing), "--nodes", node.name, "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["requests"] == 6 and stats(node)["misses"] - before == 6
    assert "4 repeat(s) of a URL already listed were skipped" in run.stderr

    sitemap = ('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
               + "".join(f"<url><loc>{u}</loc></url>" for u in pages(3, start=50)) + "</urlset>")
    piped = cli("cache", "warm", "--sitemap", "-", "--nodes", node.name, "-o", "json", input=sitemap)
    assert piped.exit_code == 0, piped.stderr
    assert piped.json()["requests"] == 3 and piped.json()["status_classes"] == {"2xx": 3}
    both = cli("cache", "warm", "--sitemap", "-", "--urls-file", "-", input=sitemap)
    assert both.exit_code == 2 and "only one source can read stdin" in both.stderr


def test_sources_that_cannot_work_are_refused_before_a_run_is_recorded(cli, fleet, isolated):
    missing = cli("cache", "warm", "--sitemap", str(isolated / "nope.xml"))
    assert missing.exit_code == 2 and "cannot read sitemap" in missing.stderr
    glob = cli("cache", "warm", "--url", pages(1)[0], "--include", "news/*")
    assert glob.exit_code == 2 and "--include 'news/*' can match nothing" in glob.stderr
    assert "'/news/*'" in glob.stderr  # the hint shows the glob that would match
    fake_gzip = isolated / "sitemap.xml.gz"
    fake_gzip.write_text("neither gzip nor a sitemap\n")  # a text sitemap would be read as one, whatever its name
    named = cli("cache", "warm", "--sitemap", str(fake_gzip))
    assert named.exit_code == 2 and "named .gz but is not gzip" in named.stderr
    runs = cli("cache", "runs", "-o", "json").json()
    assert [r["status"] for r in runs] == ["failed"]  # only the .gz, found bad once reading began
    assert "not gzip" in cli("cache", "show", str(runs[0]["id"]), "-o", "json").json()["summary"]["failure"]


def test_a_sitemap_found_bad_halfway_fails_the_run_and_keeps_what_was_warmed(cli, fleet, isolated):
    good = isolated / "good.xml"
    good.write_text('<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                    + "".join(f"<url><loc>{u}</loc></url>" for u in pages(2, start=55)) + "</urlset>")
    bad = isolated / "bad.xml"
    bad.write_text("<urlset><url><loc>https://www.sandbox.test/x</loc>")  # cut off inside its first entry
    run = cli("cache", "warm", "--sitemap", str(good), "--sitemap", str(bad), "--nodes", fleet.nodes[0].name)
    assert run.exit_code == 2 and "not well-formed XML" in run.stderr
    record = cli("cache", "show", str(cli("cache", "runs", "-o", "json").json()[0]["id"]), "-o", "json").json()
    assert record["status"] == "failed" and "not well-formed" in record["summary"]["failure"]
    assert record["requests"] == 2  # the good sitemap's pages were warmed, and stay recorded
    shown = cli("cache", "show", str(record["id"]))
    assert "the run failed: sitemap" in shown.stderr


def test_each_sitemap_format_is_read_from_its_content_whatever_its_name(cli, fleet, isolated):
    node = fleet.nodes[0]
    atom = isolated / "sitemap.txt"  # an Atom feed
    atom.write_text('<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><link rel="self" '
                    f'href="https://{HOST}/feed"/>' + "".join(f'<entry><link href="{u}"/></entry>' for u in pages(2, 1))
                    + "</feed>")
    text = isolated / "sitemap.xml"  # a text sitemap: a BOM, CRLF, blank lines and padding
    text.write_bytes(b"\xef\xbb\xbf\r\n" + "".join(f"  {u} \r\n\r\n" for u in pages(2, 3)).encode())
    compressed = isolated / "urls.txt"  # a gzip text sitemap
    compressed.write_bytes(gzip.compress("\n".join(pages(2, 5)).encode()))
    rss = isolated / "feed.atom"  # an RSS 2.0 feed
    rss.write_text(f'<rss version="2.0"><channel><link>https://{HOST}/</link>'
                   + "".join(f"<item><link>{u}</link></item>" for u in pages(2, 7)) + "</channel></rss>")
    before = stats(node)["misses"]
    run = cli("cache", "warm", *[a for f in (atom, text, compressed, rss) for a in ("--sitemap", f)],
              "--nodes", node.name, "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["requests"] == 8 and run.json()["status_classes"] == {"2xx": 8}
    assert stats(node)["misses"] - before == 8 and "warning" not in run.stderr


def test_lastmod_since_reads_an_rss_pubdate_and_an_atom_updated(cli, fleet, isolated):
    old, new, undated, atom_old, atom_new = pages(5, 11)
    rss = isolated / "rss.xml"
    rss.write_text(f'<rss version="2.0"><channel>'
                   f"<item><link>{old}</link><pubDate>Thu, 01 Jan 2026 10:00:00 GMT</pubDate></item>"
                   f"<item><link>{new}</link><pubDate>Mon, 01 Jun 2026 10:00:00 +0200</pubDate></item>"
                   f"<item><link>{undated}</link></item></channel></rss>")
    atom = isolated / "atom.xml"
    atom.write_text('<feed xmlns="http://www.w3.org/2005/Atom">'
                    f'<entry><link href="{atom_old}"/><updated>2025-12-31T23:00:00Z</updated></entry>'
                    f'<entry><link href="{atom_new}"/><updated>2026-07-01T00:00:00+02:00</updated></entry></feed>')
    run = cli("cache", "warm", "--sitemap", rss, "--sitemap", atom, "--lastmod-since", "2026-05-01",
              "--nodes", fleet.nodes[0].name, "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["requests"] == 2
    warmed = cli("cache", "entries", "--node", fleet.nodes[0].name, "-o", "json").json()
    assert sorted(e["url"] for e in warmed) == sorted([new, atom_new])


def test_relative_locations_are_skipped_with_one_counted_warning(cli, fleet, isolated):
    node = fleet.nodes[0]
    sitemap = isolated / "sitemap.xml"
    locs = [*pages(2, 21), "/news/page-0023.html", "news/page-0024.html", "ftp://www.sandbox.test/x"]
    sitemap.write_text('<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                       + "".join(f"<url><loc>{loc}</loc></url>" for loc in locs) + "</urlset>")
    before = stats(node)["misses"]
    run = cli("cache", "warm", "--sitemap", sitemap, "--nodes", node.name, "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["requests"] == 2 and stats(node)["misses"] - before == 2
    warnings = [line for line in run.stderr.splitlines() if '"warning"' in line]
    assert len(warnings) == 1 and "3 location(s) that are not absolute http(s) URLs skipped" in warnings[0]


def test_a_binary_file_is_bad_input_in_one_line_as_a_sitemap_or_a_url_list(cli, fleet, isolated):
    import os
    import random
    import subprocess
    import sys

    garbage = isolated / "sitemap.xml"
    data = random.Random(20261122).randbytes(256 * 1024)
    assert data.lstrip()[:1] != b"<"  # so it is read as a text sitemap, not as XML that is not well-formed
    garbage.write_bytes(data)
    env = {**os.environ, "EDGECTL_STATE": str(isolated / "state.db")}
    for option, named, workers in (("--sitemap", f"sitemap {garbage}", "1"),
                                   ("--urls-file", f"--urls-file {garbage}", "1"),
                                   ("--urls-file", f"--urls-file {garbage}", "2")):  # said once, not by each worker
        run = subprocess.run([sys.executable, "-m", "edgectl", "cache", "warm", option, str(garbage),
                              "--nodes", fleet.nodes[0].name, "--workers", workers], env=env, capture_output=True,
                             timeout=60)
        assert run.returncode == 2, run.stderr
        assert run.stdout == b""
        error, hint = run.stderr.decode().splitlines()
        assert error.startswith(f"error: {named}: no URLs in it; line 1 is not a URL: '") and len(error) < 600
        assert hint.startswith("hint: ")
    runs = cli("cache", "runs", "-o", "json").json()
    assert [r["status"] for r in runs] == ["failed", "failed", "failed"]
    assert "no URLs in it" in cli("cache", "show", str(runs[0]["id"]), "-o", "json").json()["summary"]["failure"]

    debug = cli("--debug", "cache", "warm", "--sitemap", garbage, "-o", "json")
    assert debug.exit_code == 2 and debug.error["kind"] == "usage"
    assert len(debug.stderr) < 20_000  # a traceback and a quoted start of line 1, never the file


def test_an_empty_source_is_a_clean_run_that_warms_nothing(cli, fleet, isolated):
    empty = isolated / "empty"
    empty.write_bytes(b"")
    notes = isolated / "notes.txt"
    notes.write_text("# nothing to warm yet\n\n   \n")
    for option in ("--sitemap", "--urls-file"):
        for source in (empty, notes):
            run = cli("cache", "warm", option, source, "--nodes", fleet.nodes[0].name, "-o", "json")
            assert run.exit_code == 0, run.stderr
            assert run.json()["requests"] == 0 and "error" not in run.stderr


@pytest.mark.parametrize("args, message", [
    (["--sitemap", "http://[::1"], "--sitemap 'http://[::1' is not valid"),
    (["--url", "https://www.sandbox.test/", "--rate", "nan"], "--rate must be a number"),
    (["--url", "https://www.sandbox.test/", "--rate", "inf"], "--rate must be a number"),
])
def test_bad_engine_and_source_options_are_refused_before_a_run_is_recorded(cli, args, message):
    run = cli("cache", "warm", *args)
    assert run.exit_code == 2 and message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert cli("cache", "runs", "-o", "json").json() == []
