"""The SQL dump's schema: each exported table as the target gets it (column types, the
unique constraints MySQL can index, the foreign keys the rows allow), the CREATE TABLE
metadata, and the UPDATEs and sequence moves written after the rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import sqlalchemy as sa

from ..errors import printable
from ..source import Edge
from .base import ExportJob, TableSpec
from .none_values import holds_none, none_wording
from .sql_dialect import MYSQL_KEY_BYTES, Literals, TargetColumn, mysql_fit_rows, mysql_fk_name, target_column

__all__ = ["ForeignKey", "SqlSchema", "TablePlan", "none_reason"]


def none_reason(edge: Edge) -> str:
    """Why a foreign key whose rows hold a "no reference" value (``sentinels``) that no
    row has as its key is left out: the database would refuse the value."""
    return f"{none_wording(edge)}, and no exported row has that key"


@dataclass
class ForeignKey:
    edge: Edge
    deferred: bool  # the referenced rows may come later: insert NULL, UPDATE at the end
    dropped: str | None = None  # why it is left out of the dump


@dataclass
class TablePlan:
    spec: TableSpec
    columns: list[TargetColumn]
    fks: list[ForeignKey] = field(default_factory=list)
    pending: list[tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)  # (pk, {col: value})
    python_columns: set[int] = field(default_factory=set)  # columns the C speedups hand back


class SqlSchema:
    """The dump's tables as the target will have them, and which foreign keys it keeps."""

    def __init__(self, job: ExportJob, dialect: str) -> None:
        self.job = job
        self.dialect = dialect
        self.order = {t.name: i for i, t in enumerate(job.tables)}
        self.plans = {t.name: self._plan(t) for t in job.tables}

    def _plan(self, spec: TableSpec) -> TablePlan:
        columns = [target_column(spec.table.c[c.name], self.dialect) for c in spec.columns]
        if self.dialect == "mysql":
            keys = set(spec.primary_key) | {c for u in self._uniques(spec) for c in u}
            columns = mysql_fit_rows(columns, keys)
        plan = TablePlan(spec, columns)
        nullable = {c.name: c.nullable for c in columns}
        for edge in spec.foreign_keys:
            if not edge.declared or edge.parent not in self.order:
                continue
            parent = self.job.spec(edge.parent)
            if not self._is_key(parent, edge.parent_cols):
                continue
            deferred = self.order[edge.parent] >= self.order[spec.name]
            fk = ForeignKey(edge, deferred)
            if deferred and not all(nullable[c] for c in edge.child_cols):
                fk.dropped = "it points forward through a NOT NULL column (rows could not be ordered)"
            elif deferred and not spec.primary_key:
                fk.dropped = "it points forward and the table has no primary key"
            plan.fks.append(fk)
        return plan

    def _uniques(self, spec: TableSpec) -> list[tuple[str, ...]]:
        names = set(spec.column_names)
        out: list[tuple[str, ...]] = []
        for con in spec.table.constraints:
            if isinstance(con, sa.UniqueConstraint):
                cols = tuple(c.name for c in con.columns)
                if cols and set(cols) <= names and cols not in out:
                    out.append(cols)
        for index in spec.table.indexes:
            if index.unique:
                cols = tuple(c.name for c in index.columns if isinstance(c, sa.Column))
                if cols and set(cols) <= names and cols not in out and len(cols) == len(index.expressions):
                    out.append(cols)
        return [u for u in out if u != tuple(spec.primary_key)]

    def _kept_uniques(self, plan: TablePlan) -> list[tuple[str, ...]]:
        uniques = self._uniques(plan.spec)
        if self.dialect != "mysql":
            return uniques
        types = {c.name: c.type for c in plan.columns}
        kept = []
        for u in uniques:
            size = 0
            for c in u:
                t = types[c]
                if isinstance(t, sa.String) and not isinstance(t, sa.Text):
                    size += 4 * (t.length or 10**6)
                elif isinstance(t, (sa.Text, sa.LargeBinary, sa.JSON)):
                    size += 10**6
                else:
                    size += 16
            if size <= MYSQL_KEY_BYTES:
                kept.append(u)
            else:
                self.job.note(
                    "sql",
                    f"{plan.spec.name}: unique constraint on {', '.join(u)} left out (too long for a MySQL index)",
                )
        return kept

    def _is_key(self, spec: TableSpec, cols: tuple[str, ...]) -> bool:
        if tuple(cols) == tuple(spec.primary_key) and cols:
            return True
        return tuple(cols) in self._uniques(spec)

    def check_pending(self, keys: dict[tuple[str, tuple[str, ...]], set[tuple[Any, ...]]]) -> None:
        """Leave out each forward foreign key whose pending UPDATE refers to a row not in the dump."""
        for plan in self.plans.values():
            for fk in plan.fks:
                if not fk.deferred or fk.dropped is not None:
                    continue
                known = keys[(fk.edge.parent, fk.edge.parent_cols)]
                cols = fk.edge.child_cols
                for _pk, vals in plan.pending:
                    ref = tuple(vals.get(c) for c in cols)
                    if all(c in vals for c in cols) and ref not in known:
                        none = holds_none(fk.edge, ref)
                        fk.dropped = (
                            none_reason(fk.edge)
                            if none
                            else "some rows reference rows that are not part of this export"
                        )
                        break

    def metadata(self) -> tuple[sa.MetaData, dict[str, list[sa.ForeignKeyConstraint]], list[sa.ForeignKeyConstraint]]:
        """The target tables; per table the foreign keys created with it, and those added
        after every table exists (they reference a later table)."""
        md = sa.MetaData()
        inline: dict[str, list[sa.ForeignKeyConstraint]] = {}
        later: list[sa.ForeignKeyConstraint] = []
        kwargs: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
        fk_number = 0
        for name, plan in self.plans.items():
            spec = plan.spec
            source_auto = spec.table.autoincrement_column
            cols: list[sa.schema.SchemaItem] = []
            for c in plan.columns:
                auto: Any = "auto" if source_auto is not None and source_auto.name == c.name else False
                cols.append(
                    sa.Column(c.name, c.type, nullable=c.nullable, primary_key=c.primary_key, autoincrement=auto)
                )
            cols.extend(sa.UniqueConstraint(*u) for u in self._kept_uniques(plan))
            table = sa.Table(name, md, *cols, **(kwargs if self.dialect == "mysql" else {}))
            inline[name] = []
            for fk in plan.fks:
                if fk.dropped is not None:
                    self.job.note("sql", f"{name}: foreign key {fk.edge.label} left out of the dump: {fk.dropped}")
                    continue
                fk_number += 1
                con_name = None
                if self.dialect == "mysql":
                    con_name = mysql_fk_name(name, fk_number, len(plan.fks))
                con = sa.ForeignKeyConstraint(
                    list(fk.edge.child_cols), [f"{fk.edge.parent}.{c}" for c in fk.edge.parent_cols], name=con_name
                )
                table.append_constraint(con)
                backwards = self.order[fk.edge.parent] > self.order[name]
                if backwards and self.dialect != "sqlite":
                    later.append(con)  # the referenced table does not exist yet
                else:
                    inline[name].append(con)
        return md, inline, later

    def updates(self, out: IO[str], quote: Callable[[str], str], lit: Literals) -> None:
        """The UPDATEs that set the references inserted as NULL (they pointed forward)."""
        for name, plan in self.plans.items():
            if not plan.pending:
                continue
            spec = plan.spec
            cols = {c.name: c for c in plan.columns}
            # (a comment: a line break in the name must not end it and start a statement)
            out.write(f"\n-- {printable(name)}: references to rows inserted after the referencing row\n")
            for pk, vals in plan.pending:
                sets = ", ".join(f"{quote(c)} = {lit.literal(v, cols[c], name)}" for c, v in vals.items())
                where = " AND ".join(
                    f"{quote(c)} = {lit.literal(v, cols[c], name)}" for c, v in zip(spec.primary_key, pk, strict=True)
                )
                out.write(f"UPDATE {quote(name)} SET {sets} WHERE {where};\n")
            plan.pending = []

    def sequences(self, out: IO[str], md: sa.MetaData, quote: Callable[[str], str]) -> None:
        """Move PostgreSQL's serial sequences past the ids the dump inserted."""
        for name in self.plans:
            col = md.tables[name].autoincrement_column
            if col is None:
                continue
            qt, qc = quote(name), quote(col.name)
            regclass = qt.replace("'", "''")
            out.write(
                f"SELECT setval(pg_get_serial_sequence('{regclass}', '{col.name.replace(chr(39), chr(39) * 2)}'), "
                f"COALESCE(MAX({qc}), 0) + 1, false) FROM {qt};\n"
            )
