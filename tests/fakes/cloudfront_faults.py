"""A loopback proxy in front of moto that adds the CloudFront behaviour moto leaves out.

moto (5.2) completes every invalidation at once, creates a new one on every resend of the same
CallerReference and never throttles. Requests pass through to moto unchanged, except:

  idempotence   CreateInvalidation with a CallerReference seen before returns the earlier
                invalidation when the paths are the same, InvalidationBatchAlreadyExists when not
  in progress   while `hold` is set, new invalidations read as InProgress (in every response
                that shows their status) until release()
  caps          CreateInvalidation that would take the held file paths past `file_cap` or the held
                wildcard paths past `wildcard_cap` gets TooManyInvalidationsInProgress
  faults        inject(kind, times) answers the next `times` requests (or only CreateInvalidation
                ones) with one of: throttling (400 Throttling), unavailable (503 ServiceUnavailable),
                too_many (400 TooManyInvalidationsInProgress), denied (403 AccessDenied),
                reset (TCP reset, no response)

Error bodies copy CloudFront's shape and wording as seen in the wild:
  <ErrorResponse xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Error><Type>Sender</Type>
  <Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>…</RequestId></ErrorResponse>
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

NAMESPACE = "http://cloudfront.amazonaws.com/doc/2020-05-31/"

# kind -> (HTTP status, error Type, Code, Message)
ERRORS = {
    "throttling": (400, "Sender", "Throttling", "Rate exceeded"),
    "unavailable": (503, "Receiver", "ServiceUnavailable",
                    "CloudFront encountered an internal error. Please try again."),
    "too_many": (400, "Sender", "TooManyInvalidationsInProgress",
                 "Processing your request will cause you to exceed the maximum number of in-progress invalidations."),
    "denied": (403, "Sender", "AccessDenied",
               "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: cloudfront:CreateInvalidation"),
    "already_exists": (400, "Sender", "InvalidationBatchAlreadyExists", "Invalidation batch specified already exists."),
}
FAULT_KINDS = ("throttling", "unavailable", "too_many", "denied", "reset")

_CREATE = re.compile(r"^/[\d-]+/distribution/(?P<dist>[^/?]+)/invalidation/?(?:\?.*)?$")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection",
               "te", "trailer", "upgrade"}


@dataclass
class Fault:
    kind: str
    retry_after: str | None = None
    create_only: bool = False


@dataclass
class Held:
    distribution: str
    files: int
    wildcards: int


@dataclass
class Created:
    paths: tuple[str, ...]
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class _State:
    faults: deque = field(default_factory=deque)
    held: dict[str, Held] = field(default_factory=dict)  # invalidation id -> what it holds
    by_reference: dict[tuple[str, str], Created] = field(default_factory=dict)
    requests: list[tuple[str, str, float]] = field(default_factory=list)  # method, path, time.monotonic()


class CloudFrontFaults:
    """The proxy; start() returns it with `url` set, stop() ends it."""

    def __init__(self, upstream: str, *, file_cap: int = 3000, wildcard_cap: int = 15):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.file_cap = file_cap
        self.wildcard_cap = wildcard_cap
        self.hold = False
        self.url = ""
        self._state = _State()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------
    def inject(self, kind: str, times: int = 1, *, retry_after: str | None = None, create_only: bool = True) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            for _ in range(times):
                self._state.faults.append(Fault(kind, retry_after, create_only))

    def release(self) -> None:
        """Every held invalidation completes."""
        with self._lock:
            self._state.held.clear()

    def in_progress(self, distribution: str) -> tuple[int, int]:
        """(file paths, wildcard paths) held in progress for a distribution."""
        with self._lock:
            held = [h for h in self._state.held.values() if h.distribution == distribution]
        return sum(h.files for h in held), sum(h.wildcards for h in held)

    def requests(self, method: str | None = None, contains: str = "") -> list[tuple[str, str]]:
        with self._lock:
            return [(m, p) for m, p, _ in self._state.requests
                    if (method is None or m == method) and contains in p]

    def request_times(self, method: str | None = None, contains: str = "") -> list[float]:
        """When the matching requests arrived, on the time.monotonic() clock."""
        with self._lock:
            return [at for m, p, at in self._state.requests
                    if (method is None or m == method) and contains in p]

    def reset(self) -> None:
        with self._lock:
            self._state = _State()
        self.hold = False

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> "CloudFrontFaults":
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="cloudfront-faults", daemon=True)
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

    def __enter__(self) -> "CloudFrontFaults":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what the handler asks -------------------------------------------------
    def _next_fault(self, is_create: bool) -> Fault | None:
        with self._lock:
            if self._state.faults and (is_create or not self._state.faults[0].create_only):
                return self._state.faults.popleft()
        return None

    def _rewrite_status(self, body: bytes) -> bytes:
        """Show held invalidations as InProgress wherever their status appears."""
        with self._lock:
            held = list(self._state.held)
        text = body.decode("utf-8", "replace")
        for inv_id in held:
            text = re.sub(rf"(<Id>{re.escape(inv_id)}</Id>(?:<CreateTime>[^<]*</CreateTime>)?<Status>)[^<]*(</Status>)",
                          r"\1InProgress\2", text)
        return text.encode("utf-8")


def _parse_batch(body: bytes) -> tuple[tuple[str, ...], str]:
    root = ET.fromstring(body)
    paths = tuple(el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Path")
    reference = next((el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "CallerReference"), "")
    return paths, reference


def _error_body(code: str, error_type: str, message: str) -> bytes:
    return (f'<?xml version="1.0"?>\n<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{error_type}</Type>'
            f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
            f"</ErrorResponse>").encode()


class _Handler(BaseHTTPRequestHandler):
    owner: CloudFrontFaults
    protocol_version = "HTTP/1.1"

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
        owner = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with owner._lock:
            owner._state.requests.append((self.command, self.path, time.monotonic()))
        match = _CREATE.match(self.path)
        is_create = self.command == "POST" and match is not None

        fault = owner._next_fault(is_create)
        if fault is not None:
            if fault.kind == "reset":
                self._reset()
                return
            status, error_type, code, message = ERRORS[fault.kind]
            self._send_error(status, error_type, code, message, fault.retry_after)
            return

        if is_create:
            self._create(match.group("dist"), body)
            return
        status, headers, response = self._forward(body)
        if "/invalidation" in self.path:
            response = owner._rewrite_status(response)
        self._send(status, headers, response)

    def _create(self, distribution: str, body: bytes) -> None:
        owner = self.owner
        try:
            paths, reference = _parse_batch(body)
        except ET.ParseError:
            status, headers, response = self._forward(body)
            self._send(status, headers, response)
            return
        key = (distribution, reference)
        with owner._lock:
            earlier = owner._state.by_reference.get(key)
            if earlier is None:
                files_held = sum(h.files for h in owner._state.held.values() if h.distribution == distribution)
                wild_held = sum(h.wildcards for h in owner._state.held.values() if h.distribution == distribution)
        if earlier is not None:
            if earlier.paths == paths:
                self._send(earlier.status, earlier.headers, owner._rewrite_status(earlier.body))
            else:
                self._send_error(*ERRORS["already_exists"])
            return
        wildcards = sum(1 for p in paths if p.endswith("*"))
        files = len(paths) - wildcards
        if files_held + files > owner.file_cap or wild_held + wildcards > owner.wildcard_cap:
            self._send_error(*ERRORS["too_many"])
            return
        status, headers, response = self._forward(body)
        if status == 201:
            found = re.search(rb"<Id>([^<]+)</Id>", response)
            with owner._lock:
                if found and owner.hold:
                    owner._state.held[found.group(1).decode()] = Held(distribution, files, wildcards)
                owner._state.by_reference[key] = Created(paths, status, headers, response)
            response = owner._rewrite_status(response)
        self._send(status, headers, response)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self.owner.upstream, timeout=10)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Host"] = f"{self.owner.upstream[0]}:{self.owner.upstream[1]}"
            conn.request(self.command, self.path, body=body or None, headers=headers)
            upstream = conn.getresponse()
            data = upstream.read()
            kept = [(k, v) for k, v in upstream.getheaders() if k.lower() not in _HOP_BY_HOP]
            return upstream.status, kept, data
        finally:
            conn.close()

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_error(self, status: int, error_type: str, code: str, message: str,
                    retry_after: str | None = None) -> None:
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", str(uuid.uuid4()))]
        if retry_after is not None:
            headers.append(("Retry-After", retry_after))
        self._send(status, headers, _error_body(code, error_type, message))

    def _reset(self) -> None:
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
