"""What a customer's records say: the timeline, ``contract.Facts``, the closure's due time.

Derived from the ledger's records and never stored (``contract.derive_state`` turns
the facts and "now" into a state).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from .. import contract
from ..contract import DEFAULT_TIMEZONE, Facts, Timeline
from ..ledger.records import CaseRecords, Row, parse_json, read_case
from ..ledger.store import Ledger, aware

__all__ = [
    "PurgeFacts",
    "active_hold",
    "active_notice",
    "closure_due",
    "closure_due_at",
    "customer_facts",
    "days_left",
    "facts_of",
    "purge_facts",
    "timeline_from_notice",
]


def timeline_from_notice(row: Row) -> Timeline:
    """The Timeline a recorded notice fixed (the stored dates are authoritative)."""
    terms = parse_json(row.get("terms"), {}) or {}
    received: date = row["received"]
    period_end: date = row["period_end"]
    export_deadline: date = row["export_deadline"]
    return Timeline(
        received=received,
        period_end=period_end,
        timely=bool(row["timely"]),
        days_before_period_end=(period_end - received).days,
        notice_days=int(terms.get("notice_days", 30)),
        termination_date=row["termination_date"],
        export_deadline=export_deadline,
        purge_due=export_deadline + timedelta(days=1),
        purge_due_at=aware(row["purge_due_at"]),  # type: ignore[arg-type]
        timezone=str(terms.get("timezone", DEFAULT_TIMEZONE)),
        reason=str(terms.get("reason", "")),
    )


def days_left(tl: Timeline, at: datetime) -> int:
    """Days to the export deadline (0: the last day; negative: closed)."""
    return (tl.export_deadline - contract.today(tl.timezone, at)).days


@dataclass(frozen=True)
class PurgeFacts:
    """What the case's purge records say."""

    purged_at: datetime | None = None  # the full purge finished
    retained_until: date | None = None  # retained rows wait until then
    retention_purged_at: datetime | None = None  # the retention purge finished
    purge_failed: bool = False  # the latest purge failed


def _retained_until(purge: Row) -> list[date]:
    until = []
    for info in (parse_json(purge.get("retained"), {}) or {}).values():
        if isinstance(info, dict) and int(info.get("rows") or 0) > 0 and info.get("until"):
            try:
                until.append(date.fromisoformat(str(info["until"])))
            except ValueError:
                continue
    return until


def purge_facts(purges: list[Row]) -> PurgeFacts:
    """purged_at, retained_until, retention_purged_at, purge_failed from purge rows."""
    done = [p for p in purges if p["status"] == "done"]
    full = next((p for p in done if p["kind"] == "full"), None)
    failed = bool(purges) and purges[-1]["status"] == "failed"
    if full is None:
        return PurgeFacts(purge_failed=failed)
    purged_at = aware(full["finished_at"] or full["started_at"])
    last = done[-1]
    left = _retained_until(last)
    if left:
        return PurgeFacts(purged_at, max(left), None, failed)
    if last["kind"] == "retention":
        ever = _retained_until(full)
        return PurgeFacts(
            purged_at, max(ever) if ever else None, aware(last["finished_at"] or last["started_at"]), failed
        )
    return PurgeFacts(purged_at, None, None, failed)


def facts_of(rec: CaseRecords) -> Facts:
    """The case's records as ``contract.Facts``."""
    cur = rec.current
    if cur is None:
        return Facts(timeline=None, hold_active=rec.hold is not None)
    confs = rec.current_confirmations
    waived = next((c for c in confs if c["waived"]), None)
    chosen = waived or (confs[0] if confs else None)
    closures = rec.current_closures
    pf = purge_facts(rec.purges)
    return Facts(
        timeline=timeline_from_notice(cur),
        withdrawn=rec.active is None,
        confirmed_at=aware(chosen["confirmed_at"]) if chosen else None,
        waived=waived is not None,
        closed_at=aware(closures[0]["performed_at"]) if closures else None,
        purged_at=pf.purged_at,
        retained_until=pf.retained_until,
        retention_purged_at=pf.retention_purged_at,
        hold_active=rec.hold is not None,
        purge_failed=pf.purge_failed,
    )


def customer_facts(ledger: Ledger, customer: str) -> Facts:
    """What the ledger knows about ``customer``, as ``contract.Facts`` for derive_state."""
    return facts_of(read_case(ledger, customer))


def closure_due(rec: CaseRecords) -> datetime | None:
    """:func:`closure_due_at` of records already read."""
    cur, confs = rec.active, rec.current_confirmations
    if cur is None or not confs:
        return None
    tl = timeline_from_notice(cur)
    after_end = contract.local_midnight_utc(tl.termination_date + timedelta(days=1), tl.timezone)
    return max(aware(confs[0]["confirmed_at"]), after_end)  # type: ignore[type-var]


def closure_due_at(ledger: Ledger, customer: str) -> datetime | None:
    """When the account closure falls due: max(first confirmation, 00:00 local on E + 1).

    None while the handover is not confirmed (or no notice is active).
    """
    return closure_due(read_case(ledger, customer))


def active_notice(ledger: Ledger, customer: str) -> dict[str, Any] | None:
    """The customer's active notice (latest not withdrawn) as a ledger row, or None."""
    return read_case(ledger, customer).active


def active_hold(ledger: Ledger, customer: str) -> dict[str, Any] | None:
    """The customer's active legal hold (not released) as a ledger row, or None."""
    return read_case(ledger, customer).hold
