"""edgectl.testing's loopback servers: what they record, the faults they serve, and the proxy in front of a real server."""

from __future__ import annotations

import httpx
import pytest

from edgectl.testing import Answer, FakeAPI, FaultProxy


class Echo(FakeAPI):
    def handle(self, seen):
        return Answer(200, {"method": seen.method, "path": seen.path, "body": seen.body.decode()},
                      {"X-Echo": "1"})


def test_requests_are_recorded_with_their_bodies_whether_sized_or_chunked():
    def chunks():
        yield b"hello "
        yield b"world"

    with Echo() as api, httpx.Client(base_url=api.url, trust_env=False) as client:
        assert client.post("/sized?a=1", content=b"plain").json()["body"] == "plain"
        assert client.post("/chunked", content=chunks()).json()["body"] == "hello world"
        assert client.request("PURGE", "/x").json()["method"] == "PURGE"  # methods HTTP does not define too
        seen = api.requests
    assert [(s.method, s.path, s.body, s.status) for s in seen] == [
        ("POST", "/sized", b"plain", 200), ("POST", "/chunked", b"hello world", 200), ("PURGE", "/x", b"", 200)]
    assert seen[0].query == {"a": ["1"]} and seen[1].headers["transfer-encoding"] == "chunked"


def test_queued_faults_answer_first_and_a_dropped_request_still_takes_effect():
    with Echo() as api, httpx.Client(base_url=api.url, trust_env=False) as client:
        api.fail_next(429, retry_after=2)
        refused = client.get("/a")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "2"
        api.drop_next()
        with pytest.raises(httpx.HTTPError):
            client.get("/b")
        assert client.get("/c").status_code == 200
        seen = api.requests
    assert [(s.path, s.fault, s.reached) for s in seen] == [("/a", "fail", False), ("/b", "drop", True),
                                                            ("/c", None, True)]


def test_the_fault_proxy_forwards_to_a_real_server_and_faults_in_front_of_it():
    with Echo() as upstream, FaultProxy(upstream.url) as proxy, httpx.Client(base_url=proxy.url,
                                                                            trust_env=False) as client:
        answer = client.post("/through", content=b"x")
        assert answer.json() == {"method": "POST", "path": "/through", "body": "x"}
        assert answer.headers["x-echo"] == "1"
        proxy.fail_next(503)
        assert client.get("/never").status_code == 503
        assert [s.path for s in upstream.requests] == ["/through"]  # the injected failure never reached it
        assert [s.path for s in proxy.requests] == ["/through", "/never"]
