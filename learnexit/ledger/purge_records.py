"""Typed reads and writes of the ledger's purge records: ``purges`` (one row a purge),
``purge_progress`` (rows deleted per step) and ``purge_keys`` (the keys, people and
media files a purge recorded, named by ``table_name``).

What :mod:`learnexit.purge` reads and writes in the ledger, by name instead of by
table.  Writes run inside the caller's ledger transaction (``conn``), next to the audit
entry that records them; reads given a ``conn`` run inside it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import schema
from .records import Row, insert_row
from .store import Ledger

__all__ = [
    "Progress",
    "add_progress",
    "add_purge",
    "add_purge_key",
    "add_purge_keys",
    "case_purge_keys",
    "delete_purge_key",
    "finished_cases",
    "mark_purge_done",
    "mark_purge_failed",
    "mark_purge_running",
    "mark_purge_unverified",
    "mark_steps_done",
    "progress_of",
    "purge_keys_like",
    "purge_keys_named",
    "purge_keys_of",
    "purge_row",
    "purge_started_at",
    "purges_of",
    "rename_purge_keys",
    "set_purge_key",
    "step_done_in_case",
    "step_progress",
    "step_rows",
    "update_progress",
]

_purges = schema.purges
_keys = schema.purge_keys
_progress = schema.purge_progress

Progress = tuple[int, int, bool]
"""A step's progress as stored: (rows, batches, done)."""


# --------------------------------------------------------------------------- purges


def purges_of(ledger: Ledger, customer: str) -> list[Row]:
    """The purges of the customer key's current case, oldest first (a read of its own)."""
    return ledger.rows(_purges, customer)


def purge_row(conn: Connection, purge_id: int) -> Row:
    """The purge ``purge_id`` as stored."""
    return dict(conn.execute(sa.select(_purges).where(_purges.c.id == purge_id)).one()._mapping)


def purge_started_at(ledger: Ledger, purge_id: int) -> datetime | None:
    """When the purge ``purge_id`` started (naive UTC, as stored), in a read of its own."""
    with ledger.engine.connect() as conn:
        value = conn.execute(sa.select(_purges.c.started_at).where(_purges.c.id == purge_id)).scalar()
    return value  # type: ignore[no-any-return]


def add_purge(
    conn: Connection,
    *,
    customer: str,
    identity_id: int,
    kind: str,
    started_at: datetime,
    plan: str,
    forced_reason: str | None,
    recorded_by: str,
) -> int:
    """Record a purge as ``running`` (``plan``: the JSON text of its plan); its id."""
    return insert_row(
        conn,
        _purges,
        dict(
            customer=customer,
            identity_id=identity_id,
            kind=kind,
            started_at=started_at,
            status="running",
            plan=plan,
            forced_reason=forced_reason,
            recorded_by=recorded_by,
        ),
    )


def mark_purge_running(conn: Connection, purge_id: int) -> None:
    """Mark an unfinished purge as ``running`` again (a resumed run): error and end cleared."""
    conn.execute(
        _purges.update().where(_purges.c.id == purge_id).values(status="running", error=None, finished_at=None)
    )


def mark_purge_failed(conn: Connection, purge_id: int, *, error: str, finished_at: datetime) -> None:
    """Record the purge as ``failed`` with ``error`` (stored as given)."""
    conn.execute(
        _purges.update().where(_purges.c.id == purge_id).values(status="failed", error=error, finished_at=finished_at)
    )


def mark_purge_unverified(
    conn: Connection,
    purge_id: int,
    *,
    finished_at: datetime,
    deleted: str,
    retained: str,
    kept_shared: str,
    verification: str,
    error: str,
) -> None:
    """Record the purge as ``failed`` because verification found something left, with
    its counts (JSON texts) and ``error`` (stored as given)."""
    conn.execute(
        _purges.update()
        .where(_purges.c.id == purge_id)
        .values(
            status="failed",
            finished_at=finished_at,
            deleted=deleted,
            retained=retained,
            kept_shared=kept_shared,
            verified=False,
            verification=verification,
            error=error,
        )
    )


def mark_purge_done(
    conn: Connection,
    purge_id: int,
    *,
    finished_at: datetime,
    deleted: str,
    retained: str,
    kept_shared: str,
    verification: str,
    certificate: str,
) -> None:
    """Record the purge as ``done`` and verified, with its counts (JSON texts) and the
    path of its certificate."""
    conn.execute(
        _purges.update()
        .where(_purges.c.id == purge_id)
        .values(
            status="done",
            finished_at=finished_at,
            deleted=deleted,
            retained=retained,
            kept_shared=kept_shared,
            verified=True,
            verification=verification,
            certificate=certificate,
            error=None,
        )
    )


def finished_cases(conn: Connection, customers: Sequence[str] | None) -> list[Row]:
    """The cases (``identities`` rows) a full purge finished, of ``customers`` or all, by id."""
    identities = schema.identities
    stmt = sa.select(identities).where(identities.c.finished_at.isnot(None)).order_by(identities.c.id)
    if customers is not None:
        stmt = stmt.where(identities.c.customer.in_(list(customers)))
    return [dict(r._mapping) for r in conn.execute(stmt)]


# --------------------------------------------------------------------------- purge_progress


def step_progress(conn: Connection, purge_id: int, step: str) -> Progress | None:
    """The progress recorded for ``step`` of the purge: (rows, batches, done), or None."""
    row = conn.execute(
        sa.select(_progress.c.rows, _progress.c.batches, _progress.c.done).where(
            _progress.c.purge_id == purge_id, _progress.c.step == step
        )
    ).first()
    return None if row is None else (row.rows, row.batches, row.done)


def add_progress(
    conn: Connection, *, purge_id: int, step: str, rows: int, batches: int, done: bool, updated_at: datetime
) -> None:
    """Record the first progress of ``step`` of the purge."""
    conn.execute(
        _progress.insert().values(
            purge_id=purge_id, step=step, rows=rows, batches=batches, done=done, updated_at=updated_at
        )
    )


def update_progress(
    conn: Connection,
    purge_id: int,
    step: str,
    *,
    updated_at: datetime,
    rows: int,
    batches: int,
    done: bool | None = None,
) -> None:
    """Set the progress of ``step`` of the purge (``done`` None: left as it is)."""
    values: dict[str, Any] = {"updated_at": updated_at, "rows": rows, "batches": batches}
    if done is not None:
        values["done"] = done
    conn.execute(_progress.update().where(_progress.c.purge_id == purge_id, _progress.c.step == step).values(**values))


def mark_steps_done(conn: Connection, purge_id: int, steps: Sequence[str], updated_at: datetime) -> None:
    """Mark each of ``steps`` of the purge done (no rows, no batch added): a row for each
    step not recorded yet, ``done`` set on the others — in three statements, not two a
    step (a schema of 480 tables, 310 of them empty)."""
    wanted = list(dict.fromkeys(steps))
    known: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        stmt = sa.select(_progress.c.step).where(_progress.c.purge_id == purge_id, _progress.c.step.in_(chunk))
        known.update(conn.execute(stmt).scalars())
    new = [
        {"purge_id": purge_id, "step": s, "rows": 0, "batches": 0, "done": True, "updated_at": updated_at}
        for s in wanted
        if s not in known
    ]
    if new:
        conn.execute(_progress.insert(), new)
    if known:
        done = (
            _progress.update()
            .where(_progress.c.purge_id == purge_id, _progress.c.step == sa.bindparam("b_step"))
            .values(done=True, updated_at=updated_at)
        )
        conn.execute(done, [{"b_step": s} for s in wanted if s in known])


def step_rows(conn: Connection, purge_id: int, step: str) -> int:
    """The rows recorded for ``step`` of the purge so far (0: none)."""
    stmt = sa.select(_progress.c.rows).where(_progress.c.purge_id == purge_id, _progress.c.step == step)
    return int(conn.execute(stmt).scalar() or 0)


def progress_of(conn: Connection, purge_id: int) -> dict[str, int]:
    """The rows recorded for every step of the purge."""
    stmt = sa.select(_progress.c.step, _progress.c.rows).where(_progress.c.purge_id == purge_id)
    return {r.step: int(r.rows) for r in conn.execute(stmt)}


def step_done_in_case(ledger: Ledger, conn: Connection, customer: str, step: str) -> bool:
    """Has a purge of the customer key's current case recorded ``step`` as done?"""
    stmt = (
        sa.select(sa.func.count())
        .select_from(_progress.join(_purges, _purges.c.id == _progress.c.purge_id))
        .where(ledger.in_case(conn, _purges, customer), _progress.c.step == step, _progress.c.done.is_(True))
    )
    return bool(conn.execute(stmt).scalar())


# --------------------------------------------------------------------------- purge_keys


def add_purge_key(conn: Connection, *, purge_id: int, table_name: str, key: str) -> int:
    """Record one ``purge_keys`` entry; its id."""
    return insert_row(conn, _keys, {"purge_id": purge_id, "table_name": table_name, "key": key})


def add_purge_keys(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Record several ``purge_keys`` entries (dicts of purge_id, table_name, key) at once."""
    conn.execute(_keys.insert(), rows)


def delete_purge_key(conn: Connection, key_id: int) -> None:
    """Remove the ``purge_keys`` entry ``key_id``."""
    conn.execute(_keys.delete().where(_keys.c.id == key_id))


def set_purge_key(conn: Connection, key_id: int, key: str) -> None:
    """Replace the key text of the ``purge_keys`` entry ``key_id``."""
    conn.execute(_keys.update().where(_keys.c.id == key_id).values(key=key))


def rename_purge_keys(conn: Connection, ids: Sequence[int], table_name: str) -> None:
    """Give the ``purge_keys`` entries ``ids`` the name ``table_name``."""
    conn.execute(_keys.update().where(_keys.c.id.in_(list(ids))).values(table_name=table_name))


def purge_keys_of(conn: Connection, purge_id: int) -> list[tuple[str, str]]:
    """Every ``purge_keys`` entry of the purge: (table_name, key)."""
    stmt = sa.select(_keys.c.table_name, _keys.c.key).where(_keys.c.purge_id == purge_id)
    return [(r[0], r[1]) for r in conn.execute(stmt)]


def purge_keys_like(conn: Connection, purge_id: int, prefix: str) -> list[tuple[int, str, str]]:
    """The purge's entries whose name starts with ``prefix``: (id, table_name, key)."""
    stmt = sa.select(_keys.c.id, _keys.c.table_name, _keys.c.key).where(
        _keys.c.purge_id == purge_id, _keys.c.table_name.like(prefix + "%")
    )
    return [(r[0], r[1], r[2]) for r in conn.execute(stmt)]


def purge_keys_named(conn: Connection, purge_id: int, names: Sequence[str]) -> list[tuple[int, str, str]]:
    """The purge's entries named one of ``names``, in the order they were recorded: (id, table_name, key)."""
    stmt = (
        sa.select(_keys.c.id, _keys.c.table_name, _keys.c.key)
        .where(_keys.c.purge_id == purge_id, _keys.c.table_name.in_(list(names)))
        .order_by(_keys.c.id)
    )
    return [(r[0], r[1], r[2]) for r in conn.execute(stmt)]


def case_purge_keys(
    ledger: Ledger, conn: Connection, customer: str, prefix: str, exclude: int | None
) -> list[tuple[str, str]]:
    """Entries named ``prefix…`` of the purges of the customer key's current case (but
    the purge ``exclude``): (table_name, key)."""
    stmt = (
        sa.select(_keys.c.table_name, _keys.c.key)
        .join(_purges, _purges.c.id == _keys.c.purge_id)
        .where(_keys.c.table_name.like(prefix + "%"))
    )
    if exclude is not None:
        stmt = stmt.where(_purges.c.id != exclude)
    return [(r[0], r[1]) for r in conn.execute(stmt.where(ledger.in_case(conn, _purges, customer)))]
