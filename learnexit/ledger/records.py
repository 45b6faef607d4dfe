"""Typed reads and writes of one customer's offboarding records.

What the offboarding code (:mod:`learnexit.offboarding`) reads and writes in the
ledger, by name instead of by table: a case's records read in one go
(:class:`CaseRecords`), and one function per record a command makes or changes.
Writes run inside the caller's ledger transaction, next to the audit entry that
records them (``Ledger.append_audit``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import OperationalError, Refused
from ..source import describe_db_error
from . import schema
from .store import Ledger

__all__ = [
    "CaseRecords",
    "Row",
    "add_closure",
    "add_confirmation",
    "add_hold",
    "add_notice",
    "hold_row",
    "known_customers",
    "mark_hold_released",
    "mark_notice_withdrawn",
    "parse_json",
    "read_case",
    "read_case_in",
    "records_for_row",
    "require_single_open",
]

Row = dict[str, Any]
"""One ledger record, column name → value (dates naive UTC, as stored)."""


def parse_json(text: str | None, default: Any = None) -> Any:
    """A JSON column's value; ``default`` when it is empty or not JSON."""
    if not text:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


@dataclass
class CaseRecords:
    """Everything the ledger holds about one customer's current case, read in one go."""

    customer: str
    notices: list[Row] = field(default_factory=list)
    exports: list[Row] = field(default_factory=list)
    confirmations: list[Row] = field(default_factory=list)
    closures: list[Row] = field(default_factory=list)
    holds: list[Row] = field(default_factory=list)
    purges: list[Row] = field(default_factory=list)

    @property
    def active(self) -> Row | None:
        """The latest notice not withdrawn."""
        for row in reversed(self.notices):
            if row["withdrawn_at"] is None:
                return row
        return None

    @property
    def current(self) -> Row | None:
        """The active notice, else the latest (withdrawn) one."""
        return self.active or (self.notices[-1] if self.notices else None)

    @property
    def _since(self) -> datetime | None:
        # Confirmations and closures belong to the notice they followed.  With a single
        # notice everything follows it; after a withdrawal only what came later counts.
        cur = self.current
        if cur is None or len(self.notices) < 2:
            return None
        return cur["recorded_at"]  # type: ignore[no-any-return]

    @property
    def current_confirmations(self) -> list[Row]:
        """The confirmations of the current notice, oldest first."""
        since = self._since
        return [c for c in self.confirmations if since is None or c["confirmed_at"] >= since]

    @property
    def current_closures(self) -> list[Row]:
        """The account closures of the current notice, oldest first."""
        since = self._since
        return [c for c in self.closures if since is None or c["performed_at"] >= since]

    @property
    def hold(self) -> Row | None:
        """The active legal hold (not released), or None."""
        for row in reversed(self.holds):
            if row["released_at"] is None:
                return row
        return None

    @property
    def complete_exports(self) -> list[Row]:
        """The exports that finished (only these count as delivered)."""
        return [e for e in self.exports if e["status"] == "complete"]


_CASE_TABLES = (
    ("notices", schema.notices),
    ("exports", schema.exports),
    ("confirmations", schema.confirmations),
    ("closures", schema.closures),
    ("holds", schema.holds),
    ("purges", schema.purges),
)


def read_case_in(ledger: Ledger, conn: Connection, customer: str) -> CaseRecords:
    """The records of the customer key's current offboarding case (inside ``conn``)."""
    rec = CaseRecords(customer)
    for name, table in _CASE_TABLES:
        stmt = sa.select(table).where(ledger.in_case(conn, table, customer)).order_by(table.c.id)
        setattr(rec, name, [dict(r._mapping) for r in conn.execute(stmt)])
    return rec


def read_case(ledger: Ledger, customer: str) -> CaseRecords:
    """The records of the customer key's current case, in a read of their own."""
    try:
        with ledger.engine.connect() as conn:
            return read_case_in(ledger, conn, customer)
    except sa.exc.SQLAlchemyError as exc:
        raise OperationalError(f"cannot read the ledger: {describe_db_error(exc)}") from None


def records_for_row(ledger: Ledger, conn: Connection, customer: str, row_pk: str | None) -> CaseRecords:
    """The records a new record for the source row ``row_pk`` joins: none when the key's
    last case was finished by a purge and the key now names another row (a new customer)."""
    case = ledger.case(conn, customer)
    if case is not None and case["finished_at"] is not None and case["row_pk"] not in (None, row_pk):
        return CaseRecords(customer)
    return read_case_in(ledger, conn, customer)


def known_customers(ledger: Ledger) -> list[str]:
    """Customers the ledger knows: a notice or a hold was recorded for them."""
    try:
        with ledger.engine.connect() as conn:
            found = {r[0] for r in conn.execute(sa.select(schema.notices.c.customer).distinct())}
            found |= {r[0] for r in conn.execute(sa.select(schema.holds.c.customer).distinct())}
    except sa.exc.SQLAlchemyError as exc:
        raise OperationalError(f"cannot read the ledger: {describe_db_error(exc)}") from None
    return sorted(found)


def insert_row(conn: Connection, table: sa.Table, values: dict[str, Any]) -> int:
    """Insert one ledger row; its new id."""
    key = conn.execute(table.insert().values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


# --------------------------------------------------------------------------- writes


def add_notice(
    conn: Connection,
    *,
    customer: str,
    identity_id: int,
    received: date,
    channel: str,
    reference: str | None,
    recorded_by: str,
    recorded_at: datetime,
    period_end: date,
    timely: bool,
    termination_date: date,
    export_deadline: date,
    purge_due_at: datetime,
    terms: str,
) -> int:
    """Record a notice (``terms``: the JSON text of how its period was found); its id."""
    return insert_row(
        conn,
        schema.notices,
        {
            "customer": customer,
            "identity_id": identity_id,
            "received": received,
            "channel": channel,
            "reference": reference,
            "recorded_by": recorded_by,
            "recorded_at": recorded_at,
            "period_end": period_end,
            "timely": timely,
            "termination_date": termination_date,
            "export_deadline": export_deadline,
            "purge_due_at": purge_due_at,
            "terms": terms,
        },
    )


def mark_notice_withdrawn(conn: Connection, notice_id: int, at: datetime, actor: str) -> None:
    """Withdraw the notice ``notice_id`` (unless it is withdrawn already)."""
    notices = schema.notices
    conn.execute(
        notices.update()
        .where(notices.c.id == notice_id)
        .where(notices.c.withdrawn_at.is_(None))
        .values(withdrawn_at=at, withdrawn_by=actor)
    )


def add_confirmation(
    conn: Connection,
    *,
    customer: str,
    identity_id: int,
    confirmed_at: datetime,
    confirmed_by: str,
    reference: str | None,
    waived: bool,
    without_export_reason: str | None,
    recorded_by: str,
) -> int:
    """Record the customer's confirmation of the handover; its id."""
    return insert_row(
        conn,
        schema.confirmations,
        {
            "customer": customer,
            "identity_id": identity_id,
            "confirmed_at": confirmed_at,
            "confirmed_by": confirmed_by,
            "reference": reference,
            "waived": waived,
            "without_export_reason": without_export_reason,
            "recorded_by": recorded_by,
        },
    )


def add_closure(
    conn: Connection,
    *,
    customer: str,
    identity_id: int,
    performed_at: datetime,
    rows: dict[str, int],
    recorded_by: str,
) -> int:
    """Record an account closure (``rows``: rows changed per ``table.column``); its id."""
    return insert_row(
        conn,
        schema.closures,
        {
            "customer": customer,
            "identity_id": identity_id,
            "performed_at": performed_at,
            "rows": json.dumps(rows, sort_keys=True),
            "recorded_by": recorded_by,
        },
    )


def add_hold(
    conn: Connection, *, customer: str, identity_id: int, reason: str, placed_by: str, placed_at: datetime
) -> int:
    """Record a legal hold; its id."""
    return insert_row(
        conn,
        schema.holds,
        {
            "customer": customer,
            "identity_id": identity_id,
            "reason": reason,
            "placed_by": placed_by,
            "placed_at": placed_at,
        },
    )


def mark_hold_released(conn: Connection, hold_id: int, at: datetime, actor: str) -> None:
    """Release the hold ``hold_id`` (unless it is released already)."""
    holds = schema.holds
    conn.execute(
        holds.update()
        .where(holds.c.id == hold_id)
        .where(holds.c.released_at.is_(None))
        .values(released_at=at, released_by=actor)
    )


def hold_row(conn: Connection, hold_id: int) -> Row:
    """The hold ``hold_id`` as stored."""
    return dict(conn.execute(sa.select(schema.holds).where(schema.holds.c.id == hold_id)).one()._mapping)


_OPEN = {
    "notice": (schema.notices, schema.notices.c.withdrawn_at),
    "hold": (schema.holds, schema.holds.c.released_at),
}


def require_single_open(ledger: Ledger, conn: Connection, kind: Literal["notice", "hold"], customer: str) -> None:
    """Refuse (and roll back) when a concurrent command recorded a second active notice
    or hold of the customer's case.

    Call it after ``append_audit``, which serialises writers on PostgreSQL until commit.
    """
    table, open_col = _OPEN[kind]
    ids = conn.execute(
        sa.select(table.c.id).where(ledger.in_case(conn, table, customer), open_col.is_(None)).with_for_update()
    ).all()
    if len(ids) > 1:
        raise Refused(
            f"another {kind} for {customer} was recorded at the same moment; nothing recorded — "
            f"see `learnexit status {customer}`"
        )
