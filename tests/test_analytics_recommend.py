"""`analytics recommend`: each suggestion from the history, with its evidence in numbers, and none without enough of it."""

from __future__ import annotations

import time

import pytest

from edgectl.analytics.metrics import key
from edgectl.analytics.samples import Sample
from edgectl.analytics.store import ingest
from edgectl.state import open_state

MINUTE = 60_000


@pytest.fixture
def now_ms() -> int:
    now = int(time.time() * 1000)
    return now - now % MINUTE - 10 * MINUTE


def put(state_path, samples) -> None:
    state = open_state(state_path)
    ingest(state, samples)
    state.close()


def add_node(cli, name, country, lat, lon) -> None:
    assert cli("nodes", "add", name, "-e", "http://127.0.0.1:9", "--country", country,
               "--lat", str(lat), "--lon", str(lon)).exit_code == 0


def recommend(cli, *args) -> dict[tuple[str, str], dict]:
    run = cli("analytics", "recommend", "--since", "1d", *args, "-o", "json")
    assert run.exit_code == 0, run.stderr
    return {(r["kind"], r["subject"]): r for r in run.json()}


def test_a_far_country_with_slow_clients_gets_a_node_and_a_near_one_does_not(cli, isolated, state_path, now_ms):
    add_node(cli, "fra-1", "DE", 50.11, 8.68)
    slow = [Sample(key("latency", node="fra-1", country="AU"), now_ms - i * MINUTE, 240.0 + i) for i in range(40)]
    slow_near = [Sample(key("latency", node="fra-1", country="NL"), now_ms - i * MINUTE, 180.0) for i in range(40)]
    few = [Sample(key("latency", node="fra-1", country="BR"), now_ms, 400.0) for _ in range(5)]
    put(state_path, slow + slow_near + few)
    found = recommend(cli)
    assert set(found) == {("add_node", "AU")}
    evidence = found[("add_node", "AU")]["evidence"]
    exact = sorted(240.0 + i for i in range(40))[37]  # nearest rank: the 38th of 40
    assert evidence["p95_ms"] == pytest.approx(exact, rel=0.006)
    assert evidence["samples"] == 40 and evidence["nearest_node"] == "fra-1" and 13_000 < evidence["distance_km"] < 16_000  # Frankfurt to mid-Australia
    assert evidence["target_ms"] == 100.0
    (isolated / "work" / "edgectl.toml").write_text('[analytics]\nlatency_target = "300ms"\n')
    assert recommend(cli) == {}


def test_busy_nodes_missed_prefixes_idle_nodes_and_error_spikes(cli, state_path, now_ms):
    add_node(cli, "fra-1", "DE", 50.11, 8.68)
    add_node(cli, "ams-1", "NL", 52.37, 4.90)
    samples = [Sample(key("cpu", node="fra-1", labels={"source": "heartbeat"}), now_ms - i * MINUTE, 90.0 + i % 5)
               for i in range(10)]
    samples += [Sample(key("cpu", node="osl-1", labels={"source": "heartbeat"}), now_ms - i * MINUTE, 99.0)
                for i in range(5)]  # too few figures to judge osl-1 busy
    samples += [Sample(key("cpu", node="ams-1", labels={"source": "heartbeat"}), now_ms - i * MINUTE, 30.0)
                for i in range(10)]
    for prefix, requests, hits in (("/img/", 500, 200), ("/static/", 800, 790), ("/rare/", 40, 0)):
        labels = {"source": "pull", "prefix": prefix}
        samples += [Sample(key("requests", node="fra-1", labels=labels), now_ms, requests),
                    Sample(key("cache.hits", node="fra-1", labels=labels), now_ms, hits)]
    samples.append(Sample(key("requests", node="ams-1", labels={"source": "pull", "prefix": "/img/"}), now_ms, 5))
    # a warm's first pass over /shop/ misses everything: not traffic, so no cache policy for it
    warm = {"source": "warm", "prefix": "/shop/"}
    samples += [Sample(key("requests", node="ams-1", labels=warm), now_ms, 900),
                Sample(key("cache.hits", node="ams-1", labels=warm), now_ms, 0)]
    # a provider whose 5xx rate is 0.5% but for one hour at 20%
    for hour in range(6):
        at = now_ms - hour * 3_600_000
        samples.append(Sample(key("requests", provider="cf"), at, 1000))
        samples.append(Sample(key("errors.5xx", provider="cf"), at, 200 if hour == 2 else 5))
    put(state_path, samples)
    found = recommend(cli)
    assert set(found) == {("shift_weight", "fra-1"), ("cache_policy", "/img/"), ("decommission", "ams-1"),
                          ("provider_errors", "cf")}
    assert found[("shift_weight", "fra-1")]["evidence"]["cpu_max"] == 94.0
    assert found[("cache_policy", "/img/")]["evidence"] == {"hit_ratio": round(200 / 505, 4), "target": 0.9, "requests": 505,
                                                            "misses": 305}
    assert found[("decommission", "ams-1")]["evidence"]["requests"] == 5  # its warm requests are not traffic
    spike = found[("provider_errors", "cf")]["evidence"]
    assert spike["peak_rate"] == 0.2 and spike["requests"] == 6000
    table = cli("analytics", "recommend", "--since", "1d")
    assert table.exit_code == 0 and "shift weight away from fra-1" in table.stdout


def test_an_empty_history_recommends_nothing_and_a_bad_window_is_refused(cli):
    run = cli("analytics", "recommend")
    assert run.exit_code == 0 and "nothing to recommend" in run.stderr + run.stdout
    assert cli("analytics", "recommend", "-o", "json").json() == []
    bad = cli("analytics", "recommend", "--since", "soon")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ")
