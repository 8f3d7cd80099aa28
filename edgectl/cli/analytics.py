"""`edgectl analytics`: the metrics history: ingest and pull, percentiles and charts over any window, a report."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgectl.cli import group_help
from edgectl.cli.alerts import app as alerts_app
from edgectl.cli.context import current
from edgectl.cli.options import SinceWindow, Timeout, overall_timeout, since_window
from edgectl.errors import UsageError
from edgectl.output import Column, View

app = typer.Typer(help=group_help("analytics"), no_args_is_help=True, add_completion=False)
app.add_typer(alerts_app, name="alerts")

INGEST_COLUMNS = [Column("samples", justify="right"), Column("series", justify="right"),
                  Column("rows", justify="right"), Column("bad", justify="right")]


def _ingest_lines(record: dict) -> list[str]:
    lines = [f"ingested {record['samples']:,} sample(s) into {record['series']:,} series"
             + (f"; {record['bad']:,} bad row(s) skipped" if record["bad"] else "")]
    return lines + [f"  {p}" for p in record["problems"]]


@app.command("ingest")
def analytics_ingest(
    file: Annotated[str, typer.Argument(metavar="FILE|-", help="Samples, one a row; '-' reads stdin.")],
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="csv|jsonl", help="csv (with a header) or jsonl.")] = "csv",
) -> None:
    """Add samples (real-user measurements, logs) to the history.

    Columns: time, metric, value, unit, node; optional country, region, provider, labels, kind (histogram or gauge).
    Bad rows are counted and named by line and the good ones kept; a file with no good row is exit 2.
    """
    import sys

    from edgectl.analytics.retention import Retention
    from edgectl.analytics.samples import READERS, ReadReport
    from edgectl.analytics.store import ingest

    ctx = current()
    if fmt not in READERS:
        raise UsageError(f"--format {fmt!r}: csv or jsonl")
    retention = Retention.from_config(ctx.config)
    report = ReadReport()
    try:
        handle = sys.stdin if file == "-" else open(file, encoding="utf-8", newline="")
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        result = ingest(ctx.state, READERS[fmt](handle, report), retention=retention)
    except UnicodeDecodeError:
        raise UsageError(f"{file} is not UTF-8 text") from None
    finally:
        if handle is not sys.stdin:
            handle.close()
    record = {**result.to_record(), "rows": report.rows, "bad": report.bad, "problems": report.problems}
    if report.bad and not result.samples:
        raise UsageError(f"{file}: no sample could be read ({report.problems[0] if report.problems else 'empty'})",
                         hint="columns: time, metric, value, unit, node; optional country, region, provider, labels, kind")
    ctx.out.show(record, View(INGEST_COLUMNS, rows=lambda r: [r], notes=_ingest_lines))


PULL_COLUMNS = [Column("provider"), Column("kind"), Column("status", kind="status"), Column("start"), Column("end"),
                Column("received", justify="right"), Column("stored", justify="right"),
                Column("present", justify="right"), Column("requests", justify="right"), Column("error")]


def _pull_notes(record: dict) -> list[str]:
    lines = [f"{row['provider']}: {note}" for row in record["providers"] for note in row["notes"]]
    return lines + [f"pulled {record['stored']:,} sample(s); {record['present']:,} already in the history"]


@app.command("pull")
def analytics_pull(
    provider: Annotated[Optional[list[str]], typer.Option("--provider", "-p", metavar="NAME", help="Pull this provider; repeatable.")] = None,
    all_providers: Annotated[bool, typer.Option("--all", help="Pull every provider with the analytics capability.")] = False,
    since: SinceWindow = "24h",
    timeout: Timeout = "10m",
) -> None:
    """Pull the providers' analytics (requests, hits, bytes, errors, edge latency) into the history.

    Idempotent: each figure is stored once, so pulling a window again (or two pulls at once) adds
    only what was not there. Figures newer than a provider's settle time are left for the next pull.
    Exit 0 when every provider was pulled, 1 when one failed (the others are still pulled).
    """
    from edgectl.analytics.pull import pull
    from edgectl.errors import OperationFailed
    from edgectl.parse import parse_duration

    ctx = current()
    if bool(provider) == all_providers:
        raise UsageError("name the providers to pull with --provider NAME, or pull them all with --all")
    seconds = parse_duration(since, what="--since")
    report = pull(ctx.state, ctx.config, provider or None, seconds, timeout_s=overall_timeout(timeout))
    record = report.to_record()
    ctx.out.show(record, View(PULL_COLUMNS, rows=lambda r: r["providers"], notes=_pull_notes, quiet=True))
    if not report.ok:
        failed = report.failed
        raise OperationFailed(f"{len(failed)} of {len(report.providers)} provider(s) failed: "
                              + "; ".join(f"{p.provider}: {p.error}" for p in failed),
                              hint="the others were pulled; pulling again adds only what is missing")


def _chart_width() -> int:
    """Columns a chart may use: the terminal's, else $COLUMNS, else 80."""
    import os
    import shutil
    import sys

    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    try:
        return max(10, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return 80


def _draw_chart(renderer, chart) -> None:
    """A chart under a table, on stdout, in colour only where the renderer's console has it."""
    import sys

    from rich.text import Text

    from edgectl.analytics.charts import terminal_chart

    console = renderer.console(sys.stdout)
    console.print()
    for line in terminal_chart(chart, _chart_width()):
        text = Text()
        for segment in line:
            text.append(segment.text, style=segment.style or None)
        console.print(text, soft_wrap=True)


def _charted(view: View, make_chart) -> View:
    """`view`'s table with a chart beneath it: make_chart(rows, width) -> Chart, called only for a table
    with rows, so json, jsonl and csv carry the data alone and no series is read for them."""
    def draw(renderer, rows) -> None:
        if view.draw is not None:
            view.draw(renderer, rows)
        else:
            renderer.records(rows, list(view.columns), empty=view.empty)
        if rows:
            _draw_chart(renderer, make_chart(rows, _chart_width()))

    return View(view.columns, empty=view.empty, draw=draw)


@app.command("latency")
def analytics_latency(
    by: Annotated[str, typer.Option("--by", metavar="node|region|country|provider", help="Group by this.")] = "node",
    since: SinceWindow = "24h",
    percentiles: Annotated[Optional[str], typer.Option("--percentiles", metavar="50,95,99", help="Which percentiles.")] = None,
    chart: Annotated[bool, typer.Option("--chart", help="Draw p95 over time per group under the table (the highest "
                                                        "percentile asked for when p95 is not).")] = False,
) -> None:
    """Latency percentiles per node, region, country or provider, from the rollups (within about 0.5%).

    Every record has the same fields in every format: the group, samples, the percentiles, mean, min,
    max, unit and source. `source: history` rows come from the rollups; percentiles a provider computed
    itself (pulled) come as their own rows, `source: provider`: the mean of its per-minute figures over
    the window, as they cannot be merged (no mean, min or max).
    """
    from edgectl.analytics.queries import (PercentileRequest, field_name, parse_percentiles, percentile_fields,
                                           percentiles_by, provider_percentiles)

    ctx = current()
    wanted = parse_percentiles(percentiles)
    start, end = since_window(since)
    request = PercentileRequest("latency", by, start, end, wanted)
    rows = percentiles_by(ctx.state, request) + provider_percentiles(ctx.state, request)
    kinds = {"samples": Column("samples", justify="right"), "unit": Column("unit"), "source": Column("source"),
             **{field_name(p): Column(field_name(p), field_name(p).upper(), kind="ms", justify="right")
                for p in wanted},
             **{name: Column(name, kind="ms", justify="right") for name in ("mean", "min", "max")}}
    columns = [kinds.get(name, Column(name)) for name in percentile_fields(by, wanted)]
    empty = f"no latency samples in the last {since}"
    shown = [c for c in columns if c.key != "unit"]  # each figure of the table carries its unit
    view = View(columns, empty=empty, draw=lambda renderer, rs: renderer.records(rs, shown, empty=empty))
    if chart:
        charted = 95.0 if 95.0 in wanted else max(wanted)

        def make_chart(shown: list[dict], width: int):
            from edgectl.analytics.charts import latency_chart, plot_columns
            from edgectl.analytics.trends import CHART_POINTS, choose_step, latency_trend, ordered

            names = [r[by] for r in shown]
            step = choose_step(start, end, min(CHART_POINTS, plot_columns(names, width)))
            series = latency_trend(ctx.state, by=by, start_ms=start, end_ms=end, step_ms=step, percentile=charted)
            return latency_chart(f"{field_name(charted)} latency by {by}, last {since}", ordered(series, names),
                                 target=ctx.config.setting("analytics.latency_target") * 1000, step_ms=step,
                                 start_ms=start, end_ms=end)

        view = _charted(view, make_chart)
    ctx.out.show(rows, view)


def _empty(since: str, what: str) -> str:
    return f"no samples in the last {since} ({what})"


def _heading(renderer, title: str) -> None:
    import sys

    from rich.text import Text

    renderer.console(sys.stdout).print(Text(title, style="bold"))


def _sections(renderer, parts: list[tuple], captions: dict[int, str] | None = None) -> None:
    """Titled tables one under another, each (title, rows, columns, the line for when it has no rows);
    captions: a line under the table of that part."""
    import sys

    from rich.text import Text

    console = renderer.console(sys.stdout)
    for n, (title, rows, columns, empty) in enumerate(parts):
        if n:
            console.print()
        _heading(renderer, title)
        caption = (captions or {}).get(n)
        console.print(renderer.table(rows, columns, caption=caption) if rows else Text(f"  {empty}", style="dim"))


def _trimmed(steps: list[dict]) -> tuple[list[dict], int]:
    """The steps from the first with samples to the last, and how many were left out around them: a
    window that the history fills only at its end does not open with rows of nothing."""
    def held(step: dict) -> bool:
        return bool(step["requests"] or step["hits"] or step["bytes"])

    full = [n for n, step in enumerate(steps) if held(step)]
    if not full:
        return steps, 0
    kept = steps[full[0]:full[-1] + 1]
    return kept, len(steps) - len(kept)


def _flag(below: bool, ratio) -> str:
    return "no samples" if ratio is None else "below target" if below else "ok"


def _hit_columns(first: Column) -> list[Column]:
    return [first, Column("requests", justify="right"), Column("hits", justify="right"),
            Column("misses", justify="right"), Column("hit_ratio", "HIT RATIO", kind="ratio", justify="right"),
            Column("bytes", kind="bytes", justify="right"), Column("status", kind="status")]


@app.command("cache")
def analytics_cache(
    by: Annotated[str, typer.Option("--by", metavar="node|provider|region|prefix", help="Group by this.")] = "node",
    since: SinceWindow = "24h",
    step: Annotated[Optional[str], typer.Option("--step", metavar="DURATION", help="The step of the series over time, in whole minutes. \\[default: a round step, at most 30 of them]")] = None,
    chart: Annotated[bool, typer.Option("--chart", help="Draw the hit ratio over time per group under the tables, "
                                                        "against the target.")] = False,
) -> None:
    """Cache hit ratio (hits over requests) per node, provider, region or path prefix, and over time, against the
    target.

    The target is analytics.hit_ratio_target in the config (default 0.9); groups below it are flagged.
    The table over time starts at the first step with samples and ends at the last; -o json has every step.
    """
    from edgectl.analytics.hitratio import CacheRequest, hit_ratios
    from edgectl.parse import format_duration, parse_duration

    ctx = current()
    start, end = since_window(since)
    step_ms = None if step is None else round(parse_duration(step, what="--step") * 1000)
    target = ctx.config.setting("analytics.hit_ratio_target")
    record = hit_ratios(ctx.state, CacheRequest(by, start, end, step_ms, target)).to_record()
    empty = _empty(since, "analytics cache reads the requests and cache.hits metrics")
    group_columns = _hit_columns(Column(by))
    step_columns = [Column("at", "STEP")] + _hit_columns(Column("at"))[1:]

    def flagged(rows: list[dict]) -> list[dict]:
        return [{**r, "status": _flag(r["below_target"], r["hit_ratio"])} for r in rows]

    def draw(renderer, r: dict) -> None:
        if not r["groups"]:
            renderer.note(empty)
            return
        steps, left_out = _trimmed([{**s, "at": s["start"].strftime("%Y-%m-%d %H:%M")} for s in r["steps"]])
        _sections(renderer, [
            (f"hit ratio by {by}, last {since} (target {target:.1%})", flagged(r["groups"]), group_columns, empty),
            (f"hit ratio over time, every {format_duration(r['step_s'])}", flagged(steps), step_columns, empty)],
            captions={1: f"{left_out} step(s) without samples not shown (before the first with samples and after "
                         "the last; -o json has every step)"} if left_out else None)
        if chart:
            _draw_chart(renderer, hit_ratio_chart([g[by] for g in r["groups"]], _chart_width()))

    def hit_ratio_chart(names: list[str], width: int):
        from edgectl.analytics.charts import plot_columns, ratio_chart
        from edgectl.analytics.trends import CHART_POINTS, choose_step, hit_ratio_trend, ordered

        chart_step = choose_step(start, end, min(CHART_POINTS, plot_columns(names, width)))
        series = hit_ratio_trend(ctx.state, by=by, start_ms=start, end_ms=end, step_ms=chart_step)
        return ratio_chart(f"hit ratio by {by}, last {since}", ordered(series, names), target=target,
                           step_ms=chart_step, start_ms=start, end_ms=end)

    def notes(r: dict) -> list[str]:
        if not r["groups"]:
            return []
        below = [g[by] for g in r["groups"] if g["below_target"]]
        return [f"hit ratio {r['hit_ratio']:.1%} over the last {since}: "
                + ("below" if r["below_target"] else "at or above") + f" the {target:.1%} target"] + (
            [f"{len(below)} of {len(r['groups'])} below the target: {', '.join(below[:10])}"] if below else [])

    ctx.out.show(record, View(group_columns, rows=lambda r: [{k: v for k, v in g.items() if k != "steps"}
                                                              for g in r["groups"]], draw=draw, notes=notes))


USAGE_COLUMNS = [Column("node"), Column("metric"), Column("unit"), Column("samples", justify="right"),
                 Column("avg", kind="decimal", justify="right"), Column("p95", "P95", kind="decimal", justify="right"),
                 Column("max", kind="decimal", justify="right")]


@app.command("usage")
def analytics_usage(since: SinceWindow = "24h") -> None:
    """Resource use per node (cpu, memory, disk, network): average, p95 and max over the window."""
    from edgectl.analytics.usage import resource_usage

    ctx = current()
    start, end = since_window(since)
    rows = resource_usage(ctx.state, start, end)
    ctx.out.show(rows, View(USAGE_COLUMNS, empty=_empty(since, "analytics usage reads cpu, memory, disk and network")))


def _latency_columns(first: str) -> list[Column]:
    return [Column(first), Column("samples", justify="right"), Column("p50", "P50", kind="ms", justify="right"),
            Column("p95", "P95", kind="ms", justify="right")]


TOP_SECTIONS = [
    ("slowest_nodes", "slowest nodes (latency p95)", _latency_columns("node") + [Column("max", kind="ms", justify="right")]),
    ("slowest_regions", "slowest regions (latency p95)", _latency_columns("region") + [Column("max", kind="ms", justify="right")]),
    ("lowest_hit_ratio_regions", "regions with the lowest hit ratio", _hit_columns(Column("region"))[:5]),
    ("most_missed_prefixes", "most missed paths (requests less hits, by prefix)",
     [Column("misses", justify="right")] + [c for c in _hit_columns(Column("prefix"))[:5] if c.key != "misses"]),
    ("most_missed_urls", "most missed URLs in cache warms (miss or expired)",
     [Column("url"), Column("misses", justify="right"), Column("fetches", justify="right"),
      Column("hits", justify="right"), Column("hit_ratio", kind="ratio", justify="right"),
      Column("nodes", justify="right"), Column("last_fetched", kind="time")]),
]


@app.command("top")
def analytics_top(
    since: SinceWindow = "24h",
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many in each list.")] = 10,
) -> None:
    """The worst of the window: slowest nodes and regions, lowest hit ratios, most missed paths and URLs."""
    from edgectl.analytics.top import TopRequest, top_lists

    ctx = current()
    start, end = since_window(since)
    record = top_lists(ctx.state, TopRequest(start, end, limit))
    empty = _empty(since, "none in this list")

    def draw(renderer, r: dict) -> None:
        if not any(r.values()):
            renderer.note(_empty(since, "analytics top reads latency, requests, cache.hits and cache warms"))
            return
        _sections(renderer, [(title, r[key], columns, empty) for key, title, columns in TOP_SECTIONS])

    def rows(r: dict) -> list[dict]:
        return [{"list": key, "rank": n, **row} for key, _, _ in TOP_SECTIONS for n, row in enumerate(r[key], 1)]

    ctx.out.show(record, View(rows=rows, draw=draw))


PERFORMANCE_PANELS = {  # names are never broken across lines (wrap=False), however narrow the panel
    "latency": ("latency by region", [Column("region", wrap=False), Column("samples", justify="right"),
                                      Column("p50", "P50", kind="ms", justify="right"),
                                      Column("p95", "P95", kind="ms", justify="right"),
                                      Column("p99", "P99", kind="ms", justify="right")]),
    "hit_ratio": ("hit ratio", [c for c in _hit_columns(Column("node", wrap=False))
                                if c.key not in ("misses", "bytes")]),
    "nodes": ("failing and stale nodes", [Column("name", wrap=False), Column("status", kind="status", wrap=False),
                                          Column("stale", kind="bool"), Column("region", wrap=False),
                                          Column("last_heartbeat", "HEARTBEAT", kind="time"),
                                          Column("last_error", "LAST ERROR")]),
    "alerts": ("firing alerts", [Column("name", wrap=False), Column("severity", kind="status"),
                                 Column("labels", kind="map"), Column("value", justify="right"),
                                 Column("since", kind="time")]),
}


def _performance_parts(r: dict, since: str) -> list[tuple[str, list[dict], list[Column], str]]:
    """The screen's four parts: (title, rows, columns, the line for none)."""
    hit = r["hit_ratio"]
    rows = [{"node": "all", **{k: v for k, v in hit.items() if k not in ("by_node", "target")}}] + hit["by_node"]
    rows = [{**row, "status": _flag(row["below_target"], row["hit_ratio"])} for row in rows] if hit["by_node"] else []
    nodes = r["nodes"]
    counts = ", ".join(f"{n} {status}" for status, n in sorted(nodes["by_status"].items()))
    alerts = r["alerts"]
    alert_columns = [c for c in PERFORMANCE_PANELS["alerts"][1] if any(c.key in a for a in alerts["firing"])] or [
        Column(k) for k in (alerts["firing"] or [{}])[0]]  # what the alert records hold, where they differ
    title = {key: title for key, (title, _) in PERFORMANCE_PANELS.items()}
    columns = {key: columns for key, (_, columns) in PERFORMANCE_PANELS.items()}
    return [
        (f"{title['latency']}, last {since}", r["latency_by_region"], columns["latency"],
         f"no latency samples in the last {since}"),
        (f"{title['hit_ratio']}, last {since} (target {hit['target']:.1%})", rows, columns["hit_ratio"],
         f"no requests or cache.hits samples in the last {since}"),
        (f"{title['nodes']} ({nodes['total']} nodes: {counts or 'none'})", nodes["troubled"], columns["nodes"],
         "none: every node is reporting" if nodes["total"] else "no nodes in the inventory"),
        (title["alerts"], alerts["firing"], alert_columns,
         "none firing" if alerts["rules"] else "no alert rules"),
    ]


PANEL_FRAME = 4  # a panel's borders and padding, in columns


def _performance_screen(renderer, console, r: dict, since: str, caption: str):
    """The parts as one screen under a caption: four panels two by two (a rich Layout filling the
    terminal) where each panel's table fits in half the width, else one under another, each as tall
    as it needs, so that no table is squeezed into breaking its names."""
    from rich.console import Group
    from rich.layout import Layout
    from rich.panel import Panel
    from rich.text import Text

    parts = _performance_parts(r, since)
    bodies = [renderer.table(rows, columns) if rows else Text(empty, style="dim") for _, rows, columns, empty in parts]
    # a table wants its widest row and a title its length; a line of text may wrap between its words
    wanted = max(max(len(title) + 2, console.measure(body).maximum if rows else 0) + PANEL_FRAME
                 for body, (title, rows, _, _) in zip(bodies, parts))
    panels = [Panel(body, title=title, title_align="left") for body, (title, _, _, _) in zip(bodies, parts)]
    if wanted > console.width // 2:
        return Group(Text(caption, style="bold"), *panels)
    screen = Layout()
    screen.split_column(Layout(Text(caption, style="bold"), size=1), Layout(name="upper"), Layout(name="lower"))
    screen["upper"].split_row(*(Layout(p) for p in panels[:2]))
    screen["lower"].split_row(*(Layout(p) for p in panels[2:]))
    return screen


@app.command("performance")
def analytics_performance(
    since: SinceWindow = "1h",
    watch: Annotated[bool, typer.Option("--watch", help="Refresh the screen until Ctrl-C (at a terminal).")] = False,
    interval: Annotated[str, typer.Option("--interval", metavar="DURATION", help="Time between refreshes with --watch.")] = "5s",
    count: Annotated[Optional[int], typer.Option("--count", min=1, help="Stop after this many refreshes.")] = None,
) -> None:
    """One screen: latency by region, the hit ratio, failing and stale nodes, firing alerts.

    --watch redraws it every --interval until Ctrl-C or --count refreshes.
    Without a terminal, or with -o json, it is printed once.
    """
    import time

    from edgectl.analytics.performance import performance_snapshot
    from edgectl.parse import format_duration, parse_duration

    ctx = current()
    pause = parse_duration(interval, what="--interval")
    if pause <= 0:
        raise UsageError("--interval must be more than zero")
    since_window(since)  # a bad --since is reported before anything is drawn

    def snapshot() -> dict:
        start, end = since_window(since)
        return performance_snapshot(ctx.state, ctx.config, start, end).to_record()

    if not (watch and ctx.out.interactive):
        ctx.out.show(snapshot(), View(draw=lambda renderer, r: _sections(renderer, _performance_parts(r, since)),
                                      rows=lambda r: [{"part": key, **row} for key, (_, rows, _, _) in
                                                      zip(PERFORMANCE_PANELS, _performance_parts(r, since))
                                                      for row in rows]))
        return
    from rich.live import Live

    console = ctx.out.console()
    with Live(console=console, auto_refresh=False) as live:
        rounds = 0
        while True:
            record = snapshot()
            rounds += 1
            caption = (f"edgectl analytics performance, last {since}: {record['at']:%H:%M:%S}, "
                       f"every {format_duration(pause)}; Ctrl-C to stop")
            live.update(_performance_screen(ctx.out, console, record, since, caption), refresh=True)
            if count is not None and rounds >= count:
                return
            time.sleep(pause)


@app.command("recommend")
def analytics_recommend(since: SinceWindow = "7d") -> None:
    """What the history suggests changing, each with its evidence in numbers.

    Nodes to add where clients are slow and far, weight to shift off busy nodes, path prefixes to
    cache or warm, nodes that serve almost nothing, providers whose 5xx rate spiked.
    """
    from edgectl.analytics.recommend import Targets, recommend

    ctx = current()
    start, end = since_window(since)
    found = recommend(ctx.state, Targets.from_config(ctx.config), start, end)
    ctx.out.show([r.to_record() for r in found], View(
        [Column("kind"), Column("subject"), Column("action")],
        empty=f"nothing to recommend from the last {since}"))


@app.command("report")
def analytics_report(
    html: Annotated[Optional[str], typer.Option("--html", metavar="FILE", help="Write the report here (HTML).")] = None,
    since: SinceWindow = "7d",
) -> None:
    """One self-contained HTML page: latency and cache hit ratio over time, node health, and alerts.

    Inline SVG charts and styles: no script, and nothing fetched, so it opens anywhere and can be mailed.
    """
    from pathlib import Path

    from edgectl.analytics.report import build_report, write_report
    from edgectl.analytics.report_html import render_report

    ctx = current()
    if not html:
        raise UsageError("name the file to write: --html FILE", hint="e.g. edgectl analytics report --html report.html")
    start, end = since_window(since)
    report = build_report(ctx.state, ctx.config, start_ms=start, end_ms=end, since=since)
    path = write_report(Path(html), render_report(report))
    record = {"path": str(path), **report.to_record()}
    ctx.out.show(record, View(text=lambda r: r["path"], notes=_report_lines))


def _report_lines(record: dict) -> list[str]:
    if record["empty"]:
        return [f"no metrics in the window: the report says so ({record['path']})"]
    charts = record["charts"]
    return [f"report written: {len(charts['latency_p95'])} region(s) of latency, "
            f"{len(charts['hit_ratio'])} hit-ratio line(s), {len(record['nodes'])} node(s)"]


EXPORT_FORMATS = ("prometheus", "csv", "jsonl")


def _export_rows(fmt: str, since: str, step: Optional[str], metrics: list[str], percentiles: Optional[str],
                 out: Optional[str]) -> None:
    import sys

    from edgectl.analytics.export import RowsRequest, check_metrics, export_rows, write_rows, write_rows_file
    from edgectl.analytics.queries import parse_percentiles
    from edgectl.parse import parse_duration

    ctx = current()
    step_ms = None
    if step is not None:
        step_ms = int(parse_duration(step, what="--step") * 1000)
        if step_ms <= 0 or step_ms % 60_000:
            raise UsageError(f"--step {step}: a whole number of minutes", hint="e.g. --step 1m, 5m, 1h or 1d")
    start, end = since_window(since)
    request = RowsRequest(start, end, tuple(dict.fromkeys(metrics)), step_ms, parse_percentiles(percentiles))
    check_metrics(ctx.state, request.metrics)
    rows = export_rows(ctx.state, request)
    if out is None:
        write_rows(sys.stdout, fmt, request.columns(), rows)
        return
    count = write_rows_file(out, fmt, request.columns(), rows)
    record = {"format": fmt, "path": out, "rows": count, "step": step, "since": since}
    ctx.out.show(record, View(text=lambda r: f"wrote {r['rows']:,} row(s) to {r['path']}", quiet=True))


@app.command("export")
def analytics_export(
    fmt: Annotated[str, typer.Option(
        "--format", "-f", metavar="prometheus|csv|jsonl",
        help="prometheus: metric families; csv, jsonl: the samples themselves.")] = "prometheus",
    textfile: Annotated[Optional[str], typer.Option(
        "--textfile", metavar="DIR", help="Write DIR/edgectl.prom for node_exporter (or the FILE.prom given).")] = None,
    pushgateway: Annotated[Optional[str], typer.Option(
        "--pushgateway", metavar="URL",
        help="Push to this Pushgateway; env:NAME or file:PATH may hold the URL, env:NAME its password.")] = None,
    instance: Annotated[Optional[str], typer.Option(
        "--instance", metavar="NAME", help="The pushed group's instance label (default: this host's name).")] = None,
    timeout: Annotated[str, typer.Option("--timeout", metavar="DURATION", help="Give up pushing after this long.")] = "10s",
    since: Annotated[Optional[str], typer.Option("--since", metavar="DURATION",
                                                 help="The window: 5m for prometheus, 24h for csv and jsonl.")] = None,
    percentiles: Annotated[Optional[str], typer.Option("--percentiles", metavar="50,95,99", help="Which quantiles.")] = None,
    by_country: Annotated[bool, typer.Option("--by-country", help="prometheus: keep the client country label.")] = False,
    out: Annotated[Optional[str], typer.Option("--out", metavar="FILE", help="csv, jsonl: write FILE, not stdout.")] = None,
    step: Annotated[Optional[str], typer.Option("--step", metavar="DURATION",
                                                help="csv, jsonl: rollups per series per step, not raw samples.")] = None,
    metric: Annotated[Optional[list[str]], typer.Option("--metric", metavar="NAME",
                                                        help="csv, jsonl: only this metric; repeatable.")] = None,
) -> None:
    """Hand the history to Prometheus (a textfile, a Pushgateway, stdout), or as CSV or JSON lines.

    prometheus: gauges over the window in base units: latency quantiles, rates, the hit ratio,
    resource use, provider figures, and each node's up, status and heartbeat.
    csv, jsonl: the raw samples with the columns `analytics ingest` reads, or with --step rollups.
    """
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"--format {fmt!r}: one of {', '.join(EXPORT_FORMATS)}")
    if fmt != "prometheus":
        wrong = [name for name, given in (("--textfile", textfile), ("--pushgateway", pushgateway),
                                          ("--instance", instance), ("--by-country", by_country)) if given]
        if wrong:
            raise UsageError(f"{wrong[0]} goes with --format prometheus",
                             hint=f"--format {fmt} writes to stdout or --out FILE")
        _export_rows(fmt, since or "24h", step, metric or [], percentiles, out)
        return
    wrong = [name for name, given in (("--out", out), ("--step", step), ("--metric", metric)) if given]
    if wrong:
        raise UsageError(f"{wrong[0]} goes with --format csv or jsonl",
                         hint="prometheus writes to --textfile DIR, --pushgateway URL or stdout")
    _export_prometheus(since or "5m", percentiles, by_country, textfile, pushgateway, instance, timeout)


def _export_prometheus(since: str, percentiles: Optional[str], by_country: bool, textfile: Optional[str],
                       pushgateway: Optional[str], instance: Optional[str], timeout: str) -> None:
    import socket
    import sys

    from edgectl.analytics.export import ExportRequest
    from edgectl.analytics.prometheus import export_prometheus, parse_gateway, textfile_path
    from edgectl.analytics.queries import parse_percentiles
    from edgectl.cli.options import overall_timeout

    ctx = current()
    # every bad argument stops the run before the history is read
    wanted = parse_percentiles(percentiles)
    start, end = since_window(since)
    path = textfile_path(textfile) if textfile is not None else None
    gateway = parse_gateway(pushgateway) if pushgateway is not None else None
    seconds = overall_timeout(timeout)
    if instance is not None and gateway is None:
        raise UsageError("--instance goes with --pushgateway")
    group = (instance if instance is not None else socket.gethostname()).strip()
    if gateway is not None and not group:
        raise UsageError("--instance: empty", hint="the Pushgateway groups pushes by instance; name this one")
    request = ExportRequest(start, end, wanted, by_country, ctx.config.setting("nodes.heartbeat_interval"))
    report = export_prometheus(ctx.state, request, textfile=path, gateway=gateway, instance=group, timeout=seconds)
    if path is None and gateway is None:
        sys.stdout.write(report.text())
        return
    ctx.out.show(report.to_record(), View(text=_export_line, quiet=True))


def _export_line(record: dict) -> str:
    where = [w for w in (record["textfile"] and f"wrote {record['textfile']}",
                         record["pushgateway"] and f"pushed to {record['pushgateway']}") if w]
    return f"{' and '.join(where)}: {record['series']:,} series in {record['families']} families"
