"""The shared example's data: generated in memory, step by step, and inserted into a
database that has the schema ``build_shared_schema`` makes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .business import BATCH, activity_batches, business
from .courses import courses, structure
from .learning import learning
from .people import organisations, users
from .rows import SharedData
from .schema import CUSTOMERS, DEFAULT_SEED, SHARED_METADATA

__all__ = ["ExampleInfo", "generate_shared", "insert_rows", "populate_shared", "write_media"]


@dataclass
class ExampleInfo:
    """What was generated: the customers and, per customer, the rows it owns per table."""

    customers: list[str]
    counts: dict[str, dict[str, int]]


def generate_shared(seed: int, activity_rows: int | None, users_per_customer: int | None) -> SharedData:
    """Every row of the shared example (activity_log aside: ``activity_batches`` streams it)."""
    data = SharedData(seed, activity_rows, users_per_customer)
    organisations(data)
    users(data)
    courses(data)
    structure(data)
    learning(data)
    business(data)
    for org, n in zip(data.orgs, data.activity_split, strict=True):
        data.counts[org.spec.slug]["activity_log"] = n
    return data


def write_media(root: Path, files: dict[str, bytes]) -> None:
    """Write each file at its path relative to ``root``, making folders as needed."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def insert_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table``, ``BATCH`` rows per statement."""
    for start in range(0, len(rows), BATCH):
        conn.execute(table.insert(), rows[start : start + BATCH])


def populate_shared(
    engine: sa.Engine,
    *,
    media_root: Path | None,
    activity_rows: int | None = None,
    users_per_customer: int | None = None,
    seed: int = DEFAULT_SEED,
) -> ExampleInfo:
    """Insert the example data into the schema made by ``build_shared_schema``.

    One transaction.  Media files are written under ``media_root`` when it is given; the
    attachments rows record their size and md5 either way.
    """
    data = generate_shared(seed, activity_rows, users_per_customer)
    if media_root is not None:
        write_media(Path(media_root), data.media)
    with engine.begin() as conn:
        for table in SHARED_METADATA.sorted_tables:
            if table.name == "activity_log":
                for batch in activity_batches(data):
                    conn.execute(table.insert(), batch)
            else:
                insert_rows(conn, table, data.rows[table.name])
        if conn.dialect.name == "postgresql":
            _advance_sequences(conn, SHARED_METADATA)
    return ExampleInfo(customers=list(CUSTOMERS), counts=data.counts)


def _advance_sequences(conn: sa.Connection, metadata: sa.MetaData) -> None:
    """Explicit ids leave PostgreSQL's serial sequences at 1: move them past the data."""
    preparer = conn.dialect.identifier_preparer
    for table in metadata.sorted_tables:
        name = preparer.format_table(table)
        conn.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence(:name, 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
            ),
            {"name": name},
        )
