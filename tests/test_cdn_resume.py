"""A purge process killed half-way (SIGKILL, SIGTERM, SIGINT), then resumed: nothing lost, nothing accepted sent twice."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.cloudflare_api import DEFAULT_TOKEN, DEFAULT_ZONES, FakeCloudflare

URLS = [f"https://www.example.com/assets/{i:03d}.css" for i in range(300)]  # 10 batches of 30
SLOW = 0.3  # seconds the fake holds each of the first requests
SLOW_REQUESTS = 6
DONE = ("accepted", "completed")


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("CF_TOKEN", DEFAULT_TOKEN)
    server = FakeCloudflare().start()
    server.delay_next(SLOW, count=SLOW_REQUESTS)
    yield server
    server.stop()


@pytest.fixture
def setup(isolated, fake):
    """The config (one request at a time, so the purge goes batch by batch), the URL file, the env."""
    config = isolated / "c.toml"
    config.write_text(
        "[providers.cf]\n"
        'kind = "cloudflare"\n'
        f'zone_id = "{DEFAULT_ZONES["example.com"]}"\n'
        'api_token = "env:CF_TOKEN"\n'
        f'endpoint_url = "{fake.url}"\n'
        'hosts = ["www.example.com"]\n'
        "max_in_flight = 1\n", encoding="utf-8")
    urls = isolated / "urls.txt"
    urls.write_text("\n".join(URLS) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGECTL_", "CF_", "CLOUDFLARE_"))}
    env.update(EDGECTL_STATE=str(isolated / "state.db"), EDGECTL_CONFIG=str(config), CF_TOKEN=DEFAULT_TOKEN)
    return str(config), str(urls), env


def start_purge(urls: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgectl", "cdn", "purge", "--urls-file", urls, "-p", "cf"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_journal(path: Path) -> dict[int, tuple[str, tuple[str, ...], int]]:
    """seq -> (state, items, attempts), read-only, as another process sees the file."""
    if not path.exists():
        return {}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT seq, state, items, attempts FROM purge_batches WHERE purge_id = 1").fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError:  # not created or not migrated yet
        return {}
    return {seq: (state, tuple(json.loads(items)), attempts) for seq, state, items, attempts in rows}


def wait_for_progress(proc: subprocess.Popen, state: Path, done_at_least: int, *, on_the_wire: bool = False,
                      deadline_s: float = 30) -> dict:
    """Poll the journal until that many batches are done and some still pending (and, if asked, one sent)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the purge ended (exit {proc.returncode}) before it could be stopped: {err}")
        journal = read_journal(state)
        states = [s for s, _, _ in journal.values()]
        if (sum(s in DONE for s in states) >= done_at_least and "pending" in states
                and (not on_the_wire or "sent" in states)):
            return journal
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=10)
    pytest.fail("the journal showed no progress in time")


def show(cli, config: str) -> dict:
    run = cli("--config", config, "cdn", "show", "1", "-o", "json")
    assert run.exit_code == 0, run.stderr
    return run.json()


def assert_resumed_without_resending(cli, config: str, fake, at_stop: dict, sent_before: int) -> None:
    resumed = cli("--config", config, "cdn", "purge", "--resume", "1", "-o", "json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["status"] == "completed" and resumed.json()["resume"] is None

    purged = fake.purged
    # every URL reached Cloudflare
    assert {u for p in purged for u in p["items"]} == set(URLS)
    # nothing the journal had as done when the process stopped was sent again afterwards
    done_then = {items for state, items, _ in at_stop.values() if state in DONE}
    assert done_then
    resent = [tuple(p["items"]) for p in purged[sent_before:] if tuple(p["items"]) in done_then]
    assert resent == []
    after = show(cli, config)
    assert after["status"] == "completed"
    for batch in after["batch_list"]:
        state, _, attempts = at_stop[batch["seq"]]
        assert batch["state"] == "completed"
        if state in DONE:
            assert batch["attempts"] == attempts == 1, batch
    # each batch not done at the stop went out once more, at most one of them (the one on the wire) twice
    unfinished = [items for state, items, _ in at_stop.values() if state not in DONE]
    counts = [sum(tuple(p["items"]) == items for p in purged) for items in unfinished]
    assert all(1 <= c <= 2 for c in counts) and sum(c == 2 for c in counts) <= 1, counts


def test_a_purge_killed_half_way_resumes_without_resending_what_was_accepted(cli, isolated, fake, setup):
    config, urls, env = setup
    state = isolated / "state.db"
    fake.delay_next(SLOW, count=4)  # every batch slow: time for the checks below while it runs
    proc = start_purge(urls, env)
    try:
        wait_for_progress(proc, state, done_at_least=1)
        # while it runs, the purge is its process's: another run of it is refused
        busy = cli("--config", config, "cdn", "purge", "--resume", "1")
        assert busy.exit_code == 4 and f"being run by process {proc.pid}" in busy.stderr
        assert show(cli, config)["status"] == "running"
        wait_for_progress(proc, state, done_at_least=3)
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    at_kill = read_journal(state)
    sent_before = len(fake.purged)
    states = [s for s, _, _ in at_kill.values()]
    assert 3 <= sum(s in DONE for s in states) < 10 and "pending" in states

    interrupted = show(cli, config)
    assert interrupted["status"] == "interrupted"
    assert [b["state"] for b in interrupted["batch_list"]] == [at_kill[seq][0] for seq in sorted(at_kill)]
    listed = cli("--config", config, "cdn", "history", "-o", "json").json()
    assert [(p["id"], p["status"]) for p in listed] == [(1, "interrupted")]

    assert_resumed_without_resending(cli, config, fake, at_kill, sent_before)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_purge_stopped_by_a_signal_exits_130_and_resumes(cli, isolated, fake, setup, signum):
    config, urls, env = setup
    state = isolated / "state.db"
    proc = start_purge(urls, env)
    try:
        # a request just went out, so the signal finds the purge waiting for its answer
        wait_for_progress(proc, state, done_at_least=2, on_the_wire=True)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)

    assert proc.returncode == 130, err
    assert "error: purge 1 interrupted; what was sent is journaled" in err
    assert "hint: resume it: edgectl cdn purge --resume 1" in err
    at_stop = read_journal(state)
    sent_before = len(fake.purged)
    states = [s for s, _, _ in at_stop.values()]
    # the request on the wire was waited for and journaled: nothing is left 'sent'
    assert "sent" not in states and "pending" in states and sum(s in DONE for s in states) >= 2
    record = show(cli, config)
    assert record["status"] == "interrupted"

    assert_resumed_without_resending(cli, config, fake, at_stop, sent_before)
