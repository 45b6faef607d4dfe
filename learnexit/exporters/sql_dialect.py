"""SQL dialects for the SQL dump: which ones, their names and load hints, the checks of
MySQL's names, each source column's target type (``target_column``) and the SQL literal
of each value (``Literals``).  The dump itself is written by ``sql_format``."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from ..errors import BadInput, printable
from .values import Sanitiser, decimal_text, duration_text, significant_digits, text


class _Dialects:
    """``sqlalchemy.dialects.<name>``, imported on first use (most exports need one)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(f"sqlalchemy.dialects.{self._name}"), attr)


mysql: Any = _Dialects("mysql")
postgresql: Any = _Dialects("postgresql")
sqlite: Any = _Dialects("sqlite")

MYSQL_ROW_BYTES = 60_000  # InnoDB's row limit is 65,535 bytes of VARCHAR
MYSQL_KEY_BYTES = 3072  # InnoDB's index key limit (utf8mb4: 4 bytes per character)
MYSQL_VARCHAR_MAX = 2000  # longer VARCHARs become LONGTEXT
DIALECTS = ("sqlite", "postgresql", "mysql")
_EPOCH = dt.datetime(1970, 1, 1)
_MYSQL_ESCAPES = str.maketrans({"\\": "\\\\", "'": "''", "\x00": "\\0", "\r": "\\r", "\x1a": "\\Z"})
_SQLITE_SPLICE = re.compile("([\x00\r])")
NATIVE_DIALECTS = {"sqlite": 0, "postgresql": 1, "mysql": 2}  # the dialect codes of _speedups.sql_inserts

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


def mysql_fk_name(table: str, index: int, count: int) -> str | None:
    """A name for a foreign key where MySQL's own (``<table>_ibfk_<n>``) would be too long."""
    if len(table) + len(f"_ibfk_{count}") <= MYSQL_NAME_CHARS:
        return None
    return f"learnexit_fk_{index}"


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


def mysql_fit_rows(columns: list[TargetColumn], keys: set[str]) -> list[TargetColumn]:
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
