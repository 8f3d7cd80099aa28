"""`analytics export`: Prometheus families checked against the history put in, through the real
node_exporter and Pushgateway; CSV and JSON lines that load back into `analytics ingest`."""

from __future__ import annotations

import csv
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.health_servers import closed_port
from tests.fakes.prometheus_servers import PUSH_PASSWORD, PUSH_USER, node_exporter, pushgateway

OLD_HEARTBEAT = "2026-01-01T00:00:00.000Z"


def exact(values: list[float], q: float) -> float:
    """The nearest-rank quantile: the ceil(q n)-th smallest."""
    ordered = sorted(values)
    rank = max(1, -(-int(round(q * 1_000_000)) * len(ordered) // 1_000_000))
    return ordered[rank - 1]


def parse(text: str) -> dict[str, dict[tuple, float]]:
    """Prometheus text as {family: {sorted label items: value}}, checking what every sample must be.

    An empty label is no label to Prometheus (node_exporter writes every label of a family on
    every sample, empty where a sample lacks it)."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert sample.timestamp is None, sample
            key = tuple(sorted((k, v) for k, v in sample.labels.items() if v != ""))
            out.setdefault(family.name, {})[key] = sample.value
    return out


def edgectl_families(text: str) -> dict[str, dict[tuple, float]]:
    return {name: samples for name, samples in parse(text).items() if name.startswith("edgectl_")}


def labels(**items: str) -> tuple:
    return tuple(sorted(items.items()))


@pytest.fixture
def history(cli, tmp_path, fleet, state_path):
    """Samples of the last three minutes, a provider's p95 gauges, and nodes in every state."""
    from edgectl.analytics.metrics import key
    from edgectl.analytics.samples import Sample
    from edgectl.analytics.store import ingest
    from edgectl.state import open_state

    rng = random.Random(11)
    now = time.time()

    def at() -> float:
        return now - rng.uniform(5, 170)

    rows, truth = [], {"latency": {}, "requests": 0.0, "hits": 0.0, "cpu": [], "network": []}
    for node, region, countries, scale in (("fra-1", "eu", ("DE", "FR"), 30.0), ("iad-1", "us", ("US",), 80.0)):
        for country in countries:
            for _ in range(400):
                value = round(rng.lognormvariate(0, 0.5) * scale, 3)
                rows.append({"time": at(), "metric": "latency", "value": value, "unit": "ms", "node": node,
                             "region": region, "country": country, "labels": {"source": "rum"}})
                truth["latency"].setdefault(node, {}).setdefault(country, []).append(value)
    for _ in range(30):
        requests = rng.randint(50, 150)
        hits = rng.randint(0, requests)
        truth["requests"] += requests
        truth["hits"] += hits
        for metric, value in (("requests", requests), ("cache.hits", hits)):
            rows.append({"time": at(), "metric": metric, "value": value, "unit": "count", "provider": "cloudflare",
                         "labels": {"source": "rum"}})
        cpu, network = rng.uniform(10, 90), rng.uniform(1, 500)
        truth["cpu"].append(cpu)
        truth["network"].append(network)
        rows.append({"time": at(), "metric": "cpu", "value": cpu, "unit": "percent", "node": "fra-1",
                     "labels": {"source": "agent", "job": "edge"}})
        rows.append({"time": at(), "metric": "network", "value": network, "unit": "mbps", "node": "fra-1",
                     "labels": {"source": "agent"}})
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli("analytics", "ingest", str(path), "--format", "jsonl").exit_code == 0

    state = open_state(state_path)
    p95 = key("latency", provider="cloudflare", labels={"stat": "p95", "source": "pull"}, kind="gauge")
    p95_de = key("latency", provider="cloudflare", country="DE", labels={"stat": "p95", "source": "pull"}, kind="gauge")
    newest = int((now - 10) * 1000)
    ingest(state, [Sample(p95, newest - 60_000, 120.0), Sample(p95, newest, 150.0), Sample(p95_de, newest, 99.0)])
    state.close()

    healthy, closed = fleet.add("healthy"), closed_port()
    for name, port in (("edge-up", healthy), ("edge-down", closed), ("edge-new", closed), ("edge-hb", closed)):
        extra = ("--region", "eu-west", "--country", "DE", "--city", "Frankfurt") if name == "edge-up" else ()
        assert cli("nodes", "add", name, "--endpoint", f"http://127.0.0.1:{port}", *extra).exit_code == 0
    run = cli("nodes", "check", "edge-up", "edge-down", "--timeout", "2s", "--fail-after", "1")
    assert run.exit_code in (0, 1), run.stderr
    assert cli("nodes", "drain", "edge-new").exit_code == 0
    assert cli("nodes", "heartbeat", "edge-hb", "--cpu", "10").exit_code == 0
    with sqlite3.connect(state_path) as db:  # a heartbeat long ago: the node is stale now
        db.execute("UPDATE nodes SET last_heartbeat = ? WHERE name = 'edge-hb'", [OLD_HEARTBEAT])
    return truth


def check_against_history(families: dict, truth: dict) -> None:
    """The families an export of `history` must hold, with the values the samples put in give."""
    for name in families:
        assert not name.endswith("_created")
    window = families["edgectl_export_window_seconds"][()]
    assert 300 <= window <= 361  # --since 5m, from the start of its first minute
    latency = families["edgectl_latency_seconds"]
    samples = families["edgectl_latency_samples"]
    for node, region in (("fra-1", "eu"), ("iad-1", "us")):
        values = [v for per_country in truth["latency"][node].values() for v in per_country]
        series = dict(node=node, region=region, source="rum")
        assert samples[labels(**series)] == len(values)
        for q in ("0.5", "0.95", "0.99"):
            want = exact(values, float(q)) / 1000
            assert abs(latency[labels(**series, quantile=q)] - want) / want <= 0.006, (node, q)
    rum = labels(provider="cloudflare", source="rum")
    assert families["edgectl_requests_per_second"][rum] == pytest.approx(truth["requests"] / window)
    assert families["edgectl_cache_hits_per_second"][rum] == pytest.approx(truth["hits"] / window)
    assert families["edgectl_cache_hit_ratio"][rum] == pytest.approx(truth["hits"] / truth["requests"])
    # a series label named like one Prometheus sets (job) is kept under another name
    cpu = families["edgectl_cpu_ratio"][labels(node="fra-1", source="agent", label_job="edge")]
    assert cpu == pytest.approx(sum(truth["cpu"]) / len(truth["cpu"]) / 100)
    network = families["edgectl_network_bytes_per_second"][labels(node="fra-1", source="agent")]
    assert network == pytest.approx(sum(truth["network"]) / len(truth["network"]) * 125_000)
    assert families["edgectl_provider_latency_seconds"] == {
        labels(provider="cloudflare", source="pull", stat="p95"): pytest.approx(0.150)}

    assert families["edgectl_node_up"] == {labels(node="edge-up"): 1.0, labels(node="edge-down"): 0.0}
    status = families["edgectl_node_status"]
    for node, now in (("edge-up", "active"), ("edge-down", "failed"), ("edge-new", "draining"), ("edge-hb", "active")):
        assert {s: status[labels(node=node, status=s)] for s in ("active", "draining", "maintenance", "inactive",
                                                                 "failed")} == {
            s: (1.0 if s == now else 0.0) for s in ("active", "draining", "maintenance", "inactive", "failed")}
    assert families["edgectl_node_stale"] == {labels(node="edge-hb"): 1.0}
    from edgectl.timeutil import from_iso

    assert families["edgectl_node_last_heartbeat_timestamp_seconds"] == {
        labels(node="edge-hb"): from_iso(OLD_HEARTBEAT).timestamp()}
    assert families["edgectl_node_info"][labels(node="edge-up", region="eu-west", country="DE", city="Frankfurt")] == 1
    assert families["edgectl_history_last_sample_timestamp_seconds"][()] <= time.time()


def test_textfile_holds_the_history_as_gauges_without_created_or_timestamps(cli, history, tmp_path):
    out = tmp_path / "textfile"
    out.mkdir()
    run = cli("analytics", "export", "--textfile", str(out), "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["textfile"] == str(out / "edgectl.prom")
    assert sorted(p.name for p in out.iterdir()) == ["edgectl.prom"]
    text = (out / "edgectl.prom").read_text()
    assert "_created" not in text
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert set(types.values()) == {"gauge"}
    check_against_history(parse(text), history)
    assert run.json()["series"] == sum(len(s) for s in parse(text).values())


def test_the_country_is_merged_unless_asked_for(cli, history):
    merged = edgectl_families(cli("analytics", "export").stdout)
    by_country = edgectl_families(cli("analytics", "export", "--by-country").stdout)
    fra = dict(node="fra-1", region="eu", source="rum")
    assert merged["edgectl_latency_samples"][labels(**fra)] == 800
    assert {k: v for k, v in by_country["edgectl_latency_samples"].items() if ("node", "fra-1") in k} == {
        labels(**fra, country="DE"): 400, labels(**fra, country="FR"): 400}
    de = history["latency"]["fra-1"]["DE"]
    got = by_country["edgectl_latency_seconds"][labels(**fra, country="DE", quantile="0.95")]
    assert abs(got - exact(de, 0.95) / 1000) / (exact(de, 0.95) / 1000) <= 0.006
    # a provider's p95 for one country cannot be merged into another's: only with the country
    assert by_country["edgectl_provider_latency_seconds"][
        labels(provider="cloudflare", country="DE", source="pull", stat="p95")] == pytest.approx(0.099)


def test_the_textfile_is_replaced_whole_from_beside_it(cli, history, tmp_path, monkeypatch):
    out = tmp_path / "textfile"
    out.mkdir()
    (out / "edgectl.prom").write_text("# an earlier export\n")
    renames = []
    real_rename = os.rename

    def watching(src, dst):
        # at the moment of the rename: the old file is still whole, the new one complete beside it
        before = Path(dst).read_text() if Path(dst).exists() else None
        renames.append((Path(src), Path(dst), before, Path(src).read_text()))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", watching)
    assert cli("analytics", "export", "--textfile", str(out / "edge-estate.prom")).exit_code == 0
    [(src, dst, before, after)] = renames
    assert dst == out / "edge-estate.prom" and src.parent == out and not src.name.endswith(".prom")
    assert before is None  # a new name
    assert after.endswith("\n") and "edgectl_export_window_seconds" in after
    assert sorted(p.name for p in out.iterdir()) == ["edge-estate.prom", "edgectl.prom"]
    assert (out / "edge-estate.prom").read_text() == after

    renames.clear()
    assert cli("analytics", "export", "--textfile", str(out)).exit_code == 0
    [(src, dst, before, after)] = renames
    assert dst == out / "edgectl.prom" and before == "# an earlier export\n" and src.parent == out
    assert sorted(p.name for p in out.iterdir()) == ["edge-estate.prom", "edgectl.prom"]


def test_node_exporter_serves_the_textfile(cli, history, tmp_path):
    out = tmp_path / "textfile"
    out.mkdir()
    assert cli("analytics", "export", "--textfile", str(out)).exit_code == 0
    written = parse((out / "edgectl.prom").read_text())
    with node_exporter(out, tmp_path / "node-exporter") as url:
        scraped = parse(httpx.get(f"{url}/metrics", timeout=5).text)
    assert scraped["node_textfile_scrape_error"][()] == 0
    assert {name for name in scraped if name.startswith("node_") and "textfile" not in name
            and not name.startswith(("node_scrape_", "node_exporter_"))} == set()  # the other collectors are off
    assert {n: s for n, s in scraped.items() if n.startswith("edgectl_")} == written
    check_against_history(written, history)


def test_pushgateway_holds_the_push_and_a_second_push_replaces_it(cli, history, tmp_path):
    with pushgateway(tmp_path / "pushgateway") as url:
        run = cli("analytics", "export", "--pushgateway", url, "--instance", "edge-box", "-o", "json")
        assert run.exit_code == 0, run.stderr
        assert run.json()["pushgateway"] == url and run.json()["instance"] == "edge-box"
        pushed = edgectl_families(httpx.get(f"{url}/metrics", timeout=5).text)
        group = (("instance", "edge-box"), ("job", "edgectl"))
        for samples in pushed.values():
            assert all(set(group) <= set(key) for key in samples)
        check_against_history({n: {tuple(sorted(set(k) - set(group))): v for k, v in s.items()}
                               for n, s in pushed.items()}, history)

        assert cli("nodes", "remove", "edge-new").exit_code == 0
        assert cli("analytics", "export", "--pushgateway", url, "--instance", "edge-box").exit_code == 0
        again = edgectl_families(httpx.get(f"{url}/metrics", timeout=5).text)
        assert not [k for k in again["edgectl_node_status"] if ("node", "edge-new") in k]
        assert len(again["edgectl_node_status"]) == len(pushed["edgectl_node_status"]) - 5


def test_pushgateway_behind_basic_auth_takes_the_password_from_the_environment(cli, history, tmp_path, monkeypatch):
    monkeypatch.setenv("PUSH_PASSWORD", PUSH_PASSWORD)
    with pushgateway(tmp_path / "pushgateway", basic_auth=True) as url:
        bare = cli("analytics", "export", "--pushgateway", url)
        assert bare.exit_code == 1 and bare.stdout == ""
        assert bare.stderr.splitlines()[0] == f"error: the Pushgateway at {url} refused the push: HTTP 401: Unauthorized"
        with_auth = url.replace("http://", f"http://{PUSH_USER}:env:PUSH_PASSWORD@")
        run = cli("analytics", "export", "--pushgateway", with_auth, "--instance", "edge-box", "--debug", "-o", "json")
        assert run.exit_code == 0, run.stderr
        assert run.json()["pushgateway"] == url
        assert PUSH_PASSWORD not in run.stdout + run.stderr
        pushed = httpx.get(f"{url}/metrics", auth=(PUSH_USER, PUSH_PASSWORD), timeout=5).text
        assert 'edgectl_node_up{instance="edge-box",job="edgectl",node="edge-up"} 1' in pushed

        # the whole URL from the environment, credentials and all
        monkeypatch.setenv("PUSHGATEWAY_URL", url.replace("http://", f"http://{PUSH_USER}:{PUSH_PASSWORD}@"))
        run = cli("analytics", "export", "--pushgateway", "env:PUSHGATEWAY_URL", "--instance", "other", "-o", "json")
        assert run.exit_code == 0, run.stderr
        assert PUSH_PASSWORD not in run.stdout + run.stderr and run.json()["pushgateway"] == url


def test_an_unreachable_pushgateway_is_one_line_and_exit_1(cli, history):
    port = closed_port()
    run = cli("analytics", "export", "--pushgateway", f"127.0.0.1:{port}", "--timeout", "2s")
    assert run.exit_code == 1 and run.stdout == ""
    lines = run.stderr.splitlines()
    assert lines[0] == f"error: cannot reach the Pushgateway at http://127.0.0.1:{port}: Connection refused"
    assert len(lines) == 2 and lines[1].startswith("hint: ")


@pytest.mark.parametrize("args, message", [
    (["--textfile", "{tmp}/missing"], "--textfile {tmp}/missing: no such directory"),
    (["--textfile", "{tmp}/plain"], "--textfile {tmp}/plain: not a directory"),
    (["--textfile", "{tmp}/plain.txt"], "--textfile {tmp}/plain.txt: the file name must end in .prom "
                                        "(node_exporter's textfile collector reads only *.prom)"),
    (["--textfile", "{tmp}/x.txt"], "--textfile {tmp}/x.txt: the file name must end in .prom "
                                    "(node_exporter's textfile collector reads only *.prom)"),
    (["--format", "csv", "--metric", "nope"], "--metric 'nope': no such metric in the catalogue or the history"),
    (["--format", "jsonl", "--metric", "latency", "--metric", "latancy"],
     "--metric 'latancy': no such metric in the catalogue or the history"),
    (["--textfile", "{tmp}/missing/edgectl.prom"], "--textfile {tmp}/missing/edgectl.prom: no such directory"),
    (["--pushgateway", "ftp://127.0.0.1:9091"], "--pushgateway: an http:// or https:// URL with a host"),
    (["--pushgateway", "http://127.0.0.1:99999"], "--pushgateway: not a URL with a valid host and port"),
    (["--pushgateway", "http://127.0.0.1:9091/?x=1"], "--pushgateway: the URL may not have a query or a fragment"),
    (["--pushgateway", "env:NO_SUCH_PUSHGATEWAY"], "--pushgateway: environment variable NO_SUCH_PUSHGATEWAY is not set"),
    (["--pushgateway", "http://ops:env:NO_SUCH_PASSWORD@127.0.0.1:9091"],
     "--pushgateway password: environment variable NO_SUCH_PASSWORD is not set"),
    (["--pushgateway", "127.0.0.1:9091", "--timeout", "0s"], "--timeout must be more than zero"),
    (["--instance", "edge-box"], "--instance goes with --pushgateway"),
    (["--format", "xml"], "--format 'xml': one of prometheus, csv, jsonl"),
    (["--format", "csv", "--textfile", "{tmp}"], "--textfile goes with --format prometheus"),
    (["--step", "1h"], "--step goes with --format csv or jsonl"),
    (["--format", "jsonl", "--step", "90s"], "--step 90s: a whole number of minutes"),
    (["--format", "csv", "--out", "{tmp}"], "--out {tmp}: is a directory"),
    (["--since", "0s"], "--since must be more than zero"),
])
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, args, message):
    (tmp_path / "plain.txt").write_text("not a directory")
    (tmp_path / "plain").write_text("not a directory")
    run = cli("analytics", "export", *[a.format(tmp=tmp_path) for a in args])
    assert run.exit_code == 2 and run.stdout == ""
    assert run.stderr.splitlines()[0] == f"error: {message.format(tmp=tmp_path)}"


def test_an_unknown_metric_names_the_known_ones_and_a_known_one_without_samples_is_empty(cli, history, tmp_path):
    from edgectl.analytics.metrics import CATALOGUE

    path = tmp_path / "own.jsonl"
    path.write_text(json.dumps({"time": time.time() - 60, "metric": "queue.depth", "value": 3, "unit": "count",
                                "node": "edge-up"}) + "\n")
    assert cli("analytics", "ingest", str(path), "--format", "jsonl").exit_code == 0
    run = cli("analytics", "export", "--format", "csv", "--metric", "nope")
    assert run.exit_code == 2 and run.stdout == ""
    hint = run.stderr.splitlines()[1]
    assert hint.startswith("hint: metrics: ")
    named = hint.removeprefix("hint: metrics: ").split(", ")
    assert set(CATALOGUE) <= set(named) and "queue.depth" in named  # the catalogue's and the history's own
    own = cli("analytics", "export", "--format", "jsonl", "--metric", "queue.depth")
    assert own.exit_code == 0 and [json.loads(line)["value"] for line in own.stdout.splitlines()] == [3.0]
    quiet = cli("analytics", "export", "--format", "csv", "--metric", "purge.items")  # catalogued, no samples
    assert quiet.exit_code == 0 and quiet.stdout.splitlines() == [
        "time,metric,value,unit,node,country,region,provider,labels,kind"]


def test_an_unwritable_textfile_directory_is_exit_2(cli, tmp_path):
    if os.geteuid() == 0:
        # root writes through any mode bits; sysfs refuses to create files even for root
        folder = Path("/sys/kernel")
        assert folder.is_dir()
    else:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
    run = cli("analytics", "export", "--textfile", str(folder))
    assert run.exit_code == 2 and run.stdout == ""
    assert run.stderr.splitlines()[0].startswith(f"error: cannot write {folder / 'edgectl.prom'}: ")
    assert not [p for p in folder.iterdir() if p.name.startswith("edgectl.prom")]


def ours(rows: list[dict]) -> list[dict]:
    """The rows of `history`'s samples (the nodes' own probes may write into the history too)."""
    return [r for r in rows if r["labels"].get("source") in ("rum", "agent", "pull")]


def test_csv_of_raw_samples_loads_into_another_state_as_it_was(cli, history, tmp_path, monkeypatch, state_path):
    out = tmp_path / "samples.csv"
    run = cli("analytics", "export", "--format", "csv", "--out", str(out), "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert out.read_text().splitlines()[0] == "time,metric,value,unit,node,country,region,provider,labels,kind"
    with open(out, newline="") as handle:
        rows = [{**r, "labels": json.loads(r["labels"] or "{}")} for r in csv.DictReader(handle)]
    assert run.json()["rows"] == len(rows) and len(ours(rows)) == 1200 + 4 * 30 + 3
    assert sorted(r["value"] for r in ours(rows) if r["kind"] == "gauge") == ["120.0", "150.0", "99.0"]
    before = cli("analytics", "latency", "--by", "node", "--since", "1h", "-o", "json").json()

    monkeypatch.setenv("EDGECTL_STATE", str(tmp_path / "copy.db"))
    loaded = cli("analytics", "ingest", str(out), "-o", "json")
    assert loaded.exit_code == 0, loaded.stderr
    assert loaded.json()["samples"] == len(rows) and loaded.json()["bad"] == 0
    after = cli("analytics", "latency", "--by", "node", "--since", "1h", "-o", "json").json()
    assert after == before and {"fra-1", "iad-1"} <= {r["node"] for r in after}
    series = "SELECT metric, unit, node, provider, country, region, labels, kind FROM metric_series ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"
    with sqlite3.connect(state_path) as first, sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute(series).fetchall() == first.execute(series).fetchall()


def test_jsonl_to_stdout_and_rollups_per_step(cli, history):
    run = cli("analytics", "export", "--format", "jsonl", "--metric", "latency", "--since", "10m")
    assert run.exit_code == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(ours(rows)) == 1200 + 3 and {r["metric"] for r in rows} == {"latency"}
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    fra_de = sorted(r["value"] for r in rows if r["node"] == "fra-1" and r["country"] == "DE")
    assert fra_de == sorted(history["latency"]["fra-1"]["DE"])
    assert rows[0].keys() == {"time", "metric", "value", "unit", "node", "country", "region", "provider", "labels", "kind"}

    run = cli("analytics", "export", "--format", "jsonl", "--metric", "latency", "--step", "1h",
              "--percentiles", "50,99", "--since", "10m")
    assert run.exit_code == 0, run.stderr
    rollups = [json.loads(line) for line in run.stdout.splitlines()]
    histograms = [r for r in ours(rollups) if r["kind"] == "histogram"]
    assert sum(r["count"] for r in histograms) == 1200
    # the window may cross an hour: a series' rows then add up over both
    fra_us = [r for r in histograms if r["node"] == "iad-1"]
    assert sum(r["count"] for r in fra_us) == 400
    if len(fra_us) == 1:
        values = history["latency"]["iad-1"]["US"]
        assert fra_us[0]["max"] == max(values) and fra_us[0]["min"] == min(values)
        assert abs(fra_us[0]["p99"] - exact(values, 0.99)) / exact(values, 0.99) <= 0.006
    gauges = [r for r in ours(rollups) if r["kind"] == "gauge"]
    assert gauges and all(r["p50"] is None and r["p99"] is None for r in gauges)


def test_real_runs_keep_stdout_for_the_exposition_and_a_cron_run_quiet(history, tmp_path, state_path):
    env = {**os.environ, "EDGECTL_STATE": str(state_path)}
    run = subprocess.run([sys.executable, "-m", "edgectl", "analytics", "export", "--since", "10m"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0 and run.stderr == ""
    families = edgectl_families(run.stdout)
    assert families["edgectl_latency_samples"][labels(node="iad-1", region="us", source="rum")] == 400

    out = tmp_path / "textfile"
    out.mkdir()
    cron = subprocess.run([sys.executable, "-m", "edgectl", "analytics", "export", "--textfile", str(out), "-q"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert cron.returncode == 0 and cron.stdout == "" and cron.stderr == ""  # cron mails any output
    assert edgectl_families((out / "edgectl.prom").read_text())["edgectl_node_up"]


def test_ingest_reads_the_kind_an_export_writes_and_names_a_bad_one(cli, tmp_path):
    path = tmp_path / "kinds.jsonl"
    now = int(time.time()) - 60  # raw samples older than analytics.retention.raw go after the ingest
    path.write_text(f'{{"time": {now}, "metric": "latency", "value": 80, "unit": "ms", "provider": "cloudflare",'
                    ' "labels": {"stat": "p95"}, "kind": "gauge"}\n'
                    f'{{"time": {now}, "metric": "latency", "value": 80, "unit": "ms", "kind": "counter"}}\n')
    run = cli("analytics", "ingest", str(path), "--format", "jsonl", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["samples"] == 1 and run.json()["problems"][0].startswith("line 2: kind 'counter'")
    rows = [json.loads(line) for line in cli("analytics", "export", "-f", "jsonl", "--since", "3650d").stdout.splitlines()]
    assert [(r["kind"], r["labels"]) for r in rows] == [("gauge", {"stat": "p95"})]
