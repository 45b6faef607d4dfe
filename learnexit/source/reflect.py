"""Engines and reflection: connect to a database the way every learnexit module does,
read the source's schema, and say what went wrong in one value-free line."""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from ..config import Settings, mask_url, scrub
from ..errors import ConfigError, OperationalError, UnknownCustomer
from ..valuefree import without_values
from . import sqlite_pragmas, text_decode


def _install_sqlite_transactions(engine: Engine, begin: str = "BEGIN") -> None:
    """Make pysqlite honour BEGIN, so a read transaction is a real snapshot."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)


def make_engine(url: str, *, what: str = "source", sqlite_begin: str = "BEGIN") -> Engine:
    """An engine for ``url``.  ``sqlite_begin`` = "BEGIN IMMEDIATE" makes every SQLite
    transaction take the write lock at once (the ledger: writers queue, never deadlock)."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.drivername.startswith("postgresql"):
        # JIT compiles the nested ownership predicates for seconds per query: off.
        kwargs["connect_args"] = {"connect_timeout": 10, "options": "-c jit=off"}
    elif parsed.drivername.startswith("mysql"):
        kwargs["connect_args"] = {"connect_timeout": 10, "charset": "utf8mb4"}
    in_memory = not parsed.database or parsed.database == ":memory:" or parsed.query.get("mode") == "memory"
    if what != "state" and parsed.drivername.startswith("sqlite") and not in_memory:
        # The connection used last is handed out first: it holds the key sets the last
        # transaction filled (``KeySets``, reusable while the database is unchanged).  (A
        # database in memory has a pool of one connection a thread: no order to choose.)
        kwargs["pool_use_lifo"] = True
    if what == "state" and not parsed.drivername.startswith("sqlite"):
        # The ledger connection idles while an export or purge works on the source; a
        # server restart or pg_terminate_backend must not lose the record at the end.
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(url, **kwargs)
    except Exception as exc:  # missing driver, bad URL
        raise ConfigError(f"{what} URL {mask_url(url)}: {scrub(str(exc)).splitlines()[0]}") from None
    if parsed.drivername.startswith("sqlite"):
        _install_sqlite_transactions(engine, sqlite_begin)
        if what != "state":
            text_decode.install(engine)  # text that is not valid UTF-8: U+FFFD, never a failed read
    return engine


def _floats_stay_floats(_inspector: Any, _table: Any, column_info: dict[str, Any]) -> None:
    """MySQL's DOUBLE reflects as a Decimal rounded to 10 places: read floats as floats."""
    kind = column_info.get("type")
    if isinstance(kind, sa.Float):
        kind.asdecimal = False


def describe_db_error(exc: BaseException) -> str:
    """The first line of a driver error, secrets scrubbed and the values it quotes
    replaced (``valuefree``): it goes into messages, logs and the ledger."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return scrub(without_values(text[0]) if text else type(orig).__name__)


def check_source_file(settings: Settings, url: str, customer: str, key: str = "url") -> None:
    """A SQLite source that is not there: an unknown customer (tenancy "database") or a
    config error naming ``[source] key`` — SQLite would silently create an empty database
    for a mistyped path."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return
    db = parsed.database or ""
    if settings.customer.tenancy == "database":
        if db and db != ":memory:" and not os.path.exists(db):
            raise UnknownCustomer(f"unknown customer {customer!r}: no database file {db}")
    elif db and db != ":memory:" and not db.startswith("file:") and not os.path.exists(db):
        raise ConfigError(f"{settings.label}: [source] {key}: the SQLite database {db} does not exist")


# Schemas reflected in this process, by SQLite file and schema version: a purge opens the
# source for its plan, its run and its verification, and reflecting 480 tables takes SQLite
# most of a second each time.  The reflected tables are only read, never changed.
_SQLITE_SCHEMAS: dict[tuple[Any, ...], sa.MetaData] = {}
_SQLITE_SCHEMAS_KEPT = 4


def _sqlite_schema_key(conn: Connection, url: str, schema: str | None) -> tuple[Any, ...] | None:
    """What names one SQLite file's schema as it is now (None: not a file)."""
    db = make_url(url).database or ""
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    try:
        stat = os.stat(db)
    except OSError:
        return None
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar()
    return (os.path.realpath(db), stat.st_dev, stat.st_ino, schema, version)


def reflect_source(engine: Engine, url: str, settings: Settings, customer: str) -> sa.MetaData:
    """Every table of the source (``[source] schema``), floats read as floats; a database
    that does not exist under tenancy "database" is an unknown customer.  A SQLite file
    whose schema this process has reflected before (same file, same ``schema_version``)
    is not reflected again."""
    try:
        with engine.connect() as conn:
            key = _sqlite_schema_key(conn, url, settings.source_schema) if engine.dialect.name == "sqlite" else None
            if key is not None and key in _SQLITE_SCHEMAS:
                return _SQLITE_SCHEMAS[key]
            metadata = sa.MetaData()
            event.listen(metadata, "column_reflect", _floats_stay_floats)
            with sqlite_pragmas.prefetched(conn, settings.source_schema):
                metadata.reflect(conn, schema=settings.source_schema)
            if key is not None:
                while len(_SQLITE_SCHEMAS) >= _SQLITE_SCHEMAS_KEPT:
                    _SQLITE_SCHEMAS.pop(next(iter(_SQLITE_SCHEMAS)))
                _SQLITE_SCHEMAS[key] = metadata
    except sa.exc.OperationalError as exc:
        text = describe_db_error(exc)
        if settings.customer.tenancy == "database" and ("does not exist" in text or "Unknown database" in text):
            raise UnknownCustomer(f"unknown customer {customer!r}: {text}") from None
        raise OperationalError(f"cannot read source {mask_url(url)}: {text}") from None
    except sa.exc.SQLAlchemyError as exc:
        raise OperationalError(f"cannot read source {mask_url(url)}: {describe_db_error(exc)}") from None
    return metadata


def reflect_table(engine: Engine, url: str, settings: Settings, name: str) -> sa.Table:
    """One table of the source (``[source] schema``): what a look at a single row needs
    (the export checks the customer's row on the primary without reflecting it all)."""
    metadata = sa.MetaData()
    try:
        with engine.connect() as conn:
            metadata.reflect(conn, schema=settings.source_schema, only=[name])
    except sa.exc.InvalidRequestError:  # (reflect's "not there": no database error)
        raise ConfigError(f"table {name!r} does not exist in the source {mask_url(url)}") from None
    except sa.exc.SQLAlchemyError as exc:
        raise OperationalError(f"cannot read source {mask_url(url)}: {describe_db_error(exc)}") from None
    return next(iter(metadata.tables.values()))
