"""The state file: created private, migrated on open, refused when foreign or too new, backed up live."""

import os
import sqlite3
import stat
import subprocess
import sys
import threading

import pytest

from edgectl.analytics.metrics import key
from edgectl.analytics.samples import Sample
from edgectl.analytics.store import ingest
from edgectl.errors import StateError
from edgectl.state import open_state
from edgectl.state.migrations import migration_names, migrations


def test_created_private_with_wal_and_foreign_keys(state_path):
    state = open_state(state_path)
    assert stat.S_IMODE(os.stat(state_path).st_mode) == 0o600
    assert state.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert state.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert state.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert [m.name for m in state.migration_status() if m.applied] == migration_names()
    assert {"nodes", "node_events", "metric_series", "metric_blocks", "metric_rollups"} <= set(state.db.table_names())
    state.close()


def test_upgrade_from_the_first_migration_keeps_data(state_path):
    from sqlite_utils import Database

    db = Database(str(state_path))
    migrations.apply(db, stop_before=migration_names()[1])
    db.execute(
        "INSERT INTO nodes (name, endpoint, status, created_at, updated_at) VALUES "
        "('old-1', 'http://127.0.0.1:1', 'active', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')"
    )
    db.close()
    state = open_state(state_path)
    assert all(m.applied for m in state.migration_status())
    row = next(state.db.query("SELECT name, fail_streak, ok_streak FROM nodes"))
    assert row == {"name": "old-1", "fail_streak": 0, "ok_streak": 0}
    state.close()


def test_a_migrated_state_opens_without_sqlite_utils(state_path):
    open_state(state_path).close()
    code = ("import sys; from edgectl.state import open_state; s = open_state(sys.argv[1]);"
            " s.db.execute('SELECT count(*) FROM nodes'); print('sqlite_utils' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(state_path)], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_statements_commit_and_nested_blocks_roll_back_alone(state_path):
    state = open_state(state_path)
    add = "INSERT INTO nodes (name, endpoint, created_at, updated_at) VALUES (?, 'http://h', 't', 't')"
    state.db.execute(add, ["outside"])  # no transaction: committed at once
    with state.db.atomic():
        state.db.execute(add, ["kept"])
        with pytest.raises(sqlite3.IntegrityError):
            with state.db.atomic():
                state.db.execute(add, ["undone"])
                state.db.execute(add, ["kept"])  # a live name twice: this block alone is undone
    with pytest.raises(RuntimeError):
        with state.db.atomic():
            state.db.execute(add, ["rolled-back"])
            raise RuntimeError("stop")
    other = sqlite3.connect(state_path)  # what another process sees
    assert [r[0] for r in other.execute("SELECT name FROM nodes ORDER BY id")] == ["outside", "kept"]
    assert not state.db.conn.in_transaction
    other.close()
    state.close()


def test_not_a_database_is_a_clear_error(state_path, cli):
    state_path.write_text("hello, this is not sqlite\n" * 10)
    with pytest.raises(StateError, match="not a SQLite database"):
        open_state(state_path)
    run = cli("nodes", "list")
    assert run.exit_code == 2
    assert run.stderr.startswith("error: ") and "not a SQLite database" in run.stderr
    assert "Traceback" not in run.stderr


def test_newer_edgectl_is_refused(state_path, cli):
    open_state(state_path).close()
    conn = sqlite3.connect(state_path)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('edgectl', 'm999_from_the_future', 'x')")
    conn.commit()
    conn.close()
    run = cli("nodes", "list", "-o", "json")
    assert run.exit_code == 1
    assert "newer edgectl" in run.error["message"]


def test_status_shows_pending_without_applying(state_path, cli):
    from sqlite_utils import Database

    db = Database(str(state_path))
    migrations.apply(db, stop_before=migration_names()[1])
    db.close()
    run = cli("state", "status", "-o", "json")
    assert run.exit_code == 0
    assert run.json()["pending"] == migration_names()[1:]
    assert cli("state", "status", "-o", "json").json()["pending"] == migration_names()[1:]


def test_backup_is_consistent_while_another_writer_runs(state_path, isolated, cli):
    state = open_state(state_path)
    stop = threading.Event()
    written = []

    def writer():
        other = open_state(state_path)
        i = 0
        while not stop.is_set() and i < 5000:
            with other.db.atomic():
                other.db.execute(
                    "INSERT INTO nodes (name, endpoint, created_at, updated_at) VALUES (?, 'http://h', 't', 't')",
                    [f"n{i}"],
                )
                other.db.execute("INSERT INTO node_events (node_id, at, kind) VALUES (last_insert_rowid(), 't', 'added')")
            written.append(i)
            i += 1
        other.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 50:
            pass
        target = isolated / "backup.db"
        run = cli("state", "backup", str(target), "-o", "json")
        assert run.exit_code == 0, run.stderr
    finally:
        stop.set()
        thread.join()
    state.close()
    copy = sqlite3.connect(target)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    nodes, events = copy.execute("SELECT (SELECT count(*) FROM nodes), (SELECT count(*) FROM node_events)").fetchone()
    assert nodes == events and nodes >= 50  # every transaction whole or absent
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert cli("state", "backup", str(target)).exit_code == 2  # no silent overwrite


def test_check_reports_corruption(state_path, cli):
    state = open_state(state_path)
    ingest(state, [Sample(key("latency", node=f"n{i % 7}"), 1767225600000 + i * 1000, i + 1.0) for i in range(300)])
    state.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    state.close()
    assert cli("state", "check").exit_code == 0
    # damage the pages of the metrics history, past the schema page
    data = bytearray(state_path.read_bytes())
    page = 4096
    for offset in range(page * 3, len(data) - page, page):
        data[offset + 100: offset + 400] = b"\xff" * 300
    state_path.write_bytes(bytes(data))
    run = cli("state", "check", "-o", "json")
    assert run.exit_code == 1
    assert "error" in run.stderr


def test_state_path_follows_option_env_and_config(cli, isolated, monkeypatch):
    assert cli("state", "path").stdout.strip() == str(isolated / "state.db")
    assert cli("--state", str(isolated / "x.db"), "state", "path").stdout.strip() == str(isolated / "x.db")
    monkeypatch.delenv("EDGECTL_STATE")
    (isolated / "work" / "edgectl.toml").write_text(f'[state]\npath = "{isolated / "from-config.db"}"\n')
    assert cli("state", "path").stdout.strip() == str(isolated / "from-config.db")


def test_backup_never_touches_the_live_file(state_path, cli, isolated):
    cli("nodes", "add", "n1", "--endpoint", "http://127.0.0.1:9")
    for target in (state_path, isolated):
        run = cli("state", "backup", str(target), "--force")
        assert run.exit_code == 2 and "cannot back up onto" in run.stderr
    assert [n["name"] for n in cli("nodes", "list", "-o", "json").json()] == ["n1"]
    assert cli("state", "backup", "/proc/edgectl-backup.db").exit_code == 2


def test_a_named_state_path_in_a_missing_directory_is_an_error(cli, isolated):
    run = cli("--state", str(isolated / "typo" / "x.db"), "nodes", "list")
    assert run.exit_code == 2 and "does not exist" in run.stderr
    assert not (isolated / "typo").exists()
