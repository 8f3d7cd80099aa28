"""routing plan / apply with the cloudflare_lb kind, through the CLI and the real SDK, against the LB fake."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cloudflare import Cloudflare

from tests.fakes.cloudflare_api import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN, DEFAULT_ZONES
from tests.fakes.cloudflare_lb import FakeCloudflareLB
from tests.routing_state import add_rule, assert_usage_error

ACCOUNT = DEFAULT_ACCOUNT_ID
ZONE_ID = DEFAULT_ZONES["example.com"]
HOST = "www.example.com"
MARK = "managed by edgectl (owner default)"
NODES = {  # name: (country, lat, lon, address)
    "fra-1": ("DE", 50.11, 8.68, "198.51.100.10"),
    "ams-1": ("NL", 52.37, 4.90, "198.51.100.11"),
    "par-1": ("FR", 48.86, 2.35, "198.51.100.12"),
    "iad-1": ("US", 38.95, -77.45, "198.51.100.13"),
}


@pytest.fixture
def fake():
    with FakeCloudflareLB() as server:
        yield server


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("CF_TOKEN", DEFAULT_TOKEN)
    return DEFAULT_TOKEN


@pytest.fixture
def configure(isolated, fake, token, monkeypatch):
    """configure(**settings) writes [providers.lb] (and any `others`) and points EDGECTL_CONFIG at it."""
    path = isolated / "edgectl-test.toml"

    def write(others: dict[str, dict] | None = None, **settings) -> Path:
        tables = {"lb": {"kind": "cloudflare_lb", "account_id": ACCOUNT, "zone": "example.com",
                         "api_token": "env:CF_TOKEN", "hostname": HOST, "endpoint_url": fake.url, **settings},
                  **(others or {})}
        text = ""
        for name, table in tables.items():
            text += f"[providers.{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in table.items() if v is not None)
        path.write_text(text)
        monkeypatch.setenv("EDGECTL_CONFIG", str(path))
        return path

    return write


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def add_node(cli, name: str, *extra: str, address: str | None = None) -> None:
    country, lat, lon, known = NODES.get(name) or ("DE", 50.0, 8.0, None)
    address = address or known
    run = cli("nodes", "add", name, "-e", f"https://{name}.edge.example.net", "--country", country, "--lat", lat,
              "--lon", lon, "--address", address, *extra)
    assert run.exit_code == 0, run.stderr


@pytest.fixture
def estate(cli, configure):
    """Three nodes: default -> fra-1; DE -> ams-1 failing over to par-1; Cloudflare's WEU region -> par-1."""
    configure(check_regions=["WEU", "ENAM"])
    for name in ("fra-1", "ams-1", "par-1"):
        add_node(cli, name)
    rules = {"default": add_rule(cli, "--default", "--target", "fra-1"),
             "de": add_rule(cli, "--country", "DE", "--target", "ams-1", "--failover", "par-1"),
             "weu": add_rule(cli, "--region", "WEU", "--target", "par-1")}
    return rules


def plan(cli, *args) -> dict:
    run = cli("routing", "plan", *args, "-o", "json")
    assert run.exit_code == 0, run.stderr
    return run.json()


def apply(cli, *args):
    run = cli("routing", "apply", "--yes", *args, "-o", "json")
    assert run.exit_code == 0, (run.stdout[-2000:], run.stderr)
    return run


def changes(record: dict) -> dict[tuple[str, str], dict]:
    return {(c["action"], c["key"]): c for p in record["providers"] for c in p["changes"]}


def by_name(items: dict[str, dict]) -> dict[str, dict]:
    return {item["name"]: item for item in items.values()}


def balancer(fake) -> dict:
    """The load balancer at HOST, its pool ids written as pool names."""
    names = {pool_id: pool["name"] for pool_id, pool in fake.pools.items()}
    (lb,) = [lb for lb in fake.load_balancers.values() if lb["name"] == HOST]
    return {**lb, "default_pools": [names[p] for p in lb["default_pools"]], "fallback_pool": names[lb["fallback_pool"]],
            "country_pools": {c: [names[p] for p in ps] for c, ps in lb["country_pools"].items()},
            "region_pools": {r: [names[p] for p in ps] for r, ps in lb["region_pools"].items()}}


def plan_reads(cli, fake) -> int:
    """How many requests a plan makes, so that a fault can be queued for a chosen step of the apply after it."""
    before = len(fake.requests)
    plan(cli)
    return len(fake.requests) - before


def skip_then(fake, reads: int) -> None:
    """Let the next `reads` requests through untouched: the fault queued after this is spent by the one after them."""
    fake.delay_next(0, count=reads)


def assert_refused(run, says: str) -> None:
    """Exit 2 with an `error:` line saying `says`, after whatever plan was shown; no traceback."""
    assert run.exit_code == 2, (run.exit_code, run.stderr)
    assert any(line.startswith("error: ") and says in line for line in run.stderr.splitlines()), run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def sdk(fake) -> Cloudflare:
    return Cloudflare(api_token=DEFAULT_TOKEN, base_url=fake.url, max_retries=0, timeout=5)


# -- plan and apply -------------------------------------------------------------------------------

def test_the_plan_creates_a_monitor_a_pool_per_node_and_the_load_balancer_with_its_lists(cli, estate, fake):
    record = plan(cli)
    found = changes(record)
    assert set(found) == {("create", "monitor edgectl-default"), ("create", "pool edgectl-default-fra-1"),
                          ("create", "pool edgectl-default-ams-1"), ("create", "pool edgectl-default-par-1"),
                          ("create", f"load_balancer {HOST}")}
    lb = found[("create", f"load_balancer {HOST}")]["new"]
    assert lb["default_pools"] == ["edgectl-default-fra-1"] and lb["fallback_pool"] == "edgectl-default-fra-1"
    assert lb["country_pools"] == {"DE": ["edgectl-default-ams-1", "edgectl-default-par-1"]}
    assert lb["region_pools"] == {"WEU": ["edgectl-default-par-1"]}
    assert lb["steering_policy"] == "geo" and lb["proxied"] is True and lb["description"] == MARK
    pool = found[("create", "pool edgectl-default-ams-1")]["new"]
    assert pool == {"name": "edgectl-default-ams-1", "description": MARK, "monitor": "edgectl-default",
                    "origins": [{"name": "ams-1", "address": "198.51.100.11", "enabled": True, "weight": 1}],
                    "latitude": 52.37, "longitude": 4.90, "check_regions": ["WEU", "ENAM"]}
    assert found[("create", "monitor edgectl-default")]["new"] == {
        "description": f"edgectl-default: {HOST}", "type": "https", "path": "/health", "expected_codes": "2xx"}
    steps = [s["summary"] for s in record["providers"][0]["steps"]]
    assert steps[0] == "create monitor edgectl-default" and steps[-1] == f"create load balancer {HOST}"
    assert fake.monitors == {} and fake.pools == {} and fake.load_balancers == {}  # a plan changes nothing
    table = cli("routing", "plan")
    assert table.exit_code == 0 and "country_pools" in table.stdout and "edgectl-default-ams-1" in table.stdout


def test_apply_publishes_exactly_the_plan_and_a_second_plan_is_empty(cli, estate, fake):
    run = apply(cli)
    assert run.json()["status"] == "synced"
    (monitor_id, monitor), = fake.monitors.items()
    assert (monitor["type"], monitor["path"], monitor["expected_codes"], monitor["description"]) == \
        ("https", "/health", "2xx", f"edgectl-default: {HOST}")
    pools = by_name(fake.pools)
    assert set(pools) == {"edgectl-default-fra-1", "edgectl-default-ams-1", "edgectl-default-par-1"}
    fra = pools["edgectl-default-fra-1"]
    assert fra["monitor"] == monitor_id and fra["description"] == MARK and fra["check_regions"] == ["WEU", "ENAM"]
    assert [(o["name"], o["address"], o["enabled"], o["weight"]) for o in fra["origins"]] == \
        [("fra-1", "198.51.100.10", True, 1)]
    assert (fra["latitude"], fra["longitude"]) == (50.11, 8.68)
    lb = balancer(fake)
    assert (lb["default_pools"], lb["fallback_pool"]) == (["edgectl-default-fra-1"], "edgectl-default-fra-1")
    assert lb["country_pools"] == {"DE": ["edgectl-default-ams-1", "edgectl-default-par-1"]}
    assert lb["region_pools"] == {"WEU": ["edgectl-default-par-1"]}
    assert (lb["steering_policy"], lb["proxied"], lb["description"]) == ("geo", True, MARK)
    again = plan(cli)
    assert again["empty"] is True and again["counts"] == {"create": 0, "update": 0, "delete": 0}
    assert again["providers"][0]["existing"] == 5 and again["providers"][0]["not_managed"] == []


def test_without_check_regions_a_pool_is_one_request_and_has_none(cli, configure, fake):
    configure()
    add_node(cli, "fra-1")
    add_rule(cli, "--default", "--target", "fra-1")
    apply(cli)
    (pool,) = fake.pools.values()
    assert pool["check_regions"] is None
    assert not [call for call in fake.calls if call[0] == "PATCH"]
    assert plan(cli)["empty"]


def test_check_regions_are_set_by_editing_the_pool_after_creating_it(cli, estate, fake):
    apply(cli)
    pool_calls = [method for method, path in fake.calls if "/load_balancers/pools" in path and method != "GET"]
    assert pool_calls == ["POST", "PATCH"] * 3


def test_a_rule_change_is_an_update_field_by_field(cli, estate, fake):
    apply(cli)
    run = cli("routing", "rules", "update", estate["de"]["id"], "--failover", "fra-1", "-o", "json")
    assert run.exit_code == 0, run.stderr
    record = plan(cli)
    assert record["counts"] == {"create": 0, "update": 1, "delete": 0}
    (change,) = record["providers"][0]["changes"]
    assert (change["action"], change["key"]) == ("update", f"load_balancer {HOST}")
    assert change["fields"] == {"country_pools.DE": {"old": ["edgectl-default-ams-1", "edgectl-default-par-1"],
                                                     # then WEU's par-1, resolve's next level for DE
                                                     "new": ["edgectl-default-ams-1", "edgectl-default-fra-1",
                                                             "edgectl-default-par-1"]}}
    apply(cli)
    assert balancer(fake)["country_pools"]["DE"] == ["edgectl-default-ams-1", "edgectl-default-fra-1",
                                                     "edgectl-default-par-1"]
    assert plan(cli)["empty"]


def test_a_drained_node_leaves_every_list_and_its_pool_goes_after_the_load_balancer_stops_using_it(cli, estate, fake):
    apply(cli)
    assert cli("nodes", "drain", "ams-1").exit_code == 0
    record = plan(cli)
    found = changes(record)
    assert set(found) == {("update", f"load_balancer {HOST}"), ("delete", "pool edgectl-default-ams-1")}
    assert found[("update", f"load_balancer {HOST}")]["fields"] == {
        "country_pools.DE": {"old": ["edgectl-default-ams-1", "edgectl-default-par-1"],
                             "new": ["edgectl-default-par-1"]}}
    assert [s["summary"] for s in record["providers"][0]["steps"]] == [
        f"update load balancer {HOST}", "delete pool edgectl-default-ams-1"]
    apply(cli)  # the fake refuses to delete a pool a load balancer still uses
    assert "edgectl-default-ams-1" not in by_name(fake.pools)
    assert balancer(fake)["country_pools"] == {"DE": ["edgectl-default-par-1"]}
    assert plan(cli)["empty"]


def test_a_steering_policy_other_than_geo_picks_among_every_pool_and_says_what_it_leaves_out(cli, estate, configure,
                                                                                             fake):
    configure(steering_policy="proximity")
    record = plan(cli)
    lb = changes(record)[("create", f"load_balancer {HOST}")]["new"]
    assert lb["steering_policy"] == "proximity"
    assert lb["default_pools"] == ["edgectl-default-fra-1", "edgectl-default-par-1", "edgectl-default-ams-1"]
    assert lb["country_pools"] == {} and lb["region_pools"] == {}
    assert any("proximity steering picks from default_pools only" in w for w in record["providers"][0]["warnings"])
    apply(cli)
    assert balancer(fake)["steering_policy"] == "proximity" and plan(cli)["empty"]


def test_random_steering_publishes_the_default_rules_weights(cli, configure, fake):
    configure(steering_policy="random")
    for name in ("fra-1", "ams-1"):
        add_node(cli, name)
    add_rule(cli, "--default", "--target", "fra-1", "--weight", "75")
    add_rule(cli, "--default", "--target", "ams-1", "--weight", "25")
    apply(cli)
    names = {pool_id: pool["name"] for pool_id, pool in fake.pools.items()}
    (lb,) = fake.load_balancers.values()
    assert {names[p]: w for p, w in lb["random_steering"]["pool_weights"].items()} == {
        "edgectl-default-fra-1": 1.0, "edgectl-default-ams-1": 0.33}
    assert plan(cli)["empty"]


def test_weighted_targets_under_geo_steering_are_listed_by_weight_with_a_warning(cli, configure):
    configure()
    for name in ("fra-1", "ams-1"):
        add_node(cli, name)
    add_rule(cli, "--default", "--target", "ams-1", "--weight", "30")
    add_rule(cli, "--default", "--target", "fra-1", "--weight", "70")
    record = plan(cli)
    lb = changes(record)[("create", f"load_balancer {HOST}")]["new"]
    assert lb["default_pools"] == ["edgectl-default-fra-1", "edgectl-default-ams-1"]
    (warning,) = [w for w in record["providers"][0]["warnings"] if "weighted targets" in w]
    assert "first healthy pool" in warning and "fra-1 70, ams-1 30" in warning


def test_an_unknown_steering_policy_is_a_config_error(cli, estate, configure):
    configure(steering_policy="fastest")
    run = cli("routing", "plan")
    assert_usage_error(run, "steering_policy: 'fastest' is not one of geo, proximity, dynamic_latency, random")


def test_config_validate_names_each_bad_setting(cli, configure):
    configure(account_id="nope", hostname="www.example.org", check_regions=["WEU", "MARS"], ttl=0, proxied="yes",
              monitor_path="health")
    run = cli("config", "validate", "-o", "json")
    said = {p["key"].removeprefix("providers.lb."): p["message"] for p in run.json()["problems"]}
    assert run.exit_code == 2 and said == {
        "account_id": "must be the account's ID, 32 lower-case hexadecimal characters",
        "hostname": "www.example.org is not in zone example.com",
        "check_regions": "MARS not among WNAM, ENAM, WEU, EEU, NSAM, SSAM, OC, ME, NAF, SAF, SAS, SEAS, NEAS, CHINA, "
                         "ALL_REGIONS",
        "ttl": "a whole number of seconds from 1 to 86400",
        "proxied": "true or false",
        "monitor_path": "a path starting with '/', without spaces, such as /healthz"}


def test_providers_test_reads_the_zone_and_the_load_balancers_and_changes_nothing(cli, estate, fake):
    run = cli("providers", "test", "lb", "-o", "json")
    assert run.exit_code == 0, run.stderr
    (row,) = run.json()
    assert "zone example.com" in row["detail"] and f"{HOST}: not there yet" in row["detail"]
    assert all(method == "GET" for method, _ in fake.calls)


# -- ownership ------------------------------------------------------------------------------------

def test_what_edgectl_does_not_own_is_left_alone_and_not_listed(cli, estate, fake):
    with sdk(fake) as client:
        legacy = client.load_balancers.pools.create(account_id=ACCOUNT, name="legacy-origin",
                                                    origins=[{"name": "old", "address": "192.0.2.1"}])
        other = client.load_balancers.create(zone_id=ZONE_ID, name="api.example.com", default_pools=[legacy.id],
                                             fallback_pool=legacy.id)
    before = (fake.pools[legacy.id], fake.load_balancers[other.id])
    record = plan(cli)
    assert record["providers"][0]["not_managed"] == []  # the rest of the account cannot conflict
    apply(cli)
    assert cli("nodes", "drain", "par-1").exit_code == 0
    apply(cli)
    assert (fake.pools[legacy.id], fake.load_balancers[other.id]) == before


def test_a_load_balancer_of_the_hostname_that_is_not_edgectls_is_refused(cli, estate, fake):
    with sdk(fake) as client:
        theirs = client.load_balancers.pools.create(account_id=ACCOUNT, name="theirs",
                                                    origins=[{"name": "x", "address": "192.0.2.9"}])
        client.load_balancers.create(zone_id=ZONE_ID, name=HOST, default_pools=[theirs.id], fallback_pool=theirs.id,
                                     description="hand made")
    held = (fake.monitors, fake.pools, fake.load_balancers)
    run = cli("routing", "plan")
    assert_usage_error(run, f"a load balancer named {HOST} exists in the zone and is not edgectl's")
    assert len(run.stderr.splitlines()) == 2  # the error and its hint
    run = cli("routing", "apply", "--yes")
    assert_usage_error(run, "is not edgectl's")
    assert (fake.monitors, fake.pools, fake.load_balancers) == held


def test_a_pool_of_edgectls_name_without_its_mark_is_refused(cli, estate, fake):
    with sdk(fake) as client:
        client.load_balancers.pools.create(account_id=ACCOUNT, name="edgectl-default-fra-1", description="mine",
                                           origins=[{"name": "x", "address": "192.0.2.9"}])
    run = cli("routing", "plan")
    assert_usage_error(run, "pool edgectl-default-fra-1 exists in account")


def test_two_owners_in_one_account_never_touch_each_others_pools(cli, estate, configure, fake):
    blue = {"kind": "cloudflare_lb", "account_id": ACCOUNT, "zone": "example.com", "api_token": "env:CF_TOKEN",
            "hostname": "api.example.com", "endpoint_url": fake.url, "owner": "blue"}
    configure(others={"blue": blue})
    apply(cli, "--provider", "lb")
    apply(cli, "--provider", "blue")
    pools = by_name(fake.pools)
    assert {n for n in pools if n.startswith("edgectl-blue-")} == {
        "edgectl-blue-fra-1", "edgectl-blue-ams-1", "edgectl-blue-par-1"}
    assert len(fake.monitors) == 2 and len(fake.load_balancers) == 2
    blues = {pool_id: pool for pool_id, pool in fake.pools.items() if pool["name"].startswith("edgectl-blue-")}
    assert cli("nodes", "drain", "ams-1").exit_code == 0
    record = plan(cli, "--provider", "lb")
    assert {c["key"] for c in record["providers"][0]["changes"]} == {
        f"load_balancer {HOST}", "pool edgectl-default-ams-1"}
    assert record["providers"][0]["not_managed"] == [] and record["providers"][0]["existing"] == 5
    apply(cli, "--provider", "lb")
    assert {pool_id: pool for pool_id, pool in fake.pools.items() if pool_id in blues} == blues
    assert plan(cli, "--provider", "blue")["counts"] == {"create": 0, "update": 1, "delete": 1}


def test_one_owner_cannot_steer_a_second_hostname_in_the_same_account(cli, estate, configure, fake):
    apply(cli)
    configure(hostname="api.example.com")
    run = cli("routing", "plan")
    assert_usage_error(run, f"owner default already steers {HOST} in account {ACCOUNT}")


# -- safety ---------------------------------------------------------------------------------------

def test_a_plan_that_updates_too_much_is_refused_with_its_shares_unless_forced(cli, configure, fake):
    configure()
    countries = ["DE", "NL", "FR", "BE", "AT", "CH", "PL", "IT"]
    add_node(cli, "n0", address="198.51.100.50")
    add_rule(cli, "--default", "--target", "n0")
    for i, country in enumerate(countries, start=1):
        add_node(cli, f"n{i}", address=f"198.51.100.{50 + i}")
        add_rule(cli, "--country", country, "--target", f"n{i}")
    apply(cli)
    assert plan(cli)["providers"][0]["existing"] == 11  # nine pools, the monitor and the load balancer
    configure(check_regions=["WEU"])
    held = fake.pools
    run = cli("routing", "apply", "--yes")
    assert_refused(run, "unsafe plan: provider lb: updates 9 of 11 (82% > 30%)")
    assert fake.pools == held
    run = cli("routing", "apply", "--yes", "--force")
    assert run.exit_code == 0, run.stderr
    assert all(pool["check_regions"] == ["WEU"] for pool in fake.pools.values())
    assert plan(cli)["empty"]


# -- faults ---------------------------------------------------------------------------------------

def test_a_429_mid_apply_is_retried_after_retry_after_and_the_apply_succeeds(cli, estate, fake):
    reads = plan_reads(cli, fake)
    # the plan again, the monitor, the first pool's create: the 429 answers its check_regions edit, so the
    # retry follows a create that landed and must not make the pool twice
    skip_then(fake, reads + 2)
    fake.fail_next(429, retry_after=1)
    started = time.monotonic()
    run = apply(cli)
    assert time.monotonic() - started >= 1
    assert {s["state"] for s in run.json()["steps"]} == {"synced"}
    # the first pool: created, its edit refused, then found by name and written whole (PUT), not created again
    writes = [method for method, path in fake.calls if "/load_balancers/pools" in path and method != "GET"]
    assert writes == ["POST", "PUT", "POST", "PATCH", "POST", "PATCH"]
    assert all(pool["check_regions"] == ["WEU", "ENAM"] for pool in fake.pools.values())
    assert len(fake.pools) == 3 and plan(cli)["empty"]


def test_a_refused_token_is_one_line_and_exit_2_for_plan(cli, estate, monkeypatch):
    monkeypatch.setenv("CF_TOKEN", "not-the-token")
    run = cli("routing", "plan")
    assert_usage_error(run, "provider lb: cloudflare: 10000 Authentication error")
    assert "not-the-token" not in run.stderr


def test_a_step_failing_with_500_fails_the_apply_and_resume_finishes_it(cli, estate, fake):
    reads = plan_reads(cli, fake)
    skip_then(fake, reads + 1)
    fake.fail_next(500, count=6, retry_after=0)  # every attempt at the first pool
    run = cli("routing", "apply", "--yes")
    assert run.exit_code == 1, run.stderr
    assert "edgectl routing apply --resume 1" in run.stderr and "Traceback" not in run.stderr
    shown = cli("routing", "show", "1", "-o", "json").json()
    assert [s["state"] for s in shown["steps"]] == ["synced", "failed", "pending", "pending", "pending"]
    assert "HTTP 500" in shown["steps"][1]["last_error"]
    run = cli("routing", "apply", "--resume", "1", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert {s["state"] for s in run.json()["steps"]} == {"synced"}
    assert len(fake.monitors) == 1 and len(fake.pools) == 3 and plan(cli)["empty"]


def test_an_apply_killed_mid_step_is_resumed_without_repeating_what_landed(cli, estate, fake, isolated):
    reads = plan_reads(cli, fake)
    skip_then(fake, reads + 2)  # the plan, the monitor and the first pool's create go through
    fake.delay_next(120)  # the first pool's check_regions edit hangs until the process is killed
    env = {**os.environ, "NO_COLOR": "1"}
    sent = len(fake.requests) + reads + 3  # the hanging edit has reached the fake once the count gets here
    process = subprocess.Popen([sys.executable, "-m", "edgectl", "routing", "apply", "--yes"], cwd=isolated / "work",
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        states: list[str] = []
        while time.monotonic() < deadline:
            run = cli("routing", "show", "1", "-o", "json")
            if run.exit_code == 0:
                states = [s["state"] for s in run.json()["steps"]]
                if states[:2] == ["synced", "sent"] and len(fake.requests) >= sent:
                    break
            time.sleep(0.05)
        assert states[:2] == ["synced", "sent"] and len(fake.requests) >= sent, states
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    shown = cli("routing", "show", "1", "-o", "json").json()
    assert shown["status"] == "interrupted"
    assert [s["state"] for s in shown["steps"]] == ["synced", "sent", "pending", "pending", "pending"]
    run = cli("routing", "apply", "--resume", "1", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert [s["attempts"] for s in run.json()["steps"]] == [1, 2, 1, 1, 1]
    assert len(fake.monitors) == 1 and len(fake.pools) == 3 and len(fake.load_balancers) == 1
    assert plan(cli)["empty"]
