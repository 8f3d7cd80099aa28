"""A warm run shared among forked processes, each warming its share of the URLs into the same run."""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import replace

from edgectl.cache import engine
from edgectl.errors import EdgectlError, OperationFailed, UsageError


def run_workers(state, request, settings: engine.Settings, run_id: int, *, resuming: bool, warn) -> str:
    """Fork `request.engine.workers` processes and wait for them; 'completed' or 'interrupted'.

    Each child opens its own connection and rebuilds the sources itself (no file offsets or
    SQLite connections are shared across fork) and keeps the URLs whose salted hash falls to it.
    A signal to this process is passed on to the children, which stop cleanly like a single run.
    --concurrency, --rate and --per-host are for the whole run: each process takes its share.
    """
    from edgectl.cache import runs, warm
    from edgectl.cache.jobs import skip_finished

    # imported once, before the fork, rather than in every worker
    import httptools  # noqa: F401

    import edgectl.cache.status  # noqa: F401
    import edgectl.cache.writer  # noqa: F401

    workers = request.engine.workers
    share = replace(settings, concurrency=max(1, settings.concurrency // workers),
                    rate=settings.rate / workers if settings.rate else None,
                    per_host=max(1, settings.per_host // workers) if settings.per_host else 0)
    pids = []
    reports = []  # a pipe per worker, down which it says why it failed
    for index in range(workers):
        report_read, report_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(report_read)
            code = 1
            try:
                own = state.reopen()
                # one process reports skipped lines, not every one
                planned = warm.plan(own, request, warn if index == 0 else (lambda text: None),
                                    worker=(index + 1, workers))
                job_iter = planned.jobs
                if resuming:
                    job_iter = skip_finished(job_iter, runs.finished_keys(own, run_id))
                status, _ = runs.execute(own, run_id, job_iter, share)
                code = 130 if status == "interrupted" else 0
            except EdgectlError as exc:  # the parent raises it as the run's own error, once
                code = exc.exit_code
                os.write(report_write, json.dumps({"message": exc.message, "hint": exc.hint,
                                                   "exit_code": exc.exit_code}).encode()[:60_000])
            except BaseException as exc:  # noqa: BLE001 - reported, then the child exits
                sys.stderr.write(f"error: warm worker {index + 1}: {exc}\n")
            finally:
                os._exit(code)
        os.close(report_write)
        pids.append(pid)
        reports.append(report_read)
    interrupted = []

    def forward(signum, _frame):
        interrupted.append(signum)
        for child in pids:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        errors = []
        for fd in reports:
            with os.fdopen(fd, "rb") as pipe:
                said = pipe.read()
            if said:
                errors.append(json.loads(said))
    if interrupted or 130 in codes:
        return "interrupted"
    if errors:  # every worker reads the same sources: a bad one is the run's error, said once
        first = errors[0]
        kind = UsageError if first["exit_code"] == UsageError.exit_code else OperationFailed
        raise kind(first["message"], hint=first["hint"], exit_code=first["exit_code"])
    if any(codes):
        raise OperationFailed(f"{sum(1 for c in codes if c)} of {workers} warm workers failed",
                              hint=f"edgectl cache show {run_id}; resume with edgectl cache warm --resume {run_id}")
    return "completed"
