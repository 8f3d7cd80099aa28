"""Nodes, rules, metrics and config for the routing resolve and simulate tests, put in state through edgectl."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import timedelta

from edgectl.timeutil import to_iso, utcnow

# Real places, so that distances and the nearest node are what a map says. The endpoints are
# never probed unless a test gives a node a HealthFleet port; port 9 (discard) stands in.
PLACES = {
    "fra-1": ("DE", 50.11, 8.68),
    "ams-1": ("NL", 52.37, 4.90),
    "par-1": ("FR", 48.86, 2.35),
    "osl-1": ("NO", 59.91, 10.75),
    "zrh-1": ("CH", 47.37, 8.54),
    "iad-1": ("US", 38.95, -77.45),
    "sfo-1": ("US", 37.62, -122.38),
    "nrt-1": ("JP", 35.77, 140.39),
}


def add_node(cli, name: str, *extra: str, port: int | None = None, capabilities: tuple[str, ...] = ()) -> None:
    country, lat, lon = PLACES[name]
    endpoint = f"http://127.0.0.1:{port or 9}"
    caps = [arg for cap in capabilities for arg in ("--capability", cap)]
    run = cli("nodes", "add", name, "-e", endpoint, "--country", country, "--lat", lat, "--lon", lon, *caps, *extra)
    assert run.exit_code == 0, run.stderr


def add_nodes(cli, *names: str) -> None:
    for name in names:
        add_node(cli, name)


def add_rule(cli, *args: str) -> dict:
    run = cli("routing", "rules", "add", *args, "-o", "json")
    assert run.exit_code == 0, run.stderr
    return run.json()


def resolve(cli, *args: str) -> tuple[int, dict]:
    """`routing resolve ... --explain -o json`: the exit code and the answer with its steps."""
    run = cli("routing", "resolve", *args, "--explain", "-o", "json")
    assert run.exit_code in (0, 1), run.stderr
    return run.exit_code, run.json()


def node_for(cli, *args: str) -> str | None:
    return resolve(cli, *args)[1]["node"]


def steps(answer: dict, kind: str) -> list[dict]:
    return [s for s in answer["steps"] if s["step"] == kind]


def candidates(answer: dict) -> dict[str, str | None]:
    """Every candidate of every level tried: node -> why it was dropped (None: kept)."""
    return {c["node"]: c.get("reason") for s in steps(answer, "candidates") for c in s["candidates"]}


def write_config(isolated, text: str) -> None:
    # an edgectl.toml in the working directory is found from there, as a repo's CI finds its own
    (isolated / "work" / "edgectl.toml").write_text(text)


def heartbeat(cli, name: str, *args: str, report: dict | None = None) -> None:
    extra = ("--json-file", "-") if report is not None else ()
    run = cli("nodes", "heartbeat", name, *args, *extra, input=json.dumps(report) if report is not None else None)
    assert run.exit_code == 0, run.stderr


def _connect() -> sqlite3.Connection:
    return sqlite3.connect(os.environ["EDGECTL_STATE"])


def record_latency(name: str, *values_ms: float, age: timedelta = timedelta(minutes=1)) -> None:
    """Latency samples as `nodes check` records them, with exact values and an age.

    A probe against a real server measures whatever the machine makes of it; a test that needs
    p95 to be some value, or samples older than the window, puts them in the history itself.
    """
    from edgectl.analytics.record import node_samples, record
    from edgectl.nodes.inventory import get_node
    from edgectl.state import open_state

    state = open_state(os.environ["EDGECTL_STATE"])
    try:
        node = get_node(state, name)
        with state.db.atomic():
            record(state, [sample for value in values_ms
                           for sample in node_samples(node, {"latency": value}, source="probe", when=utcnow() - age)])
    finally:
        state.close()


def age_heartbeat(name: str, age: timedelta) -> None:
    """Move a node's last heartbeat into the past: a test cannot wait three intervals for it to age."""
    with _connect() as db:
        db.execute("UPDATE nodes SET last_heartbeat = ? WHERE name = ?", [to_iso(utcnow() - age), name])


def state_dump() -> list[str]:
    """Every row of every table, as SQL: two dumps are equal only if nothing in state changed."""
    with _connect() as db:
        return list(db.iterdump())


def counters() -> dict[str, int]:
    with _connect() as db:
        return dict(db.execute("SELECT key, value FROM routing_counters").fetchall())


def assert_usage_error(run, says: str) -> None:
    """Bad input: exit 2, one `error:` line (and perhaps a hint), no traceback; `says` in either."""
    assert run.exit_code == 2, (run.exit_code, run.stdout[-500:], run.stderr)
    lines = run.stderr.splitlines()
    assert lines and lines[0].startswith("error: ") and says in run.stderr, run.stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), run.stderr
    assert "Traceback" not in run.stderr + run.stdout
