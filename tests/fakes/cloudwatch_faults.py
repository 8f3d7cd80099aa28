"""A loopback proxy in front of moto's CloudWatch that adds what moto (5.2) leaves out of GetMetricData.

botocore talks to CloudWatch in its JSON protocol (POST /, X-Amz-Target
GraniteServiceVersion20100801.<Operation>). Requests pass through to moto, except:

  percentiles   queries with a percentile statistic (p50, p99.9...) are answered here, nearest
                rank over the raw values the PutMetricData requests that came through this proxy
                carried (Value, or Values with Counts; statistic sets hold no distribution, as
                in CloudWatch). moto answers them with a 500.
  paging        GetMetricData honours MaxDatapoints (and `page_size`, standing for the pages
                CloudWatch cuts a large answer into): a page holds at most that many data points
                over all its queries, a query with more to come reads PartialData, and NextToken
                fetches the rest (moto returns everything at once and never sends NextToken)
  faults        inject(kind, times) answers the next `times` GetMetricData requests with one of:
                throttling (400 Throttling), internal (500 InternalServiceError), unavailable
                (503 ServiceUnavailable), denied (403 AccessDenied), reset (TCP reset)

Errors come as CloudWatch sends them in that protocol: a JSON body with `__type` and `message`,
and the code of the older query protocol in `x-amzn-query-error` ("Throttling;Sender"), which
botocore reports as the error's Code.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections import defaultdict

from tests.fakes.aws_proxy import AwsProxy, Exchange

# kind -> (HTTP status, error Type, Code, Message)
ERRORS = {
    "throttling": (400, "Sender", "Throttling", "Rate exceeded"),
    "internal": (500, "Receiver", "InternalServiceError", "Internal service error"),
    "unavailable": (503, "Receiver", "ServiceUnavailable", "Service Unavailable"),
    "denied": (403, "Sender", "AccessDenied",
               "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: cloudwatch:GetMetricData "
               "because no identity-based policy allows the cloudwatch:GetMetricData action"),
}
# the shape names of those errors in CloudWatch's JSON model
_SHAPES = {"Throttling": "ThrottlingException", "InternalServiceError": "InternalServiceFault",
           "ServiceUnavailable": "ServiceUnavailableException", "AccessDenied": "AccessDeniedException"}
FAULT_KINDS = ("throttling", "internal", "unavailable", "denied", "reset")
_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")


def _series(namespace: str, metric: str, dimensions) -> tuple:
    return namespace, metric, tuple(sorted((d["Name"], d["Value"]) for d in dimensions or []))


class CloudWatchFaults(AwsProxy):
    service = "cloudwatch"
    errors = ERRORS
    fault_kinds = FAULT_KINDS

    def __init__(self, upstream: str):
        super().__init__(upstream)
        self._raw: dict[tuple, list[tuple[float, float]]] = defaultdict(list)  # series -> (epoch s, value)
        self._pages: dict[str, list[dict]] = {}  # NextToken -> the results still to send
        self.page_size: int | None = None

    def inject(self, kind: str, times: int = 1, *, retry_after: str | None = None) -> None:
        super().inject(kind, times, only="GetMetricData", retry_after=retry_after)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._raw.clear()
            self._pages.clear()
        self.page_size = None

    def error_response(self, code: str, error_type: str, message: str):
        body = json.dumps({"__type": f"com.amazonaws.cloudwatch#{_SHAPES.get(code, code)}", "message": message})
        return [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-query-error", f"{code};{error_type}")], \
            body.encode()

    # -- requests --------------------------------------------------------------
    def answer(self, exchange: Exchange) -> None:
        if exchange.operation == "PutMetricData":
            self._record(json.loads(exchange.body or b"{}"))
            exchange.send(*exchange.forward())
        elif exchange.operation == "GetMetricData":
            self._get(exchange, json.loads(exchange.body or b"{}"))
        else:
            exchange.send(*exchange.forward())

    def _record(self, request: dict) -> None:
        with self._lock:
            for datum in request.get("MetricData") or []:
                key = _series(request.get("Namespace", ""), datum.get("MetricName", ""), datum.get("Dimensions"))
                at = float(datum.get("Timestamp") or 0)
                if "Value" in datum:
                    self._raw[key].append((at, float(datum["Value"])))
                values = datum.get("Values") or []
                counts = datum.get("Counts") or [1.0] * len(values)
                for value, count in zip(values, counts):
                    self._raw[key].extend([(at, float(value))] * int(count))

    def _get(self, exchange: Exchange, request: dict) -> None:
        token = request.get("NextToken")
        if token:
            with self._lock:
                pending = self._pages.pop(token, None)
            if pending is None:
                exchange.send_error_response(400, "Sender", "InvalidNextToken", "The service couldn't process your "
                                             "request because the NextToken is invalid.")
                return
            self._send_page(exchange, pending, request.get("MaxDatapoints"))
            return
        queries = request.get("MetricDataQueries") or []
        upstream = [q for q in queries if not _PERCENTILE.match(str((q.get("MetricStat") or {}).get("Stat", "")))]
        answered: dict[str, dict] = {}
        if upstream:
            forwarded = {k: v for k, v in request.items() if k not in ("MaxDatapoints", "NextToken")}
            status, headers, body = exchange.forward(json.dumps({**forwarded, "MetricDataQueries": upstream}).encode())
            if status != 200:
                exchange.send(status, headers, body)
                return
            answered = {r["Id"]: r for r in json.loads(body).get("MetricDataResults") or []}
        results = [answered.get(q["Id"]) or self._percentile(q, request) for q in queries]
        self._send_page(exchange, [r for r in results if r is not None], request.get("MaxDatapoints"))

    def _percentile(self, query: dict, request: dict) -> dict:
        stat = query["MetricStat"]
        rank = float(_PERCENTILE.match(stat["Stat"]).group(1))
        metric = stat["Metric"]
        period = int(stat["Period"])
        start, end = float(request["StartTime"]), float(request["EndTime"])
        buckets: dict[int, list[float]] = defaultdict(list)
        with self._lock:
            raw = list(self._raw.get(_series(metric["Namespace"], metric["MetricName"], metric.get("Dimensions")), []))
        for at, value in raw:
            if start <= at < end:
                buckets[int(start + (at - start) // period * period)].append(value)
        times = sorted(buckets, reverse=request.get("ScanBy") != "TimestampAscending")
        values = []
        for at in times:
            ordered = sorted(buckets[at])
            values.append(ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)])
        return {"Id": query["Id"], "Label": f"{metric['MetricName']} {stat['Stat']}", "Timestamps": times,
                "Values": values, "StatusCode": "Complete"}

    def _send_page(self, exchange: Exchange, results: list[dict], max_points) -> None:
        room = min(int(max_points) if max_points else 100_800, self.page_size or 100_800)
        page, rest = [], []
        for result in results:
            times, values = list(result.get("Timestamps") or []), list(result.get("Values") or [])
            taken = min(room, len(times))
            room -= taken
            page.append({**result, "Timestamps": times[:taken], "Values": values[:taken],
                         "StatusCode": "PartialData" if taken < len(times) else result.get("StatusCode", "Complete")})
            if taken < len(times):
                rest.append({**result, "Timestamps": times[taken:], "Values": values[taken:]})
        body: dict = {"MetricDataResults": page, "Messages": []}
        if rest:
            token = uuid.uuid4().hex
            with self._lock:
                self._pages[token] = rest
            body["NextToken"] = token
        exchange.send(200, [("Content-Type", "application/x-amz-json-1.0")], json.dumps(body).encode())
