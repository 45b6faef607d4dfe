"""The CSV, SQL, Excel, JSON and XML writers' optional inner loop in C (``learnexit/_speedups.c``).

``native`` is the compiled module, or ``None`` where it was not built (no C compiler at
install time) or ``LEARNEXIT_NO_SPEEDUPS=1`` turns it off; the writers then take their
Python path, which writes the same bytes.  The C functions handle the values whose text
is unambiguous and hand every other column back (see ``_speedups.c``); the writers
convert such a column in Python and pass it in as finished text (``verbatim``).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import processors

from ..source.keys import result_processors

if TYPE_CHECKING:
    from .values import Sanitiser

SPEEDUPS_ENV = "LEARNEXIT_NO_SPEEDUPS"


def load() -> ModuleType | None:
    if os.environ.get(SPEEDUPS_ENV, "").strip() not in ("", "0"):
        return None
    try:
        from .. import _speedups
    except ImportError:
        return None
    return _speedups


native: ModuleType | None = load()


def status() -> str:
    """Whether the writers use the C speedups, in words (``learnexit --version``)."""
    if native is not None:
        return "on"
    if os.environ.get(SPEEDUPS_ENV, "").strip() not in ("", "0"):
        return f"off ({SPEEDUPS_ENV} is set)"
    return "not built (no C compiler at install time?): the writers take their Python path"


def native_batch(
    values: Sanitiser,
    columns: Sequence[Sequence[Any]],
    python: set[int],
    handed_back: set[int],
    convert: Callable[[Sequence[Any], int], Sequence[Any]],
    write: Callable[[list[Sequence[Any]], list[bool]], bytes | int],
) -> bytes | None:
    """One batch through a C function (``write``: ``csv_records`` or ``sql_inserts`` with
    its other arguments bound), which returns the batch's bytes or the index of a column
    it leaves to Python.  Such a column is converted by ``convert`` (its finished text) and
    passed in again as verbatim; so are the columns in ``python`` and in ``handed_back``
    (the columns handed back by earlier batches of the table, which this adds to).

    The changes ``convert`` notes are kept per column and added to ``values.changes`` in
    column order once the batch is written — as the Python path notes them.  Returns
    ``None``, noting nothing, when text in the batch cannot be encoded: the caller then
    takes its Python path, which replaces and notes lone surrogates.
    """
    columns = list(columns)
    verbatim = [False] * len(columns)
    notes: dict[int, Counter[tuple[str, str, str]]] = {}

    def in_python(i: int) -> None:
        outer, values.changes = values.changes, Counter()
        try:
            columns[i] = convert(columns[i], i)
            notes[i] = values.changes
        finally:
            values.changes = outer
        verbatim[i] = True

    for i in sorted(python | handed_back):
        in_python(i)
    while True:
        try:
            out = write(columns, verbatim)
        except UnicodeEncodeError:
            return None
        if type(out) is bytes:
            for i in sorted(notes):
                values.changes.update(notes[i])
            return out
        assert type(out) is int
        in_python(out)
        handed_back.add(out)


# The bytes ``sqlite_csv`` hands over at a time (the writer's file takes them as they come).
DIRECT_CHUNK = 1 << 20
# Whether ``sqlite_csv`` may read (the tests turn it off to compare it with the batches).
direct_reads = True


def _sqlite_kinds(dialect: Any, stmt: sa.Select[Any]) -> list[int] | None:
    """What ``sqlite_csv`` is told of each selected column: 0 read as stored, 1 and 2 a
    datetime or date SQLAlchemy parses from ISO text, 3 a boolean it makes of an integer;
    None when SQLAlchemy converts a column some other way (decimals, JSON…)."""
    kinds = [0] * len(stmt.selected_columns)
    for i, process in result_processors(dialect, stmt, [(None, None)] * len(kinds)):  # (pysqlite: no type codes)
        kind = _PROCESSOR_KINDS.get(process)
        if kind is None:
            return None
        kinds[i] = kind
    return kinds


def _bound_parameters(compiled: Any, dialect: Any) -> tuple[Any, ...] | None:
    """The statement's parameters in order, as SQLAlchemy would bind them; None when one
    is not a plain int, float, str or None once its type has processed it."""
    values = compiled.construct_params()
    out = []
    for name in compiled.positiontup or ():
        bind = compiled.binds.get(name)
        if bind is None or name not in values:
            return None
        value = values[name]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            value = process(value)
        if value is not None and type(value) not in (int, float, str, bool):
            return None
        out.append(value)
    return tuple(out)


def _sqlite_statement(
    conn: sa.Connection, stmt: sa.Select[Any], prepare: Callable[[str], None] | None
) -> tuple[Any, str, str, tuple[Any, ...], list[int]] | None:
    """What the C reader needs to run ``stmt`` on ``conn``'s own SQLite handle: (the
    ``sqlite3.Connection``, its main file, the SQL, its parameters, the column kinds);
    None when it cannot (see ``sqlite_csv``).  ``prepare(sql)`` runs first."""
    if native is None or not direct_reads or conn.dialect.name != "sqlite" or not _sqlite_bound():
        return None
    kinds = _sqlite_kinds(conn.dialect, stmt)
    if kinds is None:
        return None
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = _bound_parameters(compiled, conn.dialect)
    if params is None:
        return None
    sql = str(compiled)
    if prepare is not None:
        prepare(sql)
    files = {row[1]: row[2] for row in conn.exec_driver_sql("PRAGMA database_list")}
    return conn.connection.dbapi_connection, files.get("main", ""), sql, params, kinds


def sqlite_csv(
    conn: sa.Connection,
    stmt: sa.Select[Any],
    write: Callable[[bytes, int], None],
    prepare: Callable[[str], None] | None = None,
) -> tuple[int, bool] | None:
    """``stmt``'s rows as CSV records, read by C through the SQLite handle of ``conn``
    (a SQLite source's snapshot) and written through ``write(records, rows so far)``:
    the same bytes ``CsvWriter.write_columns`` writes, without a Python object per value.
    Returns (rows written, all of them?); the caller reads the rest through the driver,
    from that offset (a value C leaves to Python, or an error the driver reports).  None
    when it cannot be used here: no C speedups, another engine, a column SQLAlchemy
    converts in another way, a parameter of another type.  ``prepare(sql)`` runs first
    (it fills the key sets the statement names, as they are before SQLAlchemy runs one)."""
    found = _sqlite_statement(conn, stmt, prepare)
    if found is None:
        return None
    assert native is not None
    out: tuple[int, bool] | None = native.sqlite_csv(*found, write, DIRECT_CHUNK)
    return out


# A reference the C reader checks or collects: (column, the keys known to be written or
# None, the set its values are added to or None), values as 1-tuples.
Reference = tuple[int, "set[tuple[Any, ...]] | None", "set[tuple[Any, ...]] | None"]


def sqlite_inserts(
    conn: sa.Connection,
    stmt: sa.Select[Any],
    write: Callable[[bytes, int], None],
    statements: tuple[int, str, int, int, int],
    refs: Sequence[Reference],
    prepare: Callable[[str], None] | None = None,
) -> tuple[int, bool] | None:
    """As ``sqlite_csv``, the rows as the INSERT statements ``SqlWriter`` writes for them
    (``statements``: dialect number, head, rows and characters per statement, rows per
    batch; a statement also ends with each batch, as it does there).  A row with a
    reference ``refs`` checks that is not known (the writer would defer or drop it) is left
    to Python with its whole batch: the rows written are whole batches unless all."""
    found = _sqlite_statement(conn, stmt, prepare)
    if found is None:
        return None
    assert native is not None
    out: tuple[int, bool] | None = native.sqlite_inserts(*found, *statements, list(refs), write)
    return out


# The modes of a row template (``sqlite_texts``).
TEXT_JSON, TEXT_XML = 0, 1
# A document's text of one row, for C to fill in: (TEXT_JSON or TEXT_XML, the text before
# the columns, the text after them, per column (the text before its value, the text after
# it, the whole text of a NULL)).
RowTemplate = tuple[int, bytes, bytes, tuple[tuple[bytes, bytes, bytes], ...]]


class SqliteTexts:
    """A statement's rows read by C a batch at a time (``sqlite_texts``), each row made
    into one text per template: iterating gives (the key column's integers, per template
    the rows' texts).  ``rows``: the rows given so far; ``finished``: whether they are all
    of them once iterating ends (else the caller reads the rest through the driver, after
    ``rows``: a value C leaves to Python, or an error the driver reports).  The statement
    is finalized when iterating ends (or the object goes)."""

    def __init__(self, handle: Any, templates: tuple[RowTemplate, ...], key: int, batch: int) -> None:
        self.handle = handle
        self.templates = templates
        self.key = key
        self.batch = batch
        self.rows = 0
        self.finished = False

    def __iter__(self) -> Iterator[tuple[list[int], list[list[bytes]]]]:
        assert native is not None
        try:
            while True:
                keys, texts, state = native.sqlite_texts(self.handle, self.templates, self.key, self.batch)
                if texts[0]:
                    self.rows += len(texts[0])
                    yield keys, texts
                if state:
                    self.finished = state == 1
                    return
        finally:
            native.sqlite_close(self.handle)


def sqlite_texts(
    conn: sa.Connection,
    stmt: sa.Select[Any],
    templates: Sequence[RowTemplate],
    key: int,
    batch: int,
    prepare: Callable[[str], None] | None = None,
) -> SqliteTexts | None:
    """``stmt``'s rows as the texts ``templates`` describe (at least one; the nested JSON
    and XML documents' rows), read by C through the SQLite handle of ``conn`` ``batch``
    rows at a time, with the integers of column ``key`` (-1: none); see ``SqliteTexts``.
    None when it cannot be used here (as ``sqlite_csv``), or when the key column is one
    SQLAlchemy converts."""
    if not templates:
        return None
    found = _sqlite_statement(conn, stmt, prepare)
    if found is None or (key >= 0 and found[4][key] != 0):
        return None
    assert native is not None
    handle = native.sqlite_rows(*found)
    return None if handle is None else SqliteTexts(handle, tuple(templates), key, batch)


def sqlite_rows(conn: sa.Connection, stmt: sa.Select[Any], prepare: Callable[[str], None] | None = None) -> Any:
    """``stmt`` prepared by C on the SQLite handle of ``conn``, for ``native.sqlite_cells``
    (a capsule; ``native.sqlite_close`` finalizes it); None when it cannot be read here
    (as ``sqlite_csv``)."""
    found = _sqlite_statement(conn, stmt, prepare)
    if found is None:
        return None
    assert native is not None
    return native.sqlite_rows(*found)


def _sqlite_bound() -> bool:
    """Whether the C reader has SQLite's functions: looked up once, in the library the
    ``sqlite3`` module links (``_sqlite3``), on the CPython versions whose
    ``sqlite3.Connection`` begins with the handle (3.7 to 3.14: C reads it there)."""
    global _BOUND
    if _BOUND is None:
        _BOUND = False
        if native is not None and sys.implementation.name == "cpython" and sys.version_info[:2] <= (3, 14):
            import _sqlite3
            import sqlite3

            _BOUND = bool(native.sqlite_bind(_sqlite3.__file__, sqlite3.Connection))
    return _BOUND


_BOUND: bool | None = None
_PROCESSOR_KINDS: dict[Any, int] = {
    processors.str_to_datetime: 1,
    processors.str_to_date: 2,
    processors.int_to_boolean: 3,
}
