"""SQL conditions and counts the purge builds its decisions from (no writes)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from ..errors import OperationalError
from ..source import Edge, Source, describe_db_error
from ..source.ownership import reference_is_set

__all__ = [
    "OutsideSets",
    "cols_in",
    "count_rows",
    "db_error",
    "flag_counts",
    "not_owned_by",
    "not_true",
    "outside_of",
]


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


class OutsideSets:
    """The reference columns of each child table's rows outside the customer's data, as
    one key set per child, for the conditions "a row outside the customer's data
    references this row" of all the tables the child references.

    On SQLite, where a child references two or more of the customer's tables, its set
    (the distinct values of its references to those tables) is filled by one scan of the
    child and read by every parent's condition: an activity log that names people,
    courses and organisations was read once for each of them, at every snapshot of the
    purge (its plan, each pass, its verification).  The set holds one row per distinct
    combination: a log's people, courses and organisations are few pairs (908 for
    400,000 rows in the example); where nearly every row is its own combination, a fill
    costs about what two scans did.  Elsewhere (PostgreSQL keeps its conditions inline;
    on MariaDB a snapshot's sets go through a spool in Python, too slow for a big set)
    ``reference`` says None and the caller reads the child itself."""

    def __init__(self, src: Source, owned: set[str]) -> None:
        self.src = src
        self.owned = owned
        self._sets: dict[str, sa.Table | None] = {}

    def reference(self, table: sa.Table, e: Edge) -> ColumnElement[bool] | None:
        """Some row of ``e.child`` outside the customer's data references this row of
        ``table`` (``e.parent``) through ``e``; None where the child has no shared set."""
        shared = self._set(e.child)
        if shared is None:
            return None
        sub = (
            sa.select(*[shared.c[c] for c in e.child_cols])
            .where(*reference_is_set(shared, e.child_cols, e.sentinels))
            .correlate(None)
        )
        return sa.and_(*[table.c[c].isnot(None) for c in e.parent_cols], cols_in(table, e.parent_cols, sub))

    def _set(self, child: str) -> sa.Table | None:
        """The child's set, registered on first use; None where it would not be shared."""
        if child in self._sets:
            return self._sets[child]
        shared: sa.Table | None = None
        key_sets = self.src.key_sets
        edges = [e for e in self.src.datamap.edges if e.child == child and e.parent != child and e.parent in self.owned]
        if key_sets is not None and key_sets.dialect == "sqlite" and len({e.parent for e in edges}) >= 2:
            table = self.src.table(child)
            names = {c for e in edges for c in e.child_cols}
            columns = [c for c in table.columns if c.name in names]  # (in the table's order)
            fill = sa.select(*columns).where(self.src.not_owned(child, table)).distinct()
            # (the set depends on the data alone: a later transaction reads it again while
            # the database is unchanged, as the sweep pass and the verification do)
            held = key_sets.register(columns, fill, index=False, reuse=True).get_final_froms()[0]
            assert isinstance(held, sa.Table)
            shared = held
        self._sets[child] = shared
        return shared
