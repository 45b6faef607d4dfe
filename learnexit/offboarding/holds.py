"""Legal holds: ``place_hold`` / ``release_hold``.  While a hold is active no purge of
the customer runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..config import Settings
from ..errors import Refused
from ..ledger import records
from ..ledger.consistency import require_consistent
from ..ledger.records import Row
from ..ledger.store import Ledger, aware, naive_utc
from ..source import check_customer_key
from .cases import check_text, require_known
from .clock import resolve_now

__all__ = ["hold_dict", "place_hold", "release_hold"]


def hold_dict(row: Row, action: str) -> dict[str, Any]:
    """A hold record as ``hold``, ``release`` and ``status`` show it (``action``: what was done)."""
    return {
        "customer": row["customer"],
        "action": action,
        "active": row["released_at"] is None,
        "reason": row["reason"],
        "placed_by": row["placed_by"],
        "placed_at": aware(row["placed_at"]),
        "released_by": row["released_by"],
        "released_at": aware(row["released_at"]),
    }


def place_hold(
    settings: Settings, ledger: Ledger, customer: str, reason: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """Place a legal hold: every purge of the customer is blocked until it is released.

    The same hold twice changes nothing; a hold with another reason while one is active
    is refused (3): release the first, or keep it.
    """
    check_customer_key(customer)
    text = check_text(reason, "--reason", 2000, required=True) or ""
    at = resolve_now(settings, now)
    row_pk = require_known(settings, ledger, records.read_case(ledger, customer))
    with ledger.transaction() as conn:
        if row_pk is None:
            rec = records.read_case_in(ledger, conn, customer)
        else:
            rec = records.records_for_row(ledger, conn, customer, row_pk)
        current = rec.hold
        if current is not None:
            if current["reason"] == text:
                return hold_dict(current, "unchanged")
            raise Refused(
                f"{customer} is already on hold since {aware(current['placed_at']):%Y-%m-%d} "
                f"(placed by {current['placed_by']}, another reason); release it first to replace it"
            )
        hold_id = records.add_hold(
            conn,
            customer=customer,
            identity_id=ledger.open_case(conn, customer, row_pk),
            reason=text,
            placed_by=ledger.actor,
            placed_at=naive_utc(at),
        )
        ledger.append_audit(conn, "hold", "hold.placed", customer, {"hold_id": hold_id, "placed_at": naive_utc(at)})
        records.require_single_open(ledger, conn, "hold", customer)
        row = records.hold_row(conn, hold_id)
    return hold_dict(row, "placed")


def release_hold(settings: Settings, ledger: Ledger, customer: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Release the active hold.  Releasing when none is active changes nothing."""
    check_customer_key(customer)
    at = resolve_now(settings, now)
    require_consistent(ledger, customer)  # a hold released by hand in the ledger is not released
    known = records.read_case(ledger, customer)
    if not known.holds and not known.notices:
        require_known(settings, ledger, known)  # (the source, before the ledger's write lock)
    with ledger.transaction() as conn:
        rec = records.read_case_in(ledger, conn, customer)
        current = rec.hold
        if current is None:
            last = rec.holds[-1] if rec.holds else None
            return hold_dict(last, "no_active_hold") if last else {"customer": customer, "action": "no_active_hold"}
        records.mark_hold_released(conn, current["id"], naive_utc(at), ledger.actor)
        placed = aware(current["placed_at"])
        ledger.append_audit(
            conn,
            "release",
            "hold.released",
            customer,
            {
                "hold_id": current["id"],
                "held_since": placed,
                "held_days": (at - placed).days,  # type: ignore[operator]
                "released_at": naive_utc(at),
            },
        )
        row = records.hold_row(conn, current["id"])
    return hold_dict(row, "released")
