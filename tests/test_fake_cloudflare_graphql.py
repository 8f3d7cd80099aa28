"""The fake of Cloudflare's GraphQL Analytics API, driven through the real SDK's raw POST over loopback HTTP."""

from __future__ import annotations

import json
import math
import re
import signal
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import cloudflare
import httpx
import pytest
from cloudflare import Cloudflare

from tests.fakes.cloudflare_api import DEFAULT_TOKEN, DEFAULT_ZONES, launch
from tests.fakes.cloudflare_graphql import Cell, DatasetQuery, FakeCloudflareGraphQL, cf_duration, weighted_quantile

NOW = datetime(2026, 9, 10, 12, 0, tzinfo=timezone.utc)
ZONE = DEFAULT_ZONES["example.com"]
OTHER_ZONE = "9a7806061c88ada191ed06f989cc3dac"
ZONES = {"example.com": ZONE, "example.net": OTHER_ZONE}
CACHED = {"hit", "revalidated"}  # the cache statuses the rollups count as cached, as the fake documents them

# The queries edgectl sends, one per dataset.
HOURLY = """
query ZoneHourly($zoneTag: string!, $start: Time!, $end: Time!, $limit: uint64!) {
  viewer {
    zones(filter: {zoneTag: $zoneTag}) {
      httpRequests1hGroups(limit: $limit, orderBy: [datetime_ASC],
                           filter: {datetime_geq: $start, datetime_lt: $end}) {
        dimensions { datetime }
        sum {
          requests cachedRequests bytes cachedBytes
          responseStatusMap { edgeResponseStatus requests }
          countryMap { clientCountryName requests bytes }
        }
      }
    }
  }
}"""

DAILY = """
query ZoneDaily($zoneTag: string!, $firstDay: Date!, $lastDay: Date!) {
  viewer {
    zones(filter: {zoneTag: $zoneTag}) {
      httpRequests1hGroups(limit: 10000, orderBy: [date_ASC], filter: {date_geq: $firstDay, date_leq: $lastDay}) {
        dimensions { date }
        sum { requests cachedRequests bytes cachedBytes }
      }
    }
  }
}"""

MINUTELY = """
query ZoneMinutes($zoneTag: string!, $start: Time!, $end: Time!, $limit: uint64!) {
  viewer {
    zones(filter: {zoneTag: $zoneTag}) {
      httpRequests1mGroups(limit: $limit, orderBy: [datetimeMinute_ASC],
                           filter: {datetime_geq: $start, datetime_lt: $end}) {
        dimensions { datetimeMinute }
        sum {
          requests cachedRequests bytes cachedBytes
          responseStatusMap { edgeResponseStatus requests }
          countryMap { clientCountryName requests bytes }
        }
      }
    }
  }
}"""

ADAPTIVE = """
query ZoneEdge($zoneTag: string!, $start: Time!, $end: Time!, $limit: uint64!) {
  viewer {
    zones(filter: {zoneTag: $zoneTag}) {
      httpRequestsAdaptiveGroups(limit: $limit, orderBy: [datetimeMinute_ASC, count_DESC],
                                 filter: {datetime_geq: $start, datetime_lt: $end}) {
        count
        dimensions { datetimeMinute cacheStatus coloCode clientCountryName }
        sum { edgeResponseBytes }
        quantiles { edgeTimeToFirstByteMsP50 edgeTimeToFirstByteMsP95 edgeTimeToFirstByteMsP99 }
      }
    }
  }
}"""

SETTINGS = """
query ZoneLimits($zoneTag: string!) {
  viewer {
    zones(filter: {zoneTag: $zoneTag}) {
      settings {
        httpRequests1hGroups { enabled maxDuration notOlderThan maxPageSize }
        httpRequests1mGroups { enabled maxDuration notOlderThan maxPageSize }
        httpRequestsAdaptiveGroups { enabled maxDuration notOlderThan maxPageSize availableFields }
      }
    }
  }
}"""


@pytest.fixture
def fake():
    server = FakeCloudflareGraphQL(now=NOW, zones=ZONES).start()
    yield server
    server.stop()


def sdk(fake, token: str = DEFAULT_TOKEN, **options) -> Cloudflare:
    return Cloudflare(api_token=token, base_url=fake.url, **{"max_retries": 0, "timeout": 5, **options})


@pytest.fixture
def client(fake):
    with sdk(fake) as made:
        yield made


def post(client: Cloudflare, query: str, **variables) -> dict:
    return client.post("/graphql", body={"query": query, "variables": variables}, cast_to=object)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def window(start: str, end: str, zone: str = ZONE, limit: int = 10000) -> dict:
    return {"zoneTag": zone, "start": start, "end": end, "limit": limit}


def rows(answer: dict, dataset: str, zone: int = 0) -> list[dict]:
    assert answer["errors"] is None, answer["errors"]
    return answer["data"]["viewer"]["zones"][zone][dataset]


def refused(answer: dict) -> list[dict]:
    assert answer["data"] is None
    return answer["errors"]


def totals(cells) -> dict:
    """What the rollups' sum holds for `cells`, worked out here rather than by the fake."""
    status, country = Counter(), defaultdict(Counter)
    for cell in cells:
        status[cell.status] += cell.requests
        country[cell.country]["requests"] += cell.requests
        country[cell.country]["bytes"] += cell.bytes
    return {"requests": sum(c.requests for c in cells),
            "cachedRequests": sum(c.requests for c in cells if c.cache_status in CACHED),
            "bytes": sum(c.bytes for c in cells),
            "cachedBytes": sum(c.bytes for c in cells if c.cache_status in CACHED),
            "responseStatusMap": [{"edgeResponseStatus": s, "requests": n} for s, n in sorted(status.items())],
            "countryMap": [{"clientCountryName": name, "requests": sums["requests"], "bytes": sums["bytes"]}
                           for name, sums in sorted(country.items())]}


def nearest_rank(cells, q: float) -> float:
    times = sorted(t for cell in cells for t in [cell.ttfb_ms] * cell.requests)
    return float(times[math.ceil(q * len(times)) - 1])


# -- the SDK's raw call ----------------------------------------------------------------------------------------------

def test_the_sdk_posts_query_and_variables_to_graphql_and_reads_the_answer_back(fake, client):
    sent = window("2026-09-10T09:00:00Z", "2026-09-10T12:00:00Z", limit=24)
    answer = post(client, HOURLY, **sent)

    assert set(answer) == {"data", "errors"} and answer["errors"] is None
    assert [row["dimensions"]["datetime"] for row in rows(answer, "httpRequests1hGroups")] == [
        "2026-09-10T09:00:00Z", "2026-09-10T10:00:00Z", "2026-09-10T11:00:00Z"]
    assert fake.calls == [("POST", "/graphql")]
    [call] = fake.graphql_calls
    assert (call.query, call.variables, call.status, call.errors) == (HOURLY, sent, 200, ())
    assert call.datasets == (DatasetQuery(ZONE, "httpRequests1hGroups", "httpRequests1hGroups",
                                          at("2026-09-10T09:00:00+00:00"), at("2026-09-10T12:00:00+00:00"), 24,
                                          ("datetime_ASC",), ("datetime",), 3),)


# -- the rollups -----------------------------------------------------------------------------------------------------

def test_hourly_rows_sum_each_hours_traffic(fake, client):
    answer = post(client, HOURLY, **window("2026-09-10T06:00:00Z", "2026-09-10T10:00:00Z"))
    got = rows(answer, "httpRequests1hGroups")
    assert len(got) == 4
    for hour, row in zip(range(6, 10), got):
        start = datetime(2026, 9, 10, hour, tzinfo=timezone.utc)
        assert row == {"dimensions": {"datetime": f"2026-09-10T{hour:02}:00:00Z"},
                       "sum": totals(fake.cells(ZONE, start, start + timedelta(hours=1)))}
        assert 0 < row["sum"]["cachedRequests"] < row["sum"]["requests"]


def test_an_hourly_filter_reads_whole_hours_that_begin_inside_it(fake, client):
    # 06:30 to 08:30 holds the hours that begin at 07:00 and 08:00, each whole
    answer = post(client, HOURLY, **window("2026-09-10T06:30:00Z", "2026-09-10T08:30:00Z"))
    got = rows(answer, "httpRequests1hGroups")
    assert [row["dimensions"]["datetime"] for row in got] == ["2026-09-10T07:00:00Z", "2026-09-10T08:00:00Z"]
    assert got[1]["sum"]["requests"] == sum(c.requests for c in fake.cells(ZONE, at("2026-09-10T08:00:00+00:00"),
                                                                          at("2026-09-10T09:00:00+00:00")))


def test_hourly_rows_grouped_by_date_cover_whole_days(fake, client):
    answer = post(client, DAILY, zoneTag=ZONE, firstDay="2026-09-08", lastDay="2026-09-09")
    got = rows(answer, "httpRequests1hGroups")
    assert [row["dimensions"]["date"] for row in got] == ["2026-09-08", "2026-09-09"]
    for day, row in zip((8, 9), got):
        start = datetime(2026, 9, day, tzinfo=timezone.utc)
        expected = totals(fake.cells(ZONE, start, start + timedelta(days=1)))
        assert row["sum"] == {name: expected[name] for name in ("requests", "cachedRequests", "bytes", "cachedBytes")}


def test_a_days_bounds_are_the_midnights_around_it(fake, client):
    query = DAILY.replace("date_geq: $firstDay, date_leq: $lastDay", "date_gt: $firstDay, date_lt: $lastDay")
    got = rows(post(client, query, zoneTag=ZONE, firstDay="2026-09-07", lastDay="2026-09-09"), "httpRequests1hGroups")
    assert [row["dimensions"]["date"] for row in got] == ["2026-09-08"]
    [asked] = fake.graphql_calls[-1].datasets
    assert (asked.start, asked.end) == (at("2026-09-08T00:00:00+00:00"), at("2026-09-09T00:00:00+00:00"))


def test_minute_rows_are_ordered_and_cut_at_the_limit(fake, client):
    sent = window("2026-09-10T10:00:00Z", "2026-09-10T10:30:00Z", limit=5)
    got = rows(post(client, MINUTELY, **sent), "httpRequests1mGroups")
    assert [row["dimensions"]["datetimeMinute"] for row in got] == [f"2026-09-10T10:0{m}:00Z" for m in range(5)]
    first = at("2026-09-10T10:00:00+00:00")
    assert got[0]["sum"] == totals(fake.cells(ZONE, first, first + timedelta(minutes=1)))

    latest = rows(post(client, MINUTELY.replace("datetimeMinute_ASC", "datetimeMinute_DESC"), **sent),
                  "httpRequests1mGroups")
    assert [row["dimensions"]["datetimeMinute"] for row in latest] == [f"2026-09-10T10:{m}:00Z"
                                                                      for m in range(29, 24, -1)]


def test_rows_asked_for_without_order_by_come_in_no_promised_order(fake, client):
    sent = window("2026-09-10T10:00:00Z", "2026-09-10T11:00:00Z")
    ordered = rows(post(client, MINUTELY, **sent), "httpRequests1mGroups")
    unordered = rows(post(client, MINUTELY.replace("orderBy: [datetimeMinute_ASC],", ""), **sent),
                     "httpRequests1mGroups")
    assert len(ordered) == 60
    assert sorted(unordered, key=lambda row: row["dimensions"]["datetimeMinute"]) == ordered
    assert unordered != ordered


def test_there_is_no_traffic_from_the_minute_now_falls_in(fake, client):
    fake.now = NOW + timedelta(seconds=30)
    got = rows(post(client, MINUTELY, **window("2026-09-10T11:50:00Z", "2026-09-10T12:30:00Z")),
               "httpRequests1mGroups")
    assert got[-1]["dimensions"]["datetimeMinute"] == "2026-09-10T11:59:00Z" and len(got) == 10


def test_the_traffic_is_drawn_from_the_seed_and_the_zone():
    def hourly(seed: int, zone: str = ZONE) -> list[dict]:
        with FakeCloudflareGraphQL(now=NOW, zones=ZONES, seed=seed) as fake, sdk(fake) as client:
            return rows(post(client, HOURLY, **window("2026-09-09T00:00:00Z", "2026-09-10T00:00:00Z", zone)),
                        "httpRequests1hGroups")

    assert hourly(7) == hourly(7)
    assert hourly(7) != hourly(8)
    assert hourly(7) != hourly(7, OTHER_ZONE)
    # a swell through the day: the busiest hour sees clearly more than the quietest
    requests = [row["sum"]["requests"] for row in hourly(7)]
    assert max(requests) > 1.5 * min(requests)


# -- the adaptive dataset --------------------------------------------------------------------------------------------

def test_adaptive_groups_count_bytes_and_time_to_first_byte_quantiles(fake, client):
    query = ADAPTIVE.replace("datetimeMinute cacheStatus coloCode clientCountryName", "cacheStatus") \
                    .replace("[datetimeMinute_ASC, count_DESC]", "[count_DESC]")
    got = rows(post(client, query, **window("2026-09-10T10:00:00Z", "2026-09-10T11:00:00Z")),
               "httpRequestsAdaptiveGroups")
    cells = fake.cells(ZONE, at("2026-09-10T10:00:00+00:00"), at("2026-09-10T11:00:00+00:00"))
    expected = []
    for status in {cell.cache_status for cell in cells}:
        mine = [cell for cell in cells if cell.cache_status == status]
        expected.append({"count": sum(c.requests for c in mine), "dimensions": {"cacheStatus": status},
                         "sum": {"edgeResponseBytes": sum(c.bytes for c in mine)},
                         "quantiles": {f"edgeTimeToFirstByteMsP{p}": nearest_rank(mine, p / 100)
                                       for p in (50, 95, 99)}})
    assert got == sorted(expected, key=lambda row: -row["count"])
    hits = next(row for row in got if row["dimensions"]["cacheStatus"] == "hit")
    assert hits["quantiles"]["edgeTimeToFirstByteMsP50"] <= hits["quantiles"]["edgeTimeToFirstByteMsP99"] <= 60


def test_a_quantile_is_the_time_the_nearest_ranked_request_took():
    blocks = [Cell(NOW, "DE", "FRA", "miss", 200, requests, requests * 1000, ttfb)
              for requests, ttfb in ((1, 30), (1, 10), (1, 20))]
    assert [weighted_quantile(blocks, q) for q in (0.5, 0.34, 0.33, 0.99)] == [20.0, 20.0, 10.0, 30.0]
    assert weighted_quantile(blocks[:1] + [replace(blocks[1], requests=9)], 0.95) == 30.0


def test_adaptive_groups_by_minute_colo_and_country_add_up_to_the_minute(fake, client):
    got = rows(post(client, ADAPTIVE, **window("2026-09-10T10:00:00Z", "2026-09-10T10:10:00Z")),
               "httpRequestsAdaptiveGroups")
    minutes = [row["dimensions"]["datetimeMinute"] for row in got]
    assert minutes == sorted(minutes) and len(set(minutes)) == 10
    first = [row for row in got if row["dimensions"]["datetimeMinute"] == "2026-09-10T10:00:00Z"]
    counts = [row["count"] for row in first]
    assert counts == sorted(counts, reverse=True)
    cells = fake.cells(ZONE, at("2026-09-10T10:00:00+00:00"), at("2026-09-10T10:01:00+00:00"))
    assert sum(counts) == sum(cell.requests for cell in cells)
    assert {(r["dimensions"]["coloCode"], r["dimensions"]["clientCountryName"]) for r in first} == {
        (cell.colo, cell.country) for cell in cells}


def test_adaptive_filters_narrow_by_dimension(fake, client):
    query = """query ($zoneTag: string!, $filter: filter) { viewer { zones(filter: {zoneTag: $zoneTag}) {
        httpRequestsAdaptiveGroups(limit: 100, filter: $filter) { count sum { edgeResponseBytes } } } } }"""
    span = {"datetime_geq": "2026-09-10T10:00:00Z", "datetime_lt": "2026-09-10T11:00:00Z"}
    cells = fake.cells(ZONE, at("2026-09-10T10:00:00+00:00"), at("2026-09-10T11:00:00+00:00"))
    for narrowing, keep in [({"cacheStatus": "hit"}, lambda c: c.cache_status == "hit"),
                            ({"edgeResponseStatus_geq": 400}, lambda c: c.status >= 400),
                            ({"clientCountryName_in": ["DE", "GB"], "cacheStatus_neq": "dynamic"},
                             lambda c: c.country in ("DE", "GB") and c.cache_status != "dynamic")]:
        [row] = rows(post(client, query, zoneTag=ZONE, filter={**span, **narrowing}), "httpRequestsAdaptiveGroups")
        mine = [cell for cell in cells if keep(cell)]
        assert row == {"count": sum(c.requests for c in mine), "sum": {"edgeResponseBytes": sum(c.bytes for c in mine)}}


# -- settings and the limits they state ------------------------------------------------------------------------------

def test_the_settings_node_states_each_datasets_limits_per_zone(fake, client):
    fake.set_limits(OTHER_ZONE, "httpRequests1hGroups", max_duration=6 * 3600, not_older_than=3 * 86400)
    zone, other = (post(client, SETTINGS, zoneTag=tag)["data"]["viewer"]["zones"][0]["settings"]
                   for tag in (ZONE, OTHER_ZONE))
    assert zone["httpRequests1hGroups"] == {"enabled": True, "maxDuration": 604800, "notOlderThan": 7776000,
                                            "maxPageSize": 10000}
    assert zone["httpRequests1mGroups"] == {"enabled": True, "maxDuration": 86400, "notOlderThan": 604800,
                                            "maxPageSize": 10000}
    adaptive = zone["httpRequestsAdaptiveGroups"]
    assert (adaptive["maxDuration"], adaptive["notOlderThan"]) == (86400, 691200)
    assert {"count", "sum_edgeResponseBytes", "dimensions_coloCode", "quantiles_edgeTimeToFirstByteMsP95"} <= set(
        adaptive["availableFields"])
    assert other["httpRequests1hGroups"] == {"enabled": True, "maxDuration": 21600, "notOlderThan": 259200,
                                             "maxPageSize": 10000}
    assert other["httpRequests1mGroups"] == zone["httpRequests1mGroups"]


def test_a_range_wider_than_max_duration_is_refused_and_its_halves_are_answered(fake, client):
    fake.set_limits(ZONE, "httpRequests1hGroups", max_duration=6 * 3600)
    answer = post(client, HOURLY, **window("2026-09-10T00:00:00Z", "2026-09-10T12:00:00Z"))
    [error] = refused(answer)
    assert error["message"] == (f'zone "{ZONE}" cannot request a time range wider than 6h, '
                                "but your query time range spans 12h")
    assert error["path"] == ["viewer", "zones", "0", "httpRequests1hGroups"]
    assert error["extensions"]["code"] == "quota"
    assert re.fullmatch(r"2026-09-10T12:00:00\.\d{6}Z", error["extensions"]["timestamp"])
    assert fake.graphql_calls[-1].status == 200 and fake.graphql_calls[-1].datasets[0].rows is None

    halves = [rows(post(client, HOURLY, **window(start, end)), "httpRequests1hGroups")
              for start, end in (("2026-09-10T00:00:00Z", "2026-09-10T06:00:00Z"),
                                 ("2026-09-10T06:00:00Z", "2026-09-10T12:00:00Z"))]
    assert [len(half) for half in halves] == [6, 6]
    assert sum(row["sum"]["requests"] for half in halves for row in half) == sum(
        cell.requests for cell in fake.cells(ZONE, at("2026-09-10T00:00:00+00:00"), NOW))
    # a range of exactly maxDuration is allowed, one a second wider is not
    assert refused(post(client, HOURLY, **window("2026-09-10T05:59:59Z", "2026-09-10T12:00:00Z")))[0][
        "message"].endswith("spans 6h1s")


def test_data_older_than_not_older_than_is_refused(fake, client):
    answer = post(client, MINUTELY, **window("2026-09-02T00:00:00Z", "2026-09-02T01:00:00Z"))
    [error] = refused(answer)
    assert error["message"] == (f'zone "{ZONE}" cannot request data older than 1w, '
                                "but your query requests data from 1w1d12h ago")
    assert (error["path"][-1], error["extensions"]["code"]) == ("httpRequests1mGroups", "quota")

    fake.set_limits(ZONE, "httpRequests1mGroups", not_older_than=14 * 86400)
    assert len(rows(post(client, MINUTELY, **window("2026-09-02T00:00:00Z", "2026-09-02T01:00:00Z")),
                    "httpRequests1mGroups")) == 60

    # reaching back exactly notOlderThan is allowed, a second further is not
    assert rows(post(client, MINUTELY, **window("2026-08-27T12:00:00Z", "2026-08-27T13:00:00Z")),
                "httpRequests1mGroups")
    [error] = refused(post(client, MINUTELY, **window("2026-08-27T11:59:59Z", "2026-08-27T13:00:00Z")))
    assert error["message"].endswith("cannot request data older than 2w, but your query requests data from 2w1s ago")


def test_a_range_both_too_wide_and_too_old_gets_both_refusals(fake, client):
    messages = [e["message"] for e in refused(post(client, ADAPTIVE, **window("2026-09-01T00:00:00Z",
                                                                              "2026-09-03T00:00:00Z")))]
    assert [m.split(", but")[0] for m in messages] == [
        f'zone "{ZONE}" cannot request a time range wider than 1d',
        f'zone "{ZONE}" cannot request data older than 1w1d']


def test_an_open_ended_range_ends_now(fake, client):
    query = MINUTELY.replace(", datetime_lt: $end", "").replace(", $end: Time!", "")
    variables = window("2026-09-09T11:00:00Z", "")
    del variables["end"]
    [error] = refused(post(client, query, **variables))
    assert error["message"].endswith("spans 1d1h")
    assert len(rows(post(client, query, **{**variables, "start": "2026-09-10T11:00:00Z"}),
                    "httpRequests1mGroups")) == 60


def test_a_disabled_dataset_is_refused_as_out_of_reach(fake, client):
    fake.set_limits(ZONE, "httpRequests1mGroups", enabled=False)
    [error] = refused(post(client, MINUTELY, **window("2026-09-10T10:00:00Z", "2026-09-10T11:00:00Z")))
    assert error["message"] == f"zone '{ZONE}' does not have access to the path viewer.zones.0.httpRequests1mGroups"
    assert error["extensions"]["code"] == "authz"
    assert post(client, SETTINGS, zoneTag=ZONE)["data"]["viewer"]["zones"][0]["settings"][
        "httpRequests1mGroups"]["enabled"] is False


def test_limit_must_be_within_max_page_size(fake, client):
    fake.set_limits(ZONE, "httpRequests1mGroups", max_page_size=50)
    for limit in (51, 0):
        [error] = refused(post(client, MINUTELY, **window("2026-09-10T10:00:00Z", "2026-09-10T11:00:00Z", limit=limit)))
        assert error["message"] == "limit must be positive number and not greater than 50"
    assert len(rows(post(client, MINUTELY, **window("2026-09-10T10:00:00Z", "2026-09-10T11:00:00Z", limit=50)),
                    "httpRequests1mGroups")) == 50


def test_no_more_fields_than_max_number_of_fields(fake, client):
    fake.set_limits(ZONE, "httpRequestsAdaptiveGroups", max_number_of_fields=8)
    [error] = refused(post(client, ADAPTIVE, **window("2026-09-10T10:00:00Z", "2026-09-10T11:00:00Z")))
    assert error["message"] == "number of fields can't be more than 8"  # the query asks for 9


def test_a_plan_without_adaptive_quantiles_refuses_them(fake, client):
    fake.set_quantiles(ZONE, False)
    sent = window("2026-09-10T10:00:00Z", "2026-09-10T10:05:00Z")
    errors = refused(post(client, ADAPTIVE, **sent))
    assert [e["path"] for e in errors] == [["viewer", "zones", "0", "httpRequestsAdaptiveGroups", "quantiles", name]
                                           for name in ("edgeTimeToFirstByteMsP50", "edgeTimeToFirstByteMsP95",
                                                        "edgeTimeToFirstByteMsP99")]
    assert errors[1]["message"] == (f"zone '{ZONE}' does not have access to the path "
                                    "viewer.zones.0.httpRequestsAdaptiveGroups.quantiles.edgeTimeToFirstByteMsP95")
    assert {e["extensions"]["code"] for e in errors} == {"authz"}

    without = ADAPTIVE.replace(
        "quantiles { edgeTimeToFirstByteMsP50 edgeTimeToFirstByteMsP95 edgeTimeToFirstByteMsP99 }", "")
    assert rows(post(client, without, **sent), "httpRequestsAdaptiveGroups")
    settings = post(client, SETTINGS, zoneTag=ZONE)["data"]["viewer"]["zones"][0]["settings"]
    assert not any(f.startswith("quantiles_") for f in settings["httpRequestsAdaptiveGroups"]["availableFields"])
    assert rows(post(client, ADAPTIVE, **{**sent, "zoneTag": OTHER_ZONE}), "httpRequestsAdaptiveGroups")


# -- queries outside the subset --------------------------------------------------------------------------------------

def one_hour(selection: str, arguments: str = "limit: 10, filter: {datetime_geq: $start, datetime_lt: $end}",
             dataset: str = "httpRequests1hGroups") -> str:
    return ("query ($zoneTag: string!, $start: Time, $end: Time) { viewer { zones(filter: {zoneTag: $zoneTag}) {"
            f" {dataset}({arguments}) {{ {selection} }} }} }} }}")


HOUR_PATH = ["viewer", "zones", "0", "httpRequests1hGroups"]


@pytest.mark.parametrize("query, message, path", [
    (one_hour("count", dataset="firewallEventsAdaptiveGroups"), 'unknown field "firewallEventsAdaptiveGroups"',
     ["viewer", "zones", "0", "firewallEventsAdaptiveGroups"]),
    (one_hour("sum { visits }"), 'unknown field "visits"', HOUR_PATH + ["sum", "visits"]),
    (one_hour("count"), 'unknown field "count"', HOUR_PATH + ["count"]),
    (one_hour("dimensions { coloCode }"), 'unknown field "coloCode"', HOUR_PATH + ["dimensions", "coloCode"]),
    (one_hour("sum { requests { total } }"), "scalar fields must have no selections", HOUR_PATH + ["sum", "requests"]),
    (one_hour("sum"), "object field must have selections", HOUR_PATH + ["sum"]),
    (one_hour("sum { countryMap }"), "object field must have selections", HOUR_PATH + ["sum", "countryMap"]),
    (one_hour("sum { requests }", "filter: {datetime_geq: $start, datetime_lt: $end}"),
     "limit must be positive number and not greater than 10000", HOUR_PATH),
    (one_hour("sum { requests }", "limit: 10, orderBy: [datetime_ASC], filter: {datetime_geq: $start}"),
     "error parsing args for \"httpRequests1hGroups\": cannot order by 'datetime_ASC'", HOUR_PATH),
    (one_hour("sum { requests }", "limit: 10, orderBy: [sum_visits_DESC], filter: {datetime_geq: $start}"),
     "error parsing args for \"httpRequests1hGroups\": cannot order by 'sum_visits_DESC'", HOUR_PATH),
    (one_hour("sum { requests }", 'limit: 10, filter: {datetime_geq: "yesterday"}'),
     "error parsing args for \"httpRequests1hGroups\": datetime_geq must be an RFC 3339 time with its offset, "
     "got 'yesterday'", HOUR_PATH),
    (one_hour("sum { requests }", 'limit: 10, filter: {date_geq: "2026-9-1"}'),
     "error parsing args for \"httpRequests1hGroups\": date_geq must be a date (YYYY-MM-DD), got '2026-9-1'",
     HOUR_PATH),
    (one_hour("sum { requests }", "limit: 10, filter: {datetime_geq: $start, cacheStatus: \"hit\"}"),
     'error parsing args for "httpRequests1hGroups": unknown filter field "cacheStatus"', HOUR_PATH),
    (one_hour("sum { requests }", "limit: 10, first: 3"), 'unknown argument "first"', HOUR_PATH),
    ("{ viewer { accounts(filter: {accountTag: \"x\"}) { settings { workersInvocationsAdaptive { enabled } } } } }",
     'unknown field "accounts"', ["viewer", "accounts"]),
    ("{ viewer { zones(filter: {zoneTag: \"" + "f" * 32 + "\"}) { zoneTag } } }",
     f"zones [{'f' * 32}] are not authorized", ["viewer", "zones"]),
    ("mutation { viewer { zones { zoneTag } } }", "query contains error, please review it and retry", None),
    ("{ viewer { zones { zoneTag }", "query contains error, please review it and retry", None),
    ("query ($zoneTag: string!) { viewer { zones(filter: {zoneTag: $zone}) { zoneTag } } }",
     'variable "$zone" is not defined', None),
    ("query ($other: string!) { viewer { zones { zoneTag } } }", 'variable "$other" is required', None),
])
def test_what_is_outside_the_subset_is_refused_in_cloudflares_words(fake, client, query, message, path):
    [error] = refused(post(client, query, zoneTag=ZONE, start="2026-09-10T10:00:00Z", end="2026-09-10T11:00:00Z"))
    assert (error["message"], error["path"]) == (message, path)
    assert set(error["extensions"]) <= {"code", "timestamp"}
    assert fake.graphql_calls[-1].status == 200


def test_a_body_that_is_no_graphql_request_is_refused(fake):
    with httpx.Client(trust_env=False, timeout=5, headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"}) as raw:
        for content in (b"{not json", b'{"variables": {}}', b'{"query": "{ viewer { zones { zoneTag } } }", '
                                                            b'"variables": [1]}'):
            answer = raw.post(f"{fake.url}/graphql", content=content, headers={"Content-Type": "application/json"})
            assert answer.status_code == 200
            assert answer.json()["errors"][0]["message"] == "query contains error, please review it and retry"


# -- the shape of GraphQL itself -------------------------------------------------------------------------------------

def test_aliases_fragments_and_several_datasets_answer_in_one_request(fake, client):
    query = """
    query Both($zones: [string!], $start: Time!, $end: Time!) {
      viewer {
        scopes: zones(filter: {zoneTag_in: $zones}) {
          tag: zoneTag
          early: httpRequests1hGroups(limit: 10, filter: {datetime_geq: $start, datetime_lt: "2026-09-10T11:00:00Z"}) {
            ...Totals
          }
          late: httpRequests1hGroups(limit: 10, filter: {datetime_geq: "2026-09-10T11:00:00Z", datetime_lt: $end}) {
            ...Totals
          }
          edge: httpRequestsAdaptiveGroups(limit: 10, filter: {datetime_geq: $start, datetime_lt: $end}) {
            hits: count
          }
        }
      }
    }
    fragment Totals on ZoneHttpRequests1hGroups { sum { all: requests } }"""
    answer = post(client, query, zones=[OTHER_ZONE, ZONE], start="2026-09-10T10:00:00Z", end="2026-09-10T12:00:00Z")
    assert answer["errors"] is None
    scopes = answer["data"]["viewer"]["scopes"]
    assert [scope["tag"] for scope in scopes] == sorted([ZONE, OTHER_ZONE])  # zones come in the order of their tags
    for scope in scopes:
        cells = fake.cells(scope["tag"], at("2026-09-10T10:00:00+00:00"), NOW)
        assert scope["early"][0]["sum"]["all"] + scope["late"][0]["sum"]["all"] == scope["edge"][0]["hits"] == sum(
            cell.requests for cell in cells)
    assert [(d.zone_tag, d.alias) for d in fake.graphql_calls[-1].datasets] == [
        (tag, alias) for tag in sorted([ZONE, OTHER_ZONE]) for alias in ("early", "late", "edge")]


def test_every_dataset_refusal_of_a_request_is_answered_and_voids_its_data(fake, client):
    fake.set_limits(ZONE, "httpRequests1hGroups", max_duration=3600)
    query = """query ($zoneTag: string!) { viewer { zones(filter: {zoneTag: $zoneTag}) {
      a: httpRequests1hGroups(limit: 10, filter: {datetime_geq: "2026-09-10T08:00:00Z", datetime_lt: "2026-09-10T10:00:00Z"}) { sum { requests } }
      b: httpRequests1hGroups(limit: 10, filter: {datetime_geq: "2026-09-10T10:00:00Z", datetime_lt: "2026-09-10T11:00:00Z"}) { sum { requests } }
      c: httpRequests1mGroups(limit: 0, filter: {datetime_geq: "2026-09-10T10:00:00Z", datetime_lt: "2026-09-10T11:00:00Z"}) { sum { requests } }
    } } }"""
    errors = refused(post(client, query, zoneTag=ZONE))
    assert [e["path"][-1] for e in errors] == ["a", "c"]


def test_zones_name_at_most_ten(fake, client):
    query = "query ($zones: [string!]) { viewer { zones(filter: {zoneTag_in: $zones}) { zoneTag } } }"
    [error] = refused(post(client, query, zones=[ZONE] * 11))
    assert error["message"] == "in combination, your request queries too many nodes, zones and accounts"


# -- how refusals travel ---------------------------------------------------------------------------------------------

def test_with_documented_statuses_each_refusal_has_the_status_cloudflares_error_page_gives_it():
    with FakeCloudflareGraphQL(now=NOW, zones=ZONES, statuses="documented", graphql_limit=4) as fake, \
            sdk(fake) as client:
        fake.set_quantiles(ZONE, False)
        cases = [(ADAPTIVE, window("2026-09-01T00:00:00Z", "2026-09-03T00:00:00Z"), cloudflare.BadRequestError, 400),
                 (one_hour("sum { visits }"), {"zoneTag": ZONE}, cloudflare.BadRequestError, 400),
                 (ADAPTIVE, window("2026-09-10T10:00:00Z", "2026-09-10T11:00:00Z"),
                  cloudflare.PermissionDeniedError, 403)]
        for query, variables, error, status in cases:
            with pytest.raises(error) as caught:
                post(client, query, **variables)
            assert caught.value.status_code == status
            assert caught.value.body["data"] is None and caught.value.body["errors"][0]["message"]
        assert rows(post(client, HOURLY, **window("2026-09-10T10:00:00Z", "2026-09-10T11:00:00Z")),
                    "httpRequests1hGroups")

        with pytest.raises(cloudflare.RateLimitError) as caught:
            post(client, HOURLY, **window("2026-09-10T10:00:00Z", "2026-09-10T11:00:00Z"))
        assert caught.value.body["errors"][0]["message"] == "rate limiter budget depleted, try again after 5 minutes"
        assert caught.value.body["errors"][0]["extensions"]["code"] == "budget"
        assert 295 <= int(caught.value.response.headers["Retry-After"]) <= 300
        assert [call.status for call in fake.graphql_calls] == [400, 400, 403, 200, 429]


def test_the_graphql_budget_is_spent_per_request_and_refused_inside_a_200():
    with FakeCloudflareGraphQL(now=NOW, zones=ZONES, graphql_limit=2) as limited, sdk(limited) as client:
        for _ in range(2):
            assert rows(post(client, SETTINGS, zoneTag=ZONE), "settings")["httpRequests1hGroups"]["enabled"]
        [error] = refused(post(client, SETTINGS, zoneTag=ZONE))
        assert (error["message"], error["path"], error["extensions"]["code"]) == (
            "rate limiter budget depleted, try again after 5 minutes", None, "budget")
        # the budget is GraphQL's alone: the rest of the v4 API still answers
        assert client.zones.get(zone_id=ZONE).id == ZONE
        assert limited.stats()["graphql_budget_refusals"] == 1


def test_a_documented_budget_refusal_is_waited_out_by_the_sdk_after_retry_after():
    with FakeCloudflareGraphQL(now=NOW, zones=ZONES, statuses="documented", graphql_limit=1, graphql_window=1) as fake, \
            sdk(fake, max_retries=1) as client:
        sent = window("2026-09-10T10:00:00Z", "2026-09-10T11:00:00Z")
        first = post(client, HOURLY, **sent)
        assert post(client, HOURLY, **sent) == first
        assert [call.status for call in fake.graphql_calls] == [200, 429, 200]


def test_graphql_requests_count_against_the_global_api_limit():
    with FakeCloudflareGraphQL(now=NOW, zones=ZONES, api_limit=2, api_window=60) as fake, sdk(fake) as client:
        client.zones.get(zone_id=ZONE)
        post(client, SETTINGS, zoneTag=ZONE)
        with pytest.raises(cloudflare.RateLimitError) as caught:
            post(client, SETTINGS, zoneTag=ZONE)
        assert caught.value.errors[0].code == 971
        assert 1 <= int(caught.value.response.headers["Retry-After"]) <= 60
        assert caught.value.response.headers["Ratelimit-Policy"] == '"default";q=2;w=60'
        assert len(fake.graphql_calls) == 1


def test_a_missing_or_wrong_token_is_refused_before_the_query_is_read(fake):
    with sdk(fake, token="wrong-token") as client:
        with pytest.raises(cloudflare.PermissionDeniedError) as caught:
            post(client, SETTINGS, zoneTag=ZONE)
    assert (caught.value.errors[0].code, caught.value.errors[0].message) == (10000, "Authentication error")
    with httpx.Client(trust_env=False, timeout=5) as raw:
        answer = raw.post(f"{fake.url}/graphql", json={"query": SETTINGS, "variables": {"zoneTag": ZONE}})
    assert answer.status_code == 400 and answer.json()["errors"][0]["code"] == 9106
    assert fake.graphql_calls == []


def test_queued_faults_reach_graphql_in_its_own_shape(fake, client):
    sent = window("2026-09-10T10:00:00Z", "2026-09-10T11:00:00Z")
    fake.fail_next(status=503)
    with pytest.raises(cloudflare.InternalServerError) as caught:
        post(client, HOURLY, **sent)
    assert caught.value.body["errors"][0]["message"] == "unable to execute query, please try again later"

    fake.fail_next(status=429, retry_after=2)
    with pytest.raises(cloudflare.RateLimitError) as caught:
        post(client, HOURLY, **sent)
    assert caught.value.response.headers["Retry-After"] == "2"
    assert caught.value.body["errors"][0]["message"] == "rate limiter budget depleted, try again after 5 minutes"

    fake.reset_next_connection()
    with pytest.raises(cloudflare.APIConnectionError):
        post(client, HOURLY, **sent)
    assert len(rows(post(client, HOURLY, **sent), "httpRequests1hGroups")) == 1
    assert len(fake.graphql_calls) == 1  # a fault is answered before the query is read


def test_cloudflare_durations_are_written_its_way():
    assert [cf_duration(s) for s in (86400, 691200, 2592000, 2678400, 86401.62, 0)] == [
        "1d", "1w1d", "4w2d", "4w3d", "1d1s620ms", "0s"]


# -- the fake as a program -------------------------------------------------------------------------------------------

def test_the_fake_runs_as_a_program_with_its_clock_seed_and_limits(tmp_path):
    port_file, stats_file = tmp_path / "port", tmp_path / "stats.json"
    process, port = launch("tests.fakes.cloudflare_graphql", port_file, "--stats-file", str(stats_file),
                           "--now", "2026-09-10T12:00:00+00:00", "--seed", "7",
                           "--limits", "httpRequests1hGroups=7200,864000", "--no-quantiles", "--graphql-limit", "3")
    try:
        with Cloudflare(api_token=DEFAULT_TOKEN, base_url=f"http://127.0.0.1:{port}/client/v4", max_retries=0,
                        timeout=5) as client:
            got = rows(post(client, HOURLY, **window("2026-09-10T10:00:00Z", "2026-09-10T12:00:00Z")),
                       "httpRequests1hGroups")
            [wide] = refused(post(client, HOURLY, **window("2026-09-10T09:00:00Z", "2026-09-10T12:00:00Z")))
            quantiles = refused(post(client, ADAPTIVE, **window("2026-09-10T10:00:00Z", "2026-09-10T11:00:00Z")))
            [budget] = refused(post(client, SETTINGS, zoneTag=ZONE))
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0 and out == b"" and err == b""
    with FakeCloudflareGraphQL(now=NOW, seed=7) as same, sdk(same) as client:
        assert got == rows(post(client, HOURLY, **window("2026-09-10T10:00:00Z", "2026-09-10T12:00:00Z")),
                           "httpRequests1hGroups")
    assert wide["message"].startswith(f'zone "{ZONE}" cannot request a time range wider than 2h,')
    assert {e["extensions"]["code"] for e in quantiles} == {"authz"}
    assert budget["extensions"]["code"] == "budget"
    assert json.loads(stats_file.read_text()) == {"requests": 4, "purge_calls": 0, "urls": 0, "rejected_429": 0,
                                                  "graphql_requests": 4, "graphql_budget_refusals": 1}
