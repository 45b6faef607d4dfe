"""What ``status`` and ``audit`` show: a customer's offboarding as JSON-ready data.

State is derived from the recorded events and ``now`` (``contract.derive_state``),
never stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from .. import contract
from ..config import Settings
from ..contract import Facts
from ..ledger import records
from ..ledger.consistency import all_problems
from ..ledger.records import CaseRecords, Row, parse_json
from ..ledger.store import Ledger, aware
from .cases import is_new_customer
from .clock import resolve_now
from .facts import closure_due, days_left, facts_of
from .holds import hold_dict

__all__ = ["NOTICE_KEYS", "all_statuses", "audit_report", "customer_status"]

NOTICE_KEYS = (
    "customer",
    "received",
    "period_end",
    "timely",
    "termination_date",
    "export_deadline",
    "purge_due",
    "state",
)


def _export_dict(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "status": row["status"],
        "started_at": aware(row["started_at"]),
        "finished_at": aware(row["finished_at"]),
        "path": row["path"],
        "formats": row["formats"],
        "files": row["files"],
        "bytes": row["bytes"],
        "late_reason": row["late_reason"],
    }


def _purge_dict(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "started_at": aware(row["started_at"]),
        "finished_at": aware(row["finished_at"]),
        "deleted": parse_json(row["deleted"], {}),
        "retained": parse_json(row["retained"], {}),
        "kept_shared": parse_json(row["kept_shared"], {}),
        "verified": row["verified"],
        "certificate": row["certificate"],
        "error": row["error"],
        "forced_reason": row["forced_reason"],
    }


def _notice_part(settings: Settings, rec: CaseRecords, facts: Facts, state: str, at: datetime) -> dict[str, Any]:
    """The notice keys: the timeline of the current notice (null dates without one)."""
    out: dict[str, Any] = {
        "customer": rec.customer,
        "state": state,
        "received": None,
        "channel": None,
        "reference": None,
        "period_end": None,
        "timely": None,
        "late": None,
        "reason": None,
        "notice_days": None,
        "days_before_period_end": None,
        "termination_date": None,
        "export_deadline": None,
        "purge_due": None,
        "purge_due_at": None,
        "waived": facts.waived,
        "timezone": settings.contract.timezone,
        "days_left": None,
        "recorded_at": None,
        "recorded_by": None,
        "withdrawn_at": None,
    }
    cur, tl = rec.current, facts.timeline
    if cur is None or tl is None:
        return out
    due_at = contract.effective_purge_due_at(facts)
    assert due_at is not None
    out.update(
        received=tl.received,
        channel=cur["channel"],
        reference=cur["reference"],
        period_end=tl.period_end,
        timely=tl.timely,
        late=not tl.timely,
        reason=tl.reason,
        notice_days=tl.notice_days,
        days_before_period_end=tl.days_before_period_end,
        termination_date=tl.termination_date,
        export_deadline=tl.export_deadline,
        purge_due=due_at.astimezone(ZoneInfo(tl.timezone)).date(),
        purge_due_at=due_at,
        timezone=tl.timezone,
        days_left=days_left(tl, at),
        recorded_at=aware(cur["recorded_at"]),
        recorded_by=cur["recorded_by"],
        withdrawn_at=aware(cur["withdrawn_at"]),
    )
    return out


def _confirmation_part(rec: CaseRecords, facts: Facts) -> dict[str, Any] | None:
    confs = rec.current_confirmations
    if not confs:
        return None
    first = confs[0]
    return {
        "confirmed_at": aware(first["confirmed_at"]),
        "confirmed_by": first["confirmed_by"],
        "reference": first["reference"],
        "waived": facts.waived,
        "without_export_reason": first["without_export_reason"],
        "recorded_by": first["recorded_by"],
    }


def _closure_part(rec: CaseRecords, at: datetime) -> dict[str, Any]:
    closures = rec.current_closures
    due = closure_due(rec)
    if closures:
        return {
            "status": "done",
            "due_at": due,
            "performed_at": aware(closures[0]["performed_at"]),
            "rows": parse_json(closures[0]["rows"], {}),
        }
    if rec.active is None:
        return {"status": "none", "due_at": None, "performed_at": None, "rows": None}
    if due is None:
        return {"status": "awaiting_confirmation", "due_at": None, "performed_at": None, "rows": None}
    return {"status": "due" if at >= due else "scheduled", "due_at": due, "performed_at": None, "rows": None}


def _history(rec: CaseRecords) -> list[dict[str, Any]]:
    return [
        {
            "notice_id": n["id"],
            "received": n["received"],
            "termination_date": n["termination_date"],
            "recorded_at": aware(n["recorded_at"]),
            "recorded_by": n["recorded_by"],
            "withdrawn_at": aware(n["withdrawn_at"]),
            "withdrawn_by": n["withdrawn_by"],
        }
        for n in rec.notices
    ]


def customer_status(
    settings: Settings,
    ledger: Ledger,
    customer: str,
    now: datetime | None = None,
    *,
    records_read: CaseRecords | None = None,
) -> dict[str, Any]:
    """Everything known about one customer's offboarding, JSON-ready (ISO dates).

    Keys: the notice keys of design §3 (customer, received, period_end, timely,
    termination_date, export_deadline, purge_due, state) plus channel, reference, reason,
    notice_days, days_before_period_end, timezone, purge_due_at (effective, after a
    waiver), waived, days_left (to the export deadline; 0 = last day), recorded_at,
    recorded_by, withdrawn_at, exports, exported, confirmation, confirmed, closure,
    holds, hold_active, purges, purged_at, retained_until, history.  A customer without
    a notice has state "none" and null dates.  ``records_read``: the customer's records
    when the caller has just read them.
    """
    at = resolve_now(settings, now)
    rec = records_read if records_read is not None else records.read_case(ledger, customer)
    if records_read is None and is_new_customer(settings, ledger, customer):
        rec = CaseRecords(customer)  # the key names a new row: its own case, nothing recorded yet
    facts = facts_of(rec)
    out = _notice_part(settings, rec, facts, contract.derive_state(facts, at), at)
    complete = rec.complete_exports
    out["exports"] = {
        "complete": len(complete),
        "failed": sum(1 for e in rec.exports if e["status"] == "failed"),
        "last_complete": _export_dict(complete[-1]) if complete else None,
        "all": [_export_dict(e) for e in rec.exports],
    }
    out["exported"] = bool(complete)
    out["confirmation"] = _confirmation_part(rec, facts)
    out["confirmed"] = bool(rec.current_confirmations)
    out["closure"] = _closure_part(rec, at)
    out["hold_active"] = rec.hold is not None
    out["holds"] = [hold_dict(h, "active" if h["released_at"] is None else "released") for h in rec.holds]
    out["purges"] = [_purge_dict(p) for p in rec.purges]
    out["purged_at"] = facts.purged_at
    out["retained_until"] = facts.retained_until
    out["history"] = _history(rec)
    return out


def all_statuses(settings: Settings, ledger: Ledger, now: datetime | None = None) -> list[dict[str, Any]]:
    """``customer_status`` for every customer the ledger knows."""
    at = resolve_now(settings, now)
    return [customer_status(settings, ledger, c, at) for c in records.known_customers(ledger)]


def audit_report(ledger: Ledger, customer: str | None = None, *, verify: bool = False) -> dict[str, Any]:
    """The audit log (optionally one customer's entries) and, with ``verify``, the chain check
    and every ledger record that disagrees with its audit entries (``ledger_problems``, also
    in ``problems``; ``valid`` only when both are clean)."""
    entries = []
    for e in ledger.audit_entries(customer):
        entries.append(
            {
                "id": e["id"],
                "at": aware(e["at"]),
                "actor": e["actor"],
                "command": e["command"],
                "customer": e["customer"],
                "event": e["event"],
                "details": parse_json(e["details"], {}),
                "hash": e["hash"],
            }
        )
    out: dict[str, Any] = {"customer": customer, "entries": entries, "head": ledger.audit_head()}
    if verify:
        check = ledger.verify_audit()
        # The state tables must say what their entries recorded (edited entries are the chain's).
        ledger_problems = [p for found in all_problems(ledger, hashes=False).values() for p in found]
        out.update(
            valid=check.valid and not ledger_problems,
            chain_valid=check.valid,
            checked=check.entries,
            problems=check.problems + ledger_problems,
            ledger_problems=ledger_problems,
            head=check.head,
        )
    return out
