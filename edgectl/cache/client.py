"""The warm client: HTTP/1.1 GETs on asyncio, answers parsed by httptools (llhttp, Node.js's parser).

A warm request is a GET whose answer is counted (or hashed) and dropped: no redirects, cookies,
decompression or body kept. A general client's bookkeeping is then most of a request's cost,
so this one keeps only what warming needs: a pool of keep-alive connections per address, a
request written in one piece, and a parser in C. Measured on this machine against nginx on
loopback (bench/warm.py: 5,000 URLs, 64 in flight, rates while warming): `cache warm` on this
client about 9,000 requests/s, where a raw aiohttp script manages about 3,500; `cache warm` on
aiohttp managed about 2,300, on h11 over asyncio streams about 2,100, on httpx over aiohttp
about 1,600 and on httpx's own pool about 300.

A pinned request goes to the node's address with the site's real Host header and, over TLS, the
site's name as SNI (and as the name the certificate is checked against), so it fills that node's
cache for that site exactly as a visitor routed there would.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, urlsplit

USER_AGENT = "edgectl-warm"
# What a plain client sends; variants (--accept-encoding, --header) replace these per request.
DEFAULT_HEADERS = {"user-agent": ("User-Agent", USER_AGENT), "accept": ("Accept", "*/*"),
                   "accept-encoding": ("Accept-Encoding", "gzip, deflate")}
_PATH_SAFE = "/?&=;:@!$'()*+,%~-._[]#"


@dataclass(slots=True)
class Response:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    size: int
    digest: str | None


class ProtocolError(Exception):
    """The server's answer was not HTTP/1.1 this client can read, or was cut short."""


@dataclass(frozen=True, slots=True)
class Target:
    key: tuple[str, str, int, str | None]  # scheme, address to connect to, port, TLS server name
    head: bytes  # the request line and headers, ready to write


def request_for(url: str, endpoint: str | None, headers: tuple[tuple[str, str], ...] = ()) -> Target:
    """Where to connect and what to send for a URL, pinned to a node's address or not."""
    parts = urlsplit(url)  # cached by urllib: each URL is asked for once per node and variant
    scheme, site, port, host_header = _origin(parts.scheme, parts.netloc)
    if endpoint:
        scheme, address, port, _ = _origin(*urlsplit(endpoint)[:2])
    else:
        address = site
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not path.isascii() or _UNSAFE.search(path):
        path = quote(path, safe=_PATH_SAFE)
    head = f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\n".encode("latin-1") + _fields(headers)
    return Target((scheme, address, port, site if scheme == "https" else None), head)


_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


@lru_cache(maxsize=1024)
def _origin(scheme: str, netloc: str) -> tuple[str, str, int, str]:
    """(scheme, host name, port, Host header) of a URL's scheme and authority."""
    parts = urlsplit(f"{scheme}://{netloc}")
    return scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80), netloc.rpartition("@")[2]


@lru_cache(maxsize=256)
def _fields(headers: tuple[tuple[str, str], ...]) -> bytes:
    """The header lines after Host, ending the request: the defaults, as a variant changes them."""
    fields = dict(DEFAULT_HEADERS)
    for name, value in headers:
        if any(c in name or c in value for c in "\r\n\0"):
            raise ValueError(f"header {name!r} holds a line break")
        fields[name.lower()] = (name, value)
    return "".join(f"{n}: {v}\r\n" for n, v in fields.values()).encode("latin-1") + b"\r\n"


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one exchange at a time."""

    def __init__(self):
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.parse_errors = (httptools.HttpParserError, httptools.HttpParserUpgrade)  # a 101 nobody asked for
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.reused = False
        self.deadline = 0.0
        self._reset(None)

    def _reset(self, digest) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.size = 0
        self.digest = digest
        self.status = 0
        self.length: int | None = None
        self.chunked = False
        self.received = False
        self.keep_alive = False

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for, on an idle connection: it cannot be trusted again
            self.closed = True
            self.transport.abort()
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except self.parse_errors as exc:
            self._finish(ProtocolError(f"bad HTTP answer: {exc}"))
            self.transport.abort()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter is None or self.waiter.done():
            return
        if exc is None and self.status >= 200 and self.length is None and not self.chunked:
            self._finish(None)  # a body that runs until the connection closes (HTTP/1.0 style)
        elif not self.received:
            self._finish(exc or ConnectionResetError("the server closed the connection without answering"))
        else:
            self._finish(exc or ProtocolError("the connection closed before the answer was complete"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if len(name) == 14 and name.lower() == b"content-length":
            self.length = int(value) if value.strip().isdigit() else None
        elif len(name) == 17 and name.lower() == b"transfer-encoding":
            self.chunked = value.rstrip().lower().endswith(b"chunked")  # framed by chunks only when last

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.digest is not None:
            self.digest.update(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim answer (103 Early Hints): the real one follows
            self._reset(self.digest)
            self.received = True
            return
        self.keep_alive = self.parser.should_keep_alive()
        self._finish(None)

    def expire(self) -> None:
        """Past its deadline: the exchange fails as timed out, and the connection is dropped."""
        self._finish(TimeoutError())
        self.transport.abort()

    def _finish(self, error: BaseException | None) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    async def exchange(self, head: bytes, digest) -> Response:
        self._reset(digest)
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(head)
        await self.waiter
        return Response(self.status, tuple(self.headers), self.size, digest.hexdigest() if digest else None)


class Pool:
    """Keep-alive connections by address, at most `limit` open in all and `per_host` to one address."""

    def __init__(self, limit: int, timeout: float, per_host: int = 0):
        self.limit = limit
        self.timeout = timeout
        self.per_host = per_host
        self.idle: dict[tuple, list[_Connection]] = {}
        self.open = 0
        self.slots: dict[tuple, asyncio.Semaphore] = {}
        self._tls = None
        # Timeouts: each exchange notes its deadline and a sweep a few times a second ends the
        # late ones, which costs far less per request than a timer (or asyncio.timeout) each.
        self.busy: set[_Connection] = set()
        self.tick = min(0.25, max(0.02, timeout / 4))
        self.sweeper: asyncio.TimerHandle | None = None

    def _context(self):
        if self._tls is None:
            import ssl

            self._tls = ssl.create_default_context()  # the system's trust store, or SSL_CERT_FILE
            self._tls.set_alpn_protocols(["http/1.1"])
        return self._tls

    async def _connect(self, key) -> _Connection:
        while self.open >= self.limit and self._evict():
            pass
        scheme, address, port, server_name = key
        loop = asyncio.get_running_loop()
        self.open += 1
        try:
            if scheme == "https":
                _, connection = await loop.create_connection(_Connection, address, port, ssl=self._context(),
                                                             server_hostname=server_name)
            else:
                _, connection = await loop.create_connection(_Connection, address, port)
        except BaseException:
            self.open -= 1
            raise
        return connection

    def _evict(self) -> bool:
        """Close one idle connection to any address; False when none is idle."""
        for connections in self.idle.values():
            if connections:
                self._close(connections.pop())
                return True
        return False

    def _close(self, connection: _Connection) -> None:
        self.open -= 1
        if connection.transport is not None:
            connection.transport.abort()

    def _take(self, key) -> _Connection | None:
        connections = self.idle.get(key)
        while connections:
            connection = connections.pop()
            if not connection.closed and not connection.transport.is_closing():
                connection.reused = True
                return connection
            self.open -= 1
        return None

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in [c for c in self.busy if c.deadline <= now]:
            connection.expire()
        self.sweeper = loop.call_later(self.tick, self._sweep)

    async def get(self, target: Target, hash_body: bool) -> Response:
        if self.sweeper is None:
            self._sweep()
        slot = None
        if self.per_host:  # per node or host, whatever the sites (server names) pinned to it
            address = target.key[:3]
            slot = self.slots.get(address)
            if slot is None:
                slot = self.slots[address] = asyncio.Semaphore(self.per_host)
        if slot is not None:
            async with slot:
                return await self._get(target, hash_body)
        return await self._get(target, hash_body)

    async def _get(self, target: Target, hash_body: bool) -> Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            connection = self._take(target.key)
            if connection is None:
                connection = await asyncio.wait_for(self._connect(target.key), max(0.0, deadline - loop.time()))
            digest = hashlib.sha256() if hash_body else None
            connection.deadline = deadline
            self.busy.add(connection)
            try:
                response = await connection.exchange(target.head, digest)
            except (ConnectionError, ProtocolError) as exc:
                self._close(connection)
                # a kept-alive connection the server had just closed: send again on a new one
                if connection.reused and not connection.received and not isinstance(exc, ProtocolError):
                    continue
                raise
            except BaseException:  # timed out or cancelled part-way: the connection is in no state to reuse
                self._close(connection)
                raise
            finally:
                self.busy.discard(connection)
            if connection.keep_alive and not connection.closed:
                self.idle.setdefault(target.key, []).append(connection)
            else:
                self._close(connection)
            return response

    def close(self) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
            self.sweeper = None
        for connections in self.idle.values():
            for connection in connections:
                self._close(connection)
        self.idle.clear()


class session:
    """One pool for a whole run: `async with session(...) as pool`."""

    def __init__(self, concurrency: int, timeout: float, per_host: int = 0):
        self.pool = Pool(concurrency, timeout, per_host)

    async def __aenter__(self) -> Pool:
        return self.pool

    async def __aexit__(self, *exc) -> None:
        self.pool.close()


async def get(pool: Pool, url: str, endpoint: str | None, headers: tuple[tuple[str, str], ...],
              hash_body: bool) -> Response:
    """One GET; the body counted (or hashed) as it arrives, and dropped."""
    return await pool.get(request_for(url, endpoint, headers), hash_body)
