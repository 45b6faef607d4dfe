"""References of several columns, found where a table holds every column of another
table's composite unique key and the data bears the pairs out.

``quiz_overview_regrades (questionusageid, slot)`` names a row of ``question_attempts``,
whose unique key is ``(questionusageid, slot)``: ``slot`` alone references nothing, the
pair references one row.  A candidate is a table (not the key's own) with columns of the
key's names and kinds, at least one of which no single-column reference explains (when
every column has its own reference, the pair says nothing more); the data decides: the
share of the table's complete tuples (no NULL) found among the key's tuples, sampled on
big tables like single columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .evidence import Measurer, light
from .schema import SchemaFacts, kind

SURE_SHARE = 0.98  # a pair matching by chance is rarer than a value, but a pair is no name
MIN_DISTINCT = 2  # tuples; one tuple repeated says nothing


@dataclass(frozen=True)
class CompositeCandidate:
    table: str
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]


@dataclass(frozen=True)
class CompositeEvidence:
    candidate: CompositeCandidate
    checked: int  # complete tuples looked at
    found: int
    distinct: int
    sampled: bool
    table_rows: int

    @property
    def share(self) -> float:
        return self.found / self.checked if self.checked else 0.0

    def describe(self) -> str:
        c = self.candidate
        text = (
            f"{100 * self.share:.1f} % of {self.checked:,} ({', '.join(c.columns)}) tuples found in "
            f"{c.target} ({', '.join(c.target_columns)}), a unique key there"
        )
        return text + (f" (a sample of {self.table_rows:,} rows)" if self.sampled else "")


def candidates(facts: SchemaFacts, single: set[tuple[str, str]]) -> list[CompositeCandidate]:
    """Tables holding every column of another table's composite unique key; ``single``:
    the (table, column) pairs a single-column reference (proposed or declared) explains."""
    out = []
    for target, keys in sorted(facts.composite_keys.items()):
        target_table = facts.tables[target]
        for key in keys:
            for name, table in sorted(facts.tables.items()):
                if name == target or not all(c in table.c for c in key):
                    continue
                if any(kind(table.c[c]) != kind(target_table.c[c]) for c in key):
                    continue
                explained = [(name, c) in single or (name, c) in facts.declared for c in key]
                if all(explained) or not any(explained):
                    continue  # each column references on its own, or nothing ties the table to the key
                out.append(CompositeCandidate(name, key, target, key))
    return out


def measure(measurer: Measurer, cand: CompositeCandidate) -> CompositeEvidence:
    values, sampled = measurer.sample_of(cand.table, list(cand.columns))
    target = light(measurer.tables[cand.target], *cand.target_columns).alias("le_target")
    labels = [f"v{i}" for i in range(len(cand.columns))]
    match = [target.c[t] == values.c[v] for t, v in zip(cand.target_columns, labels, strict=True)]
    found = sa.exists().where(*match)
    columns: list[Any] = [sa.func.count(), sa.func.sum(sa.case((found, 1), else_=0))]
    row = measurer.conn.execute(sa.select(*columns).select_from(values)).one()
    distinct_rows = sa.select(*[values.c[v] for v in labels]).distinct().subquery("le_distinct")
    distinct = measurer.conn.execute(sa.select(sa.func.count()).select_from(distinct_rows)).scalar()
    return CompositeEvidence(
        cand, int(row[0] or 0), int(row[1] or 0), int(distinct or 0), sampled, measurer.rows(cand.table)
    )


def accepted(evidence: list[CompositeEvidence]) -> tuple[list[CompositeEvidence], list[CompositeEvidence]]:
    """The candidates the data bears out (at most one per table and columns), and the rest."""
    good: dict[tuple[str, tuple[str, ...]], CompositeEvidence] = {}
    rest = []
    for ev in evidence:
        if ev.checked and ev.share >= SURE_SHARE and ev.distinct >= MIN_DISTINCT:
            key = (ev.candidate.table, ev.candidate.columns)
            if key not in good or ev.share > good[key].share:
                good[key] = ev
        else:
            rest.append(ev)
    return list(good.values()), rest
