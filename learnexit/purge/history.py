"""What the ledger says about a customer's earlier purges (reads only).

The purges and exports of the current case (through :mod:`learnexit.ledger.purge_records`
and :mod:`learnexit.ledger.export_records`), the retention they left and when it
is due, the keys they recorded (people to decide on, rows retained), the customer's
name as the first plan stored it, whether the customer's own row is gone, and the
certificate a ``reapply`` purge's addendum extends.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ..config import Settings
from ..ledger.export_records import exports_of
from ..ledger.purge_records import case_purge_keys, purge_keys_of, purges_of, step_done_in_case
from ..ledger.records import Row
from ..ledger.store import Ledger, aware
from .conditions import db_error
from .keys import json_or

__all__ = [
    "addendum_facts",
    "candidate_keys",
    "earlier_keys",
    "export_rows",
    "pending_retention",
    "purge_rows",
    "retention_due_day",
    "root_deleted",
    "stored_name",
]


def purge_rows(ledger: Ledger, customer: str) -> list[Row]:
    """The purges of ``customer``'s current case, oldest first."""
    try:
        return purges_of(ledger, customer)
    except SQLAlchemyError as exc:
        raise db_error("cannot read the ledger", exc) from None


def export_rows(ledger: Ledger, customer: str) -> list[Row]:
    """The exports of ``customer``'s current case, oldest first."""
    try:
        return exports_of(ledger, customer)
    except SQLAlchemyError as exc:
        raise db_error("cannot read the ledger", exc) from None


def pending_retention(purge: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The retention a done purge left: tables with rows retained and their date."""
    out = {}
    for table, info in (json_or(purge.get("retained"), {}) or {}).items():
        if isinstance(info, dict) and int(info.get("rows") or 0) > 0 and info.get("until"):
            out[table] = info
    return out


def retention_due_day(retention: dict[str, dict[str, Any]]) -> date | None:
    """The first day a retention purge is due (the day after the earliest "until")."""
    days = []
    for info in retention.values():
        try:
            days.append(date.fromisoformat(str(info["until"])) + timedelta(days=1))
        except (ValueError, KeyError):
            continue
    return min(days) if days else None


def earlier_keys(ledger: Ledger, customer: str, prefix: str, exclude: int | None) -> dict[str, set[str]]:
    """purge_keys rows named ``prefix<table>`` of this customer's earlier purges."""
    out: dict[str, set[str]] = {}
    try:
        with ledger.engine.connect() as conn:
            for name, key in case_purge_keys(ledger, conn, customer, prefix, exclude):
                out.setdefault(name[len(prefix) :], set()).add(key)
    except SQLAlchemyError as exc:
        raise db_error("cannot read the ledger", exc) from None
    return out


def candidate_keys(ledger: Ledger, purge_id: int) -> dict[str, set[str]]:
    """The owned_via candidates (people) a purge recorded, per table."""
    out: dict[str, set[str]] = {}
    try:
        with ledger.engine.connect() as conn:
            for name, key in purge_keys_of(conn, purge_id):
                if ":" not in name:
                    out.setdefault(name, set()).add(key)
    except SQLAlchemyError as exc:
        raise db_error("cannot read the ledger", exc) from None
    return out


def stored_name(purges: list[dict[str, Any]], customer: str) -> str:
    """The customer's name as a purge's stored plan has it (else the key)."""
    for p in reversed(purges):
        name = (json_or(p.get("plan"), {}) or {}).get("name")
        if name:
            return str(name)
    return customer


def root_deleted(settings: Settings, ledger: Ledger, customer: str) -> bool:
    """Has a purge of the current case deleted the customer's own row already?"""
    table = settings.customer.table
    if not table:
        return False
    try:
        with ledger.engine.connect() as conn:
            return step_done_in_case(ledger, conn, customer, table)
    except SQLAlchemyError as exc:
        raise db_error("cannot read the ledger", exc) from None


def addendum_facts(ledger: Ledger, customer: str) -> dict[str, Any]:
    """The certificate a reapply purge's addendum extends (inside the case): the case's
    full purge, its certificate's file name and SHA-256 (as its ``purge.done`` entry
    recorded it), and whether a retention purge of the case is done."""
    purges = purges_of(ledger, customer)
    first = next((p for p in purges if p["kind"] == "full" and p["status"] == "done"), None)
    if first is None:
        return {}
    digest = None
    for entry in ledger.audit_entries(customer):
        if entry["event"] != "purge.done":
            continue
        details = json.loads(entry["details"] or "{}")
        if details.get("purge_id") == first["id"]:
            digest = details.get("certificate_sha256")
    return {
        "purge_id": int(first["id"]),
        "certificate": Path(str(first["certificate"])).name if first.get("certificate") else None,
        "sha256": digest,
        "finished_at": aware(first["finished_at"]),
        "retention_done": any(p["kind"] == "retention" and p["status"] == "done" for p in purges),
    }
