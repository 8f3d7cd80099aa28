"""The warm client against a server that answers each path in one of HTTP/1.1's less common ways.

Chunked bodies, bodies that run until the connection closes, an interim 103 before the answer,
an answer cut short, a kept-alive connection the server drops while it is idle, and what the
request itself carries: the path percent-encoded, credentials from the URL, the default headers.
"""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import threading

import pytest

ANSWERS = {
    "/plain": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: max-age=60\r\n\r\nplain",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    "/early": b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
              b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Cache: HIT\r\n\r\nok",
}


@pytest.fixture
def odd_server():
    """A raw HTTP/1.1 server: ANSWERS by path, plus /until-close, /short, /drop-after and /hang."""
    seen: list[bytes] = []
    connections = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while not stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                seen.append(head)
                path = head.split(b" ")[1].decode()
                if path == "/until-close":
                    conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nbody until the end")
                    return
                if path == "/hang":  # reads the request, never answers
                    stop.wait(10)
                    return
                if path == "/stray":  # answers, then sends the start of an answer nobody asked for
                    conn.sendall(ANSWERS["/plain"])
                    stop.wait(0.1)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
                    continue
                if path == "/upgrade":
                    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
                    return
                if path == "/missing":
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop")
                    continue
                if path == "/short":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                    return
                if path.startswith("/drop-after"):  # answers, then drops the kept-alive connection
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    return
                conn.sendall(ANSWERS.get(path.split("?")[0], ANSWERS["/plain"]))

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            connections.append(conn)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen, connections
    stop.set()
    listener.close()


def results(isolated) -> dict[str, tuple]:
    with sqlite3.connect(isolated / "state.db") as db:
        return {url.rsplit("/", 1)[1]: (code, error) for url, code, error in
                db.execute("SELECT url, status_code, error FROM warm_results")}


def test_chunked_until_close_and_interim_answers_are_read_whole(cli, odd_server, isolated):
    base, seen, _ = odd_server
    run = cli("cache", "warm", "--hash", "--retries", "0", "-o", "json",
              *[a for p in ("plain", "chunked", "early", "until-close") for a in ("--url", f"{base}/{p}")])
    assert run.exit_code == 0, run.stderr
    report = run.json()
    assert report["status_classes"] == {"2xx": 4} and report["bytes"] == 5 + 11 + 2 + 18
    assert report["cache_before"]["(public)"]["hit"] == 1  # the 103's headers are not the answer's
    with sqlite3.connect(isolated / "state.db") as db:
        hashes = dict(db.execute("SELECT url, content_hash FROM edge_cache_entries"))
    assert hashes[f"{base}/chunked"] == hashlib.sha256(b"hello world").hexdigest()


def test_an_answer_cut_short_is_an_error_and_a_dropped_idle_connection_is_sent_again(cli, odd_server, isolated):
    base, seen, connections = odd_server
    run = cli("cache", "warm", "--url", f"{base}/short", "--retries", "0", "-o", "json")
    assert run.exit_code == 1  # every request failed
    assert "closed before the answer was complete" in run.json()["common_errors"][0]["error"]
    # one connection at a time: each request after the first finds the last one dropped while idle
    urls = [a for i in range(5) for a in ("--url", f"{base}/drop-after?{i}")]
    again = cli("cache", "warm", *urls, "--concurrency", "1", "--retries", "0", "-o", "json")
    assert again.exit_code == 0, again.stderr
    assert again.json()["status_classes"] == {"2xx": 5} and again.json()["errors"] == 0


def test_the_request_is_encoded_and_carries_plain_defaults_and_never_credentials(cli, odd_server, isolated):
    base, seen, _ = odd_server
    host = base.split("://")[1]
    listing = isolated / "urls.txt"
    listing.write_text(f"{base}/caf\u00e9-menu?q=\u00e9t\u00e9\nhttp://ops:s3cret@{host}/plain\n")
    run = cli("cache", "warm", "--urls-file", str(listing), "--retries", "0", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["requests"] == 1 and "urls.txt:2: a URL with credentials" in run.stderr
    assert "s3cret" not in run.stderr + run.stdout
    request = seen[-1].decode("latin-1").split("\r\n")
    assert request[0] == "GET /caf%C3%A9-menu?q=%C3%A9t%C3%A9 HTTP/1.1"
    fields = dict(line.split(": ", 1) for line in request[1:])
    assert fields["Host"] == host
    assert fields["Accept-Encoding"] == "gzip, deflate" and fields["User-Agent"] == "edgectl-warm"
    assert b"s3cret" not in (isolated / "state.db").read_bytes()
    varied = cli("cache", "warm", "--url", f"{base}/plain", "--accept-encoding", "br", "-o", "json")
    assert varied.exit_code == 0
    assert "Accept-Encoding: br" in seen[-1].decode() and "gzip" not in seen[-1].decode()


def test_an_answer_that_never_comes_times_out_on_time(cli, odd_server):
    import time

    base, _, _ = odd_server
    started = time.monotonic()
    run = cli("cache", "warm", "--url", f"{base}/hang", "--url", f"{base}/plain", "--timeout", "1", "--retries", "0",
              "-o", "json")
    elapsed = time.monotonic() - started
    assert run.exit_code == 0, run.stderr  # one of two failed: under no threshold, the run stands
    assert run.json()["common_errors"] == [{"error": "timed out after 1s", "count": 1}]
    assert 1.0 <= elapsed < 5.0


def test_bytes_nobody_asked_for_retire_the_connection_and_an_unasked_upgrade_is_an_error(cli, odd_server, isolated):
    base, _, connections = odd_server
    run = cli("cache", "warm", "--url", f"{base}/stray", "--url", f"{base}/missing", "--url", f"{base}/upgrade",
              "--concurrency", "1", "--rate", "4", "--retries", "0", "-o", "json")
    assert run.exit_code == 0, run.stderr
    got = results(isolated)
    assert got["stray"] == (200, None)
    assert got["missing"] == (404, None)  # its own answer, not the stray one's
    assert got["upgrade"][0] is None and got["upgrade"][1].startswith("ProtocolError: bad HTTP answer")
    assert "Traceback" not in run.stderr and len(connections) >= 2
