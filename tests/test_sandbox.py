"""The sandbox fleet: the origin's site, the edge nodes' caching, purging and faults, and its lifecycle."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import httpx
import pytest

from edgectl.sandbox import fleet
from edgectl.state import open_state

HOST = {"Host": "www.sandbox.test"}


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    where = tmp_path_factory.mktemp("sandbox")
    sandbox = fleet.start(where / "box", where / "state.db", nodes=2, regions=["us-east", "eu-west"], pages=40)
    yield sandbox
    fleet.stop(sandbox)


@pytest.fixture
def client():
    with httpx.Client(timeout=10, trust_env=False) as c:
        yield c


def _node(box, i=0):
    return box.nodes[i].url


def _auth(box):
    return {"Authorization": f"Bearer {box.token()}"}


def test_origin_site(box, client):
    page = client.get(f"{box.origin}/docs/page-0001.html", headers=HOST)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "public, max-age=60, s-maxage=300"
    assert page.headers["surrogate-key"] == "page section-docs"
    assert page.headers["cache-tag"] == "page,section-docs"
    etag = page.headers["etag"]
    assert client.get(f"{box.origin}/docs/page-0001.html", headers={"If-None-Match": etag}).status_code == 304
    asset = next(p for p in ("/static/css/site-0000.css", "/static/js/app-0001.js") if client.get(box.origin + p).status_code == 200)
    assert "s-maxage=604800" in client.get(box.origin + asset).headers["cache-control"]
    robots = client.get(f"{box.origin}/robots.txt", headers=HOST).text
    assert "Sitemap: http://www.sandbox.test/sitemap.xml" in robots
    index = ET.fromstring(client.get(f"{box.origin}/sitemap.xml", headers=HOST).content)
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locs = [e.findtext("s:loc", namespaces=ns) for e in index.findall("s:sitemap", ns)]
    assert len(locs) == 3 and any(l.endswith(".xml.gz") for l in locs)
    assert all(e.findtext("s:lastmod", namespaces=ns) for e in index.findall("s:sitemap", ns))
    gz = client.get(f"{box.origin}/sitemap-news.xml.gz", headers=HOST)
    urls = ET.fromstring(gzip.decompress(gz.content)).findall("s:url", ns)
    assert urls and all(u.findtext("s:loc", namespaces=ns).startswith("http://www.sandbox.test/news/") for u in urls)


def test_miss_then_hit(box, client):
    url = f"{_node(box)}/blog/page-0002.html"
    first = client.get(url, headers=HOST)
    second = client.get(url, headers=HOST)
    assert first.headers["x-cache"] == "MISS" and "fwd=uri-miss" in first.headers["cache-status"]
    assert "stored" in first.headers["cache-status"]
    assert second.headers["x-cache"] == "HIT"
    assert second.headers["cache-status"].startswith(f"{box.nodes[0].name}; hit; ttl=")
    assert int(second.headers["age"]) >= 0 and second.content == first.content


def test_expiry_follows_the_origin(box, client):
    url = f"{_node(box)}/live/ticker.html"  # s-maxage=2
    client.get(url)
    assert client.get(url).headers["x-cache"] == "HIT"
    time.sleep(2.2)
    stale = client.get(url)
    assert stale.headers["x-cache"] == "REVALIDATED"
    assert "fwd=stale; fwd-status=304" in stale.headers["cache-status"]
    assert client.get(url).headers["x-cache"] == "HIT"


def test_private_responses_are_never_stored(box, client):
    url = f"{_node(box)}/account/profile.html"
    assert [client.get(url).headers["x-cache"] for _ in range(2)] == ["BYPASS", "BYPASS"]


def _entries(box, client, i=0):
    return client.get(f"{_node(box, i)}/.edge/stats").json()["entries"]


def _warm(box, client, paths, i=0):
    for path in paths:
        assert client.get(_node(box, i) + path, headers=HOST).status_code == 200


def test_purges(box, client):
    node = _node(box, 1)
    docs = ["/docs/page-0001.html", "/docs/page-0005.html"]
    news = ["/news/page-0000.html", "/news/page-0004.html"]
    _warm(box, client, docs + news + ["/shop/page-0003.html"], 1)
    before = _entries(box, client, 1)
    assert client.request("PURGE", node + docs[0]).status_code == 401
    assert client.request("PURGE", node + docs[0], headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post(f"{node}/.edge/purge", json={"all": True}).status_code == 401
    assert _entries(box, client, 1) == before
    purged = client.request("PURGE", node + docs[0], headers=_auth(box)).json()
    assert purged == {"purged": 1}
    assert client.get(node + docs[0], headers=HOST).headers["x-cache"] == "MISS"
    by_tag = client.post(f"{node}/.edge/purge", json={"tags": ["section-news"]}, headers=_auth(box)).json()
    assert by_tag["purged"] == 2
    assert client.get(node + news[1], headers=HOST).headers["x-cache"] == "MISS"
    by_prefix = client.post(f"{node}/.edge/purge", json={"prefixes": ["/docs/"]}, headers=_auth(box)).json()
    assert by_prefix["purged"] == 2
    by_url = client.post(f"{node}/.edge/purge", json={"urls": ["http://www.sandbox.test/shop/page-0003.html"]},
                         headers=_auth(box)).json()
    assert by_url["purged"] == 1
    _warm(box, client, docs, 1)
    everything = client.post(f"{node}/.edge/purge", json={"all": True}, headers=_auth(box)).json()
    assert everything["purged"] == _entries(box, client, 1) + everything["purged"] and _entries(box, client, 1) == 0
    for bad in ({}, {"urls": "x"}, {"tags": [1]}, [1]):
        assert client.post(f"{node}/.edge/purge", json=bad, headers=_auth(box)).status_code == 400


def _fault(box, client, **changes):
    response = client.post(f"{_node(box)}/.edge/fault", json=changes, headers=_auth(box))
    assert response.status_code == 200, response.text
    return response.json()


def test_fault_knobs(box, client):
    node = _node(box)
    assert client.post(f"{node}/.edge/fault", json={"down": True}).status_code == 401
    try:
        _fault(box, client, latency_ms=300)
        started = time.perf_counter()
        assert client.get(f"{node}/health").status_code == 200
        assert time.perf_counter() - started >= 0.3
        _fault(box, client, latency_ms=0, error_rate=1.0)
        assert {client.get(f"{node}/docs/page-0001.html").status_code for _ in range(5)} == {500}
        assert client.get(f"{node}/health").status_code == 500
        _fault(box, client, error_rate=0.0, down=True)
        assert client.get(f"{node}/health").status_code == 503
        assert client.get(f"{node}/health").json()["status"] == "down"
        assert client.get(f"{node}/docs/page-0001.html").status_code == 503
        assert client.post(f"{node}/.edge/fault", json={"error_rate": 2}, headers=_auth(box)).status_code == 400
        _fault(box, client, down=False)
        health = client.get(f"{node}/health").json()
        assert health["status"] == "ok"
        assert set(health) >= {"cpu_percent", "memory_percent", "disk_percent", "network_mbps", "cache_entries"}
    finally:
        _fault(box, client, latency_ms=0, error_rate=0, down=False)


def test_lifecycle_through_the_cli(cli, isolated, monkeypatch):
    where = isolated / "sb"
    monkeypatch.setenv("EDGECTL_SANDBOX_DIR", str(where))
    assert cli("sandbox", "status").exit_code == 1
    up = cli("sandbox", "up", "--detach", "--nodes", "2", "--pages", "20", "-o", "json")
    assert up.exit_code == 0, up.stderr
    info = up.json()
    try:
        assert info["running"] and len(info["servers"]) == 3 and all(s["up"] for s in info["servers"])
        nodes = cli("nodes", "list", "--label", "sandbox=true", "-o", "json").json()
        assert [(n["name"], n["country"]) for n in nodes] == [("sandbox-eu-west-1", "IE"), ("sandbox-us-east-1", "US")]
        assert cli("sandbox", "up", "--detach").exit_code == 2  # already running
        config = info["config"]
        assert cli("--config", config, "config", "validate").exit_code == 0
        assert cli("--config", config, "nodes", "check", "--all").exit_code == 0
        assert cli("sandbox", "fault", "sandbox-us-east-1", "--down").exit_code == 0
        assert cli("--config", config, "nodes", "check", "--all").exit_code == 0  # one failure: still active
        assert cli("--config", config, "nodes", "check", "--all").exit_code == 1  # fail_after = 2 in its config
        assert cli("sandbox", "fault", "sandbox-us-east-1", "--clear", "-o", "json").json()["down"] is False
        assert cli("sandbox", "fault", "ghost", "--down").exit_code == 2
        assert cli("sandbox", "fault", "sandbox-us-east-1").exit_code == 2
        assert cli("sandbox", "fault", "sandbox-us-east-1", "--error-rate", "3").exit_code == 2
        status = cli("sandbox", "status", "-o", "json").json()
        assert status["pid"] == info["pid"] and status["state"] == str(isolated / "state.db")
    finally:
        down = cli("sandbox", "down", "-o", "json")
    assert down.exit_code == 0 and sorted(down.json()["removed_nodes"]) == ["sandbox-eu-west-1", "sandbox-us-east-1"]
    assert not fleet._alive(info["pid"])
    assert not any(fleet.port_open(s["port"]) for s in info["servers"])
    assert cli("nodes", "list", "-o", "json").json() == []
    assert cli("sandbox", "status").exit_code == 1
    assert cli("sandbox", "down").exit_code == 0  # idempotent
    assert not (where / "token").exists() and not (where / "edgectl.toml").exists()


@pytest.mark.parametrize("args", [["--nodes", "0"], ["--regions", "mars-north"], ["--pages", "0"], ["--regions", ","]])
def test_up_rejects_bad_input(cli, isolated, monkeypatch, args):
    monkeypatch.setenv("EDGECTL_SANDBOX_DIR", str(isolated / "sb"))
    run = cli("sandbox", "up", "--detach", *args)
    assert run.exit_code == 2 and run.stderr.startswith("error: ")
    assert not (isolated / "sb" / "sandbox.json").exists()


def _env(isolated):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECTL_")}
    env["EDGECTL_STATE"] = str(isolated / "fg.db")
    env["EDGECTL_SANDBOX_DIR"] = str(isolated / "fg")
    return env


def test_foreground_up_cleans_up_on_ctrl_c(isolated):
    env = _env(isolated)
    proc = subprocess.Popen([sys.executable, "-m", "edgectl", "sandbox", "up", "--nodes", "1", "--pages", "10", "-o", "json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    status = isolated / "fg" / "sandbox.json"
    # Ctrl-C once it says it is running: earlier, a start-up cut short is cleaned up and exits 130
    import queue
    import threading

    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True)
    reader.start()
    said = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("press Ctrl-C" in line for line in said):
            try:
                said.append(lines.get(timeout=0.5))
            except queue.Empty:
                if proc.poll() is not None:
                    break
        assert any("press Ctrl-C" in line for line in said), said
        pid = json.loads(status.read_text())["pid"]
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:  # a failed run must not leave its fleet behind
        if proc.poll() is None:
            proc.kill()
        box = fleet.Sandbox.load(isolated / "fg")
        if box is not None and box.running():
            fleet.stop(box)
    reader.join(timeout=10)
    while not lines.empty():
        said.append(lines.get())
    err = "".join(said)
    assert proc.returncode == 0, err
    assert "stopping the sandbox" in err
    assert not fleet._alive(pid) and not status.exists()
    state = open_state(isolated / "fg.db")
    assert list(state.db.query("SELECT name FROM nodes WHERE removed_at IS NULL")) == []
    state.close()


def test_demo_runs_end_to_end_and_leaves_nothing_running(isolated):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECTL_")}
    result = subprocess.run([sys.executable, "-m", "edgectl", "--no-color", "demo"], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Tear the fleet down" in result.stdout and "demo finished" in result.stderr
    demo_dir = isolated / "home" / ".local" / "share" / "edgectl" / "demo"
    # the analytics steps: a chart, the hit ratio after the two warms, an alert firing, the report
    assert "p95 latency by region" in result.stdout and "hit ratio by node" in result.stdout
    assert result.stdout.count("firing") >= 3
    report = (demo_dir / "report.html").read_text()
    assert report.startswith("<!DOCTYPE html>") and "<svg" in report and "<script" not in report
    assert "DISTRIBUTION" in result.stdout and "edgectl" in result.stdout.split("DISTRIBUTION")[1]  # plugins list
    assert not (demo_dir / "sandbox" / "sandbox.json").exists()
    assert _processes_mentioning(str(demo_dir / "sandbox")) == []


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if text.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found
