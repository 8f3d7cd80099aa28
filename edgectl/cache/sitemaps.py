"""Sitemaps and sitemap indexes, streamed: memory stays flat whatever their size.

Parsing goes through expat with every entity door shut: a document type declaration (where entity
bombs and external entities would be declared) is refused outright; a sitemap never needs one. Gzip is recognised by its magic bytes,
not the name, and decompressed incrementally with a bound on the decompressed size, so a gzip bomb
stops at `max_bytes`. Indexes are followed depth-first up to MAX_DEPTH; a sitemap seen before in
the same walk (an index that includes itself, or two that include each other) is skipped once
with a warning rather than followed forever.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Callable, ContextManager, Iterator
from urllib.parse import urlsplit

from edgectl.errors import UsageError

DEFAULT_MAX_BYTES = 200 * 1024 * 1024  # decompressed, per sitemap; the protocol's own limit is 50 MB
MAX_DEPTH = 5
CHUNK = 64 * 1024


def absolute_url(url: str) -> bool:
    """Whether it is an absolute http(s) URL with a host; cheap, since it runs for every line of a long list.

    Sitemaps must list absolute URLs, so anything else (a relative path, ftp:, javascript:) is
    skipped, never resolved against the sitemap's own URL.
    """
    lower = url[:8].lower()
    start = 7 if lower.startswith("http://") else 8 if lower.startswith("https://") else 0
    if not start or len(url) <= start or url[start] in "/?#" or " " in url:
        return False
    if "[" in url or "]" in url:
        try:
            urlsplit(url).port
        except ValueError:
            return False
    return True


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
    """W3C datetime: a date, or a date and time with a zone; anything else is ignored."""
    if not text:
        return None
    from edgectl.timeutil import from_iso

    value = text.strip()
    try:
        if len(value) == 10:
            value += "T00:00:00Z"
        return from_iso(value.replace("+00:00", "Z"))
    except ValueError:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None


def _parse(stream: BinaryIO, name: str) -> Iterator[tuple[str, str, str | None]]:
    """('url' | 'sitemap', loc, lastmod) for each entry of one document, as it streams in.

    expat, fed chunk by chunk: a document type declaration is refused before any entity in it
    can be declared, so neither entity bombs nor external entities get a chance; an undefined
    entity is a well-formedness error.
    """
    import xml.parsers.expat as expat

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    found: list[tuple[str, str, str | None]] = []
    entry: dict[str, str | None] = {}
    text: list[str] = []
    depth = [0]
    capture = [False]

    def refuse(*_args):
        raise SitemapError(f"sitemap {name} was refused: it declares a DTD or entities, which sitemaps never need")

    def start(tag: str, _attrs) -> None:
        local = tag.rpartition(" ")[2]
        depth[0] += 1
        if depth[0] == 1 and local not in ("urlset", "sitemapindex"):
            raise SitemapError(f"sitemap {name}: the document is <{local}>, not a <urlset> or <sitemapindex>")
        if depth[0] == 2:
            entry.clear()
            entry["kind"] = local
        elif depth[0] == 3 and local in ("loc", "lastmod"):
            capture[0] = True
            text.clear()

    def end(tag: str) -> None:
        local = tag.rpartition(" ")[2]
        if depth[0] == 3 and capture[0]:
            entry[local] = "".join(text).strip()
            capture[0] = False
        elif depth[0] == 2 and entry.get("kind") in ("url", "sitemap") and entry.get("loc"):
            found.append((entry["kind"], entry["loc"], entry.get("lastmod")))
        depth[0] -= 1

    def chars(data: str) -> None:
        if capture[0]:
            text.append(data)

    parser.StartDoctypeDeclHandler = refuse
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
                           f"(line {exc.lineno}, column {exc.offset})") from None


def walk(source: str, opener: Opener, *, max_bytes: int = DEFAULT_MAX_BYTES,
         warn: Callable[[str], None] = lambda text: None) -> Iterator[SitemapEntry]:
    """Every page URL in a sitemap or sitemap index (followed recursively), streamed.

    A location that is not an absolute http(s) URL, page or child sitemap, is skipped; one warning
    at the end counts them for the whole walk, however many documents it took.
    """
    seen: set[str] = set()
    skipped: list = [0, None]  # how many, and the first (location, where it was listed)

    def visit(location: str, depth: int) -> Iterator[SitemapEntry]:
        key = location.split("#", 1)[0]
        if key in seen:
            warn(f"sitemap {location} is listed again (a loop); skipped")
            return
        seen.add(key)
        if depth > MAX_DEPTH:
            raise SitemapError(f"sitemap {location}: indexes nested more than {MAX_DEPTH} deep")
        with opener(location) as raw:
            bounded = _Bounded(raw, max_bytes, location)
            entries = _parse(io.BufferedReader(bounded, CHUNK), location)
            while True:
                try:
                    kind, loc, lastmod = next(entries)
                except StopIteration:
                    break
                except SitemapError as error:
                    if bounded.decoder is None and location.split("?", 1)[0].lower().endswith(".gz"):
                        raise SitemapError(f"sitemap {location} is named .gz but is not gzip, nor well-formed XML",
                                           hint="check the file, or the server's answer for it") from None
                    raise error
                if not absolute_url(loc):
                    skipped[0] += 1
                    skipped[1] = skipped[1] or (loc, location)
                elif kind == "sitemap":
                    yield from visit(loc, depth + 1)
                else:
                    yield SitemapEntry(loc, lastmod, location)

    yield from visit(source, 0)
    if skipped[0]:
        loc, where = skipped[1]
        warn(f"sitemap {source}: {skipped[0]:,} location(s) that are not absolute http(s) URLs skipped, the first "
             f"{loc[:100]!r}" + (f" in {where}" if where != source else "")
             + " (sitemaps list absolute URLs; edgectl never resolves them against the sitemap's own)")


def is_remote(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")
