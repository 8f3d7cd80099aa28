"""Where moto's Route 53 differs from Route 53, each asserted against moto itself (5.2.5).

When a moto upgrade fixes one of these, its test fails: then tests/fakes/route53_faults.py may
stop making up for it, and the test goes. What Route 53 does instead is taken from its API
reference and developer guide, as quoted in botocore's model of the service.
"""

from __future__ import annotations

import botocore.exceptions
import pytest

from tests.route53_records import alias, change, client, keys, listed, new_zone, record


@pytest.fixture(scope="module")
def route53(moto):
    return client(moto.url)


@pytest.fixture
def zone(route53) -> str:
    return new_zone(route53)


def refused(call) -> dict:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response["Error"]


# -- change batches -------------------------------------------------------------------------------
def test_delete_by_set_identifier_removes_that_identifier_under_every_name(route53, zone):
    # Route 53 deletes the one record set with that name, type and SetIdentifier
    change(route53, zone, ("CREATE", record("a.example.com", SetIdentifier="eu", Weight=1)),
           ("CREATE", record("b.example.com", SetIdentifier="eu", Weight=1)),
           ("CREATE", record("b.example.com", "192.0.2.2", SetIdentifier="us", Weight=1)))
    change(route53, zone, ("DELETE", record("a.example.com", SetIdentifier="eu", Weight=1)))
    assert keys(route53, zone) == [("b.example.com.", "A", "us")]


def test_delete_of_a_simple_record_removes_every_record_of_that_name_and_type(route53, zone):
    change(route53, zone, ("CREATE", record("m.example.com", SetIdentifier="w", Weight=1)),
           ("CREATE", record("m.example.com", "192.0.2.2")))
    change(route53, zone, ("DELETE", record("m.example.com", "192.0.2.2")))
    assert keys(route53, zone) == []


def test_a_rejected_batch_keeps_the_changes_before_the_bad_one(route53, zone):
    # Route 53 applies a batch whole or not at all
    error = refused(lambda: change(route53, zone, ("CREATE", record("good.example.com")),
                                   ("CREATE", record("bad.example.org"))))
    assert error["Code"] == "InvalidChangeBatch"
    assert keys(route53, zone) == [("good.example.com.", "A", None)]


def test_create_of_an_existing_record_with_other_values_adds_a_second_one(route53, zone):
    # moto refuses only a CREATE identical to one it applied before; Route 53 refuses any CREATE
    # of a name, type and SetIdentifier that exists
    change(route53, zone, ("CREATE", record("dup.example.com", "192.0.2.1")))
    change(route53, zone, ("CREATE", record("dup.example.com", "192.0.2.7")))
    assert [r["ResourceRecords"] for r in listed(route53, zone) if r["Name"] == "dup.example.com."] == [
        [{"Value": "192.0.2.1"}], [{"Value": "192.0.2.7"}]]


def test_a_record_created_deleted_and_created_again_already_exists(route53, zone):
    # moto remembers every change and, finding the same CREATE, looks for the record from that
    # name on in listing order, so any record listed after it counts as the record existing
    change(route53, zone, ("CREATE", record("z.example.com")))
    change(route53, zone, ("CREATE", record("a.example.com")))
    change(route53, zone, ("DELETE", record("a.example.com")))
    error = refused(lambda: change(route53, zone, ("CREATE", record("a.example.com"))))
    assert error["Message"] == ("Tried to create resource record set [name='a.example.com.', type='A'] "
                                "but it already exists")
    assert keys(route53, zone) == [("z.example.com.", "A", None)]


@pytest.mark.parametrize("deleted", [record("missing.example.com"), record("kept.example.com", "192.0.2.99")],
                         ids=["missing", "other values"])
def test_a_delete_that_matches_nothing_is_invalid_input(route53, zone, deleted):
    # Route 53: InvalidChangeBatch, "Tried to delete resource record set [name='…', type='A'] but it
    # was not found" or "… but the values provided do not match the current values"
    change(route53, zone, ("CREATE", record("kept.example.com")))
    error = refused(lambda: change(route53, zone, ("DELETE", deleted)))
    assert error["Code"] == "InvalidInput"
    assert error["Message"].startswith("Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and "
                                       "ResourceRecords], or TrafficPolicyInstanceId], but found none in Change")


def test_only_the_record_count_limit_is_enforced_and_aliases_do_not_count(route53, zone):
    # Route 53: at most 1,000 ResourceRecord elements "(including alias records)" and 32,000
    # characters of Value, UPSERT counting twice for both
    change(route53, zone, *(("CREATE", record(f"t{i}.example.com", '"' + "x" * 250 + '"', type_="TXT"))
                            for i in range(200)))
    change(route53, zone, ("CREATE", record("many.example.com", *(f"192.0.2.{i % 250}" for i in range(1000)))),
           *(("CREATE", alias(f"alias{i}.example.com", zone, "t0.example.com")) for i in range(5)))
    error = refused(lambda: change(route53, zone, ("UPSERT", record("up.example.com", *(
        f"198.51.100.{i % 250}" for i in range(501))))))
    assert (error["Code"], error["Message"]) == ("InvalidChangeBatch", "Number of records limit of 1000 exceeded.")


# -- what moto stores that Route 53 refuses ---------------------------------------------------------
@pytest.mark.parametrize("record_sets", [
    [record("x.example.com", SetIdentifier="xx", GeoLocation={"CountryCode": "XX"})],
    [record("x.example.com", SetIdentifier="w", Weight=256)],  # Weight is 0 to 255
    [record("x.example.com", SetIdentifier="same", Weight=1), record("x.example.com", "192.0.2.2",
                                                                      SetIdentifier="same", Weight=2)],
    [record("x.example.com", SetIdentifier="w", Weight=1),
     record("x.example.com", "192.0.2.2", SetIdentifier="geo", GeoLocation={"ContinentCode": "EU"}),
     record("x.example.com", "192.0.2.3", SetIdentifier="p", Failover="PRIMARY"),
     record("x.example.com", "192.0.2.4")],
    # "If you specify subdivisioncode, you must also specify US for CountryCode"
    [record("x.example.com", SetIdentifier="by", GeoLocation={"CountryCode": "DE", "SubdivisionCode": "BY"})],
    # "Specifying ContinentCode with either CountryCode or SubdivisionCode returns an InvalidInput error"
    [record("x.example.com", SetIdentifier="eu", GeoLocation={"ContinentCode": "EU", "CountryCode": "DE"})],
    [record("x.example.com", SetIdentifier="p", Failover="PRIMARY",
            HealthCheckId="11111111-1111-1111-1111-111111111111")],  # no such health check
], ids=["country XX", "weight 256", "duplicate SetIdentifier", "mixed routing policies",
        "subdivision outside US", "continent and country", "unknown health check"])
def test_moto_stores_record_sets_route53_refuses(route53, zone, record_sets):
    change(route53, zone, *(("CREATE", record_set) for record_set in record_sets))
    assert len(keys(route53, zone)) == len(record_sets)


# -- what moto gets right ---------------------------------------------------------------------------
def test_geolocation_by_us_state_and_the_default_location_are_kept(route53, zone):
    geo = [{"CountryCode": "US", "SubdivisionCode": "CA"}, {"CountryCode": "*"}, {"ContinentCode": "EU"},
           {"CountryCode": "DE"}]
    change(route53, zone, *(("CREATE", record("geo.example.com", f"192.0.2.{i}", SetIdentifier=f"g{i}",
                                              GeoLocation=location)) for i, location in enumerate(geo)))
    assert [r["GeoLocation"] for r in listed(route53, zone) if r["Name"] == "geo.example.com."] == geo


def test_alias_records_keep_evaluate_target_health_but_not_a_canonical_target(route53, zone):
    change(route53, zone, ("CREATE", record("origin.example.com")),
           ("CREATE", alias("f.example.com", zone, "origin.example.com", SetIdentifier="primary", Failover="PRIMARY")),
           ("CREATE", alias("f.example.com", zone, "nowhere.example.com.", evaluate=False,
                            SetIdentifier="secondary", Failover="SECONDARY")))
    targets = [r["AliasTarget"] for r in listed(route53, zone) if r["Name"] == "f.example.com."]
    # Route 53 writes the target with its final dot, and refuses one with no record behind it
    assert [(t["DNSName"], t["EvaluateTargetHealth"]) for t in targets] == [
        ("origin.example.com", True), ("nowhere.example.com.", False)]
    assert {t["HostedZoneId"] for t in targets} == {zone.rsplit("/", 1)[-1]}


def test_listing_sorts_by_reversed_name_then_type_comparing_text_not_labels(route53, zone):
    # "sorts results first by DNS name with the labels reversed, for example: com.example.www.
    # ... When multiple records have the same DNS name, ... by the record type"
    for name, type_, value in [("b.example.com", "TXT", '"x"'), ("a.b.example.com", "A", "192.0.2.1"),
                               ("b.example.com", "AAAA", "2001:db8::1"), ("b.example.com", "A", "192.0.2.2"),
                               ("*.example.com", "A", "192.0.2.3"), ("x.a.example.com", "A", "192.0.2.4"),
                               ("a-b.example.com", "A", "192.0.2.5")]:
        change(route53, zone, ("CREATE", record(name, value, type_=type_)))
    # "a-b" before "x.a": moto compares "com.example.a-b" with "com.example.a.x" as text, and "-"
    # sorts before "."; label by label, "a" comes before "a-b". Route 53 writes "*" as "\052".
    assert keys(route53, zone) == [("*.example.com.", "A", None), ("a-b.example.com.", "A", None),
                                   ("x.a.example.com.", "A", None), ("b.example.com.", "A", None),
                                   ("b.example.com.", "AAAA", None), ("b.example.com.", "TXT", None),
                                   ("a.b.example.com.", "A", None)]


def test_the_soa_value_is_a_python_dict_written_out(route53, zone):
    soa = next(r for r in listed(route53, zone) if r["Type"] == "SOA")
    assert soa["ResourceRecords"] == [{"Value": "{'Value': 'ns-2048.awsdns-64.com. hostmaster.example.com. "
                                                "1 7200 900 1209600 86400'}"}]


# -- changes and paging -----------------------------------------------------------------------------
def test_every_change_has_one_constant_id_and_any_id_is_insync(route53, zone):
    first = change(route53, zone, ("UPSERT", record("c1.example.com")))["ChangeInfo"]
    second = change(route53, zone, ("UPSERT", record("c2.example.com")))["ChangeInfo"]
    assert first["Id"] == second["Id"] == "/change/C2682N5HXP0BZ4"
    assert first["Status"] == second["Status"] == "INSYNC"
    # Route 53 answers NoSuchChange for an id it never gave, and keeps the /change/ prefix
    looked = route53.get_change(Id="CNOSUCHCHANGE")["ChangeInfo"]
    assert (looked["Id"], looked["Status"]) == ("CNOSUCHCHANGE", "INSYNC")


def test_record_pages_lack_next_record_identifier_so_a_shared_name_repeats(route53, zone):
    change(route53, zone, *(("CREATE", record("w.example.com", f"192.0.2.{i}", SetIdentifier=f"s{i}", Weight=1))
                            for i in range(5)))
    first = route53.list_resource_record_sets(HostedZoneId=zone, MaxItems="3")
    assert [r.get("SetIdentifier") for r in first["ResourceRecordSets"]] == [None, None, "s0"]  # NS, SOA, s0
    assert (first["IsTruncated"], first["NextRecordName"], first["NextRecordType"]) == (True, "w.example.com.", "A")
    assert "NextRecordIdentifier" not in first
    # the next page starts again at the first record of that name and type, StartRecordIdentifier or not
    for start in ({}, {"StartRecordIdentifier": "s1"}):
        second = route53.list_resource_record_sets(HostedZoneId=zone, MaxItems="3", StartRecordName="w.example.com.",
                                                   StartRecordType="A", **start)
        assert [r["SetIdentifier"] for r in second["ResourceRecordSets"]] == ["s0", "s1", "s2"]
        assert "NextRecordIdentifier" not in second


# -- health checks ----------------------------------------------------------------------------------
HEALTH_CHECK = {"Type": "HTTPS", "FullyQualifiedDomainName": "origin.example.com", "Port": 443,
                "ResourcePath": "/health", "RequestInterval": 30, "FailureThreshold": 3}


def test_list_health_checks_lacks_is_truncated_and_ignores_max_items(route53):
    for i in range(2):
        route53.create_health_check(CallerReference=f"list-{i}", HealthCheckConfig=HEALTH_CHECK)
    listing = route53.list_health_checks(MaxItems="1")
    assert len(listing["HealthChecks"]) >= 2
    # all three are required members of ListHealthChecksResponse
    assert {"IsTruncated", "MaxItems", "Marker"}.isdisjoint(listing)


@pytest.mark.parametrize("again", [HEALTH_CHECK, {**HEALTH_CHECK, "ResourcePath": "/other"}],
                         ids=["same config", "other config"])
def test_a_caller_reference_used_before_creates_another_health_check(route53, again):
    # Route 53: the same config returns the existing health check; another config is
    # HealthCheckAlreadyExists (409), as is any config once that health check is deleted
    reference = f"twice{again['ResourcePath']}"
    first = route53.create_health_check(CallerReference=reference, HealthCheckConfig=HEALTH_CHECK)
    second = route53.create_health_check(CallerReference=reference, HealthCheckConfig=again)
    assert first["HealthCheck"]["Id"] != second["HealthCheck"]["Id"]
    assert first["ResponseMetadata"]["HTTPStatusCode"] == second["ResponseMetadata"]["HTTPStatusCode"] == 201
    route53.delete_health_check(HealthCheckId=first["HealthCheck"]["Id"])
    route53.create_health_check(CallerReference=reference, HealthCheckConfig=HEALTH_CHECK)


def test_health_check_tags_are_kept_even_for_a_health_check_that_does_not_exist(route53):
    checks = [route53.create_health_check(CallerReference=f"tags-{i}", HealthCheckConfig=HEALTH_CHECK)
              ["HealthCheck"]["Id"] for i in range(2)]
    route53.change_tags_for_resource(ResourceType="healthcheck", ResourceId=checks[0],
                                     AddTags=[{"Key": "edgectl", "Value": "geo"}, {"Key": "Name", "Value": "eu"}])
    route53.change_tags_for_resource(ResourceType="healthcheck", ResourceId=checks[0], RemoveTagKeys=["Name"])
    sets = route53.list_tags_for_resources(ResourceType="healthcheck", ResourceIds=checks)["ResourceTagSets"]
    assert [(s["ResourceId"], s["Tags"]) for s in sets] == [(checks[0], [{"Key": "edgectl", "Value": "geo"}]),
                                                           (checks[1], [])]
    # Route 53: NoSuchHealthCheck for both
    unknown = "00000000-0000-0000-0000-000000000000"
    route53.change_tags_for_resource(ResourceType="healthcheck", ResourceId=unknown,
                                     AddTags=[{"Key": "a", "Value": "b"}])
    tags = route53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=unknown)["ResourceTagSet"]["Tags"]
    assert tags == [{"Key": "a", "Value": "b"}]
