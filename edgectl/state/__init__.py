"""The SQLite state file: opening it safely, migrating it, backing it up and checking it."""

from __future__ import annotations

import os
import secrets
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edgectl.errors import StateError, UsageError

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 5000


def default_state_path() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("edgectl")) / "edgectl.db"


@dataclass
class MigrationStatus:
    name: str
    applied_at: str | None

    @property
    def applied(self) -> bool:
        return self.applied_at is not None

    def to_record(self) -> dict:
        from edgectl.timeutil import from_iso

        at = from_iso(self.applied_at.replace(" ", "T")) if self.applied_at else None
        return {"name": self.name, "applied": self.applied, "applied_at": at}


class Database:
    """The connection calls edgectl makes, as sqlite_utils' Database spells them.

    sqlite_utils, with click, pluggy and dateutil behind it, takes about 100 ms to import: more
    than the rest of a command's start-up. It is imported only to apply migrations (on the same
    connection). The connection is in autocommit mode, so a statement outside `atomic()` is
    committed at once, as sqlite_utils 4 does.
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, parameters=None) -> sqlite3.Cursor:
        return self.conn.execute(sql) if parameters is None else self.conn.execute(sql, parameters)

    def query(self, sql: str, params=None):
        """Each row as a dict."""
        cursor = self.execute(sql, params or ())
        keys = [d[0] for d in cursor.description]
        for row in cursor:
            yield dict(zip(keys, row))

    @contextmanager
    def atomic(self):
        """A write transaction; nested blocks are savepoints, undone alone when they fail.

        It takes the write lock when it begins (BEGIN IMMEDIATE), so another process's write
        makes it wait for up to the busy timeout. A deferred BEGIN would read first and then,
        in WAL mode, be refused the write at once (SQLITE_BUSY_SNAPSHOT) without waiting.
        """
        if self.conn.in_transaction:
            savepoint = f"edgectl_{secrets.token_hex(8)}"
            self.conn.execute(f"SAVEPOINT {savepoint}")
            try:
                yield self
            except BaseException:
                if self.conn.in_transaction:  # an error may already have ended the transaction
                    self.conn.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                    self.conn.execute(f"RELEASE SAVEPOINT {savepoint}")
                raise
            self.conn.execute(f"RELEASE SAVEPOINT {savepoint}")
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def table_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]

    def migrating(self):
        """sqlite_utils' Database on this connection, for the migrations."""
        from sqlite_utils import Database as Migratable

        return Migratable(self.conn, execute_plugins=False)

    def close(self) -> None:
        self.conn.close()


class State:
    """An open state database; `db` is a `Database`."""

    def __init__(self, path: Path, db, busy_timeout_ms: int = BUSY_TIMEOUT_MS):
        self.path = path
        self.db = db
        self.busy_timeout_ms = busy_timeout_ms

    def reopen(self) -> "State":
        """Another connection to the same file, for a forked process: a connection must not cross a fork."""
        return open_state(self.path, migrate=False, create_dirs=False, busy_timeout_ms=self.busy_timeout_ms)

    def close(self) -> None:
        self.db.close()

    def migration_status(self) -> list[MigrationStatus]:
        from edgectl.state.migrations import applied as applied_migrations, migration_names

        applied = applied_migrations(self.db.conn)
        return [MigrationStatus(name, applied.get(name)) for name in migration_names()]

    def backup(self, target: Path, *, replace: bool = False) -> None:
        """SQLite's online backup: a consistent copy even while another process writes.

        The copy is written beside the target and renamed over it only when complete.
        """
        if target.exists() and (target.is_dir() or os.path.samefile(target, self.path)):
            raise UsageError(f"cannot back up onto {target}", hint="give a new file path, not the state file or a directory")
        if target.exists() and not replace:
            raise UsageError(f"{target} already exists", hint="pass --force to replace it")
        partial = target.with_name(f".{target.name}.partial{os.getpid()}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            dest = sqlite3.connect(str(partial))
            try:
                with dest:
                    self.db.conn.backup(dest, pages=1024)
            finally:
                dest.close()
            os.replace(partial, target)
        except OSError as exc:
            raise UsageError(f"cannot write backup {target}: {exc.strerror or exc}") from None
        finally:
            partial.unlink(missing_ok=True)

    def integrity_problems(self) -> list[str]:
        rows = [r[0] for r in self.db.execute("PRAGMA integrity_check").fetchall()]
        problems = [] if rows == ["ok"] else rows
        for table, rowid, parent, _ in self.db.execute("PRAGMA foreign_key_check").fetchall():
            problems.append(f"{table} row {rowid} refers to a missing {parent} row")
        return problems


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise StateError(f"cannot read state file {path}: {exc.strerror}") from None
    if head and head != SQLITE_HEADER:
        raise StateError(
            f"{path} is not an edgectl state file (not a SQLite database)",
            hint="point --state or EDGECTL_STATE at the right file",
            exit_code=2,
        )


def _migrate(db: Database, known: set[str]) -> None:
    """Apply the pending migrations under the write lock, read again once it is held.

    Processes that open a new or older file at the same moment queue on the lock; each finds
    what the one before it applied, so no migration runs twice and none is refused.
    """
    from edgectl.state import migrations

    with db.atomic():
        if set(migrations.applied(db.conn)) != known:
            migrations.migrations.apply(db.migrating())  # each migration a savepoint within


def _wal(db: Database, busy_timeout_ms: int) -> None:
    """Put the file in WAL mode. Two processes opening a new state file at once both ask; SQLite answers
    the one that loses with 'database is locked' at once, without waiting on the busy timeout, so it asks
    again until the timeout has passed."""
    import time

    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def open_state(path: Path, *, migrate: bool = True, create_dirs: bool = True,
               busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> State:
    """Open (creating it 0600 if new) and, unless told otherwise, migrate to the latest schema.

    With create_dirs off (a path the user named), a missing directory is an error rather than
    a new, empty state somewhere a typo pointed.
    """
    from edgectl.state import migrations

    path = Path(path).expanduser()
    if path.exists():
        if path.is_dir():
            raise StateError(f"state path {path} is a directory", hint="give the path of a file", exit_code=2)
        _check_header(path)
    else:
        if not create_dirs and not path.parent.is_dir():
            raise StateError(f"cannot create state file {path}: directory {path.parent} does not exist",
                             hint="check --state / EDGECTL_STATE, or create the directory", exit_code=2)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise StateError(f"cannot create state file {path}: {exc.strerror}") from None
    try:
        conn = sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000, isolation_level=None)
        db = Database(conn)
        from edgectl.names import natural_compare

        conn.create_collation("natural_order", natural_compare)  # ORDER BY name COLLATE natural_order: n2 before n10
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _wal(db, busy_timeout_ms)
        # WAL with NORMAL sync: a commit survives a killed process; only power loss can drop the last ones
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        known = set(migrations.migration_names())
        applied = set(migrations.applied(conn))
        newer = sorted(applied - known)
        if newer:
            conn.close()
            raise StateError(
                f"{path} was written by a newer edgectl (unknown migrations: {', '.join(newer)})",
                hint="upgrade edgectl, or use another state file",
            )
        if migrate and applied != known:
            _migrate(db, known)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise
        raise StateError(f"cannot open state file {path}: {exc}",
                         hint="check that the file and its directory are writable by you") from None
    except sqlite3.DatabaseError as exc:
        raise StateError(f"cannot use state file {path}: {exc}",
                         hint="restore it from an edgectl state backup") from None
    return State(path, db, busy_timeout_ms)
