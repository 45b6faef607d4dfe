"""``learnexit export``: every row of one customer, in every chosen format, in one package.

The run, in order (design §4, issue 4):

1. Resolve the options (formats from the config unless given; an unknown format, dialect,
   language or age recipient is bad input, exit 2, before anything is touched).
2. Check the export window against the ledger's active notice: after the export deadline
   the export is refused (exit 3) unless a reason for the late export is given.  No
   notice at all is allowed, and said in the notes.
3. Record the export as ``running`` (with an audit entry), create ``<name>.partial/``.
4. Open ONE snapshot.  Build the table specs (owned tables parents first, column kinds,
   references among exported tables whose targets are all exported), count each table,
   then read each table once, feeding every selected format's ``TableWriter``; then run
   each format's ``after`` step in ``order``, still in the snapshot.  With several cores
   (``run_formats``) the formats run side by side instead, in groups (one read pass feeds
   every writer of a group; ``_groups``) spread over several processes, each reading its
   own snapshot of the same data: PostgreSQL imports this
   process's exported snapshot (``SET TRANSACTION SNAPSHOT``); SQLite has no such thing,
   so the workers begin their own read transactions and the parallel run goes ahead only
   if nothing was committed since this process's snapshot began (``PRAGMA
   data_version``), else everything runs here; MySQL/MariaDB always run in one process.
   When the formats make one group (``--format csv``), the biggest table is read in key
   ranges instead, one per process, by formats that can join ranges written by other
   processes (CSV, SQL: ``TableWriter.start_part``/``join_part``); the files come out
   as one process writes them.
5. Problems reported by the formats (missing media) fail the export unless allowed.
6. ``package.finish_package`` writes datapackage.json, index.html and the bag, and renames
   the package into place.  Only then is the ledger row marked ``complete``; any failure
   marks it ``failed`` and removes the partial build.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import contract, errors
from .config import LANGS, SQL_DIALECTS, Settings, scrub
from .errors import BadInput, LearnexitError, OperationalError, Refused, printable
from .exporters.base import (
    Background,
    ColumnSpec,
    Exporter,
    ExportJob,
    ExportOptions,
    TableSpec,
    TableWriter,
    column_kind,
    load_builtin,
)
from .exporters.sql_format import check_mysql_names
from .ledger.consistency import require_consistent
from .ledger.schema import exports, locks, meta_table, purges
from .ledger.store import Ledger, holder_is_dead, utcnow
from .logs import event
from .machine import usable_cores
from .none_values import no_none
from .offboarding.cases import open_source
from .offboarding.clock import now as current_time
from .offboarding.facts import active_notice
from .package import (
    PackageBuild,
    destroy_path,
    discard_package,
    finish_package,
    looks_like_package,
    package_paths,
    plan_package,
    prehash,
)
from .quiet_loss import quiet_loss_notes
from .roles import check_roles
from .source import Edge, Source, describe_db_error
from .valuefree import first_line

# Seconds to sleep after each table of the read pass: lets tests interrupt an export
# mid-way deterministically.  Never set it in production.
SLOW_EXPORT_ENV = "LEARNEXIT_TEST_SLOW_EXPORT"

Progress = Callable[[str, int, int | None], None]  # (label, rows done, rows expected or None)


@dataclass
class ExportResult:
    customer: str
    path: Path
    files: int
    bytes: int
    tables: dict[str, int]
    notes: list[str]
    problems: list[str]
    manifest_sha256: str
    formats: list[str]
    export_id: int
    started_at: datetime
    finished_at: datetime
    export_deadline: date | None = None
    late: bool = False
    encrypted: bool = False
    zip: bool = False
    payload_files: int = 0

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "path": str(self.path),
            "files": self.files,
            "bytes": self.bytes,
            "tables": dict(self.tables),
            "rows": self.rows,
            "notes": list(self.notes),
            "problems": list(self.problems),
            "manifest_sha256": self.manifest_sha256,
            "formats": list(self.formats),
            "export_id": self.export_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "export_deadline": self.export_deadline,
            "late": self.late,
            "zip": self.zip,
            "encrypted": self.encrypted,
        }


# --------------------------------------------------------------------------- options


def split_formats(values: Iterable[str]) -> list[str]:
    """``["csv,xlsx", "json"]`` → ``["csv", "xlsx", "json"]`` (order kept, no repeats)."""
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if name and name not in names:
                names.append(name)
    return names


def resolve_formats(requested: Sequence[str] | None, settings: Settings) -> list[Exporter]:
    """The exporters to run, from ``requested`` or the config; unknown names are exit 2."""
    registry = load_builtin()
    names = split_formats(requested) if requested else list(settings.export.formats)
    if not names:
        raise BadInput("no export format chosen")
    unknown = [n for n in names if n not in registry]
    if unknown:
        source = "--format" if requested else f"{settings.label}: [export] formats"
        available = ", ".join(sorted(registry)) or "none"
        raise BadInput(f"{source}: unknown or unavailable format {unknown[0]!r} (available: {available})")
    return [registry[n] for n in names]


def parse_recipients(values: Sequence[str]) -> list[Any]:
    """age recipients (``age1…`` or ``ssh-…`` public keys, or a file of them, one a line)."""
    if not values:
        return []
    import pyrage

    texts: list[str] = []
    for value in values:
        value = value.strip()
        if value and not value.startswith(("age1", "ssh-")) and Path(value).is_file():
            lines = Path(value).read_text(encoding="utf-8").splitlines()
            texts.extend(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
        else:
            texts.append(value)
    recipients = []
    for text in texts:
        try:
            if text.startswith("ssh-"):
                recipients.append(pyrage.ssh.Recipient.from_str(text))
            else:
                recipients.append(pyrage.x25519.Recipient.from_str(text))
        except pyrage.RecipientError as exc:
            raise BadInput(f"--encrypt-to: not an age recipient {text[:24]!r}…: {exc}") from None
    if not recipients:
        raise BadInput("--encrypt-to: no recipient given")
    return recipients


def _aware(settings: Settings, now: datetime | None) -> datetime:
    if now is None:
        return current_time(settings.contract.timezone)  # honours $LEARNEXIT_NOW (rehearsals)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)  # naive means UTC, as in the ledger
    return now.astimezone(UTC)


# --------------------------------------------------------------------------- the window


def check_window(
    settings: Settings, ledger: Ledger, customer: str, now: datetime, late_reason: str | None, notes: list[str]
) -> tuple[date | None, bool]:
    """(export deadline, late?) — or Refused when the window has closed and no reason is
    given; VerificationFailed when the customer's ledger records disagree with the audit."""
    require_consistent(ledger, customer)  # the deadline must be the one the notice recorded
    notice = active_notice(ledger, customer)  # the latest notice not withdrawn
    if notice is None:
        notes.append("no termination notice recorded: exported without an export window")
        return None, False
    deadline: date = notice["export_deadline"]
    today = contract.today(settings.contract.timezone, now)
    if today <= deadline:
        if late_reason:
            notes.append(f"--late given, but the export window is open until {deadline.isoformat()}")
        return deadline, False
    if not late_reason:
        raise Refused(
            f"the export window for {customer} closed on {deadline.isoformat()} "
            f"(today is {today.isoformat()}); to export anyway give --late --reason TEXT"
        )
    # The reason is staff's record (ledger and audit), not part of the customer's package.
    notes.append(
        f"late export, {(today - deadline).days} days after the export deadline {deadline.isoformat()} "
        "(the reason is recorded in the ledger)"
    )
    return deadline, True


# --------------------------------------------------------------------------- table specs


def _outside(source: Source, owned: Any, edge: Edge) -> Any:
    """1 for an exported row of ``edge.child`` (``owned``: its exported rows) whose reference
    points outside the exported rows of ``edge.parent``, else 0 (frictionless semantics: a
    key with any value set must match).  A "no reference" value (``sentinels``) counts as
    NULL: such a row points nowhere (``none_values``)."""
    parent = source.table(edge.parent)
    parent_keys = (
        sa.select(*[parent.c[c] for c in edge.parent_cols])
        .where(source.predicate(edge.parent), *[parent.c[c].is_not(None) for c in edge.parent_cols])
        .correlate(None)
    )
    cols = [owned.c[c] for c in edge.child_cols]
    key = cols[0] if len(cols) == 1 else sa.tuple_(*cols)
    matched = sa.and_(*[c.is_not(None) for c in cols], key.in_(parent_keys))
    return sa.case(
        (sa.and_(sa.or_(*[c.is_not(None) for c in cols]), *no_none(owned, edge), sa.not_(matched)), 1), else_=0
    )


def _integer_key(table: sa.Table) -> str | None:
    """The primary key's column when it is one integer column."""
    keys = list(table.primary_key.columns)
    return keys[0].name if len(keys) == 1 and column_kind(keys[0]) == "integer" else None


# A table whose keys span at least this many values is counted in two halves at once
# (``build_specs`` with a second connection on the same snapshot).
STATS_SPLIT_SPAN = 200_000


@dataclass
class _Stats:
    """What the counting scan found in (part of) a table; halves add up."""

    rows: int
    outside: list[int]  # rows pointing outside the export, per edge
    low: Any = None  # lowest and highest key, and rows with a key (one integer key column)
    high: Any = None
    keyed: int = 0

    def __add__(self, other: _Stats) -> _Stats:
        both = _Stats(self.rows + other.rows, [a + b for a, b in zip(self.outside, other.outside, strict=True)])
        lows = [v for v in (self.low, other.low) if v is not None]
        highs = [v for v in (self.high, other.high) if v is not None]
        if all(type(v) is int for v in lows + highs):  # (SQLite: text keys give no range)
            both.low, both.high = min(lows, default=None), max(highs, default=None)
            both.keyed = self.keyed + other.keyed
        return both

    def key_range(self) -> tuple[int, int] | None:
        # (SQLite lets a key that is not the rowid be NULL, or text: no range then)
        if type(self.low) is int and type(self.high) is int and self.keyed == self.rows:
            return (self.low, self.high)
        return None


def _stats_select(source: Source, name: str, edges: Sequence[Edge], where: Any = None) -> sa.Select[Any]:
    """One scan of ``name``'s exported rows (``where``: a part of them): the count, the
    rows pointing outside the export per edge, and with one integer key column its lowest
    and highest value and the rows that have one."""
    stmt = source.owned_select(name).order_by(None)
    if where is not None:
        stmt = stmt.where(where)
    owned = stmt.subquery("le_owned")
    key = _integer_key(source.table(name))
    columns: list[Any] = [sa.func.count()] + [
        sa.func.coalesce(sa.func.sum(_outside(source, owned, e)), 0) for e in edges
    ]
    if key is not None:
        columns += [sa.func.min(owned.c[key]), sa.func.max(owned.c[key]), sa.func.count(owned.c[key])]
    return sa.select(*columns).select_from(owned)


def _read_stats(conn: sa.Connection, stmt: sa.Select[Any], edges: int) -> _Stats:
    row = tuple(conn.execute(stmt).one())
    stats = _Stats(int(row[0] or 0), [int(n or 0) for n in row[1 : 1 + edges]])
    if len(row) > 1 + edges:
        stats.low, stats.high, stats.keyed = row[1 + edges], row[2 + edges], int(row[3 + edges] or 0)
    return stats


def _halves(source: Source, conn: sa.Connection, name: str) -> tuple[Any, Any] | None:
    """Two conditions that cut ``name`` in halves of its whole key span (read from the
    key's index), when the table is big enough to count in two scans at once."""
    table = source.table(name)
    key = _integer_key(table)
    if key is None:
        return None
    # (two subqueries: SQLite reads min() or max() alone from the index, not both at once)
    low, high = conn.execute(
        sa.select(
            sa.select(sa.func.min(table.c[key])).scalar_subquery(),
            sa.select(sa.func.max(table.c[key])).scalar_subquery(),
        )
    ).one()
    if type(low) is not int or type(high) is not int or high - low < STATS_SPLIT_SPAN:
        return None
    middle = low + (high - low) // 2
    column = table.c[key]
    if source.engine.dialect.name == "sqlite" and not _sqlite_rowid(conn, table, key):
        # (SQLite lets a primary key that is not the rowid be NULL: the first half takes those)
        return sa.or_(column < middle, column.is_(None)), column >= middle
    return column < middle, column >= middle  # (plain ranges: the database reads them by key)


def _sqlite_rowid(conn: sa.Connection, table: sa.Table, key: str) -> bool:
    """Whether ``key`` is declared ``INTEGER PRIMARY KEY`` (the rowid, never NULL; in a
    WITHOUT ROWID table a primary key is NOT NULL too).  Reflection keeps ``INT`` and
    ``INTEGER`` apart only in the declared type."""
    quoted = conn.dialect.identifier_preparer.quote(table.name)
    for row in conn.exec_driver_sql(f"PRAGMA table_info({quoted})"):
        if row[1] == key:
            return str(row[2]).strip().upper() == "INTEGER"
    return False


def build_specs(
    source: Source,
    conn: sa.Connection,
    notes: list[str],
    totals: dict[str, int] | None = None,
    helper: sa.Connection | None = None,
) -> list[TableSpec]:
    """Owned tables, parents first, with their columns and the references among them.

    A reference is kept only when every exported row's target is exported too, so the
    SQL dump loads and ``frictionless validate`` passes; a dropped one is noted.  Each
    table is scanned once, counting its rows (into ``totals``) and the references that
    point outside the export together.  ``helper``: a second connection on the same
    snapshot; a big table's second half is then counted on it, on a thread, while this
    one counts the rest (the drivers leave the GIL while the database works).
    """
    settings = source.settings
    # ``export = false`` tables are owned (the purge deletes them) but never exported;
    # ``omit_columns`` leave the export, and so do the references made of them.
    owned = [name for name in source.owned_tables() if settings.rule(name).export]
    exported = set(owned)
    omitted = {name: set(settings.rule(name).omit_columns) for name in owned}
    edges = {
        name: [
            e
            for e in source.datamap.edges
            if e.child == name
            and e.parent in exported
            and not omitted[name] & set(e.child_cols)
            and not omitted[e.parent] & set(e.parent_cols)
        ]
        for name in owned
    }
    # With a helper and a big table: the helper counts the second half of each big table
    # while this thread counts the first halves and then every small table.
    ours: list[tuple[str, Any]] = [(name, None) for name in owned]
    theirs: list[tuple[str, Any]] = []
    if helper is not None:
        halves = {name: h for name in owned if (h := _halves(source, conn, name)) is not None}
        if halves:
            theirs = [(name, second) for name, (_, second) in halves.items()]
            ours = [(name, first) for name, (first, _) in halves.items()]
            ours += [(name, None) for name in owned if name not in halves]
    counted: dict[str, list[_Stats]] = {name: [] for name in owned}

    def count(on: sa.Connection, parts: list[tuple[str, Any]]) -> None:
        for name, where in parts:
            stmt = _stats_select(source, name, edges[name], where)
            counted[name].append(_read_stats(on, stmt, len(edges[name])))

    thread = Background(lambda: count(helper, theirs), "stats") if theirs and helper is not None else None
    try:
        count(conn, ours)
    except BaseException:
        if thread is not None:
            thread.thread.join()  # (it reads through ``helper``, which closes after this)
        raise
    if thread is not None:
        thread.wait()
    specs = []
    for name in owned:
        table = source.table(name)
        columns = tuple(
            ColumnSpec(c.name, column_kind(c), bool(c.nullable), bool(c.primary_key), c.type)
            for c in table.columns
            if c.name not in omitted[name]
        )
        found = counted[name][0] if len(counted[name]) == 1 else counted[name][0] + counted[name][1]
        if totals is not None:
            totals[name] = found.rows
        keys = []
        for edge, outside in zip(edges[name], found.outside, strict=True):
            if outside:
                rows = "1 exported row references a row" if outside == 1 else f"{outside} exported rows reference rows"
                notes.append(
                    printable(
                        f"{edge.label}: {rows} not part of this export; the reference is kept as plain "
                        "values, not declared as a foreign key"
                    )
                )
                continue
            keys.append(edge)
        specs.append(
            TableSpec(
                name=name,
                columns=columns,
                primary_key=tuple(c.name for c in table.primary_key.columns),
                foreign_keys=tuple(keys),
                category=settings.rule(name).category,
                table=table,
                key_range=found.key_range(),
            )
        )
    return specs


@contextmanager
def counting_helper(source: Source, conn: sa.Connection) -> Iterator[sa.Connection | None]:
    """A second connection that reads what ``conn``'s snapshot reads (PostgreSQL: its
    exported snapshot; SQLite: a read begun while nothing was committed since ``conn``'s
    began), for ``build_specs``; None when there is none (MySQL/MariaDB, an in-memory
    database, a commit meanwhile, or it cannot be opened)."""
    if not source.shareable():
        yield None
        return
    source.start_snapshot(conn)  # (SQLite: ``conn``'s snapshot begins before the helper's)
    with ExitStack() as stack:
        helper: sa.Connection | None
        try:
            helper = stack.enter_context(source.snapshot(imported=source.share_snapshot(conn)))
            source.start_snapshot(helper)
        except (OperationalError, sa.exc.SQLAlchemyError):
            helper = None
        yield helper if helper is not None and source.snapshot_unchanged(conn) else None


# --------------------------------------------------------------------------- the read pass


@dataclass(frozen=True)
class _Split:
    """One big table read in key ranges, one range per process: range 0 by the export's
    own process (which reads every other table too), range k by worker k.  ``bounds``
    holds the first key of ranges 1, 2, …; the ranges together hold every key."""

    table: str
    key: str
    bounds: tuple[int, ...]

    @property
    def parts(self) -> int:
        return len(self.bounds) + 1

    def where(self, spec: TableSpec, part: int) -> Any:
        key = spec.table.c[self.key]
        conditions = []
        if part > 0:
            conditions.append(key >= self.bounds[part - 1])
        if part < len(self.bounds):
            conditions.append(key < self.bounds[part])
        return sa.and_(*conditions)


# What the export's process receives from the workers that read the other ranges, in
# range order: (range, rows read, each format's ``TableWriter.end_part`` result).
PartResults = Callable[[], Iterable[tuple[int, int, dict[str, Any]]]]


def read_pass(
    job: ExportJob,
    exporters: Sequence[Exporter],
    totals: dict[str, int],
    label: str | None = None,
    split: _Split | None = None,
    parts: PartResults | None = None,
) -> None:
    """Read every table once from the snapshot, feeding every format's TableWriter
    (``label``: the format, when each format reads on its own).  With ``split``, this
    process reads only the first key range of that table and takes the other ranges in
    from ``parts`` (written by worker processes) before the table ends."""
    writers: list[tuple[str, TableWriter]] = []
    delay = float(os.environ.get(SLOW_EXPORT_ENV) or 0)
    try:
        for exporter in exporters:
            writer = exporter.writer(job)
            if writer is not None:
                writers.append((exporter.name, writer))
        if not writers:  # only formats that read on their own (documents, media): nothing to feed
            return
        if split is None:  # (a watcher must see every row: not when a table is read in ranges)
            for exporter in exporters:
                if type(exporter).writer is Exporter.writer and (watcher := exporter.watcher(job)) is not None:
                    writers.append((exporter.name, watcher))
        # Batches as columns when every writer takes them so (no transposing back and forth).
        columnar = all(type(w).write_columns is not TableWriter.write_columns for _, w in writers)
        for spec in job.tables:
            for _, w in writers:
                w.start_table(spec)
            rows = 0
            job.progress(spec.name, 0)
            where = split.where(spec, 0) if split is not None and spec.name == split.table else None
            if columnar:
                for columns in job.columns(spec.name, where):
                    n = len(columns[0])
                    for _, w in writers:
                        w.write_columns(spec, columns, n)
                    rows += n
                    job.progress(spec.name, rows)
            else:
                for batch in job.tuples(spec.name, where):
                    for _, w in writers:
                        w.write_batch(spec, batch)
                    rows += len(batch)
                    job.progress(spec.name, rows)
            if where is not None and parts is not None:
                for part, part_rows, outputs in parts():
                    for name, w in writers:
                        w.join_part(spec, part, outputs[name])
                    rows += part_rows
                    job.progress(spec.name, rows)
            for _, w in writers:
                w.end_table(spec, rows)
            if rows != totals[spec.name]:
                raise OperationalError(
                    f"{spec.name}: read {rows} rows but counted {totals[spec.name]} in the same snapshot"
                )
            job.counts[spec.name] = rows
            # one line per table only when asked for (--log-level debug): 481 tables are 481 lines
            if label is None:
                event("export_table", level=logging.DEBUG, customer=job.customer, table=spec.name, rows=rows)
            else:
                event(
                    "export_table", level=logging.DEBUG, customer=job.customer, table=spec.name, rows=rows, format=label
                )
            if delay:
                time.sleep(delay)
        for _, w in writers:
            w.close()
    except BaseException:
        for _, w in writers:
            try:
                w.abort()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        raise


def read_part(job: ExportJob, exporters: Sequence[Exporter], split: _Split, part: int) -> tuple[int, dict[str, Any]]:
    """In a worker: range ``part`` of the split table into every format's files of its own
    (``TableWriter.start_part``); returns the rows read and each format's result."""
    spec = job.spec(split.table)
    writers: list[tuple[str, TableWriter]] = []
    try:
        for exporter in exporters:
            writer = exporter.writer(job)
            if writer is not None:
                writers.append((exporter.name, writer))
                writer.start_part(spec, part)
        rows = 0
        for columns in job.columns(spec.name, split.where(spec, part)):
            n = len(columns[0])
            for _, w in writers:
                w.write_columns(spec, columns, n)
            rows += n
            job.progress(spec.name, rows)
        return rows, {name: w.end_part(spec, part, rows) for name, w in writers}
    except BaseException:
        for _, w in writers:
            try:
                w.abort_part(spec, part)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        raise


# --------------------------------------------------------------------------- running the formats

# Processes that export formats side by side (default: one per core, when there is enough
# to do); 1 runs every format in this process.
EXPORT_WORKERS_ENV = "LEARNEXIT_EXPORT_WORKERS"
PARALLEL_FROM_ROWS = 10_000
# A table this big may be read in key ranges by several processes (``plan_split``).
SPLIT_FROM_ROWS = 100_000
# Rough cost of a format per exported row, to start the costly ones first.
# Rough CPU seconds of each format alone for 600k rows (``bench/run.py``), to balance the
# groups and start the costly tasks first.
_COST = {"json": 5.0, "xml": 2.5, "xlsx": 4.0, "pdf": 4.5, "docx": 3.5, "sql": 3.5, "csv": 2.5, "media": 0.3}
# A format cheaper than this that reads no rows is a task of its own (see ``_groups``).
_FILLER_COST = 0.5
# A format whose ``after`` step makes another's files too when both are exported (the
# nested JSON step writes the XML document; the first document format renders both).
_MADE_WITH = {"xml": "json", "docx": "pdf"}


def _costs(exporters: Sequence[Exporter]) -> dict[str, float]:
    names = {e.name for e in exporters}
    cost = {name: _COST.get(name, 1.0) for name in names}
    for name, maker in _MADE_WITH.items():
        if name in names and maker in names:
            cost[maker] += cost[name]
            cost[name] = 0.1
    return cost


def export_workers(source: Source, exporters: Sequence[Exporter], totals: dict[str, int]) -> int:
    """How many processes may export: one per core (``LEARNEXIT_EXPORT_WORKERS``
    overrides), and 1 when the source cannot share its snapshot with other processes
    (MySQL/MariaDB), fork is not available, or there is little to do.  ``run_formats``
    uses at most one per group of formats, or one per key range of a big table."""
    configured = os.environ.get(EXPORT_WORKERS_ENV, "").strip()
    if configured:
        try:
            wanted = max(1, int(configured))
        except ValueError:
            raise BadInput(f"{EXPORT_WORKERS_ENV} must be a whole number, not {configured!r}") from None
    else:
        if sum(totals.values()) < PARALLEL_FROM_ROWS:
            return 1
        wanted = usable_cores()
    if not exporters or not source.shareable() or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return wanted


def plan_split(job: ExportJob, group: Sequence[Exporter], workers: int, totals: dict[str, int]) -> _Split | None:
    """When one group of formats would leave cores idle: the biggest table (at least
    ``SPLIT_FROM_ROWS`` rows, a one-column integer key) cut into ``workers`` ranges of
    keys, if every format of the group can write a table in ranges (``Exporter.splits``).
    The ranges split the lowest to highest exported key evenly: even rows per range when
    the customer's keys are spread evenly (an uneven spread costs time, not rows)."""
    readers = [e for e in group if _reads(e)]
    if workers < 2 or not readers:
        return None
    ranged = [t for t in job.tables if t.key_range is not None and totals.get(t.name, 0) >= SPLIT_FROM_ROWS]
    if not ranged:
        return None
    spec = max(ranged, key=lambda t: totals[t.name])
    key = _integer_key(spec.table)
    if key is None or spec.key_range is None or not all(e.splits(job, spec) for e in readers):
        return None
    low, high = spec.key_range
    span = high - low + 1
    parts = min(workers, span)
    if parts < 2:
        return None
    return _Split(spec.name, key, tuple(low + span * k // parts for k in range(1, parts)))


def run_formats(job: ExportJob, exporters: Sequence[Exporter], totals: dict[str, int], order: list[str]) -> None:
    """Every format's rows and documents, in this process or side by side in several:
    groups of formats, one process each, or (one group) a big table's key ranges."""
    job.counts.update(totals)  # verified table by table by every read pass
    workers = export_workers(job.source, exporters, totals)
    tasks = _groups(exporters, workers) if workers > 1 else []
    split = plan_split(job, tasks[0], workers, totals) if len(tasks) == 1 else None
    parallel = len(tasks) > 1 or split is not None
    if not parallel or not _run_parallel(job, exporters, totals, order, tasks, split, workers):
        with _background_done(job):
            for exporter in exporters:
                exporter.prepare(job)
            read_pass(job, exporters, totals)
            for exporter in sorted(exporters, key=lambda e: (e.order, order.index(e.name))):
                exporter.after(job)
    with _background_done(job):
        if job.parallel and any(type(e).finish is not Exporter.finish for e in exporters):
            # The export summary is made now, the rest is final: hash it meanwhile (the
            # package hashes again only what changed or is new).
            job.in_background(lambda: job.prehashed.update(prehash(job.data_dir)), "prehash")
        for exporter in sorted(exporters, key=lambda e: (e.order, order.index(e.name))):
            exporter.finish(job)


@contextmanager
def _background_done(job: ExportJob) -> Iterator[None]:
    """The formats' background work started inside is done when this ends: waited for
    (its error raised) — and after a failure too, its own errors then giving way to the
    one being raised (no thread may still write while the export cleans up)."""
    try:
        yield
    except BaseException:
        try:
            job.wait_background()
        except Exception:  # noqa: BLE001 - the error being raised is the one to report
            pass
        raise
    job.wait_background()


@dataclass
class _TaskResult:
    """What one format did, handed back to the export's own process."""

    name: str
    read_notes: list[str]  # notes of its read pass
    after_notes: list[str]  # notes of its ``after`` step
    problems: list[str]
    media: list[dict[str, Any]]


def _reads(exporter: Exporter) -> bool:
    """Whether the format takes the rows of the read pass (has a TableWriter)."""
    return type(exporter).writer is not Exporter.writer


def _groups(exporters: Sequence[Exporter], workers: int) -> list[list[Exporter]]:
    """The tasks of a parallel export: the formats shared out over ``workers`` groups,
    costliest first, each to the group with the least work so far.  In a group, one read
    of each table feeds every format that takes the rows (instead of one read per format),
    then the formats' ``after`` steps run.  A format that reads nothing and costs little
    (media; a format another one makes) is a task of its own at the end, taken by the
    first process that is free: the cost figures are rough, and this evens out the end."""
    cost = _costs(exporters)
    fillers = [e for e in exporters if not _reads(e) and cost[e.name] < _FILLER_COST]
    groups: list[list[Exporter]] = [[] for _ in range(max(1, workers))]
    load = [0.0] * len(groups)
    for exporter in sorted((e for e in exporters if e not in fillers), key=lambda e: -cost[e.name]):
        i = load.index(min(load))
        groups[i].append(exporter)
        load[i] += cost[exporter.name]
    tasks = [g for _, g in sorted(zip(load, groups, strict=True), key=lambda pair: -pair[0]) if g]
    return tasks + [[e] for e in sorted(fillers, key=lambda e: -cost[e.name])]


def _run_task(
    job: ExportJob,
    group: list[Exporter],
    totals: dict[str, int],
    split: _Split | None = None,
    parts: PartResults | None = None,
) -> list[_TaskResult]:
    """A group of formats: one read pass feeding all their writers, then their ``after``
    steps.  Each format's result holds the read-pass notes it wrote (notes begin with the
    format's name), so the package does not depend on how the formats were grouped."""
    job.notes, job.problems, job.media = [], [], []
    report = job.progress
    readers = [e for e in group if _reads(e)]
    done: dict[str, int] = {}

    def progress(label: str, n: int, total: int | None = None) -> None:  # a bar per format: rows of all tables
        if label in totals:
            done[label] = n
            for exporter in readers:
                report(exporter.name, sum(done.values()))
        else:
            report(label, n, total)

    job.progress = progress
    started = time.monotonic()
    try:
        with _background_done(job):
            for exporter in group:
                exporter.prepare(job)
            if readers:
                read_pass(job, group, totals, label=",".join(e.name for e in readers), split=split, parts=parts)
            read_notes: dict[str, list[str]] = {e.name: [] for e in group}
            for note in job.notes:
                owner = next((e.name for e in readers if note.startswith(f"{e.name}: ")), group[0].name)
                read_notes[owner].append(note)
            results = []
            for exporter in sorted(group, key=lambda e: e.order):
                notes, problems, media = len(job.notes), len(job.problems), len(job.media)
                exporter.after(job)
                results.append(
                    _TaskResult(
                        exporter.name,
                        read_notes[exporter.name],
                        job.notes[notes:],
                        job.problems[problems:],
                        job.media[media:],
                    )
                )
                event(
                    "export_format",
                    customer=job.customer,
                    format=exporter.name,
                    seconds=round(time.monotonic() - started, 2),
                )
            return results
    finally:
        job.progress = report


def _run_parallel(
    job: ExportJob,
    exporters: Sequence[Exporter],
    totals: dict[str, int],
    order: list[str],
    tasks: list[list[Exporter]],
    split: _Split | None = None,
    workers: int = 2,
) -> bool:
    """Run the tasks (groups of formats) in this process and ``workers - 1`` forked ones
    (each takes the next task when it is free), each reading its
    own snapshot of the same data (PostgreSQL: the exported snapshot; SQLite: a new read
    transaction, used only when no one has written since this process's began).  With
    ``split`` (one task), worker k reads range k of the split table and this process
    everything else.  False when the snapshots could not be shared (then nothing was
    written: run sequentially)."""
    source = job.source
    ctx = multiprocessing.get_context("fork")
    next_task = ctx.Value("i", 0)
    updates = ctx.Queue()
    shared = source.share_snapshot(job.conn)
    base_notes, base_problems, base_media = job.notes, job.problems, job.media
    job.parallel = True  # (the forked workers get it too)
    children: list[tuple[Any, Any]] = []
    results: dict[str, _TaskResult] = {}
    parent = os.getpid()
    # (one process per task, at most ``workers``; the rest take tasks as they become free)
    ranges = list(range(1, split.parts)) if split is not None else [None] * (min(workers, len(tasks)) - 1)
    try:
        for part in ranges:
            ours, theirs = ctx.Pipe()
            process = ctx.Process(
                target=_worker,
                args=(job, tasks, totals, next_task, shared, theirs, updates, parent, split, part),
                name="learnexit-export",
            )
            process.start()
            theirs.close()
            children.append((process, ours))
        for process, pipe in children:
            message = _receive(process, pipe)
            if message[0] != "ready":
                _raise_from(message)
        if not source.snapshot_unchanged(job.conn):
            for _process, pipe in children:
                pipe.send("stop")
            for process, _pipe in children:
                process.join()
            job.parallel = False
            event("export_parallel_skipped", level=30, customer=job.customer, reason="the source changed")
            return False
        for _process, pipe in children:
            pipe.send("go")
        if split is not None:
            event("export_split", customer=job.customer, table=split.table, parts=split.parts)
        report = job.progress

        def progress(label: str, n: int, total: int | None = None, *, forward: Any = report) -> None:
            forward(label, n, total)
            _relay(updates, forward)

        def parts() -> Iterator[tuple[int, int, dict[str, Any]]]:
            for part, (process, pipe) in enumerate(children, start=1):
                message = _receive(process, pipe, updates, report)
                if message[0] != "part":
                    _raise_from(message)
                yield part, message[1], message[2]

        job.progress = progress
        try:
            while (task := _take(next_task, tasks)) is not None:
                results.update((r.name, r) for r in _run_task(job, task, totals, split, parts))
        finally:
            job.progress = report
        for process, pipe in children:
            while True:
                message = _receive(process, pipe, updates, report)
                if message[0] == "done":
                    results.update({r.name: r for r in message[1]})
                    break
                _raise_from(message)
            process.join()
        _relay(updates, report)
    except BaseException:
        job.parallel = False
        for process, _pipe in children:
            if process.is_alive():
                process.kill()
            process.join()
        raise
    finally:
        for _process, pipe in children:
            pipe.close()
        if updates is not None:
            updates.close()
            updates.cancel_join_thread()
        job.notes, job.problems, job.media = base_notes, base_problems, base_media
    # Merge in the order one process would have produced: read passes, then after steps.
    for exporter in sorted(exporters, key=lambda e: order.index(e.name)):
        job.notes.extend(results[exporter.name].read_notes)
    for exporter in sorted(exporters, key=lambda e: (e.order, order.index(e.name))):
        result = results[exporter.name]
        job.notes.extend(result.after_notes)
        job.problems.extend(result.problems)
        job.media.extend(result.media)
    return True


def _take(counter: Any, tasks: list[list[Exporter]]) -> list[Exporter] | None:
    with counter.get_lock():
        i = counter.value
        counter.value = i + 1
    return tasks[i] if i < len(tasks) else None


def _relay(updates: Any, report: Any) -> None:
    """Pass on the progress the worker processes reported."""
    if updates is None:
        return
    while True:
        try:
            label, n, total = updates.get_nowait()
        except queue.Empty:
            return
        report(label, n, total)


def _receive(process: Any, pipe: Any, updates: Any = None, report: Any = None) -> Any:
    """The next message from a worker, or an error if it died without one."""
    while True:
        ready = multiprocessing.connection.wait([pipe, process.sentinel], timeout=0.2)
        if pipe in ready:
            try:
                return pipe.recv()
            except EOFError:
                pass
        elif not ready:
            _relay(updates, report)
            continue
        process.join()
        raise OperationalError(f"an export worker process died (exit code {process.exitcode})")


def _raise_from(message: Any) -> None:
    if message[0] == "error":
        _kind, error_type, text = message
        error_class = getattr(errors, error_type, None)
        if isinstance(error_class, type) and issubclass(error_class, LearnexitError):
            raise error_class(text)
        raise OperationalError(f"export worker failed: {text}")
    raise OperationalError(f"export worker sent {message[0]!r}")


def _worker(
    job: ExportJob,
    tasks: list[list[Exporter]],
    totals: dict[str, int],
    next_task: Any,
    shared: str | None,
    pipe: Any,
    updates: Any,
    parent: int,
    split: _Split | None = None,
    part: int | None = None,
) -> None:
    """A forked worker: its own snapshot, then formats until none is left (or, with
    ``part``, that range of the split table for the one task's formats)."""
    code = 0
    try:
        source = job.source
        source.engine.dispose(close=False)  # the parent's connections are not ours to use
        with source.snapshot(imported=shared) as conn:
            source.start_snapshot(conn)
            pipe.send(("ready",))
            if pipe.recv() != "go":
                return
            own = replace(job, conn=conn, counts=dict(totals), notes=[], problems=[], media=[])

            def progress(label: str, n: int, total: int | None = None) -> None:
                if os.getppid() != parent:  # the export was killed: stop
                    os._exit(1)
                if updates is not None:
                    updates.put((label, n, total))

            own.progress = progress
            results = []
            if split is not None and part is not None:

                def alive(label: str, n: int, total: int | None = None) -> None:  # (the export's process shows it)
                    if os.getppid() != parent:
                        os._exit(1)

                own.progress = alive
                rows, outputs = read_part(own, [e for e in tasks[0] if _reads(e)], split, part)
                pipe.send(("part", rows, outputs))
            else:
                while (task := _take(next_task, tasks)) is not None:
                    results += _run_task(own, task, totals)
            pipe.send(("done", results))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        code = 1
        try:
            pipe.send(("error", type(exc).__name__, _error_text(exc)))
        except Exception:  # noqa: BLE001 - the parent sees the exit code instead
            pass
    finally:
        if updates is not None:
            updates.close()
            updates.join_thread()
        pipe.close()
        os._exit(code)  # no cleanup of the parent's objects (connections, temporary files)


# --------------------------------------------------------------------------- ledger


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, LearnexitError):
        return exc.message
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return describe_db_error(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return scrub(first_line(exc))


def export_lock_name(export_id: int) -> str:
    """The ``locks`` row a running export holds (a purge of its customer waits for it)."""
    return f"export:{export_id}"


def _serialise(conn: sa.Connection) -> None:
    """Queue behind any other ledger writer that serialises (PostgreSQL: the audit
    counter's row lock, which every audited write takes; SQLite: BEGIN IMMEDIATE did)."""
    conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "audit_count").with_for_update()).all()


def _purge_started(ledger: Ledger, conn: sa.Connection, customer: str, row_pk: str | None) -> Any:
    """The latest full purge (running, failed or done) of the case ``row_pk`` belongs to."""
    case = ledger.case(conn, customer)
    if case is None or (case["finished_at"] is not None and case["row_pk"] not in (None, row_pk)):
        return None  # no case yet, or the key now names a new customer
    stmt = (
        sa.select(purges.c.id, purges.c.status, purges.c.started_at)
        .where(purges.c.identity_id == case["id"], purges.c.kind == "full")
        .order_by(purges.c.id.desc())
        .limit(1)
    )
    return conn.execute(stmt).first()


def _refuse_after_purge(ledger: Ledger, conn: sa.Connection, customer: str, row_pk: str | None) -> None:
    purge = _purge_started(ledger, conn, customer, row_pk)
    if purge is not None:  # the data is being (or has been) deleted: a package would be partial
        raise Refused(
            f"a purge of {customer} started on {purge.started_at:%Y-%m-%d} (purge #{purge.id}, {purge.status}); "
            "its data can no longer be exported"
        )


def _record_start(
    ledger: Ledger,
    customer: str,
    row_pk: str | None,
    build: PackageBuild,
    formats: list[str],
    late_reason: str | None,
    at: datetime,
) -> int:
    import socket

    with ledger.transaction() as conn:
        _serialise(conn)
        _refuse_after_purge(ledger, conn, customer, row_pk)
        inserted = conn.execute(
            exports.insert().values(
                customer=customer,
                identity_id=ledger.open_case(conn, customer, row_pk),
                started_at=at.replace(tzinfo=None),
                status="running",
                path=str(build.final),
                formats=",".join(formats),
                late_reason=late_reason,
                recorded_by=ledger.actor,
            )
        )
        export_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
        now = utcnow()
        conn.execute(
            locks.insert().values(
                name=export_lock_name(export_id),
                holder=f"{ledger.actor} host {socket.gethostname()} pid {os.getpid()}",
                acquired_at=now,
                heartbeat_at=now,
            )
        )
        ledger.append_audit(
            conn,
            "export",
            "export_started",
            customer,
            {
                "export_id": export_id,
                "formats": formats,
                "late": late_reason is not None,
                "late_reason": late_reason,
                "path": str(build.final),
            },
        )
    return export_id


def _record_failure(ledger: Ledger, customer: str, export_id: int, exc: BaseException) -> None:
    error = _error_text(exc)
    try:
        with ledger.transaction() as conn:
            conn.execute(
                exports.update()
                .where(exports.c.id == export_id)
                .values(status="failed", finished_at=utcnow(), error=error[:2000])
            )
            conn.execute(locks.delete().where(locks.c.name == export_lock_name(export_id)))
            ledger.append_audit(conn, "export", "export_failed", customer, {"export_id": export_id, "error": error})
    except LearnexitError:
        event("export_failure_not_recorded", level=40, customer=customer, export_id=export_id)


# --------------------------------------------------------------------------- interrupted exports


def _interrupted_holder(conn: sa.Connection, export_id: int) -> tuple[bool, str | None]:
    """(whether the export recorded as running is interrupted, its lock's holder).  It is
    when its lock is gone (a running export always holds one) or was taken on this host by
    a process that no longer exists.  Exports keep no heartbeat, so one running on another
    host is never judged from here."""
    lock = conn.execute(sa.select(locks.c.holder).where(locks.c.name == export_lock_name(export_id))).first()
    if lock is None:
        return True, None
    return holder_is_dead(lock.holder), lock.holder


def reap_interrupted_exports(ledger: Ledger, customer: str | None = None) -> list[dict[str, Any]]:
    """Exports recorded as running whose process is gone (SIGKILL, a crash, a reboot), of
    ``customer`` or of every customer: their ``.partial`` builds (clear customer data) are
    destroyed as the purge destroys packages, then each is recorded as ``failed`` with the
    reason, its lock removed and an ``export_interrupted`` audit entry written, in one
    transaction that only the first of several reapers wins.  A package that was already
    published (the process died between publishing it and recording it as complete) is
    complete by construction and left in place; the record says so.  Returns one dict per
    export reaped: export_id, customer, package, holder, removed (the names destroyed),
    left (what could not be removed, with the reason: the customer's purge tries again),
    published."""
    query = sa.select(exports.c.id, exports.c.customer, exports.c.path).where(exports.c.status == "running")
    if customer is not None:
        query = query.where(exports.c.customer == customer)
    try:
        with ledger.engine.connect() as conn:
            running = conn.execute(query.order_by(exports.c.id)).all()
            found = []
            for row in running:
                interrupted, holder = _interrupted_holder(conn, row.id)
                if interrupted:
                    found.append((row, holder))
    except sa.exc.SQLAlchemyError as exc:
        raise OperationalError(f"cannot read the ledger: {describe_db_error(exc)}") from None
    reaped = []
    for row, holder in found:
        removed: list[str] = []
        left: list[str] = []
        published = False
        for path in package_paths(str(row.path)) if row.path else []:
            if not os.path.lexists(path):
                continue
            if not path.name.endswith(".partial"):
                published = looks_like_package(path)
                continue
            if not looks_like_package(path):
                left.append(f"{path.name}: not a package build, left alone")
                continue
            for attempt in range(3):  # (a worker of the killed export may still be writing)
                try:
                    destroy_path(path)
                except OSError as exc:
                    if not os.path.lexists(path):  # (another reaper was removing it too)
                        removed.append(path.name)
                        break
                    if attempt == 2:
                        left.append(f"{path.name}: {exc.strerror or exc}")
                    else:
                        time.sleep(0.2)
                else:
                    removed.append(path.name)
                    break
        by = f"its process ({holder})" if holder else "its process"
        error = f"interrupted: {by} ended without finishing (killed, or the machine stopped)"
        if removed:
            error += f"; removed its partial build {', '.join(removed)}"
        if left:
            error += f"; could not remove {'; '.join(left)} (the customer's purge tries again)"
        if published:
            error += f"; its package {Path(str(row.path)).name} had been published and is complete"
        with ledger.transaction() as conn:
            done = conn.execute(
                exports.update()
                .where(exports.c.id == row.id, exports.c.status == "running")
                .values(status="failed", finished_at=utcnow(), error=error[:2000])
            )
            if done.rowcount != 1:  # another reaper (or the export itself) was first
                continue
            conn.execute(locks.delete().where(locks.c.name == export_lock_name(row.id)))
            details = {"export_id": row.id, "holder": holder, "removed": removed, "left": left}
            ledger.append_audit(conn, "export", "export_interrupted", row.customer, dict(details, published=published))
        package = Path(str(row.path)).name if row.path else None
        reaped.append(dict(details, customer=row.customer, package=package, published=published))
        event(
            "export_interrupted",
            level=30,
            customer=row.customer,
            export_id=row.id,
            removed=",".join(removed) or "-",
            left=len(left),
        )
    return reaped


# --------------------------------------------------------------------------- the command


def _progress_totals(report: Progress, totals: dict[str, int], format_names: list[str]) -> Callable[..., None]:
    """``job.progress`` for a caller's ``report``: every step with its total.  The tables
    of a read pass in this process add up to one bar (``rows``: a bar per table would be a
    line per table); formats side by side have a bar each, over all rows; media and
    documents bring their own totals."""
    everything = sum(totals.values())
    read: dict[str, int] = {}

    def forward(label: str, n: int, total: int | None = None) -> None:
        if total is None and label in totals and label not in format_names:
            read[label] = n
            report("rows", sum(read.values()), everything)
        elif total is None and label in format_names:
            report(label, n, everything)
        else:
            report(label, n, total)

    return forward


def run_export(
    settings: Settings,
    customer: str,
    *,
    formats: Sequence[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    zip_output: bool = False,
    sql_dialect: str | None = None,
    lang: str | None = None,
    late_reason: str | None = None,
    allow_missing_media: bool = False,
    encrypt_to: Sequence[str] = (),
    now: datetime | None = None,
    progress: Progress | None = None,
) -> ExportResult:
    """Export every row of ``customer`` into a verified package; see the module docstring."""
    settings = settings.for_customer(customer)
    exporters = resolve_formats(formats, settings)
    format_names = [e.name for e in exporters]
    dialect = sql_dialect or settings.export.sql_dialect
    if dialect not in SQL_DIALECTS:
        raise BadInput(f"--sql-dialect must be one of {', '.join(SQL_DIALECTS)}, not {dialect!r}")
    language = lang or settings.export.lang
    if language not in LANGS:
        raise BadInput(f"--lang must be one of {', '.join(LANGS)}, not {language!r}")
    if late_reason is not None:
        late_reason = " ".join(late_reason.split())
        if not late_reason:
            raise BadInput("--reason must say why the export is late")
    recipients = parse_recipients(encrypt_to)
    started = _aware(settings, now)
    out_dir = Path(out).absolute() if out is not None else settings.export.out  # the ledger keeps this path

    with Ledger(settings.state_url) as ledger, open_source(settings, ledger, customer) as source:
        check_roles(settings, source.datamap.by_name)  # (before anything is recorded)
        notes: list[str] = []
        deadline, late = check_window(settings, ledger, customer, started, late_reason, notes)
        unclassified = source.datamap.unclassified()
        if unclassified:
            notes.append(
                printable(
                    f"{len(unclassified)} tables are unclassified and were not exported: {', '.join(unclassified)} "
                    "(classify them in [tables] of the config)"
                )
            )
        if "sql" in format_names and dialect == "mysql":  # a dump that would not load: refused first
            check_mysql_names([(t, [c.name for c in source.table(t).columns]) for t in source.owned_tables()])
        customer_name = source.customer_name()
        with source.snapshot() as sconn:
            notes += [c.note() for c in source.contested_report(sconn)]
        try:
            with ledger.engine.connect() as lconn:  # checked again when the export is recorded
                _refuse_after_purge(ledger, lconn, customer, source.customer_row_pk)
        except sa.exc.SQLAlchemyError as exc:
            raise OperationalError(f"cannot read the ledger: {describe_db_error(exc)}") from None
        reap_interrupted_exports(ledger, customer)  # (their clear-text builds go first)
        build = plan_package(out_dir, customer, started, zip_output=zip_output, encrypted=bool(recipients))
        build.create()  # an output folder that cannot be written fails before anything is recorded
        try:
            export_id = _record_start(
                ledger, customer, source.customer_row_pk, build, format_names, late_reason if late else None, started
            )
        except BaseException:
            discard_package(build)
            raise
        event("export_started", customer=customer, export_id=export_id, formats=",".join(format_names))
        try:
            with source.snapshot() as conn:
                totals: dict[str, int] = {}
                with counting_helper(source, conn) as helper:
                    specs = build_specs(source, conn, notes, totals, helper)
                notes.extend(quiet_loss_notes(source.datamap))
                job = ExportJob(
                    settings=settings,
                    source=source,
                    conn=conn,
                    customer=customer,
                    customer_name=customer_name,
                    data_dir=build.data_dir,
                    tables=specs,
                    options=ExportOptions(
                        formats=tuple(format_names),
                        sql_dialect=dialect,
                        lang=language,
                        allow_missing_media=allow_missing_media,
                        batch_size=settings.export.batch_size,
                    ),
                    started_at=started,
                    export_deadline=deadline,
                    notes=notes,
                )
                if progress is not None:
                    job.progress = _progress_totals(progress, totals, format_names)
                run_formats(job, exporters, totals, format_names)
                job.notes[:] = dict.fromkeys(job.notes)  # (a source note from each read pass: once)
            problems = list(job.problems)
            if problems:
                if not allow_missing_media:
                    raise OperationalError(
                        f"export incomplete: {len(problems)} problem(s), first: {problems[0]} "
                        "(--allow-missing-media exports anyway and lists them in index.html)"
                    )
                notes.extend(f"exported despite: {p}" for p in problems)
            packaged = finish_package(
                build, job, formats=[(e.name, e.describe(job)) for e in exporters], recipients=recipients
            )
        except BaseException as exc:
            discard_package(build)
            _record_failure(ledger, customer, export_id, exc)
            event("export_failed", level=30, customer=customer, export_id=export_id)  # the CLI prints the error
            raise
        finished = _aware(settings, None)
        overtaken = None
        try:
            with ledger.transaction() as lconn:
                _serialise(lconn)
                # A purge that started while we read: this package holds data being deleted.
                overtaken = _purge_started(ledger, lconn, customer, source.customer_row_pk)
                if overtaken is not None:
                    raise Refused(
                        f"a purge of {customer} started while exporting (purge #{overtaken.id}); "
                        "the package was removed"
                    )
                lconn.execute(locks.delete().where(locks.c.name == export_lock_name(export_id)))
                lconn.execute(
                    exports.update()
                    .where(exports.c.id == export_id)
                    .values(
                        status="complete",
                        finished_at=finished.replace(tzinfo=None),
                        path=str(packaged.path),
                        files=packaged.files,
                        bytes=packaged.bytes,
                        rows=json.dumps(job.counts, sort_keys=True),
                        manifest_sha256=packaged.manifest_sha256,
                    )
                )
                ledger.append_audit(
                    lconn,
                    "export",
                    "export_completed",
                    customer,
                    {
                        "export_id": export_id,
                        "path": str(packaged.path),
                        "files": packaged.files,
                        "bytes": packaged.bytes,
                        "rows": sum(job.counts.values()),
                        "tables": len(job.counts),
                        "manifest_sha256": packaged.manifest_sha256,
                        "late": late,
                        "encrypted": bool(recipients),
                    },
                )
        except Refused as exc:
            if overtaken is None:
                raise
            destroy_path(packaged.path)
            _record_failure(ledger, customer, export_id, exc)
            raise
        except LearnexitError as exc:
            raise OperationalError(
                f"the package is complete at {packaged.path}, but the ledger could not record it: {exc.message}"
            ) from None
        event("export_completed", customer=customer, export_id=export_id, rows=sum(job.counts.values()))
        return ExportResult(
            customer=customer,
            path=packaged.path,
            files=packaged.files,
            bytes=packaged.bytes,
            tables=dict(job.counts),
            notes=list(notes),
            problems=problems,
            manifest_sha256=packaged.manifest_sha256,
            formats=format_names,
            export_id=export_id,
            started_at=started,
            finished_at=finished,
            export_deadline=deadline,
            late=late,
            encrypted=bool(recipients),
            zip=build.zip_output,
            payload_files=packaged.payload_files,
        )


def available_formats() -> list[dict[str, str]]:
    """Every registered format: name, description, folder (for ``--list-formats``)."""
    return [
        {"name": e.name, "description": e.description, "folder": getattr(e, "folder", "")}
        for e in sorted(load_builtin().values(), key=lambda e: e.name)
    ]


__all__ = [
    "ExportResult",
    "available_formats",
    "build_specs",
    "check_window",
    "parse_recipients",
    "read_pass",
    "reap_interrupted_exports",
    "resolve_formats",
    "run_export",
    "split_formats",
]
