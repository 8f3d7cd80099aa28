"""Health endpoints on loopback that behave well and badly, for `nodes check` tests and bench.

Each port has a behaviour, changeable while running:
  healthy    200 with a JSON health document
  slow       like healthy, after `delay` seconds
  error      500
  flapping   alternates up and down on each request
  nonjson    200 with a plain-text body
  huge       200 with a body of `size` bytes, streamed
  blackhole  accepts the connection and never answers
  sick       200 with {"status": "fail"}
  auth       healthy only with `Authorization: Bearer <token>`, else 401
A closed port (nothing listening) comes from closed_port().

Run as a program it serves many ports at once (for bench/ and the demo) and writes their
URLs, one `behaviour url` per line, to --port-file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import threading
from dataclasses import dataclass, field

HEALTH_DOC = {"status": "ok", "cpu_percent": 12.5, "memory_percent": 40.0, "disk_percent": 55.0,
              "network_mbps": 80.0, "cache_entries": 1200}


@dataclass
class Endpoint:
    behaviour: str
    delay: float = 0.0
    size: int = 50 * 1024 * 1024
    token: str | None = None
    doc: dict = field(default_factory=lambda: dict(HEALTH_DOC))
    hits: int = 0
    last_headers: dict = field(default_factory=dict)


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    reason = {200: "OK", 401: "Unauthorized", 500: "Internal Server Error"}.get(status, "OK")
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode() + body


class HealthFleet:
    """Many endpoints on one event loop, run in a background thread or in the foreground."""

    def __init__(self):
        self.endpoints: dict[int, Endpoint] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._thread: threading.Thread | None = None
        self._parked: set = set()

    # -- running -------------------------------------------------------------
    def start(self) -> "HealthFleet":
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="health-fleet", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        if not self.loop:
            return

        async def close():
            for server in self._servers:
                server.close()
            for writer in list(self._parked):
                writer.transport.abort()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def add(self, behaviour: str, tls=None, **options) -> int:
        """A new endpoint; `tls` (an ssl.SSLContext) makes it speak https."""
        future = asyncio.run_coroutine_threadsafe(self._listen(Endpoint(behaviour, **options), tls=tls), self.loop)
        return future.result(5)

    def url(self, port: int, path: str = "/health") -> str:
        return f"http://127.0.0.1:{port}{path}"

    def set(self, port: int, behaviour: str, **options) -> None:
        endpoint = self.endpoints[port]
        endpoint.behaviour = behaviour
        for key, value in options.items():
            setattr(endpoint, key, value)

    async def _listen(self, endpoint: Endpoint, port: int = 0, tls=None) -> int:
        server = await asyncio.start_server(
            lambda r, w: self._handle(endpoint, r, w), "127.0.0.1", port, backlog=1024, ssl=tls
        )
        self._servers.append(server)
        port = server.sockets[0].getsockname()[1]
        self.endpoints[port] = endpoint
        return port

    # -- answering -----------------------------------------------------------
    async def _handle(self, endpoint: Endpoint, reader, writer) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        endpoint.hits += 1
        lines = head.decode("latin-1").split("\r\n")
        endpoint.last_headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
        behaviour = endpoint.behaviour
        try:
            if behaviour == "blackhole":
                self._parked.add(writer)
                return  # hold the connection open, say nothing
            if behaviour == "slow":
                await asyncio.sleep(endpoint.delay)
            if behaviour == "auth" and endpoint.last_headers.get("authorization") != f"Bearer {endpoint.token}":
                writer.write(_response(401, b'{"error":"unauthorized"}'))
            elif behaviour == "error":
                writer.write(_response(500, b'{"status":"error"}'))
            elif behaviour == "flapping":
                up = endpoint.hits % 2 == 1
                writer.write(_response(200 if up else 500, json.dumps(endpoint.doc if up else {}).encode()))
            elif behaviour == "nonjson":
                writer.write(_response(200, b"OK\n", "text/plain"))
            elif behaviour == "sick":
                writer.write(_response(200, b'{"status":"fail"}'))
            elif behaviour == "huge":
                writer.write((f"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
                              f"content-length: {endpoint.size}\r\nconnection: close\r\n\r\n").encode())
                chunk = b"x" * 65536
                for _ in range(endpoint.size // len(chunk)):
                    writer.write(chunk)
                    await writer.drain()
            else:
                writer.write(_response(200, json.dumps(endpoint.doc).encode()))
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if behaviour != "blackhole":
                writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True)
    for behaviour in ("healthy", "slow", "error", "flapping", "nonjson", "huge", "blackhole", "sick"):
        parser.add_argument(f"--{behaviour}", type=int, default=0, metavar="N")
    parser.add_argument("--delay", type=float, default=3.0)
    args = parser.parse_args()

    async def serve():
        fleet = HealthFleet()
        fleet.loop = asyncio.get_running_loop()
        lines = []
        for behaviour in ("healthy", "slow", "error", "flapping", "nonjson", "huge", "blackhole", "sick"):
            for _ in range(getattr(args, behaviour)):
                port = await fleet._listen(Endpoint(behaviour, delay=args.delay))
                lines.append(f"{behaviour} {fleet.url(port)}")
        with open(args.port_file + ".tmp", "w") as handle:
            handle.write("\n".join(lines) + "\n")
        import os

        os.replace(args.port_file + ".tmp", args.port_file)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            fleet.loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
