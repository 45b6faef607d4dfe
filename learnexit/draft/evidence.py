"""How far the data bears a candidate reference out, measured in the database.

For ``child.col`` → ``target.key`` one aggregate query counts, over the child's non-NULL
values, how many there are, how many are ``0`` or ``-1`` (the usual "none" values) and
how many are found among the target's keys.  A big child table is sampled: a few key
ranges spread over its primary key, each read in key order with a LIMIT, so the sample
sees old and new rows alike without reading the table.  ``exact`` reads every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .schema import Candidate

SAMPLE_ROWS = 20_000
SAMPLE_RANGES = 4
SENTINELS = (0, -1)


@dataclass(frozen=True)
class Evidence:
    candidate: Candidate
    values: int  # non-NULL values looked at (sentinels included)
    found: int  # of those (sentinels excluded), how many are target keys
    sentinels: tuple[int, ...]  # values taken to mean "none"
    sentinel_rows: int
    sampled: bool
    table_rows: int
    distinct: int = 0  # distinct values looked at, the "none" values left out
    target_rows: int = 0

    @property
    def coverage(self) -> float:
        """How much of the target the values cover: a column drawn from a table's keys
        covers that table better than a bigger table whose keys merely include them."""
        return self.distinct / self.target_rows if self.target_rows else 0.0

    @property
    def checked(self) -> int:
        return self.values - self.sentinel_rows

    @property
    def share(self) -> float:
        return self.found / self.checked if self.checked else 0.0


def light(table: sa.Table, *columns: str) -> sa.TableClause:
    """The table with only the columns a query names: compiling hundreds of queries
    against reflected tables of many columns costs more than running them."""
    return sa.table(table.name, *[sa.column(c) for c in columns], schema=table.schema)


class Measurer:
    """Measures candidates on one connection, caching what several candidates share."""

    def __init__(self, conn: Connection, tables: dict[str, sa.Table], *, exact: bool, sample: int = SAMPLE_ROWS):
        self.conn = conn
        self.tables = tables
        self.exact = exact
        self.sample = sample
        self._rows: dict[str, int] = {}
        self._ranges: dict[str, list[Any] | None] = {}
        self._has: dict[tuple[str, str, int], bool] = {}

    def rows(self, table: str) -> int:
        if table not in self._rows:
            t = self.tables[table]
            self._rows[table] = int(self.conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0)
        return self._rows[table]

    def _starts(self, table: str) -> list[Any] | None:
        """Where each sampled key range begins (None: read the first rows only)."""
        if table not in self._ranges:
            t = self.tables[table]
            pk = list(t.primary_key.columns)
            starts: list[Any] | None = None
            if len(pk) == 1 and pk[0].type.python_type is int:
                low, high = self.conn.execute(sa.select(sa.func.min(pk[0]), sa.func.max(pk[0]))).one()
                if low is not None and high is not None:
                    step = (int(high) - int(low)) / SAMPLE_RANGES
                    starts = [int(low) + int(step * i) for i in range(SAMPLE_RANGES)]
            self._ranges[table] = starts
        return self._ranges[table]

    def _values(self, cand: Candidate) -> tuple[sa.Subquery, bool]:
        """The child's non-NULL values to look at, as a subquery with column ``v``."""
        return self.sample_of(cand.table, [cand.column])

    def sample_of(self, table: str, columns: list[str]) -> tuple[sa.Subquery, bool]:
        """The rows of ``table`` with no NULL in ``columns``, as a subquery with columns
        ``v`` (one column) or ``v0``, ``v1``… (several); sampled on a big table."""
        t = self.tables[table]
        pk_cols = [c.name for c in t.primary_key.columns]
        lt = light(t, *dict.fromkeys([*columns, *pk_cols]))
        labels = ["v"] if len(columns) == 1 else [f"v{i}" for i in range(len(columns))]
        base = sa.select(*[lt.c[c].label(n) for c, n in zip(columns, labels, strict=True)])
        base = base.where(*[lt.c[c].is_not(None) for c in columns])
        if self.exact or self.rows(table) <= self.sample:
            return base.subquery("le_values"), False
        starts = self._starts(table)
        if starts is None:
            return base.limit(self.sample).subquery("le_values"), True
        pk = lt.c[pk_cols[0]]
        each = max(1, self.sample // len(starts))
        parts = [base.where(pk >= s).order_by(pk).limit(each).subquery(f"le_part{i}") for i, s in enumerate(starts)]
        union = sa.union_all(*[sa.select(*[p.c[n] for n in labels]) for p in parts])
        return union.subquery("le_values"), True

    def target_has(self, cand: Candidate, value: int) -> bool:
        key = (cand.target.table, cand.target.column, value)
        if key not in self._has:
            t = light(self.tables[cand.target.table], cand.target.column)
            stmt = sa.select(sa.literal(1)).select_from(t).where(t.c[cand.target.column] == value).limit(1)
            self._has[key] = self.conn.execute(stmt).first() is not None
        return self._has[key]

    def measure(self, cand: Candidate) -> Evidence:
        return self.measure_column([cand])[0]

    def measure_column(self, cands: list[Candidate]) -> list[Evidence]:
        """Several candidate targets of one column, the column's values read once."""
        first = cands[0]
        values, sampled = self._values(first)
        columns: list[Any] = [sa.func.count(), sa.func.count(sa.distinct(values.c.v))]
        for i, cand in enumerate(cands):
            target = light(self.tables[cand.target.table], cand.target.column).alias(f"le_target{i}")
            found = sa.exists().where(target.c[cand.target.column] == values.c.v)
            columns.append(sa.func.sum(sa.case((found, 1), else_=0)))
        numeric = first.target.kind == "int"
        if numeric:
            columns += [sa.func.sum(sa.case((values.c.v == s, 1), else_=0)) for s in SENTINELS]
        row = self.conn.execute(sa.select(*columns).select_from(values)).one()
        total, distinct = int(row[0] or 0), int(row[1] or 0)
        counts = [int(c or 0) for c in row[2 + len(cands) :]] if numeric else []
        out = []
        for cand, hits in zip(cands, row[2 : 2 + len(cands)], strict=True):
            sentinels: list[int] = []
            sentinel_rows = 0
            for value, count in zip(SENTINELS, counts, strict=False):
                # a value the target has as a key (an id 0 exists) is a reference like any other
                if count and not self.target_has(cand, value):
                    sentinels.append(value)
                    sentinel_rows += count
            out.append(
                Evidence(
                    cand,
                    total,
                    int(hits or 0),
                    tuple(sentinels),
                    sentinel_rows,
                    sampled,
                    self.rows(cand.table),
                    distinct - len(sentinels),
                    self.rows(cand.target.table),
                )
            )
        return out
