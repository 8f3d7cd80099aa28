"""`cache warm` as a typed request: plan it, run it (one process or several), and judge the result."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from itertools import chain
from typing import Any, Callable, Iterator

from edgectl.cache import engine
from edgectl.cache.engine import Job, Variant
from edgectl.errors import EdgectlError, Interrupted, OperationFailed, StateError, UsageError

Warn = Callable[[str], None]


@dataclass(frozen=True)
class EngineOptions:
    """How hard a run warms; a resumed run keeps its own unless told otherwise."""

    concurrency: int = 64
    rate: float | None = None
    timeout: str = "10s"
    retries: int = 2
    hash: bool = False
    max_error_rate: float | None = None
    workers: int = 1
    per_host: int = 0

    @classmethod
    def merged(cls, given: dict[str, Any], stored: dict[str, Any] | None = None) -> "EngineOptions":
        """What was given now, else what the run was started with, else the default.

        A --rate a run was started with must not fall away when it is resumed without one.
        """
        stored = stored or {}
        values = {}
        for f in fields(cls):
            if given.get(f.name) is not None:
                values[f.name] = given[f.name]
            elif stored.get(f.name) is not None:
                values[f.name] = stored[f.name]
        return cls(**values)

    def settings(self) -> engine.Settings:
        """The engine's settings, the options checked."""
        from edgectl.parse import parse_duration

        per_request = parse_duration(self.timeout, what="--timeout")
        if per_request <= 0:
            raise UsageError("--timeout must be more than zero")
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise UsageError(f"--rate must be a number of requests a second, not {self.rate}")
        if self.max_error_rate is not None and not 0 <= self.max_error_rate <= 1:
            raise UsageError(f"--max-error-rate must be between 0 and 1, not {self.max_error_rate}")
        return engine.Settings(concurrency=self.concurrency, rate=self.rate, timeout=per_request,
                               retries=self.retries, hash_body=self.hash, per_host=self.per_host)


@dataclass(frozen=True)
class WarmRequest:
    """Everything a warm run is: its sources, filters, nodes, variants and engine options.

    It is what `warm_runs.options` stores (`to_record`), so a resumed run is the same run.
    """

    urls: tuple[str, ...] = ()
    urls_file: str | None = None
    sitemaps: tuple[str, ...] = ()
    from_robots: str | None = None
    from_purge: str | None = None
    stale: bool = False
    within: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    lastmod_since: str | None = None
    limit: int | None = None
    shard: str | None = None
    headers: tuple[str, ...] = ()
    accept_encoding: str | None = None
    user_agent: str | None = None
    max_sitemap_bytes: int = 200 * 1024 * 1024
    nodes: tuple[str, ...] | None = None  # pinned nodes, by name, resolved when the run started
    engine: EngineOptions = field(default_factory=EngineOptions)
    variants: tuple[str, ...] = ()  # the variant names, filled in when planned

    @property
    def reads_stdin(self) -> bool:
        return self.urls_file == "-" or "-" in self.sitemaps

    def to_record(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> "WarmRequest":
        """A stored run's request; keys it does not know (from another version) are ignored."""
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                continue
            if key == "engine":
                value = EngineOptions.merged({}, value or {})
            elif isinstance(value, list):
                value = tuple(value)
            values[key] = value
        return cls(**values)


# -- planning ---------------------------------------------------------------------------------------

def pinned_nodes(state, names: list[str] | None, labels: dict[str, str] | None, region: str | None,
                 all_nodes: bool) -> tuple[str, ...] | None:
    """The nodes requests are pinned to, by name; None: through the public hostname."""
    from edgectl.nodes.inventory import NodeFilter, get_nodes, list_nodes

    if not (names or labels or region or all_nodes):
        return None
    if names and (labels or region or all_nodes):
        raise UsageError("name nodes with --nodes or select them with --label/--region/--all-nodes, not both")
    if names:
        nodes = get_nodes(state, names)
    else:
        nodes = [n for n in list_nodes(state, NodeFilter(labels=labels or {}, region=region))
                 if n.status in ("active", "draining")]
    if not nodes:
        raise UsageError("no nodes match", hint="edgectl nodes list shows the registered nodes and their status")
    return tuple(n.name for n in nodes)


def resumed_request(state, run_id: int, engine_given: dict[str, Any]) -> WarmRequest:
    """An interrupted run's own request, claimed for this process; engine options given now win."""
    from edgectl.cache import runs

    record = runs.claim_run(state, run_id)
    request = WarmRequest.from_record(record["options"])
    if request.reads_stdin:
        raise UsageError(f"warm run {run_id} read its URLs from stdin, which cannot be read again")
    return replace(request, engine=EngineOptions.merged(engine_given, record["options"].get("engine")))


@dataclass
class Plan:
    """A warm's jobs, streamed, with the variants they come in and how far the URL list has been read."""

    jobs: Iterator[Job]
    variants: list[Variant]
    read: Callable[[], float | None]


def _split(values: str | None) -> list[str]:
    return [v.strip() for v in (values or "").split(",") if v.strip()]


def plan(state, request: WarmRequest, warn: Warn, *, worker: tuple[int, int] | None = None) -> Plan:
    """Jobs from a request: sources, filters, shard (and this worker's share), nodes and variants."""
    from edgectl.cache import jobs as build
    from edgectl.cache import sources
    from edgectl.nodes.inventory import get_nodes
    from edgectl.parse import parse_headers

    since = None
    if request.lastmod_since:
        from edgectl.timeutil import from_iso

        text = request.lastmod_since
        try:
            since = from_iso(text if "T" in text else text + "T00:00:00Z")
        except ValueError:
            raise UsageError(f"--lastmod-since {text!r} is not an ISO date", hint="e.g. 2026-11-01") from None
    if request.within and not request.stale:
        raise UsageError("--within goes with --stale")
    variant_list = build.variants(parse_headers(list(request.headers)), _split(request.accept_encoding),
                                  _split(request.user_agent))
    pinned = [(n.name, n.endpoint) for n in get_nodes(state, list(request.nodes))] if request.nodes else None
    filters = build.Filters(list(request.include), list(request.exclude), since, request.limit,
                            build.parse_shard(request.shard) if request.shard else None, worker)
    sitemaps = list(request.sitemaps)
    if request.from_robots:
        sitemaps.extend(sources.robots_sitemaps(request.from_robots))
    files: list = []
    parts = [sources.open_sources(list(request.urls), request.urls_file, sitemaps,
                                  max_bytes=request.max_sitemap_bytes, warn=warn,
                                  required=not (request.from_purge or request.stale), files=files)]
    if request.from_purge:
        parts.append(sources.from_purge(state, request.from_purge))
    stale_jobs: list[Job] = []
    if request.stale:
        from edgectl.parse import parse_duration

        within = parse_duration(request.within, what="--within") if request.within else 0.0
        # Each stale entry is warmed where it lives and as the variant it is, so it is fresh again
        # afterwards; read now, not lazily, since sources are consumed on another thread.
        stale_jobs = build.stale_jobs(state, within, [name for name, _ in pinned] if pinned else None, warn=warn)
    job_iter: Iterator[Job] = build.jobs(filters.apply(sources.unique(chain.from_iterable(parts), warn)), pinned,
                                         variant_list)
    if stale_jobs:
        job_iter = chain(job_iter, (job for job in stale_jobs if filters.keeps(job.url)))
    one_file = len(files) == 1 and len(parts) == 1 and not sitemaps and not request.urls and not request.limit

    def read() -> float | None:
        """How much of the URL list has been read, when it is one local file and no --limit cuts it short."""
        if not one_file:
            return None
        handle, size = files[0]
        try:
            return min(1.0, handle.tell() / size) if size else None
        except (OSError, ValueError):  # closed: read to the end
            return 1.0

    return Plan(job_iter, variant_list, read)


def eta_seconds(progress: engine.Progress, read: float | None) -> tuple[float, bool] | None:
    """(seconds left, whether it is an estimate from the file read so far), or None when unknown.

    From the number of requests once the sources are read to the end; before that from how much of
    a single URL file has been read. A sitemap gives none until its end.
    """
    if progress.total is not None and progress.rate > 0:
        return max(1.0, max(0, progress.total - progress.done) / progress.rate), False
    if read and progress.done:
        elapsed = progress.done / progress.rate if progress.rate else 0
        return max(1.0, elapsed * (1 - read) / read), True
    return None


# -- running ------------------------------------------------------------------------------------------

@dataclass
class WarmResult:
    """A finished (or interrupted) run: its id, final status, summary, and the judgement on it."""

    run_id: int
    status: str  # completed | failed | interrupted
    summary: dict[str, Any]
    max_error_rate: float | None = None

    def to_record(self) -> dict[str, Any]:
        return {"id": self.run_id, **self.summary}

    @property
    def too_many_errors(self) -> bool:
        """Above --max-error-rate; without one, a run whose every request failed (cron must hear of it)."""
        data = self.summary
        if self.max_error_rate is not None:
            return data["error_rate"] > self.max_error_rate
        return data["requests"] > 0 and data["errors"] == data["requests"]

    def failure(self) -> EdgectlError | None:
        """The error the run ends in, to raise once it is shown; None when it succeeded."""
        data = self.summary
        if self.status == "interrupted":
            return Interrupted(f"warm run {self.run_id} interrupted after {data['requests']} request(s); what was done"
                               " is recorded", hint=f"continue it: edgectl cache warm --resume {self.run_id}")
        if self.too_many_errors:
            limit = (f"above {self.max_error_rate:.2%}" if self.max_error_rate is not None
                     else "every request failed")
            return OperationFailed(f"warm run {self.run_id}: error rate {data['error_rate']:.2%} ({limit})",
                                   hint=f"edgectl cache show {self.run_id} lists the commonest errors")
        return None


def run(state, request: WarmRequest, warn: Warn, *, resume: int | None = None,
        progress: Callable[[Callable[[], float | None]], Any] | None = None) -> WarmResult:
    """Plan and run a warm (or continue run `resume`), record it, and judge it.

    `progress(read)` may return a context manager yielding an on_progress callback (or None);
    it is used for a single-process run only.
    """
    from contextlib import nullcontext

    from edgectl.cache import runs
    from edgectl.cache.jobs import skip_finished
    from edgectl.process import open_file_allowance

    options = request.engine
    settings = options.settings()
    allowed = open_file_allowance(settings.concurrency)
    if allowed < settings.concurrency:
        warn(f"--concurrency {settings.concurrency} needs more open files than allowed; using {allowed}")
        settings = replace(settings, concurrency=allowed)
        options = replace(options, concurrency=allowed)
    if options.workers > 1 and request.reads_stdin:
        raise UsageError("--workers cannot share stdin", hint="write the URLs to a file and pass --urls-file FILE")
    planned = plan(state, request, warn)
    request = replace(request, engine=options, variants=tuple(v.name for v in planned.variants))
    if resume is None:
        run_id = runs.start_run(state, request.to_record())
    else:
        run_id = resume
        runs.set_options(state, run_id, request.to_record())  # engine options given now are the run's own
    before = runs.result_count(state, run_id)
    started = time.monotonic()
    try:
        if options.workers > 1:
            from edgectl.cache.workers import run_workers

            status = run_workers(state, request, settings, run_id, resuming=resume is not None, warn=warn)
        else:
            job_iter = planned.jobs
            if resume is not None:
                job_iter = skip_finished(job_iter, runs.finished_keys(state, run_id))
            with (progress(planned.read) if progress else nullcontext()) as on_progress:
                status, _ = runs.execute(state, run_id, job_iter, settings, on_progress)
    except EdgectlError as error:
        if not isinstance(error, StateError):  # a source that turned out bad: the run failed, and says why
            data = runs.summary(state, run_id)
            data["failure"] = error.message
            runs.finish_run(state, run_id, "failed", data)
        raise
    data = runs.summary(state, run_id)
    data["elapsed_s"] = round(time.monotonic() - started, 3)
    data["requests_this_run"] = data["requests"] - before
    data["requests_per_s"] = round(data["requests_this_run"] / data["elapsed_s"], 1) if data["elapsed_s"] else None
    result = WarmResult(run_id, status, data, options.max_error_rate)
    if status != "interrupted" and result.too_many_errors:
        result.status = "failed"
    runs.finish_run(state, run_id, result.status, data)
    runs.record_metrics(state, run_id)
    if data["requests"] == 0 and status != "interrupted":
        warn("no URLs were warmed (the sources or filters left none)")
    return result
