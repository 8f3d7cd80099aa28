"""From purge targets to a plan: which provider purges what, in which batches, and how long it will take.

The planner knows providers only through their contract: the kinds they purge, their hostnames,
`normalise`, and `Limits`. Nothing here is provider-specific.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator
from urllib.parse import urlsplit

from edgectl.errors import UsageError

TARGET_KINDS = ("url", "prefix", "tag", "host", "everything")
MAX_LISTED = 5  # bad targets named in one error before "and N more"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Target:
    kind: str
    value: str
    where: str = ""  # 'urls.txt:12' for targets read from a file
    host: str | None = None  # the hostname it belongs to, when it names one (URLs, full-URL prefixes, hosts)


def _bad(target: str, where: str, why: str) -> str:
    return f"{where + ': ' if where else ''}{target!r} {why}"


@functools.lru_cache(maxsize=1024)
def _host_ok(host: str) -> bool:
    from edgectl.parse import _valid_host

    return _valid_host(host)


def url_target(text: str, where: str = "", kind: str = "url") -> Target:
    """An absolute http(s) URL as a purge target. Spaces and unicode are allowed: they get encoded,
    a unicode host to its IDNA form, the path by each provider as its API wants it."""
    from edgectl.parse import ascii_url

    try:
        raw = ascii_url(text.strip())
    except UsageError as exc:
        raise UsageError(f"{where + ': ' if where else ''}{exc.message}", hint=exc.hint) from None
    try:
        parts = urlsplit(raw)
        parts.port
    except ValueError:
        raise UsageError(_bad(raw, where, "is not a valid URL")) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError(_bad(raw, where, "is not an absolute http(s) URL"),
                         hint="purge URLs look like https://www.example.com/path")
    if _CONTROL.search(raw) or parts.username or parts.password:
        raise UsageError(_bad(raw, where, "holds control characters or credentials"))
    if parts.fragment:
        raise UsageError(_bad(raw, where, "has a #fragment, which never reaches a cache"),
                         hint="drop the part from '#'")
    host = parts.hostname.rstrip(".")
    if not _host_ok(host):
        raise UsageError(_bad(raw, where, f"has an invalid host {parts.hostname!r}"))
    return Target(kind, raw, where, host)


def read_urls(lines: Iterable[str], source: str) -> Iterator[Target]:
    """URLs one per line; blank lines and '#' comments are skipped. Every bad line is reported at once."""
    bad: list[str] = []
    count = 0
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{source}:{number}"
        try:
            yield url_target(text, where)
        except UsageError as exc:
            count += 1
            if len(bad) < MAX_LISTED:
                bad.append(exc.message)
    if bad:
        more = f" (and {count - len(bad)} more)" if count > len(bad) else ""
        raise UsageError(f"{count} bad URL line(s) in {source}: " + "; ".join(bad) + more,
                         hint="each line holds one absolute http(s) URL; '#' starts a comment")


def build_targets(urls: list[str], url_files: list[Target], prefixes: list[str], tags: list[str],
                  hosts: list[str], everything: bool) -> list[Target]:
    from edgectl.parse import _valid_host, ascii_host, check_text

    targets = [url_target(u) for u in urls] + list(url_files)
    for prefix in prefixes:
        if "://" in prefix:
            targets.append(url_target(prefix, kind="prefix"))
        elif prefix.startswith("/"):
            targets.append(Target("prefix", prefix.strip()))
        else:
            raise UsageError(f"prefix {prefix!r} must be a path starting with '/' or a full URL",
                             hint="e.g. --prefix /docs/ or --prefix https://www.example.com/docs/")
    for tag in tags:
        check_text(tag, what="a tag", limit=1024)
        if not tag.strip() or "," in tag:
            raise UsageError(f"tag {tag!r} is not valid", hint="one tag per --tag, without commas")
        targets.append(Target("tag", tag.strip()))
    for host in hosts:
        name = ascii_host(host.strip()).lower().rstrip(".")
        if not name or not _valid_host(name):
            raise UsageError(f"host {host!r} is not a valid hostname")
        targets.append(Target("host", name, host=name))
    if everything:
        targets.append(Target("everything", "*"))
    if not targets:
        raise UsageError("nothing to purge", hint="give --url, --urls-file, --prefix, --tag, --host or --everything")
    return targets


@dataclass(frozen=True)
class PlannedBatch:
    kind: str
    items: tuple[str, ...]


@dataclass
class ProviderPlan:
    name: str
    kind: str
    async_completion: bool
    limits: object  # providers.base.Limits
    batches: list[PlannedBatch] = field(default_factory=list)
    targets: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # purge kind -> targets skipped as unsupported

    @property
    def items(self) -> int:
        return sum(len(b.items) for b in self.batches)

    def estimate(self) -> float:
        """Seconds the rate limits alone need for these batches (the time requests take is extra)."""
        return estimate_seconds(self.limits, [(b.kind, len(b.items)) for b in self.batches])

    def to_record(self) -> dict:
        by_kind: dict[str, dict] = {}
        for batch in self.batches:
            entry = by_kind.setdefault(batch.kind, {"batches": 0, "items": 0})
            entry["batches"] += 1
            entry["items"] += len(batch.items)
        return {"provider": self.name, "kind": self.kind, "targets": self.targets, "items": self.items,
                "calls": len(self.batches), "estimate_s": round(self.estimate(), 3),
                "async_completion": self.async_completion, "by_kind": by_kind, "skipped": dict(self.skipped)}


def estimate_seconds(limits, batches: list[tuple[str, int]]) -> float:
    """Buckets start full at the depth the executor keeps; each then needs (cost - depth) / rate
    seconds, and buckets drain in parallel. The time the requests themselves take is extra."""
    from edgectl.cdn.execute import effective_burst

    cost: dict[str, float] = {}
    for kind, count in batches:
        name = limits.bucket_for[kind]
        bucket = limits.buckets[name]
        cost[name] = cost.get(name, 0.0) + (min(count, bucket.burst) if bucket.per_item else 1)
    seconds = 0.0
    for name, total in cost.items():
        seconds = max(seconds, max(0.0, total - effective_burst(limits, name)) / limits.buckets[name].rate)
    return seconds


@dataclass
class PurgePlan:
    targets: list[Target]
    headers: dict[str, str]
    providers: list[ProviderPlan]
    left_out: list[str] = field(default_factory=list)  # broken provider tables the mapping passed by

    def skipped(self) -> list[str]:
        """One line per provider and target kind skipped with --skip-unsupported, and per provider
        left out of the hostname mapping because its table is broken."""
        return list(self.left_out) + [f"{p.name} ({p.kind}) cannot purge by {kind}: {count} target(s) skipped"
                                      + ("; nothing left for it to purge" if not p.batches else "")
                                      for p in self.providers for kind, count in p.skipped.items()]

    @property
    def calls(self) -> int:
        return sum(len(p.batches) for p in self.providers)

    def estimate(self) -> float:
        return max((p.estimate() for p in self.providers), default=0.0)

    def to_record(self) -> dict:
        counts: dict[str, int] = {}
        for target in self.targets:
            counts[target.kind] = counts.get(target.kind, 0) + 1
        return {"targets": counts, "calls": self.calls, "estimate_s": round(self.estimate(), 3),
                "headers": sorted(self.headers), "providers": [p.to_record() for p in self.providers]}


def _listed(problems: list[str]) -> str:
    more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
    return "; ".join(problems[:MAX_LISTED]) + more


def assign(targets: list[Target], providers: list, explicit: bool) -> dict[str, list[Target]]:
    """Which provider purges which targets.

    Named providers take every target; a URL whose host a provider does not declare (when it declares
    any) is an error, since the path alone would purge the wrong site. Without named providers, each
    target that names a host goes to every provider declaring that host (CDNs in layers are all
    purged), and a target without a host is an error unless only one provider is configured.
    """
    assigned: dict[str, list[Target]] = {p.name: [] for p in providers}
    problems: list[str] = []
    for target in targets:
        host = target.host
        if explicit:
            for provider in providers:
                declared = provider.hosts()
                if host and declared and target.kind != "host" and host not in declared:
                    problems.append(f"provider {provider.name} does not serve {host} ({target.value})")
                else:
                    assigned[provider.name].append(target)
            continue
        if host is None:
            if len(providers) == 1:  # one provider configured: targets without a host can only mean it
                assigned[providers[0].name].append(target)
            else:
                problems.append(f"{'an' if target.kind == 'everything' else 'a'} {target.kind} target "
                                f"({target.value}) names no host")
            continue
        owners = [p for p in providers if host in p.hosts()]
        if not owners:
            problems.append(f"no provider serves {host} ({target.value})")
        for provider in owners:
            assigned[provider.name].append(target)
    if problems:
        declared = sorted({h for p in providers for h in p.hosts()})
        hosts = f"hosts in config: {', '.join(declared)}" if declared else "no provider declares hosts"
        hint = (f"add the host to the provider's hosts in config, or drop the URL; {hosts}" if explicit
                else f"name the providers with --provider NAME or --all-providers; {hosts}")
        raise UsageError(f"cannot map {len(problems)} target(s) to a provider: {_listed(problems)}", hint=hint)
    return assigned


def make_plan(targets: list[Target], providers: list, *, explicit: bool, headers: dict[str, str] | None = None,
              skip_unsupported: bool = False) -> PurgePlan:
    from edgectl.providers.base import InvalidTarget

    headers = headers or {}
    assigned = assign(targets, providers, explicit)
    plans: list[ProviderPlan] = []
    unsupported: list[str] = []
    invalid: list[str] = []
    for provider in providers:
        limits = provider.limits()
        plan = ProviderPlan(provider.name, provider.kind, provider.async_completion, limits)
        grouped: dict[str, dict[str, None]] = {}
        for target in assigned[provider.name]:
            if target.kind not in provider.purge_kinds:
                plan.skipped[target.kind] = plan.skipped.get(target.kind, 0) + 1
                continue
            if target.kind == "url" and headers and not provider.purge_headers:
                unsupported.append(f"{provider.name} ({provider.kind}) cannot purge with request headers")
                continue
            values = [target.value]
            if target.kind == "prefix" and target.host is None and provider.hosts():
                # a path prefix means that path on every host the provider serves
                values = [f"https://{host}{target.value}" for host in provider.hosts()]
            try:
                items = [provider.normalise(target.kind, value) for value in values]
            except InvalidTarget as exc:
                invalid.append(f"{target.where + ': ' if target.where else ''}{provider.name}: {exc.message}")
                continue
            plan.targets += 1
            for item in items:
                grouped.setdefault(target.kind, {})[item] = None  # ordered de-duplication
        for kind, skipped in plan.skipped.items():
            if not skip_unsupported:
                able = ", ".join(k for k in TARGET_KINDS if k in provider.purge_kinds)
                unsupported.append(f"{provider.name} ({provider.kind}) cannot purge by {kind} "
                                   f"({skipped} target(s)); it purges by {able}")
        for kind in TARGET_KINDS:
            items = list(grouped.get(kind, {}))
            size = max(1, int(limits.batch_size.get(kind, 1)))
            for start in range(0, len(items), size):
                plan.batches.append(PlannedBatch(kind, tuple(items[start:start + size])))
        plans.append(plan)
    if unsupported:
        raise UsageError(_listed(sorted(set(unsupported))),
                         hint="pass --skip-unsupported to purge what each provider can and skip the rest")
    if invalid:
        raise UsageError(f"{len(invalid)} target(s) cannot be purged as written: {_listed(invalid)}")
    if not any(p.batches for p in plans):
        raise UsageError("nothing left to purge after skipping unsupported targets")
    return PurgePlan(targets, headers, plans)
