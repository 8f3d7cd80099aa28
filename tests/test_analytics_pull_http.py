"""`analytics pull` of the `http` kind: the sandbox nodes' /.edge/stats running totals, turned into increases."""

from __future__ import annotations

import json

import pytest

from edgectl.sandbox import fleet
from edgectl.state import open_state
from tests.fakes.sandbox_fleet import register, running_fleet
from tests.history import raw_samples_table

PAGES = ("/", "/static/css/site-0000.css")


@pytest.fixture
def box(tmp_path):
    with running_fleet(tmp_path / "fleet", pages=20) as sandbox:
        yield sandbox


@pytest.fixture
def config(isolated, box, state_path) -> str:
    register(box, state_path)
    path = isolated / "edgectl.toml"
    path.write_text('[providers.edge]\nkind = "http"\nnodes = "label:sandbox=true"\n'
                    f'hosts = ["www.sandbox.test"]\ntoken = "file:{box.token_file}"\n')
    return str(path)


def pull(cli, config: str) -> dict:
    run = cli("--config", config, "analytics", "pull", "-p", "edge", "-o", "json")
    assert run.exit_code == 0, run.stderr
    [row] = json.loads(run.stdout)["providers"]
    return row


def traffic(box, node: str, paths) -> dict:
    """Visits through one node; what they were, as the visitor saw them."""
    seen = {"requests": 0, "cache.hits": 0, "bytes": 0, "errors.4xx": 0, "errors.5xx": 0}
    for path in paths:
        answer = fleet.fetch(box, node, path)
        seen["requests"] += 1
        seen["cache.hits"] += answer["x_cache"] == "HIT"
        seen["bytes"] += answer["bytes"]
        seen["errors.4xx"] += 400 <= answer["status"] < 500
        seen["errors.5xx"] += answer["status"] >= 500
    return seen


def pulled(state_path, metric: str) -> dict[str, float]:
    state = open_state(state_path)
    try:
        raw_samples_table(state)
        return dict(state.db.conn.execute(
            "SELECT s.node, sum(m.value) FROM metric_samples m JOIN metric_series s ON s.id = m.series_id"
            " WHERE s.metric = ? AND s.provider = 'edge' AND s.labels = '{\"source\":\"pull\"}' GROUP BY s.node",
            [metric]))
    finally:
        state.close()


def test_two_pulls_with_traffic_between_them_give_the_traffics_counts(cli, box, config, state_path):
    first = pull(cli, config)
    assert first["stored"] == 0 and first["requests"] == len(box.nodes)
    assert f"{5 * len(box.nodes)} running total(s) read for the first time" in first["notes"][0]

    a, b = (node.name for node in box.nodes)
    seen = traffic(box, a, [*PAGES, *PAGES, PAGES[0], "/no-such-page"])
    fleet.set_fault(box, a, {"error_rate": 1.0})
    failed = traffic(box, a, ["/", "/"])
    fleet.set_fault(box, a, {"error_rate": 0.0})
    seen_b = traffic(box, b, [PAGES[1]])

    second = pull(cli, config)
    assert second["status"] == "ok" and second["notes"] == []
    for metric in seen:
        want = {a: seen[metric] + failed[metric], b: seen_b[metric]}
        assert pulled(state_path, metric) == {node: float(n) for node, n in want.items() if n}, metric
    assert seen["cache.hits"] == 3 and failed["errors.5xx"] == 2 and seen["errors.4xx"] == 1

    # nothing happened since: a third pull changes nothing
    third = pull(cli, config)
    assert third["stored"] == 0
    assert pulled(state_path, "requests") == {a: 8.0, b: 1.0}


def test_a_node_that_restarted_counts_from_zero(cli, box, config, state_path, isolated):
    a = box.nodes[0].name
    pull(cli, config)
    before = traffic(box, a, [*PAGES, *PAGES, *PAGES])
    pull(cli, config)
    # the fleet restarts: its nodes come back on new ports with every total at zero
    fleet.stop(box)
    again = fleet.start(isolated / "fleet" / "box", state_path, nodes=2, regions=["us-east", "eu-west"], pages=20)
    try:
        register(again, state_path)
        after = traffic(again, a, [PAGES[0], PAGES[0]])
        row = pull(cli, config)
    finally:
        fleet.stop(again)
    assert "counters went down (restarted)" in " ".join(row["notes"])
    assert pulled(state_path, "requests")[a] == before["requests"] + after["requests"] == 8
    assert pulled(state_path, "cache.hits")[a] == before["cache.hits"] + after["cache.hits"] == 4 + 1


def test_a_node_that_cannot_be_read_is_noted_and_the_others_are_pulled(cli, box, config, state_path):
    added = cli("--config", config, "nodes", "add", "gone-1", "--endpoint", "http://127.0.0.1:9", "-l", "sandbox=true")
    assert added.exit_code == 0, added.stderr
    pull(cli, config)
    a = box.nodes[0].name
    traffic(box, a, [PAGES[0]])
    row = pull(cli, config)
    assert row["status"] == "ok" and pulled(state_path, "requests") == {a: 1.0}
    [note] = row["notes"]
    assert note.startswith("node gone-1: ") and note.endswith(": not read; its traffic counts from the next reading")

    fleet.stop(box)  # no node answers now: the provider failed
    run = cli("--config", config, "analytics", "pull", "-p", "edge", "-o", "json")
    assert run.exit_code == 1
    [row] = json.loads(run.stdout)["providers"]
    assert row["status"] == "failed" and row["error"].startswith("node ")
    assert len(row["notes"]) == len(box.nodes) + 1
