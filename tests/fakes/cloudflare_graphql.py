"""A local stand-in for Cloudflare's GraphQL Analytics API (a zone's HTTP request datasets), for tests and bench.

`FakeCloudflareGraphQL` is the v4 fake of `tests.fakes.cloudflare_api` with POST /client/v4/graphql added,
so it has the same token check (a missing or wrong token gets the v4 envelope, 400 or 403), fault queue
(`fail_next`, `reset_next_connection`, `delay_next`), request log (`calls`) and, unless told otherwise,
Cloudflare's global limit of 1,200 requests in any five minutes, which GraphQL requests count against too.

Queries are parsed with graphql-core and answered by walking the document against a fixed subset of
Cloudflare's schema, not by a general GraphQL engine:

  viewer { zones(filter: {zoneTag: T} | {zoneTag_in: [T, ...]}) { zoneTag, settings, and the datasets } }
  httpRequests1hGroups, httpRequests1mGroups(limit: N, orderBy: [...], filter: {...}) {
      dimensions { datetime date }                       (1m also datetimeMinute)
      sum { requests cachedRequests bytes cachedBytes
            responseStatusMap { edgeResponseStatus requests } countryMap { clientCountryName requests bytes } } }
      filter: datetime, date with _geq _gt _lt _leq; orderBy: <dimension>_ASC|_DESC, sum_<field>_ASC|_DESC
  httpRequestsAdaptiveGroups(limit: N, orderBy: [...], filter: {...}) {
      count  dimensions { datetimeMinute datetimeHour date cacheStatus coloCode clientCountryName edgeResponseStatus }
      sum { edgeResponseBytes }  avg { sampleInterval }
      quantiles { edgeTimeToFirstByteMsP50 edgeTimeToFirstByteMsP95 edgeTimeToFirstByteMsP99 } }
      filter: datetime with _geq _gt _lt _leq; each dimension but the times as is, _neq, _in (status also
      _geq _gt _lt _leq); orderBy also count_ASC|_DESC
  settings { <any of the three> { enabled maxDuration notOlderThan maxPageSize maxNumberOfFields availableFields } }

Aliases, fragments and variables work as GraphQL has them. Anything else (another dataset or field, a
mutation, an unknown filter or orderBy value) is refused as Cloudflare words such refusals. Every
refusal answers `{"data": null, "errors": [{"message", "path", "extensions": {"code"?, "timestamp"}}]}`,
as the GraphQL Analytics API's error page shows it: a range wider than the dataset's `maxDuration` or
reaching further back than its `notOlderThan`, a `limit` over `maxPageSize`, more fields than
`maxNumberOfFields`, a disabled dataset, quantiles on a zone whose plan has none, a zone the token does
not cover, and the GraphQL budget (300 requests in any five minutes per user) once spent.

Which HTTP status carries a refusal is a choice, `statuses`: "observed" (the default) answers each with
200, as clients meet them (a 200 whose body holds errors, code "authz", "quota" or "budget"); "documented"
answers with the status the error page now lists beside each message (400 parse and dataset limits,
403 access, 429 budget, with a Retry-After this fake adds). A queued `fail_next` fault answers
/graphql in the same shape, with the page's words for its status ("unable to execute query, please
try again later" for a 503, the budget's for a 429, "Internal server error" for a 500).

Traffic is synthetic and deterministic: every zone has a few blocks of requests each minute (country,
colo, cache status, edge status, requests, bytes and a time to first byte), drawn from `seed`, the zone
ID and the minute, with a daily swell, and none from the minute `now` falls in onwards. `cells()`
hands a test the blocks so it can compute what an answer should hold on its own.

In-process: `fake = FakeCloudflareGraphQL(now=...).start()`, point the SDK at `fake.url` and send
`client.post("/graphql", body={"query": ..., "variables": ...}, cast_to=object)`; `fake.stop()`. As a
program, like tests.fakes.cloudflare_api:

  python -m tests.fakes.cloudflare_graphql --port-file F --stats-file S [--seed 7 --now 2026-09-01T00:00:00Z]
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from urllib.parse import urlsplit

from graphql import GraphQLSyntaxError, parse
from graphql.language import (FieldNode, FragmentDefinitionNode, FragmentSpreadNode, InlineFragmentNode,
                              NonNullTypeNode, OperationDefinitionNode, OperationType, SelectionSetNode,
                              VariableNode, visit)
from graphql.language.visitor import Visitor
from graphql.utilities import value_from_ast_untyped

from tests.fakes.cloudflare_api import (API_PREFIX, GLOBAL_LIMIT, FakeCloudflare, _envelope, _Fault, _Refusal,
                                        _WindowLimit, arguments, serve)

HOUR, DAY, WEEK = 3600, 86400, 604800
# Cloudflare's GraphQL budget: 300 queries in any five minutes per user
# (developers.cloudflare.com/analytics/graphql-api/limits), on top of the global limit
GRAPHQL_LIMIT, GRAPHQL_WINDOW = 300, 300.0
MAX_ZONES = 10  # a zone-scoped query may name up to ten zones (the same page)
STATUSES = ("observed", "documented")


@dataclass(frozen=True)
class DatasetLimits:
    """What the settings node reports for a dataset, and what the fake holds a query of it to."""
    max_duration: int  # seconds one query's time range may span
    not_older_than: int  # seconds back from now a query may reach
    max_page_size: int = 10_000
    max_number_of_fields: int = 30
    enabled: bool = True


# The adaptive limits are a Free plan's as its refusals show them ("wider than 1d", "older than 1w1d").
# Cloudflare publishes no figures for the two rollups and each plan differs: those are this fake's
# choice, and tests that care set their own per zone.
DEFAULT_LIMITS: Mapping[str, DatasetLimits] = {
    "httpRequests1hGroups": DatasetLimits(max_duration=WEEK, not_older_than=90 * DAY),
    "httpRequests1mGroups": DatasetLimits(max_duration=DAY, not_older_than=WEEK),
    "httpRequestsAdaptiveGroups": DatasetLimits(max_duration=DAY, not_older_than=8 * DAY),
}

# -- synthetic traffic ---------------------------------------------------------------------------------------------

COUNTRIES = {"US": ("IAD", "SJC"), "DE": ("FRA",), "GB": ("LHR",), "JP": ("NRT",), "BR": ("GRU",), "IN": ("BOM",)}
CACHE_STATUSES = ("hit", "miss", "expired", "dynamic", "revalidated")
CACHED = frozenset({"hit", "revalidated"})  # what cachedRequests and cachedBytes count
_CACHE_WEIGHTS = (55, 20, 8, 12, 5)
_EDGE_STATUSES = (200, 304, 404, 503)
_STATUS_WEIGHTS = (80, 10, 7, 3)


@dataclass(frozen=True)
class Cell:
    """A block of one minute's requests to a zone that share a country, colo, cache status and edge status."""
    minute: datetime
    country: str
    colo: str
    cache_status: str
    status: int
    requests: int
    bytes: int
    ttfb_ms: int  # every request of the block took this long to its first byte

    @property
    def cached(self) -> bool:
        return self.cache_status in CACHED


@lru_cache(maxsize=1 << 17)
def _minute_cells(seed: int, zone_id: str, epoch_minute: int) -> tuple[Cell, ...]:
    # a hash, not random's seeding of a tuple, so the traffic is the same in every process and Python
    digest = hashlib.blake2b(f"{seed}/{zone_id}/{epoch_minute}".encode(), digest_size=16).digest()
    rng = random.Random(digest)
    minute = datetime.fromtimestamp(epoch_minute * 60, timezone.utc)
    swell = 1 + 0.5 * math.sin(2 * math.pi * (epoch_minute % 1440) / 1440)
    cells = []
    for _ in range(rng.randint(3, 7)):
        country = rng.choice(sorted(COUNTRIES))
        cache_status = rng.choices(CACHE_STATUSES, _CACHE_WEIGHTS)[0]
        requests = max(1, round(rng.randint(5, 60) * swell))
        ttfb = rng.randint(4, 60) if cache_status in CACHED else rng.randint(40, 900)
        cells.append(Cell(minute, country, rng.choice(COUNTRIES[country]), cache_status,
                          rng.choices(_EDGE_STATUSES, _STATUS_WEIGHTS)[0], requests,
                          requests * rng.randint(800, 40_000), ttfb))
    return tuple(cells)


# -- the subset of the schema --------------------------------------------------------------------------------------

def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _sum(name: str) -> Callable[[Sequence[Cell]], int]:
    return lambda cells: sum(getattr(cell, name) for cell in cells)


def _cached_sum(name: str) -> Callable[[Sequence[Cell]], int]:
    return lambda cells: sum(getattr(cell, name) for cell in cells if cell.cached)


def weighted_quantile(cells: Sequence[Cell], q: float) -> float:
    """The time to first byte that `q` of the requests in `cells` took at most (nearest rank, each request once)."""
    ranked = sorted(cells, key=lambda cell: cell.ttfb_ms)
    wanted = max(1, math.ceil(q * sum(cell.requests for cell in ranked)))
    seen = 0
    for cell in ranked:
        seen += cell.requests
        if seen >= wanted:
            return float(cell.ttfb_ms)
    return 0.0


@dataclass(frozen=True)
class _Map:
    """A `sum` field that answers a list of objects, one per value of `key`."""
    key: Callable[[Cell], object]
    fields: Mapping[str, Callable[[object, Sequence[Cell]], object]]


_ROLLUP_SUMS = {"requests": _sum("requests"), "cachedRequests": _cached_sum("requests"),
                "bytes": _sum("bytes"), "cachedBytes": _cached_sum("bytes")}
_ROLLUP_MAPS = {
    "responseStatusMap": _Map(lambda cell: cell.status, {
        "edgeResponseStatus": lambda key, cells: key, "requests": lambda key, cells: _sum("requests")(cells)}),
    "countryMap": _Map(lambda cell: cell.country, {
        "clientCountryName": lambda key, cells: key, "requests": lambda key, cells: _sum("requests")(cells),
        "bytes": lambda key, cells: _sum("bytes")(cells)}),
}


@dataclass(frozen=True)
class _Dataset:
    bucket: Callable[[datetime], datetime]  # the row a minute's traffic falls in
    dimensions: Mapping[str, Callable[[datetime, Cell], object]]  # (row time, cell) -> value
    time_filters: Mapping[str, Callable[[datetime], object]]  # filter name -> the row's value for it
    sums: Mapping[str, Callable[[Sequence[Cell]], int]]
    maps: Mapping[str, _Map] = field(default_factory=dict)
    count: bool = False
    avg: Mapping[str, Callable[[Sequence[Cell]], float]] = field(default_factory=dict)
    quantiles: Mapping[str, float] = field(default_factory=dict)
    dimension_filters: Mapping[str, type] = field(default_factory=dict)  # adaptive filters by dimension


_ROW_DATE = {"datetime": lambda t: t, "date": lambda t: t.date()}
DATASETS: Mapping[str, _Dataset] = {
    "httpRequests1hGroups": _Dataset(
        bucket=_hour, dimensions={"datetime": lambda t, c: _iso(t), "date": lambda t, c: t.date().isoformat()},
        time_filters=_ROW_DATE, sums=_ROLLUP_SUMS, maps=_ROLLUP_MAPS),
    "httpRequests1mGroups": _Dataset(
        bucket=lambda t: t, dimensions={"datetime": lambda t, c: _iso(t), "datetimeMinute": lambda t, c: _iso(t),
                                        "date": lambda t, c: t.date().isoformat()},
        time_filters=_ROW_DATE, sums=_ROLLUP_SUMS, maps=_ROLLUP_MAPS),
    "httpRequestsAdaptiveGroups": _Dataset(
        bucket=lambda t: t,
        dimensions={"datetimeMinute": lambda t, c: _iso(t), "datetimeHour": lambda t, c: _iso(_hour(t)),
                    "date": lambda t, c: t.date().isoformat(), "cacheStatus": lambda t, c: c.cache_status,
                    "coloCode": lambda t, c: c.colo, "clientCountryName": lambda t, c: c.country,
                    "edgeResponseStatus": lambda t, c: c.status},
        time_filters={"datetime": lambda t: t}, sums={"edgeResponseBytes": _sum("bytes")}, count=True,
        avg={"sampleInterval": lambda cells: 1.0},  # the fake never samples
        quantiles={"edgeTimeToFirstByteMsP50": 0.5, "edgeTimeToFirstByteMsP95": 0.95,
                   "edgeTimeToFirstByteMsP99": 0.99},
        dimension_filters={"cacheStatus": str, "coloCode": str, "clientCountryName": str,
                           "edgeResponseStatus": int}),
}
SETTINGS_FIELDS = ("enabled", "maxDuration", "notOlderThan", "maxPageSize", "maxNumberOfFields", "availableFields")
_ORDER_FILTER_OPS = ("geq", "gt", "lt", "leq")

# -- refusals --------------------------------------------------------------------------------------------------

# The error page names a status beside each kind of message; clients meet them all as 200s. The codes
# "authz", "quota" (for data older than allowed) and "budget" are the ones clients quote Cloudflare
# answering; "quota" for the other dataset limits is this fake's guess, and it gives parse errors none,
# as the page's own example carries only a timestamp.
_DOCUMENTED_STATUS = {"parse": 400, "limit": 400, "authz": 403, "budget": 429}
_BUDGET = "rate limiter budget depleted, try again after 5 minutes"
_QUERY_ERROR = "query contains error, please review it and retry"
_TOO_MANY_ZONES = "in combination, your request queries too many nodes, zones and accounts"


class _GraphQLError(Exception):
    def __init__(self, message: str, path: Sequence[str] | None = None, kind: str = "parse",
                 code: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message, self.path, self.kind, self.code = message, list(path) if path else None, kind, code
        self.retry_after = retry_after


def _parse_error(message: str, path: Sequence[str] | None = None) -> _GraphQLError:
    return _GraphQLError(message, path)


def _args_error(dataset: str, detail: str, path: Sequence[str]) -> _GraphQLError:
    # Cloudflare's documented prefix; what follows it is this fake's wording
    return _GraphQLError(f'error parsing args for "{dataset}": {detail}', path)


def cf_duration(seconds: float) -> str:
    """`seconds` as Cloudflare writes durations in its refusals: "1w1d", "4w2d", "1d1s620ms"."""
    milliseconds = round(seconds * 1000)
    parts = []
    for unit, size in (("w", WEEK * 1000), ("d", DAY * 1000), ("h", HOUR * 1000), ("m", 60_000), ("s", 1000),
                       ("ms", 1)):
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _error_object(error: _GraphQLError, stamp: str) -> dict:
    extensions = {"code": error.code} if error.code else {}
    return {"message": error.message, "path": error.path, "extensions": {**extensions, "timestamp": stamp}}


# -- what a test can read back -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetQuery:
    """One dataset node of an answered request: where, over what, and how many rows it was answered with."""
    zone_tag: str
    dataset: str
    alias: str
    start: datetime | None
    end: datetime | None
    limit: int | None
    order_by: tuple[str, ...]
    dimensions: tuple[str, ...]
    rows: int | None  # None where the request was refused


@dataclass(frozen=True)
class GraphQLCall:
    """One POST /graphql that got past the token check, as the fake answered it."""
    query: str
    variables: dict
    status: int
    errors: tuple[str, ...]  # the messages, empty for an answer with data
    datasets: tuple[DatasetQuery, ...]


# -- the fake ------------------------------------------------------------------------------------------------------

class FakeCloudflareGraphQL(FakeCloudflare):
    """FakeCloudflare that also answers the GraphQL Analytics API for its zones (see the module's docstring)."""

    def __init__(self, *, seed: int = 0, now: datetime | None = None,
                 limits: Mapping[str, DatasetLimits] | None = None, quantiles: bool = True,
                 graphql_limit: int | None = GRAPHQL_LIMIT, graphql_window: float = GRAPHQL_WINDOW,
                 statuses: str = "observed", api_limit: int | None = GLOBAL_LIMIT, **options):
        super().__init__(api_limit=api_limit, **options)
        if statuses not in STATUSES:
            raise ValueError(f"statuses must be one of {STATUSES}, not {statuses!r}")
        self.seed = seed
        self.statuses = statuses
        self._now = now
        self._default_limits = {**DEFAULT_LIMITS, **(limits or {})}
        self._zone_limits: dict[str, dict[str, DatasetLimits]] = defaultdict(dict)
        self._default_quantiles = quantiles
        self._zone_quantiles: dict[str, bool] = {}
        self._budget = _WindowLimit(graphql_limit, graphql_window) if graphql_limit else None
        self._graphql_calls: list[GraphQLCall] = []
        self._budget_refusals = 0
        self._graphql_lock = threading.Lock()

    # -- configuration ---------------------------------------------------------
    @property
    def now(self) -> datetime:
        """The fake's clock: the `now` it was given or set to, else the wall clock."""
        return self._now or datetime.now(timezone.utc)

    @now.setter
    def now(self, moment: datetime | None) -> None:
        if moment is not None and moment.tzinfo is None:
            raise ValueError("now must carry a timezone")
        self._now = moment

    def limits(self, zone_id: str, dataset: str) -> DatasetLimits:
        with self._lock:
            return self._zone_limits[zone_id].get(dataset, self._default_limits[dataset])

    def set_limits(self, zone_id: str, dataset: str, **changes) -> DatasetLimits:
        """Change some of `dataset`'s limits for one zone (max_duration=, not_older_than=, max_page_size=, ...)."""
        if dataset not in DATASETS:
            raise ValueError(f"no dataset {dataset!r}")
        with self._lock:
            limits = replace(self._zone_limits[zone_id].get(dataset, self._default_limits[dataset]), **changes)
            self._zone_limits[zone_id][dataset] = limits
            return limits

    def has_quantiles(self, zone_id: str) -> bool:
        with self._lock:
            return self._zone_quantiles.get(zone_id, self._default_quantiles)

    def set_quantiles(self, zone_id: str, available: bool) -> None:
        """Whether the zone's plan answers httpRequestsAdaptiveGroups' quantiles."""
        with self._lock:
            self._zone_quantiles[zone_id] = available

    # -- what it serves and what reached it -------------------------------------
    def cells(self, zone_id: str, start: datetime, end: datetime) -> list[Cell]:
        """Every block of the zone's traffic in the minutes that begin in [start, end), oldest first."""
        first = math.ceil(start.timestamp() / 60)
        # the minute `now` falls in has not been counted yet
        last = min(math.ceil(end.timestamp() / 60), math.floor(self.now.timestamp() / 60))
        return [cell for minute in range(first, last) for cell in _minute_cells(self.seed, zone_id, minute)]

    @property
    def graphql_calls(self) -> list[GraphQLCall]:
        with self._graphql_lock:
            return list(self._graphql_calls)

    def stats(self) -> dict:
        with self._graphql_lock:
            counts = {"graphql_requests": len(self._graphql_calls), "graphql_budget_refusals": self._budget_refusals}
        return {**super().stats(), **counts}

    # -- answering -------------------------------------------------------------
    def answer(self, method: str, target: str, headers, body: bytes) -> tuple[int, dict, dict[str, str]]:
        if urlsplit(target).path.rstrip("/") != API_PREFIX + "/graphql" or method != "POST":
            return super().answer(method, target, headers, body)
        with self._lock:
            self._calls.append((method, target[len(API_PREFIX):]))
        try:
            limit_headers = self._count_against_global_limit()
            self._authenticate(headers)
        except _Refusal as refusal:
            return refusal.status, _envelope(errors=refusal.errors), refusal.headers
        status, doc, extra = self._graphql(body)
        return status, doc, {**limit_headers, **extra}

    def fault_document(self, target: str, fault: _Fault) -> dict:
        if urlsplit(target).path.rstrip("/") != API_PREFIX + "/graphql":
            return super().fault_document(target, fault)
        # the error page's words for each status
        message = {429: _BUDGET, 500: "Internal server error"}.get(
            fault.status, "unable to execute query, please try again later")
        return {"data": None, "errors": fault.errors or [{"message": message, "path": None,
                                                          "extensions": {"timestamp": _stamp(self.now)}}]}

    def _graphql(self, body: bytes) -> tuple[int, dict, dict[str, str]]:
        text, variables, datasets = "", {}, []
        try:
            try:
                request = json.loads(body or b"null")
            except ValueError:
                request = None
            if not isinstance(request, dict) or not isinstance(request.get("query"), str) \
                    or not isinstance(request.get("variables") or {}, dict):
                raise _parse_error(_QUERY_ERROR)
            text, variables = request["query"], request.get("variables") or {}
            self._spend_budget()
            answer = _Answer(self, text, variables, request.get("operationName"))
            data = answer.run()
            datasets = answer.datasets
            status, doc, headers = 200, {"data": data, "errors": None}, {}
        except _GraphQLErrors as refused:
            datasets = refused.datasets
            status, doc, headers = self._refusal(refused.errors)
        except _GraphQLError as refused:
            status, doc, headers = self._refusal([refused])
        record = GraphQLCall(text, variables, status, tuple(e["message"] for e in doc["errors"] or ()),
                             tuple(datasets))
        with self._graphql_lock:
            self._graphql_calls.append(record)
        return status, doc, headers

    def _spend_budget(self) -> None:
        if self._budget is None:
            return
        with self._lock:
            wait, _, _ = self._budget.take()
        if wait:
            with self._graphql_lock:
                self._budget_refusals += 1
            raise _GraphQLError(_BUDGET, kind="budget", code="budget", retry_after=max(1, math.ceil(wait)))

    def _refusal(self, errors: list[_GraphQLError]) -> tuple[int, dict, dict[str, str]]:
        stamp = _stamp(self.now)
        doc = {"data": None, "errors": [_error_object(error, stamp) for error in errors]}
        if self.statuses == "observed":
            return 200, doc, {}
        first = errors[0]
        headers = {"Retry-After": str(first.retry_after)} if first.retry_after else {}
        return _DOCUMENTED_STATUS[first.kind], doc, headers


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _GraphQLErrors(Exception):
    """The dataset refusals of a document that parsed, each answered in `errors`."""

    def __init__(self, errors: list[_GraphQLError], datasets: list[DatasetQuery]):
        super().__init__(errors[0].message)
        self.errors, self.datasets = errors, datasets


class _VariableUses(Visitor):
    def __init__(self):
        super().__init__()
        self.names: set[str] = set()

    def enter_variable(self, node: VariableNode, *_):
        self.names.add(node.name.value)


class _Answer:
    """One request being answered: its operation, fragments and variables, and the refusals found so far."""

    def __init__(self, fake: FakeCloudflareGraphQL, text: str, variables: dict, operation_name):
        self.fake = fake
        self.now = fake.now
        self.errors: list[_GraphQLError] = []
        self.datasets: list[DatasetQuery] = []
        try:
            document = parse(text)
        except GraphQLSyntaxError:
            raise _parse_error(_QUERY_ERROR) from None
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        if operation_name is not None:
            operations = [op for op in operations if op.name and op.name.value == operation_name]
        if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
            raise _parse_error(_QUERY_ERROR)
        self.operation = operations[0]
        self.variables = self._variables(variables)

    def _variables(self, given: dict) -> dict:
        defined = {}
        for definition in self.operation.variable_definitions or ():
            name = definition.variable.name.value
            if name in given:
                defined[name] = given[name]
            elif definition.default_value is not None:
                defined[name] = value_from_ast_untyped(definition.default_value, {})
            elif isinstance(definition.type, NonNullTypeNode):
                raise _parse_error(f'variable "${name}" is required')  # this fake's wording
            else:
                defined[name] = None
        uses = _VariableUses()
        visit(self.operation, uses)
        for fragment in self.fragments.values():
            visit(fragment, uses)
        undefined = sorted(uses.names - set(defined))
        if undefined:
            raise _parse_error(f'variable "${undefined[0]}" is not defined')  # this fake's wording
        return defined

    # -- walking the document --------------------------------------------------
    def _fields(self, selection_set: SelectionSetNode | None) -> list[FieldNode]:
        found = []
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                found.append(selection)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is None:
                    raise _parse_error(_QUERY_ERROR)
                found += self._fields(fragment.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                found += self._fields(selection.selection_set)
        return found

    def _object_fields(self, node: FieldNode, path: list[str]) -> list[FieldNode]:
        if node.selection_set is None:
            raise _parse_error("object field must have selections", path)
        return self._fields(node.selection_set)

    @staticmethod
    def _leaf(node: FieldNode, path: list[str]) -> None:
        if node.selection_set is not None:
            raise _parse_error("scalar fields must have no selections", path)

    @staticmethod
    def _key(node: FieldNode) -> str:
        return node.alias.value if node.alias else node.name.value

    def _arguments(self, node: FieldNode, allowed: Sequence[str], path: list[str]) -> dict:
        given = {}
        for argument in node.arguments or ():
            name = argument.name.value
            if name not in allowed:
                raise _parse_error(f'unknown argument "{name}"', path)  # this fake's wording
            given[name] = value_from_ast_untyped(argument.value, self.variables)
        return given

    def run(self) -> dict:
        data = {}
        for node in self._fields(self.operation.selection_set):
            key = self._key(node)
            if node.name.value != "viewer":
                raise _parse_error(f'unknown field "{node.name.value}"', [key])
            self._arguments(node, (), [key])
            data[key] = self._viewer(node, [key])
        if self.errors:
            raise _GraphQLErrors(self.errors, self.datasets)
        return data

    def _viewer(self, node: FieldNode, path: list[str]) -> dict:
        answer = {}
        for child in self._object_fields(node, path):
            key = self._key(child)
            if child.name.value != "zones":
                raise _parse_error(f'unknown field "{child.name.value}"', path + [key])
            answer[key] = self._zones(child, path + [key])
        return answer

    def _zones(self, node: FieldNode, path: list[str]) -> list[dict]:
        arguments = self._arguments(node, ("filter",), path)
        tags = self._zone_tags(arguments.get("filter"), path)
        fields = self._object_fields(node, path)
        return [self._zone(index, tag, fields, path + [str(index)]) for index, tag in enumerate(tags)]

    def _zone_tags(self, given, path: list[str]) -> list[str]:
        known = sorted(self.fake.zones.values())
        if given is None:
            return known[:MAX_ZONES]
        if not isinstance(given, dict) or len(given) != 1 or not set(given) <= {"zoneTag", "zoneTag_in"}:
            raise _parse_error('error parsing args for "zones": the filter takes one of zoneTag or zoneTag_in', path)
        ((name, value),) = given.items()
        tags = [value] if name == "zoneTag" else value
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise _parse_error(f'error parsing args for "zones": {name} must be a zone tag or a list of them', path)
        if len(tags) > MAX_ZONES:
            raise _GraphQLError(_TOO_MANY_ZONES, path, kind="budget")
        strangers = [tag for tag in tags if tag not in known]
        if strangers:
            # the error page's "zones [...] are not authorized"; how it lists them is this fake's guess
            raise _GraphQLError(f"zones [{' '.join(strangers)}] are not authorized", path, kind="authz", code="authz")
        # Cloudflare answers zones in the order of their tags, whatever order the filter names them in
        return sorted(set(tags))

    def _zone(self, index: int, tag: str, fields: list[FieldNode], path: list[str]) -> dict:
        answer = {}
        for node in fields:
            key, name = self._key(node), node.name.value
            if name == "zoneTag":
                self._leaf(node, path + [key])
                answer[key] = tag
            elif name == "settings":
                self._arguments(node, (), path + [key])
                answer[key] = self._settings(tag, node, path + [key])
            elif name in DATASETS:
                answer[key] = self._dataset(tag, node, path + [key])
            else:
                raise _parse_error(f'unknown field "{name}"', path + [key])
        return answer

    # -- settings ----------------------------------------------------------------
    def _settings(self, tag: str, node: FieldNode, path: list[str]) -> dict:
        answer = {}
        for dataset_node in self._object_fields(node, path):
            key, name = self._key(dataset_node), dataset_node.name.value
            if name not in DATASETS:
                raise _parse_error(f'unknown field "{name}"', path + [key])
            limits = self.fake.limits(tag, name)
            values = {"enabled": limits.enabled, "maxDuration": limits.max_duration,
                      "notOlderThan": limits.not_older_than, "maxPageSize": limits.max_page_size,
                      "maxNumberOfFields": limits.max_number_of_fields,
                      "availableFields": _available_fields(name, self.fake.has_quantiles(tag))}
            answer[key] = {}
            for setting in self._object_fields(dataset_node, path + [key]):
                setting_key = self._key(setting)
                if setting.name.value not in values:
                    raise _parse_error(f'unknown field "{setting.name.value}"', path + [key, setting_key])
                self._leaf(setting, path + [key, setting_key])
                answer[key][setting_key] = values[setting.name.value]
        return answer

    # -- datasets ----------------------------------------------------------------
    def _dataset(self, tag: str, node: FieldNode, path: list[str]) -> list[dict] | None:
        name = node.name.value
        spec = DATASETS[name]
        arguments = self._arguments(node, ("filter", "limit", "orderBy"), path)
        plan, dimensions, leaves = self._plan(name, spec, node, path)
        window = self._window(name, spec, arguments.get("filter"), path)
        limit = arguments.get("limit")
        order_by = self._order_by(name, spec, arguments.get("orderBy"), dimensions, path)
        limits = self.fake.limits(tag, name)
        record = DatasetQuery(tag, name, path[-1], window.start, window.end, limit if isinstance(limit, int) else None,
                              tuple(order_by), tuple(dimensions), None)
        self.datasets.append(record)
        refusals = len(self.errors)
        if not limits.enabled:
            self._refuse_access(tag, path)
        else:
            if limit is None or isinstance(limit, bool) or not isinstance(limit, int) \
                    or not 0 < limit <= limits.max_page_size:
                self.errors.append(_GraphQLError(
                    f"limit must be positive number and not greater than {limits.max_page_size}", path,
                    kind="limit", code="quota"))
            if leaves > limits.max_number_of_fields:
                self.errors.append(_GraphQLError(
                    f"number of fields can't be more than {limits.max_number_of_fields}", path,
                    kind="limit", code="quota"))
            self._check_window(tag, window, limits, path)
            if not self.fake.has_quantiles(tag):
                for quantiles_key, quantile_names in _plan_quantiles(plan):
                    for quantile_key in quantile_names:
                        self._refuse_access(tag, path + [quantiles_key, quantile_key])
        if len(self.errors) > refusals:
            return None
        rows = self._rows(tag, name, spec, window, plan, dimensions, order_by, limit)
        self.datasets[-1] = replace(record, rows=len(rows))
        return rows

    def _refuse_access(self, tag: str, path: list[str]) -> None:
        # two client tests quote this sentence; Cloudflare's own page gives only its middle
        self.errors.append(_GraphQLError(f"zone '{tag}' does not have access to the path {'.'.join(path)}", path,
                                         kind="authz", code="authz"))

    def _plan(self, name: str, spec: _Dataset, node: FieldNode, path: list[str]):
        """What each row of the answer holds: [(key, field, [(key, subfield, [...])])], the dimensions grouped
        by, and how many leaf fields were asked for."""
        plan, dimensions, leaves = [], [], 0
        for child in self._object_fields(node, path):
            key, field_name = self._key(child), child.name.value
            here = path + [key]
            if field_name == "count" and spec.count:
                self._leaf(child, here)
                plan.append((key, "count", None))
                leaves += 1
                continue
            subfields = {"dimensions": spec.dimensions, "sum": {**spec.sums, **spec.maps}, "avg": spec.avg,
                         "quantiles": spec.quantiles}.get(field_name)
            if not subfields:
                raise _parse_error(f'unknown field "{field_name}"', here)
            inner = []
            for grandchild in self._object_fields(child, here):
                inner_key, inner_name = self._key(grandchild), grandchild.name.value
                inner_path = here + [inner_key]
                if inner_name not in subfields:
                    raise _parse_error(f'unknown field "{inner_name}"', inner_path)
                if field_name == "sum" and inner_name in spec.maps:
                    entries = []
                    for entry in self._object_fields(grandchild, inner_path):
                        entry_key, entry_name = self._key(entry), entry.name.value
                        if entry_name not in spec.maps[inner_name].fields:
                            raise _parse_error(f'unknown field "{entry_name}"', inner_path + [entry_key])
                        self._leaf(entry, inner_path + [entry_key])
                        entries.append((entry_key, entry_name))
                        leaves += 1
                    inner.append((inner_key, inner_name, entries))
                    continue
                self._leaf(grandchild, inner_path)
                inner.append((inner_key, inner_name, None))
                leaves += 1
                if field_name == "dimensions" and inner_name not in dimensions:
                    dimensions.append(inner_name)
            plan.append((key, field_name, inner))
        return plan, dimensions, leaves

    def _window(self, name: str, spec: _Dataset, given, path: list[str]) -> _Window:
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise _args_error(name, "filter must be an object", path)
        window = _Window()
        for key, value in given.items():
            base, _, op = key.rpartition("_")
            if op not in _ORDER_FILTER_OPS + ("neq", "in"):
                base, op = key, ""  # a bare name tests for equality
            if base in spec.time_filters and op not in ("neq", "in"):
                window.bounds.append((base, op, self._time_value(name, base, key, value, path)))
            elif base in spec.dimension_filters and (op in ("", "neq", "in") or spec.dimension_filters[base] is int):
                window.dimension_filters.append(self._dimension_filter(name, spec, base, op, key, value, path))
            else:
                raise _args_error(name, f'unknown filter field "{key}"', path)
        return window

    @staticmethod
    def _time_value(name: str, base: str, key: str, value, path: list[str]):
        try:
            if base == "date":
                if not isinstance(value, str) or len(value) != 10:
                    raise ValueError
                return date.fromisoformat(value)
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
            if moment is None or moment.tzinfo is None:
                raise ValueError
            return moment.astimezone(timezone.utc)
        except ValueError:
            kind = "a date (YYYY-MM-DD)" if base == "date" else "an RFC 3339 time with its offset"
            raise _args_error(name, f"{key} must be {kind}, got {value!r}", path) from None

    @staticmethod
    def _dimension_filter(name: str, spec: _Dataset, base: str, op: str, key: str, value, path: list[str]):
        kind = spec.dimension_filters[base]
        values = value if op == "in" else [value]
        if not isinstance(values, list) or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
            raise _args_error(name, f"{key} must be {'a list of ' if op == 'in' else ''}{kind.__name__}", path)
        tests = {"": lambda v: v == value, "neq": lambda v: v != value, "in": lambda v: v in values,
                 "geq": lambda v: v >= value, "gt": lambda v: v > value, "lt": lambda v: v < value,
                 "leq": lambda v: v <= value}
        return base, tests[op]

    def _order_by(self, name: str, spec: _Dataset, given, dimensions: list[str], path: list[str]) -> list[str]:
        if given is None:
            return []
        orders = given if isinstance(given, list) else [given]
        for order in orders:
            target, _, direction = order.rpartition("_") if isinstance(order, str) else ("", "", "")
            sortable = set(dimensions) | {f"sum_{s}" for s in spec.sums} | ({"count"} if spec.count else set())
            if direction not in ("ASC", "DESC") or target not in sortable:
                # Cloudflare sorts only by what the rows hold; the wording is this fake's
                raise _args_error(name, f"cannot order by {order!r}", path)
        return orders

    def _check_window(self, tag: str, window: _Window, limits: DatasetLimits, path: list[str]) -> None:
        # an open end is read as now, as Cloudflare closes it with its own clock
        start = window.start or (self.now - timedelta(seconds=limits.not_older_than))
        end = window.end or self.now
        span = (end - start).total_seconds()
        if span > limits.max_duration:
            self.errors.append(_GraphQLError(
                f'zone "{tag}" cannot request a time range wider than {cf_duration(limits.max_duration)}, '
                f"but your query time range spans {cf_duration(span)}", path, kind="limit", code="quota"))
        age = (self.now - start).total_seconds()
        if age > limits.not_older_than:
            self.errors.append(_GraphQLError(
                f'zone "{tag}" cannot request data older than {cf_duration(limits.not_older_than)}, '
                f"but your query requests data from {cf_duration(age)} ago", path, kind="limit", code="quota"))

    # -- rows ---------------------------------------------------------------------
    def _rows(self, tag: str, name: str, spec: _Dataset, window: _Window, plan, dimensions: list[str],
              order_by: list[str], limit: int) -> list[dict]:
        earliest = window.start or (self.now - timedelta(seconds=self.fake.limits(tag, name).not_older_than))
        latest = window.end or self.now
        groups: dict[tuple, list[Cell]] = defaultdict(list)
        times: dict[tuple, datetime] = {}
        # a row is an hour or a minute of traffic; hours that began before the window are read whole
        for cell in self.fake.cells(tag, spec.bucket(earliest), latest + timedelta(hours=1)):
            row_time = spec.bucket(cell.minute)
            if not window.admits(spec, row_time, cell):
                continue
            key = tuple(spec.dimensions[dimension](row_time, cell) for dimension in dimensions)
            groups[key].append(cell)
            times.setdefault(key, row_time)
        keys = list(groups)
        if order_by:
            for order in reversed(order_by):
                target, _, direction = order.rpartition("_")
                keys.sort(key=self._sort_key(spec, target, dimensions, groups), reverse=direction == "DESC")
        else:
            # Cloudflare promises no order without orderBy, so neither does the fake
            random.Random(f"{self.fake.seed}/{tag}/{name}/{len(keys)}").shuffle(keys)
        return [self._row(spec, dict(zip(dimensions, key)), groups[key], plan) for key in keys[:limit]]

    @staticmethod
    def _sort_key(spec: _Dataset, target: str, dimensions: list[str], groups: dict):
        if target in dimensions:
            index = dimensions.index(target)
            return lambda key: key[index]
        if target == "count":
            return lambda key: _sum("requests")(groups[key])
        total = spec.sums[target.removeprefix("sum_")]
        return lambda key: total(groups[key])

    @staticmethod
    def _row(spec: _Dataset, dimension_values: dict, cells: list[Cell], plan) -> dict:
        row = {}
        for key, field_name, inner in plan:
            if field_name == "count":
                row[key] = _sum("requests")(cells)
            elif field_name == "dimensions":
                row[key] = {inner_key: dimension_values[inner_name] for inner_key, inner_name, _ in inner}
            elif field_name == "quantiles":
                row[key] = {inner_key: weighted_quantile(cells, spec.quantiles[inner_name])
                            for inner_key, inner_name, _ in inner}
            elif field_name == "avg":
                row[key] = {inner_key: spec.avg[inner_name](cells) for inner_key, inner_name, _ in inner}
            else:
                row[key] = {}
                for inner_key, inner_name, entries in inner:
                    if entries is None:
                        row[key][inner_key] = spec.sums[inner_name](cells)
                        continue
                    mapping = spec.maps[inner_name]
                    parts: dict[object, list[Cell]] = defaultdict(list)
                    for cell in cells:
                        parts[mapping.key(cell)].append(cell)
                    row[key][inner_key] = [{entry_key: mapping.fields[entry_name](value, parts[value])
                                            for entry_key, entry_name in entries} for value in sorted(parts)]
        return row


def _plan_quantiles(plan) -> list[tuple[str, list[str]]]:
    return [(key, [inner_key for inner_key, _, _ in inner]) for key, field_name, inner in plan
            if field_name == "quantiles"]


def _available_fields(name: str, quantiles: bool) -> list[str]:
    spec = DATASETS[name]
    fields = ["count"] if spec.count else []
    fields += [f"dimensions_{d}" for d in spec.dimensions]
    fields += [f"sum_{s}" for s in spec.sums]
    fields += [f"sum_{m}_{f}" for m, mapping in spec.maps.items() for f in mapping.fields]
    fields += [f"avg_{a}" for a in spec.avg]
    if quantiles:
        fields += [f"quantiles_{q}" for q in spec.quantiles]
    return sorted(fields)


@dataclass
class _Window:
    """A dataset filter: its time bounds (datetime and date), and the adaptive dataset's dimension tests."""
    bounds: list[tuple[str, str, object]] = field(default_factory=list)  # (datetime|date, op, value)
    dimension_filters: list[tuple[str, Callable[[object], bool]]] = field(default_factory=list)

    def _edges(self, lower: bool) -> list[datetime]:
        edges = []
        for base, op, value in self.bounds:
            if base == "date":
                # a day stands for all of it, from its midnight to the next
                first = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
                after = first + timedelta(days=1)
            else:
                first = after = value
            lowest, highest = {"geq": (first, None), "gt": (after, None), "lt": (None, first), "leq": (None, after),
                               "": (first, after)}[op]
            edge = lowest if lower else highest
            if edge is not None:
                edges.append(edge)
        return edges

    @property
    def start(self) -> datetime | None:
        """Where the range asked for begins, for the limits (None: not bounded)."""
        edges = self._edges(lower=True)
        return max(edges) if edges else None

    @property
    def end(self) -> datetime | None:
        edges = self._edges(lower=False)
        return min(edges) if edges else None

    def admits(self, spec: _Dataset, row_time: datetime, cell: Cell) -> bool:
        for base, op, value in self.bounds:
            have = spec.time_filters[base](row_time)
            if not {"": have == value, "geq": have >= value, "gt": have > value, "lt": have < value,
                    "leq": have <= value}[op]:
                return False
        return all(test(spec.dimensions[base](row_time, cell)) for base, test in self.dimension_filters)


def _limits_arg(text: str) -> tuple[str, DatasetLimits]:
    import argparse
    dataset, sep, numbers = text.partition("=")
    try:
        max_duration, not_older_than = (int(n) for n in numbers.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DATASET=MAX_DURATION,NOT_OLDER_THAN, got {text!r}") from None
    if not sep or dataset not in DATASETS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(DATASETS)} before '=', got {text!r}")
    return dataset, replace(DEFAULT_LIMITS[dataset], max_duration=max_duration, not_older_than=not_older_than)


def main(argv: list[str] | None = None) -> int:
    parser = arguments("python -m tests.fakes.cloudflare_graphql", __doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="draws the synthetic traffic")
    parser.add_argument("--now", type=datetime.fromisoformat, help="the fake's clock, ISO 8601 with offset")
    parser.add_argument("--limits", type=_limits_arg, action="append", metavar="DATASET=MAX_DURATION,NOT_OLDER_THAN",
                        help="a dataset's limits in seconds for every zone (repeatable)")
    parser.add_argument("--no-quantiles", action="store_true", help="the zones' plan has no adaptive quantiles")
    parser.add_argument("--graphql-limit", type=int, default=GRAPHQL_LIMIT, help="GraphQL requests per window")
    parser.add_argument("--graphql-window", type=float, default=GRAPHQL_WINDOW, help="seconds")
    parser.add_argument("--statuses", choices=STATUSES, default="observed", help="the HTTP status of refusals")
    parser.set_defaults(api_limit=GLOBAL_LIMIT)
    args = parser.parse_args(argv)
    fake = FakeCloudflareGraphQL(token=args.token, zones=dict(args.zone) if args.zone else None,
                                 account_id=args.account, api_limit=args.api_limit, api_window=args.api_window,
                                 seed=args.seed, now=args.now, limits=dict(args.limits or ()),
                                 quantiles=not args.no_quantiles, graphql_limit=args.graphql_limit,
                                 graphql_window=args.graphql_window, statuses=args.statuses, port=args.port)
    return serve(fake, args.port_file, args.stats_file)


if __name__ == "__main__":
    raise SystemExit(main())
