"""The customer's export packages as the purge sees them.

A purge waits while an export of the customer runs (:func:`exports_running`; the export,
for its part, refuses to start once a purge has, and removes its package if one
overtook it), then overwrites and removes every package learnexit wrote
(:func:`remove_exports`), and verification checks that none is left.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ..config import Settings
from ..ledger.export_records import export_lock, mark_export_removed
from ..ledger.store import Ledger, holder_is_dead, utcnow
from ..logs import event
from ..package.build import destroy_path, left_by_removal, looks_like_package, package_paths
from .conditions import db_error
from .history import export_rows
from .journal import Journal

__all__ = ["exports_left", "exports_running", "remove_exports"]


def exports_running(settings: Settings, ledger: Ledger, customer: str) -> list[dict[str, Any]]:
    """Exports of ``customer`` running now: a purge waits for them (the export, for its
    part, refuses to start once a purge has, and removes its package if one overtook it).

    Running means the export's lock is held by a live process: on this host one that
    exists; on another host one whose lock is younger than ``lock_stale_minutes``.  A
    killed export therefore blocks nothing (on another host: not for long)."""
    stale = timedelta(minutes=settings.purge.lock_stale_minutes)
    here = f" host {socket.gethostname()} pid "
    live = []
    for row in export_rows(ledger, customer):
        if row["status"] != "running":
            continue
        try:
            with ledger.engine.connect() as conn:
                lock = export_lock(conn, row["id"])
        except SQLAlchemyError as exc:
            raise db_error("cannot read the ledger", exc) from None
        if lock is None or holder_is_dead(lock["holder"]):
            continue
        if here in lock["holder"] or utcnow() - lock["heartbeat_at"] < stale:
            live.append(row)
    return live


def remove_exports(journal: Journal) -> tuple[list[int], str | None]:
    """Overwrite and remove the export packages learnexit wrote for the customer:
    (the exports removed, the last one that could not be, as a problem or None)."""
    ledger, customer = journal.ledger, journal.customer
    removed = []
    error = None
    for row in export_rows(ledger, customer):
        if not row.get("path") or row["status"] == "removed":
            continue
        paths = package_paths(str(row["path"]))
        # (an empty folder: a removal killed between a bag's last file and its folder)
        odd = [p for p in paths if os.path.lexists(p) and not (looks_like_package(p) or left_by_removal(p))]
        if odd:
            error = f"export #{row['id']}: {odd[0]} does not look like an export package; not removed"
            continue
        try:
            for p in paths:
                if os.path.lexists(p):
                    destroy_path(p)
        except OSError as exc:
            error = f"export #{row['id']}: cannot remove {exc.filename}: {exc.strerror}"
            continue
        with ledger.transaction() as conn:
            mark_export_removed(conn, row["id"])
            journal.bump(conn, "exports", 1, 1)
            ledger.append_audit(
                conn, "purge", "export_removed", customer, {"export_id": row["id"], "purge_id": journal.purge_id}
            )
        removed.append(row["id"])
        event("purge_export_removed", customer=customer, export_id=row["id"])
    return removed, error


def exports_left(ledger: Ledger, customer: str) -> list[str]:
    """Verification: the customer's export packages still on disk, as problems."""
    problems = []
    for row in export_rows(ledger, customer):
        if row.get("path") and any(os.path.lexists(p) for p in package_paths(str(row["path"]))):
            problems.append(f"export #{row['id']} is still at {Path(str(row['path'])).name}")
    return problems
