"""The customer's confirmation that the handover is complete: ``confirm_handover``.

The account closure (design §1) runs at once when the termination date has passed,
otherwise at 00:00 local time on the day after it (the service runs through E);
:func:`learnexit.offboarding.closure.due_closures` lists the customers whose time has
come (cron's ``purge --due``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from .. import contract
from ..config import Settings
from ..errors import BadInput, LearnexitError, Refused
from ..ledger import records
from ..ledger.consistency import require_consistent
from ..ledger.records import CaseRecords, Row
from ..ledger.store import Ledger, naive_utc
from ..package.handover import record_delivery, resolve_package
from ..source import check_customer_key
from .cases import MAX_NAME, MAX_REFERENCE, check_text, require_known, require_same_row
from .clock import resolve_now
from .closure import run_closure
from .facts import closure_due, facts_of, purge_facts
from .status import customer_status

__all__ = ["confirm_handover"]


@dataclass
class _Request:
    """What ``confirm`` was given, checked."""

    customer: str
    by: str
    reference: str | None
    waive_window: bool
    without_export_reason: str | None
    package: str | None
    at: datetime


def _refuse(req: _Request, rec: CaseRecords) -> Row:
    """The active notice, or Refused/BadInput for a confirmation that cannot be recorded."""
    customer = req.customer
    active = rec.active
    if active is None:
        if rec.notices:
            raise Refused(f"the notice of {customer} was withdrawn; there is no handover to confirm")
        raise Refused(f"no notice recorded for {customer}; record it first with `learnexit notice {customer}`")
    if purge_facts(rec.purges).purged_at is not None:
        raise Refused(f"{customer} was purged already; nothing to confirm")
    confs = rec.current_confirmations
    if req.package is not None and (confs or (req.without_export_reason and not rec.complete_exports)):
        raise BadInput("--package names the delivered export on the first confirmation, with an export")
    if not confs and not rec.complete_exports and not req.without_export_reason:
        raise Refused(
            f"no complete export of {customer} has been delivered; export first "
            f"(`learnexit export {customer}`) or confirm with --without-export --reason TEXT"
        )
    return active


def _record(ledger: Ledger, conn: Connection, req: _Request, rec: CaseRecords, active: Row) -> Row | None:
    """The confirmation (first, or the one that adds a waiver), its delivery and its audit
    entry; the delivered export."""
    customer, confs = req.customer, rec.current_confirmations
    confirmed_at = naive_utc(req.at)
    without_export = req.without_export_reason if not rec.complete_exports else None
    conf_id = records.add_confirmation(
        conn,
        customer=customer,
        identity_id=ledger.case_id(conn, customer),
        confirmed_at=confirmed_at,
        confirmed_by=req.by,
        reference=req.reference,
        waived=bool(req.waive_window),
        without_export_reason=without_export,
        recorded_by=ledger.actor,
    )
    delivered: Row | None = None
    if not confs and not without_export:
        delivered = resolve_package(conn, customer, req.package)
        if delivered is not None:
            record_delivery(conn, customer, conf_id, delivered, confirmed_at, ledger.actor)
    rec = records.read_case_in(ledger, conn, customer)
    ledger.append_audit(
        conn,
        "confirm",
        "handover.confirmed" if not confs else "handover.window_waived",
        customer,
        {
            "confirmation_id": conf_id,
            "notice_id": active["id"],
            "waived": bool(req.waive_window),
            "without_export": bool(without_export),
            "confirmed_at": confirmed_at,
            "complete_exports": len(rec.complete_exports),
            **(
                {"delivered_export_id": delivered["id"], "delivered_manifest": delivered["manifest_sha256"]}
                if delivered
                else {}
            ),
            "purge_due_at": contract.effective_purge_due_at(facts_of(rec)),
            "closure_due_at": closure_due(rec),
        },
    )
    return delivered


def _close_if_due(
    settings: Settings, ledger: Ledger, customer: str, at: datetime
) -> tuple[CaseRecords, dict[str, int] | None]:
    """Run the account closure when it is due and not done; the records after it."""
    rec = records.read_case(ledger, customer)
    due = closure_due(rec)
    if rec.current_closures or due is None or at < due:
        return rec, None
    try:
        ran = run_closure(settings, ledger, customer, now=at)
    except LearnexitError as exc:
        raise type(exc)(
            f"handover confirmed and recorded, but the account closure failed: {exc.message}; "
            "`learnexit purge --due` retries it"
        ) from None
    return records.read_case(ledger, customer), ran


def confirm_handover(
    settings: Settings,
    ledger: Ledger,
    customer: str,
    *,
    by: str,
    reference: str | None = None,
    waive_window: bool = False,
    without_export_reason: str | None = None,
    package: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record the customer's confirmation that the handover is complete.

    ``package`` names the export the customer received (an export id, or the package's
    path or name; by default the latest complete export): recorded in ``deliveries``
    and in the audit entry, so that the deletion certificate lists only that package as
    delivered.  It is recorded with the first confirmation only.

    Refused (3) without an active notice, after a purge, or before any ``complete``
    export unless ``without_export_reason`` is given (it is not stored when a complete
    export exists: the handover then had an export).  Idempotent: confirming again
    changes nothing, except that a later ``waive_window`` adds the waiver.  Runs the
    account closure when it is due (termination date passed), else reports when it is
    scheduled.  A closure that fails leaves the confirmation recorded and raises
    OperationalError (``purge --due`` retries the closure).
    """
    check_customer_key(customer)
    req = _Request(
        customer=customer,
        by=check_text(by, "--by", MAX_NAME, required=True) or "",
        reference=check_text(reference, "--reference", MAX_REFERENCE),
        waive_window=waive_window,
        without_export_reason=check_text(without_export_reason, "--reason", 2000),
        package=package,
        at=resolve_now(settings, now),
    )
    require_known(settings, ledger, records.read_case(ledger, customer))  # unknown: bad input (2), not refused
    require_consistent(ledger, customer)  # the purge-due date it records comes from these records
    require_same_row(settings, ledger, customer)
    action = "unchanged"
    delivered: Row | None = None
    with ledger.transaction() as conn:
        rec = records.read_case_in(ledger, conn, customer)
        active = _refuse(req, rec)
        confs = rec.current_confirmations
        if not confs or (waive_window and not any(c["waived"] for c in confs)):
            delivered = _record(ledger, conn, req, rec, active)
            action = "recorded" if not confs else "waiver_added"
    rec, ran = _close_if_due(settings, ledger, customer, req.at)
    result = customer_status(settings, ledger, customer, now=req.at, records_read=rec)
    result["action"] = action
    result["delivered_export_id"] = delivered["id"] if delivered else None
    result["closure"]["ran_now"] = ran is not None
    result["closure"]["changed"] = ran
    return result
