"""`analytics report --html`: one self-contained page, its SVG charts drawn from the history, seen in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser

import pytest

from edgectl.analytics.charts import PALETTE, TARGET_COLOUR
from tests.png_pixels import read_png

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


class Element:
    def __init__(self, tag: str, attrs: dict, parent: "Element | None"):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Element] = []
        self.text = ""

    def iter(self, tag: str | None = None):
        for child in self.children:
            if tag is None or child.tag == tag:
                yield child
            yield from child.iter(tag)

    def find(self, tag: str, **attrs) -> "Element | None":
        return next((e for e in self.iter(tag) if all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())),
                    None)

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)


class Tree(HTMLParser):
    """The page as a tree of elements (html.parser; void elements are not pushed)."""

    VOID = {"meta", "link", "br", "img", "input", "hr", "col", "area", "base", "wbr", "source"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {}, None)
        self.at = self.root

    def handle_starttag(self, tag, attrs):
        element = Element(tag, dict(attrs), self.at)
        self.at.children.append(element)
        if tag not in self.VOID:
            self.at = element

    def handle_startendtag(self, tag, attrs):
        self.at.children.append(Element(tag, dict(attrs), self.at))

    def handle_endtag(self, tag):
        node = self.at
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.at = node.parent

    def handle_data(self, data):
        self.at.text += data


def parse(text: str) -> Element:
    tree = Tree()
    tree.feed(text)
    tree.close()
    return tree.root


NODES = [("fra-1", "eu-central", 40.0), ("ams-1", "eu-central", 55.0), ("iad-1", "us-east", 90.0)]


def history(now: float) -> list[dict]:
    """Twenty hours, all well inside the last day: latency per node rising over time, an hour's gap in
    us-east, and requests with cache hits from a provider and from the own nodes."""
    rows = []
    for n in range(0, 20 * 12):  # every 5 minutes
        at = now - 21 * 3600 + n * 300
        for node, region, base in NODES:
            if region == "us-east" and 100 <= n < 112:
                continue  # a gap: no samples for an hour
            rows.append({"time": at, "metric": "latency", "value": base + n / 4, "unit": "ms", "node": node,
                         "region": region})
        rows.append({"time": at, "metric": "requests", "value": 100, "unit": "count", "provider": "cloudflare"})
        rows.append({"time": at, "metric": "cache.hits", "value": 80 + n % 20, "unit": "count",
                     "provider": "cloudflare"})
        if n % 3 == 0:
            rows.append({"time": at, "metric": "requests", "value": 50, "unit": "count", "node": "fra-1"})
            rows.append({"time": at, "metric": "cache.hits", "value": 47, "unit": "count", "node": "fra-1"})
        rows.append({"time": at, "metric": "up", "value": 0 if n % 10 == 0 else 1, "unit": "bool", "node": "iad-1"})
    return rows


@pytest.fixture
def estate(cli, tmp_path):
    rows = history(time.time())
    path = tmp_path / "history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli("analytics", "ingest", str(path), "--format", "jsonl").exit_code == 0
    for name, region, _ in NODES:
        assert cli("nodes", "add", name, "--endpoint", "http://127.0.0.1:9", "--region", region,
                   "-o", "json").exit_code == 0
    cli("nodes", "drain", "ams-1", "--reason", "kernel upgrade", "-o", "json")
    return rows


def steps_with_data(rows: list[dict], step_ms: int, **where) -> int:
    return len({int(r["time"] * 1000) // step_ms for r in rows if all(r.get(k) == v for k, v in where.items())})


def points_of(group: Element) -> list[tuple[float, float]]:
    out = []
    for line in group.iter("polyline"):
        out += [tuple(map(float, p.split(","))) for p in line.attrs["points"].split()]
    out += [(float(c.attrs["cx"]), float(c.attrs["cy"])) for c in group.iter("circle")]
    return out


def test_the_page_holds_every_chart_drawn_from_the_data(cli, tmp_path, estate):
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "report.html"
    run = cli("analytics", "report", "--html", str(out), "--since", "1d", "-o", "json")
    assert run.exit_code == 0, run.stderr
    record = run.json()
    assert record["path"] == str(out) and record["empty"] is False
    step = record["step_ms"]
    assert step == 15 * 60_000  # a day in about 96 steps
    text = out.read_text()
    assert "<script" not in text.lower()
    for scheme in ("http:", "https:", "//"):
        assert scheme not in text, scheme  # nothing to fetch: no URL of any kind
    page = parse(text)
    meta = page.find("meta", http_equiv="Content-Security-Policy")
    assert meta is not None and meta.attrs["content"] == CSP
    assert not list(page.iter("link")) and not list(page.iter("img")) and not list(page.iter("iframe"))

    p95 = page.find("section", data_chart="latency-p95").find("svg")
    p50 = page.find("section", data_chart="latency-p50").find("svg")
    ratio = page.find("section", data_chart="hit-ratio").find("svg")
    for svg, region in ((p95, "eu-central"), (p95, "us-east"), (p50, "us-east")):
        expected = steps_with_data(estate, step, metric="latency", region=region)
        group = svg.find("g", data_series=region)
        points = points_of(group)
        assert len(points) == expected, (region, len(points), expected)
        xs = [x for x, _ in points]
        assert len(set(xs)) == len(xs)
        # the latency rises over the window: later points draw higher (smaller y)
        ordered = [y for _, y in sorted(points)]
        assert ordered[0] > ordered[-1]
    us = p95.find("g", data_series="us-east")
    assert len(list(us.iter("polyline"))) == 2  # broken at the hour without samples
    assert {g.attrs["data-series"] for g in ratio.iter("g") if "data-series" in g.attrs} == {"cloudflare", "own nodes"}
    assert len(points_of(ratio.find("g", data_series="cloudflare"))) == steps_with_data(
        estate, step, metric="requests", provider="cloudflare")
    assert len(points_of(ratio.find("g", data_series="own nodes"))) == steps_with_data(
        estate, step, metric="requests", node="fra-1")

    for svg, unit in ((p95, "ms"), (p50, "ms"), (ratio, "%")):
        y_labels = [t.all_text() for t in svg.find("g", **{"class": "y-axis"}).iter("text")]
        x_labels = [t.all_text() for t in svg.find("g", **{"class": "x-axis"}).iter("text")]
        assert len(y_labels) >= 3 and all(label.endswith(unit) for label in y_labels)
        assert len(x_labels) >= 3 and all(re.fullmatch(r"\d\d:\d\d", label) for label in x_labels)
        legend = [t.all_text() for t in svg.find("g", **{"class": "legend"}).iter("text")]
        assert legend[-1] == ("target 90%" if unit == "%" else "target 100ms")
        assert svg.find("g", **{"class": "target"}) is not None
    assert [t.all_text() for t in p95.find("g", **{"class": "legend"}).iter("text")][:2] == ["eu-central", "us-east"]

    rows = page.find("section", id="nodes").find("tbody").children
    cells = {r.children[0].all_text(): [c.all_text() for c in r.children] for r in rows}
    assert set(cells) == {"fra-1", "ams-1", "iad-1"}
    assert cells["ams-1"][2] == "draining" and cells["iad-1"][3] == "never" and cells["iad-1"][4] == "never"
    assert cells["iad-1"][6] == "90%"  # one probe in ten down
    assert cells["fra-1"][5].endswith("ms")
    assert "no alert rules" in page.find("section", id="alerts").all_text()


def test_an_empty_history_gives_a_page_that_says_so(cli, tmp_path):
    out = tmp_path / "empty.html"
    run = cli("analytics", "report", "--html", str(out), "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["empty"] is True
    page = parse(out.read_text())
    notice = page.find("section", id="no-history")
    assert notice is not None and "no latency sample and no request" in notice.all_text()
    assert not list(page.iter("svg"))
    assert "no nodes registered" in page.find("section", id="nodes").all_text()
    table = cli("analytics", "report", "--html", str(out))
    assert table.stdout.strip() == str(out) and "no metrics in the window" in table.stderr


def test_the_file_is_replaced_whole_and_bad_paths_are_refused(cli, tmp_path, estate):
    out = tmp_path / "report.html"
    out.write_text("an older report")
    assert cli("analytics", "report", "--html", str(out), "--since", "1d").exit_code == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".report")) == []  # no partial file left
    into_dir = cli("analytics", "report", "--html", str(tmp_path), "-o", "json")
    assert into_dir.exit_code == 2 and "is a directory" in into_dir.error["message"]
    missing = cli("analytics", "report")
    assert missing.exit_code == 2 and "--html FILE" in missing.stderr
    bad_window = cli("analytics", "report", "--html", str(out), "--since", "soon")
    assert bad_window.exit_code == 2


def test_a_missing_directory_is_exit_2_and_is_not_made(cli, tmp_path):
    out = tmp_path / "no-such-dir" / "deeper" / "report.html"
    run = cli("analytics", "report", "--html", str(out))
    assert run.exit_code == 2 and run.stdout == ""
    lines = run.stderr.splitlines()
    assert lines[0] == f"error: cannot write {out}: no such directory {out.parent}"
    assert all(line.startswith("hint: ") for line in lines[1:]) and "Traceback" not in run.stderr
    assert not (tmp_path / "no-such-dir").exists()


def test_stale_nodes_are_counted_as_stale_on_the_card_and_in_the_table(cli, tmp_path):
    from datetime import timedelta

    from tests.routing_state import age_heartbeat, heartbeat

    now = time.time()
    rows = []
    for name in ("fra-1", "ams-1", "iad-1"):
        assert cli("nodes", "add", name, "--endpoint", "http://127.0.0.1:9", "--region", "eu").exit_code == 0
        heartbeat(cli, name, "--cpu", "10")
        age_heartbeat(name, timedelta(minutes=10))  # three heartbeat intervals (30s) missed long ago
        rows += [{"time": now - 60 * n, "metric": "up", "value": 1, "unit": "bool", "node": name} for n in range(5)]
    path = tmp_path / "up.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli("analytics", "ingest", str(path), "--format", "jsonl").exit_code == 0
    out = tmp_path / "report.html"
    record = cli("analytics", "report", "--html", str(out), "--since", "1h", "-o", "json").json()
    assert record["nodes_by_health"] == {"stale": 3}
    assert {(n["health"], n["up_ratio"]) for n in record["nodes"]} == {("stale", 1.0)}
    page = parse(out.read_text())
    tile = next(t for t in page.iter("div") if "tile" in t.attrs.get("class", "") and "nodes up" in t.all_text())
    assert "0 / 3" in tile.all_text() and "3 stale (heartbeats missed)" in tile.all_text()
    assert "failed" not in tile.all_text()
    nodes = page.find("section", id="nodes")
    headers = [th.all_text() for th in nodes.find("thead").iter("th")]
    assert headers[2] == "Health" and headers[4] == "Last heartbeat" and headers[6] == "Probes up"
    for row in nodes.find("tbody").children:
        cells = [c.all_text() for c in row.children]
        assert cells[2] == "stale" and cells[4] == "10m ago" and cells[6] == "100%", cells


# ---- seen in a browser ---------------------------------------------------------------------------

def screenshot(page, png, tmp_path, size: str = "1280,2000") -> None:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("chromium is not installed: apt-get install chromium (.ci/run installs it for CI)")
    run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--screenshot={png}",
                          f"--window-size={size}", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and png.exists(), run.stderr[-2000:]


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def colour_counts(image, colours: list[str]) -> dict[str, int]:
    """How many pixels are (nearly: anti-aliasing) each of these colours."""
    present = image.colours()
    counts = dict.fromkeys(colours, 0)
    for name in colours:
        tr, tg, tb = _hex(name)
        counts[name] = sum(n for (r, g, b), n in present.items() if abs(r - tr) + abs(g - tg) + abs(b - tb) <= 24)
    return counts


@pytest.mark.slow
def test_chromium_draws_the_charts(cli, tmp_path, estate):
    full, empty = tmp_path / "report.html", tmp_path / "empty" / "report.html"
    empty.parent.mkdir()
    assert cli("analytics", "report", "--html", str(full), "--since", "1d").exit_code == 0
    assert cli("analytics", "report", "--html", str(empty), "--since", "1m").exit_code == 0  # nothing that recent
    screenshot(full, tmp_path / "full.png", tmp_path)
    screenshot(empty, tmp_path / "empty.png", tmp_path, "1280,900")
    shot = read_png(tmp_path / "full.png")
    assert (shot.width, shot.height) == (1280, 2000)
    drawn = colour_counts(shot, [PALETTE[0], PALETTE[1], TARGET_COLOUR])
    # the lines of the first two series of each chart and the dashed target lines are on the screen
    assert drawn[PALETTE[0]] > 600 and drawn[PALETTE[1]] > 300 and drawn[TARGET_COLOUR] > 300, drawn
    # the chart area (under the header and the tiles) holds many colours, not a blank card
    assert len(shot.colours(top=250, bottom=1100)) > 200
    blank = read_png(tmp_path / "empty.png")
    nothing = colour_counts(blank, [PALETTE[0], PALETTE[1]])
    assert nothing[PALETTE[0]] < 20 and nothing[PALETTE[1]] < 20, nothing  # no chart drawn for an empty window


def test_the_targets_are_the_configured_ones(cli, tmp_path, estate):
    assert cli("config", "set", "analytics.latency_target", "150ms").exit_code == 0
    assert cli("config", "set", "analytics.hit_ratio_target", "0.95").exit_code == 0
    out = tmp_path / "report.html"
    record = cli("analytics", "report", "--html", str(out), "--since", "1d", "-o", "json").json()
    assert record["targets"] == {"latency_ms": 150.0, "hit_ratio": 0.95}
    page = parse(out.read_text())
    legend = [t.all_text() for t in page.find("section", data_chart="latency-p95").find("g", **{"class": "legend"})
              .iter("text")]
    assert legend[-1] == "target 150ms"
    ratio = [t.all_text() for t in page.find("section", data_chart="hit-ratio").find("g", **{"class": "legend"})
             .iter("text")]
    assert ratio[-1] == "target 95%"


def test_firing_alerts_are_listed_with_the_rules_they_break(cli, tmp_path, estate):
    now = time.time()
    recent = [{"time": now - 400 + n * 30, "metric": "latency", "value": 300.0 + n, "unit": "ms", "node": "iad-1",
               "region": "us-east"} for n in range(13)]
    path = tmp_path / "recent.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recent))
    assert cli("analytics", "ingest", str(path), "--format", "jsonl").exit_code == 0
    assert cli("analytics", "alerts", "add", "slow-region", "--metric", "latency", "--stat", "p95", "--by", "region",
               "--above", "200ms", "--for", "5m", "--severity", "critical").exit_code == 0
    assert cli("analytics", "alerts", "add", "cold-cache", "--metric", "hit_ratio", "--below", "50%",
               "--for", "15m").exit_code == 0  # the hit ratio is well above: it does not fire
    assert cli("analytics", "alerts", "check", "-q").exit_code == 3
    out = tmp_path / "report.html"
    record = cli("analytics", "report", "--html", str(out), "--since", "1d", "-o", "json").json()
    assert [a["name"] for a in record["alerts"]["firing"]] == ["slow-region"]
    page = parse(out.read_text())
    rows = page.find("section", id="alerts").find("tbody").children
    cells = [c.all_text() for c in rows[0].children]
    assert cells[:3] == ["slow-region", "critical", "region=us-east"]
    assert cells[3].endswith("ms") and cells[5] == "p95 above 200ms for 5m"
    tile = next(t for t in page.iter("div") if "tile" in t.attrs.get("class", "") and "alerts firing" in t.all_text())
    assert "bad" in tile.attrs["class"].split() and "1of 2 rule(s)" in tile.all_text()
