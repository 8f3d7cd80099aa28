"""What a warm sends: each URL at each chosen node as each variant, filtered, sharded, and skipped once done."""

from __future__ import annotations

import fnmatch
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Iterator
from urllib.parse import urlsplit

from edgectl.cache import engine
from edgectl.cache.engine import Job, Variant
from edgectl.cache.sources import Source
from edgectl.errors import UsageError
from edgectl.timeutil import to_iso, utcnow


USER_AGENTS = {
    "desktop": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/18.1 Mobile/15E148 Safari/604.1",
}


def shard_of(url: str, count: int) -> int:
    """A stable shard for a URL, the same on every machine and run (CRC-32, not Python's hash)."""
    return zlib.crc32(url.encode("utf-8")) % count


def parse_shard(text: str) -> tuple[int, int]:
    index, sep, count = text.partition("/")
    try:
        k, n = int(index), int(count)
    except ValueError:
        raise UsageError(f"--shard {text!r} is not K/N", hint="e.g. --shard 1/4 for the first of four jobs") from None
    if not sep or not 1 <= k <= n or n > 10_000:
        raise UsageError(f"--shard {text!r} is not K/N with 1 <= K <= N", hint="e.g. --shard 1/4")
    return k, n


@dataclass
class Filters:
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    lastmod_since: datetime | None = None
    limit: int | None = None
    shard: tuple[int, int] | None = None
    worker: tuple[int, int] | None = None  # this process's share with --workers (a differently salted hash)

    def __post_init__(self) -> None:
        for option, patterns in (("--include", self.include), ("--exclude", self.exclude)):
            for pattern in patterns:
                if not pattern.startswith(("/", "*", "?", "[", "http://", "https://")):
                    raise UsageError(f"{option} {pattern!r} can match nothing",
                                     hint=f"a glob matches a URL's path ({option} '/{pattern}') or the whole URL"
                                          f" ({option} 'https://*/{pattern}')")

    def _selected(self, url: str) -> bool:
        """The include/exclude globs and --shard."""
        if self.include or self.exclude:
            path = urlsplit(url).path or "/"
            if self.include and not any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(url, p)
                                        for p in self.include):
                return False
            if any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(url, p) for p in self.exclude):
                return False
        return not self.shard or shard_of(url, self.shard[1]) == self.shard[0] - 1

    def _mine(self, url: str) -> bool:
        """This process's share with --workers (a differently salted hash than --shard)."""
        return not self.worker or zlib.crc32(url.encode("utf-8"), 0x5EED) % self.worker[1] == self.worker[0] - 1

    def keeps(self, url: str) -> bool:
        """The filters, for a URL that comes without a Source (stale entries)."""
        return self._selected(url) and self._mine(url)

    def apply(self, sources: Iterable[Source]) -> Iterator[Source]:
        seen = 0
        for source in sources:
            if not self._selected(source.url):
                continue
            if self.lastmod_since and (source.lastmod is None or source.lastmod < self.lastmod_since):
                continue
            seen += 1  # --limit counts the run's URLs, before they are shared out among workers
            if self.limit and seen > self.limit:
                return
            if self._mine(source.url):
                yield source


def variant_named(name: str) -> Variant | None:
    """The variant a recorded name stands for ('gzip+mobile'); None for a literal user agent, whose
    name keeps only its start."""
    if name == "default":
        return engine.DEFAULT_VARIANT
    headers = []
    for part in name.split("+"):
        if part.startswith("ua:"):
            return None
        headers.append(("User-Agent", USER_AGENTS[part]) if part in USER_AGENTS else ("Accept-Encoding", part))
    return Variant(name, tuple(headers))


def stale_jobs(state, within: float, only_nodes: list[str] | None, warn) -> list[Job]:
    """A job per entry that expired, will within `within` seconds, or was invalidated: at its own node
    (or the public hostname) and as its own variant."""
    from datetime import timedelta

    cutoff = to_iso(utcnow() + timedelta(seconds=within))
    endpoints = {r["name"]: r["endpoint"] for r in state.db.query("SELECT name, endpoint FROM nodes WHERE removed_at IS NULL")}
    found, skipped = [], 0
    for url, node, variant_name in state.db.execute(
            "SELECT url, node, variant FROM edge_cache_entries WHERE invalidated_at IS NOT NULL"
            " OR (expires_at IS NOT NULL AND expires_at <= ?) ORDER BY node COLLATE natural_order, url", [cutoff]).fetchall():
        if only_nodes is not None and node not in only_nodes:
            continue
        variant = variant_named(variant_name)
        if variant is None or (node and node not in endpoints):
            skipped += 1
            continue
        found.append(Job(url, node or None, endpoints.get(node) if node else None, variant))
    if skipped:
        warn(f"{skipped} stale entr{'y' if skipped == 1 else 'ies'} skipped: a removed node, or a literal "
             "user agent that was not recorded in full")
    return found


def variants(headers: dict[str, str], encodings: list[str], agents: list[str]) -> list[Variant]:
    """One variant per combination of Accept-Encoding and User-Agent, each with the fixed headers."""
    result = []
    for encoding in encodings or [None]:
        for agent in agents or [None]:
            extra = list(headers.items())
            names = []
            if encoding:
                extra.append(("Accept-Encoding", encoding))
                names.append(encoding)
            if agent:
                extra.append(("User-Agent", USER_AGENTS.get(agent, agent)))
                names.append(agent if agent in USER_AGENTS else "ua:" + agent[:20])
            result.append(Variant("+".join(names) or "default", tuple(extra)))
    return result


def jobs(sources: Iterable[Source], nodes: list[tuple[str, str]] | None, variant_list: list[Variant]) -> Iterator[Job]:
    for source in sources:
        for name, endpoint in nodes or [(None, None)]:
            for variant in variant_list:
                yield Job(source.url, name, endpoint, variant)



def job_key(url: str, node: str | None, variant: str) -> int:
    """8 bytes per finished request to skip on resume (1M of them are about 60 MB, not strings)."""
    import hashlib

    digest = hashlib.blake2b(f"{url}\x00{node or ''}\x00{variant}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")



def skip_finished(job_iter: Iterable[Job], done: set[int]) -> Iterator[Job]:
    for job in job_iter:
        if job_key(job.url, job.node, job.variant.name) not in done:
            yield job

