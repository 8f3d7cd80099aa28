"""Where a warm's URLs come from: lists, stdin, sitemaps, robots.txt and purges, streamed and each URL once."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Iterator, TextIO
from urllib.parse import urljoin, urlsplit

from edgectl.cache.sitemaps import absolute_url, shown, url_lines, walk
from edgectl.errors import OperationFailed, UsageError


@dataclass(frozen=True)
class Source:
    url: str
    lastmod: datetime | None = None


def _ascii(url: str) -> str | None:
    """The URL with a unicode host in its IDNA form; None when the host is no valid name."""
    if url.isascii():
        return url
    from edgectl.parse import idna_url_or_none

    return idna_url_or_none(url)


def _credentials(url: str) -> bool:
    """Whether a URL carries credentials, which are never sent and never stored."""
    if "@" not in url:
        return False
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:  # urllib cannot split it: skipped, and never shown, as if it carried some
        return True


def _skipped(url: str) -> str:
    """Why a URL is skipped, without repeating credentials it carries."""
    if absolute_url(url) and _credentials(url):
        return "a URL with credentials in it is skipped (they would be stored and sent in clear)"
    return f"{shown(url)} is not an http(s) URL with a valid host; skipped"


def from_lines(lines: TextIO, name: str, warn, label: str | None = None) -> Iterator[Source]:
    """The URLs of a list, one a line; `label` is how an error names the list (its name otherwise)."""
    skipped = 0
    held: list[str] | None = []  # until a URL shows it is a list of URLs at all; if none does, one error says so
    for number, text, is_url in url_lines(lines, label or name):
        if is_url and held is not None:
            for message in held:
                warn(message)
            held = None
        url = _ascii(text) if is_url and not _credentials(text) else None
        if url is None:
            skipped += 1
            if skipped <= 5:
                (warn if held is None else held.append)(f"{name}:{number}: {_skipped(text)}")
            continue
        yield Source(url)
    if skipped > 5:
        warn(f"{name}: {skipped} lines in all were not http(s) URLs")


@contextmanager
def _open_sitemap(location: str, timeout: float):
    """A sitemap's raw bytes from a URL (streamed), a local file, or stdin ('-')."""
    if location == "-":
        import sys

        yield sys.stdin.buffer
        return
    if "://" not in location:
        try:
            with open(location, "rb") as handle:
                yield handle
        except OSError as exc:
            raise UsageError(f"cannot read sitemap {location}: {exc.strerror or exc}") from None
        return
    try:
        scheme = urlsplit(location).scheme
    except ValueError:  # e.g. an unclosed IPv6 bracket, from a robots.txt or an index
        scheme = None
    if scheme not in ("http", "https"):
        raise UsageError(f"sitemap {location!r} is not an http(s) URL or a file")
    import httpx

    try:
        with httpx.stream("GET", location, timeout=timeout, follow_redirects=True, trust_env=False,
                          headers={"User-Agent": "edgectl-warm", "Accept-Encoding": "identity"}) as response:
            if response.status_code != 200:
                raise OperationFailed(f"sitemap {location}: HTTP {response.status_code}")
            yield _Raw(response.iter_raw())
    except httpx.HTTPError as exc:
        raise OperationFailed(f"cannot fetch sitemap {location}: {exc}") from None


class _Raw:
    """A file-like read() over an iterator of byte chunks."""

    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        if size < 0:
            size = len(self.buffer)
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out


def from_sitemap(location: str, *, max_bytes: int, warn, timeout: float = 30.0) -> Iterator[Source]:
    # walk has skipped what is not an absolute http(s) URL: what is left to refuse is credentials
    for entry in walk(location, lambda loc: _open_sitemap(loc, timeout), max_bytes=max_bytes, warn=warn):
        url = None if _credentials(entry.url) else _ascii(entry.url)
        if url is None:
            warn(f"{entry.sitemap}: {_skipped(entry.url)}")
            continue
        yield Source(url, entry.lastmod)


class _Seen:
    """Which URLs a run has taken, exactly: a set while there are few, then a temporary table.

    A million URLs would take some 60 MB as a set of their hashes; past `in_memory` they move to
    a private temporary SQLite file, whose page cache is held to 2 MiB. Keys are 64-bit string
    hashes, stable within the process: two URLs in a million collide with odds of about 1e-8.
    """

    def __init__(self, in_memory: int = 50_000):
        self.keys: set[int] | None = set()
        self.in_memory = in_memory
        self.db: sqlite3.Connection | None = None

    def add(self, url: str) -> bool:
        """False when the URL was taken before."""
        key = hash(url)
        if self.keys is not None:
            if key in self.keys:
                return False
            self.keys.add(key)
            if len(self.keys) >= self.in_memory:
                self._spill()
            return True
        return bool(self.db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (key,)).rowcount)

    def _spill(self) -> None:
        self.db = sqlite3.connect("", check_same_thread=False)  # "": a temporary file, deleted on close
        self.db.execute("PRAGMA journal_mode = OFF")
        self.db.execute("PRAGMA cache_size = -2048")
        self.db.execute("CREATE TABLE seen (key INTEGER PRIMARY KEY)")
        self.db.executemany("INSERT INTO seen VALUES (?)", ((key,) for key in self.keys))
        self.keys = None

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


def unique(sources: Iterable[Source], warn) -> Iterator[Source]:
    """Each URL once, however often the sources list it."""
    seen = _Seen()
    repeated = 0
    try:
        for source in sources:
            if seen.add(source.url):
                yield source
            else:
                repeated += 1
    finally:
        seen.close()
    if repeated:
        warn(f"{repeated} repeat(s) of a URL already listed were skipped")


def robots_sitemaps(url: str, timeout: float = 30.0) -> list[str]:
    """The `Sitemap:` lines of a robots.txt (an http(s) URL or a file)."""
    if "://" in url:
        import httpx

        try:
            response = httpx.get(url, timeout=timeout, follow_redirects=True, trust_env=False,
                                 headers={"User-Agent": "edgectl-warm"})
        except httpx.HTTPError as exc:
            raise OperationFailed(f"cannot fetch {url}: {exc}") from None
        if response.status_code != 200:
            raise OperationFailed(f"{url}: HTTP {response.status_code}")
        text = response.text[:1_000_000]
    else:
        try:
            with open(url, encoding="utf-8", errors="replace") as handle:
                text = handle.read(1_000_000)
        except OSError as exc:
            raise UsageError(f"cannot read {url}: {exc.strerror or exc}") from None
    found = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "sitemap" and value.strip():
            location = value.strip()
            if "://" in url:
                # named by a remote file: a URL relative to it, never a path on this machine
                location = urljoin(url, location)
                if urlsplit(location).scheme not in ("http", "https"):
                    continue
            found.append(location)
    if not found:
        raise UsageError(f"{url} names no sitemaps", hint="robots.txt lists them as 'Sitemap: URL' lines")
    return found


def from_purge(state, purge_id: str) -> list[Source]:
    """The URLs a purge cleared, to warm them again: its URL targets, and the recorded entries its
    prefixes and tags covered.

    Read now, not lazily: sources are consumed on a worker thread, which must not touch this
    thread's SQLite connection.
    """
    from edgectl.cache.entries import matching
    from edgectl.cdn import journal

    purge = journal.get(state, journal.parse_id(purge_id))
    targets = journal.targets(state, purge.id)
    urls = {value: None for kind, value in targets if kind == "url"}
    # a prefix or tag names no URLs itself: the entries warming recorded under it do
    prefixes = [value for kind, value in targets if kind == "prefix"]
    tags = [value for kind, value in targets if kind == "tag"]
    if prefixes or tags:
        for entry in matching(state, prefixes=prefixes, tags=tags):
            urls.setdefault(entry["url"], None)
    return [Source(url) for url in urls]



def open_sources(urls: list[str], urls_file: str | None, sitemaps: list[str], *, max_bytes: int, warn,
                 required: bool = True, files: list | None = None, stdin=None) -> Iterator[Source]:
    """The URL sources of a warm, chained and streamed; `files` collects (binary handle, size) of the
    local lists opened, for an ETA.

    A local file that cannot be read is refused now, before a run is recorded.
    """
    import os
    import sys
    from itertools import chain

    if urls_file == "-" and "-" in sitemaps or sitemaps.count("-") > 1:
        raise UsageError("only one source can read stdin")
    parts: list[Iterable[Source]] = []
    if urls:
        from edgectl.parse import parse_url

        parts.append([Source(parse_url(u)) for u in urls])
    if urls_file == "-":
        parts.append(from_lines(stdin or sys.stdin, "stdin", warn, label="--urls-file -"))
    elif urls_file:
        try:
            handle = open(urls_file, encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UsageError(f"cannot read --urls-file {urls_file}: {exc.strerror or exc}") from None
        if files is not None and handle.buffer.seekable():
            files.append((handle.buffer, os.fstat(handle.fileno()).st_size))
        parts.append(from_lines(handle, urls_file, warn, label=f"--urls-file {urls_file}"))
    for sitemap in sitemaps:
        if "://" in sitemap:  # a malformed address is refused now, before a run is recorded
            from edgectl.parse import parse_url

            parse_url(sitemap, what="--sitemap")
        elif sitemap != "-":
            try:
                open(sitemap, "rb").close()
            except OSError as exc:
                raise UsageError(f"cannot read sitemap {sitemap}: {exc.strerror or exc}") from None
        parts.append(from_sitemap(sitemap, max_bytes=max_bytes, warn=warn))
    if not parts and required:
        raise UsageError("no URLs to warm", hint="give --url, --urls-file, --sitemap, --from-robots, --from-purge or --stale")
    return chain.from_iterable(parts)
