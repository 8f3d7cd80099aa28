"""Charts of values over time from plain numbers: block-character lines for a terminal, SVG for HTML.

A Chart is a few Series of (step start in ms, value or None) sharing their steps, a unit, and
optionally a target (100 ms of latency, a 90% hit ratio) with the side of it that is good. The
terminal form is a list of lines of styled segments (the caller decides whether styles become
colour); the SVG form is a string whose text is escaped. Nothing here reads the state or prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from html import escape
from typing import Callable, Iterable, Sequence

Point = tuple[int, "float | None"]

BLOCKS = " ▁▂▃▄▅▆▇█"  # BLOCKS[n]: a cell filled n eighths from the bottom
TARGET_MARK = "╌"
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#ff9da7",
           "#bab0ac", "#86bcb6")
TARGET_COLOUR = "#d62728"
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000


@dataclass(frozen=True)
class Series:
    """One group's values, step by step; None where the step has no data."""

    name: str
    points: tuple[Point, ...]

    @property
    def values(self) -> list[float | None]:
        return [v for _, v in self.points]

    @property
    def present(self) -> list[float]:
        return [v for _, v in self.points if v is not None]


@dataclass(frozen=True)
class Chart:
    title: str
    series: tuple[Series, ...]
    unit: str = "ms"  # ms | ratio | anything else, shown after the number
    target: float | None = None
    higher_is_better: bool = False  # a hit ratio; latency is better lower
    step_ms: int = 0
    start_ms: int | None = None  # the window drawn; unset, the steps' own span
    end_ms: int | None = None

    @property
    def has_data(self) -> bool:
        return any(s.present for s in self.series)

    def worse(self, value: float) -> bool:
        """Whether a value misses the target."""
        if self.target is None:
            return False
        return value < self.target if self.higher_is_better else value > self.target

    def span(self) -> tuple[int, int]:
        starts = [at for s in self.series for at, _ in s.points]
        lo = self.start_ms if self.start_ms is not None else min(starts, default=0)
        hi = self.end_ms if self.end_ms is not None else max(starts, default=0) + self.step_ms
        return lo, max(hi, lo + 1)


def ratio_chart(title: str, series: Iterable[Series], *, target: float | None = 0.9, step_ms: int = 0,
                start_ms: int | None = None, end_ms: int | None = None) -> Chart:
    """A chart of ratios (0 to 1, shown as percentages) that should stay above target: the cache hit ratio."""
    return Chart(title, tuple(series), unit="ratio", target=target, higher_is_better=True, step_ms=step_ms,
                 start_ms=start_ms, end_ms=end_ms)


def latency_chart(title: str, series: Iterable[Series], *, target: float | None = 100.0, step_ms: int = 0,
                  start_ms: int | None = None, end_ms: int | None = None) -> Chart:
    """A chart of latencies in ms that should stay below target."""
    return Chart(title, tuple(series), unit="ms", target=target, step_ms=step_ms, start_ms=start_ms, end_ms=end_ms)


# ---- numbers and times as text ---------------------------------------------------------------

def format_value(value: float | None, unit: str) -> str:
    """12.3ms, 1.25s, 93.4%, 17 requests."""
    if value is None:
        return "-"
    if value == 0:
        return "0%" if unit == "ratio" else "0ms" if unit == "ms" else f"0 {unit}".rstrip()
    if unit == "ratio":
        text = f"{value * 100:.1f}%" if value < 0.9995 or value >= 1 else f"{value * 100:.2f}%"
        return text.replace(".0%", "%")
    if unit == "ms":
        if abs(value) >= 10_000:
            return f"{value / 1000:.0f}s"
        if abs(value) >= 1000:
            return f"{value / 1000:.2f}s"
        return f"{value:.0f}ms" if abs(value) >= 100 else f"{value:.1f}ms"
    return f"{value:g} {unit}".rstrip()


def _digits(step: float) -> int:
    """The decimals that multiples of a tick spacing need: 0 for 5, 1 for 2.5, 2 for 0.25."""
    for digits in range(7):
        if abs(round(step, digits) - step) <= 1e-9 * max(1.0, abs(step)):
            return digits
    return 6


def _tick_text(value: float, unit: str, step: float) -> str:
    """An axis label: as few digits as the tick spacing needs."""
    if unit == "ratio":
        return f"{value * 100:.{_digits(step * 100)}f}%"
    if unit == "ms" and step >= 500:
        return f"{value / 1000:.{_digits(step / 1000)}f}s"
    return f"{value:.{_digits(step)}f}" + ("ms" if unit == "ms" else "")


def format_duration(ms: int) -> str:
    """90000 -> 1m30s; 7200000 -> 2h; 0 -> 0s."""
    seconds = int(ms // 1000)
    parts = []
    for size, name in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if seconds >= size:
            parts.append(f"{seconds // size}{name}")
            seconds %= size
    return "".join(parts) or "0s"


def time_label(ms: int, span_ms: int) -> str:
    """A moment as an axis shows it (UTC): 14:30 within a day, 25 Nov 14:00 over more, 25 Nov at midnight."""
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    if span_ms <= DAY + HOUR:
        return moment.strftime("%H:%M")
    if moment.hour == 0 and moment.minute == 0:
        return moment.strftime("%d %b")
    return moment.strftime("%d %b %H:%M")


# ---- scales ----------------------------------------------------------------------------------

def nice_step(span: float, ticks: int = 5) -> float:
    """A round tick spacing (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` ticks over span."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(1, ticks)
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * power * 1.0000001:
            return m * power
    return 10 * power


def value_range(chart: Chart) -> tuple[float, float]:
    """The y range a chart is drawn over: from zero for latencies (heights stay proportional), from just
    under the lowest value for ratios (a hit ratio lives between 80% and 100%), the target always inside."""
    values = [v for s in chart.series for v in s.present]
    if chart.target is not None:
        values.append(chart.target)
    if not values:
        return (0.0, 1.0)
    lo, hi = min(values), max(values)
    if chart.unit == "ratio":
        lo = max(0.0, lo - max(0.02, (hi - lo) * 0.1))
        hi = min(1.0, hi + max(0.01, (hi - lo) * 0.05)) if hi <= 1 else hi
        step = nice_step(hi - lo)
        return math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    lo = min(0.0, lo)
    hi = hi * 1.08 if hi > 0 else 1.0
    step = nice_step(hi - lo)
    return lo, math.ceil(hi / step) * step


def ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    step = nice_step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9) * step
    out, n = [], 0
    while first + n * step <= hi + step * 1e-9:
        out.append(round(first + n * step, 12))
        n += 1
    return out


TIME_STEPS = (MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 20 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR,
              3 * HOUR, 4 * HOUR, 6 * HOUR, 8 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY)


def time_ticks(start_ms: int, end_ms: int, count: int = 8) -> list[int]:
    """Round moments (whole minutes, hours, days in UTC) about `count` of them across [start, end]."""
    span = end_ms - start_ms
    step = next((s for s in TIME_STEPS if span / s <= count), TIME_STEPS[-1])
    first = start_ms + (-start_ms) % step
    return list(range(first, end_ms + 1, step))


# ---- the terminal ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Segment:
    """A piece of a line and its style (a rich style name: "red", "dim"...); "" is plain."""

    text: str
    style: str = ""


Line = list[Segment]


def plain(lines: Sequence[Line]) -> str:
    """The lines as text without styles."""
    return "\n".join("".join(s.text for s in line).rstrip() for line in lines)


def resample(values: Sequence[float | None], columns: int, pick: Callable[[list[float]], float] = max
             ) -> list[float | None]:
    """At most `columns` values: neighbouring steps merged, each group answered by `pick` of its values."""
    if columns <= 0:
        return []
    if len(values) <= columns:
        return list(values)
    out: list[float | None] = []
    for i in range(columns):
        chunk = [v for v in values[i * len(values) // columns:(i + 1) * len(values) // columns] if v is not None]
        out.append(pick(chunk) if chunk else None)
    return out


def fill_levels(values: Sequence[float | None], lo: float, hi: float, levels: int) -> list[int]:
    """Each value as how many of `levels` eighth-cells it fills: at least 1 for a value, 0 for None."""
    out = []
    for v in values:
        if v is None:
            out.append(0)
        elif hi <= lo:
            out.append(max(1, levels // 2))
        else:
            out.append(min(levels, max(1, round((v - lo) / (hi - lo) * levels))))
    return out


def sparkline(values: Sequence[float | None], lo: float | None = None, hi: float | None = None) -> str:
    """One row of blocks, the lowest ▁ and the highest █; a space where there is no value."""
    present = [v for v in values if v is not None]
    lo = min(present, default=0.0) if lo is None else lo
    hi = max(present, default=0.0) if hi is None else hi
    return "".join(BLOCKS[n] for n in fill_levels(values, lo, hi, 8))


@dataclass
class _Layout:
    rows: int  # rows of blocks per group
    name_width: int
    plot: int  # columns of the plot
    stretch: int  # columns per value
    stats_beside: bool  # a one-row group's figures on its own line (False) or after the plot


def _layout(names: Sequence[str], width: int, rows: int | None, points: int) -> _Layout:
    groups = max(1, len(names))
    width = max(10, width)
    if rows is None:
        rows = 1 if width < 40 else 6 if groups == 1 else 3 if groups <= 4 else 1
    if rows == 1:
        name_width = min(max((len(n) for n in names), default=1), 18, max(4, width // 4))
        stats = 30 if width >= name_width + 1 + 24 + 30 else 0  # "  max 114ms  last 75.3ms  ▲32"
        plot = width - name_width - 1 - stats
        if plot < 8:
            name_width, plot = 0, width  # the name goes on a line of its own
        return _Layout(1, name_width, plot, max(1, min(4, plot // max(1, points))), bool(stats))
    gutter = 9  # "  180ms ┤"
    plot = max(8, width - gutter)
    return _Layout(rows, 0, plot, max(1, min(4, plot // max(1, points))), False)


def plot_columns(names: Sequence[str], width: int, rows: int | None = None, max_groups: int = 12) -> int:
    """How many steps a terminal chart of these groups shows one column each at this width: a caller
    asks for that many steps or fewer, rather than have neighbouring ones merged."""
    return _layout(names[:max_groups], width, rows, 1).plot


def _marker(chart: Chart) -> str:
    """The mark before a count of steps that miss the target: ▲ over a ceiling, ▼ under a floor."""
    return "▼" if chart.higher_is_better else "▲"


def _missed(chart: Chart, series: Series) -> int:
    return sum(1 for v in series.present if chart.worse(v)) if chart.target is not None else 0


def _marker_legend(chart: Chart) -> str:
    """What the short figures' mark means, for the caption: "▲n = steps over 100ms"."""
    word = "under" if chart.higher_is_better else "over"
    return f"{_marker(chart)}n = steps {word} {format_value(chart.target, chart.unit)}"


def _stats(chart: Chart, series: Series, *, short: bool) -> Line:
    present = series.present
    if not present:
        return [Segment("no data", "dim")]
    last = next(v for v in reversed(series.values) if v is not None)
    unit = chart.unit
    out = [Segment(f"min {format_value(min(present), unit)}  max {format_value(max(present), unit)}  "
                   if not short else f"max {format_value(max(present), unit)}  "),
           Segment("last "), Segment(format_value(last, unit), "bold")]
    if chart.target is not None:
        missed = _missed(chart, series)
        if short:
            out.append(Segment(f"  {_marker(chart)}{missed}" if missed else "", "red" if missed else ""))
        else:
            word = "under" if chart.higher_is_better else "over"
            out.append(Segment(f"  {missed} of {len(present)} steps {word} {format_value(chart.target, unit)}",
                               "red" if missed else "green"))
    return out


def terminal_chart(chart: Chart, width: int = 80, *, rows: int | None = None, max_groups: int = 12) -> list[Line]:
    """The chart as lines of at most `width` columns: small block charts with a value axis and the target
    line, one per group, or one sparkline row per group when there are many groups or little room.

    Every group is drawn on the same scale, so heights compare across groups. A value that misses the
    target is styled "red", one that meets it "green"; the target is also drawn (as ╌ across the rows
    where it falls) or counted in the figures, so the chart reads the same without colour: where the
    figures are short, as "▲3" (three steps over the target; ▼ under it for a ratio), the caption line
    says what the mark counts. The first `max_groups` groups are drawn (a caller puts the ones that
    matter first) and the others counted.
    """
    left_out = chart.series[max_groups:]
    # names come from the history (samples anyone could ingest): no control characters reach a terminal
    chart = replace(chart, title=_printable(chart.title),
                    series=tuple(replace(s, name=_printable(s.name)) for s in chart.series[:max_groups]))
    steps = max((len(s.points) for s in chart.series), default=0)
    layout = _layout([s.name for s in chart.series], width, rows, steps)
    pick = min if chart.higher_is_better else max  # merged steps keep their worst
    columns = max(1, layout.plot // layout.stretch)
    drawn = [(s, resample(s.values, columns, pick)) for s in chart.series]
    lo, hi = value_range(chart)
    present = [v for _, vs in drawn for v in vs if v is not None]
    if layout.rows == 1:
        # a sparkline shows the shape: from zero for latencies, from the lowest value for ratios
        lo = lo if chart.unit != "ratio" else min(present, default=lo)
        hi = max(present, default=hi)
    elif chart.unit != "ratio":
        # rows are few: the highest value (or the target) near the top rather than a round number
        hi = max(present + ([chart.target] if chart.target is not None else []), default=hi) * 1.05 or hi
    if not chart.has_data:
        lines = [_caption(chart, width, marked=False), [Segment("no data in this window", "dim")]]
        return [_cut(line, width) for line in lines]
    lines: list[Line] = []
    marked = False  # whether a group's figures carry the ▲n mark, which the caption then explains
    for series, values in drawn:
        cells = _cells(chart, values, lo, hi, layout.rows)
        if layout.rows == 1:
            row = cells[0]
            if layout.name_width:
                name = _fit(series.name, layout.name_width)
                line = [Segment(name.ljust(layout.name_width) + " ")] + _stretch(row, layout.stretch)
                if layout.stats_beside:
                    line += [Segment("  ")] + _stats(chart, series, short=True)
                    marked = marked or bool(_missed(chart, series))
                lines.append(line)
            else:
                lines.append([Segment(_fit(series.name, width), "bold")])
                lines.append(_stretch(row, layout.stretch))
            continue
        head = [Segment(_fit(series.name, max(4, width // 3)), "bold"), Segment("  ")]
        full = head + _stats(chart, series, short=False)
        if _width(full) > width:
            full = head + _stats(chart, series, short=True)
            marked = marked or bool(_missed(chart, series))
        lines.append(full)
        labels = _row_labels(chart, lo, hi, layout.rows)
        for r in range(layout.rows - 1, -1, -1):
            label, tick = labels.get(r, ("", "│"))
            lines.append([Segment(f"{label:>7} {tick}", "dim")] + _stretch(cells[r], layout.stretch))
    lines.append(_time_axis(chart, layout, max((len(vs) for _, vs in drawn), default=0) * layout.stretch))
    if left_out:
        lines.append([Segment(f"{len(left_out)} more not drawn: {', '.join(_printable(s.name) for s in left_out[:5])}"
                              + (", …" if len(left_out) > 5 else ""), "dim")])
    head = [_caption(chart, width, marked=marked)]
    if marked and _marker_legend(chart) not in plain(head):
        head.append([Segment(_marker_legend(chart), "dim")])  # no room in the caption: a line of its own
    return [_cut(line, width) for line in head + lines]


def _caption(chart: Chart, width: int, *, marked: bool) -> Line:
    """The chart's first line: its title, the target, what the ▲n figures count (where they appear) and
    the step, as many of them as fit."""
    title = chart.title
    parts = ([f"target {format_value(chart.target, chart.unit)}"] if chart.target is not None else []) + (
        [_marker_legend(chart)] if marked else []) + (
        [f"{format_duration(chart.step_ms)} steps"] if chart.step_ms else [])
    for part in parts:
        if len(title) + 3 + len(part) <= width:
            title += " · " + part
    return [Segment(_fit(title, max(10, width)), "bold")]


def _width(line: Line) -> int:
    return sum(len(s.text) for s in line)


def _cut(line: Line, width: int) -> Line:
    """The line's first `width` columns."""
    out: Line = []
    for segment in line:
        room = width - _width(out)
        if room <= 0:
            break
        out.append(segment if len(segment.text) <= room else Segment(segment.text[:room], segment.style))
    return out


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(1, width - 1)] + "…"


def _cells(chart: Chart, values: list[float | None], lo: float, hi: float, rows: int) -> list[Line]:
    """rows of cells, bottom first: a value's column filled to its height in eighths of a row."""
    filled = fill_levels(values, lo, hi, 8 * rows)
    target_row = _target_row(chart, lo, hi, rows) if chart.target is not None and rows > 1 and hi > lo else None
    out: list[Line] = []
    for r in range(rows):
        line: Line = []
        for v, n in zip(values, filled):
            part = min(8, max(0, n - 8 * r))
            if part:
                line.append(Segment(BLOCKS[part], "red" if chart.worse(v) else "green" if chart.target is not None
                                    else "cyan"))
            elif r == target_row:
                line.append(Segment(TARGET_MARK, "dim"))
            else:
                line.append(Segment(" "))
        out.append(line)
    return out


def _target_row(chart: Chart, lo: float, hi: float, rows: int) -> int:
    """The row (0 the bottom) the target falls in."""
    return min(rows - 1, max(0, (math.ceil((chart.target - lo) / (hi - lo) * 8 * rows) - 1) // 8))


def _stretch(line: Line, times: int) -> Line:
    """Each cell `times` columns wide, neighbours of one style joined into one segment."""
    out: Line = []
    for cell in line:
        text = cell.text * times
        if out and out[-1].style == cell.style:
            out[-1] = Segment(out[-1].text + text, cell.style)
        else:
            out.append(Segment(text, cell.style))
    return out


def _row_labels(chart: Chart, lo: float, hi: float, rows: int) -> dict[int, tuple[str, str]]:
    """Value labels of a block chart's rows: its top, its bottom and the target's row."""
    labels = {rows - 1: (format_value(hi, chart.unit), "┤"), 0: (format_value(lo, chart.unit), "┤")}
    if chart.target is not None and hi > lo:
        labels[_target_row(chart, lo, hi, rows)] = (format_value(chart.target, chart.unit), "╌")
    return {r: (text[-7:], tick) for r, (text, tick) in labels.items()}


def _time_axis(chart: Chart, layout: _Layout, used: int) -> Line:
    """The first and last moments under the plot's `used` columns, and the middle one where there is room."""
    start, end = chart.span()
    indent = 9 if layout.rows > 1 else (layout.name_width + 1 if layout.name_width else 0)
    left, right = time_label(start, end - start), time_label(end, end - start)
    middle = time_label((start + end) // 2, end - start)
    text = left
    for labels in ([left, middle, right + " UTC"], [left, right + " UTC"], [left, right], [left]):
        room = used - sum(map(len, labels))
        if room >= 2 * (len(labels) - 1) or len(labels) == 1:
            gaps = len(labels) - 1
            text = labels[0]
            for n, label in enumerate(labels[1:]):
                text += " " * (room // gaps + (1 if n < room % gaps else 0)) + label
            break
    return [Segment(" " * indent + text, "dim")]


# ---- SVG -------------------------------------------------------------------------------------

def _attr(value: object) -> str:
    return escape(_clean(str(value)), quote=True)


def _clean(text: str) -> str:
    """Text without the control characters XML forbids."""
    return "".join(c for c in text if c in "\t\n\r" or ord(c) >= 32)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


@dataclass(frozen=True)
class SvgBox:
    width: int = 960
    height: int = 320
    left: int = 64
    right: int = 24
    top: int = 44
    bottom: int = 34
    font: str = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def svg_chart(chart: Chart, box: SvgBox | None = None, *, standalone: bool = False) -> str:
    """The chart as an SVG line chart: value axis with round ticks and grid lines, time axis in UTC, a
    line per series (broken where a step has no data; a lone point is a dot), a legend, and the target
    as a dashed line over a tinted band on its bad side. `standalone` adds the namespace a .svg file needs
    (inline in HTML it is not needed)."""
    box = box or SvgBox()
    legend, legend_rows = _legend(chart, box)
    top = max(box.top, 28 + 16 * legend_rows)  # the plot starts under the legend however many rows it takes
    plot_w, plot_h = box.width - box.left - box.right, box.height - top - box.bottom
    start, end = chart.span()
    lo, hi = value_range(chart)

    def x(at: int) -> float:
        return box.left + (min(max(at, start), end) - start) / (end - start) * plot_w

    def y(value: float) -> float:
        value = min(max(value, lo), hi)
        return top + plot_h - (value - lo) / ((hi - lo) or 1) * plot_h

    out: list[str] = []
    ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    label = chart.title + (f", target {format_value(chart.target, chart.unit)}" if chart.target is not None else "")
    out.append(f'<svg{ns} class="chart" viewBox="0 0 {box.width} {box.height}" width="100%" role="img" '
               f'aria-label="{_attr(label)}" font-family="{_attr(box.font)}" font-size="12">')
    out.append(f"<title>{_attr(label)}</title>")
    out.append(f'<rect x="0" y="0" width="{box.width}" height="{box.height}" fill="#ffffff"/>')
    # the bad side of the target, tinted
    if chart.target is not None and lo < chart.target < hi:
        ty = y(chart.target)
        band_y, band_h = (ty, top + plot_h - ty) if chart.higher_is_better else (top, ty - top)
        out.append(f'<rect class="miss" x="{box.left}" y="{_num(band_y)}" width="{plot_w}" height="{_num(band_h)}" '
                   f'fill="{TARGET_COLOUR}" fill-opacity="0.06"/>')
    # value axis: grid lines and labels
    value_ticks = ticks(lo, hi)
    spacing = value_ticks[1] - value_ticks[0] if len(value_ticks) > 1 else hi - lo
    out.append('<g class="y-axis" fill="#5f6b7a" text-anchor="end">')
    for v in value_ticks:
        out.append(f'<line x1="{box.left}" x2="{box.left + plot_w}" y1="{_num(y(v))}" y2="{_num(y(v))}" '
                   f'stroke="#e3e8ee" stroke-width="1"/>')
        out.append(f'<text x="{box.left - 8}" y="{_num(y(v) + 4)}">{_attr(_tick_text(v, chart.unit, spacing))}</text>')
    out.append("</g>")
    # time axis
    out.append('<g class="x-axis" fill="#5f6b7a" text-anchor="middle">')
    base = top + plot_h
    out.append(f'<line x1="{box.left}" x2="{box.left + plot_w}" y1="{base}" y2="{base}" stroke="#9aa5b1"/>')
    for at in time_ticks(start, end, max(3, plot_w // 110)):
        out.append(f'<line x1="{_num(x(at))}" x2="{_num(x(at))}" y1="{base}" y2="{base + 5}" stroke="#9aa5b1"/>')
        out.append(f'<text x="{_num(x(at))}" y="{base + 19}">{_attr(time_label(at, end - start))}</text>')
    out.append("</g>")
    # the target
    if chart.target is not None and lo <= chart.target <= hi:
        ty = _num(y(chart.target))
        text = f"target {format_value(chart.target, chart.unit)}"
        out.append(f'<g class="target"><line x1="{box.left}" x2="{box.left + plot_w}" y1="{ty}" y2="{ty}" '
                   f'stroke="{TARGET_COLOUR}" stroke-width="1.5" stroke-dasharray="6 4"/>'
                   f'<text x="{box.left + plot_w - 4}" y="{_num(y(chart.target) - 5)}" text-anchor="end" '
                   f'fill="{TARGET_COLOUR}" font-size="11" stroke="#ffffff" stroke-width="3" paint-order="stroke">'
                   f'{_attr(text)}</text></g>')
    # the lines
    if not chart.has_data:
        out.append(f'<text class="no-data" x="{box.left + plot_w / 2}" y="{top + plot_h / 2}" '
                   f'text-anchor="middle" fill="#5f6b7a" font-size="15">no data in this window</text>')
    for n, series in enumerate(chart.series):
        colour, dash = _look(n)
        out.append(f'<g class="series" data-series="{_attr(series.name)}" stroke="{colour}" fill="{colour}"{dash}>')
        for run in _runs(series.points):
            mid = chart.step_ms // 2
            if len(run) == 1:
                at, v = run[0]
                out.append(f'<circle cx="{_num(x(at + mid))}" cy="{_num(y(v))}" r="2.5" stroke="none"/>')
            else:
                points = " ".join(f"{_num(x(at + mid))},{_num(y(v))}" for at, v in run)
                out.append(f'<polyline points="{points}" fill="none" stroke-width="2" stroke-linejoin="round" '
                           f'stroke-linecap="round"/>')
        out.append("</g>")
    out.append(legend)
    out.append("</svg>")
    return "".join(out)


def _runs(points: Iterable[Point]) -> list[list[tuple[int, float]]]:
    """Consecutive points with values: a line is broken where a step has none."""
    runs: list[list[tuple[int, float]]] = [[]]
    for at, v in points:
        if v is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((at, v))
    return [r for r in runs if r]


def _look(n: int) -> tuple[str, str]:
    """The colour of the n-th series, and a dash pattern once the palette has been used up."""
    dashes = ("", ' stroke-dasharray="8 3"', ' stroke-dasharray="2 3"')
    return PALETTE[n % len(PALETTE)], dashes[(n // len(PALETTE)) % len(dashes)]


def _legend(chart: Chart, box: SvgBox) -> tuple[str, int]:
    """Swatches and names along the top, wrapping onto as many rows as they need; and how many rows."""
    items = [(*_look(n), s.name) for n, s in enumerate(chart.series)]
    if chart.target is not None:
        items.append((TARGET_COLOUR, ' stroke-dasharray="4 3"', f"target {format_value(chart.target, chart.unit)}"))
    out = ['<g class="legend" font-size="12" fill="#1f2933">']
    x, row = box.left, 0
    for colour, dash, name in items:
        name = _fit(name, 32)
        size = 22 + int(len(name) * 6.8) + 18
        if x + size > box.width - box.right and x > box.left:
            x, row = box.left, row + 1
        ly = 16 + row * 16
        out.append(f'<line x1="{x}" x2="{x + 16}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" '
                   f'stroke-width="3"{dash}/><text x="{x + 22}" y="{ly}">{_attr(name)}</text>')
        x += size
    out.append("</g>")
    return "".join(out), row + 1 if items else 0
