"""A warm run's record in the state: the lock, the run and its results, resuming, the summary, running it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from typing import Any, Iterator

from edgectl.cache import engine
from edgectl.cache.engine import Job
from edgectl.cache.jobs import job_key
from edgectl.errors import NotFound, StateError, UsageError
from edgectl.process import alive
from edgectl.timeutil import from_iso, to_iso, utcnow


def warm_lock(state_path):
    """One warm at a time per state file (cron runs overlap when one is slow); exit 4 otherwise."""
    from edgectl.process import held_lock

    return held_lock(f"{state_path}.warm.lock", what="another cache warm",
                     hint="wait for it, or pass --no-lock to run beside it")


def result_count(state, run_id: int) -> int:
    return state.db.execute("SELECT count(*) FROM warm_results WHERE run_id = ?", [run_id]).fetchone()[0]


def finished_keys(state, run_id: int) -> set[int]:
    return {job_key(url, node, variant) for url, node, variant in
            state.db.execute("SELECT url, node, variant FROM warm_results WHERE run_id = ?", [run_id])}



def claim_run(state, run_id: int) -> dict[str, Any]:
    """A run to resume: interrupted (or whose process died), never one still running.

    The check and the take are one transaction under the write lock, so of two resumes started
    at once (`--no-lock`) exactly one gets the run.
    """
    with state.db.atomic():
        record = get_run(state, run_id)
        if record["status"] == "running":
            from edgectl.errors import LockHeld

            raise LockHeld(f"warm run {run_id} is still running",
                           hint="wait for it to finish; a run whose process has died can be resumed")
        if record["status"] == "completed":
            raise UsageError(f"warm run {run_id} completed; there is nothing to resume")
        state.db.conn.execute("UPDATE warm_runs SET status = 'running', owner_pid = ?, finished_at = NULL WHERE id = ?",
                              [os.getpid(), run_id])
    return record


def set_options(state, run_id: int, options: dict[str, Any]) -> None:
    """A resumed run's options as it now runs, so the next resume starts from them."""
    with state.db.atomic():
        state.db.conn.execute("UPDATE warm_runs SET options = ?, updated_at = ? WHERE id = ?",
                              [json.dumps(options), to_iso(utcnow()), run_id])


def start_run(state, options: dict[str, Any]) -> int:
    now = to_iso(utcnow())
    with state.db.atomic():
        cursor = state.db.conn.execute(
            "INSERT INTO warm_runs (created_at, updated_at, status, options, owner_pid) VALUES (?, ?, 'running', ?, ?)",
            [now, now, json.dumps(options), os.getpid()])
    return cursor.lastrowid


def record(state, run_id: int, outcomes: list[engine.Outcome], recorder=None) -> list:
    """A batch of results, and the cache entries they show, in one transaction."""
    from edgectl.cache.status import UNKNOWN, classify

    now = to_iso(utcnow())
    rows = []
    statuses = []
    for o in outcomes:
        status = UNKNOWN if o.error else classify(o.headers)
        statuses.append(status)
        rows.append((run_id, o.job.url, o.job.node, o.job.variant.name, o.status_code, status.status, status.cache,
                     o.latency_ms, o.size, o.error, o.attempts, now))
    with state.db.atomic():
        state.db.conn.executemany(
            "INSERT INTO warm_results (run_id, url, node, variant, status_code, cache_status, cache, latency_ms,"
            " bytes, error, attempts, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        if recorder is not None:
            recorder.record(outcomes, statuses)
    return statuses


def summary(state, run_id: int) -> dict[str, Any]:
    db = state.db
    q = lambda sql, *args: db.execute(sql, [run_id, *args]).fetchall()  # noqa: E731
    total, errors, size = q("SELECT count(*), sum(error IS NOT NULL OR status_code >= 400), coalesce(sum(bytes), 0)"
                            " FROM warm_results WHERE run_id = ?")[0]
    classes = {f"{c}xx" if c else "error": n for c, n in q(
        "SELECT status_code / 100, count(*) FROM warm_results WHERE run_id = ? GROUP BY 1 ORDER BY 1")}
    per_node: dict[str, dict[str, int]] = {}
    for node, status, n in q("SELECT coalesce(node, '(public)'), cache_status, count(*) FROM warm_results"
                             " WHERE run_id = ? GROUP BY 1, 2"):
        per_node.setdefault(node, {})[status] = n
    latencies = {}
    timed = q("SELECT count(*) FROM warm_results WHERE run_id = ? AND latency_ms IS NOT NULL")[0][0]
    for name, share in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        if timed:
            offset = min(timed - 1, int(share * timed))
            latencies[name] = q("SELECT latency_ms FROM warm_results WHERE run_id = ? AND latency_ms IS NOT NULL"
                                " ORDER BY latency_ms LIMIT 1 OFFSET ?", offset)[0][0]
    common = [{"error": e, "count": n} for e, n in q(
        "SELECT coalesce(error, 'HTTP ' || status_code), count(*) FROM warm_results WHERE run_id = ?"
        " AND (error IS NOT NULL OR status_code >= 400) GROUP BY 1 ORDER BY 2 DESC LIMIT 5")]
    hits = sum(c.get("hit", 0) for c in per_node.values())
    return {"requests": total, "errors": errors or 0, "error_rate": round((errors or 0) / total, 4) if total else 0.0,
            "status_classes": classes, "cache_before": per_node,
            "hit_ratio_before": round(hits / total, 4) if total else 0.0, "bytes": size,
            "latency_ms": latencies, "common_errors": common}


def finish_run(state, run_id: int, status: str, data: dict[str, Any]) -> None:
    now = to_iso(utcnow())
    with state.db.atomic():
        state.db.conn.execute("UPDATE warm_runs SET status = ?, summary = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                              [status, json.dumps(data), now, now, run_id])


def record_metrics(state, run_id: int) -> None:
    """The run's requests join the metrics history: each one's latency, and per node, path prefix and
    minute the requests, cache hits and bytes. A resumed run adds only what it fetched since."""
    from edgectl.analytics.metrics import key
    from edgectl.analytics.record import at_ms, path_prefix, record
    from edgectl.analytics.samples import Sample

    with state.db.atomic():
        through = state.db.execute("SELECT recorded_through FROM warm_runs WHERE id = ?", [run_id]).fetchone()
        rows = state.db.execute(
            "SELECT r.id, r.url, coalesce(r.node, ''), coalesce(n.region, ''), r.cache_status, r.latency_ms, r.bytes,"
            " r.at FROM warm_results r LEFT JOIN nodes n ON n.name = r.node AND n.removed_at IS NULL"
            " WHERE r.run_id = ? AND r.id > ? AND r.status_code IS NOT NULL ORDER BY r.id",
            [run_id, (through[0] if through else None) or 0]).fetchall()
        if not rows:
            return
        samples: list[Sample] = []
        counts: dict[tuple[str, str, str, int], list] = {}  # node, region, prefix, minute -> requests, hits, bytes
        latency_keys: dict[tuple[str, str], object] = {}
        for _, url, node, region, cache_status, latency, size, at in rows:
            moment = at_ms(at)
            if latency is not None:
                series = latency_keys.get((node, region))
                if series is None:
                    series = latency_keys[(node, region)] = key("latency", node=node, region=region,
                                                                labels={"source": "warm"})
                samples.append(Sample(series, moment, latency))
            cell = counts.setdefault((node, region, path_prefix(url), moment - moment % 60_000), [0, 0, 0])
            cell[0] += 1
            cell[1] += cache_status == "hit"
            cell[2] += size or 0
        for (node, region, prefix, minute), (requests, hits, size) in counts.items():
            labels = {"source": "warm", "prefix": prefix}
            for metric, value in (("requests", requests), ("cache.hits", hits), ("bytes", size)):
                samples.append(Sample(key(metric, node=node, region=region, labels=labels), minute, value))
        record(state, samples)
        state.db.execute("UPDATE warm_runs SET recorded_through = ? WHERE id = ?", [rows[-1][0], run_id])


def runs(state, limit: int = 50) -> list[dict[str, Any]]:
    return [_run_record(r) for r in state.db.query("SELECT * FROM warm_runs ORDER BY id DESC LIMIT ?", [limit])]


def get_run(state, run_id: int) -> dict[str, Any]:
    rows = list(state.db.query("SELECT * FROM warm_runs WHERE id = ?", [run_id]))
    if not rows:
        raise NotFound(f"no warm run with id {run_id}", hint="edgectl cache runs lists recent runs")
    return _run_record(rows[0])


def _run_record(row: dict) -> dict[str, Any]:
    data = json.loads(row["summary"])
    status = row["status"]
    if status == "running" and row["owner_pid"] and not alive(row["owner_pid"]):
        status = "interrupted"
    return {"id": row["id"], "status": status, "created_at": from_iso(row["created_at"]),
            "finished_at": from_iso(row["finished_at"]), "requests": data.get("requests"),
            "errors": data.get("errors"), "hit_ratio_before": data.get("hit_ratio_before"),
            "options": json.loads(row["options"]), "summary": data}



def execute(state, run_id: int, job_iter: Iterator[Job], settings: engine.Settings, on_progress=None) -> tuple[str, engine.Progress]:
    """Run the engine on this thread's event loop; SIGINT/SIGTERM stop it cleanly.

    Results are recorded by a writer process (edgectl.cache.writer); this returns once every
    result the run received is in the state file.
    """
    from edgectl.cache.writer import Writer

    stop_reason: list[str] = []
    progress = engine.Progress()

    async def main(writer: Writer) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        main_task = asyncio.current_task()

        def on_signal(signum: int) -> None:
            stop_reason.append(signal.Signals(signum).name)
            if stop.is_set():  # a second one: abandon the requests in flight too
                main_task.cancel()
            stop.set()

        def sink(batch: list[engine.Outcome]) -> None:
            writer.submit(batch)
            if on_progress is not None:  # the hit ratio so far, for the progress line only
                from edgectl.cache.status import classify

                progress.hits += sum(1 for o in batch if not o.error and classify(o.headers).status == "hit")

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await engine.run(job_iter, settings, sink, stop, progress=progress, on_progress=on_progress)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    writer = Writer(state, run_id, record)
    try:
        try:
            engine.run_loop(main(writer))
        except asyncio.CancelledError:  # the second signal: what was received is still recorded
            pass
        finally:
            writer.close()
    except StateError:  # the writer failed: the run stops, resumable from what was recorded
        try:
            finish_run(state, run_id, "interrupted", summary(state, run_id))
        except sqlite3.Error:
            pass  # the state refuses this too; the dead owner marks the run interrupted
        raise
    return ("interrupted" if stop_reason else "completed"), progress

