"""`cache warm` from end to end: URL sources, jobs (URL x node x variant), the run's record, its summary."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import signal
import sqlite3
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Iterator
from urllib.parse import urljoin, urlsplit

from edgectl.cache import engine
from edgectl.cache.engine import Job, Variant
from edgectl.errors import NotFound, OperationFailed, StateError, UsageError
from edgectl.process import alive
from edgectl.timeutil import from_iso, to_iso, utcnow

USER_AGENTS = {
    "desktop": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/18.1 Mobile/15E148 Safari/604.1",
}


# -- sources -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    url: str
    lastmod: datetime | None = None


def _check(url: str) -> str | None:
    """The URL (a unicode host in IDNA form) when it is http(s) with a host; cheap, since it runs for
    every line of a long list."""
    lower = url[:8].lower()
    start = 7 if lower.startswith("http://") else 8 if lower.startswith("https://") else 0
    if not start or len(url) <= start or url[start] in "/?#" or " " in url:
        return None
    if "@" in url and _credentials(url):  # never sent, never stored
        return None
    if "[" in url or "]" in url:
        try:
            urlsplit(url).port
        except ValueError:
            return None
    if url.isascii():
        return url
    from edgectl.parse import idna_url_or_none  # a unicode host, in its IDNA form

    return idna_url_or_none(url)


def _credentials(url: str) -> bool:
    return "@" in urlsplit(url).netloc


def _skipped(url: str) -> str:
    """Why a URL is skipped, without repeating credentials it carries."""
    if _credentials(url):
        return "a URL with credentials in it is skipped (they would be stored and sent in clear)"
    return f"{url[:100]!r} is not an http(s) URL with a valid host; skipped"


def from_lines(lines: Iterable[str], name: str, warn) -> Iterator[Source]:
    skipped = 0
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if (url := _check(text)) is None:
            skipped += 1
            if skipped <= 5:
                warn(f"{name}:{number}: {_skipped(text)}")
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
    if urlsplit(location).scheme not in ("http", "https"):
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
    from edgectl.cache.sitemaps import walk

    for entry in walk(location, lambda loc: _open_sitemap(loc, timeout), max_bytes=max_bytes, warn=warn):
        if (url := _check(entry.url)) is None:
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
            " OR (expires_at IS NOT NULL AND expires_at <= ?) ORDER BY node, url", [cutoff]).fetchall():
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


# -- the lock --------------------------------------------------------------------------------------

@contextmanager
def warm_lock(state_path):
    """One warm at a time per state file (cron runs overlap when one is slow); exit 4 otherwise.

    An flock on a file beside the state: the kernel releases it when the holder dies, so a killed
    run never leaves a stale lock behind.
    """
    import fcntl

    from edgectl.errors import LockHeld

    path = f"{state_path}.warm.lock"
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise LockHeld(f"another cache warm holds the lock ({holder})",
                           hint="wait for it, or pass --no-lock to run beside it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


# -- resuming ----------------------------------------------------------------------------------------

def job_key(url: str, node: str | None, variant: str) -> int:
    """8 bytes per finished request to skip on resume (1M of them are about 60 MB, not strings)."""
    import hashlib

    digest = hashlib.blake2b(f"{url}\x00{node or ''}\x00{variant}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def result_count(state, run_id: int) -> int:
    return state.db.execute("SELECT count(*) FROM warm_results WHERE run_id = ?", [run_id]).fetchone()[0]


def finished_keys(state, run_id: int) -> set[int]:
    return {job_key(url, node, variant) for url, node, variant in
            state.db.execute("SELECT url, node, variant FROM warm_results WHERE run_id = ?", [run_id])}


def skip_finished(job_iter: Iterable[Job], done: set[int]) -> Iterator[Job]:
    for job in job_iter:
        if job_key(job.url, job.node, job.variant.name) not in done:
            yield job


def claim_run(state, run_id: int) -> dict[str, Any]:
    """A run to resume: interrupted (or whose process died), never one still running."""
    record = get_run(state, run_id)
    if record["status"] == "running":
        from edgectl.errors import LockHeld

        raise LockHeld(f"warm run {run_id} is still running")
    if record["status"] == "completed":
        raise UsageError(f"warm run {run_id} completed; there is nothing to resume")
    with state.db.atomic():
        state.db.conn.execute("UPDATE warm_runs SET status = 'running', owner_pid = ?, finished_at = NULL WHERE id = ?",
                              [os.getpid(), run_id])
    return record


# -- the run's record ------------------------------------------------------------------------------

def start_run(state, options: dict[str, Any]) -> int:
    now = to_iso(utcnow())
    with state.db.atomic():
        cursor = state.db.conn.execute(
            "INSERT INTO warm_runs (created_at, updated_at, status, options, owner_pid) VALUES (?, ?, 'running', ?, ?)",
            [now, now, json.dumps(options), os.getpid()])
    return cursor.lastrowid


def record(state, run_id: int, outcomes: list[engine.Outcome], recorder=None) -> list:
    """A batch of results, and the cache entries they show, in one transaction."""
    from edgectl.cache.status import UNKNOWN, classify

    now = to_iso(utcnow())
    rows = []
    statuses = []
    for o in outcomes:
        status = UNKNOWN if o.error else classify(o.headers)
        statuses.append(status)
        rows.append((run_id, o.job.url, o.job.node, o.job.variant.name, o.status_code, status.status, status.cache,
                     o.latency_ms, o.size, o.error, o.attempts, now))
    with state.db.atomic():
        state.db.conn.executemany(
            "INSERT INTO warm_results (run_id, url, node, variant, status_code, cache_status, cache, latency_ms,"
            " bytes, error, attempts, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        if recorder is not None:
            recorder.record(outcomes, statuses)
    return statuses


def summary(state, run_id: int) -> dict[str, Any]:
    db = state.db
    q = lambda sql, *args: db.execute(sql, [run_id, *args]).fetchall()  # noqa: E731
    total, errors, size = q("SELECT count(*), sum(error IS NOT NULL OR status_code >= 400), coalesce(sum(bytes), 0)"
                            " FROM warm_results WHERE run_id = ?")[0]
    classes = {f"{c}xx" if c else "error": n for c, n in q(
        "SELECT status_code / 100, count(*) FROM warm_results WHERE run_id = ? GROUP BY 1 ORDER BY 1")}
    per_node: dict[str, dict[str, int]] = {}
    for node, status, n in q("SELECT coalesce(node, '(public)'), cache_status, count(*) FROM warm_results"
                             " WHERE run_id = ? GROUP BY 1, 2"):
        per_node.setdefault(node, {})[status] = n
    latencies = {}
    timed = q("SELECT count(*) FROM warm_results WHERE run_id = ? AND latency_ms IS NOT NULL")[0][0]
    for name, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        if timed:
            offset = min(timed - 1, int(share * timed))
            latencies[name] = q("SELECT latency_ms FROM warm_results WHERE run_id = ? AND latency_ms IS NOT NULL"
                                " ORDER BY latency_ms LIMIT 1 OFFSET ?", offset)[0][0]
    common = [{"error": e, "count": n} for e, n in q(
        "SELECT coalesce(error, 'HTTP ' || status_code), count(*) FROM warm_results WHERE run_id = ?"
        " AND (error IS NOT NULL OR status_code >= 400) GROUP BY 1 ORDER BY 2 DESC LIMIT 5")]
    hits = sum(c.get("hit", 0) for c in per_node.values())
    return {"requests": total, "errors": errors or 0, "error_rate": round((errors or 0) / total, 4) if total else 0.0,
            "status_classes": classes, "cache_before": per_node,
            "hit_ratio_before": round(hits / total, 4) if total else 0.0, "bytes": size,
            "latency_ms": latencies, "common_errors": common}


def finish_run(state, run_id: int, status: str, data: dict[str, Any]) -> None:
    now = to_iso(utcnow())
    with state.db.atomic():
        state.db.conn.execute("UPDATE warm_runs SET status = ?, summary = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                              [status, json.dumps(data), now, now, run_id])


def record_metrics(state, run_id: int) -> None:
    """Each node's median warm latency and hit ratio join its metrics history."""
    from edgectl.nodes.inventory import record_metrics as record

    at = to_iso(utcnow())
    rows = state.db.execute(
        "SELECT n.id, count(*), sum(r.cache_status = 'hit') FROM warm_results r JOIN nodes n"
        " ON n.name = r.node AND n.removed_at IS NULL WHERE r.run_id = ? GROUP BY n.id", [run_id]).fetchall()
    for node_id, count, hits in rows:
        median = state.db.execute(
            "SELECT r.latency_ms FROM warm_results r JOIN nodes n ON n.name = r.node WHERE r.run_id = ? AND n.id = ?"
            " AND r.latency_ms IS NOT NULL ORDER BY r.latency_ms LIMIT 1 OFFSET ?",
            [run_id, node_id, count // 2]).fetchone()
        metrics = {"warm_hit_ratio": round((hits or 0) / count, 4)}
        if median:
            metrics["warm_latency_p50_ms"] = median[0]
        with state.db.atomic():
            record(state, node_id, metrics, source=f"warm:{run_id}", at=at,
                   units={"warm_hit_ratio": "ratio", "warm_latency_p50_ms": "ms"})


def runs(state, limit: int = 50) -> list[dict[str, Any]]:
    return [_run_record(r) for r in state.db.query("SELECT * FROM warm_runs ORDER BY id DESC LIMIT ?", [limit])]


def get_run(state, run_id: int) -> dict[str, Any]:
    rows = list(state.db.query("SELECT * FROM warm_runs WHERE id = ?", [run_id]))
    if not rows:
        raise NotFound(f"no warm run with id {run_id}", hint="edgectl cache runs lists recent runs")
    return _run_record(rows[0])


def _run_record(row: dict) -> dict[str, Any]:
    data = json.loads(row["summary"])
    status = row["status"]
    if status == "running" and row["owner_pid"] and not alive(row["owner_pid"]):
        status = "interrupted"
    return {"id": row["id"], "status": status, "created_at": from_iso(row["created_at"]),
            "finished_at": from_iso(row["finished_at"]), "requests": data.get("requests"),
            "errors": data.get("errors"), "hit_ratio_before": data.get("hit_ratio_before"),
            "options": json.loads(row["options"]), "summary": data}


# -- running -----------------------------------------------------------------------------------------

def execute(state, run_id: int, job_iter: Iterator[Job], settings: engine.Settings, on_progress=None) -> tuple[str, engine.Progress]:
    """Run the engine on this thread's event loop; SIGINT/SIGTERM stop it cleanly.

    Results are recorded by a writer process (edgectl.cache.writer); this returns once every
    result the run received is in the state file.
    """
    from edgectl.cache.writer import Writer

    stop_reason: list[str] = []
    progress = engine.Progress()

    async def main(writer: Writer) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        main_task = asyncio.current_task()

        def on_signal(signum: int) -> None:
            stop_reason.append(signal.Signals(signum).name)
            if stop.is_set():  # a second one: abandon the requests in flight too
                main_task.cancel()
            stop.set()

        def sink(batch: list[engine.Outcome]) -> None:
            writer.submit(batch)
            if on_progress is not None:  # the hit ratio so far, for the progress line only
                from edgectl.cache.status import classify

                progress.hits += sum(1 for o in batch if not o.error and classify(o.headers).status == "hit")

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await engine.run(job_iter, settings, sink, stop, progress=progress, on_progress=on_progress)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    writer = Writer(state.path, run_id, record)
    try:
        try:
            engine.run_loop(main(writer))
        except asyncio.CancelledError:  # the second signal: what was received is still recorded
            pass
        finally:
            writer.close()
    except StateError:  # the writer failed: the run stops, resumable from what was recorded
        try:
            finish_run(state, run_id, "interrupted", summary(state, run_id))
        except sqlite3.Error:
            pass  # the state refuses this too; the dead owner marks the run interrupted
        raise
    return ("interrupted" if stop_reason else "completed"), progress
