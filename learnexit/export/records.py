"""An export's ledger records: its start (and the lock it holds while it runs), its
failure, its completion, and the reaping of exports whose process is gone.  A full purge
of the customer that has started refuses an export (``check_not_purged``, ``record_start``)
or, once it started meanwhile, removes the package (``record_completion``).  The purge
uses ``reap_interrupted_exports``; the rows themselves are read and written through
:mod:`learnexit.ledger.export_records`."""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..config import scrub
from ..errors import LearnexitError, OperationalError, Refused
from ..ledger.export_records import (
    add_export,
    add_export_lock,
    export_lock,
    latest_full_purge,
    mark_export_complete,
    mark_export_failed,
    mark_export_interrupted,
    remove_export_lock,
    running_exports,
    serialise,
)
from ..ledger.store import Ledger, holder_is_dead, utcnow
from ..logs import event
from ..package.build import PackageBuild, PackageResult, destroy_path, looks_like_package, package_paths
from ..source import ReadPoint, describe_db_error
from ..valuefree import first_line


def error_text(exc: BaseException) -> str:
    """An error as one line for the ledger and the worker's message: never a value."""
    if isinstance(exc, LearnexitError):
        return exc.message
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return describe_db_error(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return scrub(first_line(exc))


def _purge_started(ledger: Ledger, conn: sa.Connection, customer: str, row_pk: str | None) -> dict[str, Any] | None:
    """The latest full purge (running, failed or done) of the case ``row_pk`` belongs to."""
    case = ledger.case(conn, customer)
    if case is None or (case["finished_at"] is not None and case["row_pk"] not in (None, row_pk)):
        return None  # no case yet, or the key now names a new customer
    return latest_full_purge(conn, case["id"])


def _refuse_after_purge(ledger: Ledger, conn: sa.Connection, customer: str, row_pk: str | None) -> None:
    purge = _purge_started(ledger, conn, customer, row_pk)
    if purge is not None:  # the data is being (or has been) deleted: a package would be partial
        raise Refused(
            f"a purge of {customer} started on {purge['started_at']:%Y-%m-%d} (purge #{purge['id']}, {purge['status']}); "
            "its data can no longer be exported"
        )


def check_not_purged(ledger: Ledger, customer: str, row_pk: str | None) -> None:
    """Refused when a full purge of the customer's case has started (checked before
    anything is written; ``record_start`` checks again, serialised)."""
    try:
        with ledger.engine.connect() as conn:
            _refuse_after_purge(ledger, conn, customer, row_pk)
    except sa.exc.SQLAlchemyError as exc:
        raise OperationalError(f"cannot read the ledger: {describe_db_error(exc)}") from None


def record_start(
    ledger: Ledger,
    customer: str,
    row_pk: str | None,
    build: PackageBuild,
    formats: list[str],
    late_reason: str | None,
    at: datetime,
) -> int:
    """Record the export as ``running`` (its lock taken, audit ``export_started``), in a
    transaction that refuses when a full purge of the customer has started; its id."""
    with ledger.transaction() as conn:
        serialise(conn)
        _refuse_after_purge(ledger, conn, customer, row_pk)
        export_id = add_export(
            conn,
            customer=customer,
            identity_id=ledger.open_case(conn, customer, row_pk),
            started_at=at.replace(tzinfo=None),
            path=str(build.final),
            formats=",".join(formats),
            late_reason=late_reason,
            recorded_by=ledger.actor,
        )
        holder = f"{ledger.actor} host {socket.gethostname()} pid {os.getpid()}"
        add_export_lock(conn, export_id=export_id, holder=holder, at=utcnow())
        ledger.append_audit(
            conn,
            "export",
            "export_started",
            customer,
            {
                "export_id": export_id,
                "formats": formats,
                "late": late_reason is not None,
                "late_reason": late_reason,
                "path": str(build.final),
            },
        )
    return export_id


def record_failure(ledger: Ledger, customer: str, export_id: int, exc: BaseException) -> None:
    """Record the export as ``failed`` with ``exc``'s text, its lock removed (best effort:
    a ledger that cannot be written is logged, the original error is the one raised)."""
    error = error_text(exc)
    try:
        with ledger.transaction() as conn:
            mark_export_failed(conn, export_id, error=error, finished_at=utcnow())
            remove_export_lock(conn, export_id)
            ledger.append_audit(conn, "export", "export_failed", customer, {"export_id": export_id, "error": error})
    except LearnexitError:
        event("export_failure_not_recorded", level=40, customer=customer, export_id=export_id)


def record_completion(
    ledger: Ledger,
    customer: str,
    row_pk: str | None,
    export_id: int,
    packaged: PackageResult,
    counts: dict[str, int],
    *,
    late: bool,
    encrypted: bool,
    at: datetime,
    read: ReadPoint | None = None,
) -> None:
    """Record the published package: the export ``complete``, its lock removed, audit
    ``export_completed`` (with ``read``: where the snapshot was read, the URL masked).  A
    full purge that started while the export read makes the package hold data being
    deleted: it is destroyed, the export recorded as failed, and Refused raised.  A ledger
    that cannot record it is an OperationalError that says where the (complete) package
    is."""
    overtaken = None
    try:
        with ledger.transaction() as conn:
            serialise(conn)
            overtaken = _purge_started(ledger, conn, customer, row_pk)
            if overtaken is not None:
                raise Refused(
                    f"a purge of {customer} started while exporting (purge #{overtaken['id']}); the package was removed"
                )
            remove_export_lock(conn, export_id)
            mark_export_complete(
                conn,
                export_id,
                finished_at=at.replace(tzinfo=None),
                path=str(packaged.path),
                files=packaged.files,
                size=packaged.bytes,
                rows=json.dumps(counts, sort_keys=True),
                manifest_sha256=packaged.manifest_sha256,
            )
            details = {
                "export_id": export_id,
                "path": str(packaged.path),
                "files": packaged.files,
                "bytes": packaged.bytes,
                "rows": sum(counts.values()),
                "tables": len(counts),
                "manifest_sha256": packaged.manifest_sha256,
                "late": late,
                "encrypted": encrypted,
            }
            if read is not None:
                details["read"] = read.as_dict()
            ledger.append_audit(conn, "export", "export_completed", customer, details)
    except Refused as exc:
        if overtaken is None:
            raise
        destroy_path(packaged.path)
        record_failure(ledger, customer, export_id, exc)
        raise
    except LearnexitError as exc:
        raise OperationalError(
            f"the package is complete at {packaged.path}, but the ledger could not record it: {exc.message}"
        ) from None


# --------------------------------------------------------------------------- interrupted exports


def _interrupted_holder(conn: sa.Connection, export_id: int) -> tuple[bool, str | None]:
    """(whether the export recorded as running is interrupted, its lock's holder).  It is
    when its lock is gone (a running export always holds one) or was taken on this host by
    a process that no longer exists.  Exports keep no heartbeat, so one running on another
    host is never judged from here."""
    lock = export_lock(conn, export_id)
    if lock is None:
        return True, None
    return holder_is_dead(lock["holder"]), lock["holder"]


def reap_interrupted_exports(ledger: Ledger, customer: str | None = None) -> list[dict[str, Any]]:
    """Exports recorded as running whose process is gone (SIGKILL, a crash, a reboot), of
    ``customer`` or of every customer: their ``.partial`` builds (clear customer data) are
    destroyed as the purge destroys packages, then each is recorded as ``failed`` with the
    reason, its lock removed and an ``export_interrupted`` audit entry written, in one
    transaction that only the first of several reapers wins.  A package that was already
    published (the process died between publishing it and recording it as complete) is
    complete by construction and left in place; the record says so.  Returns one dict per
    export reaped: export_id, customer, package, holder, removed (the names destroyed),
    left (what could not be removed, with the reason: the customer's purge tries again),
    published."""
    try:
        with ledger.engine.connect() as conn:
            running = running_exports(conn, customer)
            found = []
            for row in running:
                interrupted, holder = _interrupted_holder(conn, row["id"])
                if interrupted:
                    found.append((row, holder))
    except sa.exc.SQLAlchemyError as exc:
        raise OperationalError(f"cannot read the ledger: {describe_db_error(exc)}") from None
    reaped = []
    for row, holder in found:
        export_id, path, owner = int(row["id"]), row["path"], str(row["customer"])
        removed, left, published = _remove_builds(str(path)) if path else ([], [], False)
        by = f"its process ({holder})" if holder else "its process"
        error = f"interrupted: {by} ended without finishing (killed, or the machine stopped)"
        if removed:
            error += f"; removed its partial build {', '.join(removed)}"
        if left:
            error += f"; could not remove {'; '.join(left)} (the customer's purge tries again)"
        if published:
            error += f"; its package {Path(str(path)).name} had been published and is complete"
        with ledger.transaction() as conn:
            if not mark_export_interrupted(conn, export_id, error=error, finished_at=utcnow()):
                continue  # another reaper (or the export itself) was first
            remove_export_lock(conn, export_id)
            details = {"export_id": export_id, "holder": holder, "removed": removed, "left": left}
            ledger.append_audit(conn, "export", "export_interrupted", owner, dict(details, published=published))
        package = Path(str(path)).name if path else None
        reaped.append(dict(details, customer=owner, package=package, published=published))
        event(
            "export_interrupted",
            level=30,
            customer=owner,
            export_id=export_id,
            removed=",".join(removed) or "-",
            left=len(left),
        )
    return reaped


def _remove_builds(recorded: str) -> tuple[list[str], list[str], bool]:
    """Destroy the ``.partial`` builds of the package recorded at ``recorded``: (names
    removed, what could not be removed with the reason, whether the package itself had
    been published)."""
    removed: list[str] = []
    left: list[str] = []
    published = False
    for path in package_paths(recorded):
        if not os.path.lexists(path):
            continue
        if not path.name.endswith(".partial"):
            published = looks_like_package(path)
            continue
        if not looks_like_package(path):
            left.append(f"{path.name}: not a package build, left alone")
            continue
        for attempt in range(3):  # (a worker of the killed export may still be writing)
            try:
                destroy_path(path)
            except OSError as exc:
                if not os.path.lexists(path):  # (another reaper was removing it too)
                    removed.append(path.name)
                    break
                if attempt == 2:
                    left.append(f"{path.name}: {exc.strerror or exc}")
                else:
                    time.sleep(0.2)
            else:
                removed.append(path.name)
                break
    return removed, left, published


__all__ = [
    "check_not_purged",
    "error_text",
    "reap_interrupted_exports",
    "record_completion",
    "record_failure",
    "record_start",
]
