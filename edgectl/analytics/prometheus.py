"""Metric families handed to Prometheus: its text format, node_exporter's textfile collector, the Pushgateway.

Everything goes through prometheus_client with a registry of its own holding one collector that
yields the families edgectl.analytics.export computed, so nothing from the process (the default
registry's process and platform collectors) comes along. Every family is a gauge added without
a timestamp: prometheus_client writes `_created` series only for counters, summaries and
histograms, and then only those its own instrumented metrics (or a family given `created=`)
carry, so none appears here and its process-wide switch (`disable_created_metrics()`,
PROMETHEUS_DISABLE_CREATED_SERIES) is left as the embedding program set it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edgectl.analytics.export import ExportRequest, Family
from edgectl.errors import OperationFailed, UsageError

TEXTFILE_NAME = "edgectl.prom"
JOB = "edgectl"


class _Collector:
    def __init__(self, families: list[Family]):
        self.families = families

    def _metrics(self):
        from prometheus_client.core import GaugeMetricFamily

        for family in self.families:
            metric = GaugeMetricFamily(family.name, family.doc)
            for labels, value in family.samples.items():
                metric.add_sample(family.name, dict(labels), value)
            yield metric

    def collect(self):
        return self._metrics()

    def describe(self):  # the names, so the registry can refuse a clash
        return self._metrics()


def registry_of(families: list[Family]):
    """A private CollectorRegistry holding these families and nothing else."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(families))
    return registry


def exposition(families: list[Family]) -> bytes:
    """The families in Prometheus's text format (0.0.4), as a scrape would read them."""
    from prometheus_client import generate_latest

    return generate_latest(registry_of(families))


def textfile_path(target: str) -> Path:
    """Where --textfile writes: DIR/edgectl.prom, or the FILE.prom named, in a directory that exists.

    node_exporter's textfile collector reads only files whose names end in .prom, so a file named
    otherwise (x.txt) is refused for that, rather than taken for a directory that is not there.
    """
    path = Path(target).expanduser()
    if path.suffix and path.suffix != ".prom" and not path.is_dir():
        raise UsageError(f"--textfile {target}: the file name must end in .prom "
                         "(node_exporter's textfile collector reads only *.prom)",
                         hint=f"--textfile DIR writes DIR/{TEXTFILE_NAME}; or name DIR/NAME.prom")
    if path.suffix == ".prom" and not path.is_dir():
        folder = path.parent
    else:
        folder, path = path, path / TEXTFILE_NAME
    hint = "the directory node_exporter reads (--collector.textfile.directory); it must exist"
    if not folder.exists():
        raise UsageError(f"--textfile {target}: no such directory", hint=hint)
    if not folder.is_dir():
        raise UsageError(f"--textfile {target}: not a directory", hint=hint)
    return path


def write_textfile(families: list[Family], path: Path) -> None:
    """Written beside the target and renamed over it (write_to_textfile's own temporary file, whose
    name does not end in .prom), so node_exporter reads the old file or the new one, never a part."""
    from prometheus_client import write_to_textfile

    try:
        write_to_textfile(str(path), registry_of(families))
        # node_exporter runs as its own user: readable by it whatever the umask of the cron job
        os.chmod(path, 0o644)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}",
                         hint="the textfile directory must be writable by the user running edgectl") from None


@dataclass(frozen=True)
class Gateway:
    """A Pushgateway: its URL without credentials (safe to show), and the credentials apart."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_gateway(text: str) -> Gateway:
    """--pushgateway URL: http(s)://[user:password@]host[:port][/path]; a missing scheme is http.

    The whole URL may be a reference (env:NAME, file:PATH) and so may the password alone
    (https://ops:env:PUSH_PASSWORD@push.example.net).
    """
    from urllib.parse import unquote, urlsplit, urlunsplit

    from edgectl.config import is_reference, resolve_secret
    from edgectl.logs import register_secret

    raw = resolve_secret(text, key="--pushgateway") if is_reference(text) else text.strip()
    if "://" not in raw:
        raw = "http://" + raw
    hint = "e.g. --pushgateway http://127.0.0.1:9091 or env:PUSHGATEWAY_URL"
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise UsageError("--pushgateway: not a URL with a valid host and port", hint=hint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("--pushgateway: an http:// or https:// URL with a host", hint=hint)
    if parts.query or parts.fragment:
        raise UsageError("--pushgateway: the URL may not have a query or a fragment", hint=hint)
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if password and password.startswith("env:"):
        password = resolve_secret(password, key="--pushgateway password")
    elif password:
        register_secret(password)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host + (f":{port}" if port is not None else "")
    return Gateway(urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), username, password)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) or "timed out" in str(exc):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or exc.__class__.__name__


def push(families: list[Family], gateway: Gateway, *, instance: str, timeout: float) -> None:
    """PUT the families to the gateway's group {job="edgectl", instance=...}: the group then holds
    exactly this export, so a series that has gone (a removed node) does not linger there."""
    import http.client
    from urllib.error import HTTPError, URLError

    from prometheus_client import push_to_gateway
    from prometheus_client.exposition import basic_auth_handler, default_handler

    def handler(url, method, timeout, headers, data):
        if gateway.username is not None:
            return basic_auth_handler(url, method, timeout, headers, data, gateway.username, gateway.password or "")
        return default_handler(url, method, timeout, headers, data)

    hint = "check the URL and that the Pushgateway is running"
    try:
        push_to_gateway(gateway.url, job=JOB, registry=registry_of(families), grouping_key={"instance": instance},
                        timeout=timeout, handler=handler)
    except HTTPError as exc:
        lines = exc.read(500).decode("utf-8", "replace").strip().splitlines()
        detail = lines[0] if lines else exc.reason
        raise OperationFailed(f"the Pushgateway at {gateway.url} refused the push: HTTP {exc.code}: {detail}",
                              hint="a 401 or 403 wants credentials: https://user:env:VAR@host") from None
    except URLError as exc:
        raise OperationFailed(f"cannot reach the Pushgateway at {gateway.url}: {_reason(exc.reason)}",
                              hint=hint) from None
    except (OSError, http.client.HTTPException) as exc:
        raise OperationFailed(f"pushing to the Pushgateway at {gateway.url} failed: {_reason(exc)}",
                              hint=hint) from None


@dataclass
class PrometheusExport:
    """What an export wrote where; `text()` is the exposition itself."""

    request: ExportRequest
    families: list[Family]
    textfile: Path | None = None
    gateway: Gateway | None = None
    instance: str | None = None

    def text(self) -> str:
        return exposition(self.families).decode("utf-8")

    def to_record(self) -> dict:
        return {"format": "prometheus", "families": len(self.families),
                "series": sum(len(f.samples) for f in self.families), "window_seconds": self.request.window_seconds,
                "textfile": str(self.textfile) if self.textfile else None,
                "pushgateway": self.gateway.url if self.gateway else None, "instance": self.instance}


def export_prometheus(state, request: ExportRequest, *, textfile: Path | None = None, gateway: Gateway | None = None,
                      instance: str = "", timeout: float = 10.0) -> PrometheusExport:
    """The families of the window, written to the textfile and pushed to the gateway, whichever are given."""
    from edgectl.analytics.export import prometheus_families

    report = PrometheusExport(request, prometheus_families(state, request), textfile, gateway,
                              instance if gateway else None)
    if textfile is not None:
        write_textfile(report.families, textfile)
    if gateway is not None:
        push(report.families, gateway, instance=instance, timeout=timeout)
    return report
