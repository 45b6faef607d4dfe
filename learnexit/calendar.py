"""The customer's offboarding calendar: notices, confirmations, closures, holds, status.

The date rules live in :mod:`learnexit.contract` (pure); this module applies them to the
ledger and the source:

* ``record_notice`` / ``withdraw_notice``: a written notice and the dates it sets.  The
  same notice twice changes nothing; a different one is refused (exit 3) until the first
  is withdrawn.  Back-dated notices are allowed (``recorded_at`` keeps when it was
  entered); notices from the future are not.
* ``confirm_handover``: the customer's confirmation; refused before a ``complete``
  export unless a reason is given.  The account closure (design §1) runs at once when the
  termination date has passed, otherwise at 00:00 local time on the day after it (the
  service runs through E); ``due_closures`` lists the customers whose time has come and
  ``run_closure`` performs it (cron's ``purge --due``).
* ``place_hold`` / ``release_hold``: legal holds.
* ``customer_facts`` / ``customer_status`` / ``check_attention``: state is derived from
  the recorded events and ``now``, never stored.

Every state change writes its ledger row and its audit entry in one ledger transaction.
Audit details hold ids, dates, flags and counts — free text (references, reasons, the
customer's contact person) stays in the ledger tables and never enters the audit chain.

"Now" is :func:`now`: the clock, or ``$LEARNEXIT_NOW`` for tests and runbook rehearsals.
Library code never prints.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import contract
from . import ledger as L
from .config import Settings, scrub
from .consistency import all_problems, require_consistent
from .contract import Facts, Timeline
from .errors import BadInput, ConfigError, InvalidDate, LearnexitError, OperationalError, Refused
from .ledger import Ledger, aware, naive_utc
from .package.handover import record_delivery, resolve_package

if TYPE_CHECKING:
    from .source import Source

__all__ = [
    "ATTENTION_DAYS",
    "CHANNELS",
    "NOW_ENV",
    "ContractTerms",
    "NoticeOutcome",
    "active_hold",
    "active_notice",
    "audit_report",
    "check_attention",
    "closure_due_at",
    "confirm_handover",
    "customer_facts",
    "customer_status",
    "due_closures",
    "known_customers",
    "now",
    "parse_now",
    "place_hold",
    "record_notice",
    "release_hold",
    "resolve_terms",
    "run_closure",
    "timeline_from_notice",
    "withdraw_notice",
]

NOW_ENV = "LEARNEXIT_NOW"
CHANNELS = ("email", "letter", "other")
ATTENTION_DAYS = 14  # an export window closing within this many days needs a human
MAX_REFERENCE = 500
MAX_NAME = 200

_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


# --------------------------------------------------------------------------- now


def parse_now(text: str, timezone: str = "Europe/Stockholm") -> datetime:
    """Parse a ``$LEARNEXIT_NOW`` value into an aware UTC instant (whole seconds).

    ``YYYY-MM-DD`` means 12:00 local time that day (in ``timezone``): noon keeps the
    local date and the UTC date the same.  A datetime with ``Z`` or an offset is taken as
    given; one without is local time in ``timezone``.
    """
    hint = "use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS with an optional Z or ±HH:MM"
    if not isinstance(text, str) or not text.strip():
        raise InvalidDate(f"invalid {NOW_ENV}: empty; {hint}")
    text = text.strip()
    zone = ZoneInfo(timezone)
    if _DATE_ONLY.fullmatch(text):
        day = contract.parse_date(text, what=NOW_ENV)
        return datetime.combine(day, time(12, 0), tzinfo=zone).astimezone(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidDate(f"invalid {NOW_ENV}: {text[:40]!r}; {hint}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC).replace(microsecond=0)


def now(timezone: str = "Europe/Stockholm") -> datetime:
    """The current instant (aware UTC, whole seconds), or ``$LEARNEXIT_NOW`` when set.

    ``$LEARNEXIT_NOW`` is for tests and runbook rehearsals only; see :func:`parse_now`.
    """
    text = os.environ.get(NOW_ENV)
    if text:
        return parse_now(text, timezone)
    return datetime.now(UTC).replace(microsecond=0)


def _now(settings: Settings, value: datetime | None) -> datetime:
    if value is None:
        return now(settings.contract.timezone)
    if value.tzinfo is None:
        raise BadInput("now must be timezone-aware")
    return value.astimezone(UTC)


# --------------------------------------------------------------------------- ledger reads


@dataclass
class _Records:
    """Everything the ledger holds about one customer, read in one go."""

    customer: str
    notices: list[dict[str, Any]] = field(default_factory=list)
    exports: list[dict[str, Any]] = field(default_factory=list)
    confirmations: list[dict[str, Any]] = field(default_factory=list)
    closures: list[dict[str, Any]] = field(default_factory=list)
    holds: list[dict[str, Any]] = field(default_factory=list)
    purges: list[dict[str, Any]] = field(default_factory=list)

    @property
    def active(self) -> dict[str, Any] | None:
        """The latest notice not withdrawn."""
        for row in reversed(self.notices):
            if row["withdrawn_at"] is None:
                return row
        return None

    @property
    def current(self) -> dict[str, Any] | None:
        """The active notice, else the latest (withdrawn) one."""
        return self.active or (self.notices[-1] if self.notices else None)

    @property
    def _since(self) -> datetime | None:
        # Confirmations and closures belong to the notice they followed.  With a single
        # notice everything follows it; after a withdrawal only what came later counts.
        cur = self.current
        if cur is None or len(self.notices) < 2:
            return None
        return cur["recorded_at"]

    @property
    def current_confirmations(self) -> list[dict[str, Any]]:
        since = self._since
        return [c for c in self.confirmations if since is None or c["confirmed_at"] >= since]

    @property
    def current_closures(self) -> list[dict[str, Any]]:
        since = self._since
        return [c for c in self.closures if since is None or c["performed_at"] >= since]

    @property
    def hold(self) -> dict[str, Any] | None:
        for row in reversed(self.holds):
            if row["released_at"] is None:
                return row
        return None

    @property
    def complete_exports(self) -> list[dict[str, Any]]:
        return [e for e in self.exports if e["status"] == "complete"]


def _read(ledger: Ledger, customer: str) -> _Records:
    try:
        with ledger.engine.connect() as conn:
            return _read_in(ledger, conn, customer)
    except sa.exc.SQLAlchemyError as exc:
        from .source import describe_db_error

        raise OperationalError(f"cannot read the ledger: {describe_db_error(exc)}") from None


def known_customers(ledger: Ledger) -> list[str]:
    """Customers the ledger knows: a notice or a hold was recorded for them."""
    try:
        with ledger.engine.connect() as conn:
            found = {r[0] for r in conn.execute(sa.select(L.notices.c.customer).distinct())}
            found |= {r[0] for r in conn.execute(sa.select(L.holds.c.customer).distinct())}
    except sa.exc.SQLAlchemyError as exc:
        from .source import describe_db_error

        raise OperationalError(f"cannot read the ledger: {describe_db_error(exc)}") from None
    return sorted(found)


def active_notice(ledger: Ledger, customer: str) -> dict[str, Any] | None:
    """The customer's active notice (latest not withdrawn) as a ledger row, or None."""
    return _read(ledger, customer).active


def active_hold(ledger: Ledger, customer: str) -> dict[str, Any] | None:
    """The customer's active legal hold (not released) as a ledger row, or None."""
    return _read(ledger, customer).hold


def _json(text: str | None, default: Any = None) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def timeline_from_notice(row: dict[str, Any]) -> Timeline:
    """The Timeline a recorded notice fixed (the stored dates are authoritative)."""
    terms = _json(row.get("terms"), {}) or {}
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
        timezone=str(terms.get("timezone", "Europe/Stockholm")),
        reason=str(terms.get("reason", "")),
    )


def _purge_facts(purges: list[dict[str, Any]]) -> dict[str, Any]:
    """purged_at, retained_until, retention_purged_at, purge_failed from purge rows."""
    done = [p for p in purges if p["status"] == "done"]
    full = next((p for p in done if p["kind"] == "full"), None)
    out: dict[str, Any] = {
        "purged_at": None,
        "retained_until": None,
        "retention_purged_at": None,
        "purge_failed": bool(purges) and purges[-1]["status"] == "failed",
    }
    if full is None:
        return out
    out["purged_at"] = aware(full["finished_at"] or full["started_at"])

    def pending(p: dict[str, Any]) -> list[date]:
        until = []
        for info in (_json(p.get("retained"), {}) or {}).values():
            if isinstance(info, dict) and int(info.get("rows") or 0) > 0 and info.get("until"):
                try:
                    until.append(date.fromisoformat(str(info["until"])))
                except ValueError:
                    continue
        return until

    last = done[-1]
    left = pending(last)
    if left:
        out["retained_until"] = max(left)
    elif last["kind"] == "retention":
        ever = pending(full)
        out["retained_until"] = max(ever) if ever else None
        out["retention_purged_at"] = aware(last["finished_at"] or last["started_at"])
    return out


def _facts(rec: _Records) -> Facts:
    cur = rec.current
    if cur is None:
        return Facts(timeline=None, hold_active=rec.hold is not None)
    confs = rec.current_confirmations
    waived = next((c for c in confs if c["waived"]), None)
    chosen = waived or (confs[0] if confs else None)
    closures = rec.current_closures
    pf = _purge_facts(rec.purges)
    return Facts(
        timeline=timeline_from_notice(cur),
        withdrawn=rec.active is None,
        confirmed_at=aware(chosen["confirmed_at"]) if chosen else None,
        waived=waived is not None,
        closed_at=aware(closures[0]["performed_at"]) if closures else None,
        purged_at=pf["purged_at"],
        retained_until=pf["retained_until"],
        retention_purged_at=pf["retention_purged_at"],
        hold_active=rec.hold is not None,
        purge_failed=pf["purge_failed"],
    )


def customer_facts(ledger: Ledger, customer: str) -> Facts:
    """What the ledger knows about ``customer``, as ``contract.Facts`` for derive_state."""
    return _facts(_read(ledger, customer))


def _closure_due(rec: _Records) -> datetime | None:
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
    return _closure_due(_read(ledger, customer))


# --------------------------------------------------------------------------- terms


@dataclass(frozen=True)
class ContractTerms:
    """How the contract period was found: from flags or the source's contract table."""

    source: str  # "flags" | "contract table"
    start: date | None = None
    term_months: int | None = None
    period_end: date | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "start": self.start,
            "term_months": self.term_months,
            "period_end": self.period_end,
        }


def _as_date(value: Any, what: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return contract.parse_date(value[:10] if len(value) > 10 and value[10] in "T " else value, what=what)
    raise BadInput(f"{what} is {type(value).__name__}, not a date")


def resolve_terms(
    settings: Settings,
    src: Any,
    received: date,
    *,
    start: date | None = None,
    term_months: int | None = None,
    period_end: date | None = None,
) -> ContractTerms:
    """The contract terms for a notice: the flags when given, else the contract table.

    ``src`` is an open :class:`learnexit.source.Source` for the customer.  With the
    contract table, the customer's row whose start is the latest on or before
    ``received`` is used (else the earliest).  Raises BadInput when no terms are found.
    """
    if start is not None and period_end is not None:
        raise BadInput("give either --contract-start (with --term-months) or --period-end, not both")
    if start is not None:
        return ContractTerms("flags", start=start, term_months=term_months or settings.contract.term_months)
    if period_end is not None:
        return ContractTerms("flags", period_end=period_end, term_months=term_months or settings.contract.term_months)
    if term_months is not None:
        raise BadInput("--term-months needs --contract-start DATE (or --period-end DATE)")
    c = settings.contract
    if not c.table or not c.customer_column or not c.start_column:
        raise BadInput(
            f"no contract terms for {src.customer!r}: give --contract-start DATE --term-months N or "
            "--period-end DATE, or configure [contract] table/customer_column/start_column"
        )
    table = src.table(c.table)
    cond: Any
    if src.tenancy == "database":
        cond = sa.true()
    else:
        cust = settings.customer
        edge = next(
            (
                e
                for e in src.datamap.edges
                if e.child == c.table and e.child_cols == (c.customer_column,) and e.parent == cust.table
            ),
            None,
        )
        if edge is not None:
            ctab = src.table(cust.table or "")
            sub = sa.select(ctab.c[edge.parent_cols[0]]).where(ctab.c[cust.key] == src.customer_value)
            cond = table.c[c.customer_column].in_(sub)
        else:  # the column holds the customer key itself
            cond = table.c[c.customer_column] == src.customer_value
    cols = [table.c[c.start_column]]
    if c.term_column:
        cols.append(table.c[c.term_column])
    with src.snapshot() as conn:
        try:
            rows = conn.execute(sa.select(*cols).where(cond)).all()
        except (ValueError, TypeError, ArithmeticError):  # SQLite keeps any text in a DATE column
            raise BadInput(
                f"{c.table}.{c.start_column}: the stored contract start of {src.customer!r} is not a valid "
                "date: correct it, or give --contract-start DATE --term-months N or --period-end DATE"
            ) from None
    if not rows:
        raise BadInput(
            f"no row for {src.customer!r} in the contract table {c.table}: give --contract-start DATE "
            "--term-months N or --period-end DATE"
        )
    found: list[tuple[date, int]] = []
    for row in rows:
        if row[0] is None:
            continue
        term = settings.contract.term_months
        if c.term_column and row[1] is not None:
            try:
                term = int(row[1])
            except (TypeError, ValueError):
                raise BadInput(f"{c.table}.{c.term_column} is not a whole number of months") from None
        found.append((_as_date(row[0], f"{c.table}.{c.start_column}"), term))
    if not found:
        raise BadInput(f"the contract row for {src.customer!r} in {c.table} has no start date")
    found.sort()
    earlier = [f for f in found if f[0] <= received]
    chosen = earlier[-1] if earlier else found[0]
    return ContractTerms("contract table", start=chosen[0], term_months=chosen[1])


def _timeline(settings: Settings, received: date, terms: ContractTerms) -> Timeline:
    c = settings.contract
    return contract.compute_timeline(
        received,
        start=terms.start,
        term_months=terms.term_months,
        period_end=terms.period_end,
        notice_days=c.notice_days,
        export_window_days=c.export_window_days,
        timezone=c.timezone,
    )


# --------------------------------------------------------------------------- notices


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


def _check_text(value: str | None, what: str, limit: int, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise BadInput(f"{what} is required")
        return None
    if any(ord(ch) < 32 and ch not in "\t" for ch in value):
        raise BadInput(f"{what} must be one line of text")
    value = value.strip()
    if not value:
        if required:
            raise BadInput(f"{what} must not be empty")
        return None
    if len(value) > limit:
        raise BadInput(f"{what} is {len(value)} characters long (at most {limit})")
    return value


def _days_left(tl: Timeline, at: datetime) -> int:
    return (tl.export_deadline - contract.today(tl.timezone, at)).days


def _notice_differences(row: dict[str, Any], tl: Timeline, channel: str, reference: str | None) -> list[str]:
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
    from .source import check_customer_key

    check_customer_key(customer)
    if channel not in CHANNELS:
        raise BadInput(f"unknown channel {channel!r}: use one of {', '.join(CHANNELS)}")
    reference = _check_text(reference, "--reference", MAX_REFERENCE)
    at = _now(settings, now)
    tz = settings.contract.timezone
    today = contract.today(tz, at)
    if received > today:
        raise BadInput(
            f"notice received {received.isoformat()} is in the future (today is {today.isoformat()} in {tz})"
        )
    with open_source(settings, ledger, customer) as src:
        name = src.customer_name()
        row_pk = src.customer_row_pk
        terms = resolve_terms(settings, src, received, start=start, term_months=term_months, period_end=period_end)
    tl = _timeline(settings, received, terms)
    terms_json = {
        **terms.as_dict(),
        "notice_days": tl.notice_days,
        "export_window_days": settings.contract.export_window_days,
        "timezone": tl.timezone,
        "reason": tl.reason,
    }

    def outcome(action: str, rec: _Records | None, row: dict[str, Any] | None) -> NoticeOutcome:
        if rec is not None:
            state = contract.derive_state(_facts(rec), at)
        else:
            state = contract.derive_state(Facts(timeline=tl), at)
        return NoticeOutcome(
            customer=customer,
            name=name,
            timeline=timeline_from_notice(row) if row else tl,
            action=action,
            channel=row["channel"] if row else channel,
            reference=row["reference"] if row else reference,
            terms=_json(row["terms"] if row else json.dumps(terms_json, default=str), {}),
            state=state,
            days_left=_days_left(tl, at),
            recorded_at=aware(row["recorded_at"]) if row else None,
            recorded_by=row["recorded_by"] if row else None,
        )

    with ledger.transaction() as conn:
        rec = _records_for_row(ledger, conn, customer, row_pk)
        active = rec.active
        if active is not None:
            diffs = _notice_differences(active, tl, channel, reference)
            if not diffs:
                return outcome("unchanged", rec, active)
            raise Refused(
                f"{customer} already has a notice received {active['received'].isoformat()} "
                f"(recorded {aware(active['recorded_at']):%Y-%m-%d} by {active['recorded_by']}); this one differs "
                f"({'; '.join(diffs)}). Withdraw the first with `learnexit notice {customer} --withdraw` "
                "to record another"
            )
        if _purge_facts(rec.purges)["purged_at"] is not None:
            raise Refused(f"{customer} was purged already; a new notice cannot apply to deleted data")
        if dry_run:
            return outcome("dry_run", None, None)
        values = {
            "customer": customer,
            "identity_id": ledger.open_case(conn, customer, row_pk),
            "received": tl.received,
            "channel": channel,
            "reference": reference,
            "recorded_by": ledger.actor,
            "recorded_at": naive_utc(at),
            "period_end": tl.period_end,
            "timely": tl.timely,
            "termination_date": tl.termination_date,
            "export_deadline": tl.export_deadline,
            "purge_due_at": naive_utc(tl.purge_due_at),
            "terms": json.dumps(terms_json, default=str, sort_keys=True),
        }
        notice_id = _insert(conn, L.notices, values)
        ledger.append_audit(
            conn,
            "notice",
            "notice.recorded",
            customer,
            {
                "notice_id": notice_id,
                "received": tl.received,
                "channel": channel,
                "terms_from": terms.source,
                "period_end": tl.period_end,
                "timely": tl.timely,
                "termination_date": tl.termination_date,
                "export_deadline": tl.export_deadline,
                "purge_due_at": tl.purge_due_at,
                "recorded_at": values["recorded_at"],
                "back_dated_days": (today - tl.received).days,
            },
        )
        _only_one(ledger, conn, L.notices, L.notices.c.withdrawn_at, customer, "notice")
        rec = _read_in(ledger, conn, customer)
        return outcome("recorded", rec, rec.active)


def open_source(settings: Settings, ledger: Ledger, customer: str) -> Source:
    """The source for ``customer``, its row checked against the one the open case pinned:
    a key that now names another row is refused (3) instead of acted on."""
    from .source import PinnedRow, Source

    case = ledger.case_of(customer)
    pinned = None
    if case is not None and case["row_pk"] is not None and case["finished_at"] is None:
        pinned = PinnedRow(case["row_pk"])
    return Source(settings, customer, pinned=pinned)


def _require_same_row(settings: Settings, ledger: Ledger, customer: str) -> None:
    """Refused (3) when the key now names another source row than the open case pinned."""
    case = ledger.case_of(customer)
    if case is not None and case["row_pk"] is not None and case["finished_at"] is None:
        with open_source(settings, ledger, customer):
            pass


def _a_new_customer(settings: Settings, ledger: Ledger, customer: str) -> bool:
    """After a finished case, does the key now name another source row (a new customer)?
    Asked only then, so ``status`` reads the source for nothing else."""
    case = ledger.case_of(customer)
    if case is None or case["finished_at"] is None or case["row_pk"] is None:
        return False
    from .source import Source

    try:
        with Source(settings, customer) as src:
            return src.customer_row_pk not in (None, case["row_pk"])
    except LearnexitError:
        return False  # the row is gone (or the source is away): the old case is what there is


def _records_for_row(ledger: Ledger, conn: Connection, customer: str, row_pk: str | None) -> _Records:
    """The records a new record for the source row ``row_pk`` joins: none when the key's
    last case was finished by a purge and the key now names another row (a new customer)."""
    case = ledger.case(conn, customer)
    if case is not None and case["finished_at"] is not None and case["row_pk"] not in (None, row_pk):
        return _Records(customer)
    return _read_in(ledger, conn, customer)


def _insert(conn: Connection, table: sa.Table, values: dict[str, Any]) -> int:
    """Insert one ledger row; its new id."""
    key = conn.execute(table.insert().values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def _only_one(ledger: Ledger, conn: Connection, table: sa.Table, open_col: Any, customer: str, what: str) -> None:
    """Refuse (and roll back) when a concurrent command recorded a second active row.

    Runs after ``append_audit``, which serialises writers on PostgreSQL until commit.
    """
    ids = conn.execute(
        sa.select(table.c.id).where(ledger.in_case(conn, table, customer), open_col.is_(None)).with_for_update()
    ).all()
    if len(ids) > 1:
        raise Refused(
            f"another {what} for {customer} was recorded at the same moment; nothing recorded — "
            f"see `learnexit status {customer}`"
        )


def _read_in(ledger: Ledger, conn: Connection, customer: str) -> _Records:
    """The records of the customer key's current offboarding case."""
    rec = _Records(customer)
    for name, table in (
        ("notices", L.notices),
        ("exports", L.exports),
        ("confirmations", L.confirmations),
        ("closures", L.closures),
        ("holds", L.holds),
        ("purges", L.purges),
    ):
        stmt = sa.select(table).where(ledger.in_case(conn, table, customer)).order_by(table.c.id)
        setattr(rec, name, [dict(r._mapping) for r in conn.execute(stmt)])
    return rec


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
    from .source import check_customer_key

    check_customer_key(customer)
    at = _now(settings, now)
    with ledger.transaction() as conn:
        rec = _read_in(ledger, conn, customer)
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
        conn.execute(
            L.notices.update()
            .where(L.notices.c.id == active["id"])
            .where(L.notices.c.withdrawn_at.is_(None))
            .values(withdrawn_at=naive_utc(at), withdrawn_by=ledger.actor)
        )
        ledger.append_audit(
            conn,
            "notice",
            "notice.withdrawn",
            customer,
            {"notice_id": active["id"], "received": active["received"], "withdrawn_at": naive_utc(at)},
        )
        rec = _read_in(ledger, conn, customer)
        row = next(n for n in rec.notices if n["id"] == active["id"])
        return _withdraw_outcome(rec, row, "withdrawn", at)


def _withdraw_outcome(rec: _Records, row: dict[str, Any], action: str, at: datetime) -> NoticeOutcome:
    tl = timeline_from_notice(row)
    notes = []
    if rec.current_closures:
        when = aware(rec.current_closures[0]["performed_at"])
        notes.append(f"the accounts were closed on {when:%Y-%m-%d}; reopen them by hand if the customer stays")
    state = contract.derive_state(_facts(rec), at) if action != "dry_run" else "withdrawn"
    return NoticeOutcome(
        customer=rec.customer,
        name=rec.customer,
        timeline=tl,
        action=action,
        channel=row["channel"],
        reference=row["reference"],
        terms=_json(row["terms"], {}) or {},
        state=state,
        days_left=_days_left(tl, at),
        recorded_at=aware(row["recorded_at"]),
        recorded_by=row["recorded_by"],
        withdrawn_at=aware(row["withdrawn_at"]),
        notes=notes,
    )


# --------------------------------------------------------------------------- confirmation


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
    from .source import check_customer_key

    check_customer_key(customer)
    by_name = _check_text(by, "--by", MAX_NAME, required=True)
    reference = _check_text(reference, "--reference", MAX_REFERENCE)
    without_export_reason = _check_text(without_export_reason, "--reason", 2000)
    at = _now(settings, now)
    _require_known(settings, ledger, _read(ledger, customer))  # an unknown customer is bad input (2), not a refusal
    require_consistent(ledger, customer)  # the purge-due date it records comes from these records
    _require_same_row(settings, ledger, customer)
    with ledger.transaction() as conn:
        rec = _read_in(ledger, conn, customer)
        active = rec.active
        if active is None:
            if rec.notices:
                raise Refused(f"the notice of {customer} was withdrawn; there is no handover to confirm")
            raise Refused(f"no notice recorded for {customer}; record it first with `learnexit notice {customer}`")
        if _purge_facts(rec.purges)["purged_at"] is not None:
            raise Refused(f"{customer} was purged already; nothing to confirm")
        confs = rec.current_confirmations
        if package is not None and (confs or (without_export_reason and not rec.complete_exports)):
            raise BadInput("--package names the delivered export on the first confirmation, with an export")
        action = "unchanged"
        delivered: dict[str, Any] | None = None
        if not confs or (waive_window and not any(c["waived"] for c in confs)):
            if not confs and not rec.complete_exports and not without_export_reason:
                raise Refused(
                    f"no complete export of {customer} has been delivered; export first "
                    f"(`learnexit export {customer}`) or confirm with --without-export --reason TEXT"
                )
            values = {
                "customer": customer,
                "identity_id": ledger.case_id(conn, customer),
                "confirmed_at": naive_utc(at),
                "confirmed_by": by_name,
                "reference": reference,
                "waived": bool(waive_window),
                "without_export_reason": without_export_reason if not rec.complete_exports else None,
                "recorded_by": ledger.actor,
            }
            conf_id = _insert(conn, L.confirmations, values)
            if not confs and not values["without_export_reason"]:
                delivered = resolve_package(conn, customer, package)
                if delivered is not None:
                    record_delivery(conn, customer, conf_id, delivered, naive_utc(at), ledger.actor)
            rec = _read_in(ledger, conn, customer)
            facts = _facts(rec)
            ledger.append_audit(
                conn,
                "confirm",
                "handover.confirmed" if not confs else "handover.window_waived",
                customer,
                {
                    "confirmation_id": conf_id,
                    "notice_id": active["id"],
                    "waived": bool(waive_window),
                    "without_export": bool(values["without_export_reason"]),
                    "confirmed_at": values["confirmed_at"],
                    "complete_exports": len(rec.complete_exports),
                    **(
                        {"delivered_export_id": delivered["id"], "delivered_manifest": delivered["manifest_sha256"]}
                        if delivered
                        else {}
                    ),
                    "purge_due_at": contract.effective_purge_due_at(facts),
                    "closure_due_at": _closure_due(rec),
                },
            )
            action = "recorded" if not confs else "waiver_added"
    rec = _read(ledger, customer)
    due = _closure_due(rec)
    ran: dict[str, int] | None = None
    if not rec.current_closures and due is not None and at >= due:
        try:
            ran = run_closure(settings, ledger, customer, now=at)
        except LearnexitError as exc:
            raise type(exc)(
                f"handover confirmed and recorded, but the account closure failed: {exc.message}; "
                "`learnexit purge --due` retries it"
            ) from None
        rec = _read(ledger, customer)
    result = customer_status(settings, ledger, customer, now=at, _rec=rec)
    result["action"] = action
    result["delivered_export_id"] = delivered["id"] if delivered else None
    result["closure"]["ran_now"] = ran is not None
    result["closure"]["changed"] = ran
    return result


# --------------------------------------------------------------------------- closure


def _key_after(pk: list[sa.Column[Any]], last: tuple[Any, ...]) -> Any:
    if len(pk) == 1:
        return pk[0] > last[0]
    return sa.tuple_(*pk) > sa.tuple_(*[sa.literal(v) for v in last])


def _key_in(pk: list[sa.Column[Any]], keys: list[tuple[Any, ...]]) -> Any:
    if len(pk) == 1:
        return pk[0].in_([k[0] for k in keys])
    return sa.tuple_(*pk).in_(keys)


def _close_column(conn: Connection, src: Any, table_name: str, column: str, value: Any, batch: int) -> int:
    """Set ``column`` to ``value`` on the customer's rows that differ; rows changed.

    Rows of an ``owned_via`` table that another customer's rows reference too are
    shared and left unchanged.

    Keys are selected in batches and updated by key (MySQL refuses an UPDATE whose
    subquery reads the same table, which the ownership predicate may do).
    """
    table = src.table(table_name)
    pk = list(table.primary_key.columns)
    if not pk:
        raise ConfigError(f"[closure] set.{table_name}.{column}: table {table_name} has no primary key")
    col = table.c[column]
    differs = sa.or_(col.is_(None), col != value)
    pred = src.predicate(table_name)
    info = src.datamap.info[table_name]
    if info.how == "owned_via":
        # A row of a global table (a person in two organisations) is also another
        # customer's: leave it alone when anything outside this customer references it.
        for via_table, via_col, target in info.via_sources:
            via = src.table(via_table)
            others = sa.select(via.c[via_col]).where(
                via.c[via_col].is_not(None), src.predicate(via_table).is_not(sa.true())
            )
            pred = sa.and_(pred, table.c[target].not_in(others))
    changed = 0
    last: tuple[Any, ...] | None = None
    while True:
        stmt = sa.select(*pk).where(pred, differs).order_by(*pk).limit(batch)
        if last is not None:
            stmt = stmt.where(_key_after(pk, last))
        keys = [tuple(r) for r in conn.execute(stmt)]
        if not keys:
            break
        result = conn.execute(table.update().where(_key_in(pk, keys)).where(differs).values({column: value}))
        changed += max(int(result.rowcount or 0), 0)
        last = keys[-1]
        if len(keys) < batch:
            break
    return changed


@contextmanager
def _source_write(src: Any) -> Iterator[Connection]:
    from .source import describe_db_error

    try:
        with src.engine.begin() as conn:
            yield conn
    except sa.exc.SQLAlchemyError as exc:
        raise OperationalError(f"account closure failed, nothing changed: {describe_db_error(exc)}") from None


def run_closure(settings: Settings, ledger: Ledger, customer: str, *, now: datetime | None = None) -> dict[str, int]:
    """Run the ``[closure]`` actions on this customer's rows; ``{"table.column": rows changed}``.

    All UPDATEs run in ONE source transaction, scoped by ``Source.predicate``; a table
    the customer does not own is a ConfigError (shared rows are never touched).
    Idempotent: rows already closed are left alone, so a second run changes nothing and
    records nothing.  The first run is always recorded (closures row + audit entry in one
    ledger transaction); a later run that finds re-opened rows records again.  Requires an
    active notice (Refused otherwise); the timing policy is the caller's (confirm,
    ``due_closures``).
    """
    from .source import check_customer_key

    check_customer_key(customer)
    at = _now(settings, now)
    require_consistent(ledger, customer)
    rec = _read(ledger, customer)
    if rec.active is None:
        raise Refused(f"no active notice for {customer}; the accounts stay open")
    already = bool(rec.current_closures)
    counts: dict[str, int] = {}
    if settings.closure:
        with open_source(settings, ledger, customer) as src:
            for ref in settings.closure:
                table_name = ref.split(".", 1)[0]
                info = src.datamap.info.get(table_name)
                if info is None or not info.owned:
                    status = info.status if info else "missing"
                    raise ConfigError(
                        f"{settings.label}: [closure] set.{ref}: table {table_name} is {status}, not owned by "
                        "the customer; closure only changes the customer's own rows"
                    )
            try:
                with _source_write(src) as sconn:
                    for ref, value in settings.closure.items():
                        table_name, column = ref.split(".", 1)
                        counts[ref] = _close_column(sconn, src, table_name, column, value, settings.purge.batch_size)
                    if not (already and not any(counts.values())):
                        # Recorded while the source transaction is still open: when the
                        # ledger cannot take the record, the source change is rolled back.
                        _record_closure(ledger, customer, at, counts, already, bool(settings.closure))
                    return counts
            except OperationalError:
                ledger.record("closure", "closure.failed", customer, {"actions": sorted(settings.closure)})
                raise
    if already and not any(counts.values()):
        return counts
    _record_closure(ledger, customer, at, counts, already, bool(settings.closure))
    return counts


def _record_closure(
    ledger: Ledger, customer: str, at: datetime, counts: dict[str, int], already: bool, configured: bool
) -> None:
    with ledger.transaction() as conn:
        closure_id = _insert(
            conn,
            L.closures,
            {
                "customer": customer,
                "identity_id": ledger.case_id(conn, customer),
                "performed_at": naive_utc(at),
                "rows": json.dumps(counts, sort_keys=True),
                "recorded_by": ledger.actor,
            },
        )
        ledger.append_audit(
            conn,
            "closure",
            "closure.performed" if not already else "closure.repeated",
            customer,
            {"closure_id": closure_id, "rows": counts, "configured": configured, "performed_at": naive_utc(at)},
        )


def due_closures(settings: Settings, ledger: Ledger, now: datetime | None = None) -> list[str]:
    """Customers whose account closure is due and not done (confirmed, E passed)."""
    at = _now(settings, now)
    due = []
    for customer in known_customers(ledger):
        rec = _read(ledger, customer)
        if rec.active is None or rec.current_closures:
            continue
        if _purge_facts(rec.purges)["purged_at"] is not None:
            continue
        when = _closure_due(rec)
        if when is not None and at >= when:
            due.append(customer)
    return due


# --------------------------------------------------------------------------- holds


def _require_known(settings: Settings, ledger: Ledger, rec: _Records) -> str | None:
    """The customer must be known to the ledger (a notice) or to the source; the source
    row's primary key when it had to be looked up there."""
    if rec.notices or rec.holds:
        case = ledger.case_of(rec.customer)
        if case is None or case["finished_at"] is None:
            return None
    with open_source(settings, ledger, rec.customer) as src:
        return src.customer_row_pk


def place_hold(
    settings: Settings, ledger: Ledger, customer: str, reason: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """Place a legal hold: every purge of the customer is blocked until it is released.

    The same hold twice changes nothing; a hold with another reason while one is active
    is refused (3): release the first, or keep it.
    """
    from .source import check_customer_key

    check_customer_key(customer)
    text = _check_text(reason, "--reason", 2000, required=True)
    at = _now(settings, now)
    row_pk = _require_known(settings, ledger, _read(ledger, customer))
    with ledger.transaction() as conn:
        rec = _read_in(ledger, conn, customer) if row_pk is None else _records_for_row(ledger, conn, customer, row_pk)
        current = rec.hold
        if current is not None:
            if current["reason"] == text:
                return _hold_dict(current, "unchanged")
            raise Refused(
                f"{customer} is already on hold since {aware(current['placed_at']):%Y-%m-%d} "
                f"(placed by {current['placed_by']}, another reason); release it first to replace it"
            )
        hold_id = _insert(
            conn,
            L.holds,
            {
                "customer": customer,
                "identity_id": ledger.open_case(conn, customer, row_pk),
                "reason": text,
                "placed_by": ledger.actor,
                "placed_at": naive_utc(at),
            },
        )
        ledger.append_audit(conn, "hold", "hold.placed", customer, {"hold_id": hold_id, "placed_at": naive_utc(at)})
        _only_one(ledger, conn, L.holds, L.holds.c.released_at, customer, "hold")
        row = dict(conn.execute(sa.select(L.holds).where(L.holds.c.id == hold_id)).one()._mapping)
    return _hold_dict(row, "placed")


def release_hold(settings: Settings, ledger: Ledger, customer: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Release the active hold.  Releasing when none is active changes nothing."""
    from .source import check_customer_key

    check_customer_key(customer)
    at = _now(settings, now)
    require_consistent(ledger, customer)  # a hold released by hand in the ledger is not released
    known = _read(ledger, customer)
    if not known.holds and not known.notices:
        _require_known(settings, ledger, known)  # (the source, before the ledger's write lock)
    with ledger.transaction() as conn:
        rec = _read_in(ledger, conn, customer)
        current = rec.hold
        if current is None:
            last = rec.holds[-1] if rec.holds else None
            out = _hold_dict(last, "no_active_hold") if last else {"customer": customer, "action": "no_active_hold"}
            return out
        conn.execute(
            L.holds.update()
            .where(L.holds.c.id == current["id"])
            .where(L.holds.c.released_at.is_(None))
            .values(released_at=naive_utc(at), released_by=ledger.actor)
        )
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
        row = dict(conn.execute(sa.select(L.holds).where(L.holds.c.id == current["id"])).one()._mapping)
    return _hold_dict(row, "released")


def _hold_dict(row: dict[str, Any], action: str) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- status

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


def _export_dict(row: dict[str, Any]) -> dict[str, Any]:
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


def _purge_dict(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "started_at": aware(row["started_at"]),
        "finished_at": aware(row["finished_at"]),
        "deleted": _json(row["deleted"], {}),
        "retained": _json(row["retained"], {}),
        "kept_shared": _json(row["kept_shared"], {}),
        "verified": row["verified"],
        "certificate": row["certificate"],
        "error": row["error"],
        "forced_reason": row["forced_reason"],
    }


def customer_status(
    settings: Settings,
    ledger: Ledger,
    customer: str,
    now: datetime | None = None,
    *,
    _rec: _Records | None = None,
) -> dict[str, Any]:
    """Everything known about one customer's offboarding, JSON-ready (ISO dates).

    Keys: the notice keys of design §3 (customer, received, period_end, timely,
    termination_date, export_deadline, purge_due, state) plus channel, reference, reason,
    notice_days, days_before_period_end, timezone, purge_due_at (effective, after a
    waiver), waived, days_left (to the export deadline; 0 = last day), recorded_at,
    recorded_by, withdrawn_at, exports, exported, confirmation, confirmed, closure,
    holds, hold_active, purges, purged_at, retained_until, history.  A customer without
    a notice has state "none" and null dates.
    """
    at = _now(settings, now)
    rec = _rec if _rec is not None else _read(ledger, customer)
    if _rec is None and _a_new_customer(settings, ledger, customer):
        rec = _Records(customer)  # the key names a new row: its own case, nothing recorded yet
    facts = _facts(rec)
    state = contract.derive_state(facts, at)
    cur = rec.current
    tl = facts.timeline
    out: dict[str, Any] = {
        "customer": customer,
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
    if cur is not None and tl is not None:
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
            days_left=_days_left(tl, at),
            recorded_at=aware(cur["recorded_at"]),
            recorded_by=cur["recorded_by"],
            withdrawn_at=aware(cur["withdrawn_at"]),
        )
    complete = rec.complete_exports
    out["exports"] = {
        "complete": len(complete),
        "failed": sum(1 for e in rec.exports if e["status"] == "failed"),
        "last_complete": _export_dict(complete[-1]) if complete else None,
        "all": [_export_dict(e) for e in rec.exports],
    }
    out["exported"] = bool(complete)
    confs = rec.current_confirmations
    if confs:
        first = confs[0]
        out["confirmation"] = {
            "confirmed_at": aware(first["confirmed_at"]),
            "confirmed_by": first["confirmed_by"],
            "reference": first["reference"],
            "waived": facts.waived,
            "without_export_reason": first["without_export_reason"],
            "recorded_by": first["recorded_by"],
        }
    else:
        out["confirmation"] = None
    out["confirmed"] = bool(confs)
    closures = rec.current_closures
    due = _closure_due(rec)
    if closures:
        closure = {
            "status": "done",
            "due_at": due,
            "performed_at": aware(closures[0]["performed_at"]),
            "rows": _json(closures[0]["rows"], {}),
        }
    elif rec.active is None:
        closure = {"status": "none", "due_at": None, "performed_at": None, "rows": None}
    elif due is None:
        closure = {"status": "awaiting_confirmation", "due_at": None, "performed_at": None, "rows": None}
    else:
        closure = {
            "status": "due" if at >= due else "scheduled",
            "due_at": due,
            "performed_at": None,
            "rows": None,
        }
    out["closure"] = closure
    out["hold_active"] = rec.hold is not None
    out["holds"] = [_hold_dict(h, "active" if h["released_at"] is None else "released") for h in rec.holds]
    out["purges"] = [_purge_dict(p) for p in rec.purges]
    out["purged_at"] = facts.purged_at
    out["retained_until"] = facts.retained_until
    out["history"] = [
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
    return out


def all_statuses(settings: Settings, ledger: Ledger, now: datetime | None = None) -> list[dict[str, Any]]:
    """``customer_status`` for every customer the ledger knows."""
    at = _now(settings, now)
    return [customer_status(settings, ledger, c, at) for c in known_customers(ledger)]


def require_customer(settings: Settings, ledger: Ledger, customer: str) -> None:
    """UnknownCustomer (2) unless the ledger or the source knows ``customer``."""
    from .source import check_customer_key

    check_customer_key(customer)
    _require_known(settings, ledger, _read(ledger, customer))


# --------------------------------------------------------------------------- attention

_CHECK_UNCLASSIFIED_STATES = ("noticed", "terminated", "closed", "purge_due", "purge_failed", "held", "purged_retained")


def check_attention(
    settings: Settings,
    ledger: Ledger,
    customers: list[str] | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """What needs a human (``status --check``), one item per problem.

    Kinds: ``export_window_closing`` (deadline within ATTENTION_DAYS, no complete export,
    not confirmed), ``purge_overdue`` (due and not done, no hold),
    ``retention_purge_overdue``, ``purge_failed`` (the latest purge failed),
    ``unclassified_tables`` (in the customer's source, while a purge is still to come) and
    ``source_problem`` (the source could not be checked), ``contested_rows`` (rows whose
    references lead to two customers: nobody's until settled) and ``deletion_cycle`` (a
    NOT NULL cycle of references the purge will refuse), from the notice on; and
    ``reappeared_data`` (rows a finished purge deleted are in the source again, say after
    a backup was restored: counts per table; ``purge --due`` deletes them again).
    """
    at = _now(settings, now)
    items: list[dict[str, Any]] = []
    names = known_customers(ledger) if customers is None else customers
    datamaps: dict[str, list[str] | LearnexitError] = {}
    items += _disagreements(ledger, customers)  # kind ledger_disagrees
    for customer in names:
        rec = _read(ledger, customer)
        facts = _facts(rec)
        state = contract.derive_state(facts, at)
        tl = facts.timeline
        if tl is None or state in ("none", "withdrawn"):
            continue
        today = contract.today(tl.timezone, at)
        days_left = (tl.export_deadline - today).days
        if (
            facts.purged_at is None
            and 0 <= days_left <= ATTENTION_DAYS
            and not rec.complete_exports
            and not rec.current_confirmations
        ):
            items.append(
                {
                    "customer": customer,
                    "kind": "export_window_closing",
                    "export_deadline": tl.export_deadline,
                    "days_left": days_left,
                    "message": (
                        f"{customer}: the export window closes on {tl.export_deadline.isoformat()} "
                        f"({days_left} days left) and no complete export was delivered"
                    ),
                }
            )
        due = contract.effective_purge_due_at(facts)
        if state == "purge_due" and due is not None:
            items.append(
                {
                    "customer": customer,
                    "kind": "purge_overdue",
                    "purge_due_at": due,
                    "message": f"{customer}: the purge was due at {due:%Y-%m-%d %H:%MZ} and has not been done",
                }
            )
        if state == "purged_retained" and facts.retained_until is not None and today > facts.retained_until:
            items.append(
                {
                    "customer": customer,
                    "kind": "retention_purge_overdue",
                    "retained_until": facts.retained_until,
                    "message": (
                        f"{customer}: retained rows were kept until {facts.retained_until.isoformat()} "
                        "and are still there"
                    ),
                }
            )
        if rec.purges and rec.purges[-1]["status"] == "failed":
            last = rec.purges[-1]
            items.append(
                {
                    "customer": customer,
                    "kind": "purge_failed",
                    "purge_id": last["id"],
                    "failed_at": aware(last["finished_at"] or last["started_at"]),
                    "message": f"{customer}: the last purge (#{last['id']}) failed: {scrub(str(last['error'] or 'no detail'))}",
                }
            )
        if state in _CHECK_UNCLASSIFIED_STATES:
            found = _unclassified(settings, customer, datamaps)
            if isinstance(found, LearnexitError):
                items.append(
                    {
                        "customer": customer,
                        "kind": "source_problem",
                        "message": f"{customer}: cannot check the source: {found.message}",
                    }
                )
            elif found:
                items.append(
                    {
                        "customer": customer,
                        "kind": "unclassified_tables",
                        "tables": found,
                        "message": (
                            f"{customer}: unclassified tables block the purge: {', '.join(found)} "
                            "(classify them in [tables])"
                        ),
                    }
                )
            elif state != "purged_retained":
                items += _ownership_problems(settings, ledger, customer)
    from .purge.reapply import attention

    items += attention(settings, ledger, customers)  # purged data back in the source
    return items


def _ownership_problems(settings: Settings, ledger: Ledger, customer: str) -> list[dict[str, Any]]:
    """Contested rows and reference cycles the purge could not break, from the notice on
    (not first on the purge date)."""
    from .source import cycle_can_break, unbreakable_cycle_note

    items: list[dict[str, Any]] = []
    try:
        with open_source(settings, ledger, customer) as src:
            with src.snapshot() as conn:
                contested = src.contested_report(conn)
            cycles = [e for e in src.datamap.back_edges() if not cycle_can_break(src, e)]
            for c in contested:
                items.append(
                    {"customer": customer, "kind": "contested_rows", "table": c.table, "rows": c.rows,
                     "references": c.references, "message": f"{customer}: {c.note()}"}
                )  # fmt: skip
            for e in cycles:
                items.append(
                    {"customer": customer, "kind": "deletion_cycle", "reference": e.label,
                     "message": f"{customer}: {unbreakable_cycle_note(src, e)}"}
                )  # fmt: skip
    except LearnexitError as exc:
        items.append(
            {
                "customer": customer,
                "kind": "source_problem",
                "message": f"{customer}: cannot check the source: {exc.message}",
            }
        )
    return items


def _unclassified(
    settings: Settings, customer: str, cache: dict[str, list[str] | LearnexitError]
) -> list[str] | LearnexitError:
    from .source import Source

    try:
        url = settings.source_url_for(customer)
    except LearnexitError as exc:
        return exc
    key = url if settings.customer.tenancy == "shared" else f"{url}#{customer}"
    if key not in cache:
        try:
            with Source(settings, customer) as src:
                cache[key] = src.datamap.unclassified()
        except LearnexitError as exc:
            cache[key] = exc
    return cache[key]


# --------------------------------------------------------------------------- audit


def _disagreements(ledger: Ledger, customers: list[str] | None) -> list[dict[str, Any]]:
    """``status --check`` items of kind ``ledger_disagrees``: ledger records that disagree
    with their audit entries (every decision for the customer is refused until settled)."""
    items = []
    for customer, problems in all_problems(ledger).items():
        if customers is None or customer in customers:
            more = f" ({len(problems) - 1} more: see `learnexit audit --verify`)" if len(problems) > 1 else ""
            items.append({"customer": customer, "kind": "ledger_disagrees", "problems": problems,
                          "message": problems[0] + more})  # fmt: skip
    return items


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
                "details": _json(e["details"], {}),
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
