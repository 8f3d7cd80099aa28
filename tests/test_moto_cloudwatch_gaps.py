"""Where moto's CloudWatch GetMetricData differs from CloudWatch, each asserted against moto itself (5.2.5).

When a moto upgrade fixes one of these, its test fails: then tests/fakes/cloudwatch_faults.py may
stop making up for it, and the test goes. What CloudWatch does instead is taken from the
GetMetricData and PutMetricData API references.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import itertools

import botocore.exceptions
import pytest

from tests.fakes.moto_server import TEST_KEYS

_DISTRIBUTIONS = itertools.count(1)


@pytest.fixture(scope="module")
def cloudwatch(moto):
    import boto3
    from botocore.config import Config

    return boto3.client("cloudwatch", endpoint_url=moto.url, config=Config(retries={"total_max_attempts": 1}),
                        **TEST_KEYS)


@pytest.fixture
def dimensions() -> list[dict]:
    """A distribution of the test's own, so that no other test's data points land in its series."""
    return [{"Name": "DistributionId", "Value": f"EGAPS{next(_DISTRIBUTIONS)}"}, {"Name": "Region", "Value": "Global"}]


@pytest.fixture
def query(dimensions):
    def make(stat: str = "Sum", period: int = 60, query_id: str = "r", **extra) -> dict:
        return {"Id": query_id, "MetricStat": {"Metric": {"Namespace": "AWS/CloudFront", "MetricName": "Requests",
                                                          "Dimensions": dimensions}, "Period": period, "Stat": stat},
                **extra}

    return make


@pytest.fixture
def start(cloudwatch, dimensions) -> datetime:
    """Three minutes of Requests (1, 2, 3) starting a whole hour about 30 days ago."""
    moment = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=30)
    cloudwatch.put_metric_data(Namespace="AWS/CloudFront", MetricData=[
        {"MetricName": "Requests", "Dimensions": dimensions, "Timestamp": moment + timedelta(minutes=i),
         "Value": float(i + 1)} for i in range(3)])
    return moment


def results(cloudwatch, start, *queries, minutes: int = 5, **params) -> list[dict]:
    answer = cloudwatch.get_metric_data(MetricDataQueries=list(queries), StartTime=start,
                                        EndTime=start + timedelta(minutes=minutes), ScanBy="TimestampAscending",
                                        **params)
    assert "NextToken" not in answer
    return answer["MetricDataResults"]


def test_data_older_than_two_weeks_is_accepted_and_served_by_the_minute(cloudwatch, start, query):
    # CloudWatch refuses PutMetricData timestamps more than two weeks old, and for a start time 15 to
    # 63 days ago returns data only at periods that are multiples of 300 seconds
    [found] = results(cloudwatch, start, query())
    assert found["Values"] == [1.0, 2.0, 3.0]


def test_percentile_statistics_are_a_500(cloudwatch, start, query):
    # CloudWatch computes pNN (and tmNN, wmNN...) from the values put as Value or Values/Counts
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        results(cloudwatch, start, query("p95"))
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_metric_math_answers_no_data(cloudwatch, start, query):
    [doubled] = results(cloudwatch, start, query(ReturnData=False), {"Id": "m", "Expression": "r * 2"})
    assert (doubled["Id"], doubled["Values"], doubled["StatusCode"]) == ("m", [], "Complete")


def test_max_datapoints_is_ignored_and_no_next_token_is_sent(cloudwatch, start, query):
    # CloudWatch returns at most MaxDatapoints per page, PartialData and a NextToken for the rest
    [found] = results(cloudwatch, start, query(), MaxDatapoints=1)
    assert (len(found["Values"]), found["StatusCode"]) == (3, "Complete")


def test_periods_are_counted_from_the_start_time_not_the_clock(cloudwatch, start, query):
    # CloudWatch rounds the start time down to the period ("to the nearest 5-minute clock interval")
    [found] = results(cloudwatch, start - timedelta(seconds=30), query(period=120))
    assert [t.astimezone(timezone.utc) - start for t in found["Timestamps"]] == [timedelta(seconds=-30),
                                                                                timedelta(seconds=90)]
    assert found["Values"] == [3.0, 3.0]


@pytest.mark.parametrize("bad", [{"query_id": "Bad-Id"}, {"period": 61}], ids=["query id", "period 61"])
def test_queries_cloudwatch_refuses_are_answered(cloudwatch, start, query, bad):
    # CloudWatch: an Id must match ^[a-z][a-zA-Z0-9_]*$, and a period of 60 s or more a multiple of 60
    [found] = results(cloudwatch, start, query(**bad))
    assert found["Values"]
