"""The fake refuses what the Fastly API refuses and answers in its shapes, over real HTTP on loopback."""

from __future__ import annotations

import time

import httpx
import pytest

from fake_fastly import KEY, SERVICE, FakeFastly, Token


@pytest.fixture
def http(fake):
    with httpx.Client(base_url=fake.url, headers={"Fastly-Key": KEY}, timeout=10, trust_env=False) as client:
        yield client


@pytest.mark.parametrize("headers", [{}, {"Fastly-Key": KEY + "-wrong"}])
def test_a_missing_or_wrong_key_is_a_401_with_fastlys_message(fake, headers):
    with httpx.Client(base_url=fake.url, timeout=10, trust_env=False) as client:
        for method, path in (("POST", f"/service/{SERVICE}/purge_all"), ("POST", "/purge/www.example.com/"),
                             ("GET", f"/stats/service/{SERVICE}"), ("GET", "/tokens/self")):
            answer = client.request(method, path, headers=headers)
            assert answer.status_code == 401
            assert answer.json() == {"msg": "Provided credentials are missing or invalid"}
    assert fake.purged() == []


def test_purges_answer_ok_with_an_id_and_a_batch_answers_a_map_of_key_to_purge_id(fake, http):
    url = http.post("/purge/www.example.com/a/b?x=1", headers={"Fastly-Soft-Purge": "1"})
    assert url.status_code == 200 and url.json()["status"] == "ok" and url.json()["id"]
    one = http.post(f"/service/{SERVICE}/purge/product-1")
    assert one.json()["status"] == "ok"
    batch = http.post(f"/service/{SERVICE}/purge", json={"surrogate_keys": ["k1", "k2"]})
    assert set(batch.json()) == {"k1", "k2"} and all(batch.json().values())
    by_header = http.post(f"/service/{SERVICE}/purge", headers={"Surrogate-Key": "k3 k4"})
    assert set(by_header.json()) == {"k3", "k4"}
    everything = http.post(f"/service/{SERVICE}/purge_all")
    assert everything.json() == {"status": "ok"}
    assert [(p.kind, p.items, p.soft) for p in fake.purged()] == [
        ("url", ("www.example.com/a/b?x=1",), True), ("key", ("product-1",), False), ("keys", ("k1", "k2"), False),
        ("keys", ("k3", "k4"), False), ("all", (), False)]


def test_more_than_256_keys_a_key_over_1kb_or_no_keys_are_refused(fake, http):
    assert http.post(f"/service/{SERVICE}/purge", json={"surrogate_keys": [f"k{i}" for i in range(256)]}).status_code == 200
    for body in ({"surrogate_keys": [f"k{i}" for i in range(257)]}, {"surrogate_keys": ["x" * 1025]},
                 {"surrogate_keys": []}, {"keys": ["a"]}):
        answer = http.post(f"/service/{SERVICE}/purge", json=body)
        assert answer.status_code == 400 and answer.json()["msg"] == "Bad request" and answer.json()["detail"]
    assert [len(p.items) for p in fake.purged()] == [256]


def test_purge_all_cannot_be_soft(fake, http):
    answer = http.post(f"/service/{SERVICE}/purge_all", headers={"Fastly-Soft-Purge": "1"})
    assert answer.status_code == 400 and "soft" in answer.json()["detail"]
    assert fake.purged() == []


def test_an_unknown_service_is_a_404_record_not_found(fake, http):
    for method, path in (("POST", "/service/nope/purge_all"), ("POST", "/service/nope/purge/k"),
                         ("GET", "/service/nope"), ("GET", "/stats/service/nope")):
        answer = http.request(method, path)
        assert answer.status_code == 404 and answer.json()["msg"] == "Record not found", path


def test_a_token_without_the_scope_or_the_service_is_a_403():
    with FakeFastly(tokens={"purger": Token("purge_select"), "other": Token("global", ["another"])}) as fake:
        with httpx.Client(base_url=fake.url, timeout=10, trust_env=False) as client:
            assert client.post(f"/service/{SERVICE}/purge_all", headers={"Fastly-Key": "purger"}).status_code == 403
            assert client.get(f"/stats/service/{SERVICE}", headers={"Fastly-Key": "purger"}).status_code == 403
            assert client.post(f"/service/{SERVICE}/purge/k", headers={"Fastly-Key": "purger"}).status_code == 200
            assert client.post(f"/service/{SERVICE}/purge/k", headers={"Fastly-Key": "other"}).status_code == 403


def test_purge_all_is_counted_with_the_rate_limit_headers_and_a_429_once_spent():
    with FakeFastly(budget=2, window=60) as fake:
        with httpx.Client(base_url=fake.url, headers={"Fastly-Key": KEY}, timeout=10, trust_env=False) as client:
            first = client.post(f"/service/{SERVICE}/purge_all")
            reset = int(first.headers["Fastly-RateLimit-Reset"])
            assert first.headers["Fastly-RateLimit-Remaining"] == "1" and time.time() < reset <= time.time() + 61
            assert client.post(f"/service/{SERVICE}/purge_all").headers["Fastly-RateLimit-Remaining"] == "0"
            spent = client.post(f"/service/{SERVICE}/purge_all")
            assert spent.status_code == 429 and spent.headers["Fastly-RateLimit-Reset"] == str(reset)
            # URL and key purges and reads are not counted
            for method, path in (("POST", "/purge/www.example.com/"), ("POST", f"/service/{SERVICE}/purge/k"),
                                 ("GET", f"/service/{SERVICE}")):
                answer = client.request(method, path)
                assert answer.status_code == 200 and "Fastly-RateLimit-Remaining" not in answer.headers


def test_the_window_resets_at_its_reset_time():
    now = [1_700_000_000.0]
    with FakeFastly(budget=1, window=10, clock=lambda: now[0]) as fake:
        with httpx.Client(base_url=fake.url, headers={"Fastly-Key": KEY}, timeout=10, trust_env=False) as client:
            assert client.post(f"/service/{SERVICE}/purge_all").status_code == 200
            assert client.post(f"/service/{SERVICE}/purge_all").status_code == 429
            now[0] = 1_700_000_010.0
            again = client.post(f"/service/{SERVICE}/purge_all")
            assert again.status_code == 200 and again.headers["Fastly-RateLimit-Reset"] == "1700000020"


def test_stats_answer_the_documented_envelope_by_minute(fake, http):
    start = int(time.time()) // 60 * 60 - 600
    for n in range(5):
        fake.add_minute(SERVICE, start + 60 * n, {"requests": 10 + n, "hits": n})
    answer = http.get(f"/stats/service/{SERVICE}", params={"from": start + 60, "to": start + 240, "by": "minute"})
    doc = answer.json()
    assert answer.status_code == 200 and doc["status"] == "success" and doc["msg"] is None
    assert doc["meta"]["by"] == "minute" and doc["meta"]["from"].endswith(" UTC")
    assert [(r["start_time"], r["requests"], r["service_id"]) for r in doc["data"]] == [
        (start + 60, 11, SERVICE), (start + 120, 12, SERVICE), (start + 180, 13, SERVICE)]
    hourly = http.get(f"/stats/service/{SERVICE}", params={"from": start - 3600, "to": start + 600, "by": "hour"})
    assert sum(r["requests"] for r in hourly.json()["data"]) == 10 + 11 + 12 + 13 + 14


@pytest.mark.parametrize("params", [{"from": "yesterday-ish", "by": "minute"}, {"from": "10", "to": "5", "by": "day"},
                                    {"by": "week"}, {"from": str(int(time.time()) - 36 * 86_400), "by": "minute"}])
def test_bad_stats_queries_are_a_400_with_status_error(fake, http, params):
    answer = http.get(f"/stats/service/{SERVICE}", params=params)
    assert answer.status_code == 400 and answer.json()["status"] == "error" and answer.json()["msg"]
