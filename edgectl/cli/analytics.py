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
