"""The metrics history handed on: Prometheus metric families over a window, and samples or rollups as rows.

Prometheus (https://prometheus.io/docs/practices/naming/): every family is prefixed `edgectl_`,
in base units (seconds, bytes, ratios from 0 to 1), and is a gauge. The history holds what
happened in windows, not counters that only go up: a window's total falls when the window moves
on and retention prunes old rollups, so exporting it as a `_total` counter would read as a
counter reset to `rate()`. What the export says instead is what the window was like:

- durations (ms, s): quantiles merged from edgectl's histograms, `edgectl_latency_seconds{quantile="0.95"}`,
  and how many samples they stand on, `edgectl_latency_samples`;
- counts (requests, hits, bytes, errors): a rate over the window, `edgectl_requests_per_second`,
  which sums across nodes and does not change meaning with the window's length;
- levels (cpu, memory, disk in percent; network in mbps; probe outcomes): the window's mean, as a
  ratio or in bytes per second, `edgectl_cpu_ratio`, `edgectl_probe_success_ratio`;
- figures a provider computed (kind "gauge", a Cloudflare p95): the latest in the window, never
  merged, `edgectl_provider_latency_seconds{stat="p95"}`;
- the hit ratio, hits over requests for the same labels, `edgectl_cache_hit_ratio`;
- the nodes table: `edgectl_node_up` (the last probe), `edgectl_node_status{status=}` (one series
  per status, 1 for the node's), `edgectl_node_stale`, `edgectl_node_info{region,country,city}`
  and `edgectl_node_last_heartbeat_timestamp_seconds`;
- `edgectl_export_window_seconds` and `edgectl_history_last_sample_timestamp_seconds`, to tell a
  quiet estate from a history that stopped being fed.

Labels are the series' node, provider and region and its own labels (names sanitized; a name
edgectl or Prometheus uses itself gets a `label_` prefix). The client country multiplies every
family by the countries seen, so it is left out unless asked for; series that differ only by
country are then merged (histograms and counts merge exactly; provider figures cannot be, and
those with a country are left out).

Rows (CSV, JSON lines): the raw samples of a window with the columns `analytics ingest` reads,
so an export loads into another state file or anything else that reads CSV; or with a step,
per-series rollups (count, sum, min, max, mean and percentiles) from the stored minutes, hours
and days, which outlive the raw samples.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator

from edgectl.analytics.metrics import CATALOGUE
from edgectl.analytics.queries import DEFAULT_PERCENTILES
from edgectl.analytics.store import MINUTE, newest_sample_ms

PREFIX = "edgectl_"
_NAMES = {"up": "probe_success"}  # a probe's outcome; Prometheus keeps `up` for its own scrapes
_RESERVED = {"node", "provider", "region", "country", "quantile", "le", "job", "instance"}
_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")

# unit -> (base unit suffix, factor to it, how a window of it is summed up)
_UNITS: dict[str, tuple[str, float, str]] = {
    "ms": ("seconds", 1e-3, "duration"),
    "s": ("seconds", 1.0, "duration"),
    "us": ("seconds", 1e-6, "duration"),
    "percent": ("ratio", 1e-2, "level"),
    "%": ("ratio", 1e-2, "level"),
    "ratio": ("ratio", 1.0, "level"),
    "bool": ("ratio", 1.0, "level"),
    "mbps": ("bytes_per_second", 1e6 / 8, "level"),
    "bytes": ("bytes", 1.0, "level"),
    "count": ("", 1.0, "count"),
}


@dataclass
class Family:
    """A gauge family as Prometheus's text format writes it: a name, its help, samples by label set."""

    name: str
    doc: str
    samples: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)

    def add(self, labels: dict[str, str], value: float) -> None:
        # two groups that come to the same label set (a unit clash, labels that sanitize alike):
        # the first, the one with most samples, stands; a duplicate series would fail the scrape
        self.samples.setdefault(tuple(sorted((k, v) for k, v in labels.items() if v != "")), value)


@dataclass(frozen=True)
class ExportRequest:
    start_ms: int
    end_ms: int
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    by_country: bool = False
    heartbeat_interval: float = 30.0

    @property
    def first_minute(self) -> int:
        """Where the window's rollups begin: the start of the minute --since falls in."""
        return self.start_ms - self.start_ms % MINUTE

    @property
    def window_seconds(self) -> float:
        return max((self.end_ms - self.first_minute) / 1000, 1.0)


class Families:
    """Families by name, in the order first seen."""

    def __init__(self) -> None:
        self.by_name: dict[str, Family] = {}

    def get(self, name: str, doc: str) -> Family:
        family = self.by_name.get(name)
        if family is None:
            family = self.by_name[name] = Family(name, doc)
        return family

    def nonempty(self) -> list[Family]:
        return [f for f in self.by_name.values() if f.samples]


def label_name(key: str) -> str:
    """A series label's key as a Prometheus label name: [a-zA-Z_][a-zA-Z0-9_]*, never one edgectl
    or Prometheus sets itself, never `__` (kept for Prometheus's internal labels)."""
    name = _LABEL_CHARS.sub("_", key) or "_"
    if name[0].isdigit():
        name = "_" + name
    if name in _RESERVED or name.startswith("__") or name.startswith("exported_"):
        name = "label_" + name.lstrip("_")
    return name


def _base(metric: str) -> str:
    return _NAMES.get(metric, metric.replace(".", "_"))


def _unit(unit: str) -> tuple[str, float, str]:
    known = _UNITS.get(unit)
    if known is not None:
        return known
    return _LABEL_CHARS.sub("_", unit.replace("/", "_per_")), 1.0, "level"


def _suffixed(base: str, unit: str) -> str:
    return base if not unit or base.endswith("_" + unit) or base == unit else f"{base}_{unit}"


def _doc(metric: str, unit: str) -> str:
    known = CATALOGUE.get(metric)
    return f"{metric}: {known.doc}" if known else f"{metric} ({unit}), as ingested"


def _labels(series: dict, by_country: bool) -> dict[str, str]:
    out = {"node": series["node"], "provider": series["provider"], "region": series["region"]}
    if by_country:
        out["country"] = series["country"]
    for key, value in sorted(json.loads(series["labels"]).items()):
        out.setdefault(label_name(key), str(value))
    return out


def _treatment(series: dict) -> str:
    if series["kind"] == "gauge":
        return "reported"
    known = CATALOGUE.get(series["metric"])
    if known is not None and known.additive:
        return "count"
    return _unit(series["unit"])[2]


def prometheus_families(state, request: ExportRequest) -> list[Family]:
    """The history over [start, end) and the nodes table, as gauge families (see the module doc)."""
    from edgectl.analytics.histogram import Histogram
    from edgectl.analytics.store import window_histograms

    families = Families()
    start, seconds = request.first_minute, request.window_seconds
    series = {row["id"]: row for row in state.db.query("SELECT * FROM metric_series ORDER BY id")}
    histogram_ids = [i for i, s in series.items() if s["kind"] == "histogram"]
    histograms = window_histograms(state, histogram_ids, start, request.end_ms)

    # series that differ only by what is not exported (the country) merge, exactly
    groups: dict[tuple, Histogram] = {}
    group_labels: dict[tuple, dict[str, str]] = {}
    for series_id, histogram in histograms.items():
        if not histogram.count:
            continue
        row = series[series_id]
        labels = _labels(row, request.by_country)
        key = (row["metric"], row["unit"], _treatment(row), tuple(sorted(labels.items())))
        groups.setdefault(key, Histogram()).merge(histogram)
        group_labels[key] = labels
    quantiles = [p / 100 for p in request.percentiles]
    hits_by_labels: dict[tuple, float] = {}
    requests_by_labels: dict[tuple, float] = {}
    for key in sorted(groups, key=lambda k: -groups[k].count):
        metric, unit, treatment, labels_key = key
        histogram, labels = groups[key], group_labels[key]
        base, (suffix, factor, _) = _base(metric), _unit(unit)
        doc = _doc(metric, unit)
        if treatment == "duration":
            family = families.get(PREFIX + _suffixed(base, suffix),
                                  f"{doc}. Quantiles over the export window, from edgectl's histograms (within 0.54%).")
            for q, value in zip(quantiles, histogram.quantiles(quantiles)):
                family.add({**labels, "quantile": f"{q:g}"}, value * factor)
            families.get(f"{PREFIX}{base}_samples", f"{doc}. Samples in the export window.").add(labels, histogram.count)
        elif treatment == "count":
            family = families.get(f"{PREFIX}{_suffixed(base, suffix)}_per_second",
                                  f"{doc}. Per second, over the export window.")
            family.add(labels, histogram.sum * factor / seconds)
            if metric == "cache.hits":
                hits_by_labels[labels_key] = hits_by_labels.get(labels_key, 0.0) + histogram.sum
            elif metric == "requests":
                requests_by_labels[labels_key] = requests_by_labels.get(labels_key, 0.0) + histogram.sum
        else:
            family = families.get(PREFIX + _suffixed(base, suffix), f"{doc}. The mean over the export window.")
            family.add(labels, histogram.sum / histogram.count * factor)
    ratio = families.get(PREFIX + "cache_hit_ratio", "Requests answered from the cache over requests served, "
                         "over the export window, for the same labels.")
    for labels_key, total in requests_by_labels.items():
        if total > 0 and labels_key in hits_by_labels:
            ratio.add(dict(labels_key), hits_by_labels[labels_key] / total)

    _reported(state, families, series, start, request)
    _nodes(state, families, request.heartbeat_interval)
    families.get(PREFIX + "export_window_seconds", "How long a window the windowed families of this export cover.").add(
        {}, seconds)
    last = newest_sample_ms(state)
    if last is not None:
        families.get(PREFIX + "history_last_sample_timestamp_seconds",
                     "When the newest sample in edgectl's history was taken, in seconds since the epoch.").add(
            {}, last / 1000)
    return families.nonempty()


def _reported(state, families: Families, series: dict[int, dict], start: int, request: ExportRequest) -> None:
    """Figures a provider computed: the latest in the window, one series each, never merged."""
    ids = [i for i, s in series.items() if s["kind"] == "gauge" and (request.by_country or not s["country"])]
    if not ids:
        return
    from edgectl.analytics.store import latest_samples

    for series_id, (_, value) in sorted(latest_samples(state, ids, start, request.end_ms).items()):
        row = series[series_id]
        suffix, factor, _ = _unit(row["unit"])
        family = families.get(f"{PREFIX}provider_{_suffixed(_base(row['metric']), suffix)}",
                              f"{_doc(row['metric'], row['unit'])}. As the provider computed it (label stat): "
                              "the latest in the export window.")
        family.add(_labels(row, request.by_country), value * factor)


def _nodes(state, families: Families, heartbeat_interval: float) -> None:
    from edgectl.nodes.inventory import list_nodes
    from edgectl.nodes.model import STATUSES

    nodes = list_nodes(state, heartbeat_interval=heartbeat_interval)
    info = families.get(PREFIX + "node_info", "An edge node edgectl knows, with where it is; always 1.")
    up = families.get(PREFIX + "node_up", "Whether the node's last health probe succeeded (1) or failed (0); "
                      "absent for a node never probed.")
    status = families.get(PREFIX + "node_status", "The node's status in edgectl: 1 for the status it is in, "
                          "0 for the others.")
    stale = families.get(PREFIX + "node_stale", "Whether a node that sends heartbeats has missed three in a row.")
    heartbeat = families.get(PREFIX + "node_last_heartbeat_timestamp_seconds",
                             "When the node's last heartbeat came, in seconds since the epoch.")
    for node in nodes:
        info.add({"node": node.name, "region": node.region or "", "country": node.country or "",
                  "city": node.city or ""}, 1)
        if node.last_check_ok is not None:
            up.add({"node": node.name}, 1 if node.last_check_ok else 0)
        for name in STATUSES:
            status.add({"node": node.name, "status": name}, 1 if node.status == name else 0)
        if node.last_heartbeat is not None:
            stale.add({"node": node.name}, 1 if node.stale else 0)
            heartbeat.add({"node": node.name}, node.last_heartbeat.timestamp())


# ---- rows: raw samples or rollups ---------------------------------------------

SAMPLE_COLUMNS = ("time", "metric", "value", "unit", "node", "country", "region", "provider", "labels", "kind")
SERIES_COLUMNS = ("metric", "unit", "node", "country", "region", "provider", "labels")


@dataclass(frozen=True)
class RowsRequest:
    start_ms: int
    end_ms: int
    metrics: tuple[str, ...] = ()
    step_ms: int | None = None  # None: raw samples; else rollups per step
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES

    def columns(self) -> tuple[str, ...]:
        from edgectl.analytics.queries import field_name

        if self.step_ms is None:
            return SAMPLE_COLUMNS
        return ("start", *SERIES_COLUMNS, "kind", "count", "sum", "min", "max", "mean",
                *(field_name(p) for p in self.percentiles))


def iso_ms(at_ms: int) -> str:
    """Milliseconds since the epoch as edgectl writes times: ISO 8601, UTC, to the millisecond."""
    from edgectl.timeutil import to_iso

    moment = datetime.fromtimestamp(at_ms // 1000, timezone.utc).replace(microsecond=at_ms % 1000 * 1000)
    return to_iso(moment)


def _series_where(metrics: tuple[str, ...]) -> tuple[str, list]:
    if not metrics:
        return "", []
    return f" AND m.metric IN ({', '.join('?' for _ in metrics)})", list(metrics)


def _series_fields(row: dict) -> dict[str, Any]:
    return {"metric": row["metric"], "unit": row["unit"], "node": row["node"], "country": row["country"],
            "region": row["region"], "provider": row["provider"], "labels": json.loads(row["labels"])}


def known_metrics(state) -> list[str]:
    """Every metric name there is: the catalogue's and any other the history holds (ingested under a
    name of its own)."""
    from edgectl.analytics.metrics import CATALOGUE

    stored = {row[0] for row in state.db.execute("SELECT DISTINCT metric FROM metric_series")}
    return sorted(set(CATALOGUE) | stored)


def check_metrics(state, metrics: tuple[str, ...]) -> None:
    """A --metric that names no metric is bad input (a typo would otherwise export nothing, quietly)."""
    from edgectl.errors import UsageError

    known = known_metrics(state)
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise UsageError(f"--metric {unknown[0]!r}: no such metric in the catalogue or the history",
                         hint=f"metrics: {', '.join(known)}")


def export_rows(state, request: RowsRequest) -> Iterator[dict[str, Any]]:
    """The window's raw samples in time order, or with a step its rollups per series per step."""
    if request.step_ms is None:
        yield from _sample_rows(state, request)
    else:
        yield from _rollup_rows(state, request)


def _sample_rows(state, request: RowsRequest) -> Iterator[dict[str, Any]]:
    from edgectl.analytics.store import raw_samples

    where, params = _series_where(request.metrics)
    series = {row[0]: row[1:] for row in state.db.conn.execute(
        f"SELECT id, metric, unit, node, country, region, provider, labels, kind FROM metric_series m WHERE 1{where}",
        params)}
    parsed: dict[str, dict] = {}  # a few label sets, each read once
    for series_id, at, value in raw_samples(state, series, request.start_ms, request.end_ms, by_time=True):
        metric, unit, node, country, region, provider, labels, kind = series[series_id]
        if labels not in parsed:
            parsed[labels] = json.loads(labels)
        yield {"time": iso_ms(at), "metric": metric, "value": value, "unit": unit, "node": node, "country": country,
               "region": region, "provider": provider, "labels": dict(parsed[labels]), "kind": kind}


def _rollup_rows(state, request: RowsRequest) -> Iterator[dict[str, Any]]:
    from edgectl.analytics.queries import field_name
    from edgectl.analytics.store import window_histograms

    where, params = _series_where(request.metrics)
    series = {row["id"]: row for row in state.db.query(f"SELECT * FROM metric_series m WHERE 1{where} ORDER BY id",
                                                        params)}
    if not series:
        return
    step = request.step_ms
    quantiles = [p / 100 for p in request.percentiles]
    bucket = request.start_ms - request.start_ms % step
    while bucket < request.end_ms:
        for series_id, histogram in window_histograms(state, series, bucket, min(bucket + step, request.end_ms)).items():
            if not histogram.count:
                continue
            row = series[series_id]
            # a provider's percentiles are figures, not distributions: theirs are not merged
            values = histogram.quantiles(quantiles) if row["kind"] == "histogram" else [None] * len(quantiles)
            yield {"start": iso_ms(bucket), **_series_fields(row), "kind": row["kind"], "count": histogram.count,
                   "sum": histogram.sum, "min": histogram.min, "max": histogram.max,
                   "mean": histogram.sum / histogram.count,
                   **{field_name(p): v for p, v in zip(request.percentiles, values)}}
        bucket += step


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":")) if value else ""
    return value


def write_rows(handle, fmt: str, columns: tuple[str, ...], rows: Iterator[dict[str, Any]]) -> int:
    """Rows as CSV (a header, labels as JSON) or JSON lines; returns how many were written."""
    count = 0
    if fmt == "csv":
        import csv

        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(row[c]) for c in columns])
            count += 1
    else:
        for row in rows:
            handle.write(json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n")
            count += 1
    return count


def write_rows_file(path, fmt: str, columns: tuple[str, ...], rows: Iterator[dict[str, Any]]) -> int:
    """write_rows into a file beside `path` first, renamed over it once complete."""
    import os
    from pathlib import Path

    from edgectl.errors import UsageError

    path = Path(path).expanduser()
    if path.is_dir():
        raise UsageError(f"--out {path}: is a directory", hint="give the path of a file")
    if not path.parent.is_dir():
        raise UsageError(f"--out {path}: no such directory {path.parent}")
    partial = path.with_name(f".{path.name}.partial{os.getpid()}")
    try:
        with open(partial, "w", encoding="utf-8", newline="") as handle:
            count = write_rows(handle, fmt, columns, rows)
        os.replace(partial, path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return count
