"""`cdn purge` from end to end: plan, journal, run, report; and resuming a journaled purge."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from edgectl.cdn import journal
from edgectl.cdn.execute import PurgeRun, RunStats, Settings
from edgectl.cdn.plan import PurgePlan, Target, make_plan
from edgectl.cdn.providers import build, configured, entry, select
from edgectl.providers.config import broken
from edgectl.errors import ConfigError, UsageError


def plan(config, state, targets: list[Target], *, provider_names: list[str] | None, all_providers: bool,
         headers: dict[str, str] | None = None, skip_unsupported: bool = False,
         request_timeout: float = 30.0) -> tuple[PurgePlan, dict]:
    chosen = select(config, provider_names, all_providers)
    explicit = bool(chosen)
    left_out: list[str] = []
    providers = {}
    if explicit:  # named ones are built or the purge stops; --all-providers says which it could not use
        for item in chosen:
            providers[item.name] = build(config, state, item, timeout=request_timeout)
        if all_providers:
            left_out += [f"provider {item.name} is left out: {item.problem}" for item in broken(config)]
    else:
        # Mapped by hostname: a broken table is left out with a warning, unless it claims a host
        # the targets name, since then purging without it would leave that CDN serving stale copies.
        wanted_hosts = {t.host for t in targets if t.host}
        for item in broken(config):
            _leave_out(item, item.problem, wanted_hosts, left_out)
        for item in configured(config):
            try:
                providers[item.name] = build(config, state, item, timeout=request_timeout)
            except ConfigError as exc:
                _leave_out(item, exc.message, wanted_hosts, left_out)
        if not providers:
            if left_out:  # none left to map to: the broken ones are the reason
                raise ConfigError(left_out[0].split(" is left out: ", 1)[1]
                                  + (f" (and {len(left_out) - 1} more)" if len(left_out) > 1 else ""),
                                  hint="edgectl config validate lists every problem")
            raise ConfigError(f"no providers that purge are configured in {config.path}",
                              hint="add [providers.NAME] tables (see config/edgectl.example.toml)")
    result = make_plan(targets, list(providers.values()), explicit=explicit, headers=headers,
                       skip_unsupported=skip_unsupported)
    result.left_out = left_out
    used = {p.name for p in result.providers if p.batches}
    for name in list(providers):
        if name not in used:
            providers.pop(name).close()
    return result, providers


def _leave_out(item, problem: str, wanted_hosts: set[str], left_out: list[str]) -> None:
    hosts = item.settings.get("hosts")
    claimed = sorted(wanted_hosts & {str(h).lower().rstrip(".") for h in hosts}) if isinstance(hosts, list) else []
    if claimed:
        raise ConfigError(f"provider {item.name}: {problem} (and it serves {', '.join(claimed)}, which this purge names)",
                          hint="fix its table, or name the providers to purge with --provider")
    left_out.append(f"provider {item.name} is left out: {problem}")


@dataclass
class Report:
    purge: journal.Purge
    batches: list[journal.JournalBatch]
    stats: RunStats | None = None
    elapsed: float = 0.0
    waited: bool = False
    per_provider: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unfinished(self) -> list[journal.JournalBatch]:
        return [b for b in self.batches if b.state in journal.UNFINISHED]

    @property
    def in_progress(self) -> list[journal.JournalBatch]:
        return [b for b in self.batches if b.state == "accepted"]

    @property
    def ok(self) -> bool:
        return not self.unfinished and not (self.waited and self.in_progress)

    def to_record(self) -> dict[str, Any]:
        record = self.purge.to_record()
        record["providers"] = self.per_provider
        record["failed"] = [{"seq": b.seq, "provider": b.provider, "kind": b.kind, "items": len(b.items),
                             "state": b.state, "attempts": b.attempts, "error": b.last_error}
                            for b in self.unfinished]
        if self.stats is not None:
            record["run"] = {"elapsed_s": round(self.elapsed, 3),
                             "sending_s": round(self.stats.sending_seconds, 3), "requests": self.stats.sends,
                             "retries": self.stats.retries, "rate_limited": self.stats.rate_limited,
                             "completion_polls": self.stats.polls, "timed_out": self.stats.timed_out,
                             "interrupted": self.stats.interrupted}
        record["resume"] = None if self.ok else f"edgectl cdn purge --resume {self.purge.id}" + (
            " --wait" if self.waited else "")
        return record


def report(state, purge_id: int, stats: RunStats | None = None, elapsed: float = 0.0, waited: bool = False) -> Report:
    purge = journal.get(state, purge_id)
    batches = journal.batches(state, purge_id)
    rows: dict[str, dict[str, Any]] = {}
    for batch in batches:
        row = rows.setdefault(batch.provider, {"provider": batch.provider, "kind": batch.provider_kind,
                                               "batches": 0, "items": 0, **{s: 0 for s in journal.BATCH_STATES}})
        row["batches"] += 1
        row["items"] += len(batch.items)
        row[batch.state] += 1
    return Report(purge, batches, stats, elapsed, waited, list(rows.values()))


def execute(state, purge: journal.Purge, providers: dict, settings: Settings, *, resume: bool = False,
            progress=None) -> Report:
    journal.claim(state, purge)
    states = ("pending", "sent", "failed", "accepted") if settings.wait else journal.UNFINISHED
    todo = journal.batches(state, purge.id, states)
    started = time.monotonic()
    run = PurgeRun(state, purge, providers, settings, progress)
    try:
        stats = run.run(todo)
    finally:
        close(providers)
    status = "interrupted" if stats.interrupted else journal.outcome(state, purge.id)
    journal.set_status(state, purge.id, status, finished=True)
    return report(state, purge.id, stats, time.monotonic() - started, settings.wait)


def resume_providers(config, state, purge: journal.Purge, *, request_timeout: float) -> dict:
    """The providers a journaled purge used, from today's config; a changed kind is refused."""
    kinds = {b.provider: b.provider_kind for b in journal.batches(state, purge.id)}
    providers = {}
    for name, kind in kinds.items():
        item = entry(config, name)
        if item.kind != kind:
            raise ConfigError(f"provider {name} is now of kind {item.kind!r}, but purge {purge.id} was planned "
                              f"for kind {kind!r}", hint="restore the provider's config, or start a new purge")
        providers[name] = build(config, state, item, timeout=request_timeout)
    prepare(providers)
    return providers


def prepare(providers: dict) -> None:
    """Clients built and secrets resolved for every provider, before anything is journaled as sent."""
    try:
        for provider in providers.values():
            provider.prepare()
    except BaseException:
        close(providers)
        raise


def close(providers: dict) -> None:
    """Close every provider's client: after a run, a dry run, or a refusal to go on."""
    for provider in providers.values():
        provider.close()


def check_resumable(purge: journal.Purge, wait: bool) -> None:
    if purge.shown_status in ("completed",) or (purge.shown_status == "accepted" and not wait):
        raise UsageError(f"purge {purge.id} has nothing left to send (it is {purge.shown_status})",
                         hint="pass --wait to wait for accepted batches to complete" if purge.status == "accepted" else None)
