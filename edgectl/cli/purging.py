"""How a purge shows at the command line: its plan, its progress and its report.

`cdn purge` and `cache invalidate` both purge through here, so a purge reads the same whichever
command started it.
"""

from __future__ import annotations

from edgectl.errors import Interrupted, OperationFailed
from edgectl.output import Column, View

PLAN_COLUMNS = [
    Column("provider"),
    Column("kind"),
    Column("targets", justify="right"),
    Column("items", justify="right"),
    Column("calls", justify="right"),
    Column("batches", "BATCHES BY KIND", kind="map"),
    Column("estimate", justify="right"),
    Column("skipped", kind="map"),
]
RESULT_COLUMNS = [
    Column("provider"),
    Column("kind"),
    Column("batches", justify="right"),
    Column("items", justify="right"),
    Column("completed", justify="right"),
    Column("accepted", justify="right"),
    Column("failed", justify="right"),
    Column("pending", "UNSENT", justify="right"),
]


def plan_rows(plan: dict) -> list[dict]:
    """A plan's record (PurgePlan.to_record) as the table's rows: a provider each."""
    from edgectl.parse import format_duration

    rows = []
    for record in plan["providers"]:
        if not record["calls"] and not record["skipped"]:
            continue
        rows.append({**record, "batches": {k: v["batches"] for k, v in record["by_kind"].items()},
                     "estimate": format_duration(record["estimate_s"]) if record["estimate_s"] >= 1 else "<1s"})
    return rows


def run(ctx, record, providers: dict, settings) -> None:
    """Send a journaled purge, show its report, and raise when it did not all go through."""
    from edgectl.cdn import journal
    from edgectl.cdn import purge as service

    with _progress(ctx, journal.batches(ctx.state, record.id)) as progress:
        result = service.execute(ctx.state, record, providers, settings, progress=progress)
    data = result.to_record()
    ctx.out.show(data, REPORT_VIEW)
    if result.stats and result.stats.interrupted:
        raise Interrupted(f"purge {record.id} interrupted; what was sent is journaled", hint=f"resume it: {data['resume']}")
    if not result.ok:
        refused = sorted(result.stats.refused) if result.stats else []
        first = f"fix the credentials of {', '.join(refused)} (edgectl cdn providers test shows them), then " if refused else ""
        raise OperationFailed(_failure_line(result), hint=f"{first}resume it: {data['resume']}")


def _failure_line(result) -> str:
    unfinished = result.unfinished
    if unfinished:
        errors: dict[str, int] = {}
        for batch in unfinished:
            key = f"{batch.provider}: {batch.last_error or ('not sent' if batch.state == 'pending' else batch.state)}"
            errors[key] = errors.get(key, 0) + 1
        common = "; ".join(f"{text}" + (f" (x{n})" if n > 1 else "") for text, n in
                           sorted(errors.items(), key=lambda kv: -kv[1])[:3])
        timed = " (timed out)" if result.stats and result.stats.timed_out else ""
        return f"purge {result.purge.id}: {len(unfinished)} of {len(result.batches)} batch(es) not accepted{timed}: {common}"
    return (f"purge {result.purge.id}: {len(result.in_progress)} batch(es) still in progress when the wait ended")


def _report_line(data: dict) -> list[str]:
    run = data.get("run") or {}
    return [f"purge {data['id']}: {data['status']}; {run.get('requests', 0)} request(s), "
            f"{run.get('retries', 0)} retried, {run.get('elapsed_s', 0):.1f}s"]


PLAN_VIEW = View(PLAN_COLUMNS, rows=plan_rows,
                 notes=lambda plan: [f"dry run: {plan['calls']} API call(s) planned; nothing sent"])
REPORT_VIEW = View(RESULT_COLUMNS, rows=lambda data: data["providers"], notes=_report_line)


class _progress:
    """A progress bar on stderr at a terminal; nothing otherwise."""

    def __init__(self, ctx, batches):
        self.ctx = ctx
        self.total = len(batches)
        self.bar = None
        self.settled: set[int] = set()

    def __enter__(self):
        import sys

        if self.ctx.out.fmt == "table" and sys.stderr.isatty() and not self.ctx.quiet and self.total > 1:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("purging"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                console=self.ctx.out.console(sys.stderr), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("purge", total=self.total)
        return self.update

    def update(self, event: str, batch) -> None:
        """A batch counts once, when it is first accepted, completed or failed."""
        if self.bar is not None and event in ("accepted", "completed", "failed") and batch.id not in self.settled:
            self.settled.add(batch.id)
            self.bar.advance(self.task)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False
