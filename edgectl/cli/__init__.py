"""The command line. Command groups are loaded when used: `edgectl --help` imports none of them.

GROUPS is the one place a group is named: its module (which defines `app`) and the help line
shown in `edgectl --help`, in the order listed there.
"""

GROUPS: dict[str, tuple[str, str]] = {
    "nodes": ("edgectl.cli.nodes", "Edge nodes: inventory, status, health checks and heartbeats."),
    "cdn": ("edgectl.cli.cdn", "CDN providers and purges."),
    "cache": ("edgectl.cli.cache", "Cache warming through every node and variant; policies, entries, stats, invalidation."),
    "providers": ("edgectl.cli.providers", "Configured providers and what each can do (purge, routing, analytics): list, show, test."),
    "routing": ("edgectl.cli.routing", "Geographic routing rules: where each location goes and why, what-if failures, and their plan and apply at Route 53 and Cloudflare."),
    "analytics": ("edgectl.cli.analytics", "The metrics history: ingest and pull; latency, hit ratio, resource use, the worst offenders, alerts, recommendations; a performance screen, charts, an HTML report, export to Prometheus."),
    "config": ("edgectl.cli.config_cmd", "Configuration: init, show, get, set, validate, path."),
    "state": ("edgectl.cli.state_cmd", "The SQLite state file: path, status, backup, check."),
    "plugins": ("edgectl.cli.plugins", "Installed plugins: the provider kinds and command groups each adds, and whether it loads: list, show."),
    "sandbox": ("edgectl.cli.sandbox", "A local edge fleet on 127.0.0.1: up, status, fault, fetch, down."),
}


def group_help(name: str) -> str:
    return GROUPS[name][1]
