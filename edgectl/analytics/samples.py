"""Samples as they come in: from `analytics ingest` files (CSV or JSON lines), each row checked, bad ones counted by line.

A sample is a time, a metric, a value and its unit, and what it is about: a node, a provider, the
client's country and region, free labels. Rows that cannot be read are reported by line number
and skipped; the good ones are kept. A file with no good row at all is bad input.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from operator import itemgetter
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple

COLUMNS = ("time", "metric", "value", "unit", "node")
OPTIONAL = ("country", "region", "provider", "labels", "kind")
_METRIC = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_UNIT = re.compile(r"[a-z%][a-z0-9%/_]{0,15}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_TEXT_LIMIT = 128


@dataclass(frozen=True)
class SeriesKey:
    metric: str
    unit: str
    node: str = ""
    provider: str = ""
    country: str = ""
    region: str = ""
    labels: str = "{}"  # canonical JSON: sorted keys, no spaces
    kind: str = "histogram"  # or "gauge": a value computed elsewhere (a provider's p95), never merged


class Sample(NamedTuple):
    """A value of a series at a moment; a tuple, as a million of them are made and read in a run."""

    series: SeriesKey
    at_ms: int
    value: float


@dataclass
class ReadReport:
    """What a file held: good samples are yielded; these are the rows that were not."""

    rows: int = 0
    bad: int = 0
    problems: list[str] = field(default_factory=list)  # the first few, "line N: why"

    def add_problem(self, line: int, why: str) -> None:
        self.bad += 1
        if len(self.problems) < 20:
            self.problems.append(f"line {line}: {why}")


class BadRow(ValueError):
    pass


def parse_time(value: Any) -> int:
    """Milliseconds since the epoch from ISO 8601 (a zone, or UTC when none) or epoch seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip()
        seconds = None
        if text[4:5] != "-":  # a date first is no number: not tried as one
            try:
                seconds = float(text)
            except ValueError:
                pass
        if seconds is None:
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                try:  # a lower-case zone letter, which fromisoformat does not take
                    when = datetime.fromisoformat(text.replace("z", "+00:00"))
                except ValueError:
                    raise BadRow(f"time {text!r} is neither ISO 8601 nor epoch seconds") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            seconds = when.timestamp()
    if not math.isfinite(seconds) or not 0 <= seconds < 32503680000:  # before the year 3000
        raise BadRow(f"time {value!r} is out of range")
    return int(round(seconds * 1000))


def _labels(value: Any) -> str:
    if value in (None, "", {}):
        return "{}"
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise BadRow("labels: not a JSON object") from None
        else:  # k=v;k=v
            pairs = {}
            for part in filter(None, (p.strip() for p in re.split(r"[;,]", text))):
                key, eq, val = part.partition("=")
                if not eq or not key.strip():
                    raise BadRow(f"labels: {part!r} is not key=value")
                pairs[key.strip()] = val.strip()
            value = pairs
    if not isinstance(value, Mapping) or not all(isinstance(v, (str, int, float, bool)) for v in value.values()):
        raise BadRow("labels: an object of names to plain values")
    return json.dumps({str(k): str(v) for k, v in value.items()}, sort_keys=True, separators=(",", ":"))


def _text(row: Mapping[str, Any], key: str, pattern: re.Pattern | None = None, *, upper: bool = False) -> str:
    value = row.get(key)
    if value is None:
        return ""
    text = str(value).strip()
    text = text.upper() if upper else text
    if len(text) > _TEXT_LIMIT or (text and pattern is not None and not pattern.fullmatch(text)):
        raise BadRow(f"{key} {text[:40]!r} is not valid")
    return text


def sample_from(row: Mapping[str, Any]) -> Sample:
    """One row (a CSV record or a JSON object) as a sample; BadRow says why it is not one."""
    missing = [c for c in ("time", "metric", "value", "unit") if row.get(c) in (None, "")]
    if missing:
        raise BadRow(f"missing {', '.join(missing)}")
    unknown = sorted(set(row) - set(COLUMNS) - set(OPTIONAL))
    if unknown:
        raise BadRow(f"unknown column {', '.join(unknown)}")
    metric = _text(row, "metric").lower()
    if not _METRIC.fullmatch(metric):
        raise BadRow(f"metric {metric[:40]!r}: lower-case letters, digits, '_' or '.'")
    unit = _text(row, "unit").lower()
    if not _UNIT.fullmatch(unit):
        raise BadRow(f"unit {unit[:20]!r} is not a unit such as ms, bytes, ratio or percent")
    raw = row["value"]
    try:
        value = float(raw) if not isinstance(raw, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise BadRow(f"value {raw!r} is not a finite number")
    expected = _catalogued_unit(metric)
    if expected is not None and unit != expected:
        raise BadRow(f"{metric} is in {expected}, not {unit}" + (
            f" (convert {raw} {unit} to {expected})" if unit in _TIME_UNITS and expected in _TIME_UNITS else ""))
    low, high = value_range(unit)
    if not low <= value <= high:
        raise BadRow(f"value {raw} is outside {_range_text(unit, low, high)}")
    kind = _text(row, "kind").lower() or "histogram"
    if kind not in ("histogram", "gauge"):
        raise BadRow(f"kind {kind[:20]!r}: histogram (values to merge) or gauge (a figure computed elsewhere)")
    key = SeriesKey(metric, unit, _text(row, "node"), _text(row, "provider"),
                    _text(row, "country", _COUNTRY, upper=True), _text(row, "region"), _labels(row.get("labels")), kind)
    at_ms = parse_time(row["time"])
    if at_ms > latest_ms():
        raise BadRow(f"time {row['time']!r} is in the future")
    return Sample(key, at_ms, value)


MAX_VALUE = 1e15  # a petabyte in bytes; larger figures are mistakes, and their sums would overflow
_TIME_UNITS = ("s", "ms", "us")
_RANGES = {"percent": (0.0, 100.0), "bool": (0.0, 1.0), "ratio": (0.0, 1.0)}
_NON_NEGATIVE = ("ms", "s", "us", "count", "bytes", "mbps")
FUTURE_SLACK_MS = 5 * 60_000  # clocks differ: a sample a few minutes ahead is still taken


def value_range(unit: str) -> tuple[float, float]:
    """The values a unit allows: percent 0..100, ratio and bool 0..1, durations and counts not negative."""
    if unit in _RANGES:
        return _RANGES[unit]
    return (0.0 if unit in _NON_NEGATIVE else -MAX_VALUE), MAX_VALUE


def _range_text(unit: str, low: float, high: float) -> str:
    return f"{low:g} to {high:g} for {unit}" if unit in _RANGES else (
        f"0 to {high:g}" if low == 0 else f"-{high:g} to {high:g}")


def _catalogued_unit(metric: str) -> str | None:
    from edgectl.analytics.metrics import CATALOGUE

    known = CATALOGUE.get(metric)
    return known.unit if known else None


def latest_ms() -> int:
    """The latest time a sample may carry: now, and a little for clocks that run ahead."""
    import time

    return int(time.time() * 1000) + FUTURE_SLACK_MS


_LATEST_S = 32503680000  # the year 3000
_new_tuple = tuple.__new__


class _Rows:
    """Rows to samples with each series' fields checked once: a file holds a few series many times.

    A row is taken fast when the rest of it (all but its time and value) was good before, its
    time is epoch seconds or ISO 8601 and its value a finite number; any other row goes through
    sample_from, which says what is wrong exactly as it always did. Samples of one series share
    one SeriesKey object, which the ingest then looks up by identity.
    """

    def __init__(self) -> None:
        # the rest of a good row -> its series and the values its unit allows
        self.keys: dict[tuple, tuple[SeriesKey, float, float]] = {}
        self.shared: dict[SeriesKey, SeriesKey] = {}
        self.latest = latest_ms()

    def quick(self, rest: tuple, when: Any, value: Any, time_of: Callable[[Any], int]) -> Sample | None:
        """The sample, when the row is one of a series seen before and plainly good; else None."""
        known = self.keys.get(rest)
        if known is None or value.__class__ is bool:
            return None
        key, low, high = known
        try:
            number = float(value)
            if low <= number <= high:  # and so finite
                at_ms = time_of(when)
                if at_ms <= self.latest:
                    return Sample(key, at_ms, number)
        except (TypeError, ValueError):  # BadRow is a ValueError
            pass
        return None

    def checked(self, rest: tuple, row: Mapping[str, Any]) -> Sample:
        sample = sample_from(row)  # raises BadRow for a bad row
        key = self.shared.setdefault(sample.series, sample.series)
        self.keys[rest] = (key, *value_range(key.unit))
        return sample if key is sample.series else Sample(key, sample.at_ms, sample.value)


def read_csv(lines: Iterable[str], report: ReadReport) -> Iterator[Sample]:
    reader = csv.reader(lines)
    header = next(reader, None) or []
    missing = [c for c in ("time", "metric", "value", "unit") if c not in header]
    if missing:
        report.add_problem(1, f"the header lacks {', '.join(missing)} (columns: {', '.join(COLUMNS + OPTIONAL)})")
        return
    width = len(header)
    when_at, value_at = header.index("time"), header.index("value")
    others = [i for i in range(width) if i not in (when_at, value_at)]
    rest_of = itemgetter(*others) if len(others) > 1 else lambda fields: (fields[others[0]],)
    rows = _Rows()
    known = rows.keys.get
    latest = rows.latest
    for fields in reader:
        if not fields:  # a blank line, which csv.DictReader skipped too
            continue
        report.rows += 1
        if len(fields) != width:
            if len(fields) > width:
                report.add_problem(reader.line_num, "more fields than the header names")
                continue
            fields += [None] * (width - len(fields))
        rest = rest_of(fields)
        entry = known(rest)
        if entry is not None:  # a series seen before: the row's time and value, inline (a million rows)
            key, low, high = entry
            when = fields[when_at]
            try:
                number = float(fields[value_at])
                if when[4:5] != "-":
                    seconds = float(when)
                    at_ms = round(seconds * 1000) if 0 <= seconds < _LATEST_S else parse_time(when)
                else:
                    at_ms = parse_time(when)
            except (TypeError, ValueError):  # BadRow is a ValueError
                pass
            else:
                if low <= number <= high and at_ms <= latest:  # in range, so finite, and not ahead
                    yield _new_tuple(Sample, (key, at_ms, number))
                    continue
        try:
            sample = rows.checked(rest, {k: v for k, v in zip(header, fields) if v != ""})
        except BadRow as exc:
            report.add_problem(reader.line_num, str(exc))
            continue
        yield sample


def read_jsonl(lines: Iterable[str], report: ReadReport) -> Iterator[Sample]:
    rows = _Rows()
    for line, text in enumerate(lines, 1):
        if not text.strip():
            continue
        report.rows += 1
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            report.add_problem(line, f"not JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            report.add_problem(line, "not a JSON object")
            continue
        rest = tuple(item for item in row.items() if item[0] not in ("time", "value"))
        try:
            hash(rest)
        except TypeError:  # labels given as an object: checked each time
            rest = (line,)
        sample = rows.quick(rest, row.get("time"), row.get("value"), parse_time)
        if sample is None:
            try:
                sample = rows.checked(rest, row)
            except BadRow as exc:
                report.add_problem(line, str(exc))
                continue
        yield sample


READERS = {"csv": read_csv, "jsonl": read_jsonl}
