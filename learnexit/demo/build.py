"""Writing the examples to disk: the shared-tenancy LMS with its media and config, and the
database-tenancy example under ``legacy/``.  Databases are built into a temporary file
and moved into place, so no half-built database survives."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from .config import LEGACY_CONFIG, SHARED_CONFIG
from .data import ExampleInfo, insert_rows, populate_shared, write_media
from .legacy import LEGACY_METADATA, legacy_rows
from .schema import DEFAULT_SEED, LEGACY_CUSTOMERS, build_shared_schema

__all__ = ["build_example", "build_legacy_example"]

_T = TypeVar("_T")


def _sqlite_engine(path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _fast(dbapi_connection: Any, _record: Any) -> None:
        # A file being built from scratch needs no crash safety: it is rebuilt instead.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=OFF")
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    return engine


def _build_sqlite(final: Path, build: Callable[[sa.Engine], _T]) -> _T:
    """Build into a temporary file and move it into place: no half-built database survives."""
    partial = final.with_name(final.name + ".partial")
    if partial.exists():
        partial.unlink()
    engine = _sqlite_engine(partial)
    try:
        result = build(engine)
    except BaseException:
        engine.dispose()
        partial.unlink(missing_ok=True)
        raise
    engine.dispose()
    os.replace(partial, final)
    return result


def build_legacy_example(dest: Path, *, seed: int = DEFAULT_SEED) -> None:
    """Write the database-tenancy (Moodle-flavoured) example: one SQLite file per customer.

    ``dest/{acme,globex}.db`` (no foreign keys declared), the shared content-addressed file
    pool ``dest/filedir/`` and ``dest/learnexit.toml``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for slug in LEGACY_CUSTOMERS:
        if (dest / f"{slug}.db").exists():
            raise FileExistsError(f"{dest / f'{slug}.db'} already exists")
    for slug in LEGACY_CUSTOMERS:
        rows, files = legacy_rows(slug, seed)
        write_media(dest, {f"filedir/{h[0:2]}/{h[2:4]}/{h}": data for h, data in files.items()})

        def build(engine: sa.Engine, rows: dict[str, list[dict[str, Any]]] = rows) -> None:
            LEGACY_METADATA.create_all(engine)
            with engine.begin() as conn:
                for table in LEGACY_METADATA.sorted_tables:
                    insert_rows(conn, table, rows[table.name])

        _build_sqlite(dest / f"{slug}.db", build)
    (dest / "learnexit.toml").write_text(LEGACY_CONFIG, encoding="utf-8")
    (dest / "learnexit.toml").chmod(0o600)  # a config may hold a password: private, as init writes it


def build_example(
    dest: Path,
    *,
    activity_rows: int | None = None,
    users_per_customer: int | None = None,
    seed: int = DEFAULT_SEED,
) -> ExampleInfo:
    """Write the example LMS into ``dest``: ``lms.db``, ``media/``, ``learnexit.toml``, ``legacy/``.

    ``dest`` may exist but must not hold an ``lms.db`` already (FileExistsError).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    database = dest / "lms.db"
    if database.exists():
        raise FileExistsError(f"{database} already exists")
    for slug in LEGACY_CUSTOMERS:
        if (dest / "legacy" / f"{slug}.db").exists():
            raise FileExistsError(f"{dest / 'legacy' / f'{slug}.db'} already exists")

    def build(engine: sa.Engine) -> ExampleInfo:
        build_shared_schema(engine)
        return populate_shared(
            engine,
            media_root=dest / "media",
            activity_rows=activity_rows,
            users_per_customer=users_per_customer,
            seed=seed,
        )

    info = _build_sqlite(database, build)
    (dest / "learnexit.toml").write_text(SHARED_CONFIG, encoding="utf-8")
    (dest / "learnexit.toml").chmod(0o600)
    build_legacy_example(dest / "legacy", seed=seed)
    return info
