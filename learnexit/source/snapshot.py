"""Consistent reads of the source: one read transaction every table is read through,
and, where the database allows, the same snapshot shared with other processes (the
parallel export)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from ..config import mask_url
from ..errors import OperationalError
from .reflect import describe_db_error


def _data_version(conn: Connection) -> Any:
    """SQLite's ``PRAGMA data_version`` after a read (which makes the connection notice
    other connections' commits), outside any transaction of its own."""
    try:
        conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
        return conn.exec_driver_sql("PRAGMA data_version").scalar()
    finally:
        conn.rollback()


class SnapshotReader:
    """Read transactions on ``engine`` (the source at ``url``) that see one moment."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._watches: dict[int, tuple[Connection, Any]] = {}

    @contextmanager
    def snapshot(self, imported: str | None = None) -> Iterator[Connection]:
        """One read transaction: every table read through it sees the same moment.

        ``imported``: a PostgreSQL snapshot another process exported with
        ``share_snapshot`` — this transaction then sees exactly what that one sees.
        """
        dialect = self.engine.dialect.name
        watch: Connection | None = None
        try:
            if dialect == "sqlite" and self.shareable():
                # Remember the database's version before the snapshot starts: readers in
                # other processes see the same data as long as it has not changed since.
                watch = self.engine.connect()
                version = _data_version(watch)
            conn = self.engine.connect()
            if dialect in ("postgresql", "mysql", "mariadb"):
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            trans = conn.begin()
            if dialect == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                if imported is not None:
                    if not re.fullmatch(r"[0-9A-Fa-f-]+", imported):
                        raise OperationalError(f"not a PostgreSQL snapshot id: {imported[:40]!r}")
                    conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{imported}'")
            if watch is not None:
                self._watches[id(conn)] = (watch, version)
        except sa.exc.SQLAlchemyError as exc:
            if watch is not None:
                watch.close()
            raise OperationalError(f"cannot read source {mask_url(self.url)}: {describe_db_error(exc)}") from None
        failed = False
        try:
            yield conn
        except sa.exc.SQLAlchemyError as exc:
            failed = True
            raise OperationalError(f"source read failed: {describe_db_error(exc)}") from None
        except BaseException:
            failed = True
            raise
        finally:
            try:
                trans.rollback()
            except sa.exc.SQLAlchemyError as exc:
                # (a connection the server ended may say so only now, at the rollback: the
                # error that ended the read is the one to report)
                if not failed:
                    raise OperationalError(f"source read failed: {describe_db_error(exc)}") from None
            finally:
                conn.close()
                if watch is not None:
                    self._watches.pop(id(conn), None)
                    watch.close()

    def shareable(self) -> bool:
        """Can other processes read the same snapshot as ``snapshot()`` (parallel exports)?

        PostgreSQL: yes, an exported snapshot.  SQLite (a file): yes while nothing writes —
        ``snapshot_unchanged`` tells.  MySQL/MariaDB: no (one process reads).
        """
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            return True
        if dialect == "sqlite":
            db = make_url(self.url).database or ""
            return bool(db) and db != ":memory:" and "mode=memory" not in db
        return False

    def share_snapshot(self, conn: Connection) -> str | None:
        """What another process passes to ``snapshot(imported=…)`` to read the same data
        (PostgreSQL: ``pg_export_snapshot()``, valid while this transaction lasts)."""
        if self.engine.dialect.name == "postgresql":
            return str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar())
        return None

    def start_snapshot(self, conn: Connection) -> None:
        """Make the snapshot begin now (SQLite begins it at the first read)."""
        if self.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()

    def snapshot_unchanged(self, conn: Connection) -> bool:
        """SQLite: True when no one has committed since ``conn``'s snapshot began, so a
        snapshot begun in another process meanwhile holds the same data."""
        watched = self._watches.get(id(conn))
        if watched is None:
            return self.engine.dialect.name == "postgresql"
        watch, version = watched
        return bool(_data_version(watch) == version)
