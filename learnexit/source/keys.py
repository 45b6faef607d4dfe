"""Rows by primary key, in batches: what reads (or writes) a source table in key order.

A key is a tuple of the row's primary-key values.  ``key_after`` pages through a table
in key order (``ORDER BY`` the key columns), ``key_in`` names a batch of rows by key, and
``chunks`` cuts the keys into batches small enough for one statement.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

__all__ = ["chunks", "key_after", "key_cols", "key_in", "plain_rows", "result_processors", "tables_with_rows"]

# Tables looked at per statement by ``tables_with_rows`` (SQLite allows 2,000 result columns).
_TABLES_PER_STATEMENT = 200


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def key_cols(table: sa.Table) -> list[sa.Column[Any]]:
    """The table's primary key columns (empty: it has none)."""
    return list(table.primary_key.columns)


def key_in(cols: Sequence[Any], keys: Sequence[tuple[Any, ...]]) -> ColumnElement[bool]:
    """The row's key (``cols``) is one of ``keys``."""
    if len(cols) == 1:
        return cols[0].in_([k[0] for k in keys])
    return sa.tuple_(*cols).in_([tuple(k) for k in keys])


def key_after(cols: Sequence[Any], key: tuple[Any, ...]) -> ColumnElement[bool]:
    """Rows whose key comes after ``key`` (in the order ``ORDER BY`` the key columns gives)."""
    if len(cols) == 1:
        return cols[0] > key[0]
    return sa.tuple_(*cols) > sa.tuple_(*[sa.literal(v) for v in key])


def result_processors(dialect: Any, stmt: sa.Select[Any], description: Any) -> list[tuple[int, Any]]:
    """(index, converter) for each selected column SQLAlchemy converts on this dialect."""
    out = []
    for i, (col, desc) in enumerate(zip(stmt.selected_columns, description or (), strict=False)):
        process = col.type.dialect_impl(dialect).result_processor(dialect, desc[1])
        if process is not None:
            out.append((i, process))
    return out


def plain_rows(conn: sa.Connection, stmt: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """Every row of ``stmt`` as a plain tuple: the values SQLAlchemy's rows would hold
    (a column it converts on this dialect is converted), without making a ``Row`` of each
    — for a purge's batch of 20,000 keys that was a third of fetching them."""
    result = conn.execute(stmt)
    try:
        if not result.returns_rows or result.cursor is None:
            return [tuple(r) for r in result]
        processors = result_processors(conn.dialect, stmt, result.cursor.description)
        # (the fetch strategy: whatever SQLAlchemy has buffered from the cursor, then the
        # cursor; the drivers' rows are tuples already)
        rows: list[tuple[Any, ...]] = list(result.cursor_strategy.fetchall(result, result.cursor))
    finally:
        result.close()
    if not processors:
        return rows
    out = []
    for row in rows:
        values = list(row)
        for i, process in processors:
            values[i] = process(values[i])
        out.append(tuple(values))
    return out


def tables_with_rows(conn: sa.Connection, tables: Sequence[sa.Table]) -> set[str]:
    """The names of ``tables`` that hold a row, in a few statements (one column per table,
    ``(SELECT 1 FROM t LIMIT 1)``), not a query each: a schema of 480 tables, most of
    them empty, costs what its rows cost.  (Plain SQL text: compiling hundreds of
    subqueries takes longer than running them.)"""
    quote = conn.dialect.identifier_preparer
    found: set[str] = set()
    for part in chunks(tables, _TABLES_PER_STATEMENT):
        columns = ", ".join(f"(SELECT 1 FROM {quote.format_table(t)} LIMIT 1)" for t in part)
        row = conn.exec_driver_sql("SELECT " + columns).one()
        found.update(t.name for t, value in zip(part, row, strict=True) if value is not None)
    return found
