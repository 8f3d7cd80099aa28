"""Hosted zones and record sets for the Route 53 tests, written the way boto3 takes them."""

from __future__ import annotations

import time

from tests.fakes.moto_server import TEST_KEYS


def client(endpoint_url: str, *, attempts: int | None = 1, mode: str = "standard"):
    """A route53 client; `attempts` None keeps botocore's own retry settings for `mode`."""
    import boto3
    from botocore.config import Config

    retries = {"mode": mode} if attempts is None else {"mode": mode, "total_max_attempts": attempts}
    return boto3.client("route53", endpoint_url=endpoint_url, config=Config(retries=retries), **TEST_KEYS)


def new_zone(route53, name: str = "example.com") -> str:
    created = route53.create_hosted_zone(Name=name, CallerReference=f"edgectl-test-{time.monotonic_ns()}")
    return created["HostedZone"]["Id"]


def record(name: str, *values: str, type_: str = "A", ttl: int = 60, **extra) -> dict:
    """A ResourceRecordSet; `extra` adds SetIdentifier, Weight, GeoLocation, Failover and the like."""
    return {"Name": name, "Type": type_, "TTL": ttl,
            "ResourceRecords": [{"Value": value} for value in values or ("192.0.2.1",)], **extra}


def alias(name: str, zone: str, target: str, *, evaluate: bool = True, **extra) -> dict:
    return {"Name": name, "Type": "A", **extra, "AliasTarget": {
        "HostedZoneId": zone.rsplit("/", 1)[-1], "DNSName": target, "EvaluateTargetHealth": evaluate}}


def change(route53, zone: str, *changes: tuple[str, dict]) -> dict:
    """ChangeResourceRecordSets of (action, record set) pairs."""
    batch = [{"Action": action, "ResourceRecordSet": record_set} for action, record_set in changes]
    return route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": batch})


def listed(route53, zone: str) -> list[dict]:
    pages = route53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone)
    return [record_set for page in pages for record_set in page["ResourceRecordSets"]]


def keys(route53, zone: str) -> list[tuple[str, str, str | None]]:
    """(name, type, SetIdentifier) of every record set, NS and SOA left out, in listing order."""
    return [(r["Name"], r["Type"], r.get("SetIdentifier")) for r in listed(route53, zone)
            if r["Type"] not in ("NS", "SOA")]
