"""edgectl's own commands feed the metrics history: probes, heartbeats, warm runs and purges, and the older figures move in."""

from __future__ import annotations

import pytest

from edgectl.state import open_state
from edgectl.state.migrations import migration_names, migrations
from tests.history import history

NOW_ISO = "2026-11-30T12:00:30.000Z"
NOW_MS = 1796040030000


def test_the_figures_kept_before_the_history_move_into_it(state_path):
    from sqlite_utils import Database

    db = Database(str(state_path))
    migrations.apply(db, stop_before="m011_move_node_metrics_into_history")
    db.execute("INSERT INTO nodes (name, endpoint, status, region, created_at, updated_at) VALUES "
               "('fra-1', 'http://127.0.0.1:1', 'active', 'eu-central', ?, ?)", [NOW_ISO, NOW_ISO])
    rows = [("latency", 12.5, "ms", "probe"), ("latency", 20.0, "ms", "probe"), ("probe_up", 1.0, "bool", "probe"),
            ("cpu_percent", 42.0, "percent", "heartbeat"), ("network_mbps", 8.0, "mbps", "heartbeat"),
            ("warm_hit_ratio", 0.5, "ratio", "warm:1")]
    db.conn.executemany("INSERT INTO metrics (node_id, metric, value, unit, source, recorded_at) VALUES (1, ?, ?, ?, ?, ?)",
                        [(*row, NOW_ISO) for row in rows])
    db.conn.commit()
    db.close()

    state = open_state(state_path)
    assert "metrics" not in state.db.table_names()
    moved = [(r["metric"], r["value"], r["unit"], r["source"], r["node"], r["region"], r["at"]) for r in history(state)]
    assert sorted(moved) == sorted([
        ("latency", 12.5, "ms", "probe", "fra-1", "eu-central", NOW_MS),
        ("latency", 20.0, "ms", "probe", "fra-1", "eu-central", NOW_MS),
        ("up", 1.0, "bool", "probe", "fra-1", "eu-central", NOW_MS),
        ("cpu", 42.0, "percent", "heartbeat", "fra-1", "eu-central", NOW_MS),
        ("network", 8.0, "mbps", "heartbeat", "fra-1", "eu-central", NOW_MS)])
    # and into the rollups: the two probes' latencies are one minute's histogram
    from edgectl.analytics.queries import select_series
    from edgectl.analytics.store import window_histograms

    series = select_series(state, "latency", node="fra-1")
    (histogram,) = window_histograms(state, series, NOW_MS - 86_400_000, NOW_MS + 60_000).values()
    assert (histogram.count, histogram.sum, histogram.min, histogram.max) == (2, 32.5, 12.5, 20.0)
    state.close()
    assert migration_names().index("m011_move_node_metrics_into_history") > migration_names().index(
        "m010_create_metric_history")


def test_probes_and_heartbeats_land_in_the_history_with_the_node_and_its_region(cli, state_path, fleet):
    port = fleet.add("healthy", doc={"status": "ok", "cpu_percent": 31.5, "memory_percent": 40})
    assert cli("nodes", "add", "fra-1", "-e", f"http://127.0.0.1:{port}", "--region", "eu-central").exit_code == 0
    assert cli("nodes", "check", "--all").exit_code == 0
    assert cli("nodes", "heartbeat", "fra-1", "--cpu", "55", "--memory", "60").exit_code == 0
    state = open_state(state_path)
    rows = history(state, node="fra-1")
    state.close()
    probe = {r["metric"]: r for r in rows if r["source"] == "probe"}
    assert set(probe) == {"latency", "up", "cpu", "memory"}
    assert probe["up"]["value"] == 1.0 and probe["cpu"]["value"] == 31.5 and probe["latency"]["unit"] == "ms"
    assert {r["region"] for r in rows} == {"eu-central"}
    beat = {r["metric"]: r["value"] for r in rows if r["source"] == "heartbeat"}
    assert beat == {"cpu": 55.0, "memory": 60.0}
    shown = cli("analytics", "latency", "--by", "region", "-o", "json").json()
    assert [(r["region"], r["samples"]) for r in shown] == [("eu-central", 1)]


SANDBOX_HOST = "www.sandbox.test"


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    from tests.fakes.sandbox_fleet import running_fleet

    with running_fleet(tmp_path_factory.mktemp("sources-sandbox"), pages=40) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(box, isolated, state_path):
    import httpx

    from tests.fakes.sandbox_fleet import register

    register(box, state_path)
    for node in box.nodes:
        httpx.post(node.url + "/.edge/purge", json={"all": True}, headers={"Authorization": f"Bearer {box.token()}"},
                   trust_env=False).raise_for_status()
    config = isolated / "edgectl.toml"
    config.write_text(f'[providers.edge]\nkind = "http"\nnodes = "label:sandbox=true"\nhosts = ["{SANDBOX_HOST}"]\n'
                      f'token = "file:{box.token_file}"\n', encoding="utf-8")
    return box, str(config)


def test_a_warm_run_records_each_requests_latency_and_the_hit_ratio_by_node_and_prefix(cli, sandbox, state_path, isolated):
    box, _ = sandbox
    urls = [f"https://{SANDBOX_HOST}/docs/page-{i:04d}.html" for i in range(1, 7)] + \
           [f"https://{SANDBOX_HOST}/news/page-{i:04d}.html" for i in range(1, 3)]
    listing = isolated / "urls.txt"
    listing.write_text("\n".join(urls) + "\n")
    node = box.nodes[0].name
    assert cli("cache", "warm", "--urls-file", str(listing), "--nodes", node).exit_code == 0
    listing.write_text("\n".join(urls[:6]) + "\n")  # the second pass: the /docs/ pages again, all hits
    assert cli("cache", "warm", "--urls-file", str(listing), "--nodes", node).exit_code == 0

    state = open_state(state_path)
    rows = history(state, node=node, source="warm")
    state.close()
    assert len([r for r in rows if r["metric"] == "latency"]) == 8 + 6

    def total(metric, prefix):
        return sum(r["value"] for r in rows if r["metric"] == metric and f'"prefix":"{prefix}"' in r["labels"])

    assert (total("requests", "/docs/"), total("cache.hits", "/docs/")) == (12, 6)
    assert (total("requests", "/news/"), total("cache.hits", "/news/")) == (2, 0)
    assert total("bytes", "/docs/") > 0
    # a run resumed or recorded twice adds nothing: each request is recorded once
    from edgectl.cache.runs import record_metrics

    state = open_state(state_path)
    with state.db.atomic():
        record_metrics(state, 2)
    assert len(history(state, node=node, source="warm")) == len(rows)
    state.close()


def test_each_purge_request_records_how_long_it_took_and_how_it_ended(cli, sandbox, state_path):
    _, config = sandbox
    urls = [f"http://{SANDBOX_HOST}/docs/page-{i:04d}.html" for i in range(1, 4)]
    run = cli("--config", config, "cdn", "purge", *[a for u in urls for a in ("--url", u)], "--reason", "test")
    assert run.exit_code == 0, run.stderr
    state = open_state(state_path)
    rows = history(state, source="purge")
    state.close()
    durations = [r for r in rows if r["metric"] == "purge.duration"]
    assert durations and all(r["provider"] == "edge" and r["unit"] == "ms" and r["value"] > 0 for r in durations)
    assert {'"outcome":"accepted"' in r["labels"] for r in durations} == {True}
    assert sum(r["value"] for r in rows if r["metric"] == "purge.items") == len(urls)
