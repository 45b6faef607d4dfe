"""SQL conditions and counts the purge builds its decisions from (no writes)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from ..errors import OperationalError
from ..source import Source, describe_db_error

__all__ = ["cols_in", "count_rows", "db_error", "flag_counts", "not_owned_by", "not_true", "outside_of"]


def not_true(cond: ColumnElement[bool]) -> ColumnElement[bool]:
    """NOT cond, where NULL (unknown) counts as not true."""
    return sa.case((cond, 0), else_=1) == 1


def outside_of(pred: ColumnElement[bool]) -> Callable[[Any], ColumnElement[bool]]:
    """For ``_ref_exists``: the referencing row is not one of the customer's."""

    def condition(_child: Any) -> ColumnElement[bool]:
        return not_true(pred)

    return condition


def not_owned_by(src: Source, name: str) -> Callable[[Any], ColumnElement[bool]]:
    """For ``_ref_exists``: the referencing row (of ``name``, or an alias of it for a
    self-reference) is not one of the customer's."""

    def condition(row: Any) -> ColumnElement[bool]:
        return src.not_owned(name, row)

    return condition


def cols_in(table: Any, cols: Sequence[str], sub: Any) -> ColumnElement[bool]:
    """The columns ``cols`` of ``table`` are in ``sub`` (a select of as many columns)."""
    if len(cols) == 1:
        return table.c[cols[0]].in_(sub)
    return sa.tuple_(*[table.c[c] for c in cols]).in_(sub)


def count_rows(conn: Connection, table: sa.Table, *where: Any) -> int:
    """The rows of ``table`` matching ``where``."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar() or 0)


def flag_counts(
    conn: Connection, table: sa.Table, where: Sequence[Any], *flags: ColumnElement[bool] | None
) -> dict[tuple[bool, ...], int]:
    """The rows matching ``where``, counted by which ``flags`` hold (None: never; NULL: not).

    One statement, grouped by the database, instead of a count per combination: each
    flag's condition (say a reference from outside the customer's data, which reads a
    whole child table) is evaluated once."""
    present = [i for i, f in enumerate(flags) if f is not None]
    cases = [sa.case((f, 1), else_=0).label(f"f{i}") for i, f in enumerate(flags) if f is not None]
    inner = sa.select(sa.literal(1).label("one"), *cases).select_from(table).where(*where).subquery("le_flags")
    cols = [inner.c[f"f{i}"] for i in present]
    out: dict[tuple[bool, ...], int] = {}
    for row in conn.execute(sa.select(*cols, sa.func.count()).select_from(inner).group_by(*cols)):
        held = dict(zip(present, row[:-1], strict=True))
        key = tuple(bool(held.get(i, 0)) for i in range(len(flags)))
        out[key] = out.get(key, 0) + int(row[-1])
    return out


def db_error(what: str, exc: BaseException) -> OperationalError:
    """A database error as an OperationalError: "what: the driver's reason" (no values)."""
    return OperationalError(f"{what}: {describe_db_error(exc)}")
