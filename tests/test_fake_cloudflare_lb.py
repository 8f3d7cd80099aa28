"""The fake of Cloudflare's Load Balancing API, driven through the real SDK over loopback HTTP."""

from __future__ import annotations

import inspect
import json
import signal
import time

import cloudflare
import httpx
import pytest
from cloudflare import Cloudflare

from tests.fakes.cloudflare_api import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN, DEFAULT_ZONES, launch
from tests.fakes.cloudflare_lb import FakeCloudflareLB

ACCOUNT = DEFAULT_ACCOUNT_ID
ZONE_ID = DEFAULT_ZONES["example.com"]
UNKNOWN_ID = "f" * 32


@pytest.fixture
def fake():
    server = FakeCloudflareLB().start()
    yield server
    server.stop()


def sdk(fake, token: str = DEFAULT_TOKEN) -> Cloudflare:
    return Cloudflare(api_token=token, base_url=fake.url, max_retries=0, timeout=5)


@pytest.fixture
def client(fake):
    with sdk(fake) as made:
        yield made


@pytest.fixture(scope="module")
def raw():
    """Plain HTTP to the fake, for bodies the SDK's signatures would never send."""
    with httpx.Client(trust_env=False, timeout=5, headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}) as made:
        yield made


def make_monitor(client, **fields):
    return client.load_balancers.monitors.create(account_id=ACCOUNT, **{"type": "https", "path": "/health",
                                                                        "expected_codes": "2xx", **fields})


def make_pool(client, name: str, address: str = "192.0.2.1", **fields):
    return client.load_balancers.pools.create(account_id=ACCOUNT, name=name,
                                              **{"origins": [{"name": name, "address": address}], **fields})


def make_lb(client, pools, name: str = "www.example.com", **fields):
    return client.load_balancers.create(zone_id=ZONE_ID, name=name, default_pools=[p.id for p in pools],
                                        fallback_pool=pools[-1].id, **fields)


def refusal(call) -> tuple[int, int, str]:
    """(HTTP status, Cloudflare code, message) of the SDK error `call` raises."""
    with pytest.raises(cloudflare.APIStatusError) as caught:
        call()
    error = caught.value
    assert error.body["success"] is False and error.body["result"] is None
    [data] = error.errors
    return error.status_code, data.code, data.message


# -- monitors ----------------------------------------------------------------------------------------------------

def test_monitors_are_created_listed_read_replaced_edited_and_deleted(fake, client):
    made = make_monitor(client, load_balancer_monitor_timeout=3, header={"Host": ["www.example.com"]},
                        description="edge health")
    assert len(made.id) == 32 and int(made.id, 16) >= 0
    assert (made.type, made.method, made.path, made.expected_codes) == ("https", "GET", "/health", "2xx")
    assert (made.interval, made.timeout, made.retries) == (60, 3, 2)  # the SDK's timeout argument is aliased
    assert made.header == {"Host": ["www.example.com"]} and made.created_on == made.modified_on

    assert [m.id for m in client.load_balancers.monitors.list(account_id=ACCOUNT)] == [made.id]
    assert client.load_balancers.monitors.get(made.id, account_id=ACCOUNT) == made

    replaced = client.load_balancers.monitors.update(made.id, account_id=ACCOUNT, type="tcp", port=8443)
    assert (replaced.id, replaced.created_on) == (made.id, made.created_on)
    assert (replaced.type, replaced.method, replaced.port, replaced.description) == (
        "tcp", "connection_established", 8443, "")  # PUT replaces: the description is gone

    edited = client.load_balancers.monitors.edit(made.id, account_id=ACCOUNT, interval=30)
    assert (edited.type, edited.port, edited.interval) == ("tcp", 8443, 30)  # PATCH keeps what it does not name
    assert fake.monitors[made.id]["interval"] == 30

    assert client.load_balancers.monitors.delete(made.id, account_id=ACCOUNT).id == made.id
    assert fake.monitors == {}
    assert refusal(lambda: client.load_balancers.monitors.get(made.id, account_id=ACCOUNT))[:2] == (404, 1001)


@pytest.mark.parametrize("fields, problem", [
    ({"type": "ftp"}, "type"),
    ({"expected_codes": "ok"}, "expected_codes"),
    ({"method": "POST"}, "method"),
    ({"type": "tcp"}, "port: required"),
    ({"interval": "60"}, "interval"),
    ({"header": {"Host": "www.example.com"}}, "header"),
])
def test_monitors_the_api_would_not_take_are_refused(fake, client, fields, problem):
    status, code, message = refusal(lambda: make_monitor(client, **fields))
    assert (status, code) == (400, 1002)
    assert message.startswith(problem) and message.endswith(": validation failed")
    assert fake.monitors == {}


# -- pools -------------------------------------------------------------------------------------------------------

def test_pools_are_created_listed_read_replaced_edited_and_deleted(fake, client):
    monitor = make_monitor(client)
    made = client.load_balancers.pools.create(
        account_id=ACCOUNT, name="fra-1", description="Frankfurt", monitor=monitor.id, latitude=50.1,
        longitude=8.7, minimum_origins=1, notification_email="ops@example.com",
        origins=[{"name": "fra-1a", "address": "192.0.2.1", "weight": 0.6, "header": {"Host": ["www.example.com"]}},
                 {"name": "fra-1b", "address": "fra-1b.nodes.example.net", "enabled": False, "weight": 0.4}])
    assert (made.name, made.enabled, made.monitor, made.check_regions) == ("fra-1", True, monitor.id, None)
    assert [(o.name, o.enabled, o.weight) for o in made.origins] == [("fra-1a", True, 0.6), ("fra-1b", False, 0.4)]
    assert made.origins[0].header.host == ["www.example.com"]
    assert (made.latitude, made.longitude, made.notification_email) == (50.1, 8.7, "ops@example.com")

    other = make_pool(client, "ams-1", "192.0.2.2")
    assert [p.name for p in client.load_balancers.pools.list(account_id=ACCOUNT)] == ["fra-1", "ams-1"]
    assert [p.name for p in client.load_balancers.pools.list(account_id=ACCOUNT, monitor=monitor.id)] == ["fra-1"]
    assert client.load_balancers.pools.get(made.id, account_id=ACCOUNT) == made

    replaced = client.load_balancers.pools.update(made.id, account_id=ACCOUNT, name="fra-2",
                                                  origins=[{"name": "fra-2a", "address": "2001:db8::1"}])
    assert (replaced.id, replaced.created_on, replaced.name) == (made.id, made.created_on, "fra-2")
    assert (replaced.monitor, replaced.description, replaced.latitude) == (None, "", None)  # PUT replaces
    edited = client.load_balancers.pools.edit(made.id, account_id=ACCOUNT, enabled=False)
    assert (edited.name, edited.enabled, edited.origins[0].address) == ("fra-2", False, "2001:db8::1")
    assert edited.disabled_at is not None

    assert client.load_balancers.pools.delete(made.id, account_id=ACCOUNT).id == made.id
    assert list(fake.pools) == [other.id]
    assert refusal(lambda: client.load_balancers.pools.get(made.id, account_id=ACCOUNT))[:2] == (404, 1001)
    assert ("DELETE", f"/accounts/{ACCOUNT}/load_balancers/pools/{made.id}") in fake.calls


def test_check_regions_are_set_through_update_and_edit(fake, client):
    # the SDK's create has no check_regions argument, while update and edit have one
    assert "check_regions" not in inspect.signature(client.load_balancers.pools.create).parameters
    assert "check_regions" in inspect.signature(client.load_balancers.pools.update).parameters
    made = make_pool(client, "fra-1")
    assert made.check_regions is None  # null: every Cloudflare data center

    updated = client.load_balancers.pools.update(made.id, account_id=ACCOUNT, name="fra-1",
                                                 origins=[{"name": "fra-1", "address": "192.0.2.1"}],
                                                 check_regions=["WEU", "EEU"])
    assert updated.check_regions == ["WEU", "EEU"]
    assert client.load_balancers.pools.edit(made.id, account_id=ACCOUNT, check_regions=["ENAM"]).check_regions == ["ENAM"]
    assert fake.pools[made.id]["check_regions"] == ["ENAM"]

    status, code, message = refusal(lambda: client.load_balancers.pools.edit(made.id, account_id=ACCOUNT,
                                                                             check_regions=["EUROPE"]))
    assert (status, code) == (400, 1002) and "check_regions" in message
    assert fake.pools[made.id]["check_regions"] == ["ENAM"]


@pytest.mark.parametrize("fields, code, problem", [
    ({"origins": []}, 1002, "origins"),
    ({"origins": [{"name": "a", "address": "192.0.2.1", "weight": 1.5}]}, 1002, "origins[0].weight"),
    ({"origins": [{"name": "a", "address": "not an address"}]}, 1002, "origins[0].address"),
    ({"origins": [{"address": "192.0.2.1"}]}, 1002, "origins[0].name: required"),
    ({"name": "fra 1"}, 1002, "name"),
    ({"monitor": UNKNOWN_ID}, 1002, "monitor"),
    ({"latitude": 50.1}, 1002, "latitude and longitude"),
    ({"name": "taken"}, 1003, "value not unique"),
])
def test_pools_the_api_would_not_take_are_refused(fake, client, fields, code, problem):
    taken = make_pool(client, "taken")
    body = {"name": "fra-1", "origins": [{"name": "fra-1", "address": "192.0.2.1"}], **fields}
    status, got, message = refusal(lambda: client.load_balancers.pools.create(account_id=ACCOUNT, **body))
    assert (status, got) == (400, code) and message.startswith(problem)
    assert list(fake.pools) == [taken.id]


def test_a_pool_cannot_be_renamed_to_a_name_another_pool_has(fake, client):
    make_pool(client, "fra-1")
    second = make_pool(client, "ams-1")
    assert refusal(lambda: client.load_balancers.pools.edit(second.id, account_id=ACCOUNT, name="fra-1"))[:2] == (
        400, 1003)
    assert client.load_balancers.pools.edit(second.id, account_id=ACCOUNT, name="ams-1").name == "ams-1"  # its own


# -- load balancers ----------------------------------------------------------------------------------------------

def test_geo_steering_is_created_listed_read_replaced_edited_and_deleted(fake, client):
    monitor = make_monitor(client)
    fra, ams, iad = (make_pool(client, name, f"192.0.2.{i}", monitor=monitor.id)
                     for i, name in enumerate(("fra-1", "ams-1", "iad-1"), start=1))
    [zone] = client.zones.list(name="example.com")  # a config that names its zone finds the ID this way

    made = client.load_balancers.create(
        zone_id=zone.id, name="www.example.com", description="edge", default_pools=[fra.id, ams.id, iad.id],
        fallback_pool=iad.id, country_pools={"DE": [fra.id, ams.id], "NL": [ams.id]},
        region_pools={"WEU": [ams.id, fra.id], "ENAM": [iad.id]}, pop_pools={"LAX": [iad.id]},
        steering_policy="geo", proxied=True, ttl=30, session_affinity="cookie",
        random_steering={"default_weight": 0.5, "pool_weights": {fra.id: 0.8}})
    assert (made.name, made.zone_name, made.steering_policy, made.proxied, made.enabled) == (
        "www.example.com", "example.com", "geo", True, True)
    assert made.default_pools == [fra.id, ams.id, iad.id] and made.fallback_pool == iad.id
    assert made.country_pools == {"DE": [fra.id, ams.id], "NL": [ams.id]}
    assert made.region_pools == {"WEU": [ams.id, fra.id], "ENAM": [iad.id]} and made.pop_pools == {"LAX": [iad.id]}
    assert made.random_steering.pool_weights == {fra.id: 0.8}

    assert [lb.id for lb in client.load_balancers.list(zone_id=ZONE_ID)] == [made.id]
    assert client.load_balancers.get(made.id, zone_id=ZONE_ID) == made

    replaced = client.load_balancers.update(made.id, zone_id=ZONE_ID, name="www.example.com",
                                            default_pools=[ams.id], fallback_pool=ams.id)
    assert (replaced.id, replaced.created_on) == (made.id, made.created_on)
    assert (replaced.country_pools, replaced.region_pools, replaced.steering_policy, replaced.proxied) == (
        {}, {}, "", False)  # PUT replaces
    edited = client.load_balancers.edit(made.id, zone_id=ZONE_ID, region_pools={"WEU": [fra.id]})
    assert (edited.default_pools, edited.region_pools) == ([ams.id], {"WEU": [fra.id]})
    assert fake.load_balancers[made.id]["region_pools"] == {"WEU": [fra.id]}

    assert client.load_balancers.delete(made.id, zone_id=ZONE_ID).id == made.id
    assert fake.load_balancers == {}
    assert refusal(lambda: client.load_balancers.get(made.id, zone_id=ZONE_ID))[:2] == (404, 1001)
    # create, list, get, update, edit, delete and get again, all on the zone's path
    assert len([path for _, path in fake.calls if path.startswith(f"/zones/{ZONE_ID}/load_balancers")]) == 7


@pytest.mark.parametrize("fields, problem", [
    ({"region_pools": {"EUROPE": ["$fra"]}}, "region_pools: 'EUROPE'"),
    ({"region_pools": {"WEU": [UNKNOWN_ID]}}, "region_pools.WEU: pool"),
    ({"country_pools": {"UK": ["$fra"]}}, "country_pools: 'UK'"),
    ({"country_pools": {"de": ["$fra"]}}, "country_pools: 'de'"),
    ({"country_pools": {"DE": [UNKNOWN_ID]}}, "country_pools.DE: pool"),
    ({"pop_pools": {"frankfurt": ["$fra"]}}, "pop_pools: 'frankfurt'"),
    ({"default_pools": [UNKNOWN_ID]}, "default_pools: pool"),
    ({"default_pools": []}, "default_pools: must name at least one pool"),
    ({"fallback_pool": UNKNOWN_ID}, "fallback_pool: pool"),
    ({"name": "www.example.org"}, "name: invalid hostname"),
    ({"name": "www"}, "name: invalid hostname"),
    ({"steering_policy": "nearest"}, "steering_policy"),
    ({"random_steering": {"pool_weights": {UNKNOWN_ID: 0.5}}}, "random_steering.pool_weights: pool"),
])
def test_load_balancers_the_api_would_not_take_are_refused(fake, client, fields, problem):
    fra = make_pool(client, "fra-1")
    fields = {k: json.loads(json.dumps(v).replace("$fra", fra.id)) for k, v in fields.items()}
    body = {"name": "www.example.com", "default_pools": [fra.id], "fallback_pool": fra.id, **fields}
    status, code, message = refusal(lambda: client.load_balancers.create(zone_id=ZONE_ID, **body))
    assert (status, code) == (400, 1002)
    assert message.startswith(problem) and message.endswith(": validation failed")
    assert fake.load_balancers == {}


@pytest.mark.parametrize("missing", ["fallback_pool", "default_pools", "name"])
def test_a_load_balancer_without_a_required_field_is_refused(fake, client, raw, missing):
    fra = make_pool(client, "fra-1")
    body = {"name": "www.example.com", "default_pools": [fra.id], "fallback_pool": fra.id}
    del body[missing]
    answer = raw.post(f"{fake.url}/zones/{ZONE_ID}/load_balancers", json=body)
    assert answer.status_code == 400
    assert answer.json()["errors"] == [{"code": 1002, "message": f"{missing}: required: validation failed"}]
    assert fake.load_balancers == {}


def test_a_load_balancer_name_is_taken_once_per_zone(fake, client):
    fra = make_pool(client, "fra-1")
    first = make_lb(client, [fra], name="www.example.com")
    assert refusal(lambda: make_lb(client, [fra], name="WWW.example.com."))[:2] == (400, 1003)
    second = make_lb(client, [fra], name="api.example.com")
    assert refusal(lambda: client.load_balancers.edit(second.id, zone_id=ZONE_ID, name="www.example.com"))[:2] == (
        400, 1003)
    assert sorted(lb["name"] for lb in fake.load_balancers.values()) == ["api.example.com", "www.example.com"]
    assert first.id in fake.load_balancers


# -- what is in use is not deleted -------------------------------------------------------------------------------

@pytest.mark.parametrize("use", ["default_pools", "fallback_pool", "country_pools", "region_pools"])
def test_a_pool_a_load_balancer_uses_is_not_deleted(fake, client, use):
    spare, used = make_pool(client, "spare"), make_pool(client, "used")
    steering = {"default_pools": {"default_pools": [used.id, spare.id]},
                "fallback_pool": {"fallback_pool": used.id},
                "country_pools": {"country_pools": {"DE": [used.id]}},
                "region_pools": {"region_pools": {"WEU": [used.id]}}}[use]
    lb = client.load_balancers.create(zone_id=ZONE_ID, **{"name": "www.example.com", "default_pools": [spare.id],
                                                          "fallback_pool": spare.id, **steering})

    assert refusal(lambda: client.load_balancers.pools.delete(used.id, account_id=ACCOUNT)) == (
        412, 1005, "This object is referenced by other objects, delete them first.")
    assert used.id in fake.pools

    client.load_balancers.delete(lb.id, zone_id=ZONE_ID)
    client.load_balancers.pools.delete(used.id, account_id=ACCOUNT)
    assert list(fake.pools) == [spare.id]


def test_a_monitor_a_pool_uses_is_not_deleted(fake, client):
    monitor = make_monitor(client)
    pool = make_pool(client, "fra-1", monitor=monitor.id)
    assert refusal(lambda: client.load_balancers.monitors.delete(monitor.id, account_id=ACCOUNT))[:2] == (412, 1005)
    assert monitor.id in fake.monitors

    assert refusal(lambda: client.load_balancers.pools.edit(pool.id, account_id=ACCOUNT, monitor=UNKNOWN_ID))[:2] == (
        400, 1002)
    client.load_balancers.pools.update(pool.id, account_id=ACCOUNT, name="fra-1",  # PUT without a monitor drops it
                                       origins=[{"name": "fra-1", "address": "192.0.2.1"}])
    client.load_balancers.monitors.delete(monitor.id, account_id=ACCOUNT)
    assert fake.monitors == {}


# -- identifiers that name nothing -------------------------------------------------------------------------------

@pytest.mark.parametrize("call, path", [
    (lambda c: c.load_balancers.pools.list(account_id=UNKNOWN_ID), f"/accounts/{UNKNOWN_ID}/load_balancers/pools"),
    (lambda c: c.load_balancers.monitors.list(account_id=UNKNOWN_ID), f"/accounts/{UNKNOWN_ID}/load_balancers/monitors"),
    (lambda c: c.load_balancers.list(zone_id=UNKNOWN_ID), f"/zones/{UNKNOWN_ID}/load_balancers"),
])
def test_an_unknown_account_or_zone_cannot_be_routed_to(client, call, path):
    assert refusal(lambda: call(client)) == (
        404, 7003, f"Could not route to {path}, perhaps your object identifier is invalid?")


# -- limits, tokens, faults --------------------------------------------------------------------------------------

def test_the_global_limit_answers_429_with_retry_after_once_it_is_spent():
    with FakeCloudflareLB(api_limit=3, api_window=2) as fake, sdk(fake) as client:
        for _ in range(3):
            client.load_balancers.pools.list(account_id=ACCOUNT)
        with pytest.raises(cloudflare.RateLimitError) as caught:
            client.load_balancers.monitors.list(account_id=ACCOUNT)
        headers = caught.value.response.headers
        assert caught.value.status_code == 429 and caught.value.errors[0].code == 971
        assert 1 <= int(headers["Retry-After"]) <= 2
        assert headers["Ratelimit-Policy"] == '"default";q=3;w=2' and headers["Ratelimit"].startswith('"default";r=0;')
        assert fake.stats()["rejected_429"] == 1

        time.sleep(int(headers["Retry-After"]))
        assert list(client.load_balancers.monitors.list(account_id=ACCOUNT)) == []


def test_by_default_the_limit_is_cloudflares_1200_in_five_minutes(fake, raw):
    answer = raw.get(f"{fake.url}/accounts/{ACCOUNT}/load_balancers/pools")
    assert answer.headers["Ratelimit-Policy"] == '"default";q=1200;w=300'
    assert answer.headers["Ratelimit"].startswith('"default";r=1199;')


def test_a_wrong_token_is_refused(fake):
    with sdk(fake, token="wrong-token") as client:
        with pytest.raises(cloudflare.PermissionDeniedError) as caught:
            make_pool(client, "fra-1")
    assert (caught.value.status_code, caught.value.errors[0].code, caught.value.errors[0].message) == (
        403, 10000, "Authentication error")
    assert fake.pools == {}


def test_queued_faults_reach_the_load_balancing_routes(fake, client):
    fake.fail_next(status=503)
    with pytest.raises(cloudflare.InternalServerError):
        make_pool(client, "fra-1")
    fake.reset_next_connection()
    with pytest.raises(cloudflare.APIConnectionError):
        make_pool(client, "fra-1")
    assert fake.pools == {}
    assert make_pool(client, "fra-1").name == "fra-1"


# -- pagination --------------------------------------------------------------------------------------------------

def test_lists_come_on_one_page_unless_paged():
    with FakeCloudflareLB() as fake, sdk(fake) as client:
        for i in range(7):
            make_pool(client, f"node-{i}")
        page = client.load_balancers.pools.list(account_id=ACCOUNT)
        assert len(page.result) == 7 and page.result_info["total_count"] == 7

    with FakeCloudflareLB(list_per_page=3) as fake, sdk(fake) as client:
        made = [make_pool(client, f"node-{i}").id for i in range(7)]
        first = client.load_balancers.pools.list(account_id=ACCOUNT)
        # the SDK reads these lists as a single page and never asks for the next one itself
        assert len(list(first)) == 3
        assert first.result_info == {"page": 1, "per_page": 3, "count": 3, "total_count": 7, "total_pages": 3}

        seen, number = [], 1
        while True:
            page = client.load_balancers.pools.list(account_id=ACCOUNT, extra_query={"page": number})
            seen += [pool.id for pool in page.result]
            if number >= page.result_info["total_pages"]:
                break
            number += 1
        assert seen == made and number == 3

        wide = client.load_balancers.pools.list(account_id=ACCOUNT, extra_query={"per_page": 10})
        assert len(wide.result) == 7
        assert client.load_balancers.pools.list(account_id=ACCOUNT, extra_query={"page": 4}).result == []
        assert refusal(lambda: client.load_balancers.pools.list(account_id=ACCOUNT, extra_query={"page": 0}))[:2] == (
            400, 1002)


# -- the fake as a program ---------------------------------------------------------------------------------------

def test_the_fake_runs_as_a_program_and_reports_what_it_holds(tmp_path):
    port_file, stats_file = tmp_path / "port", tmp_path / "stats.json"
    process, port = launch("tests.fakes.cloudflare_lb", port_file, "--stats-file", str(stats_file), "--api-limit", "3")
    try:
        url = f"http://127.0.0.1:{port}/client/v4"
        with Cloudflare(api_token=DEFAULT_TOKEN, base_url=url, max_retries=0, timeout=5) as client:
            monitor = make_monitor(client)
            make_pool(client, "fra-1", monitor=monitor.id)
            client.load_balancers.pools.list(account_id=ACCOUNT)
            with pytest.raises(cloudflare.RateLimitError):
                client.load_balancers.pools.list(account_id=ACCOUNT)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0 and out == b"" and err == b""
    assert json.loads(stats_file.read_text()) == {"requests": 4, "purge_calls": 0, "urls": 0, "rejected_429": 1,
                                                  "monitors": 1, "pools": 1, "load_balancers": 0}
