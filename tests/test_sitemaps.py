"""Sitemap walking: indexes, gzip, loops, and the hostile documents it must refuse."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from edgectl.cache.sitemaps import SitemapError, walk

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
    return list(walk(source, lambda loc: open(loc, "rb"), **kwargs))


def test_an_index_is_followed_into_plain_and_gzip_sitemaps(tmp_path):
    paths = files(tmp_path, a_xml=urlset("https://e.test/1", "https://e.test/2"), b_gz=urlset("https://e.test/3"))
    top = files(tmp_path, index_xml=index(paths["a_xml"], paths["b_gz"]))["index_xml"]
    entries = read(top)
    assert [e.url for e in entries] == ["https://e.test/1", "https://e.test/2", "https://e.test/3"]
    assert entries[2].sitemap == paths["b_gz"] and entries[0].lastmod.year == 2026


def test_an_index_that_includes_itself_is_walked_once_with_a_warning(tmp_path):
    path = tmp_path / "loop.xml"
    page = files(tmp_path, p_xml=urlset("https://e.test/p"))["p_xml"]
    path.write_text(index(str(path), page))
    warnings = []
    assert [e.url for e in read(str(path), warn=warnings.append)] == ["https://e.test/p"]
    assert len(warnings) == 1 and "loop" in warnings[0]


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
