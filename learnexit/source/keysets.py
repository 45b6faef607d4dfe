"""Sets of row keys held in temporary tables, filled once and read by many statements.

The ownership conditions name the key sets of parent tables ("this customer's users",
"the other customers' courses").  Inline, a set is written out again wherever it is
used, and in some reference graphs the uses multiply with every level: SQLite refuses
the statement ("too many references"), MariaDB prepares it without bound on memory.  As
a temporary table a set is computed once, and every condition that uses it stays one
level deep, however the references run.

A set is registered once (its name, its columns and the SELECT that fills it) and
filled on the connection that first runs a statement naming it, before that statement,
inside that connection's transaction: the same snapshot the statement reads.  Its
dependencies (the sets its SELECT names) are filled first, the same way.  ``refresh``
makes every set stale (the next use fills it again): a new snapshot, a new table of the
purge.  A rollback forgets what was filled on that connection (SQLite drops a table
created in a rolled-back transaction; MariaDB empties it).

A set registered with ``reuse=True`` (SQLite only) outlives its transaction while the
database stays as it was: a later transaction of the same connection reads it again
without filling it, if no other connection has committed since the fill (``PRAGMA
data_version``), this connection has changed no row outside its key sets
(``total_changes``), and the set's table still holds that fill (a generation number
written beside it in the same transaction: a rollback takes both back).  The SELECT would
give the same rows on the same data, so the set is what a fill would make.

SQLite and MariaDB hold the sets (PostgreSQL evaluates a shared subquery once per
statement and keeps them inline; its read transactions are read-only, too).  Inside a
MariaDB read snapshot, ``INSERT … SELECT`` would take shared locks on the rows it reads
and see the newest rows instead of the snapshot: there the keys are read with a plain
SELECT, spooled to a temporary file and inserted in batches, so memory stays flat.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

__all__ = ["KeySets"]

_FILLED = "learnexit_key_sets"  # Connection.info: set name -> epoch it was filled in
# Connection.info (of the DBAPI connection, kept across check-ins): set name -> (generation,
# data_version, changes) of a reusable set's fill; and the rows the fills inserted.
_REUSABLE = "learnexit_key_sets_reusable"
_FILL_CHANGES = "learnexit_key_sets_fill_changes"
_STAMPS = "le_keys_stamps"  # the temporary table of the reusable sets' generations
_READ_SNAPSHOT = "learnexit_read_snapshot"  # Connection.info: a consistent read is open
_NAME = re.compile(r"\ble_keys_\d+\b")
_SPOOL_BATCH = 5000
INLINE_ENV = "LEARNEXIT_INLINE_KEY_SETS"  # "1": conditions inline on every engine (a diagnostic)


def _sqlite_index(dialect: sa.engine.Dialect, name: str, columns: list[str]) -> str:
    """The index that lets SQLite look keys up in the set ``name`` instead of building one
    for every statement."""
    quoted = ", ".join(dialect.identifier_preparer.quote(c) for c in columns)
    return f"CREATE INDEX temp.{name}_k ON {name} ({quoted})"


class KeySets:
    """Key sets of one source engine, each in a temporary table of the connection using it."""

    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect.name
        self.metadata = sa.MetaData()
        self._fills: dict[str, tuple[sa.Table, sa.Select[Any], list[sa.Column[Any]], bool]] = {}
        self._reusable: set[str] = set()
        self._epoch = 0
        self._generation = 0
        self.reused = 0  # fills a reusable set was spared (the tests read it)
        event.listen(engine, "before_cursor_execute", self._before_cursor_execute)
        event.listen(engine, "rollback", self._forget_connection)
        event.listen(engine.pool, "reset", self._forget_record)

    @staticmethod
    def supported(engine: Engine) -> bool:
        """SQLite and MariaDB/MySQL, unless ``LEARNEXIT_INLINE_KEY_SETS=1`` (the tests
        compare both ways byte for byte)."""
        if os.environ.get(INLINE_ENV, "").strip() not in ("", "0"):
            return False
        return engine.dialect.name in ("sqlite", "mysql", "mariadb")

    def register(
        self, columns: Sequence[sa.Column[Any]], fill: sa.Select[Any], *, index: bool = True, reuse: bool = False
    ) -> sa.Select[Any]:
        """A set of keys ``fill`` selects (its columns are ``columns`` of a source table, in
        order); returns the SELECT of the set for ``IN`` conditions.  ``index=False``: no
        SQLite index on the set (one that is only ever read whole, a column at a time:
        SQLite builds its own for each ``IN``, and an index over all the columns of a
        big set costs as much to build as the set).  ``reuse=True`` (SQLite): a later
        transaction reads the set again while the database is unchanged (see the module
        docstring); only for a ``fill`` whose rows depend on nothing but the data (no
        clock, no value that changes between transactions)."""
        name = f"le_keys_{len(self._fills) + 1}"
        table = sa.Table(name, self.metadata, *[sa.Column(c.name, c.type) for c in columns])
        self._fills[name] = (table, fill, list(columns), index)
        if reuse and self.dialect == "sqlite":
            self._reusable.add(name)
        return sa.select(*table.c)

    def refresh(self) -> None:
        """Every set is stale: the next statement naming one fills it again."""
        self._epoch += 1

    def read_snapshot(self, conn: Connection, begun: bool) -> None:
        """``conn`` holds (``begun``) or no longer holds a consistent read; a new snapshot
        starts with every set stale."""
        if begun:
            self.refresh()
            conn.info[_READ_SNAPSHOT] = True
        else:
            conn.info.pop(_READ_SNAPSHOT, None)

    def script(self, dialect: sa.engine.Dialect) -> list[str]:
        """SQL that creates and fills every set registered so far, in order, with literal
        values: for another tool that runs learnexit's conditions (the bench's sqlite3)."""
        out = []
        for name, (_table, fill, columns, index) in self._fills.items():
            select = str(fill.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            out.append(f"CREATE TEMP TABLE {name} AS {' '.join(select.split())};")
            if index:
                out.append(_sqlite_index(dialect, name, [c.name for c in columns]) + ";")
        return out

    # -- filling -----------------------------------------------------------------

    def _before_cursor_execute(
        self, conn: Connection, _cursor: Any, statement: str, *_args: Any, **_kwargs: Any
    ) -> None:
        self.fill_for(conn, statement)

    def fill_for(self, conn: Connection, statement: str) -> None:
        """Fill (if stale) every set ``statement`` names, on ``conn``: what happens before
        each statement SQLAlchemy runs, for a statement run some other way (the C reader
        of ``exporters.speedups``)."""
        if "le_keys_" not in statement:
            return
        filled = conn.info.setdefault(_FILLED, {})
        for name in sorted(set(_NAME.findall(statement)), key=lambda n: int(n.rsplit("_", 1)[1])):
            if name in self._fills and filled.get(name) != self._epoch:
                filled[name] = self._epoch  # first: the fill's own statements name the set
                try:
                    if name in self._reusable and self._still_filled(conn, name):
                        self.reused += 1
                    else:
                        self._fill(conn, name)
                except BaseException:
                    filled.pop(name, None)
                    raise

    def _fill(self, conn: Connection, name: str) -> None:
        table, fill, columns, index = self._fills[name]
        shape = sa.select(*columns).where(sa.false())
        shape_sql = str(shape.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        names = [c.name for c in columns]
        if self.dialect != "sqlite":
            # TEMPORARY in both: a plain DROP/CREATE TABLE would commit the transaction.
            conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS {name}")
            conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} AS {shape_sql}")
            if conn.info.get(_READ_SNAPSHOT):
                self._fill_through_spool(conn, table, fill, names)
            else:
                conn.execute(table.insert().from_select(names, fill))
            return
        # The rows a fill inserts are changes of this connection too (``total_changes``):
        # counted apart, with those of the sets it names (filled first, inside it).
        raw = conn.connection.dbapi_connection
        before, counted = raw.total_changes, conn.info.get(_FILL_CHANGES, 0)  # type: ignore[union-attr]
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{name}")
        conn.exec_driver_sql(f"CREATE TEMP TABLE {name} AS {shape_sql}")
        conn.execute(table.insert().from_select(names, fill))
        if index:
            conn.exec_driver_sql(_sqlite_index(conn.dialect, name, names))
        if name in self._reusable:
            self._generation += 1
            conn.exec_driver_sql(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAMPS} (name TEXT PRIMARY KEY, generation INTEGER)"
            )
            conn.exec_driver_sql(
                f"INSERT OR REPLACE INTO temp.{_STAMPS} (name, generation) VALUES (?, ?)", (name, self._generation)
            )
        conn.info[_FILL_CHANGES] = counted + raw.total_changes - before  # type: ignore[union-attr]
        if name in self._reusable:
            conn.info.setdefault(_REUSABLE, {})[name] = (self._generation, *self._database_state(conn))

    # -- reusing -----------------------------------------------------------------

    @staticmethod
    def _database_state(conn: Connection) -> tuple[Any, int]:
        """(``PRAGMA data_version``, rows this connection changed outside its key sets):
        both the same at two moments means the source database did not change between
        them.  The read before the pragma makes this transaction take its snapshot."""
        conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
        version = conn.exec_driver_sql("PRAGMA data_version").scalar()
        total = conn.connection.dbapi_connection.total_changes  # type: ignore[union-attr]
        return version, int(total) - int(conn.info.get(_FILL_CHANGES, 0))

    def _still_filled(self, conn: Connection, name: str) -> bool:
        """Reusable set ``name`` holds what a fill would put there now: filled on this
        connection, nothing committed by others or changed by this connection since, and
        the table still holds that fill (not taken back by a rollback)."""
        stamp = conn.info.get(_REUSABLE, {}).get(name)
        if stamp is None:
            return False
        generation, version, changes = stamp
        if self._database_state(conn) != (version, changes):
            return False
        present = conn.exec_driver_sql(
            "SELECT count(*) FROM temp.sqlite_master WHERE type = 'table' AND name IN (?, ?)", (_STAMPS, name)
        ).scalar()
        if present != 2:
            return False
        held = conn.exec_driver_sql(f"SELECT generation FROM temp.{_STAMPS} WHERE name = ?", (name,)).scalar()
        return bool(held == generation)

    @staticmethod
    def _fill_through_spool(conn: Connection, table: sa.Table, fill: sa.Select[Any], names: list[str]) -> None:
        """Read the keys as a consistent read, spool them to disk, insert them in batches
        (one connection cannot insert while it streams a result)."""
        with tempfile.TemporaryFile() as spool:
            result = conn.execution_options(yield_per=_SPOOL_BATCH).execute(fill)
            try:
                for part in result.partitions(_SPOOL_BATCH):
                    pickle.dump([tuple(row) for row in part], spool)
            finally:
                result.close()
            spool.seek(0)
            while True:
                try:
                    rows = pickle.load(spool)
                except EOFError:
                    break
                conn.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in rows])

    # -- forgetting ----------------------------------------------------------------

    @staticmethod
    def _forget_connection(conn: Connection) -> None:
        conn.info.pop(_FILLED, None)

    @staticmethod
    def _forget_record(dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
        """A connection checked in forgets its sets, unless its transaction was ended by
        ``Connection.close()`` rolling it back (``transaction_was_reset``: the rollback
        event forgot them already).  A transaction ended by ``commit()`` is not "reset" in
        SQLAlchemy's sense, so its sets are forgotten too, though the temporary tables
        survive: the next transaction on the connection fills every set it names again.
        So each of the purge's transactions decides on sets read at its own start, not at
        the start of the pass (``refresh``): a row another customer writes meanwhile
        counts from the next transaction on.  A reusable set's record (``_REUSABLE``)
        stays: the next transaction reads the set again only if the database is as it
        was when it was filled (``_still_filled``)."""
        del dbapi_connection
        if getattr(reset_state, "transaction_was_reset", False):
            return
        info = getattr(connection_record, "info", None)
        if info is not None:
            info.pop(_FILLED, None)
