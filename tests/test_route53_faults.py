"""The Route 53 fault proxy as boto3 sees it: its faults, changes that are PENDING a while, atomic batches."""

from __future__ import annotations

import time

import botocore.exceptions
import pytest

from tests.route53_records import alias, change, client, keys, listed, new_zone, record


@pytest.fixture(scope="module")
def admin(moto):
    """Straight to moto, to set up and to look at what came through the route53_faults."""
    return client(moto.url)


@pytest.fixture
def route53(route53_faults):
    return client(route53_faults.url)


@pytest.fixture
def zone(admin) -> str:
    return new_zone(admin)


def refused(call) -> botocore.exceptions.ClientError:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value


# -- faults ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, status, code, modelled", [
    ("throttling", 400, "Throttling", None),  # botocore models ThrottlingException, which this is not
    ("prior_request", 400, "PriorRequestNotComplete", "PriorRequestNotComplete"),
    ("unavailable", 503, "ServiceUnavailable", None),
    ("denied", 403, "AccessDenied", None),
    ("no_zone", 404, "NoSuchHostedZone", "NoSuchHostedZone"),
])
def test_each_fault_reaches_boto3_as_route53_error(route53_faults, route53, zone, kind, status, code, modelled):
    route53_faults.inject(kind, only="ChangeResourceRecordSets")
    caught = refused(lambda: change(route53, zone, ("UPSERT", record("www.example.com"))))
    assert (caught.response["ResponseMetadata"]["HTTPStatusCode"], caught.response["Error"]["Code"]) == (status, code)
    assert type(caught) is (getattr(route53.exceptions, modelled) if modelled else botocore.exceptions.ClientError)
    assert not isinstance(caught, route53.exceptions.ThrottlingException)
    assert len(route53_faults.calls(operation="ChangeResourceRecordSets")) == 1  # retries are off
    assert change(route53, zone, ("UPSERT", record("www.example.com")))  # the fault was used up


def test_fault_messages_are_route53_words(route53_faults, route53, zone):
    route53_faults.inject("throttling")
    route53_faults.inject("prior_request")
    route53_faults.inject("denied")
    route53_faults.inject("no_zone")
    messages = [refused(lambda: change(route53, zone, ("UPSERT", record("www.example.com")))).response["Error"]
                ["Message"] for _ in range(4)]
    bare = zone.rsplit("/", 1)[-1]
    assert messages == [
        "Rate exceeded",
        "The request was rejected because Route 53 was still processing a prior request.",
        "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: route53:ChangeResourceRecordSets",
        f"No hosted zone found with ID: {bare}",
    ]


def test_a_reset_is_a_connection_error(route53_faults, route53, zone):
    route53_faults.inject("reset")
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        route53.get_hosted_zone(Id=zone)


def test_only_keeps_a_fault_for_the_operations_named(route53_faults, route53, zone):
    route53_faults.inject("throttling", 2, only=("CreateHealthCheck", "ChangeResourceRecordSets"))
    assert listed(route53, zone)
    assert route53.get_hosted_zone(Id=zone)
    refused(lambda: change(route53, zone, ("UPSERT", record("www.example.com"))))
    refused(lambda: route53.create_health_check(CallerReference="only", HealthCheckConfig={"Type": "TCP",
                                                "IPAddress": "192.0.2.1", "Port": 443}))
    assert change(route53, zone, ("UPSERT", record("www.example.com")))


def test_inject_refuses_an_unknown_fault_or_operation(route53_faults):
    with pytest.raises(ValueError, match="one of throttling, prior_request"):
        route53_faults.inject("slow")
    with pytest.raises(ValueError, match="route53 has no operation ChangeRecords"):
        route53_faults.inject("throttling", only="ChangeRecords")


@pytest.mark.parametrize("kind", ["throttling", "prior_request"])
def test_botocore_retries_both_on_its_own_unless_told_not_to(route53_faults, zone, kind):
    defaults = client(route53_faults.url, attempts=None)  # standard mode: three attempts in all
    route53_faults.inject(kind, 2)
    assert defaults.get_hosted_zone(Id=zone)["ResponseMetadata"]["RetryAttempts"] == 2
    route53_faults.inject(kind, 3)
    with pytest.raises(botocore.exceptions.ClientError, match=r"reached max retries: 2"):
        defaults.get_hosted_zone(Id=zone)


def test_the_log_names_each_operation_with_its_time(route53_faults, route53, zone):
    before = time.monotonic()
    change(route53, zone, ("UPSERT", record("www.example.com")))
    listed(route53, zone)
    assert route53_faults.calls(operation="ChangeResourceRecordSets") == [("POST", f"/2013-04-01{zone}/rrset/")]
    assert route53_faults.calls(operation="ListResourceRecordSets") == [("GET", f"/2013-04-01{zone}/rrset")]
    assert before <= route53_faults.request_times("POST")[0] <= route53_faults.request_times("GET")[0]


# -- PENDING, then INSYNC -------------------------------------------------------------------------
def test_each_change_has_its_own_id_and_is_pending_until_released(route53_faults, route53, zone):
    first = change(route53, zone, ("UPSERT", record("a.example.com")))["ChangeInfo"]
    second = change(route53, zone, ("UPSERT", record("b.example.com")))["ChangeInfo"]
    assert first["Id"] != second["Id"]
    assert first["Id"].startswith("/change/C")
    assert (first["Status"], second["Status"]) == ("PENDING", "PENDING")
    assert route53.get_change(Id=first["Id"])["ChangeInfo"]["Status"] == "PENDING"
    route53_faults.release(first["Id"])
    looked = route53.get_change(Id=first["Id"])["ChangeInfo"]
    assert (looked["Id"], looked["Status"], looked["SubmittedAt"]) == (first["Id"], "INSYNC", first["SubmittedAt"])
    assert route53.get_change(Id=second["Id"])["ChangeInfo"]["Status"] == "PENDING"
    route53_faults.release()
    assert route53_faults.change_status(second["Id"]) == "INSYNC"


def test_a_change_can_read_pending_for_some_polls(route53_faults, route53, zone):
    route53_faults.pending_polls = 2
    change_id = change(route53, zone, ("UPSERT", record("a.example.com")))["ChangeInfo"]["Id"]
    statuses = [route53.get_change(Id=change_id)["ChangeInfo"]["Status"] for _ in range(4)]
    assert statuses == ["PENDING", "PENDING", "INSYNC", "INSYNC"]


def test_a_change_can_read_pending_for_some_seconds(route53_faults, route53, zone):
    route53_faults.pending_seconds = 0.5
    change_id = change(route53, zone, ("UPSERT", record("a.example.com")))["ChangeInfo"]["Id"]
    assert route53.get_change(Id=change_id)["ChangeInfo"]["Status"] == "PENDING"
    time.sleep(0.6)
    assert route53.get_change(Id=change_id)["ChangeInfo"]["Status"] == "INSYNC"


def test_no_pending_polls_means_insync_at_once(route53_faults, route53, zone):
    route53_faults.pending_polls = 0
    assert change(route53, zone, ("UPSERT", record("a.example.com")))["ChangeInfo"]["Status"] == "INSYNC"


def test_the_boto3_waiter_waits_for_insync(route53_faults, route53, zone):
    route53_faults.pending_polls = 1
    change_id = change(route53, zone, ("UPSERT", record("a.example.com")))["ChangeInfo"]["Id"]
    route53.get_waiter("resource_record_sets_changed").wait(Id=change_id, WaiterConfig={"Delay": 0.05})
    assert len(route53_faults.calls(operation="GetChange")) == 2


def test_other_answers_with_a_change_get_ids_too_and_unknown_ids_are_no_such_change(route53_faults, route53):
    created = route53.create_hosted_zone(Name="other.example", CallerReference=f"r53-{time.monotonic_ns()}")
    assert created["ChangeInfo"]["Status"] == "PENDING"
    assert created["ChangeInfo"]["Id"].removeprefix("/change/") in route53_faults.change_ids()
    caught = refused(lambda: route53.get_change(Id="C2682N5HXP0BZ4"))  # the one id moto gives every change
    assert type(caught) is route53.exceptions.NoSuchChange
    assert caught.response["ResponseMetadata"]["HTTPStatusCode"] == 404


# -- atomic batches -------------------------------------------------------------------------------
def test_a_batch_with_a_bad_change_changes_nothing_and_says_every_problem(route53, admin, zone):
    change(admin, zone, ("CREATE", record("a.example.com", SetIdentifier="eu", Weight=1)),
           ("CREATE", record("b.example.com")))
    before = listed(admin, zone)
    caught = refused(lambda: change(route53, zone, ("CREATE", record("new.example.com")),
                                    ("CREATE", record("a.example.com", "192.0.2.9", SetIdentifier="eu", Weight=1)),
                                    ("DELETE", record("gone.example.com")),
                                    ("DELETE", record("b.example.com", "192.0.2.99")),
                                    ("UPSERT", record("www.example.org"))))
    assert type(caught) is route53.exceptions.InvalidChangeBatch
    assert caught.response["Error"]["Message"] == (
        "[Tried to create resource record set [name='a.example.com.', type='A', set-identifier='eu'] but it already "
        "exists, Tried to delete resource record set [name='gone.example.com.', type='A'] but it was not found, "
        "Tried to delete resource record set [name='b.example.com.', type='A'] but the values provided do not match "
        "the current values, RRSet with DNS name www.example.org. is not permitted in zone example.com.]")
    assert listed(admin, zone) == before


def test_changes_in_a_batch_apply_in_order(route53, admin, zone):
    change(admin, zone, ("CREATE", record("a.example.com")))
    change(route53, zone, ("DELETE", record("a.example.com")), ("CREATE", record("a.example.com", "192.0.2.2")),
           ("CREATE", record("b.example.com")), ("DELETE", record("b.example.com")))
    assert [(r["Name"], r["ResourceRecords"]) for r in listed(admin, zone) if r["Type"] == "A"] == [
        ("a.example.com.", [{"Value": "192.0.2.2"}])]


def test_a_delete_needs_every_value_as_it_is(route53, admin, zone):
    failover = alias("f.example.com", zone, "a.example.com", SetIdentifier="primary", Failover="PRIMARY")
    change(admin, zone, ("CREATE", record("a.example.com", "192.0.2.1", "192.0.2.2", ttl=300)), ("CREATE", failover))
    refused(lambda: change(route53, zone, ("DELETE", record("a.example.com", "192.0.2.1", ttl=300))))
    refused(lambda: change(route53, zone, ("DELETE", record("a.example.com", "192.0.2.1", "192.0.2.2", ttl=60))))
    refused(lambda: change(route53, zone, ("DELETE", {**failover, "AliasTarget": {
        **failover["AliasTarget"], "EvaluateTargetHealth": False}})))
    # the values in any order, and names in any case with or without their final dot
    change(route53, zone, ("DELETE", record("A.Example.com.", "192.0.2.2", "192.0.2.1", ttl=300)),
           ("DELETE", {**failover, "AliasTarget": {**failover["AliasTarget"], "DNSName": "a.example.com."}}))
    assert keys(admin, zone) == []


def test_deleting_one_set_identifier_keeps_the_same_identifier_under_other_names(route53, admin, zone):
    change(route53, zone, *(("CREATE", record(name, SetIdentifier=sid, Weight=1))
                            for name in ("a.example.com", "b.example.com") for sid in ("eu", "us")),
           ("CREATE", record("a.example.com", "2001:db8::1", type_="AAAA", SetIdentifier="eu", Weight=1)))
    change(route53, zone, ("DELETE", record("a.example.com", SetIdentifier="eu", Weight=1)))
    assert sorted(keys(admin, zone)) == [("a.example.com.", "A", "us"), ("a.example.com.", "AAAA", "eu"),
                                         ("b.example.com.", "A", "eu"), ("b.example.com.", "A", "us")]


def test_a_record_deleted_can_be_created_again(route53, admin, zone):
    change(route53, zone, ("CREATE", record("z.example.com")), ("CREATE", record("a.example.com")))
    change(route53, zone, ("DELETE", record("a.example.com")))
    change(route53, zone, ("CREATE", record("a.example.com")))
    assert keys(admin, zone) == [("a.example.com.", "A", None), ("z.example.com.", "A", None)]


def batch_of(action: str, values: int) -> list[tuple[str, dict]]:
    """`values` addresses in record sets of up to 100."""
    addresses = [f"10.{i // 250}.{i % 250}.1" for i in range(values)]
    return [(action, record(f"r{n}.example.com", *addresses[n:n + 100])) for n in range(0, values, 100)]


@pytest.mark.parametrize("action, values, fits", [
    ("CREATE", 1000, True), ("CREATE", 1001, False), ("UPSERT", 500, True), ("UPSERT", 501, False),
])
def test_at_most_1000_records_a_batch_and_upsert_counts_twice(route53, admin, zone, action, values, fits):
    batch = batch_of(action, values)
    if fits:
        change(route53, zone, *batch)
        assert len(keys(admin, zone)) == len(batch)
    else:
        caught = refused(lambda: change(route53, zone, *batch))
        assert caught.response["Error"]["Message"] == "[Number of records limit of 1000 exceeded.]"
        assert keys(admin, zone) == []


def test_an_alias_counts_as_one_record(route53, admin, zone):
    change(route53, zone, *batch_of("CREATE", 999), ("CREATE", alias("x.example.com", zone, "r0.example.com")))
    caught = refused(lambda: change(route53, zone, *batch_of("UPSERT", 500),
                                    ("CREATE", alias("y.example.com", zone, "r0.example.com"))))
    assert caught.response["Error"]["Message"] == "[Number of records limit of 1000 exceeded.]"


def test_a_record_set_of_many_values_goes_through(route53, admin, zone):
    addresses = [f"10.0.{i // 250}.{i % 250}" for i in range(600)]
    change(route53, zone, ("CREATE", record("many.example.com", *addresses)))
    assert len(listed(admin, zone)[-1]["ResourceRecords"]) == 600


@pytest.mark.parametrize("action, count, fits", [
    ("CREATE", 128, True), ("CREATE", 129, False), ("UPSERT", 64, True), ("UPSERT", 65, False),
])
def test_at_most_32000_characters_of_values_and_upsert_counts_twice(route53, admin, zone, action, count, fits):
    value = '"' + "x" * 248 + '"'  # 250 characters
    batch = [(action, record(f"t{i}.example.com", value, type_="TXT")) for i in range(count)]
    if fits:
        change(route53, zone, *batch)
        assert len(keys(admin, zone)) == count
    else:
        caught = refused(lambda: change(route53, zone, *batch))
        assert caught.response["Error"]["Message"] == "[RDATA character limit of 32000 exceeded.]"
        assert keys(admin, zone) == []


def test_an_unknown_zone_is_moto_s_own_answer(route53):
    caught = refused(lambda: change(route53, "/hostedzone/ZNOSUCHZONE", ("UPSERT", record("www.example.com"))))
    assert type(caught) is route53.exceptions.NoSuchHostedZone


def test_the_batch_comment_comes_back_with_the_change(route53, zone):
    batch = {"Comment": "edgectl geo steering",
             "Changes": [{"Action": "UPSERT", "ResourceRecordSet": record("a.example.com")}]}
    answer = route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch=batch)
    assert answer["ChangeInfo"]["Comment"] == "edgectl geo steering"  # moto leaves it out
