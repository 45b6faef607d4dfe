"""SQLite reflection in a few statements instead of a dozen per table.

SQLAlchemy reflects a SQLite table through PRAGMA statements run one table (and one
index) at a time — ``table_xinfo``, ``foreign_key_list``, ``index_list``, ``index_info``,
each tried on ``main`` and then on ``temp`` when it finds nothing — and the table's
``CREATE`` statement from ``sqlite_master``: about twelve statements per table, 5,800 for
a 484-table Moodle site, where SQLAlchemy's own work per statement is most of the time.

``prefetched`` reads the same rows for every table at once, through SQLite's
table-valued pragma functions (``pragma_table_xinfo(name)`` …), and answers
SQLAlchemy's per-table requests from them while ``MetaData.reflect`` runs; SQLAlchemy
still turns the rows into columns, keys and indexes itself, so the reflected schema is
the same (``tests/test_sqlite_reflection.py`` compares both on awkward schemas).  A
request for anything it did not read (another schema, a name not in ``sqlite_master``)
goes to SQLAlchemy as before.  It is used only where its answers are certain to be the
same: the ``main`` schema, no temporary tables on the connection, and a SQLite with the
pragma functions (3.26 or later); anything else reflects as SQLAlchemy does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["prefetched"]

# (pragma, statement): the rows each pragma gives per table, the table's name first.
_PER_TABLE = (
    ("table_xinfo", "SELECT m.name, p.* FROM main.sqlite_master AS m JOIN pragma_table_xinfo(m.name, 'main') AS p"),
    (
        "foreign_key_list",
        "SELECT m.name, p.* FROM main.sqlite_master AS m JOIN pragma_foreign_key_list(m.name, 'main') AS p",
    ),
    ("index_list", "SELECT m.name, p.* FROM main.sqlite_master AS m JOIN pragma_index_list(m.name, 'main') AS p"),
)
_INDEX_INFO = (
    "SELECT i.name, p.* FROM main.sqlite_master AS m JOIN pragma_index_list(m.name, 'main') AS i"
    " JOIN pragma_index_info(i.name, 'main') AS p WHERE m.type = 'table' ORDER BY i.name, p.seqno"
)
_HIDDEN = 6  # table_xinfo's "hidden" column: 0 for a plain column


class _Pragmas:
    """Every table's pragma rows and CREATE statement, read in a few statements."""

    def __init__(self, conn: Connection) -> None:
        self.tables: dict[str, str | None] = {
            name: sql
            for name, sql in conn.exec_driver_sql(
                "SELECT name, sql FROM main.sqlite_master WHERE type IN ('table', 'view')"
            )
        }
        self.rows: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
        for pragma, select in _PER_TABLE:
            # (in the pragma's own row order: SQLite gives it per table, as the PRAGMA does)
            self.rows[pragma] = self._grouped(conn, f"{select} WHERE m.type = 'table'")
        self.rows["index_info"] = self._grouped(conn, _INDEX_INFO)
        self.indexes = {row[1] for rows in self.rows["index_list"].values() for row in rows}

    @staticmethod
    def _grouped(conn: Connection, select: str) -> dict[str, list[tuple[Any, ...]]]:
        out: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for row in conn.exec_driver_sql(select):
            out[row[0]].append(tuple(row[1:]))
        return out

    def pragma(self, pragma: str, name: str) -> list[tuple[Any, ...]] | None:
        """What ``PRAGMA main.<pragma>(<name>)`` gives, or None when not read here."""
        if pragma == "index_info":
            return self.rows["index_info"].get(name, []) if name in self.indexes else None
        if name not in self.tables or self.tables[name] is None:
            return None
        if pragma == "table_info":  # (table_xinfo without the hidden column, where none is hidden)
            rows = self.rows["table_xinfo"].get(name, [])
            if any(row[_HIDDEN] for row in rows):
                return None
            return [row[:_HIDDEN] for row in rows]
        if pragma not in self.rows:
            return None
        return self.rows[pragma].get(name, [])


def _usable(conn: Connection, schema: str | None) -> bool:
    if conn.dialect.name != "sqlite" or schema not in (None, "main"):
        return False
    if not hasattr(conn.dialect, "_get_table_pragma") or not hasattr(conn.dialect, "_get_table_sql"):
        return False  # (a SQLAlchemy that reflects SQLite differently: leave it alone)
    if sa.__version__.split(".")[0] != "2":
        return False
    try:
        return conn.exec_driver_sql("SELECT count(*) FROM temp.sqlite_master").scalar() == 0
    except sa.exc.DBAPIError:
        return False


@contextmanager
def prefetched(conn: Connection, schema: str | None) -> Iterator[None]:
    """While the block reflects the SQLite database of ``conn`` (``schema``: None or
    "main"), SQLAlchemy's per-table PRAGMA and ``sqlite_master`` lookups are answered from
    rows read here in five statements.  Elsewhere (another engine, another schema,
    temporary tables, an old SQLite) the block runs as it would without it.  Not for a
    dialect shared with other threads while the block runs."""
    pragmas: _Pragmas | None = None
    if _usable(conn, schema):
        try:
            pragmas = _Pragmas(conn)
        except sa.exc.DBAPIError:  # (no table-valued pragma functions: SQLite before 3.26)
            pragmas = None
    if pragmas is None:
        yield
        return
    dialect: Any = conn.dialect
    own_pragma, own_sql = dialect._get_table_pragma, dialect._get_table_sql

    def table_pragma(connection: Any, pragma: str, table_name: str, schema: str | None = None) -> Any:
        rows = pragmas.pragma(pragma, table_name) if schema is None else None
        return own_pragma(connection, pragma, table_name, schema=schema) if rows is None else rows

    def table_sql(connection: Any, table_name: str, schema: str | None = None, **kw: Any) -> Any:
        sql = pragmas.tables.get(table_name) if schema is None else None
        return own_sql(connection, table_name, schema=schema, **kw) if sql is None else sql

    dialect._get_table_pragma, dialect._get_table_sql = table_pragma, table_sql
    try:
        yield
    finally:
        del dialect._get_table_pragma, dialect._get_table_sql
