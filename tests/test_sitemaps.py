"""Sitemap walking: indexes, gzip, loops, locations that are not URLs, and the hostile documents it must refuse."""

from __future__ import annotations

import gzip
import re
import threading
from pathlib import Path
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgectl.cache.sitemaps import SitemapError, absolute_url, walk
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


def test_a_child_sitemap_with_credentials_in_its_url_is_skipped_and_never_fetched(site):
    host = site.base.split("//", 1)[1]
    site.documents.update({"/index.xml": index(f"http://user:s3cret@{host}/secret.xml", f"{site.base}/p.xml").encode(),
                           "/secret.xml": urlset("https://e.test/never").encode(),
                           "/p.xml": urlset("https://e.test/p").encode()})
    warnings = []
    assert [e.url for e in read(f"{site.base}/index.xml", warn=warnings.append)] == ["https://e.test/p"]
    assert site.asked == ["/index.xml", "/p.xml"]
    assert len(warnings) == 1 and "credentials" in warnings[0] and "s3cret" not in warnings[0]


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


def test_a_warm_never_asks_for_what_a_sitemap_lists_as_relative(cli, site):
    site.documents.update({"/maps/sitemap.xml": urlset(f"{site.base}/ok", "rel", "/abs-path", "../up").encode(),
                           "/ok": b"ok", "/maps/rel": b"x", "/abs-path": b"x", "/up": b"x"})
    run = cli("cache", "warm", "--sitemap", f"{site.base}/maps/sitemap.xml", "--retries", "0", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["requests"] == 1 and run.json()["status_classes"] == {"2xx": 1}
    assert site.asked == ["/maps/sitemap.xml", "/ok"]
    assert run.stderr.count('"warning"') == 1 and "3 location(s)" in run.stderr

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


# -- text sitemaps and URL lists ------------------------------------------------------------------------

def opened(data: bytes):
    """An opener for one document held in memory, whatever location it is asked for."""
    import io
    from contextlib import nullcontext

    return lambda _location: nullcontext(io.BytesIO(data))


def test_a_text_sitemap_is_told_from_its_content_not_its_name(tmp_path):
    named_xml = tmp_path / "sitemap.xml"
    named_xml.write_bytes(b"\xef\xbb\xbf\r\n  https://e.test/a  \r\n\r\n\thttps://e.test/b?x=1\r\nhttps://e.test/c")
    assert [e.url for e in read(str(named_xml))] == ["https://e.test/a", "https://e.test/b?x=1", "https://e.test/c"]
    compressed = tmp_path / "urls.txt"  # gzip, though the name says plain text
    compressed.write_bytes(gzip.compress(b"https://e.test/z\nhttps://e.test/y\n"))
    entries = read(str(compressed))
    assert [e.url for e in entries] == ["https://e.test/z", "https://e.test/y"]
    assert entries[0].lastmod is None and entries[0].sitemap == str(compressed)


def test_a_remote_text_sitemap_skips_relative_lines_with_one_warning_and_never_fetches_them(site):
    site.documents.update({"/s/list": b"https://e.test/1\n/s/page\npage\nftp://e.test/x\n",
                           "/s/page": b"here", "/page": b"here"})
    warnings = []
    assert [e.url for e in read(f"{site.base}/s/list", warn=warnings.append)] == ["https://e.test/1"]
    assert site.asked == ["/s/list"]
    assert len(warnings) == 1 and "3 location(s)" in warnings[0] and "'/s/page'" in warnings[0]


@pytest.mark.parametrize("document, message", [
    (bytes(range(256)) * 40, "no URLs in it; line 1 is not a URL: '\\x00\\x01"),
    (b"\n\n   \nwww.e.test/no-scheme\nhttps://e.test/" + b"x" * (70 * 1024) + b"\n", "line 4 is not a URL: 'www.e.test"),
    (b"<!DOCTYPE html>\n<html><body><a href='https://e.test/'>x</a></body></html>", "is an HTML page, not a sitemap"),
    (b"<html><body>not a sitemap</body></html>", "the document is <html>"),
])
def test_a_document_with_no_urls_in_it_is_an_error_naming_its_first_bad_line(document, message):
    with pytest.raises(SitemapError, match=re.escape(message)) as refused:
        list(walk("sitemap.bin", opened(document)))
    assert refused.value.message.startswith("sitemap sitemap.bin")
    assert len(refused.value.message) < 400  # the line is quoted in part, never all of it


@pytest.mark.parametrize("document", [b"", b" \r\n\n\t\n", b"# made by hand\n\n# nothing yet\n",
                                      gzip.compress(b""), URLSET.format("").encode()])
def test_an_empty_document_is_an_empty_sitemap(document):
    warnings = []
    assert list(walk("empty", opened(document), warn=warnings.append)) == []
    assert warnings == []


def test_a_huge_text_sitemap_and_a_huge_line_stream_in_flat_memory(tmp_path):
    import tracemalloc

    listing = tmp_path / "big.txt"
    with gzip.open(listing, "wt", compresslevel=1) as handle:
        for i in range(60_000):
            handle.write(f"https://e.test/p/{i:07d}.html\r\n")
    one_line = tmp_path / "one-line"  # 32 MiB with no line break in it, gzip-compressed to a few KiB
    one_line.write_bytes(gzip.compress(b"https://e.test/" + b"x" * (32 * 1024 * 1024)))
    tracemalloc.start()
    count = sum(1 for _ in walk(str(listing), lambda loc: open(loc, "rb")))
    with pytest.raises(SitemapError, match="line 1 is not a URL"):
        sum(1 for _ in walk(str(one_line), lambda loc: open(loc, "rb")))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 60_000
    assert peak < 2 * 1024 * 1024, f"peak {peak:,} bytes while parsing"


def test_a_url_list_with_no_url_in_it_is_an_error_and_credentials_are_never_shown():
    import io

    from edgectl.cache.sources import from_lines
    from edgectl.errors import UsageError

    warnings = []
    listing = "top pages:\nhttps://user:secret@e.test/a\nftp://user:secret@e.test/b\nhttps://e.test/c\n"
    assert [s.url for s in from_lines(io.StringIO(listing), "top.txt", warnings.append)] == ["https://e.test/c"]
    assert [w.split(":")[:2] for w in warnings] == [["top.txt", "1"], ["top.txt", "2"], ["top.txt", "3"]]
    assert "secret" not in "".join(warnings)
    assert [s.url for s in from_lines(io.StringIO("\ufeffhttps://e.test/saved-with-a-bom\n"), "b", None)] == [
        "https://e.test/saved-with-a-bom"]
    warnings.clear()
    with pytest.raises(UsageError, match=r"^--urls-file x: no URLs in it; line 1 is not a URL: 'ftp://\*\*\*@e") as e:
        list(from_lines(io.StringIO("ftp://user:secret@e.test/b\nmore\n"), "x", warnings.append, label="--urls-file x"))
    assert "secret" not in e.value.message
    assert warnings == []  # the one error says it all


# -- RSS and Atom feeds ----------------------------------------------------------------------------------

ATOM = ('<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        '<title>e</title><link href="https://e.test/"/><link rel="self" href="https://e.test/feed"/>'
        '<updated>2026-11-20T10:00:00Z</updated>{}</feed>')
RSS = ('<?xml version="1.0"?>\n<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" '
       'xmlns:media="http://search.yahoo.com/mrss/"><channel><title>e</title><link>https://e.test/</link>'
       '<atom:link rel="self" href="https://e.test/rss"/><description>d</description>{}</channel></rss>')


def test_an_atom_feed_gives_each_entrys_alternate_links_and_never_the_feeds_own(tmp_path):
    feed = tmp_path / "sitemap.txt"  # the name says text; the content says Atom
    feed.write_text(ATOM.format(
        '<entry><title>a</title><link href="https://e.test/a"/><updated>2026-11-02T08:00:00+01:00</updated></entry>'
        '<entry><link rel="edit" href="https://e.test/edit/b"/><link rel="alternate" href=" https://e.test/b "/>'
        '<link rel="enclosure" href="https://e.test/b.mp3"/><link rel="alternate" hreflang="fr" '
        'href="https://e.test/fr/b"/><updated>2026-11-03T00:00:00Z</updated></entry>'
        '<entry><link rel="http://www.iana.org/assignments/relation/alternate" href="https://e.test/c"/></entry>'
        '<entry><link rel="Alternate" href="https://e.test/cased"/></entry>'
        '<entry><link rel="self" href="https://e.test/entry/d"/><link rel="related" href="https://e.test/d"/></entry>'
        '<entry><link href="/relative/e"/><link>https://e.test/text-is-not-href</link></entry>'))
    warnings = []
    entries = read(str(feed), warn=warnings.append)
    assert [e.url for e in entries] == ["https://e.test/a", "https://e.test/b", "https://e.test/fr/b",
                                        "https://e.test/c", "https://e.test/cased"]
    assert entries[0].lastmod.isoformat() == "2026-11-02T08:00:00+01:00" and entries[3].lastmod is None
    assert len(warnings) == 1 and "1 location(s)" in warnings[0] and "'/relative/e'" in warnings[0]


def test_an_rss_feed_gives_each_items_link_and_never_the_channels(site):
    site.documents["/feed.xml"] = gzip.compress(RSS.format(
        '<item><title>a</title><link>https://e.test/a</link><pubDate>Mon, 02 Nov 2026 08:00:00 +0100</pubDate>'
        '<media:content url="https://e.test/a.jpg"/></item>'
        '<item><atom:link rel="alternate" href="https://e.test/not-rss"/><link> https://e.test/b\n</link>'
        '<pubDate>not a date</pubDate></item>'
        '<item><title>no link</title><guid>https://e.test/guid</guid></item>').encode())
    entries = read(f"{site.base}/feed.xml")
    assert [e.url for e in entries] == ["https://e.test/a", "https://e.test/b"]
    assert entries[0].lastmod.isoformat() == "2026-11-02T08:00:00+01:00" and entries[1].lastmod is None


def test_an_index_lists_sitemaps_of_any_format_and_the_root_decides_what_a_document_is(site):
    site.documents.update({
        "/index": index(*(f"{site.base}/{n}" for n in ("text.xml", "atom.xml", "rss.txt", "pages"))).encode(),
        "/text.xml": b"https://e.test/1\r\n",
        "/atom.xml": ATOM.format('<entry><link href="https://e.test/2"/></entry>').encode(),
        "/rss.txt": RSS.format("<item><link>https://e.test/3</link></item>").encode(),
        # an index's entries in a urlset are neither pages nor followed
        "/pages": URLSET.format(f"<sitemap><loc>{site.base}/never</loc></sitemap><url><loc>https://e.test/4</loc>"
                                "</url>").encode(),
        "/never": urlset("https://e.test/never").encode(),
    })
    assert [e.url for e in read(f"{site.base}/index")] == [f"https://e.test/{n}" for n in range(1, 5)]
    assert "/never" not in site.asked

# -- properties ---------------------------------------------------------------------------------------

HOSTS = st.builds("{}{}.{}{}".format, st.sampled_from("abcxyz"), st.text("abcxyz019-", max_size=8),
                  st.sampled_from(["test", "example", "co.uk"]), st.sampled_from(["", ":8080", ":1"]))
PATHS = st.lists(st.text("abcxyz019-._~!$&'()*+,;=:", max_size=6), max_size=4).map(lambda p: "/" + "/".join(p))
URLS = st.builds("{}://{}{}{}".format, st.sampled_from(["http", "https", "HTTPS", "Http"]), HOSTS, PATHS,
                 st.sampled_from(["", "?a=1", "?q=x&y=%20", "#top"]))
# what no reading could take for an absolute http(s) URL: no '://' at all, or another scheme's
JUNK = st.one_of(
    st.text(st.characters(blacklist_characters="\r\n\x85\u2028\u2029", blacklist_categories=("Cs",)), min_size=1,
            max_size=40).filter(lambda t: "://" not in t),
    st.builds("{}://{}{}".format, st.sampled_from(["ftp", "file", "gopher", "ws"]), HOSTS, PATHS),
    st.sampled_from(["javascript:alert(1)", "mailto:someone@e.test", "/relative/page.html", "page.html", "//e.test/x"]),
).filter(lambda t: t.strip() and t.strip()[0] not in "#<")
PADDING = st.text(" \t", max_size=3)
LINES = st.lists(st.one_of(st.tuples(st.just("url"), URLS), st.tuples(st.just("junk"), JUNK),
                           st.tuples(st.just("blank"), PADDING), st.tuples(st.just("comment"), st.just("# a note"))),
                 max_size=30)


@settings(max_examples=300, deadline=None)
@given(lines=LINES, pads=st.lists(st.tuples(PADDING, PADDING), min_size=30, max_size=30),
       ending=st.sampled_from(["\n", "\r\n"]), last_ending=st.booleans(), bom=st.booleans(), gz=st.booleans())
def test_a_text_sitemap_yields_its_url_lines_and_counts_the_rest(lines, pads, ending, last_ending, bom, gz):
    text = ending.join(f"{before}{value}{after}" for (_, value), (before, after) in zip(lines, pads))
    data = (b"\xef\xbb\xbf" if bom else b"") + (text + (ending if last_ending else "")).encode()
    urls = [value for kind, value in lines if kind == "url"]
    junk = [(number, value.strip()) for number, (kind, value) in enumerate(lines, 1) if kind == "junk"]
    warnings = []
    entries = walk("list.txt", opened(gzip.compress(data) if gz else data), warn=warnings.append)
    if junk and not urls:
        with pytest.raises(SitemapError, match=rf"no URLs in it; line {junk[0][0]} is not a URL"):
            list(entries)
        return
    assert [e.url for e in entries] == urls
    assert len(warnings) == bool(junk)
    if junk:
        assert warnings[0].startswith(f"sitemap list.txt: {len(junk):,} location(s)")


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=3000), st.binary(max_size=3000).map(lambda b: b"<" + b),
                      st.binary(max_size=300).map(lambda b: gzip.compress(b"<urlset><url><loc>" + b)),
                      st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=60).map(
                          lambda t: RSS.format("<item><link>https://e.test/</link><pubDate>"
                                               f"{escape(t)}</pubDate></item>").encode())),
       as_list=st.booleans())
def test_any_bytes_are_read_or_refused_as_bad_input_never_a_crash(data, as_list):
    import io

    from edgectl.cache.sources import from_lines
    from edgectl.errors import UsageError

    try:
        if as_list:
            handle = io.TextIOWrapper(io.BytesIO(data), "utf-8", "replace")
            found = [s.url for s in from_lines(handle, "x", lambda text: None)]
        else:
            entries = list(walk("x", opened(data)))
            # a date, however odd, is read with its zone (--lastmod-since compares it) or ignored
            assert all(e.lastmod is None or e.lastmod.tzinfo for e in entries)
            found = [e.url for e in entries]
    except UsageError as refused:
        assert "\n" not in refused.message and len(refused.message) < 600
    else:
        assert all(absolute_url(url) for url in found)


MOMENTS = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1),
                       timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30)),
                                                  timezone(-timedelta(hours=8))])).map(lambda m: m.replace(microsecond=0))
LOCATIONS = st.one_of(URLS, st.sampled_from(["/a/page", "page.html", "ftp://e.test/x", "javascript:void(0)"]))
RELS = st.sampled_from([None, "alternate", " alternate ", "self", "edit", "related", "enclosure", "via"])


@settings(max_examples=200, deadline=None)
@given(entries=st.lists(st.tuples(st.lists(st.tuples(RELS, LOCATIONS), max_size=4), st.none() | MOMENTS),
                        max_size=12))
def test_an_atom_feed_yields_exactly_the_alternate_links_of_its_entries(entries):
    body = "".join("<entry><title>t</title>" + "".join(
        "<link" + (f" rel={quoteattr(rel)}" if rel is not None else "") + f" href={quoteattr(href)}/>"
        for rel, href in links) + (f"<updated>{escape(moment.isoformat())}</updated>" if moment else "") + "</entry>"
        for links, moment in entries)
    pages = [(href, moment) for links, moment in entries for rel, href in links if rel in (None, "alternate", " alternate ")]
    warnings = []
    found = [(e.url, e.lastmod) for e in walk("feed", opened(ATOM.format(body).encode()), warn=warnings.append)]
    assert found == [(href, moment) for href, moment in pages if absolute_url(href)]
    assert len(warnings) == any(not absolute_url(href) for href, _ in pages)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(st.tuples(st.none() | LOCATIONS, st.none() | MOMENTS, st.booleans()), max_size=12))
def test_an_rss_feed_yields_exactly_the_links_of_its_items_with_their_dates(items):
    from email.utils import format_datetime

    body = "".join("<item><title>t</title>"
                   + ('<atom:link rel="alternate" href="https://e.test/atom"/>' if noise else "")
                   + (f"<link>{escape(link)}</link>" if link is not None else "")
                   + (f"<pubDate>{format_datetime(moment)}</pubDate>" if moment else "") + "</item>"
                   for link, moment, noise in items)
    found = [(e.url, e.lastmod) for e in walk("rss", opened(RSS.format(body).encode()))]
    assert found == [(link, moment) for link, moment, _ in items if link is not None and absolute_url(link)]
