"""What the loopback proxies in front of moto share: forwarding, injected faults and a request log.

Each is an `edgectl.testing.FaultProxy`: every request is in `requests` (a list of `Seen`), and the
path-blind faults (`fail_next`, `drop_next`, `reset_next`, `delay_next`) answer in the service's
own error shape. On top of those, `inject(kind, only=...)` queues the service's named errors for
the next requests, or for the next of some operations only, and `calls(...)` filters the log by
method, path and operation.

A subclass names its botocore `service` (which maps each request to an operation name), the XML
`namespace` of its error bodies, its `errors` (kind -> HTTP status, Type, Code, Message) and
`fault_kinds`, and overrides `answer(exchange)` for the requests it answers differently from moto.
"""

from __future__ import annotations

import functools
import http.client
import re
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from edgectl.testing import Answer, FaultProxy, Seen, Unanswered

# errors every AWS REST-XML service answers in the same words: (HTTP status, error Type, Code, Message)
THROTTLING = (400, "Sender", "Throttling", "Rate exceeded")
# what a path-blind fail_next(status) answers, by status: (error Type, Code, Message), in the words of
# the errors common to every AWS API (https://docs.aws.amazon.com/securityhub/1.0/APIReference/CommonErrors.html)
INJECTED = {429: ("Sender", "Throttling", "Rate exceeded"),
            401: ("Sender", "InvalidClientTokenId",
                  "The X.509 certificate or AWS access key ID provided does not exist in our records."),
            403: ("Sender", "AccessDenied", "User: arn:aws:iam::123456789012:user/ci is not authorized to perform "
                                            "this action"),
            503: ("Receiver", "ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
            500: ("Receiver", "InternalFailure",
                  "The request processing has failed because of an unknown error, exception or failure.")}


def access_denied(action: str) -> tuple[int, str, str, str]:
    message = f"User: arn:aws:iam::123456789012:user/ci is not authorized to perform: {action}"
    return 403, "Sender", "AccessDenied", message


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection",
               "te", "trailer", "upgrade"}


@dataclass(frozen=True)
class Fault:
    kind: str
    only: frozenset[str] | None = None  # the operations it answers; None: the next request, whatever it is
    retry_after: str | None = None


@dataclass(frozen=True)
class _Route:
    method: str
    path: re.Pattern
    query: str  # a query key the operation's URI requires, such as CloudFront's "?WithTags"
    operation: str


@functools.lru_cache(maxsize=None)
def _routes(service: str) -> tuple[_Route, ...]:
    """Every operation of the service, from botocore's own model of its REST URIs."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    routes = []
    for name in model.operation_names:
        http_spec = model.operation_model(name).http
        uri, _, query = http_spec["requestUri"].partition("?")
        parts = re.split(r"(\{[^}]+\})", uri.rstrip("/"))
        pattern = "".join((".+" if part.endswith("+}") else "[^/]+") if part.startswith("{") else re.escape(part)
                          for part in parts)
        routes.append(_Route(http_spec["method"], re.compile(pattern + "/?$"), query, name))
    # an operation that needs a query key is more specific than the same path without it
    return tuple(sorted(routes, key=lambda route: not route.query))


class AwsProxy(FaultProxy):
    """The proxy; start() returns it with `url` set, stop() ends it."""

    service = ""
    namespace = ""
    errors: dict[str, tuple[int, str, str, str]] = {}
    fault_kinds: tuple[str, ...] = ()

    def __init__(self, upstream: str):
        super().__init__(upstream)
        self._injected: deque[Fault] = deque()
        self._routes = _routes(self.service)

    # -- control ---------------------------------------------------------------
    def inject(self, kind: str, times: int = 1, *, only: str | Iterable[str] | None = None,
               retry_after: str | None = None) -> None:
        """Answer the next `times` requests (of the `only` operations, if named) with the fault `kind`."""
        if kind not in self.fault_kinds:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(self.fault_kinds)}")
        names = None if only is None else frozenset([only] if isinstance(only, str) else only)
        unknown = sorted((names or set()) - {route.operation for route in self._routes})
        if unknown:
            raise ValueError(f"{self.service} has no operation {', '.join(unknown)}")
        with self._lock:
            self._injected.extend(Fault(kind, names, retry_after) for _ in range(times))

    def calls(self, method: str | None = None, contains: str = "", *,
              operation: str | None = None) -> list[tuple[str, str]]:
        """(method, path and query) of the requests that match, in arrival order."""
        return [(seen.method, seen.target) for seen in self._matching(method, contains, operation)]

    def request_times(self, method: str | None = None, contains: str = "", *,
                      operation: str | None = None) -> list[float]:
        """When the matching requests arrived, on the time.monotonic() clock."""
        return [seen.at for seen in self._matching(method, contains, operation)]

    def reset(self) -> None:
        self.clear()
        with self._lock:
            self._injected.clear()

    def operation(self, method: str, path: str, target: str = "") -> str:
        """The operation a request is for, as botocore names it; "" when none matches.

        A JSON-protocol service (CloudWatch) names it in X-Amz-Target ("Prefix.GetMetricData").
        """
        if target:
            return target.rpartition(".")[2]
        bare, _, query = path.partition("?")
        keys = {pair.partition("=")[0] for pair in query.split("&") if pair}
        for route in self._routes:
            if route.method == method and route.path.match(bare) and (not route.query or route.query in keys):
                return route.operation
        return ""

    def fresh(self):
        """For a per-test fixture: the proxy with no faults or log left over, before and after."""
        self.reset()
        yield self
        self.reset()

    # -- what subclasses override ----------------------------------------------
    def answer(self, exchange: "Exchange") -> None:
        """Answer a request that no fault took; by default, whatever moto answers."""
        exchange.send(*exchange.forward())

    def fault_error(self, kind: str, exchange: "Exchange") -> tuple[int, str, str, str]:
        return self.errors[kind]

    def error_body(self, code: str, error_type: str, message: str) -> bytes:
        return (f'<?xml version="1.0"?>\n<ErrorResponse xmlns="{self.namespace}"><Error><Type>{error_type}</Type>'
                f"<Code>{code}</Code><Message>{escape(message)}</Message></Error>"
                f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>").encode()

    def error_response(self, code: str, error_type: str, message: str) -> tuple[list[tuple[str, str]], bytes]:
        """The headers and body of an error answer, in the service's protocol (REST-XML here)."""
        return [("Content-Type", "text/xml")], self.error_body(code, error_type, message)

    # -- serving ---------------------------------------------------------------
    def handle(self, seen: Seen) -> Answer:
        exchange = Exchange(self, seen, self.operation(seen.method, seen.target, seen.headers.get("x-amz-target", "")))
        with self._lock:
            first = self._injected[0] if self._injected else None
            fault = self._injected.popleft() if first and (first.only is None or exchange.operation in first.only) \
                else None
        if fault is None:
            self.answer(exchange)
        elif fault.kind == "reset":
            exchange.reset_connection()
        else:
            exchange.send_error_response(*self.fault_error(fault.kind, exchange), retry_after=fault.retry_after)
        assert exchange.answered is not None, f"{type(self).__name__} did not answer {seen.method} {seen.target}"
        return exchange.answered

    def fault_answer(self, seen: Seen, status: int, retry_after: float | None) -> Answer:
        error_type, code, message = INJECTED.get(status, INJECTED[500])
        exchange = Exchange(self, seen, "")
        exchange.send_error_response(status, error_type, code, message,
                                     retry_after=None if retry_after is None else f"{retry_after:g}")
        return exchange.answered

    def _matching(self, method: str | None, contains: str, operation: str | None) -> list[Seen]:
        return [seen for seen in self.requests
                if (method is None or seen.method == method) and contains in seen.target
                and (operation is None
                     or self.operation(seen.method, seen.target, seen.headers.get("x-amz-target", "")) == operation)]


class Exchange:
    """One request: what arrived (`command`, `path`, `operation`, `body`) and the ways to answer it."""

    def __init__(self, owner: AwsProxy, seen: Seen, operation: str):
        self.owner = owner
        self.command = seen.method
        self.path = seen.target
        self.headers = seen.headers
        self.body = seen.body
        self.operation = operation
        self.answered: Answer | None = None

    def forward(self, body: bytes | None = None, *, method: str | None = None,
                path: str | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send this request (or another, with its headers) to moto; its status, headers and body."""
        host, port = self.owner.upstream
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Host"] = f"{host}:{port}"
            body = self.body if body is None else body
            conn.request(method or self.command, path or self.path, body=body or None, headers=headers)
            upstream = conn.getresponse()
            data = upstream.read()
            kept = [(k, v) for k, v in upstream.getheaders() if k.lower() not in _HOP_BY_HOP]
            return upstream.status, kept, data
        finally:
            conn.close()

    def send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.answered = Answer(status, body, dict(headers))

    def send_error_response(self, status: int, error_type: str, code: str, message: str, *,
                            retry_after: str | None = None) -> None:
        headers, body = self.owner.error_response(code, error_type, message)
        headers = [*headers, ("x-amzn-RequestId", str(uuid.uuid4()))]
        if retry_after is not None:
            headers.append(("Retry-After", retry_after))
        self.send(status, headers, body)

    def reset_connection(self) -> None:
        raise Unanswered
