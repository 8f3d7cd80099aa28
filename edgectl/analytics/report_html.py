"""The analytics report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched."""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from string import Template

from edgectl.analytics.charts import (Chart, SvgBox, format_duration, format_value, latency_chart, ratio_chart,
                                      svg_chart)
from edgectl.analytics.report import TROUBLE, AlertsSection, NodeHealth, Report
from edgectl.timeutil import relative, to_iso

# The page may load nothing: styles are inline, images would be data: URLs, and scripts cannot run.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="$csp">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="edgectl">
<title>$title</title>
<style>
$css
</style>
</head>
<body>
<main>
<header class="top">
  <div>
    <h1>$title</h1>
    <p class="window">$window</p>
  </div>
  <p class="generated">generated $generated</p>
</header>
<section class="tiles" aria-label="summary">
$tiles
</section>
$body
<footer>edgectl analytics report · times in UTC · $steps steps · targets: latency under $latency_target,
cache hit ratio above $ratio_target</footer>
</main>
</body>
</html>
""")

CSS = """
:root { --ink: #1f2933; --muted: #5f6b7a; --line: #e3e8ee; --card: #ffffff; --page: #f3f5f8;
  --good: #2f9e44; --bad: #d62728; --warn: #e8a317; --idle: #9aa5b1; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--page); color: var(--ink);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 28px 24px 36px; }
.top { display: flex; justify-content: space-between; align-items: flex-end; gap: 16px; margin-bottom: 18px; }
h1 { margin: 0; font-size: 26px; letter-spacing: -0.01em; }
h2 { margin: 0 0 4px; font-size: 17px; }
.window, .generated, .caption { margin: 2px 0 0; color: var(--muted); }
.generated { font-size: 13px; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 14px; margin-bottom: 18px; }
.tile { background: var(--card); border-radius: 10px; padding: 14px 16px; border-left: 6px solid var(--idle);
  box-shadow: 0 1px 2px rgba(16, 24, 40, .06); }
.tile.good { border-left-color: var(--good); } .tile.bad { border-left-color: var(--bad); }
.tile.warn { border-left-color: var(--warn); }
.tile .label { color: var(--muted); font-size: 13px; text-transform: uppercase; letter-spacing: .04em; }
.tile .value { font-size: 30px; font-weight: 650; margin: 2px 0; font-variant-numeric: tabular-nums; }
.tile .note { color: var(--muted); font-size: 13px; }
.card { background: var(--card); border-radius: 10px; padding: 16px 18px 12px; margin-bottom: 18px;
  box-shadow: 0 1px 2px rgba(16, 24, 40, .06); }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 18px; }
.pair .card { margin-bottom: 18px; }
.chart { display: block; margin-top: 8px; }
.empty { padding: 30px 8px; text-align: center; color: var(--muted); font-size: 16px; }
.notice { border-left: 6px solid var(--warn); }
.notice p { margin: 6px 0; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px;
  background: #eef1f5; padding: 1px 5px; border-radius: 4px; }
table { width: 100%; border-collapse: collapse; margin-top: 8px; font-variant-numeric: tabular-nums; }
th { text-align: left; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted);
  font-weight: 600; padding: 8px 10px; border-bottom: 2px solid var(--line); }
td { padding: 8px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
td.num, th.num { text-align: right; }
tr:last-child td { border-bottom: none; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 13px; font-weight: 600;
  background: #eef1f5; color: var(--muted); }
.badge.up, .badge.active { background: #e6f4ea; color: #1e7b34; }
.badge.down, .badge.failed, .badge.critical { background: #fde8e8; color: #b42318; }
.badge.stale, .badge.draining, .badge.warning, .badge.degraded { background: #fff4d6; color: #8a5a00; }
.badge.maintenance { background: #e0f2fe; color: #075985; }
.miss { color: var(--bad); font-weight: 600; }
.error { color: var(--muted); font-size: 13px; }
footer { color: var(--muted); font-size: 13px; text-align: center; margin-top: 8px; }
"""

WIDE = SvgBox(width=1160, height=340)
HALF = SvgBox(width=580, height=300, left=56)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _moment(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%d %b %Y %H:%M")


def render_report(report: Report, *, title: str = "Edge estate report") -> str:
    """The whole page for a Report."""
    window = (f"last {_e(report.since)} · {_moment(report.start_ms)} – {_moment(report.end_ms)} UTC")
    return PAGE.substitute(
        csp=CSP, css=CSS.strip(), title=_e(title), window=window,
        generated=_e(report.generated_at.astimezone(timezone.utc).strftime("%d %b %Y %H:%M:%S UTC")),
        tiles="\n".join(_tiles(report)), body="\n".join(_body(report)), steps=_e(format_duration(report.step_ms)),
        latency_target=_e(format_value(report.latency_target_ms, "ms")),
        ratio_target=_e(format_value(report.hit_ratio_target, "ratio")),
    )


def _tile(label: str, value: str, note: str, verdict: str) -> str:
    return (f'<div class="tile {verdict}"><div class="label">{_e(label)}</div>'
            f'<div class="value">{_e(value)}</div><div class="note">{_e(note)}</div></div>')


def _tiles(report: Report) -> list[str]:
    p95, p50 = report.latency["p95"], report.latency["p50"]
    ratio = report.traffic["hit_ratio"]
    target_ms, target_ratio = report.latency_target_ms, report.hit_ratio_target
    health = report.nodes_by_health
    healthy = health.get("up", 0)
    trouble = sum(health.get(h, 0) for h in TROUBLE)
    firing = len(report.alerts.firing)
    return [
        _tile("p95 latency", format_value(p95, "ms") if p95 is not None else "no data",
              f"target under {format_value(target_ms, 'ms')} · {report.latency['samples']:,} samples",
              "idle" if p95 is None else "good" if p95 <= target_ms else "bad"),
        _tile("p50 latency", format_value(p50, "ms") if p50 is not None else "no data", "all regions",
              "idle" if p50 is None else "good" if p50 <= target_ms else "bad"),
        _tile("cache hit ratio", format_value(ratio, "ratio") if ratio is not None else "no data",
              f"target above {format_value(target_ratio, 'ratio')} · {report.traffic['requests']:,.0f} requests",
              "idle" if ratio is None else "good" if ratio >= target_ratio else "bad"),
        _tile("nodes up", f"{healthy} / {len(report.nodes)}" if report.nodes else "none",
              _health_note(health) if report.nodes else "no nodes registered",
              "idle" if not report.nodes else "bad" if trouble else "good" if healthy == len(report.nodes) else "warn"),
        _tile("alerts firing", str(firing) if report.alerts.rules else "–",
              f"of {report.alerts.rules} rule(s)" if report.alerts.rules else "no alert rules",
              "idle" if not report.alerts.rules else "bad" if firing else "good"),
    ]


# how the nodes-up card names each health but up, as the node table's Health column shows it
HEALTH_NOTES = {"failed": "failed", "down": "down at the last probe", "stale": "stale (heartbeats missed)",
                "unchecked": "never probed"}


def _health_note(health: dict[str, int]) -> str:
    """What the nodes that are not up are, one count per health of the node table: "3 stale (heartbeats
    missed)", "1 failed · 1 draining"; every node up says so."""
    parts = [f"{n} {HEALTH_NOTES.get(h, h)}" for h, n in health.items() if h != "up"]
    return " · ".join(parts) or "every node up"


def _chart_card(chart: Chart, box: SvgBox, caption: str, empty: str, name: str) -> str:
    body = svg_chart(chart, box) if chart.has_data else f'<div class="empty">{_e(empty)}</div>'
    return (f'<section class="card" id="{_e(name)}" data-chart="{_e(name)}"><h2>{_e(chart.title)}</h2>'
            f'<p class="caption">{_e(caption)}</p>{body}</section>')


def _body(report: Report) -> list[str]:
    out: list[str] = []
    window = dict(step_ms=report.step_ms, start_ms=report.start_ms, end_ms=report.end_ms)
    if report.empty:
        out.append(
            '<section class="card notice" id="no-history"><h2>No metrics in this window</h2>'
            f'<p>The history holds no latency sample and no request between {_moment(report.start_ms)} and '
            f'{_moment(report.end_ms)} UTC, so there is nothing to chart.</p>'
            '<p>It fills from <code>edgectl nodes check</code>, <code>edgectl cache warm</code>, '
            '<code>edgectl analytics pull</code> and <code>edgectl analytics ingest</code>.</p></section>')
    else:
        step = format_duration(report.step_ms)
        out.append(_chart_card(
            latency_chart("p95 latency by region", report.latency_p95, target=report.latency_target_ms, **window),
            WIDE, f"the 95th percentile of each {step}, per client or node region",
            "no latency samples in this window", "latency-p95"))
        out.append('<div class="pair">')
        out.append(_chart_card(
            latency_chart("p50 latency by region", report.latency_p50, target=report.latency_target_ms, **window),
            HALF, f"the median of each {step}", "no latency samples in this window", "latency-p50"))
        out.append(_chart_card(
            ratio_chart("Cache hit ratio", report.hit_ratio, target=report.hit_ratio_target, **window),
            HALF, f"cache hits over requests in each {step}, per provider",
            "no requests in this window (cache.hits and requests)", "hit-ratio"))
        out.append("</div>")
    out.append(_nodes(report))
    out.append(_alerts(report.alerts, report.generated_at))
    return out


def _nodes(report: Report) -> str:
    head = ('<section class="card" id="nodes"><h2>Nodes</h2>'
            f'<p class="caption">health now (stale: no heartbeat for three intervals, whatever the probes say); '
            f'latency and probes up over the last {_e(report.since)}</p>')
    if not report.nodes:
        return head + '<div class="empty">no nodes registered (<code>edgectl nodes add</code>)</div></section>'
    rows = "".join(_node_row(n, report) for n in report.nodes)
    return (head + '<table><thead><tr><th>Node</th><th>Region</th><th>Health</th><th>Last check</th>'
            '<th>Last heartbeat</th><th class="num">p95 latency</th><th class="num">Probes up</th>'
            f"<th>Last error</th></tr></thead><tbody>{rows}</tbody></table></section>")


def _ago(moment: datetime | None, now: datetime) -> str:
    return (f'<span title="{_e(to_iso(moment))}">{_e(relative(moment, now))}</span>' if moment else "never")


def _node_row(node: NodeHealth, report: Report) -> str:
    checked = _ago(node.last_check_at, report.generated_at)
    heartbeat = (f'<span class="{"miss" if node.stale else ""}">{_ago(node.last_heartbeat, report.generated_at)}'
                 "</span>")
    p95 = node.latency_p95
    latency = ("–" if p95 is None else
               f'<span class="{"miss" if p95 > report.latency_target_ms else ""}">{_e(format_value(p95, "ms"))}</span>')
    up = "–" if node.up_ratio is None else (
        f'<span class="{"miss" if node.up_ratio < 0.99 else ""}">{_e(format_value(node.up_ratio, "ratio"))}</span>')
    error = f'<span class="error">{_e(node.last_error[:120])}</span>' if node.last_error else ""
    return (f"<tr><td><strong>{_e(node.name)}</strong></td><td>{_e(node.region or '–')}</td>"
            f'<td><span class="badge {_e(node.health)}">{_e(node.health)}</span></td><td>{checked}</td>'
            f'<td>{heartbeat}</td><td class="num">{latency}</td><td class="num">{up}</td><td>{error}</td></tr>')


def _alerts(alerts: AlertsSection, now: datetime) -> str:
    head = '<section class="card" id="alerts"><h2>Alerts</h2>'
    if not alerts.rules:
        return head + '<div class="empty">no alert rules (<code>edgectl analytics alerts add</code>)</div></section>'
    if not alerts.firing:
        return head + f'<div class="empty">no alert firing · {alerts.rules} rule(s)</div></section>'
    rows = "".join(_alert_row(a, now) for a in alerts.firing)
    return (head + f'<p class="caption">{len(alerts.firing)} firing of {alerts.rules} rule(s), as of the last '
            '<code>edgectl analytics alerts check</code></p>'
            '<table><thead><tr><th>Alert</th><th>Severity</th><th>For</th><th class="num">Value</th>'
            f"<th>Since</th><th>Condition</th></tr></thead><tbody>{rows}</tbody></table></section>")


def _alert_row(alert: dict, now: datetime) -> str:
    """A firing alert's record (edgectl.analytics.alerts.firing_alerts) as a row."""
    labels = alert.get("labels") or {}
    severity = str(alert.get("severity") or "warning")
    subject = ", ".join(f"{k}={v}" for k, v in labels.items()) or "everything"
    since = alert.get("since")
    value = alert.get("value")
    silenced = ' <span class="badge">silenced</span>' if alert.get("silenced") else ""
    return (f'<tr><td><strong>{_e(alert.get("name", ""))}</strong>{silenced}</td>'
            f'<td><span class="badge {_e(severity)}">{_e(severity)}</span></td><td>{_e(subject)}</td>'
            f'<td class="num">{_e("" if value is None else value)}</td>'
            f"<td>{_e(relative(since, now)) if isinstance(since, datetime) else '–'}</td>"
            f'<td>{_e(alert.get("condition") or "")}</td></tr>')
