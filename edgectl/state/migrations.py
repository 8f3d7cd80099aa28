"""The state schema, as an append-only list of named migrations. Never edit one that has landed."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

MIGRATION_SET = "edgectl"
MIGRATIONS_TABLE = "_sqlite_migrations"  # sqlite_utils' record of what was applied
_steps: list[Callable] = []


def migration(step: Callable) -> Callable:
    _steps.append(step)
    return step


def migration_names() -> list[str]:
    return [step.__name__ for step in _steps]


def applied(conn) -> dict[str, str]:
    """name -> applied_at of this set's applied migrations, read without importing sqlite_utils."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [MIGRATIONS_TABLE]).fetchone():
        return {}
    return dict(conn.execute(f"SELECT name, applied_at FROM {MIGRATIONS_TABLE} WHERE migration_set = ? ORDER BY rowid",
                             [MIGRATION_SET]))


@cache
def _migration_set() -> Migrations:
    """sqlite_utils' Migrations with every step, built only when one is to be applied."""
    from sqlite_utils.migrations import Migrations

    migrations = Migrations(MIGRATION_SET)
    for step in _steps:
        migrations()(step)
    return migrations


def __getattr__(name: str):
    if name == "migrations":  # imported on use: sqlite_utils costs about 100 ms to import
        return _migration_set()
    raise AttributeError(name)


@migration
def m001_create_nodes(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE nodes (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            region TEXT,
            country TEXT,
            city TEXT,
            lat REAL,
            lon REAL,
            status TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'draining', 'maintenance', 'inactive', 'failed')),
            capabilities TEXT NOT NULL DEFAULT '[]',
            labels TEXT NOT NULL DEFAULT '{}',
            resources TEXT NOT NULL DEFAULT '{}',
            health_metrics TEXT NOT NULL DEFAULT '{}',
            max_concurrent INTEGER,
            health_path TEXT,
            token_ref TEXT,
            last_heartbeat TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            removed_at TEXT
        )
        """
    )
    # a name belongs to one live node; a removed node keeps its row and its history
    db.execute("CREATE UNIQUE INDEX idx_nodes_live_name ON nodes(name) WHERE removed_at IS NULL")
    db.execute("CREATE INDEX idx_nodes_status ON nodes(status)")
    db.execute("CREATE INDEX idx_nodes_region ON nodes(region)")
    db.execute(
        """
        CREATE TABLE node_events (
            id INTEGER PRIMARY KEY,
            node_id INTEGER NOT NULL REFERENCES nodes(id),
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            old_status TEXT,
            new_status TEXT,
            reason TEXT,
            details TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    db.execute("CREATE INDEX idx_node_events_node_at ON node_events(node_id, at)")
    db.execute("CREATE INDEX idx_node_events_at ON node_events(at)")


@migration
def m002_create_metrics(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE metrics (
            id INTEGER PRIMARY KEY,
            node_id INTEGER REFERENCES nodes(id),
            metric TEXT NOT NULL,
            value REAL NOT NULL,
            unit TEXT NOT NULL,
            source TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    db.execute("CREATE INDEX idx_metrics_node_metric_at ON metrics(node_id, metric, recorded_at)")
    db.execute("CREATE INDEX idx_metrics_at ON metrics(recorded_at)")


@migration
def m003_add_node_probe_state(db: Database) -> None:
    # what the last health probes saw, and the streaks the up/down hysteresis counts
    for ddl in (
        "ALTER TABLE nodes ADD COLUMN last_check_at TEXT",
        "ALTER TABLE nodes ADD COLUMN last_check_ok INTEGER",
        "ALTER TABLE nodes ADD COLUMN last_latency_ms REAL",
        "ALTER TABLE nodes ADD COLUMN last_error TEXT",
        "ALTER TABLE nodes ADD COLUMN fail_streak INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE nodes ADD COLUMN ok_streak INTEGER NOT NULL DEFAULT 0",
    ):
        db.execute(ddl)


@migration
def m004_create_purge_journal(db: Database) -> None:
    # A purge and its batches are written before anything is sent, and each batch after each step,
    # so an interrupted purge can be resumed or reported exactly.
    db.execute(
        """
        CREATE TABLE purges (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL
                CHECK (status IN ('planned', 'running', 'accepted', 'completed', 'failed', 'interrupted')),
            reason TEXT,
            headers TEXT NOT NULL DEFAULT '{}',
            providers TEXT NOT NULL DEFAULT '[]',
            summary TEXT NOT NULL DEFAULT '{}',
            owner_pid INTEGER
        )
        """
    )
    db.execute("CREATE INDEX idx_purges_created ON purges(created_at)")
    db.execute(
        """
        CREATE TABLE purge_targets (
            id INTEGER PRIMARY KEY,
            purge_id INTEGER NOT NULL REFERENCES purges(id),
            kind TEXT NOT NULL CHECK (kind IN ('url', 'prefix', 'tag', 'host', 'everything')),
            value TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_purge_targets_purge ON purge_targets(purge_id)")
    db.execute(
        """
        CREATE TABLE purge_batches (
            id INTEGER PRIMARY KEY,
            purge_id INTEGER NOT NULL REFERENCES purges(id),
            seq INTEGER NOT NULL,
            provider TEXT NOT NULL,
            provider_kind TEXT NOT NULL,
            kind TEXT NOT NULL,
            items TEXT NOT NULL,
            item_count INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sent', 'accepted', 'completed', 'failed')),
            provider_ref TEXT,
            detail TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            sent_at TEXT,
            accepted_at TEXT,
            completed_at TEXT,
            updated_at TEXT NOT NULL,
            UNIQUE (purge_id, seq)
        )
        """
    )
    db.execute("CREATE INDEX idx_purge_batches_state ON purge_batches(purge_id, state)")


@migration
def m005_create_warm_runs(db: Database) -> None:
    # One row per warm run and one per request it made; results are written in batches.
    db.execute(
        """
        CREATE TABLE warm_runs (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
            options TEXT NOT NULL DEFAULT '{}',
            summary TEXT NOT NULL DEFAULT '{}',
            owner_pid INTEGER
        )
        """
    )
    db.execute("CREATE INDEX idx_warm_runs_created ON warm_runs(created_at)")
    db.execute(
        """
        CREATE TABLE warm_results (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES warm_runs(id),
            url TEXT NOT NULL,
            node TEXT,
            variant TEXT NOT NULL,
            status_code INTEGER,
            cache_status TEXT NOT NULL,
            cache TEXT,
            latency_ms REAL,
            bytes INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            attempts INTEGER NOT NULL,
            at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX idx_warm_results_run ON warm_results(run_id, node)")


@migration
def m006_create_cache_entries(db: Database) -> None:
    # Cache policies (TTL and tags by path glob) and what warming found each node holding.
    db.execute(
        """
        CREATE TABLE cache_policies (
            id INTEGER PRIMARY KEY,
            match TEXT NOT NULL UNIQUE,
            ttl_s REAL NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE edge_cache_entries (
            id INTEGER PRIMARY KEY,
            cache_key TEXT NOT NULL,
            url TEXT NOT NULL,
            variant TEXT NOT NULL,
            node TEXT NOT NULL,
            node_id INTEGER REFERENCES nodes(id),
            content_hash TEXT,
            content_type TEXT,
            content_size INTEGER,
            expires_at TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            created_at TEXT NOT NULL,
            last_accessed TEXT NOT NULL,
            access_count INTEGER NOT NULL DEFAULT 0,
            invalidated_at TEXT,
            UNIQUE (cache_key, node)
        )
        """
    )
    db.execute("CREATE INDEX idx_cache_entries_node ON edge_cache_entries(node)")
    db.execute("CREATE INDEX idx_cache_entries_expires ON edge_cache_entries(expires_at)")
    db.execute("CREATE INDEX idx_cache_entries_url ON edge_cache_entries(url)")


@migration
def m007_create_geographic_routes(db: Database) -> None:
    # Routing rules as the reference's geographic_routes table: a source (subdivision, country,
    # region set, continent or the default) sent to a target node with a weight, a latency
    # threshold and a failover node; conditions hold jurisdictions, capabilities and the rest.
    db.execute(
        """
        CREATE TABLE geographic_routes (
            id INTEGER PRIMARY KEY,
            source_kind TEXT NOT NULL
                CHECK (source_kind IN ('subdivision', 'country', 'region', 'continent', 'default')),
            source_region TEXT NOT NULL,
            target_node_id INTEGER NOT NULL REFERENCES nodes(id),
            routing_weight INTEGER NOT NULL DEFAULT 100 CHECK (routing_weight >= 0),
            latency_threshold_ms REAL,
            failover_node_id INTEGER REFERENCES nodes(id),
            route_conditions TEXT NOT NULL DEFAULT '{}',
            is_active INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            removed_at TEXT
        )
        """
    )
    # resolve looks rules up by source, never loads them all; a source sends to a node once
    db.execute("CREATE UNIQUE INDEX idx_routes_live_source_target ON geographic_routes"
               "(source_kind, source_region, target_node_id) WHERE removed_at IS NULL")
    db.execute("CREATE INDEX idx_routes_target ON geographic_routes(target_node_id) WHERE removed_at IS NULL")
    db.execute("CREATE INDEX idx_routes_failover ON geographic_routes(failover_node_id) WHERE removed_at IS NULL")
    db.execute(
        """
        CREATE TABLE route_events (
            id INTEGER PRIMARY KEY,
            route_id INTEGER NOT NULL REFERENCES geographic_routes(id),
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            actor TEXT NOT NULL,
            reason TEXT,
            details TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    db.execute("CREATE INDEX idx_route_events_route_at ON route_events(route_id, at)")
    # the round_robin strategy's position per rule set, shared by every process
    db.execute("CREATE TABLE routing_counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")


@migration
def m008_add_node_address(db: Database) -> None:
    # where steering (DNS records, load-balancer pools) points for a node; unset, its endpoint's host
    db.execute("ALTER TABLE nodes ADD COLUMN address TEXT")


@migration
def m009_create_routing_applies(db: Database) -> None:
    # `routing apply`: the plan as it was approved, and each provider request (a step) written
    # before it is sent and after it answers, so an interrupted apply resumes where it stopped
    db.execute(
        """
        CREATE TABLE routing_applies (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL
                CHECK (status IN ('planned', 'running', 'applied', 'synced', 'failed', 'interrupted')),
            actor TEXT NOT NULL,
            reason TEXT,
            providers TEXT NOT NULL DEFAULT '[]',
            plan TEXT NOT NULL DEFAULT '{}',
            owner_pid INTEGER
        )
        """
    )
    db.execute(
        """
        CREATE TABLE routing_apply_steps (
            id INTEGER PRIMARY KEY,
            apply_id INTEGER NOT NULL REFERENCES routing_applies(id),
            seq INTEGER NOT NULL,
            provider TEXT NOT NULL,
            provider_kind TEXT NOT NULL,
            summary TEXT NOT NULL,
            changes TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sent', 'applied', 'synced', 'failed')),
            provider_ref TEXT,
            detail TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            sent_at TEXT,
            applied_at TEXT,
            synced_at TEXT,
            updated_at TEXT NOT NULL,
            UNIQUE (apply_id, seq)
        )
        """
    )
    db.execute("CREATE INDEX idx_routing_applies_created ON routing_applies(created_at)")


@migration
def m010_create_metric_history(db: Database) -> None:
    # The analytics history: a series is a metric with what it is about (node, provider, client
    # country and region, labels); raw samples point at it, and rollups keep, per series per
    # minute, hour and day, count, sum, min, max and a sparse exponential histogram (scale 6,
    # OpenTelemetry's and Prometheus's native boundaries) as rows, so that windows merge by sums.
    db.execute(
        """
        CREATE TABLE metric_series (
            id INTEGER PRIMARY KEY,
            metric TEXT NOT NULL,
            unit TEXT NOT NULL,
            node TEXT NOT NULL DEFAULT '',
            provider TEXT NOT NULL DEFAULT '',
            country TEXT NOT NULL DEFAULT '',
            region TEXT NOT NULL DEFAULT '',
            labels TEXT NOT NULL DEFAULT '{}',
            kind TEXT NOT NULL DEFAULT 'histogram' CHECK (kind IN ('histogram', 'gauge')),
            UNIQUE (metric, node, provider, country, region, labels, kind)
        )
        """
    )
    # at: milliseconds since the epoch, UTC; a sample's series says everything else about it
    db.execute("CREATE TABLE metric_samples (series_id INTEGER NOT NULL REFERENCES metric_series(id),"
               " at INTEGER NOT NULL, value REAL NOT NULL)")
    db.execute("CREATE INDEX idx_metric_samples_at ON metric_samples(at)")
    db.execute(
        """
        CREATE TABLE metric_rollups (
            resolution INTEGER NOT NULL,
            start INTEGER NOT NULL,
            series_id INTEGER NOT NULL REFERENCES metric_series(id),
            count INTEGER NOT NULL,
            sum REAL NOT NULL,
            min REAL NOT NULL,
            max REAL NOT NULL,
            zero_count INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (resolution, start, series_id)
        ) WITHOUT ROWID
        """
    )
    db.execute(
        """
        CREATE TABLE metric_buckets (
            resolution INTEGER NOT NULL,
            start INTEGER NOT NULL,
            series_id INTEGER NOT NULL,
            bucket INTEGER NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (resolution, start, series_id, bucket)
        ) WITHOUT ROWID
        """
    )


@migration
def m011_move_node_metrics_into_history(db: Database) -> None:
    # The probes' and heartbeats' figures move from `metrics` (m002) into the metrics history, in
    # the catalogue's names (edgectl/analytics/metrics.py) with a `source` label, folded into m010's
    # rollups; then `metrics` goes. Its per-run warm summaries are not moved: each warm request
    # stays in warm_results. Written against m010's tables, as they are at this point.
    import json
    import math
    from datetime import datetime, timezone

    from edgectl.analytics.histogram import bucket_index  # the boundaries are a fixed mathematical fact

    names = {"latency": ("latency", "ms"), "probe_up": ("up", "bool"), "cpu_percent": ("cpu", "percent"),
             "memory_percent": ("memory", "percent"), "disk_percent": ("disk", "percent"),
             "network_mbps": ("network", "mbps")}
    conn = db.conn
    series: dict[tuple, int] = {}
    samples: list[tuple[int, int, float]] = []
    for metric, value, source, recorded_at, node, region in conn.execute(
            "SELECT m.metric, m.value, m.source, m.recorded_at, n.name, coalesce(n.region, '') FROM metrics m"
            " JOIN nodes n ON n.id = m.node_id WHERE m.source IN ('probe', 'heartbeat')"):
        if metric not in names or not math.isfinite(value):
            continue
        name, unit = names[metric]
        labels = json.dumps({"source": source}, sort_keys=True, separators=(",", ":"))
        key = (name, unit, node, region, labels)
        if key not in series:
            conn.execute("INSERT OR IGNORE INTO metric_series (metric, unit, node, region, labels) VALUES (?, ?, ?, ?, ?)",
                         key)
            series[key] = conn.execute("SELECT id FROM metric_series WHERE metric = ? AND node = ? AND provider = ''"
                                       " AND country = '' AND region = ? AND labels = ? AND kind = 'histogram'",
                                       [name, node, region, labels]).fetchone()[0]
        when = datetime.fromisoformat(recorded_at.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        samples.append((series[key], int(when.timestamp() * 1000), float(value)))
    conn.executemany("INSERT INTO metric_samples (series_id, at, value) VALUES (?, ?, ?)", samples)
    summary: dict[tuple, list] = {}
    buckets: dict[tuple, int] = {}
    for series_id, at, value in samples:
        bucket = bucket_index(value) if value > 0 else None
        for resolution in (60_000, 3_600_000, 86_400_000):
            key = (resolution, at - at % resolution, series_id)
            row = summary.setdefault(key, [0, 0.0, value, value, 0])
            row[0] += 1
            row[1] += value
            row[2], row[3] = min(row[2], value), max(row[3], value)
            if bucket is None:
                row[4] += 1
            else:
                buckets[(*key, bucket)] = buckets.get((*key, bucket), 0) + 1
    conn.executemany(
        "INSERT INTO metric_rollups (resolution, start, series_id, count, sum, min, max, zero_count)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (resolution, start, series_id) DO UPDATE SET"
        " count = count + excluded.count, sum = sum + excluded.sum, min = min(min, excluded.min),"
        " max = max(max, excluded.max), zero_count = zero_count + excluded.zero_count",
        [(*key, *row) for key, row in summary.items()])
    conn.executemany(
        "INSERT INTO metric_buckets (resolution, start, series_id, bucket, count) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (resolution, start, series_id, bucket) DO UPDATE SET count = count + excluded.count",
        [(*cell, count) for cell, count in buckets.items()])
    db.execute("DROP TABLE metrics")
    # warm requests join the history once each: a resumed run records only what it added since
    db.execute("ALTER TABLE warm_runs ADD COLUMN recorded_through INTEGER")
    db.execute("UPDATE warm_runs SET recorded_through = (SELECT max(id) FROM warm_results r WHERE r.run_id = warm_runs.id)")


@migration
def m012_create_alerts(db: Database) -> None:
    # `analytics alerts`: rules over the metrics history; per rule, one instance per group (the
    # whole rule, or each node/region/... with --by) holding what the last check found and what
    # its receiver was last told; and one event per transition (firing, resolved), kept after a
    # rule is removed. A webhook is stored as typed: an env:/file: reference, or a plain URL.
    db.execute(
        """
        CREATE TABLE alert_rules (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            metric TEXT NOT NULL,
            stat TEXT NOT NULL,
            by TEXT NOT NULL DEFAULT '',
            op TEXT NOT NULL CHECK (op IN ('above', 'below')),
            threshold REAL NOT NULL,
            for_seconds INTEGER NOT NULL,
            severity TEXT NOT NULL,
            webhook TEXT,
            webhook_format TEXT NOT NULL DEFAULT 'auto',
            cooldown_seconds INTEGER NOT NULL,
            silenced_until TEXT,
            silence_reason TEXT,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE alert_instances (
            rule_id INTEGER NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
            fingerprint TEXT NOT NULL,
            labels TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('firing', 'inactive')),
            evaluation TEXT NOT NULL CHECK (evaluation IN ('firing', 'pending', 'ok', 'nodata')),
            value REAL,
            starts_at TEXT,
            ends_at TEXT,
            evaluated_at INTEGER NOT NULL,
            notified_status TEXT CHECK (notified_status IN ('firing', 'resolved')),
            notified_at INTEGER,
            notify_error TEXT,
            claim_pid INTEGER,
            claim_until INTEGER,
            PRIMARY KEY (rule_id, fingerprint)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE alert_events (
            id INTEGER PRIMARY KEY,
            rule TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            labels TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
            value REAL,
            threshold REAL NOT NULL,
            severity TEXT NOT NULL,
            starts_at TEXT NOT NULL,
            at TEXT NOT NULL,
            UNIQUE (rule, fingerprint, starts_at, status)
        )
        """
    )
    db.execute("CREATE INDEX idx_alert_events_at ON alert_events(at)")


@migration
def m013_create_pull_tables(db: Database) -> None:
    # The last reading of each running total a pull reads (the `http` kind's /.edge/stats), so the
    # next pull stores the increase since: `at` is when it was read (ms since the epoch, UTC).
    db.execute(
        """
        CREATE TABLE metric_counters (
            series_id INTEGER PRIMARY KEY REFERENCES metric_series(id),
            at INTEGER NOT NULL,
            value REAL NOT NULL
        )
        """
    )
    # Points a pull stored that cover more than a minute (Cloudflare's hours), [start, stop) in ms:
    # a finer point inside one is already counted there. Minute points need no row: the minute
    # rollups say which minutes hold a value.
    db.execute(
        """
        CREATE TABLE metric_spans (
            series_id INTEGER NOT NULL REFERENCES metric_series(id),
            start INTEGER NOT NULL,
            stop INTEGER NOT NULL,
            PRIMARY KEY (series_id, start)
        ) WITHOUT ROWID
        """
    )


@migration
def m014_add_alert_event_unit(db: Database) -> None:
    # the unit an event's value and threshold are in, so the history shows them as the check did
    # (51.25%, 409ms) even once its rule is gone; NULL for the events recorded before
    db.execute("ALTER TABLE alert_events ADD COLUMN unit TEXT")


@migration
def m015_pack_metric_history(db: Database) -> None:
    # The history repacked for speed and size (edgectl/analytics/store.py says how it is read):
    # raw samples go into a block per series per hour, a rollup's buckets into a BLOB column of
    # its row, and minutes are rolled up only once their raw samples pass retention. With a row
    # per sample and a row per bucket, a sparse series cost about seven row writes a sample.
    # Written against m010's, m011's and m013's tables, as they are at this point.
    from itertools import groupby

    from edgectl.analytics.histogram import pack_buckets, packed  # the BLOB format is versioned

    conn = db.conn
    db.execute(
        """
        CREATE TABLE metric_blocks (
            id INTEGER PRIMARY KEY,
            start INTEGER NOT NULL,
            series_id INTEGER NOT NULL REFERENCES metric_series(id),
            count INTEGER NOT NULL,
            offsets BLOB NOT NULL,
            vals BLOB NOT NULL
        )
        """
    )
    # start: the hour's first millisecond; offsets: each sample's milliseconds after it (uint32),
    # vals: their values (float64), both little-endian, in the order they came. By (start, series) for the
    # windows' edges and for retention, which drops whole hours.
    db.execute("CREATE INDEX idx_metric_blocks_start ON metric_blocks(start, series_id)")
    db.execute("ALTER TABLE metric_rollups ADD COLUMN buckets BLOB NOT NULL DEFAULT x'0100'")
    db.execute("CREATE TABLE metric_marks (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    hour = 3_600_000
    rows = conn.execute("SELECT series_id, at, value FROM metric_samples ORDER BY series_id, at")
    for (series_id, start), samples in groupby(rows, key=lambda r: (r[0], r[1] - r[1] % hour)):
        samples = list(samples)
        conn.execute("INSERT INTO metric_blocks (start, series_id, count, offsets, vals) VALUES (?, ?, ?, ?, ?)",
                     [start, series_id, len(samples), packed("I", (r[1] - start for r in samples)),
                      packed("d", (r[2] for r in samples))])
    # every minute's raw samples are kept so far (nothing was pruned): they answer for the minutes
    db.execute("DELETE FROM metric_rollups WHERE resolution = 60000")
    keys = conn.execute("SELECT resolution, start, series_id FROM metric_rollups").fetchall()
    for resolution, start, series_id in keys:
        buckets = dict(conn.execute("SELECT bucket, count FROM metric_buckets WHERE resolution = ? AND start = ?"
                                    " AND series_id = ?", [resolution, start, series_id]).fetchall())
        conn.execute("UPDATE metric_rollups SET buckets = ? WHERE resolution = ? AND start = ? AND series_id = ?",
                     [pack_buckets(buckets, None), resolution, start, series_id])
    db.execute("DROP TABLE metric_buckets")
    db.execute("DROP TABLE metric_samples")
