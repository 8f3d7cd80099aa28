"""Many edgectl processes on one state file at once: every writer waits its turn, none is refused.

Cron jobs, node agents' heartbeats, a warm's writer and a pipeline's purge overlap on the same
file. Each round starts 20 real processes together and checks that every one exits 0 and that
every write it made is in the state afterwards.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from edgectl.state import open_state
from tests.fakes.sandbox_fleet import register, running_fleet
from tests.history import history

SANDBOX_HOST = "www.sandbox.test"
ROUNDS = 3


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    with running_fleet(tmp_path_factory.mktemp("concurrency-sandbox"), pages=20) as sandbox:
        yield sandbox


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgectl", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def _finish(processes: list[tuple[list[str], subprocess.Popen]]) -> list[str]:
    """Wait for every process (bounded); the commands that did not exit 0, with what they said."""
    failures = []
    deadline = time.monotonic() + 120
    for args, process in processes:
        try:
            _, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        if process.returncode != 0:
            failures.append(f"{' '.join(args)} -> exit {process.returncode}: {err.strip()[-300:]}")
    return failures


def _count(state_path, sql: str, *params) -> int:
    conn = sqlite3.connect(state_path)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


def _samples(state_path, **where: str) -> int:
    state = open_state(state_path)
    try:
        return len(history(state, **where))
    finally:
        state.close()


def test_twenty_writers_at_once_all_succeed_and_every_write_is_kept(box, isolated, state_path):
    register(box, state_path)
    config = isolated / "edgectl.toml"
    config.write_text(
        "[providers.edge]\n"
        'kind = "http"\n'
        'nodes = "label:sandbox=true"\n'
        f'hosts = ["{SANDBOX_HOST}"]\n'
        f'token = "file:{box.token_file}"\n',
        encoding="utf-8")
    names = [node.name for node in box.nodes]
    common = ["--config", str(config), "--quiet"]
    for round_ in range(ROUNDS):
        commands = []
        commands += [["nodes", "add", f"r{round_}-n{i}", "--endpoint", f"http://127.0.0.1:9/{i}"] for i in range(8)]
        commands += [["nodes", "heartbeat", names[i % len(names)], "--cpu", str(10 + i)] for i in range(6)]
        commands += [["nodes", "check", *names]] * 2
        commands += [["cdn", "purge", "--url", f"http://{SANDBOX_HOST}/docs/page-{round_:04d}.html",
                      "--reason", f"round {round_}"]] * 2
        commands += [["cache", "warm", "--no-lock", "--nodes", ",".join(names), "--url", f"http://{SANDBOX_HOST}{path}"]
                     for path in ("/", "/static/css/site-0000.css")]
        assert len(commands) == 20
        processes = [(args, _start(common + args)) for args in commands]
        assert _finish(processes) == [], f"round {round_}"

    assert _count(state_path, "SELECT count(*) FROM nodes WHERE name LIKE 'r%-n%' AND removed_at IS NULL") == 8 * ROUNDS
    assert _samples(state_path, source="heartbeat", metric="cpu") == 6 * ROUNDS
    assert _samples(state_path, source="probe") >= 2 * ROUNDS * len(names)
    assert _count(state_path, "SELECT count(*) FROM purges WHERE status = 'completed'") == 2 * ROUNDS
    assert _count(state_path, "SELECT count(*) FROM warm_runs WHERE status = 'completed'") == 2 * ROUNDS
    assert _count(state_path, "SELECT count(*) FROM warm_results") == 2 * ROUNDS * len(names)


def test_processes_opening_a_new_file_together_migrate_it_once(isolated, tmp_path):
    """The first open of a new state file migrates it; many at once queue on the write lock."""
    for round_ in range(ROUNDS):
        path = tmp_path / f"fresh-{round_}.db"
        env = {**os.environ, "EDGECTL_STATE": str(path)}
        processes = [(["nodes", "add", f"n{i}"], subprocess.Popen(
            [sys.executable, "-m", "edgectl", "--quiet", "nodes", "add", f"n{i}", "--endpoint", "http://127.0.0.1:9"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)) for i in range(16)]
        assert _finish(processes) == [], f"round {round_}"
        from edgectl.state import migrations

        assert _count(path, "SELECT count(*) FROM nodes") == 16
        assert _count(path, "SELECT count(*) FROM _sqlite_migrations") == len(migrations.migration_names())
        assert _count(path, "SELECT count(DISTINCT name) FROM _sqlite_migrations") == len(migrations.migration_names())


def test_a_write_waits_for_a_transaction_shorter_than_the_busy_timeout(cli, isolated, state_path):
    """A writer that holds the lock for a second delays the next, which then succeeds."""
    import threading

    cli("nodes", "add", "n1", "-e", "http://127.0.0.1:9")
    (isolated / "work" / "edgectl.toml").write_text('[state]\nbusy_timeout = "10s"\n')
    holder = sqlite3.connect(state_path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE nodes SET city = 'held' WHERE name = 'n1'")
    release = threading.Timer(1.0, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        started = time.monotonic()
        run = cli("nodes", "drain", "n1")
        waited = time.monotonic() - started
    finally:
        release.join()
        holder.close()
    assert run.exit_code == 0, run.stderr
    assert waited >= 0.9  # it waited for the holder, rather than failing or overtaking it
    assert cli("nodes", "show", "n1", "-o", "json").json()["status"] == "draining"


def test_a_lock_held_past_the_busy_timeout_is_exit_4_with_its_hint(isolated, state_path, cli):
    cli("nodes", "add", "n1", "-e", "http://127.0.0.1:9")
    config = isolated / "work" / "edgectl.toml"
    config.write_text('[state]\nbusy_timeout = "300ms"\n')
    holder = sqlite3.connect(state_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE nodes SET city = 'held' WHERE name = 'n1'")
    try:
        started = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "edgectl", "nodes", "heartbeat", "n1", "--cpu", "5"],
                             capture_output=True, text=True, timeout=60)
        waited = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert run.returncode == 4, run.stderr
    assert run.stderr.splitlines()[0] == "error: the state file is locked by another edgectl run"
    assert "state.busy_timeout" in run.stderr and "Traceback" not in run.stderr
    assert waited >= 0.3  # refused only once the timeout had passed
    assert _samples(state_path, source="heartbeat") == 0


def test_changes_to_one_record_at_once_all_land(cli, isolated, state_path):
    """Writers that read a record and change part of it: each reads under the write lock, so none undoes another."""
    assert cli("nodes", "add", "n1", "-e", "http://127.0.0.1:9").exit_code == 0
    rule = cli("routing", "rules", "add", "--country", "DE", "--target", "n1", "-o", "json").json()
    commands = [["nodes", "update", "n1", "--capability", c] for c in ("a", "b", "c", "d", "e", "f")]
    commands += [["nodes", "heartbeat", "n1", option, value] for option, value in
                 (("--cpu", "11"), ("--memory", "22"), ("--disk", "33"), ("--network", "44"))]
    commands += [["routing", "rules", "update", str(rule["id"]), *change] for change in
                 (["--weight", "77"], ["--latency-threshold", "777ms"], ["--capability", "zz"])]
    for _ in range(2):
        processes = [(args, _start(["--quiet", *args])) for args in commands]
        assert _finish(processes) == []
    node = cli("nodes", "show", "n1", "-o", "json").json()
    assert node["capabilities"] == ["a", "b", "c", "d", "e", "f"]
    assert {k: node["health_metrics"].get(k) for k in ("cpu_percent", "memory_percent", "disk_percent",
                                                        "network_mbps")} == {
        "cpu_percent": 11, "memory_percent": 22, "disk_percent": 33, "network_mbps": 44}
    shown = cli("routing", "rules", "show", str(rule["id"]), "-o", "json").json()
    assert (shown["weight"], shown["latency_threshold_ms"], shown["capabilities"]) == (77, 777, ["zz"])
