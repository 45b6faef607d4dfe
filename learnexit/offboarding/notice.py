"""A written notice and the dates it sets: ``record_notice`` / ``withdraw_notice``.

The same notice twice changes nothing; a different one is refused (exit 3) until the
first is withdrawn.  Back-dated notices are allowed (``recorded_at`` keeps when it was
entered); notices from the future are not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Connection

from .. import contract
from ..config import Settings
from ..contract import Facts, Timeline
from ..errors import BadInput, Refused
from ..ledger import records
from ..ledger.records import CaseRecords, Row, parse_json
from ..ledger.store import Ledger, aware, naive_utc
from ..source import check_customer_key
from .cases import MAX_REFERENCE, check_text, open_source
from .clock import resolve_now
from .facts import days_left, facts_of, purge_facts, timeline_from_notice
from .terms import ContractTerms, resolve_terms, timeline_for

__all__ = ["CHANNELS", "NoticeOutcome", "record_notice", "withdraw_notice"]

CHANNELS = ("email", "letter", "other")


@dataclass
class NoticeOutcome:
    """What ``record_notice`` / ``withdraw_notice`` did, with the facts to show."""

    customer: str
    name: str
    timeline: Timeline
    action: str  # recorded | unchanged | dry_run | withdrawn | already_withdrawn
    channel: str
    reference: str | None
    terms: dict[str, Any]
    state: str
    days_left: int
    recorded_at: datetime | None = None
    recorded_by: str | None = None
    withdrawn_at: datetime | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.action in ("recorded", "withdrawn")

    def as_dict(self) -> dict[str, Any]:
        tl = self.timeline
        return {
            "customer": self.customer,
            "name": self.name,
            "action": self.action,
            "recorded": self.action == "recorded",
            "dry_run": self.action == "dry_run",
            "received": tl.received,
            "channel": self.channel,
            "reference": self.reference,
            "period_end": tl.period_end,
            "timely": tl.timely,
            "late": not tl.timely,
            "reason": tl.reason,
            "days_before_period_end": tl.days_before_period_end,
            "notice_days": tl.notice_days,
            "termination_date": tl.termination_date,
            "export_deadline": tl.export_deadline,
            "purge_due": tl.purge_due,
            "purge_due_at": tl.purge_due_at,
            "timezone": tl.timezone,
            "days_left": self.days_left,
            "state": self.state,
            "terms": self.terms,
            "recorded_at": self.recorded_at,
            "recorded_by": self.recorded_by,
            "withdrawn_at": self.withdrawn_at,
            "notes": list(self.notes),
        }


def _notice_differences(row: Row, tl: Timeline, channel: str, reference: str | None) -> list[str]:
    diffs = []
    for what, old, new in (
        ("received", row["received"], tl.received),
        ("period end", row["period_end"], tl.period_end),
        ("termination date", row["termination_date"], tl.termination_date),
        ("channel", row["channel"], channel),
        ("reference", row["reference"], reference),
    ):
        if old != new:
            show_old = old.isoformat() if isinstance(old, date) else (old or "none")
            show_new = new.isoformat() if isinstance(new, date) else (new or "none")
            if what == "reference":
                diffs.append("reference")
            else:
                diffs.append(f"{what} {show_old} → {show_new}")
    return diffs


@dataclass
class _Draft:
    """A notice about to be recorded: what the command was given and what it sets."""

    customer: str
    name: str
    row_pk: str | None
    channel: str
    reference: str | None
    terms: ContractTerms
    terms_json: dict[str, Any]
    timeline: Timeline
    at: datetime
    today: date

    def outcome(self, action: str, rec: CaseRecords | None, row: Row | None) -> NoticeOutcome:
        """The outcome of ``action``: of the recorded ``row`` when given, else of this draft."""
        tl, at = self.timeline, self.at
        state = contract.derive_state(facts_of(rec) if rec is not None else Facts(timeline=tl), at)
        return NoticeOutcome(
            customer=self.customer,
            name=self.name,
            timeline=timeline_from_notice(row) if row else tl,
            action=action,
            channel=row["channel"] if row else self.channel,
            reference=row["reference"] if row else self.reference,
            terms=parse_json(row["terms"] if row else json.dumps(self.terms_json, default=str), {}),
            state=state,
            days_left=days_left(tl, at),
            recorded_at=aware(row["recorded_at"]) if row else None,
            recorded_by=row["recorded_by"] if row else None,
        )


def _draft(
    settings: Settings,
    ledger: Ledger,
    customer: str,
    received: date,
    channel: str,
    reference: str | None,
    flags: dict[str, Any],
    now: datetime | None,
) -> _Draft:
    """Check the command's input, read the name and terms from the source."""
    check_customer_key(customer)
    if channel not in CHANNELS:
        raise BadInput(f"unknown channel {channel!r}: use one of {', '.join(CHANNELS)}")
    reference = check_text(reference, "--reference", MAX_REFERENCE)
    at = resolve_now(settings, now)
    tz = settings.contract.timezone
    today = contract.today(tz, at)
    if received > today:
        raise BadInput(
            f"notice received {received.isoformat()} is in the future (today is {today.isoformat()} in {tz})"
        )
    with open_source(settings, ledger, customer) as src:
        name = src.customer_name()
        row_pk = src.customer_row_pk
        terms = resolve_terms(settings, src, received, **flags)
    tl = timeline_for(settings, received, terms)
    terms_json = {
        **terms.as_dict(),
        "notice_days": tl.notice_days,
        "export_window_days": settings.contract.export_window_days,
        "timezone": tl.timezone,
        "reason": tl.reason,
    }
    return _Draft(customer, name, row_pk, channel, reference, terms, terms_json, tl, at, today)


def _write_notice(ledger: Ledger, conn: Connection, d: _Draft) -> None:
    """The notice's record and its audit entry (in the caller's transaction)."""
    tl, customer = d.timeline, d.customer
    recorded_at = naive_utc(d.at)
    notice_id = records.add_notice(
        conn,
        customer=customer,
        identity_id=ledger.open_case(conn, customer, d.row_pk),
        received=tl.received,
        channel=d.channel,
        reference=d.reference,
        recorded_by=ledger.actor,
        recorded_at=recorded_at,
        period_end=tl.period_end,
        timely=tl.timely,
        termination_date=tl.termination_date,
        export_deadline=tl.export_deadline,
        purge_due_at=naive_utc(tl.purge_due_at),
        terms=json.dumps(d.terms_json, default=str, sort_keys=True),
    )
    ledger.append_audit(
        conn,
        "notice",
        "notice.recorded",
        customer,
        {
            "notice_id": notice_id,
            "received": tl.received,
            "channel": d.channel,
            "terms_from": d.terms.source,
            "period_end": tl.period_end,
            "timely": tl.timely,
            "termination_date": tl.termination_date,
            "export_deadline": tl.export_deadline,
            "purge_due_at": tl.purge_due_at,
            "recorded_at": recorded_at,
            "back_dated_days": (d.today - tl.received).days,
        },
    )
    records.require_single_open(ledger, conn, "notice", customer)


def record_notice(
    settings: Settings,
    ledger: Ledger,
    customer: str,
    received: date,
    *,
    channel: str = "email",
    reference: str | None = None,
    start: date | None = None,
    term_months: int | None = None,
    period_end: date | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> NoticeOutcome:
    """Record written notice received on ``received``; returns the timeline it sets.

    Raises UnknownCustomer (2) for a customer the source does not know, BadInput (2) for
    bad terms or a date in the future, Refused (3) when a different notice is active or
    the customer was purged already.
    """
    flags = {"start": start, "term_months": term_months, "period_end": period_end}
    d = _draft(settings, ledger, customer, received, channel, reference, flags, now)
    with ledger.transaction() as conn:
        rec = records.records_for_row(ledger, conn, customer, d.row_pk)
        active = rec.active
        if active is not None:
            diffs = _notice_differences(active, d.timeline, d.channel, d.reference)
            if not diffs:
                return d.outcome("unchanged", rec, active)
            raise Refused(
                f"{customer} already has a notice received {active['received'].isoformat()} "
                f"(recorded {aware(active['recorded_at']):%Y-%m-%d} by {active['recorded_by']}); this one differs "
                f"({'; '.join(diffs)}). Withdraw the first with `learnexit notice {customer} --withdraw` "
                "to record another"
            )
        if purge_facts(rec.purges).purged_at is not None:
            raise Refused(f"{customer} was purged already; a new notice cannot apply to deleted data")
        if dry_run:
            return d.outcome("dry_run", None, None)
        _write_notice(ledger, conn, d)
        rec = records.read_case_in(ledger, conn, customer)
        return d.outcome("recorded", rec, rec.active)


def withdraw_notice(
    settings: Settings,
    ledger: Ledger,
    customer: str,
    *,
    received: date | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> NoticeOutcome:
    """Withdraw the active notice (kept in the history).  Withdrawing twice changes nothing.

    ``received``, when given, must match the active notice (a guard against withdrawing
    the wrong one).  Refused once a purge of the customer has started.
    """
    check_customer_key(customer)
    at = resolve_now(settings, now)
    with ledger.transaction() as conn:
        rec = records.read_case_in(ledger, conn, customer)
        active = rec.active
        if active is None:
            if not rec.notices:
                raise BadInput(f"no notice recorded for {customer}: nothing to withdraw")
            last = rec.notices[-1]
            return _withdraw_outcome(rec, last, "already_withdrawn", at)
        if received is not None and received != active["received"]:
            raise BadInput(
                f"the active notice of {customer} was received {active['received'].isoformat()}, "
                f"not {received.isoformat()}; nothing withdrawn"
            )
        if any(p["status"] in ("running", "done") for p in rec.purges):
            raise Refused(f"a purge of {customer} has started already; the notice can no longer be withdrawn")
        if dry_run:
            return _withdraw_outcome(rec, active, "dry_run", at)
        records.mark_notice_withdrawn(conn, active["id"], naive_utc(at), ledger.actor)
        ledger.append_audit(
            conn,
            "notice",
            "notice.withdrawn",
            customer,
            {"notice_id": active["id"], "received": active["received"], "withdrawn_at": naive_utc(at)},
        )
        rec = records.read_case_in(ledger, conn, customer)
        row = next(n for n in rec.notices if n["id"] == active["id"])
        return _withdraw_outcome(rec, row, "withdrawn", at)


def _withdraw_outcome(rec: CaseRecords, row: Row, action: str, at: datetime) -> NoticeOutcome:
    tl = timeline_from_notice(row)
    notes = []
    if rec.current_closures:
        when = aware(rec.current_closures[0]["performed_at"])
        notes.append(f"the accounts were closed on {when:%Y-%m-%d}; reopen them by hand if the customer stays")
    state = contract.derive_state(facts_of(rec), at) if action != "dry_run" else "withdrawn"
    return NoticeOutcome(
        customer=rec.customer,
        name=rec.customer,
        timeline=tl,
        action=action,
        channel=row["channel"],
        reference=row["reference"],
        terms=parse_json(row["terms"], {}) or {},
        state=state,
        days_left=days_left(tl, at),
        recorded_at=aware(row["recorded_at"]),
        recorded_by=row["recorded_by"],
        withdrawn_at=aware(row["withdrawn_at"]),
        notes=notes,
    )
