"""Consistent reads of the source: one read transaction every table is read through,
and, where the database allows, the same snapshot shared with other processes (the
parallel export); and where that snapshot was read (``ReadPoint``: the primary or its
read replica, and a replica's replay position)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from ..config import mask_url
from ..errors import OperationalError
from .reflect import describe_db_error

Reads = Literal["primary", "replica"]

# A PostgreSQL standby whose last replayed transaction committed longer ago than this (on
# the primary's clock) makes the export warn: its package may miss the newest rows.
REPLICA_LAG_WARNING_SECONDS = 300


@dataclass(frozen=True)
class ReadPoint:
    """Where an export's snapshot was read, and as of when, as far as the database says.

    ``reads``: "primary" (``[source] url``) or "replica" (``[source] read_url``); ``url``
    with its password masked; ``database``: sqlite, postgresql or mysql.  PostgreSQL:
    ``in_recovery`` (``pg_is_in_recovery()``: a hot standby), and on a standby
    ``position`` (``pg_last_wal_replay_lsn()``, read by the snapshot's first statement:
    the snapshot holds what was replayed up to at most this position) and ``lag_seconds``
    (``now() - pg_last_xact_replay_timestamp()``: how long ago the last replayed
    transaction committed on the primary; an idle primary looks the same).
    MySQL/MariaDB: ``read_only`` (``@@read_only``); how far a replica is behind needs
    privileges learnexit does not ask for."""

    reads: Reads
    url: str
    database: str
    in_recovery: bool | None = None
    position: str | None = None
    lag_seconds: float | None = None
    read_only: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields the database could tell (what it could not say is left out)."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    @property
    def lagging(self) -> bool:
        """Is the replica further behind than ``REPLICA_LAG_WARNING_SECONDS``?"""
        return self.lag_seconds is not None and self.lag_seconds > REPLICA_LAG_WARNING_SECONDS

    def tag(self) -> str:
        """One line for the package (no URL: the vendor's hosts are not the customer's
        business): ``replica, PostgreSQL in recovery, WAL replay position 0/3000148``."""
        words: list[str] = [self.reads]
        if self.in_recovery is not None:
            words.append("PostgreSQL in recovery" if self.in_recovery else "PostgreSQL not in recovery")
        if self.position is not None:
            words.append(f"WAL replay position {self.position}")
        if self.read_only is not None:
            words.append("read_only on" if self.read_only else "read_only off")
        return ", ".join(words)


def _data_version(conn: Connection) -> Any:
    """SQLite's ``PRAGMA data_version`` after a read (which makes the connection notice
    other connections' commits), outside any transaction of its own."""
    try:
        conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
        return conn.exec_driver_sql("PRAGMA data_version").scalar()
    finally:
        conn.rollback()


class SnapshotReader:
    """Read transactions on ``engine`` (the source at ``url``, the primary or its read
    replica: ``reads``) that see one moment."""

    def __init__(self, engine: Engine, url: str, reads: Reads = "primary") -> None:
        self.engine = engine
        self.url = url
        self.reads: Reads = reads
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

    def read_point(self, conn: Connection) -> ReadPoint:
        """Where ``conn``'s snapshot reads (see ``ReadPoint``).  Call it first in a fresh
        ``snapshot()``: on PostgreSQL its query is the one that takes the snapshot, so the
        replay position is the snapshot's."""
        dialect = self.engine.dialect.name
        point = ReadPoint(self.reads, mask_url(self.url), "mysql" if dialect == "mariadb" else dialect)
        if dialect == "postgresql":
            old = (self.engine.dialect.server_version_info or (10,)) < (10,)  # (9.x: the xlog names)
            lsn = "pg_last_xlog_replay_location()" if old else "pg_last_wal_replay_lsn()"
            row = conn.exec_driver_sql(
                f"SELECT pg_is_in_recovery(), {lsn}::text, "
                "EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8"
            ).one()
            if not row[0]:  # (a promoted standby keeps its last replay position: not shown)
                return replace(point, in_recovery=False)
            lag = float(row[2]) if row[2] is not None else None
            return replace(point, in_recovery=True, position=row[1], lag_seconds=lag)
        if dialect in ("mysql", "mariadb"):
            return replace(point, read_only=bool(conn.exec_driver_sql("SELECT @@read_only").scalar()))
        return point
