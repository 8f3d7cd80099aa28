"""`analytics cache`, `usage`, `top` and `performance`: figures read from the history, checked against the samples put in."""

from __future__ import annotations

import json
import os
import random
import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.routing_state import add_node, age_heartbeat, heartbeat, write_config

MINUTE, HOUR = 60_000, 3_600_000
BOUND = 0.006  # the histograms' 0.54% and a little


def exact(values: list[float], q: float) -> float:
    """The nearest-rank quantile: the ceil(q n)-th smallest."""
    ordered = sorted(values)
    rank = max(1, -(-int(round(q * 1_000_000)) * len(ordered) // 1_000_000))
    return ordered[rank - 1]


def close(answer: float, truth: float) -> bool:
    return abs(answer - truth) <= BOUND * abs(truth)


@pytest.fixture
def put(state_path):
    """put(metric, value, minutes_ago, node=..., labels=...): samples through edgectl.analytics.store.ingest."""
    from edgectl.analytics.metrics import key
    from edgectl.analytics.samples import Sample
    from edgectl.analytics.store import ingest
    from edgectl.state import open_state

    now_ms = int(time.time() * 1000)

    def put(rows: list[tuple]) -> None:
        samples = [Sample(key(metric, **where), int(now_ms - ago * MINUTE), float(value))
                   for metric, value, ago, where in rows]
        state = open_state(state_path)
        try:
            ingest(state, samples)
        finally:
            state.close()

    put.now_ms = now_ms
    return put


def hour_start(now_ms: int, hours_ago: int) -> int:
    return now_ms - now_ms % HOUR - hours_ago * HOUR


# --- analytics latency ---------------------------------------------------------------------------


def test_latency_records_have_the_same_fields_in_every_format_empty_or_not(cli, put):
    fields = ["provider", "samples", "p50", "p95", "p99", "mean", "min", "max", "unit", "source"]
    empty = cli("analytics", "latency", "--by", "provider", "-o", "csv")
    assert empty.exit_code == 0 and empty.stdout.splitlines() == [",".join(fields)]
    put([("latency", 40.0, 5, {"provider": "edge"}), ("latency", 60.0, 6, {"provider": "edge"}),
         ("latency", 80.0, 5, {"provider": "cf", "kind": "gauge", "labels": {"source": "pull", "stat": "p95"}})])
    rows = cli("analytics", "latency", "--by", "provider", "-o", "json").json()
    assert [list(r) for r in rows] == [fields, fields]
    found = {r["provider"]: r for r in rows}
    assert (found["edge"]["source"], found["edge"]["unit"], found["edge"]["min"], found["edge"]["max"]) == (
        "history", "ms", 40.0, 60.0)
    assert (found["cf"]["source"], found["cf"]["p95"], found["cf"]["mean"], found["cf"]["p50"]) == (
        "provider", 80.0, None, None)
    lines = cli("analytics", "latency", "--by", "provider", "-o", "jsonl").stdout.splitlines()
    assert [list(json.loads(line)) for line in lines] == [fields, fields]
    csv_lines = cli("analytics", "latency", "--by", "provider", "-o", "csv").stdout.splitlines()
    assert csv_lines[0] == ",".join(fields) and len(csv_lines) == 3
    table = cli("analytics", "latency", "--by", "provider").stdout.splitlines()
    assert table[0].split() == ["PROVIDER", "SAMPLES", "P50", "P95", "P99", "MEAN", "MIN", "MAX", "SOURCE"]
    assert next(line for line in table if line.startswith("cf")).split()[-1] == "provider"
    assert next(line for line in table if line.startswith("edge")).split()[-1] == "history"


# --- analytics cache ---------------------------------------------------------------------------


@pytest.fixture
def traffic(put):
    """Requests and hits per node and prefix: fra-1 at 95%, iad-1 at 75%; and some older than a day."""
    rows, at = [], {}
    for node, prefix, requests, hits, hours_ago in (
            ("fra-1", "/static/", 600, 590, 2), ("fra-1", "/api/", 400, 360, 5),
            ("iad-1", "/static/", 300, 270, 2), ("iad-1", "/api/", 100, 30, 7)):
        # minutes into the hour that many hours back, each sample 10 requests
        minutes = (put.now_ms - hour_start(put.now_ms, hours_ago)) / MINUTE - 20
        labels = {"prefix": prefix}
        for n in range(requests // 10):
            rows.append(("requests", 10, minutes - n * 0.1, {"node": node, "labels": labels}))
        rows.append(("cache.hits", hits, minutes, {"node": node, "labels": labels}))
        rows.append(("bytes", 1000 * requests, minutes, {"node": node, "labels": labels}))
        at[node, prefix] = hour_start(put.now_ms, hours_ago)
    # a day and more ago: outside --since 24h
    rows += [("requests", 5000, 30 * 60, {"node": "fra-1", "labels": {"prefix": "/static/"}}),
             ("cache.hits", 10, 30 * 60, {"node": "fra-1", "labels": {"prefix": "/static/"}})]
    put(rows)
    return at


def test_hit_ratio_per_node_is_hits_over_requests_and_below_target_is_flagged(cli, traffic):
    run = cli("analytics", "cache", "--by", "node", "--since", "24h", "-o", "json")
    assert run.exit_code == 0, run.stderr
    record = run.json()
    groups = {g["node"]: g for g in record["groups"]}
    assert [g["node"] for g in record["groups"]] == ["iad-1", "fra-1"]  # worst first
    assert (groups["fra-1"]["requests"], groups["fra-1"]["hits"], groups["fra-1"]["misses"]) == (1000, 950, 50)
    assert groups["fra-1"]["hit_ratio"] == 0.95 and groups["fra-1"]["below_target"] is False
    assert (groups["iad-1"]["requests"], groups["iad-1"]["hits"], groups["iad-1"]["misses"]) == (400, 300, 100)
    assert groups["iad-1"]["hit_ratio"] == 0.75 and groups["iad-1"]["below_target"] is True
    assert groups["iad-1"]["bytes"] == 400_000 and groups["fra-1"]["target"] == 0.9
    assert (record["requests"], record["hits"], record["hit_ratio"]) == (1400, 1250, 1250 / 1400)
    assert record["below_target"] is True and record["target"] == 0.9  # 89.3%


def test_hit_ratio_over_time_per_step(cli, traffic):
    record = cli("analytics", "cache", "--step", "1h", "-o", "json").json()
    assert record["step_s"] == 3600
    steps = {datetime.fromisoformat(s["start"].replace("Z", "+00:00")): s for s in record["steps"]}
    assert len(record["steps"]) in (24, 25)

    def step(hours_ago: int) -> dict:
        return steps[datetime.fromtimestamp(hour_start(int(time.time() * 1000), hours_ago) / 1000, timezone.utc)]

    two = step(2)  # both nodes' /static/
    assert (two["requests"], two["hits"], two["hit_ratio"]) == (900, 860, 860 / 900)
    assert (step(5)["requests"], step(5)["hits"]) == (400, 360)
    seven = step(7)
    assert (seven["requests"], seven["hits"], seven["misses"], seven["hit_ratio"]) == (100, 30, 70, 0.3)
    assert seven["below_target"] is True and step(2)["below_target"] is False
    assert step(3)["requests"] == 0 and step(3)["hit_ratio"] is None
    assert sum(s["requests"] for s in record["steps"]) == record["requests"] == 1400
    per_node = {g["node"]: g for g in record["groups"]}
    assert [s["hits"] for s in per_node["iad-1"]["steps"] if s["hits"]] == [30, 270]


def test_hit_ratio_by_prefix_and_a_target_from_the_config(cli, traffic, isolated):
    record = cli("analytics", "cache", "--by", "prefix", "-o", "json").json()
    groups = {g["prefix"]: g for g in record["groups"]}
    assert (groups["/static/"]["requests"], groups["/static/"]["hits"]) == (900, 860)
    assert (groups["/api/"]["requests"], groups["/api/"]["hits"], groups["/api/"]["misses"]) == (500, 390, 110)
    assert groups["/api/"]["below_target"] is True and groups["/static/"]["below_target"] is False

    write_config(isolated, "[analytics]\nhit_ratio_target = 0.7\n")
    lenient = cli("analytics", "cache", "--by", "node", "-o", "json").json()
    assert lenient["target"] == 0.7 and not any(g["below_target"] for g in lenient["groups"])
    write_config(isolated, "[analytics]\nhit_ratio_target = 1.5\n")
    bad = cli("analytics", "cache")
    assert bad.exit_code == 2 and "analytics.hit_ratio_target: must be at most 1" in bad.stderr


def test_hit_ratio_by_region_is_offered_as_top_ranks_it(cli, put):
    put([("requests", 1000, 30, {"region": "eu"}), ("cache.hits", 970, 30, {"region": "eu"}),
         ("requests", 800, 30, {"region": "us"}), ("cache.hits", 600, 30, {"region": "us"})])
    run = cli("analytics", "cache", "--by", "region", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert [(g["region"], g["hit_ratio"], g["below_target"]) for g in run.json()["groups"]] == [
        ("us", 0.75, True), ("eu", 0.97, False)]
    top = cli("analytics", "top", "-o", "json").json()["lowest_hit_ratio_regions"]
    assert [(r["region"], r["hit_ratio"]) for r in top] == [("us", 0.75), ("eu", 0.97)]


def test_the_cache_table_flags_what_is_below_target(cli, traffic):
    run = cli("analytics", "cache", "--step", "6h")
    assert run.exit_code == 0, run.stderr
    lines = run.stdout.splitlines()
    iad = next(line for line in lines if line.startswith("iad-1"))
    fra = next(line for line in lines if line.startswith("fra-1"))
    assert "75.0%" in iad and "below target" in iad and "95.0%" in fra and "below target" not in fra
    assert "hit ratio over time, every 6h" in run.stdout
    assert "1 of 2 below the target: iad-1" in run.stderr and "hit ratio 89.3% over the last 24h" in run.stderr


def test_the_table_over_time_leaves_out_the_empty_steps_around_the_data(cli, put):
    # samples in the last three hours of a day cut into hours: 21 empty hours before them
    put([("requests", 100, 150, {"node": "fra-1"}), ("cache.hits", 90, 150, {"node": "fra-1"}),
         ("requests", 100, 10, {"node": "fra-1"}), ("cache.hits", 95, 10, {"node": "fra-1"})])
    record = cli("analytics", "cache", "--step", "1h", "-o", "json").json()
    held = [n for n, s in enumerate(record["steps"]) if s["requests"]]
    assert len(record["steps"]) >= 24 and len(held) == 2  # json keeps every step
    inside = held[-1] - held[0] + 1
    left_out = len(record["steps"]) - inside
    table = cli("analytics", "cache", "--step", "1h")
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    steps = lines[lines.index("hit ratio over time, every 1h") + 2:]
    shown = [line for line in steps if line[:4].isdigit()]
    assert len(shown) == inside  # the empty hour between the two is kept: it is inside the data
    assert "no samples" in " ".join(shown) and "no samples" not in shown[0] + shown[-1]
    assert f"{left_out} step(s) without samples not shown" in table.stdout


def test_no_samples_is_one_line_and_exit_0(cli):
    run = cli("analytics", "cache")
    assert run.exit_code == 0 and run.stdout == ""
    assert run.stderr.startswith("no samples in the last 24h")
    record = cli("analytics", "cache", "--since", "2h", "-o", "json").json()
    assert record["groups"] == [] and record["requests"] == 0 and record["hit_ratio"] is None
    for command in (("usage",), ("top",), ("cache", "--by", "prefix")):
        run = cli("analytics", *command, "--since", "24h")
        assert run.exit_code == 0 and "no samples in the last 24h" in run.stderr, command


@pytest.mark.parametrize("args, says", [
    (("--by", "country"), "--by 'country': one of node, provider, region, prefix"),
    (("--step", "90s"), "--step must be whole minutes"),
    (("--step", "1m", "--since", "7d"), "--step is too fine for the window: more than 2,000 steps"),
    (("--since", "0s"), "--since must be more than zero"),
    (("--since", "soon"), "--since: 'soon' is not a valid duration"),
])
def test_bad_cache_input_is_exit_2(cli, args, says):
    run = cli("analytics", "cache", *args)
    assert run.exit_code == 2 and run.stderr.startswith("error: ") and says in run.stderr, run.stderr


# --- analytics usage ---------------------------------------------------------------------------


def test_usage_per_node_average_p95_and_max(cli, put):
    rng = random.Random(11)
    rows, truth = [], {}
    for node in ("fra-1", "iad-1", "n10"):
        for metric, scale in (("cpu", 60.0), ("memory", 70.0), ("disk", 40.0), ("network", 300.0)):
            values = [round(rng.uniform(0.2, 1.0) * scale, 3) for _ in range(500)]
            rows += [(metric, v, rng.uniform(1, 23 * 60), {"node": node, "labels": {"source": "heartbeat"}})
                     for v in values]
            truth[node, metric] = values
    rows.append(("cpu", 99.0, 26 * 60, {"node": "fra-1"}))  # older than the window
    put(rows)
    run = cli("analytics", "usage", "-o", "json")
    assert run.exit_code == 0, run.stderr
    records = run.json()
    assert [(r["node"], r["metric"]) for r in records][:4] == [("fra-1", m) for m in ("cpu", "memory", "disk", "network")]
    assert [r["node"] for r in records][-1] == "n10"  # natural order: n10 after iad-1
    for r in records:
        values = truth[r["node"], r["metric"]]
        assert r["samples"] == len(values)
        assert abs(r["avg"] - sum(values) / len(values)) < 1e-9
        assert r["max"] == max(values)
        assert close(r["p95"], exact(values, 0.95)), (r, exact(values, 0.95))
    assert {r["unit"] for r in records if r["metric"] == "network"} == {"mbps"}
    table = cli("analytics", "usage")
    assert "NODE" in table.stdout and "P95" in table.stdout and "network" in table.stdout


def test_usage_figures_have_one_decimal_in_every_row(cli, put):
    put([("cpu", 29.728, 5, {"node": "fra-1"}), ("cpu", 29.728, 6, {"node": "fra-1"}),
         ("cpu", 61, 5, {"node": "iad-1"}), ("network", 1234.5678, 5, {"node": "iad-1"})])
    lines = cli("analytics", "usage").stdout.splitlines()
    assert lines[0].split() == ["NODE", "METRIC", "UNIT", "SAMPLES", "AVG", "P95", "MAX"]
    rows = {tuple(line.split()[:2]): line.split()[4:] for line in lines[1:]}
    assert rows["fra-1", "cpu"][0] == "29.7" and rows["fra-1", "cpu"][2] == "29.7"
    assert rows["iad-1", "cpu"] == ["61.0", "61.0", "61.0"]
    assert rows["iad-1", "network"][0] == "1,234.6"
    assert cli("analytics", "usage", "-o", "json").json()[0]["avg"] == pytest.approx(29.728)  # data stays exact


# --- analytics top -----------------------------------------------------------------------------


def test_top_lists_the_slowest_nodes_and_regions_and_the_most_missed_paths(cli, put):
    rng = random.Random(5)
    rows, by_node, by_region = [], {}, {}
    for node, region, scale in (("fra-1", "eu", 20.0), ("ams-1", "eu", 35.0), ("iad-1", "us", 90.0),
                                ("sfo-1", "us", 60.0), ("nrt-1", "ap", 140.0)):
        for _ in range(400):
            value = round(rng.lognormvariate(0, 0.4) * scale, 3)
            rows.append(("latency", value, rng.uniform(1, 20 * 60), {"node": node, "region": region}))
            by_node.setdefault(node, []).append(value)
            by_region.setdefault(region, []).append(value)
    rows.append(("latency", 5000.0, 5, {"provider": "cf"}))  # no node and no region: on no list
    for region, requests, hits in (("eu", 1000, 970), ("us", 800, 600), ("ap", 200, 180)):
        rows += [("requests", requests, 30, {"region": region}), ("cache.hits", hits, 30, {"region": region})]
    for prefix, requests, hits in (("/static/", 5000, 4900), ("/api/", 900, 100), ("/img/", 2000, 1500)):
        rows += [("requests", requests, 40, {"node": "fra-1", "labels": {"prefix": prefix}}),
                 ("cache.hits", hits, 40, {"node": "fra-1", "labels": {"prefix": prefix}})]
    put(rows)
    run = cli("analytics", "top", "--limit", "3", "-o", "json")
    assert run.exit_code == 0, run.stderr
    top = run.json()
    expected = sorted(by_node, key=lambda n: -exact(by_node[n], 0.95))[:3]
    assert [r["node"] for r in top["slowest_nodes"]] == expected == ["nrt-1", "iad-1", "sfo-1"]
    for r in top["slowest_nodes"]:
        assert close(r["p95"], exact(by_node[r["node"]], 0.95)) and close(r["p50"], exact(by_node[r["node"]], 0.5))
    assert [r["region"] for r in top["slowest_regions"]] == ["ap", "us", "eu"]
    assert close(top["slowest_regions"][1]["p95"], exact(by_region["us"], 0.95))
    assert [(r["region"], r["hit_ratio"]) for r in top["lowest_hit_ratio_regions"]] == [
        ("us", 0.75), ("ap", 0.9), ("eu", 0.97)]
    assert [(r["prefix"], r["misses"]) for r in top["most_missed_prefixes"]] == [
        ("/api/", 800), ("/img/", 500), ("/static/", 100)]
    assert top["most_missed_urls"] == []
    assert len(cli("analytics", "top", "--limit", "1", "-o", "json").json()["slowest_nodes"]) == 1

    table = cli("analytics", "top")
    for title in ("slowest nodes", "slowest regions", "lowest hit ratio", "most missed paths", "most missed URLs"):
        assert title in table.stdout
    rows_csv = cli("analytics", "top", "-o", "csv").stdout.splitlines()
    assert rows_csv[0].startswith("list,rank,") and any(line.startswith("most_missed_prefixes,1,") for line in rows_csv)
    assert cli("analytics", "top", "--limit", "0").exit_code == 2


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    from tests.fakes.sandbox_fleet import running_fleet

    with running_fleet(tmp_path_factory.mktemp("top-sandbox"), pages=20) as sandbox:
        yield sandbox


def test_top_names_the_urls_cache_warms_missed(cli, box, isolated):
    from tests.fakes.sandbox_fleet import register

    register(box, isolated / "state.db")
    urls = [f"https://www.sandbox.test/docs/page-{i:04d}.html" for i in (1, 2, 3)]
    listing = isolated / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    first = cli("cache", "warm", "--urls-file", str(listing), "--all-nodes", "-o", "json")
    assert first.exit_code == 0, first.stderr
    assert first.json()["cache_before"] == {n.name: {"miss": 3} for n in box.nodes}
    assert cli("cache", "warm", "--url", urls[0], "--all-nodes").exit_code == 0  # now hits
    missed = {r["url"]: r for r in cli("analytics", "top", "-o", "json").json()["most_missed_urls"]}
    assert set(missed) == set(urls)
    nodes = len(box.nodes)
    assert (missed[urls[0]]["misses"], missed[urls[0]]["hits"], missed[urls[0]]["fetches"]) == (nodes, nodes, 2 * nodes)
    assert missed[urls[0]]["hit_ratio"] == 0.5 and missed[urls[1]]["hit_ratio"] == 0.0
    assert missed[urls[1]]["nodes"] == nodes
    # the warms' own requests and hits, as they recorded them in the history
    docs = cli("analytics", "cache", "--by", "prefix", "-o", "json").json()["groups"]
    assert [(g["prefix"], g["requests"], g["hits"], g["misses"]) for g in docs] == [("/docs/", 4 * nodes, nodes, 3 * nodes)]
    per_node = cli("analytics", "cache", "--by", "node", "-o", "json").json()["groups"]
    assert {(g["node"], g["requests"], g["hits"], g["hit_ratio"]) for g in per_node} == {
        (n.name, 4, 1, 0.25) for n in box.nodes}
    paths = cli("analytics", "top", "-o", "json").json()["most_missed_prefixes"]
    assert [(p["prefix"], p["misses"]) for p in paths] == [("/docs/", 3 * nodes)]

    # each list's table headers are its records' field names
    record = cli("analytics", "top", "-o", "json").json()
    table = cli("analytics", "top").stdout.split("\n\n")
    titled = 0
    for key, rows in record.items():
        if not rows:
            continue
        section = next(part.splitlines() for part in table if part.splitlines()[0].startswith(TOP_TITLES[key]))
        headers = [h.lower().replace(" ", "_") for h in re.split(r"\s{2,}", section[1].strip())]
        assert set(headers) <= set(rows[0]), (key, headers, list(rows[0]))
        titled += 1
    assert titled >= 2
    urls_section = next(part for part in table if part.startswith(TOP_TITLES["most_missed_urls"]))
    assert "FETCHES" in urls_section and "LAST FETCHED" in urls_section


TOP_TITLES = {"slowest_nodes": "slowest nodes", "slowest_regions": "slowest regions",
              "lowest_hit_ratio_regions": "regions with the lowest hit ratio",
              "most_missed_prefixes": "most missed paths", "most_missed_urls": "most missed URLs"}


# --- analytics performance ---------------------------------------------------------------------


@pytest.fixture
def estate(cli, put, fleet):
    """Three nodes (one failed by its probes, one whose heartbeats stopped), latency and hits."""
    add_node(cli, "fra-1")
    add_node(cli, "iad-1")
    add_node(cli, "nrt-1")
    port = fleet.add("error")
    assert cli("nodes", "update", "iad-1", "--endpoint", f"http://127.0.0.1:{port}").exit_code == 0
    assert cli("nodes", "check", "iad-1", "--fail-after", "1").exit_code == 1
    heartbeat(cli, "nrt-1", "--cpu", "20")
    age_heartbeat("nrt-1", timedelta(minutes=10))
    rng = random.Random(3)
    rows, values = [], {}
    for region, scale in (("eu", 25.0), ("ap", 120.0)):
        for _ in range(300):
            value = round(rng.lognormvariate(0, 0.3) * scale, 3)
            rows.append(("latency", value, rng.uniform(1, 50), {"node": "fra-1", "region": region}))
            values.setdefault(region, []).append(value)
    rows.append(("latency", 900.0, 3 * 60, {"node": "fra-1", "region": "eu"}))  # before the last hour
    rows += [("requests", 1000, 10, {"node": "fra-1"}), ("cache.hits", 820, 10, {"node": "fra-1"})]
    put(rows)
    return values


def test_the_performance_record_holds_each_part(cli, estate):
    run = cli("analytics", "performance", "-o", "json")
    assert run.exit_code == 0, run.stderr
    record = run.json()
    regions = {r["region"]: r for r in record["latency_by_region"]}
    assert set(regions) == {"eu", "ap"} and regions["eu"]["samples"] == 300
    for region, values in estate.items():
        for p in (50, 95, 99):
            assert close(regions[region][f"p{p}"], exact(values, p / 100)), (region, p)
    hit = record["hit_ratio"]
    assert (hit["requests"], hit["hits"], hit["hit_ratio"], hit["below_target"], hit["target"]) == (1000, 820, 0.82, True, 0.9)
    assert [n["node"] for n in hit["by_node"]] == ["fra-1"]
    nodes = record["nodes"]
    assert nodes["total"] == 3 and nodes["by_status"] == {"active": 2, "failed": 1}
    assert {(n["name"], n["status"], n["stale"]) for n in nodes["troubled"]} == {("iad-1", "failed", False),
                                                                                   ("nrt-1", "active", True)}
    assert record["alerts"] == {"rules": False, "firing": []}  # no rules: not "none firing"


def test_the_performance_screen_has_its_sections(cli, estate):
    run = cli("analytics", "performance")
    assert run.exit_code == 0, run.stderr
    out = run.stdout
    for title in ("latency by region, last 1h", "hit ratio, last 1h (target 90.0%)",
                  "failing and stale nodes (3 nodes: 2 active, 1 failed)", "firing alerts"):
        assert title in out, out
    assert "iad-1" in out and "nrt-1" in out and "82.0%" in out and "below target" in out
    assert "no alert rules" in out and "none firing" not in out


def test_watch_without_a_terminal_prints_the_screen_once(cli, estate):
    run = cli("analytics", "performance", "--watch", "--count", "2", "--interval", "10ms")
    assert run.exit_code == 0, run.stderr
    assert run.stdout.count("latency by region") == 1
    as_json = cli("analytics", "performance", "--watch", "--count", "2", "--interval", "10ms", "-o", "json")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["nodes"]["total"] == 3


def test_performance_bad_input_is_exit_2(cli):
    for args in (("--interval", "0s"), ("--since", "x"), ("--count", "0")):
        run = cli("analytics", "performance", *args)
        assert run.exit_code == 2 and run.stderr.startswith("error: "), (args, run.stderr)


# --- --watch at a real terminal ------------------------------------------------------------------


def _in_a_terminal(args: list[str], env: dict, *, until: str | None = None, interrupt: bool = False,
                   deadline_s: float = 60.0, columns: int = 120):
    """Run edgectl on a pseudo-terminal (`columns` x 40); (exit code, everything it drew).

    With `until`, SIGINT is sent once that text has been drawn (as Ctrl-C would).
    """
    import fcntl
    import pty
    import select
    import signal
    import struct
    import subprocess
    import sys
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECTL_")} | env | {"TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "edgectl", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=full_env, close_fds=True)
    os.close(slave)
    drawn, sent = b"", False
    stop = time.monotonic() + deadline_s
    try:
        while time.monotonic() < stop:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child has gone and closed its side
                    break
                if not chunk:
                    break
                drawn += chunk
            if interrupt and not sent and until and until.encode() in drawn:
                proc.send_signal(signal.SIGINT)
                sent = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, drawn.decode("utf-8", "replace")


def test_watch_at_a_terminal_refreshes_the_layout_count_times(estate, state_path):
    code, drawn = _in_a_terminal(["analytics", "performance", "--watch", "--count", "2", "--interval", "50ms"],
                                 {"EDGECTL_STATE": str(state_path)})
    assert code == 0, drawn
    for title in ("latency by region", "hit ratio", "failing and stale nodes", "firing alerts"):
        assert title in drawn
    assert "Ctrl-C to stop" in drawn and "Traceback" not in drawn
    assert "╭" in drawn  # panels, as a terminal draws them


def test_a_narrow_terminal_never_breaks_a_node_name(cli, put, state_path):
    names = ("sandbox-ap-south-1", "sandbox-eu-west-1", "sandbox-us-east-1")
    for name in names:
        assert cli("nodes", "add", name, "-e", "http://127.0.0.1:9", "--region", name[8:]).exit_code == 0
    for name in names[:2]:
        assert cli("nodes", "check", name, "--fail-after", "1").exit_code == 1  # nothing listens on port 9
    put([(metric, value, 5, {"node": name}) for name in names for metric, value in (("requests", 100), ("cache.hits", 73))])
    code, drawn = _in_a_terminal(["--no-color", "analytics", "performance", "--watch", "--count", "1"],
                                 {"EDGECTL_STATE": str(state_path)}, columns=100)
    assert code == 0, drawn
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn)
    assert "failing and stale nodes" in text and "hit ratio" in text
    for name in names:
        assert name in text, (name, text)  # whole on one line, in each panel that lists it


def test_ctrl_c_stops_the_watch_with_exit_130_and_no_traceback(estate, state_path):
    code, drawn = _in_a_terminal(["analytics", "performance", "--watch", "--interval", "1s"],
                                 {"EDGECTL_STATE": str(state_path)}, until="Ctrl-C to stop", interrupt=True)
    assert code == 130, drawn
    assert "Traceback" not in drawn and "error: interrupted" in drawn


def test_a_provider_that_reports_no_hits_has_no_hit_ratio_rather_than_zero(cli, state_path):
    from edgectl.analytics.metrics import key
    from edgectl.analytics.samples import Sample
    from edgectl.analytics.store import ingest
    from edgectl.state import open_state

    now = int(__import__("time").time() * 1000) - 600_000
    state = open_state(state_path)
    ingest(state, [Sample(key("requests", provider="azure"), now, 1000),  # Azure reports requests, no hits
                   Sample(key("requests", provider="cf"), now, 100), Sample(key("cache.hits", provider="cf"), now, 95)])
    state.close()
    record = cli("analytics", "cache", "--by", "provider", "--since", "1h", "-o", "json").json()
    groups = {g["provider"]: g for g in record["groups"]}
    assert groups["azure"]["hit_ratio"] is None and groups["azure"]["below_target"] is False
    assert groups["cf"]["hit_ratio"] == 0.95
    assert record["hit_ratio"] == 0.95  # the overall ratio is over those that report hits
