"""edgectl's own sources in the metrics history: health probes, heartbeats, warm runs and purges.

Each source hands its figures here in the caller's transaction, so a probe's result and its
samples land together or not at all. A node's samples carry its name and region; the `source`
label says which command measured them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Mapping

from edgectl.analytics.metrics import REPORT_KEYS, key
from edgectl.analytics.samples import Sample


def at_ms(moment: datetime | str) -> int:
    if isinstance(moment, str):
        from edgectl.timeutil import from_iso

        moment = from_iso(moment)
    return int(moment.timestamp() * 1000)


def record(state, samples: Iterable[Sample]) -> int:
    """Add samples to the history; returns how many."""
    from edgectl.analytics.store import ingest

    samples = list(samples)
    if samples:
        ingest(state, samples)
    return len(samples)


def node_samples(node, figures: Mapping[str, float], *, source: str, when: datetime | str) -> list[Sample]:
    """A node's figures (a probe's `latency` and `up`, a report's cpu_percent...) as samples in catalogue names."""
    moment = at_ms(when)
    out = []
    for name, value in figures.items():
        metric = REPORT_KEYS.get(name, name)
        out.append(Sample(key(metric, node=node.name, region=node.region or "", labels={"source": source}),
                          moment, float(value)))
    return out


def path_prefix(url: str) -> str:
    """The first segment of a URL's path, as `/static/`; `/` for a file at the root."""
    from urllib.parse import urlsplit

    path = urlsplit(url).path or "/"
    head, slash, _ = path[1:].partition("/")
    return f"/{head}/" if slash else "/"
