"""SQL: ``data/sql/<customer>.sql`` — CREATE TABLE and INSERT, loadable into an empty database.

The dialect is ``job.options.sql_dialect``: ``sqlite``, ``postgresql`` or ``mysql`` (MySQL
and MariaDB).  The file is one script for the engine's own client::

    sqlite3 new.db < acme.sql
    psql -v ON_ERROR_STOP=1 -d newdb -f acme.sql
    mysql --default-character-set=utf8mb4 newdb < acme.sql

Layout: a header comment (customer, time, dialect, how to load), session settings, the
CREATE TABLEs for the owned tables (types compiled for the dialect with SQLAlchemy's
``CreateTable``; primary keys, unique constraints and the foreign keys among exported
tables), then this customer's rows as multi-row INSERTs (``INSERT_ROWS`` rows or about
``INSERT_BYTES`` per statement), parents first, all in one transaction.

Decisions:

* **Types** are the source's, made generic and compiled for the target: text without a
  length (and on MySQL, long VARCHARs) becomes TEXT / MySQL LONGTEXT; binary BLOB /
  BYTEA / LONGBLOB; floats double precision; decimals keep precision and scale (MySQL:
  DECIMAL(65,30) when the source gave none); MySQL datetimes and times keep microseconds
  (DATETIME(6)); enums become VARCHAR.  Server defaults, checks and plain indexes are not
  carried over (this is a data export, not a schema migration).
* **Row order and foreign keys.** Tables are written parents first, so a row's parents are
  already there when it is inserted and the dump loads with foreign-key checks on.  A
  reference that points *forward* — a self-reference to a row later in the table (a
  section whose parent has a higher id) or a reference cycle between tables — is
  inserted as NULL and set by an ``UPDATE`` after all INSERTs (same transaction), so no
  check is ever switched off.  If such a column is NOT NULL, or the table has no primary
  key to address the UPDATE, that foreign key is left out of the dump (noted).  A
  foreign key whose referenced row is not part of the export (inconsistent source data)
  is left out too (noted) — the values themselves are always written as they are.
* **Values**: NULL; booleans ``TRUE``/``FALSE`` (PostgreSQL) or ``1``/``0``; decimals exact;
  floats ``repr``; NaN/Infinity ``'NaN'::float8`` on PostgreSQL, ``9e999`` (±Infinity) on
  SQLite, otherwise NULL (noted); bytes ``X'..'`` / ``'\\x..'::bytea``; strings with
  quotes doubled (and on MySQL backslashes and NUL escaped — the script sets the
  session's ``sql_mode`` so that escaping is what MySQL expects); NUL characters in text,
  which PostgreSQL cannot store, are removed (noted); instants with a time zone keep it
  on PostgreSQL and become UTC elsewhere (noted; MySQL sessions run at ``+00:00``).
  SQLite values are written in SQLAlchemy's storage formats so SQLAlchemy reads them back.
* The INSERTs are written to a temporary file next to the dump and the final file is
  assembled at the end, when it is known which foreign keys the data allows.  Memory:
  the keys of referenced tables (to check references) and the pending UPDATEs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import IO, Any

from sqlalchemy.schema import AddConstraint, CreateTable

from ..errors import printable
from . import speedups
from .base import DirectSink, Exporter, ExportJob, TableSpec, TableWriter, append_file, generated_at, register
from .none_values import holds_none
from .speedups import native_batch
from .sql_dialect import DIALECT_NAMES, DIALECTS, LOAD_HINTS, NATIVE_DIALECTS, Literals, dialect_for
from .sql_schema import ForeignKey, SqlSchema, TablePlan, none_reason
from .values import Sanitiser, file_stem

FOLDER = "sql"
INSERT_ROWS = 500
INSERT_BYTES = 1_000_000


def dump_path(customer: str) -> str:
    """Where the dump goes below ``data/``."""
    return f"{FOLDER}/{file_stem(customer)}.sql"


class SqlWriter(TableWriter):
    def __init__(self, job: ExportJob) -> None:
        self.job = job
        self.dialect = job.options.sql_dialect
        self.sa_dialect = dialect_for(self.dialect)
        self.quote = self.sa_dialect.identifier_preparer.quote
        self.values = Sanitiser("sql")
        self.lit = Literals(self.dialect, self.values)
        self.path = dump_path(job.customer)
        self.body_path = f"{FOLDER}/.{file_stem(job.customer)}.sql.part"
        self.body: IO[bytes] | None = None
        self.schema = SqlSchema(job, self.dialect)
        self.plans = self.schema.plans
        # keys of the rows written so far, per referenced (table, columns)
        self.keys: dict[tuple[str, tuple[str, ...]], set[tuple[Any, ...]]] = {}
        for plan in self.plans.values():
            for fk in plan.fks:
                self.keys.setdefault((fk.edge.parent, fk.edge.parent_cols), set())
        self.rows: dict[str, int] = {}
        # In a worker writing one range of a table: the references its rows make, per
        # foreign key, for the export's process to check (it has written the keys).
        self.part_refs: list[set[tuple[Any, ...]]] | None = None

    # -- rows -----------------------------------------------------------------

    def start_table(self, spec: TableSpec) -> None:
        if self.body is None:
            self.body = self.job.open_file(self.body_path, "wb", buffering=1 << 20)
        self.rows[spec.name] = 0

    def write_batch(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.write_columns(spec, list(zip(*rows, strict=True)), len(rows))

    def write_columns(self, spec: TableSpec, columns: list[Sequence[Any]], rows: int) -> None:
        """A batch a column at a time: references checked per column (row by row only when
        one is not written yet), literals made per column, rows joined into INSERTs."""
        assert self.body is not None
        if not rows:
            return
        plan = self.plans[spec.name]
        index = {c: i for i, c in enumerate(spec.column_names)}
        live = [fk for fk in plan.fks if fk.dropped is None]
        table = spec.name
        if self.part_refs is not None:  # (a range in a worker: checked when it is joined)
            for fk, seen in zip(plan.fks, self.part_refs, strict=True):
                refs = set(zip(*[columns[index[c]] for c in fk.edge.child_cols], strict=True))
                seen.update(r for r in refs if None not in r)
        elif self._references_known(spec, live, columns, index):
            for (t, cols), keyset in self.keys.items():
                if t == table:  # later tables may reference these rows
                    keyset.update(zip(*[columns[index[c]] for c in cols], strict=True))
        else:  # a reference to a row not written yet (or into this very table): row by row
            batch = list(zip(*columns, strict=True))
            columns = list(zip(*self._check_references(spec, plan, live, batch, index), strict=True))
        if speedups.native is not None:
            statements = self._inserts(speedups.native, spec, plan, columns)
            if statements is not None:
                self.body.write(statements)
                self.rows[spec.name] += rows
                return
        counted = self.values.changes.copy()  # (what to go back to if the batch is redone)
        literal_column = self.lit.literal_column
        literals = [literal_column(values, col, table) for values, col in zip(columns, plan.columns, strict=True)]
        tuples = ["(" + ", ".join(values) + ")" for values in zip(*literals, strict=True)]
        try:
            self._write_statements(spec, tuples)
        except UnicodeEncodeError:  # a lone surrogate: the batch value by value (replaced and noted)
            self.values.changes = counted
            literal = self.lit.literal
            tuples = [
                "(" + ", ".join(literal(v, c, table) for v, c in zip(values, plan.columns, strict=True)) + ")"
                for values in zip(*columns, strict=True)
            ]
            self._write_statements(spec, tuples)
        self.rows[spec.name] += rows

    def direct(self, spec: TableSpec) -> DirectSink | None:
        """The INSERTs of a table written by C straight from a SQLite snapshot, when every
        column's literal is C's to write and its references allow (``direct_references``)."""
        plan = self.plans[spec.name]
        if self.body is None or any(col.render in ("json", "bool") for col in plan.columns):
            return None
        refs = direct_references(spec, plan, self.keys, self.part_refs)
        if refs is None:
            return None
        batch = self.job.options.batch_size
        statements = (NATIVE_DIALECTS[self.dialect], self._head(spec), INSERT_ROWS, INSERT_BYTES, batch)

        def wrote(rows: int) -> None:
            self.rows[spec.name] += rows

        return DirectSink(self.body.write, statements, refs, wrote)

    def _references_known(
        self, spec: TableSpec, live: list[ForeignKey], columns: list[Sequence[Any]], index: dict[str, int]
    ) -> bool:
        """True when every reference of the batch is NULL or points at a row written
        already: then nothing is deferred or dropped, and the rows go in as they are."""
        for fk in live:
            if fk.edge.parent == spec.name:
                return False  # the keys it needs grow row by row
            known = self.keys[(fk.edge.parent, fk.edge.parent_cols)]
            refs = set(zip(*[columns[index[c]] for c in fk.edge.child_cols], strict=True))
            refs = {r for r in refs if None not in r}
            if not refs <= known:
                return False
        return True

    def _check_references(
        self,
        spec: TableSpec,
        plan: TablePlan,
        live: list[ForeignKey],
        rows: Sequence[Sequence[Any]],
        index: dict[str, int],
    ) -> list[list[Any]]:
        """Row by row: a reference to a row not written yet is inserted as NULL and set by
        an UPDATE at the end (deferred), or its foreign key is left out of the dump."""
        pk_idx = [index[c] for c in spec.primary_key]
        own_keys = [(cols, self.keys[(spec.name, cols)]) for (t, cols) in self.keys if t == spec.name]
        out = []
        for row in rows:
            values = list(row)
            for fk in live:
                ref = tuple(values[index[c]] for c in fk.edge.child_cols)
                if any(v is None for v in ref):
                    continue
                known = self.keys[(fk.edge.parent, fk.edge.parent_cols)]
                if ref in known:
                    continue
                if fk.deferred and fk.dropped is None:
                    pk = tuple(values[i] for i in pk_idx)
                    plan.pending.append((pk, {c: values[index[c]] for c in fk.edge.child_cols}))
                    for c in fk.edge.child_cols:
                        values[index[c]] = None
                elif not fk.deferred and fk.dropped is None:
                    none = holds_none(fk.edge, ref)
                    fk.dropped = (
                        none_reason(fk.edge) if none else "some rows reference rows that are not part of this export"
                    )
            for cols, keyset in own_keys:
                keyset.add(tuple(row[index[c]] for c in cols))
            out.append(values)
        return out

    def _inserts(self, native: Any, spec: TableSpec, plan: TablePlan, columns: list[Sequence[Any]]) -> bytes | None:
        """The batch's INSERT statements by ``native.sql_inserts`` (as ``_write_statements``
        writes them); ``None`` when text in it cannot be encoded (the caller redoes the
        batch, replacing and noting lone surrogates).  JSON and boolean columns, and any
        column C hands back, get their literals from ``Literals.literal_column``."""
        literal_column = self.lit.literal_column
        python = {i for i, col in enumerate(plan.columns) if col.render in ("json", "bool")} | plan.python_columns

        def convert(values: Sequence[Any], i: int) -> Sequence[Any]:
            return literal_column(values, plan.columns[i], spec.name)

        def inserts(columns: list[Sequence[Any]], verbatim: list[bool]) -> bytes | int:
            return native.sql_inserts(
                columns, verbatim, NATIVE_DIALECTS[self.dialect], self._head(spec), INSERT_ROWS, INSERT_BYTES
            )

        return native_batch(self.values, columns, python, plan.python_columns, convert, inserts)

    def _head(self, spec: TableSpec) -> str:
        cols = ", ".join(self.quote(c) for c in spec.column_names)
        return f"INSERT INTO {self.quote(spec.name)} ({cols}) VALUES\n"

    def _write_statements(self, spec: TableSpec, tuples: list[str]) -> None:
        """Multi-row INSERTs of at most INSERT_ROWS rows or about INSERT_BYTES each."""
        assert self.body is not None
        head = self._head(spec)
        parts: list[str] = []
        start, size = 0, 0
        for i, tup in enumerate(tuples):
            size += len(tup)
            if i + 1 - start >= INSERT_ROWS or size >= INSERT_BYTES:
                parts.append(head + ",\n".join(tuples[start : i + 1]) + ";\n")
                start, size = i + 1, 0
        if start < len(tuples):
            parts.append(head + ",\n".join(tuples[start:]) + ";\n")
        self.body.write("".join(parts).encode("utf-8"))

    def end_table(self, spec: TableSpec, rows: int) -> None:
        self.values.report(self.job)

    # -- a table in key ranges -------------------------------------------------------

    def can_split(self, spec: TableSpec) -> bool:
        """A table can be written in ranges when no reference of its rows waits for a later
        row (deferred) and no table references it (its keys would have to be collected)."""
        if any(fk.deferred for fk in self.plans[spec.name].fks):
            return False
        return not any(table == spec.name for table, _cols in self.keys)

    def _part_path(self, part: int) -> str:
        return f"{self.body_path}{part}"

    def start_part(self, spec: TableSpec, part: int) -> None:
        self.body = self.job.open_file(self._part_path(part), "wb", buffering=1 << 20)
        self.rows[spec.name] = 0
        self.part_refs = [set() for _ in self.plans[spec.name].fks]

    def end_part(self, spec: TableSpec, part: int, rows: int) -> dict[str, Any]:
        assert self.body is not None and self.part_refs is not None
        self.body.close()
        self.body = None
        changes, self.values.changes = self.values.changes, Counter()
        return {"path": self._part_path(part), "changes": changes, "rows": self.rows[spec.name], "refs": self.part_refs}

    def join_part(self, spec: TableSpec, part: int, output: dict[str, Any]) -> None:
        """The range's INSERTs after this process's own; its references checked against the
        keys written (as ``write_columns`` does: a foreign key with a reference to a row not
        in the dump is left out)."""
        assert self.body is not None
        append_file(self.job.path(output["path"]), self.body)
        self.rows[spec.name] += output["rows"]
        self.values.changes.update(output["changes"])
        for fk, refs in zip(self.plans[spec.name].fks, output["refs"], strict=True):
            unknown = refs - self.keys[(fk.edge.parent, fk.edge.parent_cols)]
            if fk.dropped is None and unknown:
                none = all(holds_none(fk.edge, r) for r in unknown)
                fk.dropped = (
                    none_reason(fk.edge) if none else "some rows reference rows that are not part of this export"
                )

    def abort_part(self, spec: TableSpec, part: int) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None
        self.job.path(self._part_path(part)).unlink(missing_ok=True)

    # -- assembling the file ----------------------------------------------------

    def _header(self, out: IO[str]) -> None:
        job = self.job

        def clean(s: str) -> str:
            return " ".join(printable(s).split())

        total = sum(self.rows.values())
        out.write("-- learnexit SQL dump\n")
        out.write(f"-- customer: {clean(job.customer)} ({clean(job.customer_name)})\n")
        out.write(f"-- generated: {generated_at(job)}\n")
        out.write(f"-- dialect: {self.dialect}{' (MySQL and MariaDB)' if self.dialect == 'mysql' else ''}\n")
        out.write(f"-- tables: {len(self.plans)}, rows: {total}\n")
        out.write("-- Load it into an EMPTY database, for example:\n")
        out.write(f"--   {LOAD_HINTS[self.dialect].format(file=self.path.rsplit('/', 1)[1])}\n")
        out.write("-- The rows are loaded in one transaction.\n\n")
        if self.dialect == "sqlite":
            out.write("PRAGMA foreign_keys = ON;\n")
            out.write("BEGIN TRANSACTION;\n\n")
        elif self.dialect == "postgresql":
            out.write("SET client_encoding = 'UTF8';\n")
            out.write("SET standard_conforming_strings = on;\n")
            out.write("SET TIME ZONE 'UTC';\n")
            out.write("BEGIN;\n\n")
        else:
            out.write("SET NAMES utf8mb4;\n")
            # Backslash escapes on (no NO_BACKSLASH_ESCAPES), explicit ids kept even when 0,
            # strict: a value that does not fit is an error, never silently changed.
            out.write("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION';\n")
            out.write("SET time_zone = '+00:00';\n\n")

    def close(self) -> None:
        if self.body is None:  # no table at all
            self.body = self.job.open_file(self.body_path, "wb")
        self.body.close()
        self.schema.check_pending(self.keys)
        md, inline, later = self.schema.metadata()
        body = self.job.path(self.body_path)
        with self.job.open_file(self.path, "w", newline="\n") as out:
            self._header(out)
            for name in self.plans:
                table = md.tables[name]
                ddl = CreateTable(table, include_foreign_key_constraints=inline[name])
                out.write(str(ddl.compile(dialect=self.sa_dialect)).strip() + ";\n\n")
            for con in later:
                out.write(str(AddConstraint(con).compile(dialect=self.sa_dialect)).strip() + ";\n\n")
            if self.dialect == "mysql":
                out.write("START TRANSACTION;\n\n")
            out.flush()  # the INSERTs are UTF-8 bytes already: copied as they are (in the kernel)
            append_file(body, out.buffer)  # type: ignore[attr-defined]
            self.schema.updates(out, self.quote, self.lit)
            if self.dialect == "postgresql":
                self.schema.sequences(out, md, self.quote)
            out.write("\nCOMMIT;\n")
        self.body = None
        self.values.report(self.job)

    def abort(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None
        self.job.path(self.body_path).unlink(missing_ok=True)


KeySet = set[tuple[Any, ...]]


def direct_references(
    spec: TableSpec, plan: TablePlan, keys: dict[tuple[str, tuple[str, ...]], KeySet], part_refs: list[KeySet] | None
) -> tuple[tuple[int, KeySet | None, KeySet | None], ...] | None:
    """What C checks of a table's references when it writes the rows itself (see
    ``speedups.Reference``): in a worker's range, every foreign key's values collected
    (``part_refs``); otherwise each live one checked against the keys written, so that a
    batch holding a reference not written yet is left to the batches (deferred there, or
    its foreign key dropped).  None when C cannot: a later table needs this one's keys,
    a reference of several columns or into the table itself."""
    if any(table == spec.name for table, _cols in keys):
        return None
    checks: list[tuple[ForeignKey, KeySet | None, KeySet | None]]
    if part_refs is not None:
        checks = [(fk, None, seen) for fk, seen in zip(plan.fks, part_refs, strict=True)]
    else:
        live = [fk for fk in plan.fks if fk.dropped is None]
        checks = [(fk, keys[(fk.edge.parent, fk.edge.parent_cols)], None) for fk in live]
    if any(len(fk.edge.child_cols) != 1 or fk.edge.parent == spec.name for fk, _, _ in checks):
        return None
    index = {c: i for i, c in enumerate(spec.column_names)}
    return tuple((index[fk.edge.child_cols[0]], known, seen) for fk, known, seen in checks)


@register
class SqlExporter(Exporter):
    name = "sql"
    description = "an SQL script (CREATE TABLE + INSERT) for SQLite, PostgreSQL or MySQL/MariaDB"
    folder = FOLDER

    def describe(self, job: ExportJob) -> str:
        """The dump's actual dialect, and how to load it."""
        dialect = job.options.sql_dialect
        if dialect not in DIALECT_NAMES:
            return self.description
        hint = LOAD_HINTS[dialect].format(file=dump_path(job.customer))
        return f"an SQL script (CREATE TABLE + INSERT) for {DIALECT_NAMES[dialect]}; load it with: {hint}"

    def writer(self, job: ExportJob) -> TableWriter:
        if job.options.sql_dialect not in DIALECTS:
            raise ValueError(f"unknown SQL dialect {job.options.sql_dialect!r}")
        return SqlWriter(job)

    def splits(self, job: ExportJob, spec: TableSpec) -> bool:
        return job.options.sql_dialect in DIALECTS and SqlWriter(job).can_split(spec)
