"""The ledger's state tables checked against its hash-chained audit entries.

Every state change writes its ledger row and its audit entry in one transaction, and the
entry's details repeat what decides later (dates, flags, ids, digests).  The chain makes
the entries tamper-evident; the rows are not.  So before a decision that deletes or
refuses (a purge, ``purge --due``, the export window, confirm, release, the closure) the
customer's rows are compared with their entries: a row without its entry, an entry whose
row is gone, a field that differs, a state (withdrawn, released, a purge's or an export's
status) no entry set — each is a problem, and the decision is refused with
:class:`VerificationFailed` (exit 1).  ``audit --verify`` reports them all.  A detail an
older entry lacks is not compared.  Reads only, one snapshot per check.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import OperationalError, VerificationFailed
from ..source import describe_db_error
from . import schema as L
from .store import Ledger, entry_hash

__all__ = ["all_problems", "customer_problems", "digest", "refusal", "require_consistent"]

_TABLES = {t.name: t for t in (L.notices, L.holds, L.confirmations, L.closures, L.purges, L.exports)}
_KEYS = {"notice_id", "hold_id", "confirmation_id", "closure_id", "purge_id", "export_id"}


def digest(text: str | None) -> str:
    """The sha256 of a stored JSON text (what the audit keeps of a purge's plan)."""
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- values


def _day(value: Any) -> str:
    return value.isoformat()[:10] if isinstance(value, date) else str(value)[:10]


def _instant(value: Any) -> datetime | None:
    """Naive UTC (what the ledger stores), from a datetime or ISO text."""
    try:
        value = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def _loads(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _same(kind: str, stored: Any, recorded: Any) -> bool:
    if kind == "day":
        return stored is not None and _day(stored) == _day(recorded)
    if kind == "instant":
        a, b = _instant(stored), _instant(recorded)
        return a is not None and b is not None and abs((a - b).total_seconds()) < 1
    if kind == "flag":
        return bool(stored) == bool(recorded)
    if kind == "json":
        return _loads(stored) == recorded
    if kind == "sha256":
        return digest(stored) == recorded
    return stored == recorded


# --------------------------------------------------------------------------- the index


class _Entries:
    """One customer's audit entries by (event, record id)."""

    def __init__(self, customer: str, entries: Iterable[dict[str, Any]], hashes: bool) -> None:
        self.customer = customer
        self.by: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        self.problems: list[str] = []
        self.removed_by_purges: set[int] = set()  # exports a purge summary named (older ledgers)
        for entry in entries:
            if hashes and entry_hash(entry) != entry["hash"]:
                self.problems.append(f"{customer}: audit entry {entry['id']} does not match its hash (edited)")
            details = _loads(entry["details"])
            if not isinstance(details, dict):
                continue
            item = {"id": entry["id"], "event": entry["event"], "details": details}
            for key in _KEYS & details.keys():
                if isinstance(details[key], int):
                    self.by.setdefault((entry["event"], key, details[key]), []).append(item)
            removed = details.get("exports_removed") if entry["event"] in ("purge.verified", "purge.failed") else None
            self.removed_by_purges |= {i for i in removed if isinstance(i, int)} if isinstance(removed, list) else set()

    def find(self, events: Iterable[str], key: str, record_id: int) -> list[dict[str, Any]]:
        """The entries of these events naming the record, oldest first."""
        return sorted((e for ev in events for e in self.by.get((ev, key, record_id), [])), key=lambda e: e["id"])

    def first(self, events: Iterable[str], key: str, record_id: int) -> dict[str, Any] | None:
        found = self.find(events, key, record_id)
        return found[0] if found else None

    def last(self, events: Iterable[str], key: str, record_id: int) -> dict[str, Any] | None:
        found = self.find(events, key, record_id)
        return found[-1] if found else None


class _Check:
    """The problems of one customer: its rows (every case) against its entries."""

    def __init__(self, entries: _Entries, rows: dict[str, list[dict[str, Any]]]) -> None:
        self.ix = entries
        self.customer = entries.customer
        self.rows = rows
        self.problems = list(entries.problems)

    def record(self, table: str, row: dict[str, Any]) -> str:
        return f"{self.customer}: ledger record {table} #{row['id']}"

    def disagree(self, table: str, row: dict[str, Any], entry: dict[str, Any], what: str) -> None:
        self.problems.append(f"{self.record(table, row)} disagrees with its audit entry {entry['id']} ({what})")

    def compare(self, table: str, row: dict[str, Any], entry: dict[str, Any], fields: str) -> None:
        """Each detail the entry has must match its column; ``fields``: ``column[=detail]:kind ...``."""
        differ = []
        for spec in fields.split():
            names, kind = spec.split(":")
            column, _, key = names.partition("=")
            if (key or column) in entry["details"] and not _same(kind, row[column], entry["details"][key or column]):
                differ.append(column)
        if differ:
            self.disagree(table, row, entry, ", ".join(differ))

    def flag(self, table: str, row: dict[str, Any], column: str, entry: dict[str, Any] | None, event: str) -> None:
        """``column`` is set exactly when ``event`` was recorded, to what it recorded."""
        if row[column] is not None and entry is None:
            self.problems.append(
                f"{self.record(table, row)} disagrees with its audit entries ({column} set, no {event} entry)"
            )
        elif entry is not None and row[column] is None:
            self.disagree(table, row, entry, column)
        elif entry is not None:
            self.compare(table, row, entry, f"{column}:instant")

    def run(self) -> list[str]:
        for table, (events, key, rule) in _CREATED.items():
            ids = {int(r["id"]) for r in self.rows.get(table, [])}
            for (event, name, record_id), found in sorted(self.ix.by.items()):
                if event in events and name == key and record_id not in ids:
                    self.problems.append(
                        f"{self.customer}: audit entry {found[0]['id']} ({event}) names ledger record "
                        f"{table} #{record_id}, which is not there"
                    )
            for row in self.rows.get(table, []):
                entry = self.ix.first(events, key, int(row["id"]))
                if entry is None:
                    self.problems.append(f"{self.record(table, row)} has no audit entry ({events[0]})")
                else:
                    rule(self, row, entry)
        return self.problems


def _notice(c: _Check, row: dict[str, Any], entry: dict[str, Any]) -> None:
    fields = "received:day period_end:day termination_date:day export_deadline:day timely:flag purge_due_at:instant"
    c.compare("notices", row, entry, fields + " recorded_at:instant")
    withdrawn = c.ix.first(["notice.withdrawn"], "notice_id", int(row["id"]))
    c.flag("notices", row, "withdrawn_at", withdrawn, "notice.withdrawn")


def _hold(c: _Check, row: dict[str, Any], entry: dict[str, Any]) -> None:
    c.compare("holds", row, entry, "placed_at:instant")
    c.flag("holds", row, "released_at", c.ix.first(["hold.released"], "hold_id", int(row["id"])), "hold.released")


def _confirmation(c: _Check, row: dict[str, Any], entry: dict[str, Any]) -> None:
    fields = "waived:flag without_export_reason=without_export:flag confirmed_at:instant"
    c.compare("confirmations", row, entry, fields)


def _closure(c: _Check, row: dict[str, Any], entry: dict[str, Any]) -> None:
    c.compare("closures", row, entry, "rows:json performed_at:instant")


_PURGE_STARTED = ("purge.started", "purge.reapply_started")  # (reapply: a restore deleted again)
_PURGE_STATUS = dict.fromkeys((*_PURGE_STARTED, "purge.resumed"), "running")
_PURGE_STATUS.update({"purge.failed": "failed", "purge.done": "done", "purge.reapplied": "done"})


def _purge(c: _Check, row: dict[str, Any], entry: dict[str, Any]) -> None:
    c.compare("purges", row, entry, "kind:value forced_reason=forced:flag plan=plan_sha256:sha256")
    last = c.ix.last(_PURGE_STATUS, "purge_id", int(row["id"]))
    assert last is not None  # purge.started at least
    if row["status"] != _PURGE_STATUS[last["event"]]:
        c.disagree("purges", row, last, "status")
    elif row["status"] == "done":
        c.compare("purges", row, last, "retained=retained_sha256:sha256 finished_at:instant")


_EXPORT_STATUS = {"export_completed": "complete", "export_failed": "failed", "export_interrupted": "failed"}


def _export(c: _Check, row: dict[str, Any], entry: dict[str, Any]) -> None:
    export_id = int(row["id"])
    # Its status is the last one an entry set (a purge may remove a running export's build
    # and the export then record its failure, or the other way round).
    last = c.ix.last([*_EXPORT_STATUS, "export_removed"], "export_id", export_id) or entry
    expected = _EXPORT_STATUS.get(last["event"], "removed" if last is not entry else "running")
    if row["status"] == "removed" and export_id in c.ix.removed_by_purges:
        expected = "removed"  # removed by a purge of an older learnexit (no export_removed entry)
    if row["status"] != expected:
        return c.disagree("exports", row, last, "status")
    completed = c.ix.last(["export_completed"], "export_id", export_id)
    c.compare("exports", row, completed or entry, "path:value")
    if completed is not None:
        c.compare("exports", row, completed, "files:value bytes:value manifest_sha256:value")


# Per table: the events that create its records, the detail naming them, the rule.
_CREATED = {
    "notices": (("notice.recorded",), "notice_id", _notice),
    "holds": (("hold.placed",), "hold_id", _hold),
    "confirmations": (("handover.confirmed", "handover.window_waived"), "confirmation_id", _confirmation),
    "closures": (("closure.performed", "closure.repeated"), "closure_id", _closure),
    "purges": (_PURGE_STARTED, "purge_id", _purge),
    "exports": (("export_started",), "export_id", _export),
}


# --------------------------------------------------------------------------- reading


@contextmanager
def _snapshot(ledger: Ledger) -> Iterator[Connection]:
    """One read transaction (SQLite: the ledger's lock; the servers: repeatable read)."""
    try:
        with ledger.engine.connect() as conn:
            if ledger.engine.dialect.name != "sqlite":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
    except sa.exc.SQLAlchemyError as exc:
        raise OperationalError(f"cannot read the ledger: {describe_db_error(exc)}") from None


def _dicts(conn: Connection, stmt: sa.Select[Any]) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(stmt)]


def customer_problems(ledger: Ledger, customer: str) -> list[str]:
    """Where ``customer``'s ledger records (every case of the key) disagree with the
    audit entries that recorded them; one line each, naming the customer and the record."""
    with _snapshot(ledger) as conn:
        entries = _dicts(conn, sa.select(L.audit).where(L.audit.c.customer == customer).order_by(L.audit.c.id))
        rows = {
            name: _dicts(conn, sa.select(t).where(t.c.customer == customer).order_by(t.c.id))
            for name, t in _TABLES.items()
        }
    return _Check(_Entries(customer, entries, hashes=True), rows).run()


def all_problems(ledger: Ledger, *, hashes: bool = True) -> dict[str, list[str]]:
    """``customer_problems`` of every customer the ledger or its audit names (one read of
    each table); only customers with problems.  ``hashes=False`` leaves edited entries to
    ``Ledger.verify_audit``."""
    entries: dict[str, list[dict[str, Any]]] = {}
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with _snapshot(ledger) as conn:
        for entry in conn.execute(sa.select(L.audit).where(L.audit.c.customer.is_not(None)).order_by(L.audit.c.id)):
            entries.setdefault(entry.customer, []).append(dict(entry._mapping))
        for name, t in _TABLES.items():
            for row in conn.execute(sa.select(t).order_by(t.c.id)):
                rows.setdefault(row.customer, {}).setdefault(name, []).append(dict(row._mapping))
    found = {
        c: _Check(_Entries(c, entries.get(c, []), hashes), rows.get(c, {})).run() for c in entries.keys() | rows.keys()
    }
    return {c: found[c] for c in sorted(found) if found[c]}


def refusal(problems: list[str]) -> VerificationFailed:
    """The error a decision raises for ``problems`` (one customer's, not empty)."""
    more = f" ({len(problems) - 1} more: see `learnexit audit --verify`)" if len(problems) > 1 else ""
    return VerificationFailed(f"{problems[0]}; nothing was done{more}")


def require_consistent(ledger: Ledger, customer: str) -> None:
    """VerificationFailed (exit 1) unless ``customer``'s records agree with the audit."""
    problems = customer_problems(ledger, customer)
    if problems:
        raise refusal(problems)
