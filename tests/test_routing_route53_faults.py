"""Route 53 steering when Route 53 is slow, busy or interrupted: retries, waiting for INSYNC, resume after kill -9.

moto answers every change INSYNC at once and never throttles; tests/fakes/route53_faults.py, a
proxy in front of it, adds PENDING changes, Throttling and PriorRequestNotComplete, and atomic
batches.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.fakes.route53_faults import Route53Faults
from tests.test_routing_route53 import (add_nodes, admin, apply, geo_records, plan,  # noqa: F401
                                        write_config, zone)
from tests.routing_state import add_rule


@pytest.fixture(scope="module")
def _proxy(moto):
    proxy = Route53Faults(moto.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy(_proxy):
    _proxy.reset()
    yield _proxy
    _proxy.reset()


@pytest.fixture
def config(isolated, zone, proxy, aws_env, monkeypatch) -> str:  # noqa: F811
    path = write_config(isolated / "edgectl.toml", zone, proxy.url)
    monkeypatch.setenv("EDGECTL_CONFIG", path)
    return path


@pytest.fixture
def estate(cli, config):
    add_nodes(cli, "fra-1", "ams-1", "iad-1")
    add_rule(cli, "--default", "--target", "iad-1")
    add_rule(cli, "--continent", "EU", "--target", "fra-1", "--weight", "60")
    add_rule(cli, "--continent", "EU", "--target", "ams-1", "--weight", "40")


def test_throttling_and_a_prior_request_are_retried(cli, estate, proxy, admin, zone):  # noqa: F811
    proxy.inject("throttling", 2, only={"ChangeResourceRecordSets"})
    proxy.inject("prior_request", 1, only={"ChangeResourceRecordSets"})
    proxy.inject("throttling", 1, only={"CreateHealthCheck"})
    report = apply(cli)
    assert report["status"] == "applied"  # Route 53 (the proxy) reports the change PENDING: applied, not yet in sync
    batch = next(s for s in report["steps"] if s["summary"].startswith("change batch"))
    assert batch["attempts"] == 1 and batch["state"] == "applied"  # retried in one attempt: throttling costs time only
    assert len(proxy.calls("POST", "/rrset")) == 4
    assert set(geo_records(admin, zone)) == {"*", "continent:EU"}
    assert plan(cli)["empty"]


def test_wait_polls_each_change_until_insync(cli, estate, proxy):
    proxy.pending_polls = 2
    started = cli("routing", "apply", "--yes", "--wait", "--timeout", "60s", "-o", "json")
    assert started.exit_code == 0, started.stderr
    report = started.json()
    assert report["status"] == "synced"
    ids = proxy.change_ids()
    assert ids and all(proxy.change_status(i) == "INSYNC" for i in ids)
    assert len(proxy.calls("GET", "/change/")) >= 3  # PENDING twice, then INSYNC


def test_without_wait_a_pending_change_is_applied_and_show_says_so(cli, estate, proxy):
    proxy.pending_polls = 1000
    report = apply(cli)
    assert report["status"] == "applied"
    batch = next(s for s in report["steps"] if s["summary"].startswith("change batch"))
    assert batch["state"] == "applied" and batch["provider_ref"]
    shown = cli("routing", "show", str(report["apply"]), "-o", "json").json()
    assert shown["status"] == "applied"


def test_a_wait_that_times_out_is_exit_1(cli, estate, proxy):
    proxy.pending_polls = 1000
    run = cli("routing", "apply", "--yes", "--wait", "--timeout", "2s")
    assert run.exit_code == 1
    assert "not yet in sync when the wait ended" in run.stderr


def test_a_refused_request_fails_the_apply_with_the_resume_command_and_resume_finishes(cli, estate, proxy, admin, zone):  # noqa: F811
    proxy.inject("denied", 1, only={"ChangeResourceRecordSets"})
    run = cli("routing", "apply", "--yes")
    assert run.exit_code == 1
    assert "AccessDenied" in run.stderr and "edgectl routing apply --resume 1" in run.stderr
    assert "Traceback" not in run.stderr
    shown = cli("routing", "show", "1", "-o", "json").json()
    assert [s["state"] for s in shown["steps"]].count("failed") == 1
    assert cli("routing", "history", "-o", "json").json()[0]["status"] == "failed"
    resumed = cli("routing", "apply", "--resume", "1", "-o", "json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["status"] == "applied"
    assert set(geo_records(admin, zone)) == {"*", "continent:EU"}
    assert plan(cli)["empty"]


def test_a_refused_token_for_plan_is_one_line_and_exit_2(cli, estate, proxy):
    proxy.inject("denied", 1)
    run = cli("routing", "plan")
    assert run.exit_code == 2
    assert run.stderr.startswith("error: provider dns: Route 53 ") and "AccessDenied" in run.stderr


def test_a_step_resent_after_it_landed_changes_nothing(cli, estate, proxy, admin, zone):  # noqa: F811
    from pathlib import Path

    from edgectl.config import Config
    from edgectl.providers.config import build, entry
    from edgectl.routing import journal
    from edgectl.state import open_state

    apply(cli)
    ids = {(r["source"], r["target"]): r["id"] for r in cli("routing", "rules", "list", "-o", "json").json()}
    cli("routing", "rules", "remove", str(ids[("continent:EU", "ams-1")]))
    assert cli("routing", "apply", "--yes", "--force").exit_code == 0
    before = geo_records(admin, zone)
    config = Config(Path(os.environ["EDGECTL_CONFIG"]), "test")
    state = open_state(Path(os.environ["EDGECTL_STATE"]))
    provider = build(config, entry(config, "dns", "routing"))
    steps = journal.steps(state, 2)
    for step in steps:  # every step of the second apply again, as a resume after an unknown outcome would
        provider.apply(step.step, resend=True)
    assert geo_records(admin, zone) == before
    checks = len(admin.list_health_checks()["HealthChecks"])
    for step in journal.steps(state, 1):  # the first apply's health checks, created again with the same reference
        if step.summary.startswith("create health check fra-1"):
            provider.apply(step.step, resend=True)
    assert len(admin.list_health_checks()["HealthChecks"]) == checks
    provider.close()
    assert plan(cli)["empty"]


def test_resume_after_kill_9_finishes_the_apply(cli, estate, proxy, admin, zone, isolated):  # noqa: F811
    # every record batch is throttled for now: the apply keeps retrying its step, which stays `sent`
    proxy.inject("throttling", 10_000, only={"ChangeResourceRecordSets"})
    env = dict(os.environ)
    child = subprocess.Popen([sys.executable, "-m", "edgectl", "routing", "apply", "--yes"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state = os.environ["EDGECTL_STATE"]
    deadline = time.monotonic() + 60
    sent = None
    while time.monotonic() < deadline and sent is None:
        time.sleep(0.2)
        try:
            with sqlite3.connect(state, timeout=5) as db:
                sent = db.execute("SELECT apply_id FROM routing_apply_steps WHERE state = 'sent' AND last_error"
                                  " LIKE '%Throttling%'").fetchone()
        except sqlite3.OperationalError:
            pass
    assert sent is not None, child.stderr.read().decode() if child.poll() is not None else "no step was sent"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    shown = cli("routing", "show", str(sent[0]), "-o", "json").json()
    assert shown["status"] == "interrupted"
    states = [s["state"] for s in shown["steps"]]
    assert "sent" in states and states.count("synced") >= 1  # the health checks landed before the kill
    proxy.reset()
    proxy.pending_polls = 1
    resumed = cli("routing", "apply", "--resume", str(sent[0]), "--wait", "-o", "json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["status"] == "synced"
    assert set(geo_records(admin, zone)) == {"*", "continent:EU"}
    assert plan(cli)["empty"]
    # the health checks were created once: the resume did not send their steps again
    prefix = f"edgectl:default:{hashlib.sha256(f'{zone} www.example.com.'.encode()).hexdigest()[:8]}:"
    ours = [hc for hc in admin.list_health_checks()["HealthChecks"] if hc["CallerReference"].startswith(prefix)]
    assert len(ours) == 3
    assert json.loads(cli("routing", "history", "-o", "json").stdout)[0]["status"] == "synced"
