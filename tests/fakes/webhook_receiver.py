"""A webhook receiver on loopback for alert notifications, checking bodies as their real receivers read them.

`alertmanager` mode takes Alertmanager's webhook body (version "4": receiver, status, alerts with
status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint; groupLabels,
commonLabels, commonAnnotations, externalURL, groupKey, truncatedAlerts) and answers 400 to one
that lacks a field or has one of the wrong type. `slack` mode answers like a Slack incoming
webhook: 200 with the body `ok`, 400 `invalid_payload` for a body that is not JSON and
`no_text` for one without text.

Faults are queued and each is spent by the next request:
  fail_next(status=503, count=2)            answer with that status
  rate_limit_next(retry_after=1, count=1)   answer 429 with Retry-After
  fail_always(status=500)                   every request fails, until reset()
Every request, accepted or not, is in `requests`; the accepted bodies are in `received`.

In-process: `with WebhookReceiver() as hook: hook.url + "/hook"`.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self):
        return json.loads(self.body)


def _string_map(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def alertmanager_problems(body) -> list[str]:
    """What a receiver of Alertmanager's version-4 webhook would not accept in this body."""
    if not isinstance(body, dict):
        return ["the body is not an object"]
    problems = []
    expected = {"version": str, "groupKey": str, "truncatedAlerts": int, "status": str, "receiver": str,
                "groupLabels": dict, "commonLabels": dict, "commonAnnotations": dict, "externalURL": str,
                "alerts": list}
    for key, kind in expected.items():
        if not isinstance(body.get(key), kind):
            problems.append(f"{key} is missing or not a {kind.__name__}")
    if body.get("version") != "4":
        problems.append("version is not \"4\"")
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        if key in body and not _string_map(body[key]):
            problems.append(f"{key} is not a map of strings")
    alerts = body.get("alerts") if isinstance(body.get("alerts"), list) else []
    if not alerts:
        problems.append("alerts is empty")
    for i, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            problems.append(f"alerts[{i}] is not an object")
            continue
        if alert.get("status") not in ("firing", "resolved"):
            problems.append(f"alerts[{i}].status is not firing or resolved")
        for key in ("labels", "annotations"):
            if not _string_map(alert.get(key)):
                problems.append(f"alerts[{i}].{key} is not a map of strings")
        if "alertname" not in (alert.get("labels") or {}):
            problems.append(f"alerts[{i}].labels has no alertname")
        for key in ("startsAt", "endsAt"):
            if not isinstance(alert.get(key), str) or not _RFC3339.fullmatch(alert[key]):
                problems.append(f"alerts[{i}].{key} is not RFC 3339")
        if not isinstance(alert.get("generatorURL"), str):
            problems.append(f"alerts[{i}].generatorURL is not a string")
        if not isinstance(alert.get("fingerprint"), str) or not _FINGERPRINT.fullmatch(alert["fingerprint"]):
            problems.append(f"alerts[{i}].fingerprint is not 16 hex digits")
    if body.get("status") not in ("firing", "resolved"):
        problems.append("status is not firing or resolved")
    elif alerts and body["status"] != ("firing" if any(a.get("status") == "firing" for a in alerts if isinstance(a, dict))
                                       else "resolved"):
        problems.append("status does not follow the alerts' (firing when any is)")
    return problems


@dataclass
class _Fault:
    status: int
    retry_after: str | None = None


@dataclass
class WebhookReceiver:
    mode: str = "alertmanager"  # or slack
    requests: list[Request] = field(default_factory=list)
    _faults: deque = field(default_factory=deque)
    _always: _Fault | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- faults --------------------------------------------------------------------------------
    def fail_next(self, status: int = 503, count: int = 1) -> None:
        with self._lock:
            self._faults.extend(_Fault(status) for _ in range(count))

    def rate_limit_next(self, retry_after: float | str = 1, count: int = 1) -> None:
        with self._lock:
            self._faults.extend(_Fault(429, str(retry_after)) for _ in range(count))

    def fail_always(self, status: int = 500) -> None:
        with self._lock:
            self._always = _Fault(status)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._always = None
            self.requests.clear()

    @property
    def received(self) -> list[dict]:
        """The bodies accepted, in order."""
        with self._lock:
            return [r.json() for r in self.requests if r.status == 200]

    # -- serving -------------------------------------------------------------------------------
    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            fault = self._faults.popleft() if self._faults else self._always
        if fault is not None:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            status, answer = fault.status, b"rate_limited" if fault.status == 429 else b"unavailable"
        elif "application/json" not in headers.get("content-type", ""):
            status, extra, answer = 400, {}, b"invalid_payload"
        else:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            extra = {}
            if self.mode == "slack":
                if not isinstance(parsed, dict):
                    status, answer = 400, b"invalid_payload"
                elif not isinstance(parsed.get("text"), str) or not parsed["text"].strip():
                    status, answer = 400, b"no_text"
                else:
                    status, answer = 200, b"ok"
            else:
                problems = alertmanager_problems(parsed)
                status, answer = (400, "; ".join(problems).encode()) if problems else (200, b"")
        with self._lock:
            self.requests.append(Request(path, headers, body, status))
        return status, extra, answer

    def start(self) -> "WebhookReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, extra, answer = receiver._answer(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                         body)
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "WebhookReceiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
