"""Invalidating cache entries: the entries a URL, prefix or tag names, the purge that clears them, and marking them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgectl.cache.entries import mark_invalidated, matching
from edgectl.cdn import journal
from edgectl.cdn import purge as cdn_purge
from edgectl.cdn.plan import PurgePlan, Target, build_targets


@dataclass
class Invalidation:
    """What an invalidation will do, decided before anything is marked or sent."""

    urls: tuple[str, ...]
    prefixes: tuple[str, ...]
    tags: tuple[str, ...]
    entries: list[dict[str, Any]]  # (url, node) of each entry they name, as planned
    targets: list[Target]
    plan: PurgePlan | None = None  # None: mark the entries, purge nothing
    providers: dict = field(default_factory=dict)  # built for the plan; the purge's run closes them

    def skipped(self) -> list[str]:
        """The plan's lines for targets a provider cannot purge (skipped, not refused)."""
        return self.plan.skipped() if self.plan is not None else []

    def close(self) -> None:
        """Close the providers of a plan that will not be sent (a dry run)."""
        cdn_purge.close(self.providers)


def plan_invalidation(config, state, urls, prefixes, tags, *, purge: bool) -> Invalidation:
    """The matching entries and, with `purge`, the purge `cdn purge` would plan for them.

    The purge names every matching entry's URL (a tag may be edgectl's own, from a policy, which
    no CDN knows) besides the URLs, prefixes and tags given, at the providers serving each
    hostname. A target no provider serves is refused here, before anything is marked.
    """
    urls, prefixes, tags = tuple(urls), tuple(prefixes), tuple(tags)
    found = matching(state, urls=urls, prefixes=prefixes, tags=tags)
    known = sorted({f["url"] for f in found} | set(urls))
    targets = build_targets(known, [], list(prefixes), list(tags), [], False)
    invalidation = Invalidation(urls, prefixes, tags, found, targets)
    if purge:
        invalidation.plan, invalidation.providers = cdn_purge.plan(
            config, state, targets, provider_names=None, all_providers=False, skip_unsupported=True)
    return invalidation


def mark_entries(state, invalidation: Invalidation) -> list[dict[str, Any]]:
    """Mark the entries invalidated (so `cache warm --stale` warms them again); (url, node) of each."""
    return mark_invalidated(state, urls=invalidation.urls, prefixes=invalidation.prefixes, tags=invalidation.tags)


def journal_purge(state, invalidation: Invalidation) -> journal.Purge | None:
    """The providers prepared and the purge journaled, ready to send as `cdn purge` sends it; None without one."""
    if invalidation.plan is None:
        return None
    cdn_purge.prepare(invalidation.providers)
    return journal.create(state, invalidation.plan, reason="cache invalidate")
