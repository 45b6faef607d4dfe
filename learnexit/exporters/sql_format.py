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

import datetime as dt
import importlib
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import AddConstraint, CreateTable

from ..errors import BadInput, printable
from ..none_values import holds_none, none_wording
from ..source import Edge
from . import speedups
from .base import Exporter, ExportJob, TableSpec, TableWriter, append_file, register
from .json_format import generated_at
from .speedups import native_batch
from .values import Sanitiser, decimal_text, duration_text, file_stem, significant_digits, text


class _Dialects:
    """``sqlalchemy.dialects.<name>``, imported on first use (most exports need one)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(f"sqlalchemy.dialects.{self._name}"), attr)


mysql: Any = _Dialects("mysql")
postgresql: Any = _Dialects("postgresql")
sqlite: Any = _Dialects("sqlite")

FOLDER = "sql"
INSERT_ROWS = 500
INSERT_BYTES = 1_000_000
MYSQL_ROW_BYTES = 60_000  # InnoDB's row limit is 65,535 bytes of VARCHAR
MYSQL_KEY_BYTES = 3072  # InnoDB's index key limit (utf8mb4: 4 bytes per character)
MYSQL_VARCHAR_MAX = 2000  # longer VARCHARs become LONGTEXT
DIALECTS = ("sqlite", "postgresql", "mysql")
_EPOCH = dt.datetime(1970, 1, 1)
_MYSQL_ESCAPES = str.maketrans({"\\": "\\\\", "'": "''", "\x00": "\\0", "\r": "\\r", "\x1a": "\\Z"})
_SQLITE_SPLICE = re.compile("([\x00\r])")
_NATIVE_DIALECTS = {"sqlite": 0, "postgresql": 1, "mysql": 2}  # the dialect codes of _speedups.sql_inserts

DIALECT_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MySQL and MariaDB"}
LOAD_HINTS = {
    "sqlite": "sqlite3 NEW.db < {file}",
    "postgresql": "psql -v ON_ERROR_STOP=1 -d NEWDB -f {file}",
    "mysql": "mysql --default-character-set=utf8mb4 NEWDB < {file}",
}


# --------------------------------------------------------------------------- MySQL names

MYSQL_NAME_CHARS = 64  # tables, columns and constraint names: characters, not bytes
_MYSQL_TRAILING = " \t\n\r\x0b\x0c"  # MySQL and MariaDB refuse a name ending in one


def mysql_name_problem(name: str) -> str | None:
    """Why MySQL/MariaDB cannot hold ``name`` as a table or column name (``None``: it can)."""
    if not name:
        return "is empty"
    if len(name) > MYSQL_NAME_CHARS:
        return f"is longer than {MYSQL_NAME_CHARS} characters ({len(name)})"
    if "\x00" in name:
        return "contains a NUL character"
    if any(ord(ch) > 0xFFFF for ch in name):
        return "has a character outside the Basic Multilingual Plane (an emoji?)"
    if name[-1] in _MYSQL_TRAILING:
        return "ends with a space or a line break"
    return None


def _shown(name: str) -> str:
    text = printable(name)
    return "'" + (text if len(text) <= 70 else text[:69] + "…") + "'"


def check_mysql_names(tables: Sequence[tuple[str, Sequence[str]]]) -> None:
    """Refuse (BadInput, exit 2) a source whose table or column names a MySQL/MariaDB
    dump could not create, naming them (control characters escaped): checked before the
    export writes anything, so there is never a dump that fails to load.  Column names
    are also compared as MySQL does, without regard to case."""
    found: list[str] = []
    for table, columns in tables:
        why = mysql_name_problem(table)
        if why:
            found.append(f"table {_shown(table)} {why}")
        seen: dict[str, str] = {}
        for column in columns:
            why = mysql_name_problem(column)
            if why:
                found.append(f"column {_shown(table)}.{_shown(column)} {why}")
            other = seen.setdefault(column.lower(), column)
            if other != column:
                found.append(f"columns {_shown(table)}.{_shown(other)} and {_shown(column)} differ only in case")
    if found:
        more = f"; and {len(found) - 3} more" if len(found) > 3 else ""
        raise BadInput(
            f"--sql-dialect mysql: MySQL and MariaDB cannot hold {len(found)} name(s) of this source: "
            + "; ".join(found[:3])
            + more
            + " (nothing was written: export without sql, or with another --sql-dialect)"
        )


def _mysql_fk_name(table: str, index: int, count: int) -> str | None:
    """A name for a foreign key where MySQL's own (``<table>_ibfk_<n>``) would be too long."""
    if len(table) + len(f"_ibfk_{count}") <= MYSQL_NAME_CHARS:
        return None
    return f"learnexit_fk_{index}"


def dump_path(customer: str) -> str:
    return f"{FOLDER}/{file_stem(customer)}.sql"


def dialect_for(name: str) -> Dialect:
    if name == "sqlite":
        return sqlite.dialect()
    if name == "postgresql":
        return postgresql.dialect()
    if name == "mysql":
        return mysql.dialect()
    raise ValueError(f"unknown SQL dialect {name!r} (known: {', '.join(DIALECTS)})")


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class TargetColumn:
    name: str
    type: sa.types.TypeEngine[Any]
    render: str  # int float decimal bool text bytes datetime date time interval json uuid
    nullable: bool
    primary_key: bool


def _generic(t: sa.types.TypeEngine[Any]) -> sa.types.TypeEngine[Any]:
    try:
        return t.as_generic()
    except NotImplementedError:
        try:
            py = t.python_type
        except NotImplementedError:
            return sa.Text()
        by_type: dict[type, sa.types.TypeEngine[Any]] = {
            int: sa.BigInteger(),
            float: sa.Double(),
            Decimal: sa.Numeric(),
            bool: sa.Boolean(),
            dt.datetime: sa.DateTime(),
            dt.date: sa.Date(),
            dt.time: sa.Time(),
            bytes: sa.LargeBinary(),
        }
        return by_type.get(py, sa.Text())


def target_column(col: sa.Column[Any], dialect: str) -> TargetColumn:
    """The column as the dump declares it for ``dialect``, and how its values are written."""
    g = _generic(col.type)
    my = dialect == "mysql"
    render = "text"
    new: sa.types.TypeEngine[Any]
    if isinstance(g, sa.Boolean):
        new, render = sa.Boolean(), "bool"
    elif isinstance(g, sa.Enum):
        longest = max((len(e) for e in g.enums), default=1)
        new = sa.String(max(longest, 1))
    elif isinstance(g, sa.Integer):
        new, render = type(g)(), "int"
    elif isinstance(g, sa.Float):  # Double too
        new, render = (mysql.DOUBLE() if my else sa.Double()), "float"
    elif isinstance(g, sa.Numeric):
        render = "decimal"
        if g.precision is None:
            new = sa.Numeric(65, 30) if my else sa.Numeric()
        else:
            new = sa.Numeric(min(g.precision, 65) if my else g.precision, g.scale)
    elif isinstance(g, sa.DateTime):
        new, render = (mysql.DATETIME(fsp=6) if my else sa.DateTime(timezone=bool(g.timezone))), "datetime"
    elif isinstance(g, sa.Date):
        new, render = sa.Date(), "date"
    elif isinstance(g, sa.Time):
        new, render = (mysql.TIME(fsp=6) if my else sa.Time(timezone=bool(g.timezone))), "time"
    elif isinstance(g, sa.Interval):
        new, render = (postgresql.INTERVAL() if dialect == "postgresql" else sa.Interval()), "interval"
    elif isinstance(g, sa.LargeBinary):
        new, render = (mysql.LONGBLOB() if my else sa.LargeBinary()), "bytes"
    elif isinstance(g, sa.JSON):
        new, render = sa.JSON(), "json"
    elif isinstance(g, sa.Uuid):
        new, render = sa.Uuid(), "uuid"
    elif isinstance(g, sa.String) and not isinstance(g, sa.Text) and g.length:
        new = sa.String(g.length)
        if my and g.length > MYSQL_VARCHAR_MAX:
            new = mysql.LONGTEXT()
    else:
        new = mysql.LONGTEXT() if my else sa.Text()
    try:
        new.compile(dialect=dialect_for(dialect))
    except Exception:  # noqa: BLE001 - a type the target cannot declare: keep the text form
        new, render = (mysql.LONGTEXT() if my else sa.Text()), "text"
    return TargetColumn(col.name, new, render, bool(col.nullable) and not col.primary_key, bool(col.primary_key))


def _mysql_fit_rows(columns: list[TargetColumn], keys: set[str]) -> list[TargetColumn]:
    """Turn the longest VARCHARs into LONGTEXT until the row fits InnoDB's limit."""

    def width(c: TargetColumn) -> int:
        t = c.type
        return 4 * t.length if isinstance(t, sa.String) and not isinstance(t, sa.Text) and t.length else 0

    cols = list(columns)
    while sum(width(c) for c in cols) > MYSQL_ROW_BYTES:
        candidates = [c for c in cols if width(c) and c.name not in keys]
        if not candidates:
            break
        widest = max(candidates, key=width)
        cols[cols.index(widest)] = TargetColumn(
            widest.name, mysql.LONGTEXT(), widest.render, widest.nullable, widest.primary_key
        )
    return cols


# --------------------------------------------------------------------------- values


class Literals:
    """SQL literals for one dialect."""

    def __init__(self, dialect: str, values: Sanitiser) -> None:
        self.dialect = dialect
        self.values = values

    def string(self, s: str, table: str, column: str) -> str:
        """A string literal.  Carriage returns are never written raw: the sqlite3 shell
        drops a CR before a line break, so a value's CRLF would silently become LF."""
        d = self.dialect
        s = self.values.encodable(s, table, column)
        if d == "postgresql":
            if "\x00" in s:
                self.values.changed(table, column, "contained NUL characters PostgreSQL cannot store: removed")
                s = s.replace("\x00", "")
            if "\r" in s:  # an escape string: backslashes escaped, CR as \r
                return "E'" + s.replace("\\", "\\\\").replace("'", "''").replace("\r", "\\r") + "'"
            return "'" + s.replace("'", "''") + "'"
        if d == "mysql":  # the dump's sql_mode keeps backslash escapes on
            return "'" + s.translate(_MYSQL_ESCAPES) + "'"
        if "\x00" in s or "\r" in s:  # SQLite has no escapes: splice the characters in
            parts = _SQLITE_SPLICE.split(s)
            return " || ".join(
                f"char({ord(p)})" if i % 2 else "'" + p.replace("'", "''") + "'" for i, p in enumerate(parts)
            )
        return "'" + s.replace("'", "''") + "'"

    def literal(self, value: Any, col: TargetColumn, table: str) -> str:
        if value is None:
            return "NULL"
        r, d = col.render, self.dialect
        if r == "json":
            return self.string(json.dumps(value, ensure_ascii=False, default=text), table, col.name)
        if isinstance(value, str):
            if r == "bool" and d == "postgresql":
                return self.string(value, table, col.name) + "::boolean"
            return self.string(value, table, col.name)
        if r == "bool" and isinstance(value, (bool, int)):
            if d == "postgresql":
                return "TRUE" if value else "FALSE"
            return "1" if value else "0"
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return self.float(value, table, col.name)
        if isinstance(value, Decimal):
            return self.decimal(value, table, col.name)
        if isinstance(value, (bytes, bytearray, memoryview)):
            h = bytes(value).hex()
            return f"'\\x{h}'::bytea" if d == "postgresql" else f"X'{h}'"
        if isinstance(value, dt.datetime):
            return self.datetime(value, table, col.name)
        if isinstance(value, dt.date):
            return f"'{value.isoformat()}'"
        if isinstance(value, dt.time):
            if d == "sqlite":
                return f"'{value.strftime('%H:%M:%S.%f')}'"
            return f"'{value.isoformat()}'"
        if isinstance(value, dt.timedelta):
            if d == "postgresql":
                return f"'{duration_text(value)}'"
            return self.datetime(_EPOCH + value, table, col.name)  # SQLAlchemy's Interval elsewhere
        if isinstance(value, UUID):
            return f"'{value}'" if d == "postgresql" else f"'{value.hex}'"
        return self.string(text(value) or "", table, col.name)

    def literal_column(self, values: Sequence[Any], col: TargetColumn, table: str) -> list[str]:
        """``literal`` of every value of one column of a batch; the common cases (integers,
        text without CR or NUL, naive datetimes, dates) a whole column at a time."""
        kinds = set(map(type, values))
        kinds.discard(type(None))
        r, d = col.render, self.dialect
        if len(kinds) == 1 and r not in ("json", "bool"):
            kind = next(iter(kinds))
            if kind is int:
                return ["NULL" if v is None else str(v) for v in values]
            if kind is str:
                if d == "mysql":
                    return ["NULL" if v is None else "'" + v.translate(_MYSQL_ESCAPES) + "'" for v in values]
                joined = "".join(filter(None, values))
                if "\r" not in joined and "\x00" not in joined:  # (lone surrogates: the caller's)
                    return ["NULL" if v is None else "'" + v.replace("'", "''") + "'" for v in values]
            elif kind is dt.datetime:
                if all(v.tzinfo is None for v in values if v is not None):
                    if d == "sqlite":  # SQLAlchemy's storage format, microseconds always written
                        return ["NULL" if v is None else f"'{v.isoformat(' ', 'microseconds')}'" for v in values]
                    return ["NULL" if v is None else f"'{v.isoformat(' ')}'" for v in values]
            elif kind is dt.date:
                return ["NULL" if v is None else f"'{v.isoformat()}'" for v in values]
        literal = self.literal
        return [literal(v, col, table) for v in values]

    def float(self, value: float, table: str, column: str) -> str:
        if math.isfinite(value):
            return repr(value)
        d = self.dialect
        name = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        if d == "postgresql":
            return f"'{name}'::float8"
        if d == "sqlite" and name != "NaN":
            return "9e999" if value > 0 else "-9e999"
        self.values.changed(table, column, f"{name} cannot be stored by {d}: written as NULL")
        return "NULL"

    def decimal(self, value: Decimal, table: str, column: str) -> str:
        if value.is_finite():
            plain = decimal_text(value)
            if self.dialect != "sqlite":
                return plain
            if significant_digits(value) > 15:
                self.values.changed(
                    table,
                    column,
                    "with more than 15 significant digits: SQLite keeps decimals "
                    "as binary floating point and will round them when loading",
                )
            return f"'{plain}'"
        name = decimal_text(value)
        if self.dialect == "postgresql":
            return f"'{name}'::numeric"
        self.values.changed(table, column, f"{name} cannot be stored by {self.dialect}: written as NULL")
        return "NULL"

    def datetime(self, value: dt.datetime, table: str, column: str) -> str:
        d = self.dialect
        if value.tzinfo is not None and value.utcoffset() is not None:
            if d == "postgresql":
                return f"'{value.isoformat(sep=' ')}'"
            self.values.changed(table, column, f"with a time zone written as UTC ({d} keeps no zone)")
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        value = value.replace(tzinfo=None)
        if d == "sqlite":  # SQLAlchemy's storage format: microseconds always, the year in 4 digits
            return f"'{value.isoformat(' ', 'microseconds')}'"
        return f"'{value.isoformat(sep=' ')}'"


# --------------------------------------------------------------------------- the writer


def _none_reason(edge: Edge) -> str:
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
        self.order = {t.name: i for i, t in enumerate(job.tables)}
        self.plans = {t.name: self._plan(t) for t in job.tables}
        # keys of the rows written so far, per referenced (table, columns)
        self.keys: dict[tuple[str, tuple[str, ...]], set[tuple[Any, ...]]] = {}
        for plan in self.plans.values():
            for fk in plan.fks:
                self.keys.setdefault((fk.edge.parent, fk.edge.parent_cols), set())
        self.rows: dict[str, int] = {}
        # In a worker writing one range of a table: the references its rows make, per
        # foreign key, for the export's process to check (it has written the keys).
        self.part_refs: list[set[tuple[Any, ...]]] | None = None

    def _plan(self, spec: TableSpec) -> TablePlan:
        columns = [target_column(spec.table.c[c.name], self.dialect) for c in spec.columns]
        if self.dialect == "mysql":
            keys = set(spec.primary_key) | {c for u in self._uniques(spec) for c in u}
            columns = _mysql_fit_rows(columns, keys)
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
                        _none_reason(fk.edge) if none else "some rows reference rows that are not part of this export"
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
                columns, verbatim, _NATIVE_DIALECTS[self.dialect], self._head(spec), INSERT_ROWS, INSERT_BYTES
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
                    _none_reason(fk.edge) if none else "some rows reference rows that are not part of this export"
                )

    def abort_part(self, spec: TableSpec, part: int) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None
        self.job.path(self._part_path(part)).unlink(missing_ok=True)

    # -- assembling the file ----------------------------------------------------

    def _check_pending(self) -> None:
        for plan in self.plans.values():
            for fk in plan.fks:
                if not fk.deferred or fk.dropped is not None:
                    continue
                known = self.keys[(fk.edge.parent, fk.edge.parent_cols)]
                cols = fk.edge.child_cols
                for _pk, vals in plan.pending:
                    ref = tuple(vals.get(c) for c in cols)
                    if all(c in vals for c in cols) and ref not in known:
                        none = holds_none(fk.edge, ref)
                        fk.dropped = (
                            _none_reason(fk.edge)
                            if none
                            else "some rows reference rows that are not part of this export"
                        )
                        break

    def _metadata(self) -> tuple[sa.MetaData, dict[str, list[sa.ForeignKeyConstraint]], list[sa.ForeignKeyConstraint]]:
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
                    con_name = _mysql_fk_name(name, fk_number, len(plan.fks))
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
        self._check_pending()
        md, inline, later = self._metadata()
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
            self._updates(out)
            if self.dialect == "postgresql":
                self._sequences(out, md)
            out.write("\nCOMMIT;\n")
        self.body = None
        self.values.report(self.job)

    def _updates(self, out: IO[str]) -> None:
        for name, plan in self.plans.items():
            if not plan.pending:
                continue
            spec = plan.spec
            cols = {c.name: c for c in plan.columns}
            # (a comment: a line break in the name must not end it and start a statement)
            out.write(f"\n-- {printable(name)}: references to rows inserted after the referencing row\n")
            for pk, vals in plan.pending:
                sets = ", ".join(f"{self.quote(c)} = {self.lit.literal(v, cols[c], name)}" for c, v in vals.items())
                where = " AND ".join(
                    f"{self.quote(c)} = {self.lit.literal(v, cols[c], name)}"
                    for c, v in zip(spec.primary_key, pk, strict=True)
                )
                out.write(f"UPDATE {self.quote(name)} SET {sets} WHERE {where};\n")
            plan.pending = []

    def _sequences(self, out: IO[str], md: sa.MetaData) -> None:
        """Move PostgreSQL's serial sequences past the ids the dump inserted."""
        for name in self.plans:
            col = md.tables[name].autoincrement_column
            if col is None:
                continue
            qt, qc = self.quote(name), self.quote(col.name)
            regclass = qt.replace("'", "''")
            out.write(
                f"SELECT setval(pg_get_serial_sequence('{regclass}', '{col.name.replace(chr(39), chr(39) * 2)}'), "
                f"COALESCE(MAX({qc}), 0) + 1, false) FROM {qt};\n"
            )

    def abort(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None
        self.job.path(self.body_path).unlink(missing_ok=True)


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
