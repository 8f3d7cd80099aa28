"""Sitemap walking: indexes, gzip, loops, locations that are not URLs, and the hostile documents it must refuse."""

from __future__ import annotations

import gzip
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from edgectl.cache.sitemaps import SitemapError, walk
from edgectl.cache.sources import _open_sitemap

URLSET = ('<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
          '{}</urlset>')
INDEX = ('<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
         '{}</sitemapindex>')


def urlset(*locs: str, lastmod: str = "2026-11-01") -> str:
    return URLSET.format("".join(f"<url><loc>{loc}</loc><lastmod>{lastmod}</lastmod></url>" for loc in locs))


def index(*locs: str) -> str:
    return INDEX.format("".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs))


def files(tmp_path: Path, **documents) -> dict[str, str]:
    """name -> path; a name ending in _gz is written gzip-compressed."""
    paths = {}
    for name, text in documents.items():
        path = tmp_path / name.replace("_gz", ".xml.gz").replace("_xml", ".xml")
        data = text.encode() if isinstance(text, str) else text
        path.write_bytes(gzip.compress(data) if name.endswith("_gz") else data)
        paths[name] = str(path)
    return paths


def read(source: str, **kwargs) -> list:
    """Every entry of a sitemap file or URL, opened as a warm opens it."""
    return list(walk(source, lambda loc: _open_sitemap(loc, 10), **kwargs))


@pytest.fixture
def site():
    """A loopback HTTP server answering GETs from `documents` (path -> bytes), recording each path asked for."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    documents: dict[str, bytes] = {}
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            body = documents.get(self.path)
            self.send_response(404 if body is None else 200)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield SimpleNamespace(base=f"http://127.0.0.1:{server.server_port}", documents=documents, asked=asked)
    finally:
        server.shutdown()
        server.server_close()


def test_an_index_is_followed_into_plain_and_gzip_sitemaps(site):
    site.documents.update({"/a.xml": urlset("https://e.test/1", "https://e.test/2").encode(),
                           "/b.xml.gz": gzip.compress(urlset("https://e.test/3").encode()),
                           "/index.xml": index(f"{site.base}/a.xml", f"{site.base}/b.xml.gz").encode()})
    entries = read(f"{site.base}/index.xml")
    assert [e.url for e in entries] == ["https://e.test/1", "https://e.test/2", "https://e.test/3"]
    assert entries[2].sitemap == f"{site.base}/b.xml.gz" and entries[0].lastmod.year == 2026


def test_an_index_that_includes_itself_is_walked_once_with_a_warning(site):
    site.documents.update({"/loop.xml": index(f"{site.base}/loop.xml", f"{site.base}/p.xml").encode(),
                           "/p.xml": urlset("https://e.test/p").encode()})
    warnings = []
    assert [e.url for e in read(f"{site.base}/loop.xml", warn=warnings.append)] == ["https://e.test/p"]
    assert len(warnings) == 1 and "loop" in warnings[0]
    assert site.asked == ["/loop.xml", "/p.xml"]


def test_locations_that_are_not_absolute_urls_are_skipped_with_one_counted_warning_and_never_fetched(site):
    # every relative location also names a document the server has: resolving one would fetch it
    site.documents.update({
        "/dir/index.xml": index("child.xml", "/dir/other.xml", f"{site.base}/dir/good.xml").encode(),
        "/dir/good.xml": urlset("https://e.test/ok", "page.html", "/dir/page.html", "//e.test/no-scheme",
                                "ftp://e.test/f", "javascript:alert(1)", "file:///etc/passwd").encode(),
        "/dir/child.xml": urlset("https://e.test/from-child").encode(),
        "/dir/other.xml": urlset("https://e.test/from-other").encode(),
        "/dir/page.html": b"a page",
    })
    warnings = []
    entries = read(f"{site.base}/dir/index.xml", warn=warnings.append)
    assert [e.url for e in entries] == ["https://e.test/ok"]
    assert site.asked == ["/dir/index.xml", "/dir/good.xml"]
    assert len(warnings) == 1, warnings
    assert "8 location(s) that are not absolute http(s) URLs skipped, the first 'child.xml'" in warnings[0]


def test_a_local_index_follows_urls_only_never_paths_on_this_machine(tmp_path):
    paths = files(tmp_path, a_xml=urlset("https://e.test/1"))
    top = files(tmp_path, index_xml=index(paths["a_xml"], "a.xml"))["index_xml"]
    warnings = []
    assert read(top, warn=warnings.append) == []
    assert len(warnings) == 1 and "2 location(s)" in warnings[0] and repr(paths["a_xml"]) in warnings[0]


@pytest.mark.parametrize("document, refusal", [
    ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
     '<urlset><url><loc>&lol2;</loc></url></urlset>', "refused"),
    ('<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
     '<urlset><url><loc>&xxe;</loc></url></urlset>', "refused"),
    ('<urlset><url><loc>https://e.test/1</loc></url>', "not well-formed"),
    ('<html><body>not a sitemap</body></html>', "not a <urlset>"),
])
def test_hostile_and_malformed_documents_are_refused(tmp_path, document, refusal):
    path = files(tmp_path, bad_xml=document)["bad_xml"]
    with pytest.raises(SitemapError, match=refusal):
        read(path)


def test_a_gzip_bomb_stops_at_the_decompressed_bound(tmp_path):
    bomb = tmp_path / "bomb.xml.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as handle:
        handle.write(b"<urlset>" + b" " * (64 * 1024 * 1024))  # 64 MiB of spaces, 64 KiB compressed
    assert bomb.stat().st_size < 200_000
    with pytest.raises(SitemapError, match="larger than 1,048,576 bytes"):
        read(str(bomb), max_bytes=1024 * 1024)


def test_a_corrupt_gzip_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "broken.xml.gz"
    path.write_bytes(gzip.compress(urlset("https://e.test/1").encode())[:40] + b"garbage" * 10)
    with pytest.raises(SitemapError):
        read(str(path))


def test_a_large_sitemap_streams_in_flat_memory(tmp_path):
    import tracemalloc

    path = tmp_path / "big.xml.gz"
    with gzip.open(path, "wt", compresslevel=1) as handle:
        handle.write(URLSET.split("{}")[0])
        for i in range(60_000):
            handle.write(f"<url><loc>https://e.test/p/{i:07d}.html</loc><lastmod>2026-11-01</lastmod></url>")
        handle.write("</urlset>")
    tracemalloc.start()
    count = sum(1 for _ in walk(str(path), lambda loc: open(loc, "rb")))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 60_000
    assert peak < 2 * 1024 * 1024, f"peak {peak:,} bytes while parsing"
