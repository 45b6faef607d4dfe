"""Typed reads and writes of the ledger's export records: ``exports``, the ``locks`` row
a running export holds, and ``deliveries`` (which package the customer received).

What :mod:`learnexit.export`, :mod:`learnexit.purge` and :mod:`learnexit.package`
read and write about exports, by name instead of by table.  Writes run inside the
caller's ledger transaction (``conn``), next to the audit entry that records them.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import schema
from .records import Row, insert_row
from .store import Ledger

__all__ = [
    "add_delivery",
    "add_export",
    "add_export_lock",
    "customer_exports",
    "delivered_export_ids",
    "export_lock",
    "export_lock_name",
    "exports_of",
    "latest_full_purge",
    "mark_export_complete",
    "mark_export_failed",
    "mark_export_interrupted",
    "mark_export_removed",
    "remove_export_lock",
    "running_exports",
    "serialise",
]

_exports = schema.exports
_locks = schema.locks


def export_lock_name(export_id: int) -> str:
    """The ``locks`` row a running export holds (a purge of its customer waits for it)."""
    return f"export:{export_id}"


def serialise(conn: Connection) -> None:
    """Queue behind any other ledger writer that serialises (PostgreSQL: the audit
    counter's row lock, which every audited write takes; SQLite: BEGIN IMMEDIATE did)."""
    meta = schema.meta_table
    conn.execute(sa.select(meta.c.value).where(meta.c.key == "audit_count").with_for_update()).all()


def exports_of(ledger: Ledger, customer: str) -> list[Row]:
    """The exports of the customer key's current case, oldest first (a read of its own)."""
    return ledger.rows(_exports, customer)


def customer_exports(conn: Connection, customer: str) -> list[Row]:
    """Every export recorded under the customer key (all cases), by finish time then id."""
    stmt = sa.select(_exports).where(_exports.c.customer == customer).order_by(_exports.c.finished_at, _exports.c.id)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def running_exports(conn: Connection, customer: str | None) -> list[Row]:
    """Exports recorded as running (id, customer, path), of ``customer`` or of all, by id."""
    query = sa.select(_exports.c.id, _exports.c.customer, _exports.c.path).where(_exports.c.status == "running")
    if customer is not None:
        query = query.where(_exports.c.customer == customer)
    return [dict(r._mapping) for r in conn.execute(query.order_by(_exports.c.id))]


def latest_full_purge(conn: Connection, identity_id: int) -> Row | None:
    """The latest full purge (id, status, started_at) of the case ``identity_id``, or None."""
    purges = schema.purges
    stmt = (
        sa.select(purges.c.id, purges.c.status, purges.c.started_at)
        .where(purges.c.identity_id == identity_id, purges.c.kind == "full")
        .order_by(purges.c.id.desc())
        .limit(1)
    )
    row = conn.execute(stmt).first()
    return dict(row._mapping) if row is not None else None


def add_export(
    conn: Connection,
    *,
    customer: str,
    identity_id: int,
    started_at: datetime,
    path: str,
    formats: str,
    late_reason: str | None,
    recorded_by: str,
) -> int:
    """Record an export as ``running`` (``formats``: comma-separated); its id."""
    return insert_row(
        conn,
        _exports,
        dict(
            customer=customer,
            identity_id=identity_id,
            started_at=started_at,
            status="running",
            path=path,
            formats=formats,
            late_reason=late_reason,
            recorded_by=recorded_by,
        ),
    )


def add_export_lock(conn: Connection, *, export_id: int, holder: str, at: datetime) -> None:
    """Take the lock a running export holds (``export_lock_name``), acquired at ``at``."""
    conn.execute(
        _locks.insert().values(name=export_lock_name(export_id), holder=holder, acquired_at=at, heartbeat_at=at)
    )


def export_lock(conn: Connection, export_id: int) -> Row | None:
    """The lock the export ``export_id`` holds (name, holder, acquired_at, heartbeat_at), or None."""
    row = conn.execute(sa.select(_locks).where(_locks.c.name == export_lock_name(export_id))).first()
    return dict(row._mapping) if row is not None else None


def remove_export_lock(conn: Connection, export_id: int) -> None:
    """Remove the lock the export ``export_id`` held (if any)."""
    conn.execute(_locks.delete().where(_locks.c.name == export_lock_name(export_id)))


def mark_export_failed(conn: Connection, export_id: int, *, error: str, finished_at: datetime) -> None:
    """Record the export as ``failed`` with ``error`` (cut to 2,000 characters)."""
    conn.execute(
        _exports.update()
        .where(_exports.c.id == export_id)
        .values(status="failed", finished_at=finished_at, error=error[:2000])
    )


def mark_export_interrupted(conn: Connection, export_id: int, *, error: str, finished_at: datetime) -> bool:
    """Record the export as ``failed`` with ``error`` if it is still ``running``; whether
    it was (False: another reaper, or the export itself, was first)."""
    done = conn.execute(
        _exports.update()
        .where(_exports.c.id == export_id, _exports.c.status == "running")
        .values(status="failed", finished_at=finished_at, error=error[:2000])
    )
    return bool(done.rowcount == 1)


def mark_export_complete(
    conn: Connection,
    export_id: int,
    *,
    finished_at: datetime,
    path: str,
    files: int,
    size: int,
    rows: str,
    manifest_sha256: str,
) -> None:
    """Record the export as ``complete`` (``size``: its bytes; ``rows``: JSON rows per table)."""
    conn.execute(
        _exports.update()
        .where(_exports.c.id == export_id)
        .values(
            status="complete",
            finished_at=finished_at,
            path=path,
            files=files,
            bytes=size,
            rows=rows,
            manifest_sha256=manifest_sha256,
        )
    )


def mark_export_removed(conn: Connection, export_id: int) -> None:
    """Record that the export's package was overwritten and removed (by a purge)."""
    conn.execute(_exports.update().where(_exports.c.id == export_id).values(status="removed"))


def add_delivery(
    conn: Connection,
    *,
    customer: str,
    confirmation_id: int,
    export_id: int,
    manifest_sha256: str | None,
    recorded_at: datetime,
    recorded_by: str,
) -> int:
    """Record that the customer received the export ``export_id``; the new row's id."""
    return insert_row(
        conn,
        schema.deliveries,
        dict(
            customer=customer,
            confirmation_id=confirmation_id,
            export_id=export_id,
            manifest_sha256=manifest_sha256,
            recorded_at=recorded_at,
            recorded_by=recorded_by,
        ),
    )


def delivered_export_ids(conn: Connection, customer: str) -> set[int]:
    """The exports of ``customer`` recorded as delivered."""
    query = sa.select(schema.deliveries.c.export_id).where(schema.deliveries.c.customer == customer)
    return {int(v) for v in conn.execute(query).scalars()}
