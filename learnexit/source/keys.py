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

__all__ = ["chunks", "key_after", "key_cols", "key_in"]


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
