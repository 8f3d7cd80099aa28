"""`edgectl cache`: warm caches (every node, every variant) from URL lists and sitemaps, and the runs' records."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Optional

import typer

from edgectl.cli import group_help
from edgectl.cli.context import current
from edgectl.cli.options import Labels
from edgectl.errors import UsageError
from edgectl.output import Column, View

app = typer.Typer(help=group_help("cache"), no_args_is_help=True, add_completion=False)

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


@app.command("warm")
def warm(
    urls: Annotated[Optional[list[str]], typer.Option("--url", metavar="URL", help="A URL to warm; repeatable.")] = None,
    urls_file: Annotated[Optional[str], typer.Option("--urls-file", metavar="FILE|-", help="URLs one per line; '-' reads stdin. Streamed.")] = None,
    sitemap: Annotated[Optional[list[str]], typer.Option("--sitemap", metavar="URL|FILE|-", help="A sitemap: XML or an index, text (a URL a line), RSS 2.0 or Atom, told by its content; gzip too; repeatable; '-' reads stdin.")] = None,
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
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", "-c", min=1, max=4096, help="Requests in flight. \\[default: 64]")] = None,
    per_host: Annotated[Optional[int], typer.Option("--per-host", min=0, max=4096, metavar="N", help="Requests in flight to one host or node (0, the default: no bound beyond --concurrency).")] = None,
    rate: Annotated[Optional[float], typer.Option("--rate", min=0.1, metavar="N", help="At most N requests a second.")] = None,
    timeout: Annotated[Optional[str], typer.Option("--timeout", metavar="DURATION", help="Per request, all of it. \\[default: 10s]")] = None,
    retries: Annotated[Optional[int], typer.Option("--retries", min=0, max=10, help="Retries on 429, 5xx, timeouts. \\[default: 2]")] = None,
    hash_body: Annotated[bool, typer.Option("--hash", help="Hash each body (SHA-256).")] = False,
    max_error_rate: Annotated[Optional[float], typer.Option("--max-error-rate", metavar="0..1", help="Exit 1 above this share of errors.")] = None,
    max_sitemap_bytes: Annotated[int, typer.Option("--max-sitemap-bytes", min=1024, help="Decompressed size bound per sitemap.")] = 200 * 1024 * 1024,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, max=64, help="Processes, each warming its share. \\[default: 1]")] = None,
    lock: Annotated[bool, typer.Option("--lock/--no-lock", help="One warm at a time per state file (exit 4 if held).")] = True,
    resume: Annotated[Optional[int], typer.Option("--resume", metavar="RUN", min=1, max=2**62, help="Continue an interrupted run with its own options.")] = None,
) -> None:
    """Warm caches by GET (bodies streamed and discarded), through the public hostname or pinned to each node.

    A summary follows: requests, status classes, what each node's cache said before warming, bytes, latency percentiles and the commonest errors.

    Exit 1 above --max-error-rate (or when every request failed); 4 when another warm holds the lock; 130 when interrupted, and --resume RUN continues it.
    """
    ctx = current()
    warn = (lambda text: None) if ctx.quiet else ctx.out.warn  # --quiet: errors only, even for skipped lines
    engine_given = {"concurrency": concurrency, "rate": rate, "timeout": timeout, "retries": retries,
                    "hash": hash_body or None, "max_error_rate": max_error_rate, "workers": workers,
                    "per_host": per_host}
    if resume is not None:
        given = [urls, urls_file, sitemap, from_robots, from_purge, stale or None, include, exclude, lastmod_since, limit, shard,
                 nodes, label, region, all_nodes or None, header, accept_encoding, user_agent]
        if any(v for v in given):
            raise UsageError("--resume takes the run's own sources, filters, nodes and variants",
                             hint="give only --resume RUN; engine options (--concurrency, --rate...) may be changed")
    from contextlib import nullcontext

    from edgectl.cache import runs, warm as service

    with runs.warm_lock(ctx.state_path()) if lock else nullcontext():
        if resume is not None:
            request = service.resumed_request(ctx.state, resume, engine_given)
            ctx.out.note(f"resuming warm run {resume}")
        else:
            from edgectl.parse import parse_labels

            pinned = service.pinned_nodes(ctx.state, _split(nodes) or None, parse_labels(label), region, all_nodes)
            request = service.WarmRequest(
                urls=tuple(urls or ()), urls_file=urls_file, sitemaps=tuple(sitemap or ()), from_robots=from_robots,
                from_purge=from_purge, stale=stale, within=within, include=tuple(include or ()),
                exclude=tuple(exclude or ()), lastmod_since=lastmod_since, limit=limit, shard=shard,
                headers=tuple(header or ()), accept_encoding=accept_encoding, user_agent=user_agent,
                max_sitemap_bytes=max_sitemap_bytes, nodes=pinned,
                engine=service.EngineOptions.merged(engine_given))
        result = service.run(ctx.state, request, warn, resume=resume, progress=lambda read: _progress(ctx, read))
    ctx.out.show(result.to_record(), WARM_VIEW)
    failure = result.failure()
    if failure is not None:
        raise failure


def _split(values: Optional[str]) -> list[str]:
    return [v.strip() for v in (values or "").split(",") if v.strip()]


def _node_rows(data: dict) -> list[dict]:
    from edgectl.names import natural_key

    rows = []
    for node, counts in sorted(data["cache_before"].items(), key=lambda item: natural_key(item[0])):
        total = sum(counts.values())
        rows.append({"node": node, "requests": total, "hit": counts.get("hit", 0), "miss": counts.get("miss", 0),
                     "expired": counts.get("expired", 0),
                     "other": total - counts.get("hit", 0) - counts.get("miss", 0) - counts.get("expired", 0),
                     "hit_ratio": round(counts.get("hit", 0) / total, 3) if total else None})
    return rows


def _summary_lines(data: dict) -> list[str]:
    latency = data.get("latency_ms") or {}
    lines = [f"warm run {data['id']}: {data['requests']} request(s) in {data.get('elapsed_s', 0):.1f}s"
             + (f" ({data['requests_per_s']:g}/s)" if data.get("requests_per_s") else "")
             + f", {data['errors']} error(s), {data['bytes']:,} bytes; status "
             + ", ".join(f"{k} {v}" for k, v in data["status_classes"].items())
             + (f"; latency p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms, p99 {latency['p99']:.1f} ms"
                if latency else "")]
    lines.extend(f"  {item['count']} x {item['error']}" for item in data.get("common_errors", []))
    if data.get("failure"):
        lines.append(f"the run failed: {data['failure']}")
    return lines


SUMMARY_VIEW = View(NODE_COLUMNS, rows=_node_rows, notes=_summary_lines, empty="no requests made")
WARM_VIEW = replace(SUMMARY_VIEW, quiet=True)  # `cache show` draws a run's summary even with --quiet


class _progress:
    """A live line on stderr at a terminal (requests/s, hit ratio so far, ETA); nothing otherwise."""

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
        from edgectl.cache.warm import eta_seconds
        from edgectl.parse import format_duration

        ratio = f", hit ratio {progress.hits / progress.done:.0%}" if progress.done else ""
        eta = eta_seconds(progress, self.read())
        left = f", ETA {'~' if eta[1] else ''}{format_duration(eta[0])}" if eta else ""
        self.bar.update(self.task, description=f"warming: {progress.done:,} done, {progress.rate:,.0f}/s, "
                                               f"{progress.errors:,} errors{ratio}{left}")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


@app.command("runs")
def runs_list(limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000)] = 20) -> None:
    """Recent warm runs, newest first."""
    from edgectl.cache import runs

    ctx = current()
    rows = runs.runs(ctx.state, limit)
    for row in rows:
        row.pop("summary")
        row.pop("options")
    ctx.out.show(rows, View(RUN_COLUMNS, empty="no warm runs yet"))


@app.command("show")
def show(run_id: Annotated[int, typer.Argument(metavar="RUN", min=1, max=2**62, help="Run id, from cache runs.")]) -> None:
    """One warm run: its options, and per node what the caches said before warming."""
    from edgectl.cache import runs

    ctx = current()
    ctx.out.show(runs.get_run(ctx.state, run_id), RUN_VIEW)


def _draw_run(out, record: dict) -> None:
    """The run's fields, its options last, then its summary as `cache warm` shows it."""
    fields = {k: v for k, v in record.items() if k not in ("summary", "options")}
    out.record({**fields, "options": record["options"]}, RUN_COLUMNS + [Column("options", kind="map")])
    if record["summary"]:
        out.show({"id": record["id"], **record["summary"]}, SUMMARY_VIEW)


RUN_VIEW = View(draw=_draw_run)


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
    ctx.out.show(_policy_row(policy), View(POLICY_COLUMNS))


@policies_app.command("list")
def policies_list() -> None:
    """Every policy, in the order they are matched."""
    from edgectl.cache.entries import policies

    ctx = current()
    ctx.out.show([_policy_row(p) for p in policies(ctx.state)], View(POLICY_COLUMNS, empty="no cache policies"))


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
    ctx.out.show(entries(ctx.state, node=node, tag=tag, expired=expired, limit=limit),
                 View(ENTRY_COLUMNS, empty="no cache entries recorded (cache warm records them)"))


@app.command("stats")
def cache_stats() -> None:
    """Per node: entries, bytes, expired entries, and the hit ratio of the last five warm runs."""
    from edgectl.cache.entries import stats

    ctx = current()
    ctx.out.show(stats(ctx.state), View(STATS_COLUMNS, empty="no cache entries or warm runs yet"))


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
    from edgectl.cache import invalidate as service

    ctx = current()
    if not (tag or prefix or url):
        raise UsageError("nothing to invalidate", hint="give --url, --prefix or --tag")
    invalidation = service.plan_invalidation(ctx.config, ctx.state, url or [], prefix or [], tag or [],
                                             purge=not no_purge)
    for line in invalidation.skipped():
        ctx.out.warn(line)
    if dry_run:
        invalidation.close()
        if invalidation.plan is not None:
            from edgectl.cli.purging import PLAN_COLUMNS, plan_rows

            ctx.out.show(plan_rows(invalidation.plan.to_record()), View(PLAN_COLUMNS))
        found = invalidation.entries
        ctx.out.note(f"dry run: {len(found)} entr{'y' if len(found) == 1 else 'ies'} would be marked invalidated")
        return
    marked = service.mark_entries(ctx.state, invalidation)
    nodes = sorted({f["node"] or "(public)" for f in marked})
    ctx.out.note(f"{len(marked)} entr{'y' if len(marked) == 1 else 'ies'} marked invalidated"
                 + (f" at {', '.join(nodes)}" if nodes else ""))
    record = service.journal_purge(ctx.state, invalidation)
    if record is not None:
        from edgectl.cdn.execute import Settings
        from edgectl.cli import purging

        purging.run(ctx, record, invalidation.providers, Settings())
