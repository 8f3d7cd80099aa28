"""Applying a routing plan step by step, journaled, retried and resumable, and waiting for it to propagate.

Steps of one provider run in order, each after the one before it answered: later steps point at
what earlier ones created. A step that fails stops its provider (the rest would point at what is
missing) and the apply ends failed with the command that resumes it; other providers go on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from edgectl.errors import UsageError
from edgectl.providers.retry import retrying
from edgectl.routing import journal
from edgectl.timeutil import utcnow

log = logging.getLogger(__name__)

POLL_FIRST = 0.5
POLL_MAX = 15.0


@dataclass
class ApplyOptions:
    wait: bool = False
    timeout: float = 600.0


@dataclass
class ApplyReport:
    apply_id: int
    status: str
    steps: list[dict[str, Any]]
    waited: bool
    failed_providers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("applied", "synced")

    def to_record(self) -> dict[str, Any]:
        return {"apply": self.apply_id, "status": self.status, "steps": self.steps, "waited": self.waited,
                "failed_providers": self.failed_providers}


def run(state, apply, providers: dict, options: ApplyOptions, progress: Callable[[str], None] | None = None
        ) -> ApplyReport:
    """Run every unfinished step of a claimed apply, then wait for propagation when asked."""
    from edgectl.logs import redact
    from edgectl.providers.base import ProviderError

    deadline = time.monotonic() + options.timeout
    say = progress or (lambda _text: None)
    failed: list[str] = []
    journal.set_status(state, apply.id, "running")
    try:
        for step in journal.steps(state, apply.id):
            if step.state in journal.DONE:
                continue
            if step.provider in failed:
                continue
            provider = providers[step.provider]
            # a step sent before (its answer lost, or refused after it may have landed) is resent as such,
            # and so is every attempt after a first one that failed
            resend = [step.state in ("sent", "failed")]

            def send(provider=provider, step=step, resend=resend):
                try:
                    return provider.apply(step.step, resend=resend[0])
                finally:
                    resend[0] = True

            journal.record(state, step.id, state="sent", attempts=step.attempts + 1, sent_at=utcnow())
            say(f"{step.provider}: {step.summary}")
            try:
                result = retrying(send, deadline=deadline,
                                  what=f"{step.provider} step {step.seq}",
                                  on_retry=lambda m, s=step: journal.record(state, s.id, last_error=redact(m)))
            except ProviderError as exc:
                journal.record(state, step.id, state="failed", last_error=redact(exc.message))
                failed.append(step.provider)
                continue
            except Exception as exc:  # noqa: BLE001 - a provider's bug fails its step, recorded, not a traceback
                log.debug("routing step %s", step.seq, exc_info=True)
                journal.record(state, step.id, state="failed",
                               last_error=redact(f"unexpected {exc.__class__.__name__}: {exc}"))
                failed.append(step.provider)
                continue
            now = utcnow()
            journal.record(state, step.id, state="synced" if result.in_sync else "applied", last_error=None,
                           provider_ref=result.ref, detail=redact(result.detail) or None, applied_at=now,
                           synced_at=now if result.in_sync else None)
        if options.wait and not failed:
            _wait(state, apply.id, providers, deadline, say)
    except KeyboardInterrupt:
        journal.set_status(state, apply.id, "interrupted")
        raise
    final = journal.steps(state, apply.id)
    if failed or any(s.state not in journal.DONE for s in final):
        status = "failed"
    elif all(s.state == "synced" for s in final):
        status = "synced"
    else:
        status = "applied"
    journal.set_status(state, apply.id, status, finished=True)
    return ApplyReport(apply.id, status, [s.to_record() for s in final], options.wait, failed)


def _wait(state, apply_id: int, providers: dict, deadline: float, say: Callable[[str], None]) -> None:
    """Poll each applied step's propagation until the provider reports it in sync, within the timeout."""
    from edgectl.providers.base import ProviderError, RetryableError

    pending = [s for s in journal.steps(state, apply_id) if s.state == "applied" and s.provider_ref]
    polls = 0
    while pending and time.monotonic() < deadline:
        polls += 1
        still = []
        for step in pending:
            try:
                result = providers[step.provider].step_state(step.provider_ref)
            except RetryableError:
                still.append(step)
                continue
            except ProviderError as exc:
                journal.record(state, step.id, last_error=f"propagation unknown: {exc.message}")
                continue
            if result.in_sync:
                journal.record(state, step.id, state="synced", synced_at=utcnow())
                say(f"{step.provider}: step {step.seq} in sync")
            else:
                still.append(step)
        pending = still
        if pending:
            time.sleep(min(POLL_MAX, POLL_FIRST * 2 ** min(polls - 1, 8), max(0.0, deadline - time.monotonic())))


def providers_for(state, config, apply) -> dict:
    """The providers an apply's unfinished steps need, built from the config as it is now."""
    from edgectl.providers.config import entry
    from edgectl.routing.plan import build_provider

    needed = {s.provider for s in journal.steps(state, apply.id) if s.state != "synced"}
    providers = {}
    for name in sorted(needed):
        try:
            item = entry(config, name, "routing")
        except UsageError as exc:
            raise UsageError(f"routing apply {apply.id} needs provider {name}: {exc.message}", hint=exc.hint) from None
        providers[name] = build_provider(config, item)
    return providers


def check_resumable(state, apply, providers: dict) -> None:
    """Refuse to resume an apply whose plan no longer holds.

    Its steps are absolute intents from when it was planned: sent to a provider that now steers
    another name, or after a later apply changed the same provider, they would undo newer work.
    """
    planned = {p["provider"]: p for p in apply.plan.get("providers", [])}
    hint = "plan again: edgectl routing apply"
    for name, provider in providers.items():
        was = planned.get(name, {})
        for key, now in (("kind", provider.kind), ("where", provider.where()), ("owner", provider.owner)):
            if was.get(key) != now:
                raise UsageError(f"routing apply {apply.id} was planned for provider {name} with {key} "
                                 f"{was.get(key)}; the config now says {now}", hint=hint)
    later = [a for a in journal.history(state, limit=10_000) if a.id > apply.id and set(a.providers) & set(providers)]
    if later:
        newest = later[0]
        raise UsageError(f"routing apply {newest.id} changed {', '.join(sorted(set(newest.providers) & set(providers)))} "
                         f"after apply {apply.id}: resuming {apply.id} would undo it", hint=hint)
