"""The tables an export holds (``build_specs``): owned tables, parents first, their
columns and the references among them, each table counted in one scan of the export's
snapshot (a big one in two halves at once, with a second connection: ``counting_helper``;
on PostgreSQL whole, by that connection, with the server's own parallel workers)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..errors import OperationalError, printable
from ..exporters.base import Background, ColumnSpec, TableSpec, column_kind
from ..exporters.none_values import no_none
from ..source import Edge, Source, sentinels_typed


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


def integer_key(table: sa.Table) -> str | None:
    """The primary key's column when it is one integer column."""
    keys = list(table.primary_key.columns)
    return keys[0].name if len(keys) == 1 and column_kind(keys[0]) == "integer" else None


# A table whose keys span at least this many values is counted in two halves at once
# (``build_specs`` with a second connection on the same snapshot; on PostgreSQL whole, by
# that connection, while this one counts the other tables).
STATS_SPLIT_SPAN = 200_000


@dataclass
class _Stats:
    """What the counting scan found in (part of) a table; halves add up."""

    rows: int
    outside: list[int]  # rows pointing outside the export, per edge
    low: Any = None  # lowest and highest key, and rows with a key (one integer key column)
    high: Any = None
    keyed: int = 0
    contested: int | None = None  # rows leading to this customer and another (None: not counted here)

    def __add__(self, other: _Stats) -> _Stats:
        both = _Stats(self.rows + other.rows, [a + b for a, b in zip(self.outside, other.outside, strict=True)])
        if self.contested is not None and other.contested is not None:
            both.contested = self.contested + other.contested
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
    and highest value and the rows that have one.

    A table owned through references (``Source.sides``) is scanned for the rows that lead
    to this customer, each marked as the customer's (it leads to no one else) or
    contested (it does), and the figures come a row per side: the customer's, and the
    contested rows' count, which the export notes (``contested_report``) without a scan of
    its own."""
    table = source.table(name)
    key = integer_key(table)
    # Only the columns the scan looks at (the same rows: building and compiling a wide
    # table's every column, table after table, took longer than the scans).
    wanted = {key, *(c for e in edges for c in e.child_cols)}
    columns = [c for c in table.columns if c.name in wanted] or list(table.columns)[:1]
    sides = source.sides(name)
    if sides is None:
        stmt = sa.select(*columns).where(source.predicate(name))
    else:  # (the customer's: "leads elsewhere" is false, not unknown — as in the predicate)
        mine, elsewhere = sides
        side = sa.case((sa.not_(elsewhere), 1), (elsewhere, 2), else_=0).label("le_side")
        stmt = sa.select(*columns, side).where(mine)
    if where is not None:
        stmt = stmt.where(where)
    owned = stmt.subquery("le_owned")
    if sides is None:
        figures: list[Any] = [sa.func.count()] + [
            sa.func.coalesce(sa.func.sum(_outside(source, owned, e)), 0) for e in edges
        ]
        if key is not None:
            figures += [sa.func.min(owned.c[key]), sa.func.max(owned.c[key]), sa.func.count(owned.c[key])]
        return sa.select(*figures).select_from(owned)
    # A row of figures per side (the side computed once a row, for the grouping: used in
    # each figure, SQLite would compute it again for every one).
    figures = [sa.func.count()] + [sa.func.coalesce(sa.func.sum(_outside(source, owned, e)), 0) for e in edges]
    if key is not None:
        figures += [sa.func.min(owned.c[key]), sa.func.max(owned.c[key]), sa.func.count(owned.c[key])]
    return sa.select(*figures, owned.c.le_side).select_from(owned).group_by(owned.c.le_side)


def whole_tables(source: Source, name: str, edges: Sequence[Edge]) -> bool:
    """Whether ``name`` and every table its ``edges`` point at are exported whole (one
    database per customer: the ownership condition is "every row"), with names plain SQL
    text can hold: then ``_stats_text`` says what ``_stats_select`` says."""
    info = source.datamap.info
    names = [name, *(e.parent for e in edges)]
    columns = [c.name for c in source.table(name).columns] + [c for e in edges for c in e.parent_cols]
    return all(info[n].how == "database" for n in names) and not any(
        ":" in x or "%" in x for x in [*names, *columns, *(source.table(n).schema or "" for n in names)]
    )


def _stats_text(source: Source, conn: sa.Connection, name: str, edges: Sequence[Edge]) -> sa.TextClause:
    """``_stats_select`` of a table exported whole, as SQL text (building and compiling
    hundreds of expression trees cost more than the scans of a many-table schema): the
    same figures, the "none" values bound as parameters in the column's type."""
    quote = conn.dialect.identifier_preparer
    table = source.table(name)
    key = integer_key(table)
    binds: list[sa.BindParameter[Any]] = []
    figures = ["count(*)"]
    for edge in edges:
        parent = source.table(edge.parent)
        cols = [quote.quote(c) for c in edge.child_cols]
        pcols = [quote.quote(c) for c in edge.parent_cols]
        set_all = " AND ".join(f"{c} IS NOT NULL" for c in cols)
        set_any = " OR ".join(f"{c} IS NOT NULL" for c in cols)
        keys = cols[0] if len(cols) == 1 else f"({', '.join(cols)})"
        parent_keys = (
            f"SELECT {', '.join(pcols)} FROM {quote.format_table(parent)} "
            f"WHERE {' AND '.join(f'{c} IS NOT NULL' for c in pcols)}"
        )
        conditions = [f"({set_any})"]
        for column, values in edge.sentinels:
            typed = sentinels_typed(table.c[column], values)
            if typed:
                names = []
                for value in typed:
                    names.append(f"le_{len(binds)}")
                    binds.append(sa.bindparam(names[-1], value, type_=table.c[column].type))
                listed = ", ".join(f":{n}" for n in names)
                conditions.append(f"({quote.quote(column)} IS NULL OR {quote.quote(column)} NOT IN ({listed}))")
        conditions.append(f"NOT ({set_all} AND {keys} IN ({parent_keys}))")
        figures.append(f"coalesce(sum(CASE WHEN {' AND '.join(conditions)} THEN 1 ELSE 0 END), 0)")
    if key is not None:
        k = quote.quote(key)
        figures += [f"min({k})", f"max({k})", f"count({k})"]
    return sa.text(f"SELECT {', '.join(figures)} FROM {quote.format_table(table)}").bindparams(*binds)


def _read_stats(conn: sa.Connection, stmt: sa.Executable, edges: int, keyed: bool, sides: bool) -> _Stats:
    """The figures of ``stmt``: one row, or with ``sides`` a row per side (1: the
    customer's rows, 2: contested ones, 0: neither; a side without rows has none)."""
    rows = [tuple(r) for r in conn.execute(stmt)]
    by_side = {r[-1]: r[:-1] for r in rows} if sides else {1: rows[0]}
    row = by_side.get(1)
    if row is None:
        return _Stats(0, [0] * edges, contested=int(by_side[2][0]) if 2 in by_side else 0)
    stats = _Stats(int(row[0] or 0), [int(n or 0) for n in row[1 : 1 + edges]])
    if keyed:
        stats.low, stats.high, stats.keyed = row[1 + edges], row[2 + edges], int(row[3 + edges] or 0)
    if sides:
        stats.contested = int(by_side[2][0]) if 2 in by_side else 0
    return stats


def key_halves(source: Source, conn: sa.Connection, name: str) -> tuple[Any, Any] | None:
    """Two conditions that cut ``name`` in halves of its whole key span (read from the
    key's index), when the table is big enough to count in two scans at once."""
    table = source.table(name)
    key = integer_key(table)
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


def server_parallel(conn: sa.Connection) -> bool:
    """Whether the database scans a big table with parallel workers of its own
    (PostgreSQL, unless ``max_parallel_workers_per_gather`` is 0)."""
    if conn.dialect.name != "postgresql":
        return False
    workers = conn.exec_driver_sql("SELECT current_setting('max_parallel_workers_per_gather')").scalar()
    return str(workers).strip().isdigit() and int(str(workers)) > 0


# Tables looked at per statement by ``table_spans`` (SQLite allows 2,000 result columns).
SPANS_PER_STATEMENT = 200


def table_spans(source: Source, conn: sa.Connection, names: Sequence[str]) -> dict[str, int]:
    """The tables of ``names`` that hold rows, each with the span of its one integer key
    column (highest - lowest, from the key's index; 0 without such a key or when the
    key holds other values), in a few statements: one column per table, not a query
    each.  A table left out is empty."""
    found: dict[str, int] = {}
    quote = conn.dialect.identifier_preparer
    for start in range(0, len(names), SPANS_PER_STATEMENT):
        part = names[start : start + SPANS_PER_STATEMENT]
        columns: list[str] = []
        keys: list[str | None] = []
        for name in part:
            # (plain SQL text: compiling hundreds of subqueries took longer than running them)
            table = source.table(name)
            quoted = quote.format_table(table)
            columns.append(f"(SELECT 1 FROM {quoted} LIMIT 1)")
            keys.append(integer_key(table))
            if (key := keys[-1]) is not None:  # (two subqueries: SQLite reads min() or max() alone from the index)
                column = quote.quote(key)
                columns += [f"(SELECT min({column}) FROM {quoted})", f"(SELECT max({column}) FROM {quoted})"]
        values = iter(conn.exec_driver_sql("SELECT " + ", ".join(columns)).one())
        for name, key in zip(part, keys, strict=True):
            has_rows = next(values) is not None
            low, high = (next(values), next(values)) if key is not None else (None, None)
            if has_rows:
                found[name] = high - low if type(low) is int and type(high) is int else 0
    return found


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
    contested: dict[str, int] | None = None,
) -> list[TableSpec]:
    """Owned tables, parents first, with their columns and the references among them.

    A reference is kept only when every exported row's target is exported too, so the
    SQL dump loads and ``frictionless validate`` passes; a dropped one is noted.  Each
    table is scanned once, counting its rows (into ``totals``) and the references that
    point outside the export together.  ``helper``: a second connection on the same
    snapshot; a big table's second half is then counted on it, on a thread, while this
    one counts the rest (the drivers leave the GIL while the database works).
    ``contested``: filled with the contested rows of the tables the scans counted them in.
    """
    settings = source.settings
    # ``export = false`` tables are owned (the purge deletes them) but never exported;
    # ``omit_columns`` leave the export, and so do the references made of them.
    owned = [name for name in source.owned_tables() if settings.rule(name).export]
    omitted = {name: set(settings.rule(name).omit_columns) for name in owned}
    edges = _exported_edges(source, owned, omitted)
    counted = _count_tables(source, conn, owned, edges, helper)
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
        if contested is not None and found.contested is not None:
            contested[name] = found.contested
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
                key_spread=key_spread(counted[name]) if found.key_range() is not None else (),
                rows=found.rows,
            )
        )
    return specs


def key_spread(parts: Sequence[_Stats]) -> tuple[tuple[int, int], ...]:
    """Points (key, rows with a key up to it) from the counting scan's parts of a table,
    in key order: each part's lowest key (the rows before it) and highest (with its rows)."""
    points: list[tuple[int, int]] = []
    below = 0
    for part in sorted(
        (p for p in parts if p.rows and type(p.low) is int and type(p.high) is int), key=lambda p: p.low
    ):
        points += [(part.low, below), (part.high, below + part.rows)]
        below += part.rows
    return tuple(points)


def _exported_edges(source: Source, owned: list[str], omitted: dict[str, set[str]]) -> dict[str, list[Edge]]:
    """Each exported table's references to exported tables, none made of omitted columns."""
    exported = set(owned)
    return {
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


def _count_tables(
    source: Source,
    conn: sa.Connection,
    owned: list[str],
    edges: dict[str, list[Edge]],
    helper: sa.Connection | None,
) -> dict[str, list[_Stats]]:
    """What the counting scan finds in each table: one ``_Stats``, or two halves."""
    # With a helper and a big table: the helper counts the second half of each big table
    # while this thread counts the first halves and then every small table.
    # An empty table's scan finds nothing: its figures are known without one (found
    # for every table in a few statements, not a scan each).
    spans = table_spans(source, conn, owned)
    counted: dict[str, list[_Stats]] = {
        name: [] if name in spans else [_Stats(0, [0] * len(edges[name]))] for name in owned
    }
    filled = [name for name in owned if name in spans]
    ours: list[tuple[str, Any]] = [(name, None) for name in filled]
    theirs: list[tuple[str, Any]] = []
    if helper is not None:
        big = [name for name in filled if spans[name] >= STATS_SPLIT_SPAN]
        if big and server_parallel(conn):
            # PostgreSQL counts a whole table with parallel workers of its own; a half given
            # a key range gets a plan without them (1M example: 0.29 s for the whole table,
            # against 0.34-0.46 s for each half side by side).  The helper counts the big
            # tables whole while this thread counts the rest.
            theirs = [(name, None) for name in big]
            ours = [(name, None) for name in filled if name not in big]
        elif halves := {name: h for name in big if (h := key_halves(source, conn, name)) is not None}:
            theirs = [(name, second) for name, (_, second) in halves.items()]
            ours = [(name, first) for name, (first, _) in halves.items()]
            ours += [(name, None) for name in filled if name not in halves]

    def count(on: sa.Connection, parts: list[tuple[str, Any]]) -> None:
        for name, where in parts:
            stmt: sa.Executable
            keyed = integer_key(source.table(name)) is not None
            if where is None and whole_tables(source, name, edges[name]):
                stmt, contested = _stats_text(source, on, name, edges[name]), False
            else:
                stmt, contested = _stats_select(source, name, edges[name], where), source.sides(name) is not None
            counted[name].append(_read_stats(on, stmt, len(edges[name]), keyed, contested))

    thread = Background(lambda: count(helper, theirs), "stats") if theirs and helper is not None else None
    try:
        count(conn, ours)
    except BaseException:
        if thread is not None:
            thread.thread.join()  # (it reads through ``helper``, which closes after this)
        raise
    if thread is not None:
        thread.wait()
    return counted


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


__all__ = [
    "SPANS_PER_STATEMENT",
    "STATS_SPLIT_SPAN",
    "build_specs",
    "counting_helper",
    "integer_key",
    "key_halves",
    "key_spread",
    "server_parallel",
    "table_spans",
    "whole_tables",
]
