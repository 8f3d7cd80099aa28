"""`routing plan` / `routing apply` at Route 53: the rules as geolocation records, weighted sets and failover pairs, in moto."""

from __future__ import annotations

import hashlib
import json
import time

import boto3
import pytest

from tests.fakes.moto_server import TEST_KEYS
from tests.routing_state import add_rule

# Nodes with public names and documentation addresses: Route 53 health checks ask the names.
NODES = {
    "fra-1": ("DE", "198.51.100.10"),
    "ams-1": ("NL", "198.51.100.20"),
    "par-1": ("FR", "198.51.100.30"),
    "iad-1": ("US", "198.51.100.40"),
    "sfo-1": ("US", "198.51.100.50"),
    "zrh-1": ("CH", "198.51.100.60"),
    "lon-1": ("GB", "198.51.100.70"),
}


@pytest.fixture(scope="module")
def admin(moto):
    return boto3.client("route53", endpoint_url=moto.url, **TEST_KEYS)


@pytest.fixture
def zone(admin) -> str:
    created = admin.create_hosted_zone(Name="example.com", CallerReference=f"zone-{time.monotonic_ns()}")
    return created["HostedZone"]["Id"].split("/")[-1]


def write_config(path, zone: str, url: str, *, name: str = "dns", record: str = "www.example.com", **extra) -> str:
    lines = [f"[providers.{name}]", 'kind = "route53"', f'hosted_zone_id = "{zone}"', f'record_name = "{record}"',
             f'endpoint_url = "{url}"']
    lines += [f"{key} = {value!r}".replace("'", '"') if isinstance(value, str) else f"{key} = {str(value).lower()}"
              for key, value in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def config(isolated, zone, moto, aws_env, monkeypatch) -> str:
    path = write_config(isolated / "edgectl.toml", zone, moto.url)
    monkeypatch.setenv("EDGECTL_CONFIG", path)
    return path


def add_nodes(cli, *names: str) -> None:
    for name in names:
        country, address = NODES[name]
        run = cli("nodes", "add", name, "-e", f"https://{name}.edge.example.net", "--country", country,
                  "--address", address, "-q")
        assert run.exit_code == 0, run.stderr


@pytest.fixture
def estate(cli, config):
    """The default to iad-1, Europe weighted between fra-1 and ams-1, the Netherlands to ams-1 failing over to fra-1."""
    add_nodes(cli, "fra-1", "ams-1", "iad-1")
    add_rule(cli, "--default", "--target", "iad-1")
    add_rule(cli, "--continent", "EU", "--target", "fra-1", "--weight", "60")
    add_rule(cli, "--continent", "EU", "--target", "ams-1", "--weight", "40")
    add_rule(cli, "--country", "NL", "--target", "ams-1", "--failover", "fra-1")


def plan(cli, *args: str) -> dict:
    run = cli("routing", "plan", *args, "-o", "json")
    assert run.exit_code == 0, run.stderr
    return run.json()


def apply(cli, *args: str) -> dict:
    run = cli("routing", "apply", "--yes", *args, "-o", "json")
    assert run.exit_code == 0, run.stderr
    return run.json()


def records(admin, zone: str) -> dict[tuple[str, str, str | None], dict]:
    found, params = {}, {"HostedZoneId": zone}
    while True:
        page = admin.list_resource_record_sets(**params)
        for rrset in page["ResourceRecordSets"]:
            found[(rrset["Name"], rrset["Type"], rrset.get("SetIdentifier"))] = rrset
        if not page.get("IsTruncated"):
            return found
        params = {"HostedZoneId": zone, "StartRecordName": page["NextRecordName"],
                  "StartRecordType": page["NextRecordType"]}


def geo_records(admin, zone: str, name: str = "www.example.com.") -> dict[str, dict]:
    """The geolocation records at `name`, by their GeoLocation written as edgectl writes it."""
    out = {}
    for (rname, _, _), rrset in records(admin, zone).items():
        geo = rrset.get("GeoLocation")
        if rname == name and geo:
            code = (geo.get("ContinentCode") and f"continent:{geo['ContinentCode']}") or \
                   (geo.get("SubdivisionCode") and f"subdivision:US-{geo['SubdivisionCode']}") or \
                   ("*" if geo["CountryCode"] == "*" else f"country:{geo['CountryCode']}")
            out[code] = rrset
    return out


def health_checks(admin) -> dict[str, dict]:
    return {hc["Id"]: hc for hc in admin.list_health_checks()["HealthChecks"]}


# -- plan and apply ------------------------------------------------------------------------------

def test_plan_shows_the_records_and_changes_nothing(cli, estate, admin, zone):
    before = records(admin, zone)
    shown = plan(cli)
    provider = shown["providers"][0]
    assert provider["provider"] == "dns" and provider["kind"] == "route53" and provider["existing"] == 0
    keys = {(c["action"], c["type"], c["key"]) for c in provider["changes"]}
    assert ("create", "record", "www.example.com. A edgectl:default:geo:*") in keys
    assert ("create", "record", "www.example.com. A edgectl:default:geo:continent:EU") in keys
    assert ("create", "record", "www.example.com. A edgectl:default:geo:country:NL") in keys
    assert ("create", "ownership", "_edgectl.www.example.com. TXT") in keys
    assert {k for a, t, k in keys if t == "health_check"} == {f"{n}@{k.split('@')[1]}" for a, t, k in keys
                                                               if t == "health_check" for n in [k.split("@")[0]]}
    assert sorted(k.split("@")[0] for a, t, k in keys if t == "health_check") == ["ams-1", "fra-1", "iad-1"]
    assert any("latency thresholds" in w for w in provider["warnings"])
    assert records(admin, zone) == before  # a plan sends nothing


def test_apply_publishes_what_resolve_says_and_a_second_plan_is_empty(cli, estate, admin, zone):
    report = apply(cli)
    assert report["status"] == "synced" and all(s["state"] == "synced" for s in report["steps"])
    geo = geo_records(admin, zone)
    assert set(geo) == {"*", "continent:EU", "country:NL"}
    # the default: iad-1's own address with its health check, so an unhealthy node falls back
    assert [r["Value"] for r in geo["*"]["ResourceRecords"]] == ["198.51.100.40"]
    checks = health_checks(admin)
    assert checks[geo["*"]["HealthCheckId"]]["HealthCheckConfig"]["FullyQualifiedDomainName"] == "iad-1.edge.example.net"
    # Europe: an alias to a weighted set 60/40, each with its node's health check
    eu = geo["continent:EU"]["AliasTarget"]
    assert eu["EvaluateTargetHealth"] is True
    weighted = {r["SetIdentifier"]: r for (name, _, _), r in records(admin, zone).items()
                if name == eu["DNSName"].rstrip(".") + "."}
    assert {r["Weight"] for r in weighted.values()} == {60, 40}
    assert {r["ResourceRecords"][0]["Value"]: r["Weight"] for r in weighted.values()} == {
        "198.51.100.10": 60, "198.51.100.20": 40}
    # the Netherlands: an alias to a failover pair, ams-1 PRIMARY with its health check, fra-1 SECONDARY
    pair_name = geo["country:NL"]["AliasTarget"]["DNSName"].rstrip(".") + "."
    pair = {r["Failover"]: r for (name, _, _), r in records(admin, zone).items() if name == pair_name}
    assert pair["PRIMARY"]["ResourceRecords"][0]["Value"] == "198.51.100.20" and pair["PRIMARY"]["HealthCheckId"]
    assert pair["SECONDARY"]["ResourceRecords"][0]["Value"] == "198.51.100.10"
    # resolve agrees, place by place
    for place, node in (("NL", "ams-1"), ("JP", "iad-1")):
        run = cli("routing", "resolve", place, "-o", "json")
        assert run.json()["node"] == node
    # ownership as external-dns writes it, and health checks marked as ours
    txt = records(admin, zone)[("_edgectl.www.example.com.", "TXT", None)]
    assert txt["ResourceRecords"] == [{"Value": '"heritage=edgectl,edgectl/owner=default,edgectl/record=www.example.com."'}]
    prefix = f"edgectl:default:{hashlib.sha256(f'{zone} www.example.com.'.encode()).hexdigest()[:8]}:"
    ours = [hc for hc in checks.values() if hc["CallerReference"].startswith(prefix)]
    assert len(ours) == 3 and all(len(hc["CallerReference"]) <= 64 for hc in ours)
    tags = admin.list_tags_for_resources(ResourceType="healthcheck", ResourceIds=[hc["Id"] for hc in ours])
    assert sorted(dict((t["Key"], t["Value"]) for t in s["Tags"])["edgectl:node"]
                  for s in tags["ResourceTagSets"]) == ["ams-1", "fra-1", "iad-1"]
    second = plan(cli)
    assert second["empty"] is True and second["providers"][0]["existing"] == 11
    again = cli("routing", "apply", "--yes")
    assert again.exit_code == 0 and "no changes" in again.stderr + again.stdout


def test_a_rule_change_is_an_update_field_by_field(cli, estate, admin, zone):
    apply(cli)
    rules = {(r["source"], r["target"]): r["id"] for r in cli("routing", "rules", "list", "-o", "json").json()}
    assert cli("routing", "rules", "update", rules[("continent:EU", "fra-1")], "--weight", "20").exit_code == 0
    provider = plan(cli)["providers"][0]
    assert provider["counts"] == {"create": 0, "update": 1, "delete": 0}
    change = provider["changes"][0]
    assert change["key"].endswith("edgectl:default:continent-eu:fra-1")
    assert change["fields"] == {"weight": {"old": 60, "new": 20}}
    table = cli("routing", "plan")
    assert "weight: 60 -> 20" in table.stdout
    apply(cli)
    weights = {r["ResourceRecords"][0]["Value"]: r["Weight"] for r in records(admin, zone).values() if "Weight" in r}
    assert weights == {"198.51.100.10": 20, "198.51.100.20": 40}
    assert plan(cli)["empty"]


def test_a_node_no_rule_uses_loses_its_records_and_its_health_check(cli, estate, admin, zone):
    apply(cli)
    before = {hc["Id"] for hc in health_checks(admin).values() if hc["CallerReference"].startswith("edgectl:")}
    rules = {(r["source"], r["target"]): r["id"] for r in cli("routing", "rules", "list", "-o", "json").json()}
    assert cli("routing", "rules", "remove", rules[("continent:EU", "ams-1")], rules[("country:NL", "ams-1")]).exit_code == 0
    provider = plan(cli)["providers"][0]
    assert provider["unsafe"] == "provider dns: deletes 6 of 11 (55% > 30%)"
    deleted = {(c["type"], c["key"].split("@")[0]) for c in provider["changes"] if c["action"] == "delete"}
    assert ("health_check", "ams-1") in deleted
    report = apply(cli, "--force")
    # record batches before the health check they stop using is deleted
    summaries = [s["summary"] for s in report["steps"]]
    assert summaries.index(next(s for s in summaries if s.startswith("change batch"))) < \
        summaries.index(next(s for s in summaries if s.startswith("delete health check")))
    after = {hc["Id"] for hc in health_checks(admin).values() if hc["CallerReference"].startswith("edgectl:")}
    assert len(after) == len(before) - 1
    assert set(geo_records(admin, zone)) == {"*", "continent:EU"}
    assert plan(cli)["empty"]


def test_a_drained_node_is_not_published(cli, estate, admin, zone):
    apply(cli)
    assert cli("nodes", "drain", "ams-1", "-q").exit_code == 0
    apply(cli, "--force")
    values = {v["Value"] for r in records(admin, zone).values() for v in r.get("ResourceRecords", [])}
    assert "198.51.100.20" not in values and "198.51.100.10" in values
    # with ams-1 out, the Netherlands goes to its failover node, as resolve says
    assert cli("routing", "resolve", "NL", "-o", "json").json()["node"] == "fra-1"
    nl = geo_records(admin, zone)["country:NL"]
    assert nl["ResourceRecords"][0]["Value"] == "198.51.100.10"


# -- ownership -----------------------------------------------------------------------------------

def test_records_edgectl_does_not_own_are_listed_and_left_alone(cli, estate, admin, zone):
    admin.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {"Name": "www.example.com", "Type": "TXT", "TTL": 300,
                                                   "ResourceRecords": [{"Value": '"google-site-verification=x"'}]}},
        {"Action": "CREATE", "ResourceRecordSet": {"Name": "api.example.com", "Type": "A", "TTL": 300,
                                                   "ResourceRecords": [{"Value": "192.0.2.1"}]}}]})
    provider = plan(cli)["providers"][0]
    assert [r["key"] for r in provider["not_managed"]] == ["www.example.com. TXT -"]
    apply(cli)
    found = records(admin, zone)
    assert ("www.example.com.", "TXT", None) in found and ("api.example.com.", "A", None) in found
    assert plan(cli)["empty"]


def test_a_record_of_the_same_type_not_owned_is_refused(cli, estate, admin, zone):
    admin.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {"Name": "www.example.com", "Type": "A", "TTL": 300,
                                                   "ResourceRecords": [{"Value": "192.0.2.1"}]}}]})
    run = cli("routing", "plan")
    assert run.exit_code == 2
    assert "www.example.com. already has A records edgectl does not own" in run.stderr
    assert "Traceback" not in run.stderr


def test_two_owners_in_one_zone_never_touch_each_others_records(cli, estate, admin, zone, moto, isolated):
    apply(cli)
    mine = records(admin, zone)
    other = write_config(isolated / "other.toml", zone, moto.url, record="api.example.com", owner="green")
    shown = cli("--config", other, "routing", "plan", "-o", "json").json()["providers"][0]
    assert shown["existing"] == 0 and shown["not_managed"] == []
    assert cli("--config", other, "routing", "apply", "--yes").exit_code == 0
    theirs = {k: v for k, v in records(admin, zone).items() if k not in mine}
    assert theirs and all(k[0].endswith("api.example.com.") for k in theirs)
    assert all(v == records(admin, zone)[k] for k, v in mine.items())
    assert plan(cli)["empty"] and cli("--config", other, "routing", "plan", "-o", "json").json()["empty"]
    # the same record name under another owner is refused: its TXT record says who steers it
    clash = write_config(isolated / "clash.toml", zone, moto.url, owner="green")
    run = cli("--config", clash, "routing", "plan")
    assert run.exit_code == 2 and "is steered by owner default" in run.stderr


# -- unsafe plans --------------------------------------------------------------------------------

def test_a_plan_changing_too_much_is_refused_unless_forced(cli, estate, admin, zone):
    apply(cli)  # 11 managed objects
    rules = {(r["source"], r["target"]): r["id"] for r in cli("routing", "rules", "list", "-o", "json").json()}
    assert cli("routing", "rules", "remove", rules[("continent:EU", "fra-1")], rules[("continent:EU", "ams-1")],
               rules[("country:NL", "ams-1")]).exit_code == 0
    before = records(admin, zone)
    run = cli("routing", "apply", "--yes")
    assert run.exit_code == 2
    assert "unsafe plan: provider dns: deletes" in run.stderr and "> 30%" in run.stderr
    assert records(admin, zone) == before
    assert cli("routing", "apply", "--yes", "--force").exit_code == 0
    assert set(geo_records(admin, zone)) == {"*"}
    assert plan(cli)["empty"]


def test_the_thresholds_are_settings_of_the_provider(cli, estate, admin, zone, moto, isolated, monkeypatch):
    apply(cli)
    path = write_config(isolated / "edgectl.toml", zone, moto.url, unsafe_delete_share=0.9)
    monkeypatch.setenv("EDGECTL_CONFIG", path)
    rules = {(r["source"], r["target"]): r["id"] for r in cli("routing", "rules", "list", "-o", "json").json()}
    cli("routing", "rules", "remove", rules[("continent:EU", "fra-1")], rules[("continent:EU", "ams-1")],
        rules[("country:NL", "ams-1")])
    assert cli("routing", "apply", "--yes").exit_code == 0


# -- bad input -----------------------------------------------------------------------------------

def test_a_provider_without_routing_is_refused(cli, estate, isolated, monkeypatch, config):
    path = isolated / "edgectl.toml"
    path.write_text(path.read_text() + '\n[providers.cdn]\nkind = "cloudfront"\ndistribution_id = "E2QWRUHAPOMQZL"\n')
    run = cli("routing", "plan", "--provider", "cdn")
    assert run.exit_code == 2
    assert "provider cdn (kind cloudfront) has no routing capability" in run.stderr


def test_an_unknown_zone_is_one_line_and_exit_2(cli, estate, isolated, moto, monkeypatch):
    monkeypatch.setenv("EDGECTL_CONFIG", write_config(isolated / "edgectl.toml", "ZNOSUCHZONE0000", moto.url))
    run = cli("routing", "plan")
    assert run.exit_code == 2
    assert run.stderr.startswith("error: provider dns:") and "NoSuchHostedZone" in run.stderr
    assert "Traceback" not in run.stderr


def test_mixed_address_types_and_private_health_targets_are_refused(cli, config):
    add_nodes(cli, "fra-1")
    assert cli("nodes", "add", "v6-1", "-e", "https://v6-1.edge.example.net", "--country", "DE",
               "--address", "2001:db8::1", "-q").exit_code == 0
    add_rule(cli, "--default", "--target", "fra-1")
    add_rule(cli, "--country", "DE", "--target", "v6-1")
    run = cli("routing", "plan")
    assert run.exit_code == 2 and "mix record types (A: fra-1; AAAA: v6-1)" in run.stderr
    assert cli("nodes", "add", "lo-1", "-e", "http://127.0.0.1:9", "--country", "FR", "--address", "198.51.100.99",
               "-q").exit_code == 0
    rules = {(r["source"], r["target"]): r["id"] for r in cli("routing", "rules", "list", "-o", "json").json()}
    cli("routing", "rules", "remove", rules[("country:DE", "v6-1")])
    add_rule(cli, "--country", "FR", "--target", "lo-1")
    run = cli("routing", "plan")
    assert run.exit_code == 2 and "node lo-1: its health check would ask 127.0.0.1" in run.stderr


def test_no_default_rule_is_refused(cli, config):
    add_nodes(cli, "fra-1")
    add_rule(cli, "--country", "DE", "--target", "fra-1")
    run = cli("routing", "plan")
    assert run.exit_code == 2 and "no default rule" in run.stderr


# -- batches -------------------------------------------------------------------------------------

def test_a_large_plan_is_cut_into_batches_within_route53_limits(cli, config, admin, zone, isolated):
    from edgectl.providers.route53 import MAX_RECORDS_PER_BATCH, batch_cost, change_batches
    from edgectl.providers.steering import Change
    from edgectl.routing.geo import geo_data

    add_nodes(cli, "fra-1", "ams-1", "iad-1")
    countries = sorted(geo_data().countries)
    rules = ["[[rules]]\ndefault = true\ntarget = \"iad-1\"\n"]
    for code in countries:
        rules += [f'[[rules]]\ncountry = "{code}"\ntarget = "fra-1"\nweight = 60\n',
                  f'[[rules]]\ncountry = "{code}"\ntarget = "ams-1"\nweight = 40\n']
    (isolated / "rules.toml").write_text("\n".join(rules))
    assert cli("routing", "rules", "apply", "-f", isolated / "rules.toml", "--yes", "-q").exit_code == 0
    shown = plan(cli)["providers"][0]
    batches = [s for s in shown["steps"] if s["summary"].startswith("change batch")]
    assert len(batches) >= 2  # about 750 records, 1,500 elements once UPSERT counts twice
    report = apply(cli)  # moto refuses a batch over 1,000 records itself
    assert report["status"] == "synced"
    assert len(geo_records(admin, zone)) == len(countries) + 1
    assert plan(cli)["empty"]

    # each batch within the limits, and the weighted sets written before the aliases that point at them
    def change(name: str, values: list[str], action: str = "create", **extra) -> Change:
        fields = {"name": name, "type": "A", "set_identifier": f"edgectl:t:{name}:{len(values)}", "ttl": 60,
                  "values": values, **extra}
        return Change(action, "record", name, None if action == "create" else fields,
                      fields if action == "create" else None)

    aliases = [change(f"www{i}.example.com.", [], alias=f"_edgectl-p{i}-w.www.example.com.") for i in range(300)]
    targets = [change(f"_edgectl-p{i}-w.www.example.com.", ["198.51.100.1", "198.51.100.2"]) for i in range(300)]
    long_values = [change(f"_edgectl-long{i}-w.www.example.com.", ["x" * 4000], action="delete") for i in range(10)]
    steps = change_batches(targets + aliases + long_values)
    for step in steps:
        assert sum(batch_cost(c)[0] for c in step.changes) <= MAX_RECORDS_PER_BATCH
        assert sum(batch_cost(c)[1] for c in step.changes) <= 32000
    flat = [c.key for s in steps for c in s.changes]
    assert flat == [c.key for c in targets + aliases + long_values]
    assert len(steps) >= 3


def test_a_kind_declaring_routing_must_keep_its_contract():
    from edgectl.providers.base import Provider

    class Loose(Provider):
        kind = "loose"
        capabilities = frozenset({"routing"})

    assert "routing part of the contract" in Loose.contract_problem()


def test_one_owner_steering_two_names_keeps_each_names_health_checks(cli, estate, admin, zone, moto, isolated):
    apply(cli)
    second = write_config(isolated / "api.toml", zone, moto.url, record="api.example.com")
    assert cli("--config", second, "routing", "apply", "--yes").exit_code == 0
    # health checks belong to the account: each name's plan sees only its own
    assert plan(cli)["empty"] and cli("--config", second, "routing", "plan", "-o", "json").json()["empty"]
    ours = [hc for hc in admin.list_health_checks()["HealthChecks"] if hc["CallerReference"].startswith("edgectl:")]
    assert len({hc["CallerReference"].split(":")[2] for hc in ours}) >= 2


def test_a_node_publishing_an_address_no_client_can_reach_is_refused(cli, config):
    assert cli("nodes", "add", "lo-1", "-e", "http://127.0.0.1:9", "--country", "DE", "-q").exit_code == 0
    add_rule(cli, "--default", "--target", "lo-1")
    run = cli("routing", "plan")
    assert run.exit_code == 2
    assert "node lo-1 publishes 127.0.0.1, which no client can reach" in run.stderr
    assert "edgectl nodes update lo-1 --address ADDRESS" in run.stderr


@pytest.mark.parametrize("change, message", [
    ({"geo": "country:XX"}, "country code 'XX' is not one Route 53 accepts"),
    ({"geo": "continent:EUR"}, "continent code 'EUR' is not one Route 53 accepts"),
    ({"geo": "subdivision:DE-BY"}, "subdivision code 'DE-BY' is not one Route 53 accepts"),
    ({"weight": 256}, "weight 256 is outside Route 53's 0-255"),
    ({"values": ["2001:db8::1"]}, "2001:db8::1 is not a value for a A record"),
])
def test_what_route53_or_moto_would_take_wrongly_is_refused_before_sending(change, message):
    from edgectl.providers.route53 import validate
    from edgectl.providers.steering import Resource, SteeringRefused

    fields = {"name": "www.example.com.", "type": "A", "set_identifier": "edgectl:t:x", "ttl": 60,
              "values": ["198.51.100.1"], **({"geo": "country:DE"} if "weight" not in change else {}), **change}
    with pytest.raises(SteeringRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate([Resource("record", "r", fields)])


def test_mixed_policies_and_a_repeated_set_identifier_are_refused():
    from edgectl.providers.route53 import validate
    from edgectl.providers.steering import Resource, SteeringRefused

    base = {"name": "www.example.com.", "type": "A", "ttl": 60, "values": ["198.51.100.1"]}
    geo = Resource("record", "a", {**base, "set_identifier": "edgectl:t:a", "geo": "country:DE"})
    weighted = Resource("record", "b", {**base, "set_identifier": "edgectl:t:b", "weight": 10})
    with pytest.raises(SteeringRefused, match="mixes routing policies"):
        validate([geo, weighted])
    again = Resource("record", "c", {**base, "set_identifier": "edgectl:t:a", "geo": "country:FR"})
    with pytest.raises(SteeringRefused, match="the SetIdentifier is used twice"):
        validate([geo, again])
    validate([geo, Resource("record", "d", {**base, "set_identifier": "edgectl:t:d", "geo": "continent:EU"})])


def test_aws_secrets_never_reach_debug_output_or_the_state(cli, estate, monkeypatch, state_path):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SecretKey0123456789")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "TokSecret0123456789")
    run = cli("--debug", "routing", "apply", "--yes")
    assert run.exit_code == 0, run.stderr
    assert "X-Amz-Security-Token" in run.stderr  # botocore did log the header
    assert "TokSecret0123456789" not in run.stderr and "SecretKey0123456789" not in run.stderr
    data = state_path.read_bytes() + b"".join(p.read_bytes() for p in state_path.parent.glob("state.db-wal"))
    assert b"TokSecret0123456789" not in data and b"SecretKey0123456789" not in data


def test_a_record_name_outside_the_zone_is_refused_before_anything_is_sent(cli, estate, isolated, zone, moto,
                                                                          monkeypatch, admin):
    monkeypatch.setenv("EDGECTL_CONFIG", write_config(isolated / "edgectl.toml", zone, moto.url,
                                                      record="www.other.org"))
    before = len(admin.list_health_checks()["HealthChecks"])
    run = cli("routing", "apply", "--yes")
    assert run.exit_code == 2 and "record_name www.other.org. is not in zone example.com." in run.stderr
    assert len(admin.list_health_checks()["HealthChecks"]) == before
    (isolated / "edgectl.toml").write_text('[providers.dns]\nkind = "route53"\nhosted_zone_id = "Z1"\nrecord_name = 5\n')
    run = cli("routing", "plan")
    assert run.exit_code == 2 and "record_name: a DNS name" in run.stderr


def test_an_unknown_kind_is_named_when_no_routing_provider_is_left(cli, isolated, monkeypatch):
    (isolated / "edgectl.toml").write_text('[providers.lb]\nkind = "cloudflare_lbb"\n')
    monkeypatch.setenv("EDGECTL_CONFIG", str(isolated / "edgectl.toml"))
    run = cli("routing", "plan")
    assert run.exit_code == 2 and "unknown provider kind 'cloudflare_lbb'" in run.stderr



# -- what Route 53 answers is what resolve says -------------------------------------------------

def test_a_rule_for_part_of_a_split_country_becomes_state_records(cli, config, admin, zone):
    add_nodes(cli, "iad-1", "sfo-1")
    add_rule(cli, "--default", "--target", "iad-1")
    add_rule(cli, "--region", "WNAM", "--target", "sfo-1")  # Cloudflare's western North America: part of the US
    assert cli("routing", "resolve", "US-CA", "-o", "json").json()["node"] == "sfo-1"
    assert cli("routing", "resolve", "US-NY", "-o", "json").json()["node"] == "iad-1"
    apply(cli)
    geo = geo_records(admin, zone)
    assert geo["subdivision:US-CA"]["ResourceRecords"][0]["Value"] == "198.51.100.50"
    assert "subdivision:US-NY" not in geo and geo["*"]["ResourceRecords"][0]["Value"] == "198.51.100.40"
    assert plan(cli)["empty"]


def test_a_country_falls_back_to_its_region_set_before_its_continent(cli, config, admin, zone):
    with open(config, "a") as handle:
        handle.write('\n[routing.regions]\ndach = ["DE", "AT", "CH"]\n')
    add_nodes(cli, "fra-1", "zrh-1", "ams-1", "iad-1")
    add_rule(cli, "--default", "--target", "iad-1")
    add_rule(cli, "--country", "DE", "--target", "fra-1")
    add_rule(cli, "--region", "dach", "--target", "zrh-1")
    add_rule(cli, "--continent", "EU", "--target", "ams-1")
    moved = cli("routing", "simulate", "--fail", "fra-1", "--locations", "-", "-o", "json", input="DE\n").json()
    assert moved["moves"][0]["after"] == "zrh-1"
    apply(cli)
    geo = geo_records(admin, zone)
    # DE: fra-1, then the dach set's zrh-1 (not Europe's ams-1, which Route 53 would fall back to by itself)
    pair_name = geo["country:DE"]["AliasTarget"]["DNSName"].rstrip(".") + "."
    assert "-then-" in pair_name
    pair = {r["Failover"]: r for (name, _, _), r in records(admin, zone).items() if name == pair_name}
    assert pair["PRIMARY"]["ResourceRecords"][0]["Value"] == "198.51.100.10"
    assert pair["SECONDARY"]["ResourceRecords"][0]["Value"] == "198.51.100.60"
    # AT has no rule of its own: the dach set, falling back to Europe by itself
    assert geo["country:AT"]["ResourceRecords"][0]["Value"] == "198.51.100.60"
    assert plan(cli)["empty"]


def test_failover_nodes_come_in_resolve_order(cli, config, admin, zone):
    add_nodes(cli, "fra-1", "par-1", "ams-1", "lon-1", "iad-1")
    add_rule(cli, "--default", "--target", "iad-1")
    add_rule(cli, "--continent", "EU", "--target", "fra-1", "--weight", "10", "--failover", "ams-1")
    add_rule(cli, "--continent", "EU", "--target", "par-1", "--weight", "90", "--failover", "lon-1")
    for node in ("fra-1", "par-1"):
        assert cli("nodes", "drain", node, "-q").exit_code == 0
    assert cli("routing", "resolve", "DE", "-o", "json").json()["node"] == "lon-1"
    apply(cli)
    geo = geo_records(admin, zone)
    pair_name = geo["continent:EU"]["AliasTarget"]["DNSName"].rstrip(".") + "."
    pair = {r["Failover"]: r for (name, _, _), r in records(admin, zone).items() if name == pair_name}
    assert pair["PRIMARY"]["ResourceRecords"][0]["Value"] == "198.51.100.70"  # lon-1, the heavier rule's
    assert pair["SECONDARY"]["ResourceRecords"][0]["Value"] == "198.51.100.20"
    assert plan(cli)["empty"]


def test_a_parent_name_never_claims_a_child_names_records(cli, estate, admin, zone, moto, isolated):
    apply(cli)
    before = records(admin, zone)
    apex = write_config(isolated / "apex.toml", zone, moto.url, record="example.com")
    shown = cli("--config", apex, "routing", "plan", "-o", "json").json()["providers"][0]
    assert shown["counts"]["delete"] == 0 and shown["existing"] == 0
    assert cli("--config", apex, "routing", "apply", "--yes").exit_code == 0
    assert all(records(admin, zone).get(key) == value for key, value in before.items())
    assert plan(cli)["empty"]


def test_a_chain_of_failover_nodes_is_written_targets_first(cli, config, admin, zone):
    add_nodes(cli, "fra-1", "ams-1", "par-1", "iad-1")
    add_rule(cli, "--default", "--target", "iad-1")
    add_rule(cli, "--continent", "EU", "--target", "fra-1", "--weight", "60", "--failover", "ams-1")
    add_rule(cli, "--continent", "EU", "--target", "par-1", "--weight", "40", "--failover", "ams-1")
    add_rule(cli, "--country", "DE", "--target", "fra-1", "--failover", "par-1")
    add_rule(cli, "--country", "DE", "--target", "ams-1", "--weight", "50", "--failover", "iad-1")
    shown = plan(cli)["providers"][0]
    order = [line.split(" ")[1] for step in shown["steps"] for line in step["order"]]
    # the pairs of country-de: _edgectl-country-de-f1 (par-1, then iad-1) before _edgectl-country-de
    assert order.index("_edgectl-country-de-f1.www.example.com.") < order.index("_edgectl-country-de.www.example.com.")
    assert apply(cli)["status"] == "synced" and plan(cli)["empty"]


def test_a_name_changing_record_type_loses_its_old_records_first(cli, estate, admin, zone):
    apply(cli)
    for name in ("fra-1", "ams-1", "iad-1"):
        assert cli("nodes", "update", name, "--address", f"{name}.cdn.example.net", "-q").exit_code == 0
    shown = plan(cli)["providers"][0]
    order = [line for step in shown["steps"] for line in step["order"] if " A " in line or " CNAME " in line]
    first_cname = next(i for i, line in enumerate(order) if " CNAME " in line and line.startswith("create"))
    assert all(line.startswith("delete") for line in order[:first_cname] if " A " in line)
    assert not any(line.startswith("delete") and " A " in line and "www.example.com. A" in line
                   for line in order[first_cname:])
    apply(cli, "--force")
    geo = geo_records(admin, zone)
    assert geo["*"]["Type"] == "CNAME" and geo["*"]["ResourceRecords"] == [{"Value": "iad-1.cdn.example.net."}]
    assert plan(cli)["empty"]


def test_two_applies_at_once_both_succeed_and_create_each_thing_once(estate, admin, zone):
    import os
    import subprocess
    import sys

    runs = [subprocess.Popen([sys.executable, "-m", "edgectl", "routing", "apply", "--yes", "-o", "json"],
                             env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(run.wait(timeout=120), run.stdout.read().decode(), run.stderr.read().decode()) for run in runs]
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    # one applied the plan; the other waited for it and found nothing left to change
    assert sorted(json.loads(out).get("empty", False) for _, out, _ in results) == [False, True]
    prefix = f"edgectl:default:{hashlib.sha256(f'{zone} www.example.com.'.encode()).hexdigest()[:8]}:"
    assert len([hc for hc in admin.list_health_checks()["HealthChecks"]
                if hc["CallerReference"].startswith(prefix)]) == 3
