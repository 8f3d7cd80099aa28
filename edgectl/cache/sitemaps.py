"""Sitemaps in every format search engines take, and sitemap indexes, streamed: memory stays flat.

The format is told from the content, never the name. A document whose first byte (after a byte
order mark and whitespace) is not '<' is a text sitemap, one URL a line, which is also how a URL
list reads (`url_lines`). Otherwise it is XML, and its root element says which: a sitemap
(<urlset>), an index (<sitemapindex>), an RSS 2.0 feed (<rss>) or an Atom feed (<feed>). XML goes
through expat with every entity door shut: a document type declaration (where entity bombs and
external entities would be declared) is refused outright; a sitemap never needs one. Gzip is
recognised by its magic bytes, not the name, and decompressed incrementally with a bound on the
decompressed size, so a gzip bomb stops at `max_bytes`. Indexes are followed depth-first up to
MAX_DEPTH; a sitemap seen before in the same walk (an index that includes itself, or two that
include each other) is skipped once with a warning rather than followed forever.
"""

from __future__ import annotations

import io
import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import BinaryIO, Callable, ContextManager, Iterator, TextIO
from urllib.parse import urlsplit

from edgectl.errors import UsageError

DEFAULT_MAX_BYTES = 200 * 1024 * 1024  # decompressed, per sitemap; the protocol's own limit is 50 MB
MAX_DEPTH = 5
CHUNK = 64 * 1024
MAX_LINE = 64 * 1024  # characters: past any URL a server takes, and a bound on a "line" of binary
BOM = b"\xef\xbb\xbf"

_NOT_IN_URLS = re.compile(r"[\x00-\x20\x7f]")  # whitespace and control characters: never raw in a URL
_USERINFO = re.compile(r"//[^/?#@]*@")


def absolute_url(url: str) -> bool:
    """Whether it is an absolute http(s) URL with a host; cheap, since it runs for every line of a long list.

    Sitemaps must list absolute URLs, so anything else (a relative path, ftp:, javascript:) is
    skipped, never resolved against the sitemap's own URL.
    """
    lower = url[:8].lower()
    start = 7 if lower.startswith("http://") else 8 if lower.startswith("https://") else 0
    if not start or len(url) <= start or url[start] in "/?#" or _NOT_IN_URLS.search(url):
        return False
    if "[" in url or "]" in url:
        try:
            urlsplit(url).port
        except ValueError:
            return False
    return True


def shown(text: str) -> str:
    """A line or location from outside as a message quotes it: its start, as repr, any credentials masked."""
    return repr(_USERINFO.sub("//***@", text[:1000], count=1)[:100])


def url_lines(lines: TextIO, source: str, *, first_line: int = 1,
              error: type[UsageError] = UsageError) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, whether it is an absolute http(s) URL) for each line that says something.

    The reading of a URL list and of a text sitemap, which are one format. Blank lines and '#'
    comments say nothing. Lines are read at most MAX_LINE characters at a time, so a file without
    line breaks (a binary one) streams in flat memory; a line that long is not a URL. A source in
    which something is said but no line is a URL is the wrong file: once it has been read to the
    end, `error` names it and its first line, rather than a run that warmed nothing succeeding.
    """
    urls = 0
    first_bad: tuple[int, str] | None = None
    number = first_line - 1
    while line := lines.readline(MAX_LINE):
        number += 1
        overlong = len(line) >= MAX_LINE and not line.endswith("\n")
        piece = line
        while len(piece) >= MAX_LINE and not piece.endswith("\n"):  # the rest of an overlong line, dropped
            piece = lines.readline(MAX_LINE)
        text = (line.lstrip("\ufeff") if number == first_line else line).strip()  # a list saved with a BOM
        if not text or text.startswith("#"):
            continue
        is_url = not overlong and absolute_url(text)
        if is_url:
            urls += 1
        elif first_bad is None:
            first_bad = (number, text)
        yield number, text, is_url
    if not urls and first_bad:
        raise error(f"{source}: no URLs in it; line {first_bad[0]} is not a URL: {shown(first_bad[1])}",
                    hint="a URL list or text sitemap has one absolute http(s) URL a line; is it the right file?")


class SitemapError(UsageError):
    """A sitemap that cannot be read safely: malformed, hostile, too big, or out of reach."""


@dataclass(frozen=True)
class SitemapEntry:
    url: str
    lastmod_text: str | None  # as written; parsed only when asked for
    sitemap: str  # where it was listed

    @property
    def lastmod(self) -> datetime | None:
        return _lastmod(self.lastmod_text)


Opener = Callable[[str], ContextManager[BinaryIO]]  # a sitemap URL -> its raw bytes, as a stream


class _Bounded(io.RawIOBase):
    """The decompressed bytes of a raw stream (gzip or not), refusing to go past `limit`."""

    def __init__(self, raw: BinaryIO, limit: int, name: str):
        self.raw = raw
        self.limit = limit
        self.name = name
        self.total = 0
        self.decoder = None
        self.pending = b""
        self.started = False
        self.ended = False

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes:
        while True:
            if self.decoder is not None and self.decoder.unconsumed_tail:
                data = self.decoder.unconsumed_tail
            else:
                data = self.raw.read(CHUNK)
                if not self.started:
                    self.started = True
                    if data[:2] == b"\x1f\x8b":
                        self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
                if not data:
                    self.ended = True
                    return self.decoder.flush() if self.decoder else b""
                if self.decoder is None:
                    return data
            try:
                # at most a chunk out per step, however much a few compressed bytes would inflate to
                out = self.decoder.decompress(data, CHUNK)
            except zlib.error as exc:
                raise SitemapError(f"sitemap {self.name}: not valid gzip: {exc}") from None
            if out:
                return out

    def skip_blank(self) -> tuple[bytes, int]:
        """Drop the byte order mark and whitespace a document starts with, pushing back what follows:
        (its first byte, which chooses the parser, and the line breaks dropped)."""
        breaks = 0
        chunk = self.read(CHUNK)
        if chunk.startswith(BOM):
            chunk = chunk[len(BOM):]
        while True:
            rest = chunk.lstrip()
            breaks += chunk.count(b"\n", 0, len(chunk) - len(rest))
            if rest or not chunk:
                self.pending = rest + self.pending
                return rest[:1], breaks
            chunk = self.read(CHUNK)

    def readinto(self, buffer) -> int:
        if not self.pending:
            if self.ended:
                return 0
            self.pending = self._next_chunk()
            self.total += len(self.pending)
            if self.total > self.limit:
                raise SitemapError(f"sitemap {self.name} is larger than {self.limit:,} bytes decompressed",
                                   hint="raise --max-sitemap-bytes if it is genuine")
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


def _lastmod(text: str | None) -> datetime | None:
    """When a page last changed: a W3C datetime (sitemaps; Atom's RFC 3339 is one) or an RFC 822 one
    (RSS pubDate); anything else is ignored, as if there were none."""
    if not text:
        return None
    from email.utils import parsedate_to_datetime

    from edgectl.timeutil import from_iso

    value = text.strip()
    try:
        return from_iso(value + "T00:00:00Z" if len(value) == 10 else value)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # "-0000": UTC, zone unknown


def _parse_text(stream: BinaryIO, name: str, blank_lines: int) -> Iterator[tuple[str, str, None]]:
    """('url', line, None) for each line of a text sitemap that says something, a URL or not."""
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=None)  # CRLF and CR too
    for _number, line, _is_url in url_lines(text, f"sitemap {name}", first_line=blank_lines + 1,
                                             error=SitemapError):
        yield "url", line, None


@dataclass(frozen=True)
class _Format:
    """Where one XML format keeps its entries, and which of an entry's children say what."""

    path: tuple[str, ...]  # from the root's child down to an entry
    kind: str  # what an entry is: 'url' (a page) or 'sitemap' (another document to read)
    loc: str  # the child naming the location: by its text, or by its href when `href`
    date: str  # the child whose text is when the page last changed
    href: bool = False


# The root element decides (sitemaps.org: urlset, sitemapindex; RSS 2.0: rss/channel/item, whose
# link is the page and pubDate an RFC 822 date; RFC 4287: feed/entry, whose link with rel absent
# or "alternate" is the page). A channel's or feed's own links are the site's, not pages in it.
_FORMATS = {
    "urlset": _Format(("url",), "url", "loc", "lastmod"),
    "sitemapindex": _Format(("sitemap",), "sitemap", "loc", "lastmod"),
    "rss": _Format(("channel", "item"), "url", "link", "pubDate"),
    "feed": _Format(("entry",), "url", "link", "updated", href=True),
}
_ALTERNATE = ("alternate", "http://www.iana.org/assignments/relation/alternate")  # the same, by RFC 4287


def _parse(stream: BinaryIO, name: str, blank_lines: int) -> Iterator[tuple[str, str, str | None]]:
    """('url' | 'sitemap', loc, lastmod) for each entry of one XML document, as it streams in.

    expat, fed chunk by chunk: a document type declaration is refused before any entity in it
    can be declared, so neither entity bombs nor external entities get a chance; an undefined
    entity is a well-formedness error. Only elements in the root's namespace count, so an
    atom:link in an RSS item, or an image:loc in a url, is never taken for the page.
    """
    import xml.parsers.expat as expat

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    found: list[tuple[str, str, str | None]] = []
    open_elements: list[str | None] = []  # local names; None for one in another namespace
    fmt = _FORMATS["urlset"]  # until the root says
    namespace = ""  # the root's
    entry: dict | None = None  # the entry being read: its locations and date
    capturing: str | None = None  # which of the entry's fields the text being read is
    text: list[str] = []

    def refuse(*_args):
        raise SitemapError(f"sitemap {name} was refused: it declares a DTD or entities, which sitemaps never need")

    def doctype(doctype_name: str, *_args):
        if doctype_name.lower() == "html":  # the wrong URL, or a server's error page answered with 200
            raise SitemapError(f"sitemap {name} is an HTML page, not a sitemap",
                               hint="give the sitemap's own URL; robots.txt names it on a 'Sitemap:' line")
        refuse()

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal fmt, namespace, entry, capturing
        tag_namespace, _, local = tag.rpartition(" ")
        if not open_elements:
            if local not in _FORMATS:
                raise SitemapError(f"sitemap {name}: the document is <{local}>, not a <urlset>, <sitemapindex>, "
                                   "<rss> or <feed>", hint="a sitemap is XML of one of those, or text, one URL a line")
            fmt, namespace = _FORMATS[local], tag_namespace
        open_elements.append(local if tag_namespace == namespace else None)
        depth = len(open_elements) - 1
        if depth == len(fmt.path) and tuple(open_elements[1:]) == fmt.path:
            entry = {"locs": [], "date": None}
        elif entry is not None and depth == len(fmt.path) + 1:
            if open_elements[-1] == fmt.loc and fmt.href:
                # RFC 4287 compares a rel as an IRI; link relation names are case-insensitive (RFC 8288)
                if attrs.get("rel", "alternate").strip().lower() in _ALTERNATE and attrs.get("href", "").strip():
                    entry["locs"].append(attrs["href"].strip())
            elif open_elements[-1] in (fmt.loc, fmt.date):
                capturing = "locs" if open_elements[-1] == fmt.loc else "date"
                text.clear()

    def end(_tag: str) -> None:
        nonlocal entry, capturing
        depth = len(open_elements) - 1
        if capturing and depth == len(fmt.path) + 1:
            value = "".join(text).strip()
            if capturing == "date":
                entry["date"] = value
            elif value:
                entry["locs"].append(value)
            capturing = None
        elif entry is not None and depth == len(fmt.path):
            found.extend((fmt.kind, loc, entry["date"]) for loc in entry["locs"])
            entry = None
        open_elements.pop()

    def chars(data: str) -> None:
        if capturing:
            text.append(data)

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        while True:
            chunk = stream.read(CHUNK)
            parser.Parse(chunk, not chunk)
            yield from found
            found.clear()
            if not chunk:
                return
    except expat.ExpatError as exc:
        raise SitemapError(f"sitemap {name} is not well-formed XML: {expat.errors.messages[exc.code]} "
                           f"(line {exc.lineno + blank_lines}, column {exc.offset})") from None


def walk(source: str, opener: Opener, *, max_bytes: int = DEFAULT_MAX_BYTES,
         warn: Callable[[str], None] = lambda text: None) -> Iterator[SitemapEntry]:
    """Every page URL in a sitemap or feed, or in the sitemaps an index lists (followed recursively), streamed.

    A location that is not an absolute http(s) URL, page or child sitemap, is skipped; one warning
    at the end counts them for the whole walk, however many documents it took.
    """
    seen: set[str] = set()
    skipped = 0
    first_skipped = ("", "")  # the location, and where it was listed

    def visit(location: str, depth: int) -> Iterator[SitemapEntry]:
        nonlocal skipped, first_skipped
        key = location.split("#", 1)[0]
        if key in seen:
            warn(f"sitemap {location} is listed again (a loop); skipped")
            return
        seen.add(key)
        if depth > MAX_DEPTH:
            raise SitemapError(f"sitemap {location}: indexes nested more than {MAX_DEPTH} deep")
        with opener(location) as raw:
            bounded = _Bounded(raw, max_bytes, location)
            first, blank_lines = bounded.skip_blank()
            # the content decides, not the name: markup is XML, anything else (nothing, too) is text
            parse = _parse if first == b"<" else _parse_text
            entries = parse(io.BufferedReader(bounded, CHUNK), location, blank_lines)
            while True:
                try:
                    kind, loc, lastmod = next(entries)
                except StopIteration:
                    break
                except SitemapError as error:
                    if bounded.decoder is None and location.split("?", 1)[0].lower().endswith(".gz"):
                        raise SitemapError(f"sitemap {location} is named .gz but is not gzip, nor a sitemap",
                                           hint="check the file, or the server's answer for it") from None
                    raise error
                if not absolute_url(loc):
                    if not skipped:
                        first_skipped = (loc, location)
                    skipped += 1
                elif kind == "sitemap":
                    if _USERINFO.search(loc[:1000]):  # credentials are never sent, for a child sitemap either
                        warn(f"sitemap {location}: a child sitemap with credentials in its URL is skipped")
                        continue
                    yield from visit(loc, depth + 1)
                else:
                    yield SitemapEntry(loc, lastmod, location)

    yield from visit(source, 0)
    if skipped:
        loc, where = first_skipped
        warn(f"sitemap {source}: {skipped:,} location(s) that are not absolute http(s) URLs skipped, the first "
             + shown(loc) + (f" in {where}" if where != source else "")
             + " (sitemaps list absolute URLs; edgectl never resolves them against the sitemap's own)")

