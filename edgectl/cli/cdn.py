"""`edgectl cdn`: the CDN providers in config, and purges that are batched, paced, journaled and resumable."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgectl.cli import group_help, purging
from edgectl.cli.context import current
from edgectl.cli.options import DryRun, Reason, Since, Timeout, Yes, confirm, overall_timeout
from edgectl.cli.providers import command_group
from edgectl.errors import UsageError
from edgectl.output import Column, View

app = typer.Typer(help=group_help("cdn"), no_args_is_help=True, add_completion=False)
# the purge view of `edgectl providers`: the same commands, over the providers that purge
app.add_typer(command_group("purge", "The configured providers that purge, under \\[providers.NAME].",
                            "edgectl cdn providers"), name="providers")

HISTORY_COLUMNS = [
    Column("id", justify="right"),
    Column("status", kind="status"),
    Column("created_at", "STARTED", kind="time"),
    Column("finished_at", "FINISHED", kind="time"),
    Column("providers", kind="list"),
    Column("targets", kind="map"),
    Column("batches", kind="map"),
    Column("reason"),
]
BATCH_COLUMNS = [
    Column("seq", "#", justify="right"),
    Column("provider"),
    Column("kind"),
    Column("items", justify="right"),
    Column("state", kind="status"),
    Column("attempts", justify="right"),
    Column("provider_ref", "PROVIDER ID"),
    Column("detail"),
    Column("last_error", "LAST ERROR"),
]


# -- purge ----------------------------------------------------------------------------------

def _url_file(path: str):
    """Targets from a file or stdin ('-'), read line by line."""
    import sys

    from edgectl.cdn.plan import read_urls

    if path == "-":
        return list(read_urls(sys.stdin, "stdin"))
    try:
        with open(path, encoding="utf-8") as handle:
            return list(read_urls(handle, path))
    except OSError as exc:
        raise UsageError(f"cannot read --urls-file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--urls-file {path} is not UTF-8 text") from None


def _request_timeout(limit: float) -> float:
    """One request may take 30 s, or a quarter of the whole --timeout, so a hung one can be retried."""
    return max(1.0, min(30.0, limit / 4))


@app.command("purge")
def purge(
    urls: Annotated[Optional[list[str]], typer.Option("--url", metavar="URL", help="A URL to purge; repeatable.")] = None,
    urls_file: Annotated[Optional[str], typer.Option("--urls-file", metavar="FILE|-", help="URLs one per line; '-' reads stdin.")] = None,
    prefixes: Annotated[Optional[list[str]], typer.Option("--prefix", metavar="P", help="A path prefix (/docs/) or URL prefix; repeatable.")] = None,
    tags: Annotated[Optional[list[str]], typer.Option("--tag", metavar="T", help="A cache tag; repeatable.")] = None,
    hosts: Annotated[Optional[list[str]], typer.Option("--host", metavar="H", help="Everything under a hostname; repeatable.")] = None,
    everything: Annotated[bool, typer.Option("--everything", help="Everything the providers cache (asks first).")] = False,
    provider: Annotated[Optional[list[str]], typer.Option("--provider", "-p", metavar="NAME", help="Purge at this provider; repeatable.")] = None,
    all_providers: Annotated[bool, typer.Option("--all-providers", help="Purge at every configured provider.")] = False,
    header: Annotated[Optional[list[str]], typer.Option("--header", "-H", metavar="'K: V'", help="Request header the cache keys on, for URL purges; repeatable.")] = None,
    skip_unsupported: Annotated[bool, typer.Option("--skip-unsupported", help="Skip targets a provider cannot purge instead of stopping.")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for asynchronous providers to finish.")] = False,
    timeout: Timeout = "10m",
    resume: Annotated[Optional[str], typer.Option("--resume", metavar="ID", help="Send what purge ID left unfinished.")] = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    reason: Reason = None,
) -> None:
    """Purge URLs, prefixes, tags, hosts or everything at one or more CDNs and edge fleets.

    Without --provider, URLs go to the providers whose `hosts` list their hostname.

    Exit 0 when every batch was accepted (completed, with --wait); 1 otherwise, with the command that resumes it.
    """
    from edgectl.cdn import journal
    from edgectl.cdn import purge as service
    from edgectl.cdn.execute import Settings
    from edgectl.cdn.plan import build_targets
    from edgectl.parse import parse_headers

    ctx = current()
    limit = overall_timeout(timeout)
    settings = Settings(wait=wait, timeout=limit)
    if resume is not None:
        if urls or urls_file or prefixes or tags or hosts or everything or provider or all_providers or header:
            raise UsageError("--resume takes no targets or providers", hint="it sends what the journal holds")
        purge_id = journal.parse_id(resume)
        record = journal.get(ctx.state, purge_id)
        service.check_resumable(record, wait)
        if dry_run:
            left = journal.batches(ctx.state, purge_id, journal.UNFINISHED)
            ctx.out.show([b.to_record() for b in left], View(BATCH_COLUMNS, empty="nothing left to send"))
            return
        providers = service.resume_providers(ctx.config, ctx.state, record, request_timeout=_request_timeout(limit))
        ctx.out.note(f"resuming purge {purge_id}")
        purging.run(ctx, record, providers, settings)
        return

    from_file = _url_file(urls_file) if urls_file else []
    if urls_file and not from_file and not (urls or prefixes or tags or hosts or everything):
        # a deploy that changed nothing: not an error, so a pipeline step stays green
        ctx.out.note(f"nothing to purge: {'stdin' if urls_file == '-' else urls_file} holds no URLs")
        ctx.out.show({"id": None, "status": "nothing to purge", "providers": [], "failed": [],
                      "run": {"requests": 0, "retries": 0}, "resume": None}, View(body=False))
        return
    targets = build_targets(urls or [], from_file, prefixes or [], tags or [], hosts or [], everything)
    plan, providers = service.plan(ctx.config, ctx.state, targets, provider_names=provider, all_providers=all_providers,
                                   headers=parse_headers(header), skip_unsupported=skip_unsupported,
                                   request_timeout=_request_timeout(limit))
    for line in plan.skipped():
        ctx.out.warn(line)
    if dry_run:
        service.close(providers)
        ctx.out.show({"dry_run": True, **plan.to_record()}, purging.PLAN_VIEW)
        return
    if everything:
        try:
            confirm(f"purge EVERYTHING cached at {', '.join(p.name for p in plan.providers)}?", yes)
        except BaseException:
            service.close(providers)
            raise
    service.prepare(providers)
    record = journal.create(ctx.state, plan, reason=reason)
    ctx.out.info(f"purge {record.id}: {plan.calls} batch(es) journaled")
    purging.run(ctx, record, providers, settings)


# -- history -----------------------------------------------------------------------------------

@app.command("history")
def history(
    since: Since = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000, help="At most this many.")] = 50,
) -> None:
    """Recent purges, newest first."""
    from edgectl.cdn import journal
    from edgectl.parse import parse_duration
    from edgectl.timeutil import utcnow

    ctx = current()
    start = None
    if since:
        from datetime import timedelta

        start = utcnow() - timedelta(seconds=parse_duration(since, what="--since"))
    rows = [p.to_record() for p in journal.history(ctx.state, start, limit)]
    ctx.out.show(rows, View(HISTORY_COLUMNS, empty="no purges yet"))


@app.command("show")
def show(purge_id: Annotated[str, typer.Argument(metavar="ID", help="Purge id, from cdn history.")]) -> None:
    """One purge: its targets, every batch's state, provider id, attempts and last error."""
    from edgectl.cdn import journal

    ctx = current()
    record = journal.get(ctx.state, journal.parse_id(purge_id))
    data = record.to_record()
    data["target_list"] = [{"kind": k, "value": v} for k, v in journal.targets(ctx.state, record.id)]
    data["batch_list"] = [b.to_record() for b in journal.batches(ctx.state, record.id)]
    ctx.out.show(data, SHOW_VIEW)


def _draw_purge(out, data: dict) -> None:
    """The purge's fields as history lists them, then every batch."""
    out.record({k: v for k, v in data.items() if k not in ("target_list", "batch_list")}, HISTORY_COLUMNS)
    out.records(data["batch_list"], BATCH_COLUMNS, empty="no batches")


SHOW_VIEW = View(draw=_draw_purge)
