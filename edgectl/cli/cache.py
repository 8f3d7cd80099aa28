"""`edgectl cache`: warm caches (every node, every variant) from URL lists and sitemaps, and the runs' records."""

from __future__ import annotations

import os
import time
from typing import Annotated, Optional

import typer

from edgectl.cli import group_help
from edgectl.cli.context import current
from edgectl.cli.options import Labels
from edgectl.errors import EdgectlError, Interrupted, OperationFailed, StateError, UsageError
from edgectl.output import Column

app = typer.Typer(help=group_help("cache"), no_args_is_help=True, add_completion=False)

ENGINE_DEFAULTS = {"concurrency": 64, "rate": None, "timeout": "10s", "retries": 2, "hash": False,
                   "max_error_rate": None, "workers": 1, "per_host": 0}
RUN_COLUMNS = [
    Column("id", justify="right"),
    Column("status", kind="status"),
    Column("created_at", "STARTED", kind="time"),
    Column("finished_at", "FINISHED", kind="time"),
    Column("requests", justify="right"),
    Column("errors", justify="right"),
    Column("hit_ratio_before", "HIT RATIO BEFORE", justify="right"),
]
NODE_COLUMNS = [
    Column("node"),
    Column("requests", justify="right"),
    Column("hit", justify="right"),
    Column("miss", justify="right"),
    Column("expired", justify="right"),
    Column("other", justify="right"),
    Column("hit_ratio", "HIT RATIO", justify="right"),
]


def _sources(ctx, urls, urls_file, sitemaps, max_bytes, required: bool = True, files: list | None = None):
    """The URL sources, chained; `files` collects (binary handle, size) of the local lists read, for an ETA."""
    import sys
    from itertools import chain

    from edgectl.cache.warm import Source, from_lines, from_sitemap

    parts = []
    if urls_file == "-" and "-" in (sitemaps or []) or list(sitemaps or []).count("-") > 1:
        raise UsageError("only one source can read stdin")
    if urls:
        from edgectl.parse import parse_url

        parts.append([Source(parse_url(u)) for u in urls])
    warn = (lambda text: None) if ctx.quiet else ctx.out.warn  # --quiet: errors only, even for skipped lines
    if urls_file == "-":
        parts.append(from_lines(sys.stdin, "stdin", warn))
    elif urls_file:
        try:
            handle = open(urls_file, encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UsageError(f"cannot read --urls-file {urls_file}: {exc.strerror or exc}") from None
        if files is not None and handle.buffer.seekable():
            files.append((handle.buffer, os.fstat(handle.fileno()).st_size))
        parts.append(from_lines(handle, urls_file, warn))
    for sitemap in sitemaps or []:
        if "://" not in sitemap and sitemap != "-":  # a file: refused now, before a run is recorded
            try:
                open(sitemap, "rb").close()
            except OSError as exc:
                raise UsageError(f"cannot read sitemap {sitemap}: {exc.strerror or exc}") from None
        parts.append(from_sitemap(sitemap, max_bytes=max_bytes, warn=warn))
    if not parts and required:
        raise UsageError("no URLs to warm", hint="give --url, --urls-file, --sitemap, --from-robots, --from-purge or --stale")
    return chain.from_iterable(parts)


def _nodes(ctx, names: Optional[str], labels, region: Optional[str], all_nodes: bool):
    from edgectl.nodes.inventory import NodeFilter, get_nodes, list_nodes
    from edgectl.parse import parse_labels

    if not (names or labels or region or all_nodes):
        return None
    if names and (labels or region or all_nodes):
        raise UsageError("name nodes with --nodes or select them with --label/--region/--all-nodes, not both")
    if names:
        nodes = get_nodes(ctx.state, [n.strip() for n in names.split(",") if n.strip()])
    else:
        nodes = [n for n in list_nodes(ctx.state, NodeFilter(labels=parse_labels(labels), region=region))
                 if n.status in ("active", "draining")]
    if not nodes:
        raise UsageError("no nodes match", hint="edgectl nodes list shows the registered nodes and their status")
    return [(n.name, n.endpoint) for n in nodes]


def _split(values: Optional[str]) -> list[str]:
    return [v.strip() for v in (values or "").split(",") if v.strip()]


@app.command("warm")
def warm(
    urls: Annotated[Optional[list[str]], typer.Option("--url", metavar="URL", help="A URL to warm; repeatable.")] = None,
    urls_file: Annotated[Optional[str], typer.Option("--urls-file", metavar="FILE|-", help="URLs one per line; '-' reads stdin. Streamed.")] = None,
    sitemap: Annotated[Optional[list[str]], typer.Option("--sitemap", metavar="URL|FILE|-", help="A sitemap or sitemap index (gzip too); repeatable; '-' reads stdin.")] = None,
    from_robots: Annotated[Optional[str], typer.Option("--from-robots", metavar="URL", help="The sitemaps a robots.txt names.")] = None,
    from_purge: Annotated[Optional[str], typer.Option("--from-purge", metavar="ID", help="The URLs a cdn purge cleared.")] = None,
    stale: Annotated[bool, typer.Option("--stale", help="Entries whose policy TTL has run out, or were invalidated.")] = False,
    within: Annotated[Optional[str], typer.Option("--within", metavar="DURATION", help="With --stale: or will run out within this long.")] = None,
    include: Annotated[Optional[list[str]], typer.Option("--include", metavar="GLOB", help="Only paths or URLs matching; repeatable.")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option("--exclude", metavar="GLOB", help="Skip paths or URLs matching; repeatable.")] = None,
    lastmod_since: Annotated[Optional[str], typer.Option("--lastmod-since", metavar="DATE", help="Only sitemap entries modified since (ISO date).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, metavar="N", help="At most N URLs.")] = None,
    shard: Annotated[Optional[str], typer.Option("--shard", metavar="K/N", help="Only this job's share of the URLs (a stable hash).")] = None,
    nodes: Annotated[Optional[str], typer.Option("--nodes", metavar="NAME,...", help="Pin requests to these nodes.")] = None,
    label: Labels = None,
    region: Annotated[Optional[str], typer.Option("--region", help="Pin requests to the region's nodes.")] = None,
    all_nodes: Annotated[bool, typer.Option("--all-nodes", help="Pin requests to every active node.")] = False,
    header: Annotated[Optional[list[str]], typer.Option("--header", "-H", metavar="'K: V'", help="Sent with every request; repeatable.")] = None,
    accept_encoding: Annotated[Optional[str], typer.Option("--accept-encoding", metavar="LIST", help="One request per encoding, e.g. gzip,br.")] = None,
    user_agent: Annotated[Optional[str], typer.Option("--user-agent", metavar="LIST", help="desktop, mobile or literal strings; one request each.")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", "-c", min=1, max=4096, help="Requests in flight. [default: 64]")] = None,
    per_host: Annotated[Optional[int], typer.Option("--per-host", min=0, max=4096, metavar="N", help="Requests in flight to one host or node (0, the default: no bound beyond --concurrency).")] = None,
    rate: Annotated[Optional[float], typer.Option("--rate", min=0.1, metavar="N", help="At most N requests a second.")] = None,
    timeout: Annotated[Optional[str], typer.Option("--timeout", metavar="DURATION", help="Per request, all of it. [default: 10s]")] = None,
    retries: Annotated[Optional[int], typer.Option("--retries", min=0, max=10, help="Retries on 429, 5xx, timeouts. [default: 2]")] = None,
    hash_body: Annotated[bool, typer.Option("--hash", help="Hash each body (SHA-256).")] = False,
    max_error_rate: Annotated[Optional[float], typer.Option("--max-error-rate", metavar="0..1", help="Exit 1 above this share of errors.")] = None,
    max_sitemap_bytes: Annotated[int, typer.Option("--max-sitemap-bytes", min=1024, help="Decompressed size bound per sitemap.")] = 200 * 1024 * 1024,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, max=64, help="Processes, each warming its share. [default: 1]")] = None,
    lock: Annotated[bool, typer.Option("--lock/--no-lock", help="One warm at a time per state file (exit 4 if held).")] = True,
    resume: Annotated[Optional[int], typer.Option("--resume", metavar="RUN", min=1, max=2**62, help="Continue an interrupted run with its own options.")] = None,
) -> None:
    """Warm caches by GET (bodies streamed and discarded), through the public hostname or pinned to each node.

    A summary follows: requests, status classes, what each node's cache said before warming, bytes, latency percentiles and the commonest errors.

    Exit 1 above --max-error-rate (or when every request failed); 4 when another warm holds the lock; 130 when interrupted, and --resume RUN continues it.
    """
    ctx = current()
    if resume is not None:
        given = [urls, urls_file, sitemap, from_robots, from_purge, stale or None, include, exclude, lastmod_since, limit, shard,
                 nodes, label, region, all_nodes or None, header, accept_encoding, user_agent]
        if any(v for v in given):
            raise UsageError("--resume takes the run's own sources, filters, nodes and variants",
                             hint="give only --resume RUN; engine options (--concurrency, --rate...) may be changed")
    options = {
        "urls": urls or [], "urls_file": urls_file, "sitemaps": sitemap or [], "from_robots": from_robots,
        "from_purge": from_purge, "stale": stale, "within": within, "include": include or [], "exclude": exclude or [], "lastmod_since": lastmod_since,
        "limit": limit, "shard": shard, "headers": list(header or []), "accept_encoding": accept_encoding,
        "user_agent": user_agent, "max_sitemap_bytes": max_sitemap_bytes,
    }
    # engine options given here; a resumed run keeps its own for the rest (a --rate it was started
    # with must not fall away), and anything never given takes its default
    given_engine = {"concurrency": concurrency, "rate": rate, "timeout": timeout, "retries": retries,
                    "hash": hash_body or None, "max_error_rate": max_error_rate, "workers": workers,
                    "per_host": per_host}
    from contextlib import nullcontext

    from edgectl.cache import warm as service

    with service.warm_lock(ctx.state_path()) if lock else nullcontext():
        stored: dict = {}
        if resume is not None:
            record = service.claim_run(ctx.state, resume)
            options = record["options"]
            stored = options.get("engine", {})
            if options.get("urls_file") == "-" or "-" in options.get("sitemaps", []):
                raise UsageError(f"warm run {resume} read its URLs from stdin, which cannot be read again")
            ctx.out.note(f"resuming warm run {resume}")
        else:
            options["nodes"] = _pinned_names(ctx, nodes, label, region, all_nodes)
        engine_options = {key: given_engine[key] if given_engine[key] is not None else stored.get(key, default)
                          for key, default in ENGINE_DEFAULTS.items()}
        options["engine"] = engine_options
        _run(ctx, options, engine_options, resume)


def _pinned_names(ctx, names, labels, region, all_nodes) -> list[str] | None:
    pinned = _nodes(ctx, names, labels, region, all_nodes)
    return [name for name, _ in pinned] if pinned else None


def _plan(ctx, options: dict):
    """Jobs from a run's options: sources, filters, shard, nodes and variants."""
    from itertools import chain

    from edgectl.cache import warm as service
    from edgectl.cli.cdn import _headers
    from edgectl.nodes.inventory import get_nodes

    since = None
    if options.get("lastmod_since"):
        from edgectl.timeutil import from_iso

        text = options["lastmod_since"]
        try:
            since = from_iso(text if "T" in text else text + "T00:00:00Z")
        except ValueError:
            raise UsageError(f"--lastmod-since {text!r} is not an ISO date", hint="e.g. 2026-11-01") from None
    variant_list = service.variants(_headers(options["headers"]) if options["headers"] else {},
                                    _split(options.get("accept_encoding")), _split(options.get("user_agent")))
    pinned = None
    if options.get("nodes"):
        pinned = [(n.name, n.endpoint) for n in get_nodes(ctx.state, options["nodes"])]
    filters = service.Filters(options["include"], options["exclude"], since, options.get("limit"),
                              service.parse_shard(options["shard"]) if options.get("shard") else None,
                              tuple(options["worker"]) if options.get("worker") else None)
    sitemaps = list(options["sitemaps"])
    if options.get("from_robots"):
        sitemaps.extend(service.robots_sitemaps(options["from_robots"]))
    files: list = []
    parts = [_sources(ctx, options["urls"], options.get("urls_file"), sitemaps, options["max_sitemap_bytes"],
                      required=not (options.get("from_purge") or options.get("stale")), files=files)]
    if options.get("from_purge"):
        parts.append(service.from_purge(ctx.state, options["from_purge"]))
    stale_jobs: list = []
    if options.get("stale"):
        from edgectl.parse import parse_duration

        within = parse_duration(options["within"], what="--within") if options.get("within") else 0.0
        # Each stale entry is warmed where it lives and as the variant it is, so it is fresh again
        # afterwards; read now, not lazily, since sources are consumed on another thread.
        stale_jobs = service.stale_jobs(ctx.state, within, [name for name, _ in pinned] if pinned else None,
                                        warn=(lambda text: None) if ctx.quiet else ctx.out.warn)
    elif options.get("within"):
        raise UsageError("--within goes with --stale")
    warn = (lambda text: None) if ctx.quiet else ctx.out.warn
    jobs = service.jobs(filters.apply(service.unique(chain.from_iterable(parts), warn)), pinned, variant_list)
    if stale_jobs:
        jobs = chain(jobs, (job for job in stale_jobs if filters.keeps(job.url)))

    def read() -> float | None:
        """How much of the URL list has been read, when it is one local file and no --limit cuts it short."""
        if len(files) != 1 or len(parts) != 1 or sitemaps or options["urls"] or options.get("limit"):
            return None
        handle, size = files[0]
        try:
            return min(1.0, handle.tell() / size) if size else None
        except (OSError, ValueError):  # closed: read to the end
            return 1.0

    return jobs, variant_list, read


def _run(ctx, options: dict, engine_options: dict, resume: int | None) -> None:
    from edgectl.cache import engine
    from edgectl.cache import warm as service
    from edgectl.parse import parse_duration

    per_request = parse_duration(engine_options["timeout"], what="--timeout")
    if per_request <= 0:
        raise UsageError("--timeout must be more than zero")
    max_error_rate = engine_options["max_error_rate"]
    if max_error_rate is not None and not 0 <= max_error_rate <= 1:
        raise UsageError(f"--max-error-rate must be between 0 and 1, not {max_error_rate}")
    engine_options["concurrency"] = _within_file_limit(ctx, engine_options["concurrency"])
    job_iter, variant_list, read = _plan(ctx, options)
    options["variants"] = [v.name for v in variant_list]
    settings = engine.Settings(concurrency=engine_options["concurrency"], rate=engine_options["rate"],
                               timeout=per_request, retries=engine_options["retries"],
                               hash_body=engine_options["hash"], per_host=engine_options.get("per_host", 0))
    workers = engine_options.get("workers", 1)
    if workers > 1 and (options.get("urls_file") == "-" or "-" in options["sitemaps"]):
        raise UsageError("--workers cannot share stdin", hint="write the URLs to a file and pass --urls-file FILE")
    if resume is None:
        run_id = service.start_run(ctx.state, options)
    else:
        run_id = resume
    before = service.result_count(ctx.state, run_id)
    ctx.out.info(f"warm run {run_id}")
    started = time.monotonic()
    try:
        if workers > 1:
            status = _run_workers(ctx, options, settings, run_id, resume is not None, workers)
        else:
            if resume is not None:
                job_iter = service.skip_finished(job_iter, service.finished_keys(ctx.state, run_id))
            with _progress(ctx, read) as on_progress:
                status, _ = service.execute(ctx.state, run_id, job_iter, settings, on_progress)
    except EdgectlError as error:
        if not isinstance(error, StateError):  # a source that turned out bad: the run failed, and says why
            data = service.summary(ctx.state, run_id)
            data["failure"] = error.message
            service.finish_run(ctx.state, run_id, "failed", data)
        raise
    data = service.summary(ctx.state, run_id)
    data["elapsed_s"] = round(time.monotonic() - started, 3)
    data["requests_this_run"] = data["requests"] - before
    data["requests_per_s"] = (round(data["requests_this_run"] / data["elapsed_s"], 1) if data["elapsed_s"] else None)
    # without a threshold, a run whose every request failed still fails: cron must hear of it
    too_many = (data["error_rate"] > max_error_rate if max_error_rate is not None
                else data["requests"] > 0 and data["errors"] == data["requests"])
    final = "interrupted" if status == "interrupted" else ("failed" if too_many else "completed")
    service.finish_run(ctx.state, run_id, final, data)
    service.record_metrics(ctx.state, run_id)
    if not (ctx.quiet and ctx.out.fmt == "table"):  # cron mails whatever is printed: a good run says nothing
        _show(ctx, run_id, data)
    if final == "interrupted":
        raise Interrupted(f"warm run {run_id} interrupted after {data['requests']} request(s); what was done is recorded",
                          hint=f"continue it: edgectl cache warm --resume {run_id}")
    if too_many:
        limit = f"above {max_error_rate:.2%}" if max_error_rate is not None else "every request failed"
        raise OperationFailed(f"warm run {run_id}: error rate {data['error_rate']:.2%} ({limit})",
                              hint=f"edgectl cache show {run_id} lists the commonest errors")
    if data["requests"] == 0 and not ctx.quiet:
        ctx.out.warn("no URLs were warmed (the sources or filters left none)")


def _within_file_limit(ctx, concurrency: int) -> int:
    """Raise the soft open-file limit as far as allowed; keep concurrency well inside it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = concurrency + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and concurrency > soft - 256:
        allowed = max(1, soft - 256)
        ctx.out.warn(f"--concurrency {concurrency} needs more open files than allowed ({soft}); using {allowed}")
        return allowed
    return concurrency


def _run_workers(ctx, options: dict, settings, run_id: int, resuming: bool, workers: int) -> str:
    """Fork `workers` processes, each warming its share of the URLs into the same run.

    Each child rebuilds the sources itself (no file offsets or SQLite connections are shared
    across fork) and keeps the URLs whose salted hash falls to it. A signal to this process is
    passed on to the children, which stop cleanly like a single run.
    """
    import os
    import signal
    from dataclasses import replace

    from edgectl.cache import warm as service

    # imported once, before the fork, rather than in every worker
    import httptools  # noqa: F401

    import edgectl.cache.status  # noqa: F401
    import edgectl.cache.writer  # noqa: F401

    pids = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                ctx._state = None  # a SQLite connection must not cross a fork: open our own
                if index:
                    ctx.out.quiet = True  # one process reports skipped lines, not every one
                job_iter, _, _ = _plan(ctx, {**options, "worker": [index + 1, workers]})
                if resuming:
                    job_iter = service.skip_finished(job_iter, service.finished_keys(ctx.state, run_id))
                # --concurrency and --rate are for the whole run: each process takes its share
                share = replace(settings, concurrency=max(1, settings.concurrency // workers),
                                rate=settings.rate / workers if settings.rate else None,
                                per_host=max(1, settings.per_host // workers) if settings.per_host else 0)
                status, _ = service.execute(ctx.state, run_id, job_iter, share)
                code = 130 if status == "interrupted" else 0
            except BaseException as exc:  # noqa: BLE001 - reported, then the child exits
                import sys

                sys.stderr.write(f"error: warm worker {index + 1}: {exc}\n")
            finally:
                os._exit(code)
        pids.append(pid)
    interrupted = []

    def forward(signum, _frame):
        interrupted.append(signum)
        for child in pids:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if interrupted or 130 in codes:
        return "interrupted"
    if any(codes):
        raise OperationFailed(f"{sum(1 for c in codes if c)} of {workers} warm workers failed",
                              hint=f"edgectl cache show {run_id}; resume with edgectl cache warm --resume {run_id}")
    return "completed"


def _node_rows(data: dict) -> list[dict]:
    rows = []
    for node, counts in sorted(data["cache_before"].items()):
        total = sum(counts.values())
        rows.append({"node": node, "requests": total, "hit": counts.get("hit", 0), "miss": counts.get("miss", 0),
                     "expired": counts.get("expired", 0),
                     "other": total - counts.get("hit", 0) - counts.get("miss", 0) - counts.get("expired", 0),
                     "hit_ratio": round(counts.get("hit", 0) / total, 3) if total else None})
    return rows


def _show(ctx, run_id: int, data: dict) -> None:
    if ctx.out.fmt in ("json", "jsonl"):
        ctx.out.record({"id": run_id, **data})
        return
    ctx.out.records(_node_rows(data), NODE_COLUMNS, empty="no requests made")
    latency = data.get("latency_ms") or {}
    ctx.out.note(f"warm run {run_id}: {data['requests']} request(s) in {data.get('elapsed_s', 0):.1f}s"
                 + (f" ({data['requests_per_s']:g}/s)" if data.get("requests_per_s") else "")
                 + f", {data['errors']} error(s), {data['bytes']:,} bytes; status "
                 + ", ".join(f"{k} {v}" for k, v in data["status_classes"].items())
                 + (f"; latency p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms, p99 {latency['p99']:.1f} ms"
                    if latency else ""))
    for item in data.get("common_errors", []):
        ctx.out.note(f"  {item['count']} x {item['error']}")
    if data.get("failure"):
        ctx.out.note(f"the run failed: {data['failure']}")


class _progress:
    """A live line on stderr at a terminal (requests/s, hit ratio so far, ETA); nothing otherwise.

    The ETA comes from the number of requests once the sources are read to the end, and before
    that from how much of a single URL file has been read. A sitemap gives none until its end.
    """

    def __init__(self, ctx, read=None):
        self.ctx = ctx
        self.read = read or (lambda: None)
        self.bar = None

    def __enter__(self):
        import sys

        if self.ctx.out.fmt == "table" and sys.stderr.isatty() and not self.ctx.quiet:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                console=self.ctx.out.console(sys.stderr), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("warming")
            return self.update
        return None  # no line to keep up to date: the run skips the work of feeding one

    def update(self, progress) -> None:
        if self.bar is None:
            return
        ratio = f", hit ratio {progress.hits / progress.done:.0%}" if progress.done else ""
        self.bar.update(self.task, description=f"warming: {progress.done:,} done, {progress.rate:,.0f}/s, "
                                               f"{progress.errors:,} errors{ratio}{self.eta(progress)}")

    def eta(self, progress) -> str:
        from edgectl.parse import format_duration

        if progress.total is not None and progress.rate > 0:
            return f", ETA {format_duration(max(1.0, max(0, progress.total - progress.done) / progress.rate))}"
        fraction = self.read()
        if fraction and progress.done:
            elapsed = progress.done / progress.rate if progress.rate else 0
            return f", ETA ~{format_duration(max(1.0, elapsed * (1 - fraction) / fraction))}"
        return ""

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


@app.command("runs")
def runs_list(limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000)] = 20) -> None:
    """Recent warm runs, newest first."""
    from edgectl.cache import warm as service

    ctx = current()
    rows = service.runs(ctx.state, limit)
    for row in rows:
        row.pop("summary")
        row.pop("options")
    ctx.out.records(rows, RUN_COLUMNS, empty="no warm runs yet")


@app.command("show")
def show(run_id: Annotated[int, typer.Argument(metavar="RUN", min=1, max=2**62, help="Run id, from cache runs.")]) -> None:
    """One warm run: its options, and per node what the caches said before warming."""
    from edgectl.cache import warm as service

    ctx = current()
    record = service.get_run(ctx.state, run_id)
    if ctx.out.fmt in ("json", "jsonl"):
        ctx.out.record(record)
        return
    summary = record.pop("summary")
    options = record.pop("options")
    ctx.out.record({**record, "options": options}, RUN_COLUMNS + [Column("options", kind="map")])
    if summary:
        _show(ctx, run_id, summary)


# -- policies and entries ----------------------------------------------------------------------------

policies_app = typer.Typer(help="Cache policies: a TTL and tags for the paths a glob matches.", no_args_is_help=True)
app.add_typer(policies_app, name="policies")

POLICY_COLUMNS = [Column("id", justify="right"), Column("match"), Column("ttl"), Column("tags", kind="list")]
ENTRY_COLUMNS = [
    Column("node"), Column("cache_key", "CACHE KEY"), Column("size", justify="right"), Column("content_type", "TYPE"),
    Column("expires_at", "EXPIRES", kind="time"), Column("expired", kind="bool"), Column("tags", kind="list"),
    Column("access_count", "WARMED", justify="right"), Column("last_accessed", "LAST", kind="time"),
]
STATS_COLUMNS = [Column("node"), Column("entries", justify="right"), Column("bytes", justify="right"),
                 Column("expired", justify="right"), Column("hit_ratio", "HIT RATIO (RECENT RUNS)", justify="right")]


def _policy_row(policy) -> dict:
    from edgectl.parse import format_duration

    return {**policy.to_record(), "ttl": format_duration(policy.ttl_s)}


@policies_app.command("add")
def policies_add(
    match: Annotated[str, typer.Option("--match", metavar="GLOB", help="Path glob, e.g. '/static/*'.")],
    ttl: Annotated[str, typer.Option("--ttl", metavar="DURATION", help="How long an entry stays fresh, e.g. 1d.")],
    tag: Annotated[Optional[list[str]], typer.Option("--tag", metavar="T", help="Tag for matching entries; repeatable.")] = None,
) -> None:
    """Add a policy; the first matching policy (in order added) sets an entry's expiry and tags."""
    from edgectl.cache.entries import add_policy
    from edgectl.parse import check_text, parse_duration

    ctx = current()
    for t in tag or []:
        check_text(t, what="--tag", limit=200)
    policy = add_policy(ctx.state, match, parse_duration(ttl, what="--ttl"), list(tag or []))
    ctx.out.record(_policy_row(policy), POLICY_COLUMNS)


@policies_app.command("list")
def policies_list() -> None:
    """Every policy, in the order they are matched."""
    from edgectl.cache.entries import policies

    ctx = current()
    ctx.out.records([_policy_row(p) for p in policies(ctx.state)], POLICY_COLUMNS, empty="no cache policies")


@policies_app.command("remove")
def policies_remove(which: Annotated[str, typer.Argument(metavar="ID|GLOB", help="The policy's id or its glob.")]) -> None:
    """Remove a policy (entries keep the expiry they were given)."""
    from edgectl.cache.entries import remove_policy

    ctx = current()
    removed = remove_policy(ctx.state, which)
    ctx.out.note(f"removed policy {removed.id} ({removed.match})")


@app.command("entries")
def entries_list(
    node: Annotated[Optional[str], typer.Option("--node", help="One node ('public' for the hostname).")] = None,
    tag: Annotated[Optional[str], typer.Option("--tag")] = None,
    expired: Annotated[bool, typer.Option("--expired", help="Only expired or invalidated entries.")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1_000_000)] = 100,
) -> None:
    """What warming found each node holding: cache key, hash, size, type, expiry, tags."""
    from edgectl.cache.entries import entries

    ctx = current()
    if node not in (None, "public"):
        from edgectl.nodes.inventory import get_node

        get_node(ctx.state, node)  # an unknown name is an error with a suggestion, not an empty list
    ctx.out.records(entries(ctx.state, node=node, tag=tag, expired=expired, limit=limit), ENTRY_COLUMNS,
                    empty="no cache entries recorded (cache warm records them)")


@app.command("stats")
def cache_stats() -> None:
    """Per node: entries, bytes, expired entries, and the hit ratio of the last five warm runs."""
    from edgectl.cache.entries import stats

    ctx = current()
    ctx.out.records(stats(ctx.state), STATS_COLUMNS, empty="no cache entries or warm runs yet")


@app.command("invalidate")
def invalidate(
    tag: Annotated[Optional[list[str]], typer.Option("--tag", metavar="T", help="Entries with this tag; repeatable.")] = None,
    prefix: Annotated[Optional[list[str]], typer.Option("--prefix", metavar="P", help="A path (/docs/) or URL prefix; repeatable.")] = None,
    url: Annotated[Optional[list[str]], typer.Option("--url", metavar="URL", help="One URL; repeatable.")] = None,
    no_purge: Annotated[bool, typer.Option("--no-purge", help="Only mark the entries; purge nothing.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the purge plan; mark and send nothing.")] = False,
) -> None:
    """Mark matching entries invalidated, then purge them through `cdn purge` at the providers serving them.

    The purge names every matching entry's URL (a tag may be edgectl's own, from a policy, which no
    CDN knows) besides the tags and prefixes given. It is planned before anything is marked, so a
    target no provider serves changes nothing.
    """
    from edgectl.cache.entries import mark_invalidated, matching
    from edgectl.cdn.plan import build_targets

    ctx = current()
    if not (tag or prefix or url):
        raise UsageError("nothing to invalidate", hint="give --url, --prefix or --tag")
    found = matching(ctx.state, urls=url or [], prefixes=prefix or [], tags=tag or [])
    known = sorted({f["url"] for f in found} | set(url or []))
    targets = build_targets(known, [], prefix or [], tag or [], [], False)
    plan = None if no_purge else _invalidate_plan(ctx, targets)
    if dry_run:
        if plan is not None:
            from edgectl.cli.cdn import PLAN_COLUMNS, _format_plan

            for provider in plan[1].values():
                provider.close()
            ctx.out.records(_format_plan(plan[0]), PLAN_COLUMNS)
        ctx.out.note(f"dry run: {len(found)} entr{'y' if len(found) == 1 else 'ies'} would be marked invalidated")
        return
    marked = mark_invalidated(ctx.state, urls=url or [], prefixes=prefix or [], tags=tag or [])
    nodes = sorted({f["node"] or "(public)" for f in marked})
    ctx.out.note(f"{len(marked)} entr{'y' if len(marked) == 1 else 'ies'} marked invalidated"
                 + (f" at {', '.join(nodes)}" if nodes else ""))
    if plan is not None:
        _invalidate_purge(ctx, *plan)


def _invalidate_plan(ctx, targets):
    """The purge, planned as `cdn purge` plans it, with the providers mapped by hostname."""
    from edgectl.cdn import purge as service

    plan, providers = service.plan(ctx.config, ctx.state, targets, provider_names=None, all_providers=False,
                                   skip_unsupported=True)
    for line in plan.skipped():
        ctx.out.warn(line)
    return plan, providers


def _invalidate_purge(ctx, plan, providers) -> None:
    """The same journal and executor as `cdn purge`."""
    from edgectl.cdn import journal
    from edgectl.cdn import purge as service
    from edgectl.cdn.execute import Settings
    from edgectl.cli.cdn import _run

    service.prepare(providers)
    record = journal.create(ctx.state, plan, reason="cache invalidate")
    _run(ctx, service, record, providers, Settings())
