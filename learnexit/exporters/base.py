"""The exporter interface and registry (design §4; style: a registry, not an if-chain).

An export reads every owned table ONCE, in parent-first order, from one snapshot, and
feeds each batch of rows to the ``TableWriter`` of every tabular format (CSV, Excel,
JSON per table, SQL).  Formats that need more than one table at a time (the nested
JSON/XML documents, PDF/Word documents, media) then run their ``after`` step, reading
again through the same snapshot connection.  Exporters write only below
``job.data_dir`` and only through ``job.open_file`` (which creates folders 0700 and
files 0600); the package collects whatever files are there.
"""

from __future__ import annotations

import gc
import os
import shutil
import threading
from abc import ABC
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..config import Settings
from ..errors import OperationalError, printable
from ..source import Edge, ReadPoint, Source, text_decode
from ..source.keys import result_processors

KINDS = ("integer", "number", "boolean", "date", "datetime", "string", "binary")


def column_kind(col: sa.Column[Any]) -> str:
    """What a column holds, in the few kinds the writers care about."""
    t = col.type
    try:
        py = t.python_type
    except NotImplementedError:
        return "string"
    if py is bool:
        return "boolean"
    if py is int:
        return "integer"
    if py in (float,) or isinstance(t, sa.Numeric):
        return "number"
    if py is datetime:
        return "datetime"
    if py is date:
        return "date"
    if py is bytes:
        return "binary"
    return "string"


# While rows stream, the cycle collector runs only every this many batches (see ``streaming``).
GC_EVERY_BATCHES = 50
# Values with undecodable text named one by one per column (the rest are counted).
NOTED_PER_COLUMN = 25


@contextmanager
def streaming() -> Iterator[Callable[[], None]]:
    """Automatic garbage collection off while a stream of batches is read; yields a
    function to call once per batch, which collects the young generation every
    ``GC_EVERY_BATCHES`` batches.

    Every fetched row is a new tuple, so the collector would start every 700 of them,
    each time walking the live batch and promoting it to older generations, where it is
    walked again: a quarter of the time of fetching a row.  Rows hold no cycles (they are
    freed by reference counting as each batch is done), so collecting seldom changes
    nothing but the time.  Streams may nest; the outermost one turns collection back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    batches = 0

    def batch_done() -> None:
        nonlocal batches
        batches += 1
        if batches % GC_EVERY_BATCHES == 0:
            gc.collect(0)

    try:
        yield batch_done
    finally:
        if was_enabled:
            gc.enable()


class _Undecodable(Exception):
    """A batch held text that is not UTF-8 while the driver decoded strictly."""


def stream_columns(
    conn: Connection, stmt: sa.Select[Any], batch_size: int, offset: int = 0
) -> Iterator[list[Sequence[Any]]]:
    """Execute ``stmt`` with a server-side cursor and yield its rows in batches, a batch as
    its columns (one sequence of values per selected column, all of the same length).

    Raw rows are taken from the result's fetch strategy (the DBAPI cursor and whatever
    SQLAlchemy has buffered from it), so no Row objects are made; the columns SQLAlchemy
    would convert are converted here, a whole column at a time.  Automatic garbage
    collection is off meanwhile (``streaming``).  A SQLite source decodes text with the
    driver's C code (``text_decode.strict``); when a batch holds text that is not UTF-8
    the read starts again after the rows already given (``stmt`` has no OFFSET of its
    own), decoding leniently.  ``offset``: the rows to skip first (read already).
    """
    given = offset
    try:
        for columns in _stream_columns(conn, stmt.offset(given) if given else stmt, batch_size, strict=True):
            given += len(columns[0]) if columns else 0
            yield columns
    except _Undecodable:
        yield from _stream_columns(conn, stmt.offset(given) if given else stmt, batch_size, strict=False)


def _stream_columns(
    conn: Connection, stmt: sa.Select[Any], batch_size: int, *, strict: bool
) -> Iterator[list[Sequence[Any]]]:
    result = conn.execution_options(yield_per=batch_size).execute(stmt)
    dbapi: Any = conn.connection.dbapi_connection
    try:
        processors = result_processors(conn.dialect, stmt, result.cursor.description)
        with streaming() as batch_done:
            while True:
                restore = text_decode.strict(dbapi) if strict else None
                try:
                    # (the strategy changes once the cursor is exhausted: look it up every time)
                    batch = result.cursor_strategy.fetchmany(result, result.cursor, batch_size)
                except sa.exc.OperationalError as exc:
                    if restore is not None and text_decode.undecodable(exc):
                        raise _Undecodable from None
                    raise
                finally:
                    if restore is not None:
                        dbapi.text_factory = restore
                if not batch:
                    return
                columns: list[Sequence[Any]] = list(zip(*batch, strict=True))
                for i, process in processors:
                    try:
                        columns[i] = list(map(process, columns[i]))
                    except (ValueError, TypeError, ArithmeticError):
                        raise unreadable_value(stmt, columns, i, process) from None
                yield columns
                batch_done()
    finally:
        result.close()


def unreadable_value(stmt: sa.Select[Any], columns: list[Sequence[Any]], index: int, process: Any) -> OperationalError:
    """The error for a stored value SQLAlchemy cannot read as its column's type (SQLite
    keeps whatever was written: ``'yesterday'`` in a DATETIME column).  It names the
    table, the column and the row's key, never the value (it may be personal data)."""
    selected = list(stmt.selected_columns)
    col = selected[index]
    row = 0
    for row, value in enumerate(columns[index]):
        try:
            process(value)
        except (ValueError, TypeError, ArithmeticError):
            break
    keys = [(i, c) for i, c in enumerate(selected) if getattr(c, "primary_key", False)]
    where = "in one of the customer's rows"
    if keys:
        where = "in the row with " + ", ".join(f"{c.name} = {columns[i][row]!r}" for i, c in keys)
    table = getattr(getattr(col, "table", None), "name", "?")
    return OperationalError(
        f"{table}.{col.name}: the stored value {where} is not a valid "
        f"{str(col.type).lower()} value, so it cannot be exported as one; correct it in the source database "
        "and export again"
    )


def stream_tuples(conn: Connection, stmt: sa.Select[Any], batch_size: int) -> Iterator[list[tuple[Any, ...]]]:
    """Like ``stream_columns``, a batch as a list of row tuples."""
    for columns in stream_columns(conn, stmt, batch_size):
        yield list(zip(*columns, strict=True))


class Background:
    """Work running on its own thread while the export goes on: for work that spends its
    time outside the GIL (zlib compressing a workbook), so it overlaps with the next step
    on another core.  ``wait()`` returns when it is done and raises what it raised."""

    def __init__(self, work: Callable[[], None], name: str) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(work,), name=f"learnexit-{name}", daemon=True)
        self.thread.start()

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
            self.error = exc

    def wait(self) -> None:
        self.thread.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: str  # one of KINDS
    nullable: bool
    primary_key: bool
    sql_type: sa.types.TypeEngine[Any]


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[Edge, ...]  # references to other EXPORTED tables (declared or [[relations]])
    category: str | None
    table: sa.Table
    # (lowest, highest) exported key, for a table with a one-column integer primary key:
    # what a big table's key ranges are cut from when several processes read it.
    key_range: tuple[int, int] | None = None
    # Where the exported keys lie, as points (key, exported rows with a key up to it) with
    # the rows spread evenly between them (from the counting scan: its halves), so that
    # key ranges of even rows can be cut; () when not known.
    key_spread: tuple[tuple[int, int], ...] = ()
    # The exported rows, counted in the export's snapshot (None: not counted).  A table
    # counted empty is not read again: its files are those of a read that found nothing.
    rows: int | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class ExportOptions:
    formats: tuple[str, ...]
    sql_dialect: str = "sqlite"
    lang: str = "en"
    allow_missing_media: bool = False
    batch_size: int = 5000


@dataclass
class ExportJob:
    """Everything an exporter may use.  One per export run."""

    settings: Settings
    source: Source
    conn: Connection  # the snapshot: read sequentially (one open result at a time)
    customer: str
    customer_name: str
    data_dir: Path
    tables: list[TableSpec]  # owned tables, parents first
    options: ExportOptions
    started_at: datetime
    export_deadline: date | None = None
    counts: dict[str, int] = field(default_factory=dict)  # rows per table, filled by the read pass
    notes: list[str] = field(default_factory=list)  # shown in index.html and the command's result
    problems: list[str] = field(default_factory=list)  # make the export fail (exit 1) unless allowed
    media: list[dict[str, Any]] = field(default_factory=list)  # media files copied (for index.html)
    # (label, done, total): a total only where the label's own is not the rows of a table
    progress: Callable[..., None] = lambda label, n, total=None: None
    # True while the formats run side by side, each in its own process: what must see every
    # format's notes and files (the export summary) then waits for ``Exporter.finish``.
    parallel: bool = False
    # Work started by ``in_background``: waited for before the formats count as done.
    background: list[Background] = field(default_factory=list)
    # Files hashed before the package is made (``package.prehash``), by path below data/.
    prehashed: dict[str, Any] = field(default_factory=dict)
    # What a format's read-pass watcher (``Exporter.watcher``) hands its ``after`` step.
    shared: dict[str, Any] = field(default_factory=dict)
    # Where the snapshot was read: the primary or its read replica (bag-info, index.html).
    read_point: ReadPoint | None = None

    def in_background(self, work: Callable[[], None], name: str) -> Background:
        """Run ``work`` on a thread while the export goes on; every format's files are
        complete only once ``wait_background`` has returned (the export waits for it after
        the formats' ``after`` steps, and before it cleans up after a failure)."""
        task = Background(work, name)
        self.background.append(task)
        return task

    def wait_background(self) -> None:
        """Wait for all work started by ``in_background``; raise the first error."""
        first: BaseException | None = None
        while self.background:
            try:
                self.background.pop(0).wait()
            except BaseException as exc:  # noqa: BLE001 - every thread is waited for first
                first = first or exc
        if first is not None:
            raise first

    def spec(self, name: str) -> TableSpec:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

    def select(self, name: str, where: Any = None, order_by: Any = None, columns: Any = None) -> sa.Select[Any]:
        """This customer's rows of ``name`` (optionally narrowed, reordered, or only some columns)."""
        stmt = self.source.owned_select(name)
        if columns is None and self.settings.rule(name).omit_columns:
            table = self.source.table(name)  # (omitted columns are never read, not only not written)
            omit = set(self.settings.rule(name).omit_columns)
            columns = [c for c in table.columns if c.name not in omit]
        if columns is not None:
            stmt = stmt.with_only_columns(*columns)
        if where is not None:
            stmt = stmt.where(where)
        if order_by is not None:
            stmt = stmt.order_by(None).order_by(*order_by)
        return stmt

    def rows(self, name: str, where: Any = None, order_by: Any = None) -> Iterator[list[sa.Row[Any]]]:
        """Stream this customer's rows of ``name`` (optionally narrowed) from the snapshot."""
        stmt = self.select(name, where, order_by)
        result = self.conn.execution_options(yield_per=self.options.batch_size).execute(stmt)
        try:
            parts = (list(part) for part in result.partitions(self.options.batch_size))
            yield from self._undecodable(name, stmt, parts, rows=True)
        finally:
            result.close()

    def tuples(
        self, name: str, where: Any = None, order_by: Any = None, columns: Any = None, batch_size: int | None = None
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Like ``rows``, as plain tuples in the table's column order (or ``columns``): the
        fast path for the hot loops.  Batches come straight from the driver's (server-side)
        cursor; a column is converted only when SQLAlchemy would convert it (dates stored
        as text in SQLite, decimals, booleans…), a whole column at a time, so the values are
        exactly those ``rows`` gives."""
        stmt = self.select(name, where, order_by, columns)
        batches = stream_tuples(self.conn, stmt, batch_size or self.options.batch_size)
        yield from self._undecodable(name, stmt, batches, rows=True)

    def fill_key_sets(self, statement: str) -> None:
        """Fill (if stale) the key sets ``statement`` names, on the export's connection:
        what happens before each statement SQLAlchemy runs, for one C runs itself (the
        ``prepare`` of ``speedups.sqlite_csv`` and its kin)."""
        if self.source.key_sets is not None:
            self.source.key_sets.fill_for(self.conn, statement)

    def columns(self, name: str, where: Any = None, offset: int = 0) -> Iterator[list[Sequence[Any]]]:
        """This customer's rows of ``name`` (optionally narrowed; after the first ``offset``)
        in batches, a batch as its columns (see ``stream_columns``): what
        ``TableWriter.write_columns`` takes."""
        stmt = self.select(name, where)
        batches = stream_columns(self.conn, stmt, self.options.batch_size, offset)
        yield from self._undecodable(name, stmt, batches, rows=False)

    def _undecodable(self, name: str, stmt: sa.Select[Any], batches: Iterator[Any], *, rows: bool) -> Iterator[Any]:
        """Pass the batches on; once the source has replaced text that was not valid UTF-8
        (``text_decode``; the driver may decode rows ahead of the batch that holds them),
        note each value with U+FFFD in this and every later batch by table, column and row
        key — never the value."""
        start = text_decode.replaced()
        dirty = False
        for batch in batches:
            dirty = dirty or text_decode.replaced() != start
            if dirty and batch:
                self._note_replaced(name, stmt, batch if not rows else list(zip(*batch, strict=True)))
            yield batch

    def _note_replaced(self, name: str, stmt: sa.Select[Any], columns: list[Sequence[Any]]) -> None:
        selected = list(stmt.selected_columns)
        pk = [i for i, c in enumerate(selected) if getattr(c, "primary_key", False)]
        seen: dict[tuple[str, str], int] = self.shared.setdefault("undecodable", {})
        for i, column in enumerate(columns):
            for row, value in enumerate(column):
                if type(value) is not str or text_decode.REPLACEMENT not in value:
                    continue
                where = (name, selected[i].name)
                seen[where] = seen.get(where, 0) + 1
                if seen[where] > NOTED_PER_COLUMN:
                    continue
                key = ",".join(str(columns[k][row]) for k in pk) if pk else "?"
                self.note(
                    "source",
                    f"{name}.{selected[i].name} row {key}: text that is not valid UTF-8 in the source, "
                    "exported with U+FFFD replacement characters",
                )

    def note(self, fmt: str, text: str) -> None:
        """A note for index.html, the export summary and the command's result: one line,
        control characters in the names it quotes escaped (``\\x0a``)."""
        self.notes.append(printable(f"{fmt}: {text}"))

    def path(self, relpath: str) -> Path:
        """Absolute path of a file below data/, its folders created with mode 0700."""
        rel = Path(relpath)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"unsafe package path {relpath!r}")
        target = self.data_dir / rel
        folder = target.parent
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir's mode is masked by umask; set it explicitly on every new level
            p = folder
            while p != self.data_dir and self.data_dir in p.parents:
                os.chmod(p, 0o700)
                p = p.parent
        return target

    def open_file(self, relpath: str, mode: str = "w", **kwargs: Any) -> IO[Any]:
        """Open a new file below data/ with mode 0600 regardless of the umask."""
        target = self.path(relpath)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        if "b" in mode:
            return os.fdopen(fd, mode, **kwargs)
        kwargs.setdefault("encoding", "utf-8")
        return os.fdopen(fd, mode, **kwargs)


def append_file(source: Path, target: IO[bytes]) -> None:
    """Append the file ``source`` to the open ``target`` and remove it (a range of rows
    written by another process, see ``TableWriter.join_part``)."""
    target.flush()
    with open(source, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        done = 0
        try:
            while done < size:  # in the kernel where it can
                n = os.copy_file_range(src.fileno(), target.fileno(), size - done)
                if n == 0:
                    break
                done += n
        except (AttributeError, OSError):
            pass
        target.seek(0, os.SEEK_END)  # (the buffered file learns where the kernel's offset is)
        if done < size:  # (no copy_file_range here, or it stopped early)
            src.seek(done)
            shutil.copyfileobj(src, target, 1 << 20)
    source.unlink()


@dataclass(frozen=True)
class DirectSink:
    """Rows a writer takes as finished records, written by C from a SQLite snapshot
    (``TableWriter.direct``): CSV records, or (``statements`` given) the INSERTs the SQL
    writer writes (dialect number, head, rows and characters per statement, rows per
    batch), whose references ``refs`` are checked or collected (``speedups.Reference``),
    or (``template`` given) each row's text as the template says, a batch's texts at a
    time to ``texts`` (``speedups.sqlite_texts``), or (``sheet`` given) worksheet rows
    the writer takes from C itself.  ``wrote`` is told how many rows were written so."""

    write: Callable[[bytes], Any] | None = None  # (the records: CSV, SQL)
    statements: tuple[int, str, int, int, int] | None = None
    refs: tuple[tuple[int, Any, Any], ...] = ()
    wrote: Callable[[int], None] = lambda rows: None
    template: tuple[Any, ...] | None = None  # (a ``speedups.RowTemplate``)
    texts: Callable[[list[bytes]], Any] | None = None
    # (the workbook: writes the rows of C's statement (``speedups.sqlite_rows``) itself,
    # reporting the rows so far; returns (rows written, all of them?))
    sheet: Callable[[Any, Callable[[int], None]], tuple[int, bool]] | None = None


class TableWriter(ABC):
    """Receives every exported table's rows once, batch by batch, parents first."""

    def start_table(self, spec: TableSpec) -> None:  # noqa: B027 - optional hook
        pass

    def write_batch(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:  # noqa: B027
        pass

    def write_columns(self, spec: TableSpec, columns: list[Sequence[Any]], rows: int) -> None:
        """A batch as its columns (one sequence per column of ``spec``, ``rows`` long each).
        Writers that work a column at a time override it (and ``write_batch`` then
        transposes); when every writer of a read pass does, the batches come as columns."""
        self.write_batch(spec, list(zip(*columns, strict=True)))

    def direct(self, spec: TableSpec) -> DirectSink | None:
        """How this writer takes ``spec``'s rows read by C straight from a SQLite snapshot,
        for a read pass that feeds it alone (``export.reading.read_direct``); None:
        batches only."""
        return None

    def end_table(self, spec: TableSpec, rows: int) -> None:  # noqa: B027
        pass

    def close(self) -> None:  # noqa: B027 - flush and finish files
        pass

    def abort(self) -> None:  # noqa: B027 - release resources after a failure
        pass

    # -- one big table read in key ranges by several processes (``Exporter.splits``) --
    #
    # The export's own process reads every table, of the split one only its first range,
    # and after that range takes the others in (``join_part``, in key order) before
    # ``end_table``; each other range is written by a fresh writer in a worker process
    # between ``start_part`` and ``end_part``.  The files must come out as one process
    # would write them (rows in key order, one note per change with the total count).

    def start_part(self, spec: TableSpec, part: int) -> None:
        """In a worker: range ``part`` (1, 2, …) of ``spec``'s rows follows, through
        ``write_columns``, into files of its own."""
        raise NotImplementedError

    def end_part(self, spec: TableSpec, part: int, rows: int) -> Any:
        """In a worker: the range is written; returns what ``join_part`` needs (picklable:
        files by their path below data/, the value changes counted, …)."""
        raise NotImplementedError

    def join_part(self, spec: TableSpec, part: int, output: Any) -> None:
        """In the export's process, after its own range of ``spec`` and before
        ``end_table``: take range ``part`` in (and remove its files)."""
        raise NotImplementedError

    def abort_part(self, spec: TableSpec, part: int) -> None:  # noqa: B027 - after a failure
        """In a worker, after a failure: remove the range's files."""
        pass


class Exporter(ABC):
    """One export format.  Subclasses set name/description/folder and override
    ``writer`` (tabular formats) and/or ``after`` (formats that read on their own)."""

    name: ClassVar[str]
    description: ClassVar[str]
    folder: ClassVar[str]  # below data/
    order: ClassVar[int] = 50  # ``after`` steps run in this order
    # Beside a watcher (the documents' activity counts) its rows come through the driver
    # and feed it, where alone C may read them: cheaper than the watcher's own read of the
    # table (``export.reading.read_pass``, ``export.parallel.group_formats``).
    driver_reads: ClassVar[bool] = False

    def writer(self, job: ExportJob) -> TableWriter | None:
        return None

    def describe(self, job: ExportJob) -> str:
        """What this format holds in ``job``'s package (index.html)."""
        return self.description

    def watcher(self, job: ExportJob) -> TableWriter | None:
        """A TableWriter that looks at the rows of a read pass other formats make anyway
        (it never makes one happen, and is left out when a table is read in key ranges):
        for a format whose ``after`` step would otherwise read a table again."""
        return None

    def splits(self, job: ExportJob, spec: TableSpec) -> bool:
        """Whether this format's ``TableWriter`` can write ``spec``'s rows in key ranges,
        one per process (see ``TableWriter.start_part``)."""
        return False

    def prepare(self, job: ExportJob) -> None:  # noqa: B027 - optional
        """Runs before the read pass, in the process that will run this format's ``after``
        step: a place to start slow work that does not need the rows (warming up a pool)."""
        pass

    def after(self, job: ExportJob) -> None:  # noqa: B027 - optional
        pass

    def finish(self, job: ExportJob) -> None:  # noqa: B027 - optional
        """Runs once every format's ``after`` step is done (in ``order``), in the export's
        own process.  When the formats ran side by side (``job.parallel``), what must see
        every other format's notes and files (the export summary) is done here."""
        pass


def generated_at(job: ExportJob) -> str:
    """The export's start as ISO 8601 (a naive time is UTC, as the ledger stores it)."""
    at = job.started_at
    return at.isoformat() if at.tzinfo is not None else at.isoformat() + "Z"


REGISTRY: dict[str, Exporter] = {}
BUILTIN_MODULES = ("csv_format", "xlsx_format", "json_format", "xml_format", "sql_format", "documents_format", "media")


def register(exporter_cls: type[Exporter]) -> type[Exporter]:
    """Class decorator: make a format available by its name."""
    REGISTRY[exporter_cls.name] = exporter_cls()
    return exporter_cls


def load_builtin() -> dict[str, Exporter]:
    """Import the built-in format modules (each registers itself) and return the registry."""
    import importlib

    for module in BUILTIN_MODULES:
        try:
            importlib.import_module(f"learnexit.exporters.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"learnexit.exporters.{module}":
                continue  # that format is not built yet
            raise
    return REGISTRY
