"""Charts: block-character lines for a terminal (`analytics latency --chart`) and SVG line charts."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

from hypothesis import given, settings, strategies as st

from edgectl.analytics.charts import (BLOCKS, Series, latency_chart, plain, ratio_chart, sparkline, svg_chart,
                                      terminal_chart)

ANSI = re.compile(r"\x1b\[")
ANSI_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STEP = 15 * 60_000
START = 1_764_000_000_000 - 1_764_000_000_000 % STEP


def series(name: str, values) -> Series:
    return Series(name, tuple((START + n * STEP, v) for n, v in enumerate(values)))


def write_samples(path, now: float) -> str:
    """Two nodes over the last 12 hours: fra-1 steady near 40 ms, iad-1 rising from 50 to 170 ms."""
    rows = []
    for minute in range(30, 12 * 60, 5):
        at = now - 12 * 3600 + minute * 60
        rows.append({"time": at, "metric": "latency", "value": 40 + minute % 7, "unit": "ms", "node": "fra-1",
                     "region": "eu"})
        rows.append({"time": at, "metric": "latency", "value": 50 + minute / 6, "unit": "ms", "node": "iad-1",
                     "region": "us"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


# ---- sparklines and terminal charts -----------------------------------------------------------

def test_sparkline_heights_follow_values():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    line = sparkline(values)
    assert len(line) == len(values)
    heights = [BLOCKS.index(c) for c in line]
    assert heights[values.index(1.0)] == 1 and heights[values.index(9.0)] == 8
    for (a, ha), (b, hb) in zip(zip(values, heights), zip(values[1:], heights[1:])):
        assert (a < b) <= (ha <= hb) and (a > b) <= (ha >= hb)
    assert sparkline([1.0, None, 2.0]) == "▁ █"  # a step without data is a gap


def test_groups_share_one_scale_and_a_missed_target_is_counted_and_red():
    chart = latency_chart("p95", [series("slow", [150.0] * 20), series("fast", [15.0] * 20)], step_ms=STEP)
    lines = terminal_chart(chart, 100)
    text = plain(lines)
    assert "target 100ms" in text
    assert "20 of 20 steps over 100ms" in text and "0 of 20 steps over 100ms" in text
    slow_rows = [line for line in lines if any(s.style == "red" for s in line)]
    assert slow_rows, "values over the target are styled red"
    filled = [sum(len(s.text) for s in line if s.text.strip() and s.style in ("red", "green")) for line in lines]
    assert max(filled) > 0
    # the slow group fills more rows than the fast one: the same scale for both
    slow_at = text.index("slow")
    fast_at = text.index("fast")
    slow_part, fast_part = text[slow_at:fast_at], text[fast_at:]
    assert slow_part.count("█") > fast_part.count("█")


def test_a_ratio_chart_marks_the_steps_under_the_target():
    chart = ratio_chart("hit ratio", [series("all", [0.95, 0.97, 0.85, 0.8, None, 0.93])], step_ms=STEP)
    text = plain(terminal_chart(chart, 80))
    assert "target 90%" in text and "2 of 5 steps under 90%" in text
    assert "╌" in text  # the target line across the rows it falls in


def test_the_caption_explains_the_marks_of_the_short_figures():
    many = [series(f"node-{n}", [50.0, 120.0, 130.0, 40.0, 200.0]) for n in range(6)]  # sparklines, short figures
    lines = plain(terminal_chart(latency_chart("p95 latency by node", many, step_ms=STEP), 100)).splitlines()
    assert lines[0] == "p95 latency by node · target 100ms · ▲n = steps over 100ms · 15m steps"
    assert all(line.endswith("▲3") for line in lines[1:7])
    # a ratio counts the steps under its floor, and where the caption has no room the legend has a line of its own
    ratios = [series(f"prefix-{n}", [0.95, 0.5, 0.99]) for n in range(6)]
    narrow = plain(terminal_chart(ratio_chart("hit ratio by prefix, last 24h", ratios, step_ms=STEP), 64)).splitlines()
    assert narrow[1] == "▼n = steps under 90%" and narrow[2].endswith("▼1")
    # without a mark, nothing to explain
    calm = [series(f"node-{n}", [50.0, 60.0]) for n in range(6)]
    assert "▲" not in plain(terminal_chart(latency_chart("p95", calm, step_ms=STEP), 100))


@settings(max_examples=60, deadline=None)
@given(width=st.integers(min_value=10, max_value=220),
       groups=st.lists(st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=5000)), min_size=1, max_size=150),
                       min_size=1, max_size=9),
       names=st.text(min_size=1, max_size=40))
def test_no_line_is_wider_than_the_terminal(width, groups, names):
    chart = latency_chart("p95 latency by node, last 24h",
                          [series(f"{names}{n}", values) for n, values in enumerate(groups)], step_ms=STEP)
    for line in terminal_chart(chart, width):
        assert sum(len(s.text) for s in line) <= width


def test_narrow_terminals_get_sparklines_and_wide_ones_axes():
    chart = latency_chart("p95", [series("fra-1", [10.0 * n for n in range(1, 40)])], step_ms=STEP)
    narrow = plain(terminal_chart(chart, 30))
    wide = plain(terminal_chart(chart, 120))
    assert "┤" not in narrow and len(narrow.splitlines()) <= 4
    assert "┤" in wide and "390ms" in wide  # a value axis and the figures beside the name


# ---- SVG -------------------------------------------------------------------------------------

def test_names_reach_the_terminal_without_control_characters():
    chart = latency_chart("p95", [series("evil\x1b[2J\x1b]0;owned\x07", [10.0, 20.0])], step_ms=STEP)
    for width in (20, 100):
        text = plain(terminal_chart(chart, width))
        assert "\x1b" not in text and "\x07" not in text and "evil" in text
    assert "evil?[2J?]0;owned?" in text


def test_svg_is_valid_and_its_text_escaped():
    name = 'eu <script>alert("x")</script> & co'
    chart = latency_chart("p95 <latency>", [series(name, [20.0, 30.0, None, 50.0, None, 40.0, 45.0])],
                          step_ms=STEP)
    svg = svg_chart(chart, standalone=True)
    root = ET.fromstring(svg)  # well-formed XML
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    assert "<script" not in svg
    group = next(g for g in root.iter(f"{ns}g") if g.get("class") == "series")
    assert group.get("data-series") == name
    lines = list(group.iter(f"{ns}polyline"))
    dots = list(group.iter(f"{ns}circle"))
    # broken at each gap: [20, 30], [50] alone as a dot, [40, 45]
    assert [len(p.get("points").split()) for p in lines] == [2, 2] and len(dots) == 1
    ys = [float(pt.split(",")[1]) for p in lines for pt in p.get("points").split()]
    assert ys[0] > ys[1] and ys[2] > ys[3]  # higher values draw higher (smaller y)
    legend = [t.text for g in root.iter(f"{ns}g") if g.get("class") == "legend" for t in g.iter(f"{ns}text")]
    assert legend[-1] == "target 100ms" and legend[0].startswith("eu <script>")
    axis = [t.text for g in root.iter(f"{ns}g") if g.get("class") == "y-axis" for t in g.iter(f"{ns}text")]
    assert axis[0] == "0ms" and all(a.endswith("ms") for a in axis) and len(axis) >= 3
    target = next(g for g in root.iter(f"{ns}g") if g.get("class") == "target")
    assert target.find(f"{ns}line").get("stroke-dasharray")


def test_svg_without_data_says_so():
    svg = svg_chart(latency_chart("p95", [series("fra-1", [None, None])], step_ms=STEP), standalone=True)
    root = ET.fromstring(svg)
    assert any(t.text == "no data in this window" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "polyline" not in svg


# ---- analytics latency --chart -----------------------------------------------------------------

def test_chart_under_the_table_without_colour_off_a_tty(cli, tmp_path):
    cli("analytics", "ingest", write_samples(tmp_path / "s.jsonl", time.time()), "--format", "jsonl")
    run = cli("analytics", "latency", "--since", "12h", "--chart")
    assert run.exit_code == 0, run.stderr
    assert not ANSI.search(run.stdout) and not ANSI.search(run.stderr)
    table, chart = run.stdout.split("p95 latency by node, last 12h", 1)
    assert "iad-1" in table and "fra-1" in table
    assert "target 100ms" in chart and "iad-1" in chart and "fra-1" in chart
    assert "over 100ms" in chart  # iad-1 rises past the target; fra-1 never does
    assert any(c in chart for c in BLOCKS[1:])
    assert max(len(line) for line in chart.splitlines()) <= 80  # no terminal, no $COLUMNS: 80 columns


def test_the_chart_follows_the_percentiles_asked_for(cli, tmp_path):
    cli("analytics", "ingest", write_samples(tmp_path / "s.jsonl", time.time()), "--format", "jsonl")
    run = cli("analytics", "latency", "--since", "12h", "--percentiles", "50,99", "--chart", "--by", "region")
    assert run.exit_code == 0, run.stderr
    assert "p99 latency by region, last 12h" in run.stdout


def test_chart_leaves_machine_output_alone(cli, tmp_path):
    cli("analytics", "ingest", write_samples(tmp_path / "s.jsonl", time.time()), "--format", "jsonl")
    for fmt in ("json", "csv", "jsonl"):
        plain_run = cli("analytics", "latency", "--since", "12h", "-o", fmt)
        charted = cli("analytics", "latency", "--since", "12h", "--chart", "-o", fmt)
        assert charted.exit_code == 0 and charted.stdout == plain_run.stdout
        assert "latency by node" not in charted.stdout + charted.stderr
    assert {json.loads(line)["node"] for line in charted.stdout.splitlines()} == {"fra-1", "iad-1"}


def test_no_chart_without_samples(cli):
    run = cli("analytics", "latency", "--chart")
    assert run.exit_code == 0
    assert run.stdout == "" and "no latency samples" in run.stderr


def _in_a_terminal(args: list[str], env: dict, columns: int = 100) -> str:
    """Run edgectl with a pseudo-terminal as stdin, stdout and stderr; what it wrote, within 60 s."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "edgectl", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        proc.wait(timeout=10)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode()


def test_colour_on_a_terminal_and_none_with_no_color(isolated, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECTL_") and k not in ("NO_COLOR", "COLUMNS")}
    env.update(EDGECTL_STATE=str(isolated / "tty.db"), TERM="xterm-256color")
    ingest = subprocess.run([sys.executable, "-m", "edgectl", "analytics", "ingest",
                             write_samples(tmp_path / "s.jsonl", time.time()), "--format", "jsonl"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert ingest.returncode == 0, ingest.stderr
    coloured = _in_a_terminal(["analytics", "latency", "--since", "12h", "--chart"], env)
    assert ANSI.search(coloured) and "p95 latency by node" in coloured
    assert max(len(ANSI_CODES.sub("", line)) for line in coloured.splitlines()) <= 100  # the terminal's width
    bare = _in_a_terminal(["analytics", "latency", "--since", "12h", "--chart"], {**env, "NO_COLOR": "1"})
    assert "p95 latency by node" in bare and "\x1b[" not in bare
    flag = _in_a_terminal(["--no-color", "analytics", "latency", "--since", "12h", "--chart"], env)
    assert "p95 latency by node" in flag and "\x1b[" not in flag


def test_steps_are_round_and_about_a_hundred_to_a_window():
    from edgectl.analytics.trends import choose_step

    minute, hour, day = 60_000, 3_600_000, 86_400_000
    assert choose_step(0, day) == 15 * minute
    assert choose_step(0, 7 * day) == 2 * hour
    assert choose_step(0, hour) == minute
    assert choose_step(0, 12 * hour, points=40) == 20 * minute
    assert choose_step(0, 12 * hour, points=20) == hour
    assert choose_step(0, 400 * day) == 7 * day
    assert choose_step(0, 40 * 365 * day) % day == 0 and 40 * 365 * day / choose_step(0, 40 * 365 * day) <= 96


def write_traffic(path, now: float) -> str:
    """Requests and cache hits of two nodes over the last 12 hours: fra-1 at 95%, iad-1 at 70%."""
    rows = []
    for minute in range(30, 12 * 60, 10):
        at = now - 12 * 3600 + minute * 60
        for node, hits in (("fra-1", 95), ("iad-1", 70)):
            rows.append({"time": at, "metric": "requests", "value": 100, "unit": "count", "node": node})
            rows.append({"time": at, "metric": "cache.hits", "value": hits, "unit": "count", "node": node})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_cache_chart_draws_the_hit_ratio_against_the_target(cli, tmp_path):
    cli("analytics", "ingest", write_traffic(tmp_path / "t.jsonl", time.time()), "--format", "jsonl")
    run = cli("analytics", "cache", "--since", "12h", "--chart")
    assert run.exit_code == 0, run.stderr
    assert not ANSI.search(run.stdout)
    tables, chart = run.stdout.split("hit ratio by node, last 12h ·", 1)
    assert "target 90%" in chart
    assert "iad-1  min 70%  max 70%  last 70%" in chart and "steps under 90%" in chart
    assert "fra-1  min 95%  max 95%  last 95%  0 of" in chart
    assert chart.index("iad-1") < chart.index("fra-1")  # the worst first, as in the table
    def data(*extra: str) -> dict:
        record = cli("analytics", "cache", "--since", "12h", *extra, "-o", "json").json()
        return {k: v for k, v in record.items() if k not in ("start", "end")}  # the window moves with the clock

    assert data("--chart") == data()
    assert cli("analytics", "cache", "--since", "12h", "--chart", "-o", "csv").stdout == \
        cli("analytics", "cache", "--since", "12h", "-o", "csv").stdout


def test_charts_measure_against_the_configured_targets(cli, tmp_path):
    assert cli("config", "set", "analytics.latency_target", "150ms").exit_code == 0
    assert cli("config", "set", "analytics.hit_ratio_target", "0.8").exit_code == 0
    now = time.time()
    cli("analytics", "ingest", write_samples(tmp_path / "s.jsonl", now), "--format", "jsonl")
    cli("analytics", "ingest", write_traffic(tmp_path / "t.jsonl", now), "--format", "jsonl")
    latency = cli("analytics", "latency", "--since", "12h", "--chart").stdout
    assert "target 150ms" in latency and "over 150ms" in latency
    cache = cli("analytics", "cache", "--since", "12h", "--chart").stdout
    assert "target 80%" in cache and "steps under 80%" in cache
