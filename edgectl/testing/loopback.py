"""Loopback HTTP servers for provider tests: a fake API to subclass, and a proxy that injects faults.

Both record every request they receive (`requests`, a list of `Seen` in arrival order, each there
from the moment it arrived and given its status once answered) and serve queued faults before
anything else, whatever the path:

  fail_next(status=503, count=1, retry_after=None)  answer with `fault_answer` (the API's error body)
  drop_next(count=1)      handle the request (its effect happens), then reset the connection unanswered
  reset_next(count=1)     reset the connection without handling the request: it never happened
  delay_next(seconds)     answer late, for client timeouts

`FakeAPI` answers with `handle(seen) -> Answer`, which a provider's fake implements from the
provider's documentation (or raises `Unanswered` to reset the connection, for faults of its own). `FaultProxy(upstream)` forwards every request to a real server (a
`varnishd`, an nginx) and passes its answer back, so the same faults can be put in front of it.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    target: str  # path and query as sent
    headers: Mapping[str, str]  # names lower-cased
    body: bytes
    at: float  # time.monotonic() when it arrived
    fault: str | None = None  # 'fail', 'drop', 'reset' or 'delay' when a queued fault was spent on it
    status: int | None = None  # what was answered; None while unanswered, or when the connection was dropped

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    @property
    def reached(self) -> bool:
        """True when the request was handled (or forwarded): no fault answered in its place."""
        return self.fault in (None, "drop", "delay")

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = b""  # bytes, str, or anything else as JSON
    headers: Mapping[str, str] = field(default_factory=dict)

    def payload(self) -> tuple[bytes, str | None]:
        if isinstance(self.body, bytes):
            return self.body, None
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


class Unanswered(Exception):
    """Raised by `handle`: the connection is reset with no answer, as `reset_next` does (for a fake
    whose own faults pick their requests, by operation say)."""


@dataclass
class _Fault:
    kind: str  # fail | drop | reset | delay
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0
    detail: Any = None  # for fault_answer, when fail_next was given one


class FakeAPI:
    """A threaded HTTP/1.1 server on 127.0.0.1; subclasses implement `handle`. Thread-safe while it serves."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._address = (host, port)
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._seen: list[Seen] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- what a subclass provides ----------------------------------------------
    def handle(self, seen: Seen) -> Answer:
        raise NotImplementedError

    def fault_answer(self, seen: Seen, status: int, retry_after: float | None) -> Answer:
        """The answer a queued `fail_next` gives; override it to use the API's own error body.

        A `fail_next(..., detail=X)` calls it with `detail=X` as well (an API's own error codes for
        that one fault), so an override that takes `detail` can use it."""
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return Answer(status, {"error": http.client.responses.get(status, "error")}, headers)

    # -- life ------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self._server = _Server(self._address, _Handler)
        self._server.fake = self
        # a short poll: stop() waits for serve_forever to notice, and tests start and stop many of these
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- faults and records ----------------------------------------------------
    def fail_next(self, status: int = 503, count: int = 1, retry_after: float | None = None, *,
                  detail: Any = None) -> None:
        with self._lock:
            self._faults.extend(_Fault("fail", status, retry_after, detail=detail) for _ in range(count))

    def drop_next(self, count: int = 1) -> None:
        with self._lock:
            self._faults.extend(_Fault("drop") for _ in range(count))

    def reset_next(self, count: int = 1) -> None:
        with self._lock:
            self._faults.extend(_Fault("reset") for _ in range(count))

    def delay_next(self, seconds: float, count: int = 1) -> None:
        with self._lock:
            self._faults.extend(_Fault("delay", seconds=seconds) for _ in range(count))

    @property
    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def clear(self) -> None:
        """Forget the requests seen and the faults not yet spent."""
        with self._lock:
            self._seen.clear()
            self._faults.clear()

    # -- serving -----------------------------------------------------------------
    def _spend_fault(self) -> _Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _seen_arrived(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    def _seen_answered(self, seen: Seen, status: int) -> None:
        """The request recorded on arrival, now with its status (unless clear() forgot it meanwhile)."""
        with self._lock:
            for index in range(len(self._seen) - 1, -1, -1):
                if self._seen[index] is seen:
                    self._seen[index] = replace(seen, status=status)
                    return


class FaultProxy(FakeAPI):
    """Forwards every request to `upstream` (http://host:port) and answers with what it answered."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0, timeout: float = 10.0):
        super().__init__(host, port)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.timeout = timeout

    def handle(self, seen: Seen) -> Answer:
        connection = http.client.HTTPConnection(*self.upstream, timeout=self.timeout)
        try:
            headers = {name: value for name, value in seen.headers.items()
                       if name not in ("connection", "keep-alive", "transfer-encoding", "content-length")}
            connection.request(seen.method, seen.target, body=seen.body or None, headers=headers)
            response = connection.getresponse()
            body = response.read()
            passed = {name: value for name, value in response.getheaders()
                      if name.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length")}
            return Answer(response.status, body, passed)
        finally:
            connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    fake: FakeAPI

    def handle_error(self, request, client_address):
        pass  # a client that gave up on a delayed answer is expected, not news


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as SDK connection pools expect
    server: _Server

    def setup(self):
        super().setup()
        # headers and body go out as two writes; without this, Nagle and delayed ACKs add 40 ms to each answer
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):
        pass

    def _body(self) -> bytes:
        """The request's body, by Content-Length or in chunks (an SDK streaming its upload)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers, then the blank line
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        fake = self.server.fake
        body = self._body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        fault = fake._spend_fault()
        # recorded as it arrives, so that a request still being answered (or held by a delay) is seen
        seen = Seen(self.command, self.path, headers, body, time.monotonic(), fault.kind if fault else None)
        fake._seen_arrived(seen)
        if fault and fault.kind == "reset":
            self._reset()
            return
        if fault and fault.kind == "delay":
            if fake._stopping.wait(fault.seconds):
                self.close_connection = True
                return
        if fault and fault.kind == "fail":
            extra = {} if fault.detail is None else {"detail": fault.detail}
            answer = fake.fault_answer(seen, fault.status, fault.retry_after, **extra)
        else:
            try:
                answer = fake.handle(seen)
            except Unanswered:
                self._reset()
                return
            except Exception as exc:  # a bug in a fake shows as a 500 naming it, not a hung client
                answer = Answer(500, {"fake_error": f"{exc.__class__.__name__}: {exc}"})
        if fault and fault.kind == "drop":
            self._reset()
            return
        fake._seen_answered(seen, answer.status)
        payload, content_type = answer.payload()
        self.send_response(answer.status)
        names = {name.lower() for name in answer.headers}
        if content_type and "content-type" not in names:
            self.send_header("Content-Type", content_type)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if self.command != "HEAD" or "content-length" not in names:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _reset(self) -> None:
        # RST, not FIN: the client sees the connection torn down with no answer
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_PURGE = do_BAN = do_OPTIONS = _serve
