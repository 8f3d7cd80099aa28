"""What the loopback proxies in front of moto share: forwarding, injected faults and a request log.

A subclass names its botocore `service` (which maps each request to an operation name), the XML
`namespace` of its error bodies, its `errors` (kind -> HTTP status, Type, Code, Message) and
`fault_kinds`, and overrides `handle` for the requests it answers differently from moto.
"""

from __future__ import annotations

import functools
import http.client
import re
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

# errors every AWS REST-XML service answers in the same words: (HTTP status, error Type, Code, Message)
THROTTLING = (400, "Sender", "Throttling", "Rate exceeded")


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
class Logged:
    method: str
    path: str
    operation: str
    at: float  # time.monotonic()


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


class AwsProxy:
    """The proxy; start() returns it with `url` set, stop() ends it."""

    service = ""
    namespace = ""
    errors: dict[str, tuple[int, str, str, str]] = {}
    fault_kinds: tuple[str, ...] = ()

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.url = ""
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._log: list[Logged] = []
        self._routes = _routes(self.service)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

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
            self._faults.extend(Fault(kind, names, retry_after) for _ in range(times))

    def requests(self, method: str | None = None, contains: str = "", *,
                 operation: str | None = None) -> list[tuple[str, str]]:
        return [(entry.method, entry.path) for entry in self._matching(method, contains, operation)]

    def request_times(self, method: str | None = None, contains: str = "", *,
                      operation: str | None = None) -> list[float]:
        """When the matching requests arrived, on the time.monotonic() clock."""
        return [entry.at for entry in self._matching(method, contains, operation)]

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._log.clear()

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

    # -- lifecycle -------------------------------------------------------------
    def start(self):
        proxy = self

        class Handler(Exchange):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{self.service}-faults", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fresh(self):
        """For a per-test fixture: the proxy with no faults or log left over, before and after."""
        self.reset()
        yield self
        self.reset()

    # -- what subclasses override ----------------------------------------------
    def handle(self, exchange: "Exchange") -> None:
        """Answer a request that no fault took; by default, whatever moto answers."""
        exchange.send(*exchange.forward())

    def fault_error(self, kind: str, exchange: "Exchange") -> tuple[int, str, str, str]:
        return self.errors[kind]

    # -- for the handler ---------------------------------------------------------
    def _matching(self, method: str | None, contains: str, operation: str | None) -> list[Logged]:
        with self._lock:
            return [entry for entry in self._log
                    if (method is None or entry.method == method) and contains in entry.path
                    and (operation is None or entry.operation == operation)]

    def _arrived(self, method: str, path: str, target: str = "") -> tuple[str, Fault | None]:
        operation = self.operation(method, path, target)
        with self._lock:
            self._log.append(Logged(method, path, operation, time.monotonic()))
            if self._faults and (self._faults[0].only is None or operation in self._faults[0].only):
                return operation, self._faults.popleft()
        return operation, None

    def error_body(self, code: str, error_type: str, message: str) -> bytes:
        return (f'<?xml version="1.0"?>\n<ErrorResponse xmlns="{self.namespace}"><Error><Type>{error_type}</Type>'
                f"<Code>{code}</Code><Message>{escape(message)}</Message></Error>"
                f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>").encode()

    def error_response(self, code: str, error_type: str, message: str) -> tuple[list[tuple[str, str]], bytes]:
        """The headers and body of an error answer, in the service's protocol (REST-XML here)."""
        return [("Content-Type", "text/xml")], self.error_body(code, error_type, message)


class Exchange(BaseHTTPRequestHandler):
    """One request: what arrived (`command`, `path`, `operation`, `body`) and the ways to answer it."""

    owner: AwsProxy
    protocol_version = "HTTP/1.1"
    operation = ""
    body = b""

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.operation, fault = self.owner._arrived(self.command, self.path, self.headers.get("X-Amz-Target", ""))
        if fault is None:
            self.owner.handle(self)
        elif fault.kind == "reset":
            self.reset_connection()
        else:
            self.send_error_response(*self.owner.fault_error(fault.kind, self), retry_after=fault.retry_after)

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
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_error_response(self, status: int, error_type: str, code: str, message: str, *,
                            retry_after: str | None = None) -> None:
        headers, body = self.owner.error_response(code, error_type, message)
        headers = [*headers, ("x-amzn-RequestId", str(uuid.uuid4()))]
        if retry_after is not None:
            headers.append(("Retry-After", retry_after))
        self.send(status, headers, body)

    def reset_connection(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.rfile.close()  # its reference would otherwise keep the socket open past close()
        self.connection.close()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
