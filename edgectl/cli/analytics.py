"""`edgectl analytics`: the metrics history: ingest samples, and percentiles over any window."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgectl.cli import group_help
from edgectl.cli.context import current
from edgectl.errors import UsageError
from edgectl.output import Column, View

app = typer.Typer(help=group_help("analytics"), no_args_is_help=True, add_completion=False)

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

    from edgectl.analytics.samples import READERS, ReadReport
    from edgectl.analytics.store import ingest

    ctx = current()
    if fmt not in READERS:
        raise UsageError(f"--format {fmt!r}: csv or jsonl")
    report = ReadReport()
    try:
        handle = sys.stdin if file == "-" else open(file, encoding="utf-8", newline="")
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        result = ingest(ctx.state, READERS[fmt](handle, report))
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


def _window(since: str) -> tuple[int, int]:
    import time

    from edgectl.parse import parse_duration

    seconds = parse_duration(since, what="--since")
    if seconds <= 0:
        raise UsageError("--since must be more than zero")
    end = int(time.time() * 1000)
    return end - int(seconds * 1000), end


@app.command("latency")
def analytics_latency(
    by: Annotated[str, typer.Option("--by", metavar="node|region|country|provider", help="Group by this.")] = "node",
    since: Annotated[str, typer.Option("--since", metavar="DURATION", help="The window: the last DURATION.")] = "24h",
    percentiles: Annotated[Optional[str], typer.Option("--percentiles", metavar="50,95,99", help="Which percentiles.")] = None,
) -> None:
    """Latency percentiles per node, region, country or provider, from the rollups (within about 0.5%)."""
    from edgectl.analytics.queries import PercentileRequest, field_name, parse_percentiles, percentiles_by

    ctx = current()
    wanted = parse_percentiles(percentiles)
    start, end = _window(since)
    rows = percentiles_by(ctx.state, PercentileRequest("latency", by, start, end, wanted))
    columns = [Column(by), Column("samples", justify="right")] + [
        Column(field_name(p), field_name(p).upper(), kind="ms", justify="right") for p in wanted] + [
        Column("mean", kind="ms", justify="right"), Column("max", kind="ms", justify="right")]
    ctx.out.show(rows, View(columns, empty=f"no latency samples in the last {since}"))


@app.command("recommend")
def analytics_recommend(
    since: Annotated[str, typer.Option("--since", metavar="DURATION", help="The window: the last DURATION.")] = "7d",
) -> None:
    """What the history suggests changing, each with its evidence: nodes to add, weight to shift,
    paths to cache, nodes to decommission, providers whose errors spiked."""
    from edgectl.analytics.recommend import Targets, recommend

    ctx = current()
    start, end = _window(since)
    found = recommend(ctx.state, Targets.from_config(ctx.config), start, end)
    ctx.out.show([r.to_record() for r in found], View(
        [Column("kind"), Column("subject"), Column("action")],
        empty=f"nothing to recommend from the last {since}"))


EXPORT_FORMATS = ("prometheus", "csv", "jsonl")


def _export_rows(fmt: str, since: str, step: Optional[str], metrics: list[str], percentiles: Optional[str],
                 out: Optional[str]) -> None:
    import sys

    from edgectl.analytics.export import RowsRequest, export_rows, write_rows, write_rows_file
    from edgectl.analytics.queries import parse_percentiles
    from edgectl.parse import parse_duration

    ctx = current()
    step_ms = None
    if step is not None:
        step_ms = int(parse_duration(step, what="--step") * 1000)
        if step_ms <= 0 or step_ms % 60_000:
            raise UsageError(f"--step {step}: a whole number of minutes", hint="e.g. --step 1m, 5m, 1h or 1d")
    start, end = _window(since)
    request = RowsRequest(start, end, tuple(dict.fromkeys(metrics)), step_ms, parse_percentiles(percentiles))
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
    ctx = current()
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
    start, end = _window(since)
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
