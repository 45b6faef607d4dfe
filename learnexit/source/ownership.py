"""Which rows are one customer's, as SQL conditions the database evaluates.

A row is the customer's when every ownership reference of it that is set leads to this
customer (rule 3); rows whose references also lead elsewhere are *contested* and belong
to no one until the config settles it.  Row sets are SQL predicates (``col IN (SELECT
...)``), never key lists in Python; self-references become recursive CTEs.  A reference
holding a "no reference" value (``Edge.sentinels``) counts as NULL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from .datamap import DataMap, Edge
from .keysets import KeySets


def sentinels_typed(column: Any, values: tuple[Any, ...]) -> list[Any]:
    """Sentinel ("none") values in the column's own type (0 for an integer column, '0' for text)."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return list(values)
    out = []
    for value in values:
        try:
            out.append(python_type(value))
        except (TypeError, ValueError, ArithmeticError):
            continue
    return out


def reference_is_set(
    table: Any, cols: tuple[str, ...], sentinels: tuple[tuple[str, tuple[Any, ...]], ...]
) -> list[Any]:
    """Conditions that a reference is set: no column NULL, none holding a "none" value
    (``Edge.sentinels``: a relation's ``sentinels``, ``[roles.people] nobody``)."""
    conds: list[Any] = [table.c[c].isnot(None) for c in cols]
    for col, values in sentinels:
        typed = sentinels_typed(table.c[col], values)
        if typed:
            conds.append(table.c[col].not_in(typed))
    return conds


def _in(table: sa.Table | Any, cols: tuple[str, ...], sub: sa.Select[Any]) -> ColumnElement[bool]:
    if len(cols) == 1:
        return table.c[cols[0]].in_(sub)
    return sa.tuple_(*[table.c[c] for c in cols]).in_(sub)


@dataclass
class ContestedTable:
    """Rows of a table whose references lead to this customer and to another one."""

    table: str
    rows: int
    references: list[str]

    def note(self) -> str:
        refs = " and ".join(self.references) or "its references"
        return (
            f"{self.table}: {self.rows} row{'s' if self.rows != 1 else ''} contested — {refs} lead to another "
            f"customer as well; neither exported nor deleted until settled in the source or with "
            f"[tables.{self.table}] ignore_references"
        )


class Ownership:
    """The ownership conditions of one customer, built once and remembered.

    ``root`` gives the customer's own row of the customer table (read at every build, so
    a source re-pointed at another customer only has to ``forget`` what was built).
    ``key_sets``: hold the key sets in temporary tables (SQLite, MariaDB: ``KeySets``);
    without, ``flat`` names them as CTEs of each statement, or they stay inline."""

    def __init__(
        self,
        datamap: DataMap,
        root: Callable[[sa.Table], ColumnElement[bool]],
        *,
        flat: bool,
        key_sets: KeySets | None = None,
    ) -> None:
        self.datamap = datamap
        self.root = root
        self.flat = flat
        self.key_sets = key_sets
        self._preds: dict[str, ColumnElement[bool]] = {}
        self._reach_cache: dict[tuple[str, bool], ColumnElement[bool]] = {}
        self._key_sets: dict[tuple[str, tuple[str, ...], bool], sa.Select[Any]] = {}
        self._cte_counter = 0

    def forget(self) -> None:
        """Drop every condition built so far (they name the customer's row)."""
        self._preds.clear()
        self._reach_cache.clear()
        self._key_sets.clear()

    def predicate(self, name: str) -> ColumnElement[bool]:
        """SQL condition selecting exactly this customer's rows of ``name``."""
        if name not in self._preds:
            self._preds[name] = self._build_predicate(name)
        return self._preds[name]

    def _build_predicate(self, name: str) -> ColumnElement[bool]:
        info = self.datamap.info[name]
        table = self.datamap.table(name)
        if not info.owned:
            return sa.false()
        if info.how == "database":
            return sa.true()
        if info.how == "customer":
            return self._reach(name, mine=True)
        if info.how == "owned_via":
            conditions: list[ColumnElement[bool]] = []
            for src_name, src_col, target_col in info.via_sources:
                src = self.datamap.table(src_name)
                sentinels = self.datamap.none_values(src_name, src_col, name, target_col)
                sub = sa.select(src.c[src_col]).where(
                    self.predicate(src_name), *reference_is_set(src, (src_col,), ((src_col, sentinels),))
                )
                conditions.append(table.c[target_col].in_(sub))
            return sa.or_(*conditions) if conditions else sa.false()
        return sa.and_(self._reach(name, mine=True), sa.not_(self._reach(name, mine=False)))

    def keyed(self, name: str, cond: ColumnElement[bool], label: str) -> ColumnElement[bool]:
        """``cond`` as "the key is in a set of keys": a temporary table (``key_sets``) or,
        with ``flat``, a named CTE; otherwise ``cond`` itself."""
        table = self.datamap.table(name)
        pk = list(table.primary_key.columns)
        if pk and self.key_sets is not None:
            held = self.key_sets.register(pk, sa.select(*pk).where(cond))
            return _in(table, tuple(c.name for c in pk), held)
        if not pk or not self.flat:
            return cond
        self._cte_counter += 1
        keys = sa.select(*pk).where(cond).cte(name=f"le_{label}_{self._cte_counter}")
        return _in(table, tuple(c.name for c in pk), sa.select(*keys.c))

    def not_owned(self, name: str, row: Any) -> ColumnElement[bool]:
        """``row`` (the table ``name`` or an alias of it) is not one of the customer's rows.

        For the table itself the condition is the predicate's negation on the row's own
        columns (unknown counting as not the customer's): with the key sets held
        (``key_sets``) or inline the predicate is one level deep.  An alias (a
        self-reference), and a ``flat`` source without held key sets, test the row's key
        against the customer's keys.  PostgreSQL hashes a ``NOT IN`` only when its keys
        fit in ``work_mem``; beyond, it rescans them for every row tested: a million-row
        table's purge plan ran for hours."""
        table = self.datamap.table(name)
        pk = tuple(c.name for c in table.primary_key.columns)
        if row is table and (self.key_sets is not None or not self.flat):
            return sa.case((self.predicate(name), 0), else_=1) == 1
        if not pk:
            return sa.not_(self.predicate(name))
        keys = sa.select(*[table.c[c] for c in pk]).where(self.predicate(name)).correlate(None)
        return sa.not_(_in(row, pk, keys))

    def contested(self, name: str) -> ColumnElement[bool] | None:
        """Rows of ``name`` whose references lead to this customer and to another one."""
        if self.datamap.info[name].how != "chain":
            return None
        return sa.and_(self._reach(name, mine=True), self._reach(name, mine=False))

    def sides(self, name: str) -> tuple[ColumnElement[bool], ColumnElement[bool]] | None:
        """For a table owned through references (``how`` "chain"): the rows whose
        references lead to this customer, and those whose references lead to another one.
        The customer's rows are the first and not the second (``predicate``); contested
        rows are both (``contested``).  None for other tables."""
        if self.datamap.info[name].how != "chain":
            return None
        return self._reach(name, mine=True), self._reach(name, mine=False)

    def leads_elsewhere(self, name: str, edge: Edge) -> ColumnElement[bool]:
        """Rows of ``name`` whose reference ``edge`` leads to a customer other than this one."""
        return self._edge_leads(self.datamap.table(name), edge, mine=False)

    def _reach(self, name: str, *, mine: bool) -> ColumnElement[bool]:
        """Rows of ``name`` whose ownership references lead to this customer (``mine``) or
        to any other customer (not ``mine``); both hold for a contested row.  The
        condition is on the table's own columns; the parents' rows it needs are key sets
        (``_key_set``), so it stays flat however long the chain."""
        key = (name, mine)
        if key in self._reach_cache:
            return self._reach_cache[key]
        info = self.datamap.info[name]
        table = self.datamap.table(name)
        if info.how == "customer":
            root = self.root(table)
            tree = self._tree(table, info.self_edges, root) if info.self_edges else root
            cond = tree if mine else sa.not_(tree)
        else:
            parts = [self._edge_leads(table, e, mine=mine) for e in info.edges]
            cond = sa.or_(*parts) if parts else sa.false()
            if info.self_edges:
                cond = self._tree(table, info.self_edges, cond)
        self._reach_cache[key] = cond
        return cond

    def _edge_leads(self, table: sa.Table, edge: Edge, *, mine: bool) -> ColumnElement[bool]:
        sub = self._key_set(edge.parent, edge.parent_cols, mine=mine)
        return sa.and_(*reference_is_set(table, edge.child_cols, edge.sentinels), _in(table, edge.child_cols, sub))

    def _key_set(self, name: str, cols: tuple[str, ...], *, mine: bool) -> sa.Select[Any]:
        """The ``cols`` of the rows of ``name`` that ``_reach`` selects.  With ``flat`` a
        named CTE, which the statement's WITH clause defines once: SQLite's parser refuses
        deeply nested statements ("parser stack overflow"); PostgreSQL and MariaDB take the
        nesting (and MariaDB limits the number of WITH elements), so they keep it inline."""
        key = (name, cols, mine)
        if key in self._key_sets:
            return self._key_sets[key]
        table = self.datamap.table(name)
        columns = [table.c[c] for c in cols]
        keys = sa.select(*columns).where(self._reach(name, mine=mine), *[c.isnot(None) for c in columns])
        if self.key_sets is not None:
            keys = self.key_sets.register(columns, keys)
        elif self.flat:
            self._cte_counter += 1
            cte = keys.cte(name=f"le_{'mine' if mine else 'other'}_{self._cte_counter}")
            keys = sa.select(*cte.c)
        self._key_sets[key] = keys
        return keys

    def _tree(self, table: sa.Table, edges: list[Edge], base: ColumnElement[bool]) -> ColumnElement[bool]:
        """Rows matching ``base`` and all their descendants through the self-references."""
        self._cte_counter += 1
        key_cols = tuple(dict.fromkeys(c for e in edges for c in e.parent_cols))
        tree = (
            sa.select(*[table.c[c] for c in key_cols])
            .where(base)
            .cte(name=f"le_tree_{self._cte_counter}", recursive=True)
        )
        child = table.alias(f"le_child_{self._cte_counter}")
        links = [
            sa.and_(
                *reference_is_set(child, e.child_cols, e.sentinels),
                *[child.c[cc] == tree.c[pc] for cc, pc in zip(e.child_cols, e.parent_cols, strict=True)],
            )
            for e in edges
        ]
        step = sa.select(*[child.c[c] for c in key_cols]).where(sa.or_(*links))
        tree = tree.union(step)  # UNION, not UNION ALL: stops on cycles in the data
        keys = sa.select(*[tree.c[c] for c in key_cols])
        if self.key_sets is not None:
            keys = self.key_sets.register([table.c[c] for c in key_cols], keys)
        return _in(table, key_cols, keys)

    def contested_report(
        self, conn: Connection, holding: set[str] | None = None, counted: Mapping[str, int] | None = None
    ) -> list[ContestedTable]:
        """Every table with contested rows, and which of its references lead elsewhere
        (``holding``: only these tables hold rows; ``counted``: the contested rows of some
        tables, counted already in the same snapshot)."""
        out = []
        for name in self.datamap.owned():
            if holding is not None and name not in holding:
                continue
            cond = self.contested(name)
            if cond is None:
                continue
            table = self.datamap.table(name)
            if counted is not None and name in counted:
                rows = counted[name]
            else:
                rows = int(conn.execute(sa.select(sa.func.count()).select_from(table).where(cond)).scalar() or 0)
            if not rows:
                continue
            info = self.datamap.info[name]
            disagree = []
            for e in [*info.edges, *info.self_edges]:
                hit = sa.select(sa.func.count()).select_from(table).where(cond, self.leads_elsewhere(name, e))
                if conn.execute(hit).scalar():
                    disagree.append(f"{name}.{','.join(e.child_cols)} → {e.parent}")
            out.append(ContestedTable(name, rows, disagree))
        return out
