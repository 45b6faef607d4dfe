"""Deleting parent rows on SQLite with the foreign keys checked once per referencing
table instead of once per deleted row.

With foreign keys enforced, SQLite checks every deleted row of a parent table against
each table that references it: where the referencing columns have no index, that is a
scan of the referencing table per deleted row.  Deleting the 58 people of the 1M example
scanned the 400,000 rows left in its activity log 58 times (1.1 s; the courses, 8 times).

``ParentDeletes`` lets such a delete run with enforcement off, in a transaction that
checks, before it commits, every table whose foreign keys name the parent: ``PRAGMA
foreign_key_check`` (the engine's own check, a scan of each such table).  A row left
naming a deleted row makes the caller roll the transaction back and delete the same rows
again with enforcement on, which then fails or cascades exactly as it always did.  So
nothing is committed that the per-row checks would have refused.  Enforcement is
switched off only outside a transaction (SQLite ignores the pragma inside one) and
switched on again before the connection goes back to the pool; a connection where that
fails is discarded.

It is used only where it pays: the per-row checks cost the deleted rows times the rows
of the referencing tables without an index on their columns; the single check costs the
rows of every referencing table once (``worth_it``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

__all__ = ["ParentDeletes", "Reference"]

# The per-row checks are replaced only where they cost more than this many times the single check.
_MARGIN = 2


@dataclass(frozen=True)
class Reference:
    """A foreign key of ``child`` (columns ``columns``) naming the parent table;
    ``indexed``: an index of ``child`` starts with those columns."""

    child: str
    columns: tuple[str, ...]
    indexed: bool


class ParentDeletes:
    """Checked deletes of parent rows on one SQLite engine (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._references: dict[str, list[Reference]] | None = None
        self._refused: set[str] = set()  # parents whose check once found a row left naming them

    def references(self, conn: Connection, parent: str) -> list[Reference]:
        """Every foreign key in the database that names ``parent``, read from SQLite's own
        catalogue once, with its index (to weigh a delete: ``worth_it``)."""
        if self._references is None:
            found: dict[str, list[Reference]] = {}
            keys = _foreign_keys(conn)
            indexes = _index_prefixes(conn, sorted({child for child, _ in keys}))
            for (child, _fk_id), (target, columns) in keys.items():
                wanted = tuple(sorted(c.lower() for c in columns))
                indexed = wanted in _prefixes(indexes.get(child, []), len(wanted))
                found.setdefault(target.lower(), []).append(Reference(child, tuple(columns), indexed))
            self._references = found
        return self._references.get(parent.lower(), [])

    def scanned_per_row(self, conn: Connection, parent: str) -> bool:
        """Some table referencing ``parent`` has no index for it (SQLite scans it for
        every deleted row of ``parent``), and no check here has sent ``parent`` back."""
        if parent.lower() in self._refused:
            return False
        return any(not r.indexed for r in self.references(conn, parent))

    def worth_it(self, conn: Connection, parent: str, rows: int) -> bool:
        """Deleting ``rows`` rows of ``parent`` costs less with one check per referencing
        table than with SQLite's checks per deleted row (rows counted now)."""
        if rows < 2 or not self.scanned_per_row(conn, parent):
            return False
        refs = self.references(conn, parent)
        q = conn.dialect.identifier_preparer.quote
        counts = {
            c: int(conn.exec_driver_sql(f"SELECT count(*) FROM {q(c)}").scalar() or 0) for c in {r.child for r in refs}
        }
        per_row = rows * sum(counts[r.child] for r in refs if not r.indexed)
        checked = sum(counts[r.child] for r in refs)
        return per_row > _MARGIN * checked

    @contextmanager
    def unenforced(self) -> Iterator[Connection]:
        """A connection in a transaction with foreign keys not enforced; on leaving,
        committed (rolled back on an exception) and enforcing again, or discarded.  The
        caller runs ``left_naming`` before leaving."""
        conn = self.engine.connect()
        try:
            raw = conn.connection.dbapi_connection
            if raw is not None and not raw.in_transaction:  # (inside one the pragma does nothing)
                raw.execute("PRAGMA foreign_keys = OFF")
            try:
                with conn.begin():
                    yield conn
            finally:
                _enforce(conn)
        finally:
            conn.close()

    def left_naming(self, conn: Connection, parent: str) -> bool:
        """Some row of a table referencing ``parent`` names a ``parent`` row that is not
        there (after deleting some, in ``conn``'s transaction), or SQLite cannot check such
        a table: then the caller rolls back and deletes with foreign keys enforced (and
        ``parent`` is not checked this way again in this run)."""
        q = conn.dialect.identifier_preparer.quote
        # (the catalogue read again, in this transaction: a table added since the purge
        # began is checked too, and none can be added before this transaction ends)
        children = {
            child for (child, _), (target, _) in _foreign_keys(conn).items() if target.lower() == parent.lower()
        }
        for child in sorted(children):
            try:
                named = [str(row[2]).lower() for row in conn.exec_driver_sql(f"PRAGMA foreign_key_check({q(child)})")]
            except sa.exc.DBAPIError:
                # (say "foreign key mismatch": another key of ``child`` names columns
                # without a unique index; SQLite's per-row checks never look at that key)
                named = [parent.lower()]
            if parent.lower() in named:
                self._refused.add(parent.lower())
                return True
        return False


def _enforce(conn: Connection) -> None:
    """Foreign keys enforced again on ``conn``'s connection, or the connection discarded."""
    if conn.invalidated:
        return
    try:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys = ON")
        enforced = raw.execute("PRAGMA foreign_keys").fetchone() == (1,)
    except Exception:  # (any failure: the connection must not be used again)
        enforced = False
    if not enforced:
        conn.invalidate()


def _foreign_keys(conn: Connection) -> dict[tuple[str, int], tuple[str, list[str]]]:
    """Every foreign key of the main database: (table, key id) -> (parent, columns)."""
    rows = conn.exec_driver_sql(
        'SELECT m.name, f.id, f.seq, f."table", f."from" FROM sqlite_master AS m '
        "JOIN pragma_foreign_key_list(m.name) AS f WHERE m.type = 'table' ORDER BY m.name, f.id, f.seq"
    ).all()
    keys: dict[tuple[str, int], tuple[str, list[str]]] = {}
    for child, fk_id, _seq, target, column in rows:
        keys.setdefault((str(child), int(fk_id)), (str(target), []))[1].append(str(column))
    return keys


def _index_prefixes(conn: Connection, tables: list[str]) -> dict[str, list[list[str]]]:
    """Each table's indexes as their column lists, in index order."""
    out: dict[str, list[list[str]]] = {}
    for table in tables:
        for index in conn.exec_driver_sql("SELECT name FROM pragma_index_list(?)", (table,)).scalars().all():
            cols = (
                conn.exec_driver_sql("SELECT name FROM pragma_index_info(?) ORDER BY seqno", (str(index),))
                .scalars()
                .all()
            )
            out.setdefault(table, []).append([str(c) for c in cols if c is not None])
    return out


def _prefixes(indexes: list[list[str]], n: int) -> list[tuple[str, ...]]:
    """The first ``n`` columns of each index, sorted (SQLite uses an index whose leading
    columns are the foreign key's, in any order)."""
    return [tuple(sorted(c.lower() for c in cols[:n])) for cols in indexes if len(cols) >= n]
