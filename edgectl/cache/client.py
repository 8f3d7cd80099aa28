"""A lean HTTP/1.1 client for warming: keep-alive connections over asyncio streams, parsed by h11.

Each warm worker owns its connections (one per target), so there is no shared pool to lock or
keep books on: per request the cost is one h11 exchange. A target is where to connect (a node's
address, or the URL's own host) and, for TLS, the name to send as SNI; the request always
carries the URL's real Host, so a pinned request fills that node's cache for that site.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

USER_AGENT = "edgectl-warm"
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Target:
    host: str  # where to connect
    port: int
    tls: bool
    sni: str | None  # server name for TLS (the URL's host when pinning)


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    size: int
    digest: str | None


def target_for(url: str, node_endpoint: str | None) -> tuple[Target, str, str]:
    """(where to connect, Host header, request target) for a URL, pinned to a node or not."""
    parts = urlsplit(url)
    host_header = parts.netloc.rpartition("@")[2]
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if node_endpoint:
        node = urlsplit(node_endpoint)
        tls = node.scheme == "https"
        return Target(node.hostname or "", node.port or (443 if tls else 80), tls,
                      parts.hostname if tls else None), host_header, path
    tls = parts.scheme == "https"
    return Target(parts.hostname or "", parts.port or (443 if tls else 80), tls,
                  parts.hostname if tls else None), host_header, path


_TLS: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    global _TLS
    if _TLS is None:
        _TLS = ssl.create_default_context()
    return _TLS


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        import h11

        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)

    @classmethod
    async def open(cls, target: Target) -> "Connection":
        reader, writer = await asyncio.open_connection(
            target.host, target.port, ssl=_tls() if target.tls else None,
            server_hostname=target.sni if target.tls else None, limit=READ_CHUNK)
        return cls(reader, writer)

    def close(self) -> None:
        self.writer.transport.abort()

    async def get(self, host: str, path: str, headers: list[tuple[str, str]], hash_body: bool) -> tuple[Response, bool]:
        """One GET; the body is streamed and discarded (or hashed). Returns (response, reusable)."""
        import h11

        conn = self.h11
        request = h11.Request(method="GET", target=path,
                              headers=[("Host", host), ("User-Agent", USER_AGENT), *headers])
        self.writer.write(conn.send(request) + conn.send(h11.EndOfMessage()))
        digest = hashlib.sha256() if hash_body else None
        status, response_headers, size = 0, [], 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(READ_CHUNK)
                conn.receive_data(data)
            elif type(event) is h11.Response:
                status, response_headers = event.status_code, event.headers
            elif type(event) is h11.Data:
                size += len(event.data)
                if digest is not None:
                    digest.update(event.data)
            elif type(event) is h11.EndOfMessage:
                break
            elif type(event) is h11.ConnectionClosed:
                raise ConnectionResetError("the server closed the connection mid-response")
            elif type(event) is h11.InformationalResponse:
                continue
        reusable = conn.our_state is h11.DONE and conn.their_state is h11.DONE
        if reusable:
            conn.start_next_cycle()
        return Response(status, list(response_headers), size, digest.hexdigest() if digest else None), reusable
