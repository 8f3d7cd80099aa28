"""cache warm through real nginx with proxy_cache: its cache fills, and the second pass is all hits."""

from __future__ import annotations

import pytest

from tests.fakes.nginx import caching_proxy
from tests.fakes.sandbox_fleet import running_fleet

HOST = "www.sandbox.test"


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    with running_fleet(tmp_path_factory.mktemp("nginx-origin"), nodes=1, regions=["us-east"], pages=24) as box:
        yield box.origin


def test_warming_through_nginx_fills_its_proxy_cache(cli, isolated, origin):
    with caching_proxy(isolated / "nginx", origin) as proxy:
        assert cli("nodes", "add", "nginx-1", "--endpoint", proxy, "--region", "eu-west").exit_code == 0
        urls = [f"https://{HOST}/docs/page-{i:04d}.html" for i in (1, 5, 9, 13)]
        args = ["cache", "warm", *[a for u in urls for a in ("--url", u)], "--nodes", "nginx-1",
                "--accept-encoding", "gzip,identity", "-o", "json"]

        first = cli(*args)
        assert first.exit_code == 0, first.stderr
        assert first.json()["cache_before"] == {"nginx-1": {"miss": 8}}  # nginx's X-Cache: MISS
        cached = [p for p in (isolated / "nginx" / "cache").rglob("*") if p.is_file()]
        assert len(cached) == 8  # one cache file per URL and encoding: the key varies on Accept-Encoding

        second = cli(*args)
        assert second.json()["cache_before"] == {"nginx-1": {"hit": 8}}
        entries = cli("cache", "entries", "--node", "nginx-1", "-o", "json").json()
        assert len(entries) == 8 and all(e["expires_at"] for e in entries)
