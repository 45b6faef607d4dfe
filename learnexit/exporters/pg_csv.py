"""CSV from PostgreSQL written by the server: ``COPY (SELECT …) TO STDOUT (FORMAT csv)``.

The server makes each field's text, and C (``_speedups.pg_copy_csv``) turns it into the
canonical text of ``values.text`` where PostgreSQL's differs, field by field, as the
rows arrive: a timestamp's space becomes ``T`` and its fraction six digits (what
``datetime.isoformat()`` writes), ``t``/``f`` become ``true``/``false``, a quoted empty
string (PostgreSQL tells it from NULL; ``csv.writer`` does not) the empty field, and
each record ends with CRLF.  Integers, ``numeric`` (every digit, no exponent: what
``decimal_text`` gives) and ``uuid`` are written as PostgreSQL writes them, binary as
base64 on one line (``encode``).  A table with a column of any other type (floats, time
zones, times, intervals, JSON, arrays, ``char(n)``…), or of one column (``csv.writer``
quotes a lone empty field), is read through the driver as before; so is everything when
the database is not UTF-8 or its ``DateStyle`` not ISO.  A value Python's ``datetime``
does not hold (a year outside 1–9999, BC, ``infinity``) stops the COPY before its row:
the rows before it are kept, the transaction goes back to a savepoint taken before the
COPY, and the driver reads the rest — and fails, or not, exactly as it always did.

The server reads the table with its own plan (parallel workers, where it chooses them):
such a table is not cut into key ranges for several processes (``CsvExporter.splits``).
libpq hands over one message per row; C takes them on psycopg's own connection without
a Python object per row (psycopg's ``Copy`` costs the client as much as a fetch).
Without the C speedups, or on a driver other than psycopg, nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import speedups

__all__ = ["copy_select", "pg_csv"]

CHUNK = 1 << 20  # bytes handed to the writer at a time
_SAVEPOINT = "learnexit_copy"
_SETTINGS = "learnexit_pg_iso_utf8"  # Connection.info: what ``_iso_utf8`` found
AS_IS, TEXT, BOOL, TIMESTAMP, DATE = range(5)  # (what ``_speedups.pg_copy_csv`` makes of a field)
_TEXT_TYPES = (sa.Text, sa.String, sa.VARCHAR, sa.TEXT, sa.Unicode, sa.UnicodeText)


def _field(column: Any) -> tuple[Any, int] | None:
    """What the server is asked for to give ``column``'s CSV field, and what C makes of
    the text it writes; None when there is nothing here (the driver reads the table)."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return column, BOOL
    if isinstance(kind, (sa.Integer, sa.Uuid)):
        return column, AS_IS
    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float):
        return (column, AS_IS) if kind.asdecimal else None
    if isinstance(kind, sa.DateTime):
        return None if getattr(kind, "timezone", False) else (column, TIMESTAMP)
    if isinstance(kind, sa.Date):
        return column, DATE
    if type(kind) in _TEXT_TYPES:
        return column, TEXT
    # (PostgreSQL's BYTEA, named by its generic type: a SQLite export need not import the
    # PostgreSQL dialect, and asyncio with it, ~25 ms)
    if isinstance(kind, sa.LargeBinary):  # base64 on one line; an empty value written "" as text is
        return sa.func.translate(sa.func.encode(column, "base64"), "\n", ""), TEXT
    return None


def copy_select(stmt: sa.Select[Any]) -> tuple[sa.Select[Any], list[int]] | None:
    """``stmt`` selecting what the server writes of each column (same rows, same order),
    and each column's kind; None when a column has nothing here, or there is only one."""
    columns = list(stmt.selected_columns)
    if len(columns) < 2 or len(columns) > 256:
        return None
    fields = [_field(c) for c in columns]
    if any(f is None for f in fields):
        return None
    exprs = [f[0] for f in fields if f is not None]
    kinds = [f[1] for f in fields if f is not None]
    return stmt.with_only_columns(*exprs, maintain_column_froms=True), kinds


def server_writes(conn: sa.Connection, stmt: sa.Select[Any]) -> bool:
    """Whether ``pg_csv`` would have the server write ``stmt``'s rows (as far as can be
    told before it runs: a value it cannot give still sends the rest to the driver)."""
    return _copyable(conn, stmt) is not None


def _copyable(conn: sa.Connection, stmt: sa.Select[Any]) -> tuple[int, sa.Select[Any], list[int]] | None:
    """The address of the connection's libpq ``PGconn``, and ``copy_select(stmt)``; None
    when the server cannot be asked here (no C speedups, another engine or driver)."""
    native = speedups.native
    if native is None or not speedups.direct_reads or conn.dialect.name != "postgresql":
        return None
    dbapi = conn.connection.dbapi_connection
    if type(dbapi).__module__.split(".")[0] != "psycopg":  # (psycopg 3: its PGconn is libpq's)
        return None
    address = getattr(getattr(dbapi, "pgconn", None), "pgconn_ptr", None)
    found = copy_select(stmt) if address is not None and _bound(native) else None
    return None if found is None or address is None else (int(address), *found)


def pg_csv(
    conn: sa.Connection, stmt: sa.Select[Any], write: Callable[[bytes, int], None]
) -> tuple[int, bool, str | None] | None:
    """``stmt``'s rows as CSV records written by the server (``COPY``) and handed to
    ``write(records, rows so far)``: the bytes ``CsvWriter.write_columns`` writes for
    them.  Returns (rows written, all of them?, the server's message when it stopped);
    after a stop the transaction is as it was before the COPY, and the caller reads the
    rest through the driver from that offset.  None when it cannot be used here."""
    found = _copyable(conn, stmt)
    if found is None or not _iso_utf8(conn):
        return None
    address, select, kinds = found
    native = speedups.native
    assert native is not None
    try:  # the values are put in the text: COPY takes no parameters
        import psycopg

        compiled = select.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        dbapi: Any = conn.connection.dbapi_connection
        sql = psycopg.ClientCursor(dbapi).mogrify(str(compiled), compiled.params)
    except Exception:  # noqa: BLE001 - a value psycopg cannot put in text: the driver reads it
        return None
    copy = f"COPY ({sql}) TO STDOUT (FORMAT csv, ENCODING 'UTF8')"
    _run(conn, f"SAVEPOINT {_SAVEPOINT}")
    try:
        out = native.pg_copy_csv(address, copy, kinds, write, CHUNK)
    except BaseException:
        _run(conn, f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        raise
    if out is None:
        _run(conn, f"RELEASE SAVEPOINT {_SAVEPOINT}")
        return None
    rows, finished, message = out
    _run(conn, f"{'RELEASE' if finished else 'ROLLBACK TO'} SAVEPOINT {_SAVEPOINT}")
    return rows, finished, message


def _run(conn: sa.Connection, sql: str) -> tuple[Any, ...] | None:
    """``sql`` on the export's connection as it is, its first row if it has one (a cursor
    of the driver's own: the connection may stream results through server-side cursors,
    which only a SELECT can be)."""
    with conn.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(sql)
        return tuple(cursor.fetchone()) if cursor.description else None


def _iso_utf8(conn: sa.Connection) -> bool:
    """Dates leave the server as ISO text, and text as the UTF-8 it holds (a ``SQL_ASCII``
    database holds bytes of any encoding: the driver's decoding decides what they are).
    Asked once per connection (learnexit never changes these settings)."""
    info = conn.connection.info
    if _SETTINGS not in info:
        found = _run(conn, "SELECT current_setting('server_encoding'), current_setting('DateStyle')")
        encoding, style = found or ("", "")
        info[_SETTINGS] = str(encoding).upper() in ("UTF8", "UNICODE") and str(style).upper().startswith("ISO")
    return bool(info[_SETTINGS])


def pg_library() -> str | None:
    """The one libpq file loaded in this process (the driver's); None when there is none,
    or more than one (the connection's functions must come from its own library)."""
    found = set()
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.rstrip("\n").split(None, 5)[-1] if line.count(" ") >= 5 else ""
                if path.startswith("/") and Path(path).name.startswith("libpq") and ".so" in Path(path).name:
                    found.add(path)
    except OSError:
        return None
    return found.pop() if len(found) == 1 else None


_BOUND: bool | None = None


def _bound(native: Any) -> bool:
    global _BOUND
    if _BOUND is None:
        library = pg_library()
        _BOUND = library is not None and bool(native.pg_bind(library))
    return _BOUND
