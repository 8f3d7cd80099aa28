"""A warm run's results, recorded by a process of its own while the event loop goes on sending.

Recording a result (its cache status, its row, the cache entry it shows) costs about a tenth
of what the request itself costs the event loop. On a thread it would also contend with the
loop for the GIL: a 5,000-URL run was 12% slower that way than recording inline. A forked
process does it on another core instead. Batches go down a pipe as pickled tuples, and the
pipe is widened so a batch is handed over without waiting.

The writer ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole process group): the run
stops it by closing the pipe once its last answers are sent, so nothing the run received is
lost, and a writer whose run was killed still records what reached it. It also keeps the run's
warm lock until then, so the next warm cannot start before the last one's results are in. A
writer that fails reports why, and the run stops with that message.
"""

from __future__ import annotations

import os
import pickle
import signal
from typing import Callable

from edgectl.cache import engine
from edgectl.errors import StateError

PIPE_BYTES = 1 << 20  # Linux's default pipe-max-size; a batch of 500 results is about 200 KiB
F_SETPIPE_SZ = 1031


def pack(outcome: engine.Outcome) -> tuple:
    job = outcome.job
    return (job.url, job.node, job.variant.name, outcome.status_code, outcome.headers, outcome.latency_ms,
            outcome.size, outcome.digest, outcome.error, outcome.attempts)


def unpack(row: tuple, variants: dict[str, engine.Variant]) -> engine.Outcome:
    url, node, variant, status_code, headers, latency_ms, size, digest, error, attempts = row
    known = variants.get(variant)
    if known is None:
        known = variants[variant] = engine.Variant(variant)
    return engine.Outcome(engine.Job(url, node, None, known), status_code, headers, latency_ms, size, digest,
                          error, attempts)


class Writer:
    """`submit` batches of outcomes; `close` waits until every one is recorded."""

    def __init__(self, state, run_id: int, record: Callable):
        """`record(state, run_id, outcomes, recorder)` runs in the writer for each batch."""
        read_fd, self.write_fd = os.pipe()
        error_read, error_write = os.pipe()
        try:
            import fcntl

            fcntl.fcntl(self.write_fd, F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:  # a lower pipe-max-size: batches are then handed over in parts
            pass
        self.pid = os.fork()
        if self.pid == 0:  # the writer: never returns
            os.close(self.write_fd)
            os.close(error_read)
            _serve(read_fd, error_write, state, run_id, record)
        os.close(read_fd)
        os.close(error_write)
        self.error_fd = error_read
        self.closed = False
        self.failure: StateError | None = None

    def submit(self, outcomes: list[engine.Outcome]) -> None:
        if self.closed:
            raise self.failure or StateError("the results writer has stopped")
        data = memoryview(pickle.dumps([pack(o) for o in outcomes], protocol=pickle.HIGHEST_PROTOCOL))
        try:
            while data:
                data = data[os.write(self.write_fd, data):]
        except BrokenPipeError:
            self.close()  # raises the writer's own reason
            raise StateError("the results writer stopped") from None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        os.close(self.write_fd)
        _, status = os.waitpid(self.pid, 0)
        with os.fdopen(self.error_fd, "rb") as errors:
            reason = errors.read().decode(errors="replace").strip()
        if os.waitstatus_to_exitcode(status) != 0:
            self.failure = StateError(f"recording warm results failed: {reason or 'the writer exited with ' + str(status)}",
                                      hint="what was recorded before it stays; --resume sends the rest again")
            raise self.failure


def _serve(read_fd: int, error_fd: int, parent_state, run_id: int, record: Callable) -> None:
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        from edgectl.cache.entries import Recorder
        # the run's own connection must not cross the fork: the same file, the same busy timeout
        state = parent_state.reopen()
        recorder = Recorder(state)
        variants: dict[str, engine.Variant] = {}
        with os.fdopen(read_fd, "rb") as pipe:
            while True:
                try:
                    rows = pickle.load(pipe)
                except (EOFError, pickle.UnpicklingError):  # the end, or a batch cut off by a killed run
                    break
                record(state, run_id, [unpack(row, variants) for row in rows], recorder)
        state.close()
        code = 0
    except BaseException as exc:  # noqa: BLE001 - reported to the run, which stops with it
        message = getattr(exc, "message", None) or f"{exc.__class__.__name__}: {exc}"
        try:
            os.write(error_fd, message.encode()[:4000])
        except OSError:
            pass
    finally:
        os._exit(code)  # no atexit handlers, no buffers flushed twice, the parent's connection untouched
