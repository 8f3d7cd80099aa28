"""One renderer for every command: the same records as a table, json, jsonl or csv.

Data goes to stdout; messages, warnings and errors go to stderr.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Sequence

from edgectl.timeutil import relative, to_iso

FORMATS = ("table", "json", "jsonl", "csv")

STATUS_STYLES = {
    "active": "green",
    "up": "green",
    "ok": "green",
    "create": "green",
    "draining": "yellow",
    "degraded": "yellow",
    "update": "yellow",
    "stale": "yellow",
    "maintenance": "cyan",
    "inactive": "dim",
    "removed": "dim",
    "failed": "bold red",
    "down": "bold red",
    "remove": "red",
    "error": "bold red",
    "loaded": "green",
    "refused": "bold red",
    "conflict": "bold red",
    "partial": "yellow",
    "disabled": "dim",
    "completed": "green",
    "accepted": "cyan",
    "pending": "yellow",
    "sent": "yellow",
    "running": "yellow",
    "interrupted": "yellow",
    "planned": "dim",
    "HIT": "green",
    "MISS": "yellow",
    "EXPIRED": "yellow",
    "REVALIDATED": "cyan",
    "BYPASS": "dim",
    "violation": "bold red",
    "no node": "bold red",
    "below target": "yellow",
    "no samples": "dim",
}


@dataclass(frozen=True)
class Column:
    """How one field of a record shows in a table; json and csv carry every field."""

    key: str
    header: str | None = None
    kind: str = "text"  # text | time | status | ms | ratio | bytes | list | map | bool | number | decimal
    justify: str = "left"
    wrap: bool = True  # False: a name, never broken across lines (cut short with … where there is no room)

    @property
    def title(self) -> str:
        return self.header or self.key.replace("_", " ").upper()


@dataclass(frozen=True)
class View:
    """How a command's result draws for a person; json, jsonl and csv carry the result itself.

    At a table, in order of precedence: `text` gives the one line the result is (a path, "node
    n1 is draining"); `draw(renderer, result)` draws a result of several parts; `rows` turns the
    result into the rows of a table of `columns` (without it, a list is its own rows and a
    record draws as a two-column table); `body=False` draws nothing, the result being only for
    machines. `notes` are the lines under it that sum it up for a person, on stderr; json and
    csv carry the same in the result. csv takes `rows` too. A message about what was done (not
    a summary of the result) is the command's own `note`, shown whatever the format. `quiet`:
    with --quiet, a table of this result is not drawn; json and csv still carry it (cron mails
    whatever is printed, so a good run of a scheduled command can say nothing).
    """

    columns: Sequence[Column] = ()
    rows: Callable[[Any], Iterable[dict]] | None = None
    notes: Callable[[Any], Iterable[str]] | None = None
    empty: str = "nothing to show"
    text: Callable[[Any], str] | None = None
    draw: Callable[["Renderer", Any], None] | None = field(default=None, compare=False)
    body: bool = True
    quiet: bool = False


def _plain(value: Any) -> Any:
    """JSON-ready form: datetimes as ISO-8601 UTC, tuples as lists."""
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value


def _brief(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(_plain(value), separators=(",", ":"))
    return str(value)


def _bytes(value: float) -> str:
    """1536 -> '1.5 KiB': binary units, as a person reads sizes."""
    if abs(value) < 1024:
        return f"{value:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if abs(value) < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def _cell(value: Any, kind: str) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if kind == "time" and isinstance(value, datetime):
        return relative(value)
    if kind == "ms":
        return f"{value:.1f}ms" if isinstance(value, (int, float)) else str(value)
    if kind == "ratio":
        return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else str(value)
    if kind == "bytes" and isinstance(value, (int, float)):
        return _bytes(value)
    if kind == "decimal" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:,.1f}"  # one decimal, so a column's figures line up: 29.7 above 61.0
    if kind == "list":
        return ", ".join(str(v) for v in value)
    if kind == "map":
        return ", ".join(
            f"{k}: {_brief(v['old'])} -> {_brief(v['new'])}" if isinstance(v, dict) and set(v) == {"old", "new"}
            else f"{k}={_brief(v)}"
            for k, v in value.items()
        )
    if kind == "bool":
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, datetime):
        return to_iso(value)
    if isinstance(value, (dict, list)):
        return json.dumps(_plain(value), separators=(",", ":"))
    return str(value)


class Renderer:
    def __init__(self, fmt: str = "table", *, color: bool = True, quiet: bool = False, verbose: bool = False,
                 warned: list[str] | None = None):
        self.fmt = fmt
        self.color = color
        self.quiet = quiet
        self.verbose = verbose
        self.warned = [] if warned is None else warned  # every warning given, so none is given twice

    # consoles are made at use, so that a redirected sys.stdout (tests, pipes) is honoured
    def console(self, stream=None):
        stream = stream or sys.stdout
        from rich.console import Console

        tty = stream.isatty()
        return Console(
            file=stream,
            no_color=not self.color,
            color_system="auto" if self.color else None,
            highlight=False,
            width=None if tty else 100_000,  # piped tables keep one row per line for grep and awk
            soft_wrap=not tty,
        )

    @property
    def interactive(self) -> bool:
        return self.fmt == "table" and sys.stdout.isatty()

    # ---- data, to stdout -------------------------------------------------
    def show(self, result: dict | list[dict], view: View | None = None) -> None:
        """A command's result in the chosen format: the one way every command renders its data.

        json writes the result as it is, jsonl a line per record, csv the table's rows, and a
        table is drawn as `view` says.
        """
        view = view or View()
        if self.fmt == "json":
            sys.stdout.write(json.dumps(_plain(result), indent=2) + "\n")
            sys.stdout.flush()
        elif self.fmt == "jsonl":
            for row in result if isinstance(result, list) else [result]:
                sys.stdout.write(json.dumps(_plain(row), separators=(",", ":")) + "\n")
            sys.stdout.flush()
        elif self.fmt == "csv":
            rows = list(view.rows(result)) if view.rows else result if isinstance(result, list) else [result]
            self._csv(rows, list(view.columns))
            sys.stdout.flush()
        elif not (view.quiet and self.quiet):
            if view.text is not None:
                sys.stdout.write(view.text(result) + "\n")
                sys.stdout.flush()
            elif view.draw is not None:
                view.draw(self, result)
            elif not view.body:
                pass
            elif view.rows is not None or isinstance(result, list):
                self.records(view.rows(result) if view.rows else result, list(view.columns), empty=view.empty)
            else:
                self.record(result, list(view.columns))
            for line in view.notes(result) if view.notes else ():  # for a person: json and csv carry it all
                self.note(line)

    def preview(self, rows: Iterable[dict], columns: list[Column], *, empty: str = "nothing to show") -> None:
        """A plan drawn for a person to confirm before it is applied; json and csv take it with the result."""
        if self.fmt == "table":
            self.records(rows, columns, empty=empty)

    # ---- drawing primitives ----------------------------------------------
    # `show`, `preview` and the `View.draw` functions draw with these; a command renders its
    # result through `show`, so that its view is the one place that says how the result looks.
    def records(self, rows: Iterable[dict], columns: list[Column], *, empty: str = "nothing to show") -> None:
        """Rows: a table of `columns` (or `empty` as a note, when there are none), a json list, jsonl or csv."""
        rows = list(rows)
        out = sys.stdout
        if self.fmt == "json":
            out.write(json.dumps([_plain(r) for r in rows], indent=2) + "\n")
        elif self.fmt == "jsonl":
            for row in rows:
                out.write(json.dumps(_plain(row), separators=(",", ":")) + "\n")
        elif self.fmt == "csv":
            self._csv(rows, columns)
        else:
            if not rows:
                self.note(empty)
                return
            self._table(rows, columns)
        out.flush()

    def record(self, row: dict, columns: list[Column] | None = None) -> None:
        """A single object: a json object, one jsonl/csv row, or a two-column table."""
        if self.fmt == "json":
            sys.stdout.write(json.dumps(_plain(row), indent=2) + "\n")
        elif self.fmt in ("jsonl", "csv"):
            self.records([row], columns or [Column(k) for k in row])
        else:
            from rich.table import Table

            kinds = {c.key: c for c in columns or []}
            table = Table(show_header=False, box=None, pad_edge=False)
            table.add_column(style="bold")
            table.add_column()
            for key, value in row.items():
                col = kinds.get(key, Column(key))
                table.add_row(col.title.lower(), self._styled(value, col))
            self.console(sys.stdout).print(table)
        sys.stdout.flush()

    def _styled(self, value: Any, col: Column):
        from rich.text import Text

        text = _cell(value, col.kind)
        if col.kind == "status" and isinstance(value, str):
            return Text(text, style=STATUS_STYLES.get(value, ""))
        if col.kind == "bool" and value:
            return Text(text, style="yellow")
        return Text(text)

    def table(self, rows: list[dict], columns: list[Column], caption: str | None = None):
        """The rich Table for rows (for callers that refresh it live)."""
        from rich.table import Table

        table = Table(box=None, header_style="bold", pad_edge=False, caption=caption, caption_justify="left")
        for col in columns:
            table.add_column(col.title, justify=col.justify, overflow="fold" if col.wrap else "ellipsis",
                             no_wrap=not col.wrap)
        for row in rows:
            table.add_row(*(self._styled(row.get(c.key), c) for c in columns))
        return table

    def _table(self, rows: list[dict], columns: list[Column]) -> None:
        self.console(sys.stdout).print(self.table(rows, columns))

    def _csv(self, rows: list[dict], columns: list[Column]) -> None:
        import csv

        keys: list[str] = []
        for row in rows:
            keys.extend(k for k in row if k not in keys)
        if not keys:
            keys = [c.key for c in columns]
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(keys)
        for row in rows:
            line = []
            for key in keys:
                value = _plain(row.get(key))
                if isinstance(value, (dict, list)):
                    value = json.dumps(value, separators=(",", ":"))
                elif isinstance(value, bool):
                    value = "true" if value else "false"  # as JSON writes them
                line.append("" if value is None else value)
            writer.writerow(line)

    # ---- messages, to stderr ---------------------------------------------
    def note(self, text: str) -> None:
        """Progress and confirmations a person wants to see; silent with --quiet or off a table."""
        if not self.quiet:
            self.console(sys.stderr).print(text, markup=False, highlight=False)

    def info(self, text: str) -> None:
        if self.verbose and not self.quiet:
            self.console(sys.stderr).print(text, markup=False, style="dim")

    def warn(self, text: str) -> None:
        self.warned.append(text)
        if self.fmt in ("json", "jsonl"):
            sys.stderr.write(json.dumps({"warning": text}) + "\n")
        else:
            self.console(sys.stderr).print(f"warning: {text}", markup=False, style="yellow")
