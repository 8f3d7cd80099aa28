"""cache warm against an origin that answers 429 and 503: it waits as told, slows down, and retries."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass


@contextmanager
def serving(handler):
    """An HTTP server on loopback for the test's length; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def moody():
    """A server that refuses the first `refusals` requests (429 with Retry-After: 1, then 503), then serves."""
    state = {"refusals": 4, "requests": 0, "times": []}
    lock = threading.Lock()

    class Handler(Quiet):
        def do_GET(self):
            with lock:
                state["requests"] += 1
                state["times"].append(time.monotonic())
                refuse = state["refusals"] > 0
                state["refusals"] -= 1 if refuse else 0
                status = (429 if state["refusals"] % 2 else 503) if refuse else 200
            body = b"ok\n" if status == 200 else b"slow down\n"
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(Handler) as base:
        yield base, state


def test_429s_and_503s_are_retried_after_the_wait_they_ask_for(cli, moody):
    base, state = moody
    urls = [f"{base}/p{i}" for i in range(4)]
    started = time.monotonic()
    run = cli("cache", "warm", *[a for u in urls for a in ("--url", u)], "--concurrency", "1", "--retries", "4",
              "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["errors"] == 0 and run.json()["status_classes"] == {"2xx": 4}
    assert state["requests"] == 8  # four refusals, each sent again
    assert time.monotonic() - started >= 2.0  # two 429s, each with Retry-After: 1


def test_retries_run_out_into_an_error_the_summary_counts(cli, moody):
    base, state = moody
    state["refusals"] = 100
    run = cli("cache", "warm", "--url", f"{base}/never", "--retries", "1", "--max-error-rate", "0", "-o", "json")
    assert run.exit_code == 1
    assert run.json()["common_errors"][0]["error"].startswith("HTTP ") and state["requests"] == 2


def test_a_result_the_state_refuses_stops_the_run_with_its_reason_and_resume_finishes_it(cli, moody, isolated):
    import sqlite3

    base, state = moody
    state["refusals"] = 0
    assert cli("nodes", "list").exit_code == 0  # creates the state file
    with sqlite3.connect(isolated / "state.db") as db:  # the state file refuses one result, as a full disk would
        db.execute("CREATE TRIGGER refuse BEFORE INSERT ON warm_results WHEN NEW.url LIKE '%/refused'"
                   " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    urls = [f"{base}/p{i}" for i in range(5)] + [f"{base}/refused"]
    run = cli("cache", "warm", *[a for u in urls for a in ("--url", u)])
    assert run.exit_code == 1
    assert run.stderr.startswith("error: recording warm results failed: ") and "disk is full" in run.stderr
    assert "Traceback" not in run.stderr
    with sqlite3.connect(isolated / "state.db") as db:
        db.execute("DROP TRIGGER refuse")
    assert cli("cache", "runs", "-o", "json").json()[0]["status"] == "interrupted"
    resumed = cli("cache", "warm", "--resume", "1", "-o", "json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["requests"] == 6 and resumed.json()["status_classes"] == {"2xx": 6}


@pytest.fixture
def slow_origin():
    """A server that holds each answer 0.2 s and counts the connections open at once."""
    state = {"open": 0, "most": 0, "requests": 0}
    lock = threading.Lock()

    class Handler(Quiet):
        def setup(self):
            super().setup()
            with lock:
                state["open"] += 1
                state["most"] = max(state["most"], state["open"])

        def finish(self):
            with lock:
                state["open"] -= 1
            super().finish()

        def do_GET(self):
            time.sleep(0.2)
            with lock:
                state["requests"] += 1
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"ok\n")

    with serving(Handler) as base:
        yield base, state


def test_per_host_bounds_the_connections_to_one_host(cli, slow_origin):
    base, state = slow_origin
    urls = [a for i in range(12) for a in ("--url", f"{base}/p{i}")]
    bounded = cli("cache", "warm", *urls, "--concurrency", "12", "--per-host", "2", "-o", "json")
    assert bounded.exit_code == 0, bounded.stderr
    assert state["requests"] == 12 and state["most"] <= 2
    state["most"] = 0
    unbounded = cli("cache", "warm", *[u.replace("/p", "/q") for u in urls], "--concurrency", "12", "-o", "json")
    assert unbounded.exit_code == 0 and state["most"] > 2  # the bound above was --per-host's doing
