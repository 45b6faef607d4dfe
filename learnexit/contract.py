"""The contract's date rules (design §1), as pure functions: no I/O, no clock unless passed.

* Period k of a contract starting on S with a term of T months is [S + k·T, S + (k+1)·T);
  its *end date* is the last day inside it.  Boundaries are always computed from S
  (dateutil clamps to month end: Jan 31 + 1 month = Feb 28/29), never chained.
* Notice received on R is timely when period_end − R ≥ notice_days.  Timely: the contract
  ends (E) at that period's end; late: at the end of the next period.
* Exports may be requested until E + export_window_days inclusive; the purge is due on the
  day after, at 00:00 local time.  A confirmed waiver brings it forward to
  max(00:00 on E + 1, confirmation) — never later than the normal due.
* Retained rows are kept through E + retain (ISO-8601 duration) and deletable the day after.
* Calendar dates are in the contract's time zone; instants are aware UTC datetimes.
  State is derived from recorded facts and a given `now`, never stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from learnexit.errors import BadInput, InvalidDate

DEFAULT_TIMEZONE = "Europe/Stockholm"
"""The zone dates begin and end in when ``[contract] timezone`` is not set."""

__all__ = [
    "DEFAULT_TIMEZONE",
    "STATES",
    "Facts",
    "Timeline",
    "compute_timeline",
    "days_between",
    "derive_state",
    "effective_purge_due_at",
    "is_timely",
    "local_midnight_utc",
    "parse_date",
    "parse_duration",
    "period_bounds",
    "period_containing",
    "purge_due_at",
    "retention_purge_due",
    "retention_until",
    "today",
    "waiver_counts",
]

MIN_YEAR = 1900
MAX_YEAR = 2200
MAX_TERM_MONTHS = 1200
_SHOW_CHARS = 40

_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
# ISO 8601 date-only duration.  Each number is at most 6 ASCII digits ([0-9], not \d,
# which would also accept Arabic-Indic and other Unicode digits).
_DURATION_RE = re.compile(r"P(?:([0-9]{1,6})Y)?(?:([0-9]{1,6})M)?(?:([0-9]{1,6})W)?(?:([0-9]{1,6})D)?")

STATES = (
    "none",
    "withdrawn",
    "held",
    "noticed",
    "terminated",
    "closed",
    "purge_due",
    "purge_failed",
    "purged",
    "purged_retained",
)


# --------------------------------------------------------------------------- helpers


def _show(text: object) -> str:
    """Render user input for a one-line message: truncated, repr'd (NUL, newlines visible)."""
    if isinstance(text, str):
        if len(text) > _SHOW_CHARS:
            return repr(text[:_SHOW_CHARS]) + "…"
        return repr(text)
    return f"<{type(text).__name__}>"


def _require_date(value: object, what: str) -> date:
    # datetime is a subclass of date; accepting one would silently drop its time and zone.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise BadInput(f"{what} must be a calendar date, got {_show(value)}")
    return value


def _require_int(value: object, what: str, *, minimum: int, maximum: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadInput(f"{what} must be a whole number, got {_show(value)}")
    if value < minimum:
        raise BadInput(f"{what} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise BadInput(f"{what} must be at most {maximum}, got {value}")
    return value


def _require_aware(value: object, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise BadInput(f"{what} must be a datetime, got {_show(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise BadInput(f"{what} must be timezone-aware (UTC), got a naive datetime")
    return value


def _zone(timezone: object) -> ZoneInfo:
    """The ZoneInfo for an IANA key, or BadInput naming the key."""
    if not isinstance(timezone, str):
        raise BadInput(f"unknown time zone {_show(timezone)}")
    try:
        return ZoneInfo(timezone)
    except (KeyError, ValueError, OSError, TypeError):
        # ZoneInfoNotFoundError is a KeyError; '', '../x' and NUL are ValueError;
        # a directory such as 'Europe' is an OSError.
        raise BadInput(f"unknown time zone {_show(timezone)}: use an IANA name such as '{DEFAULT_TIMEZONE}'") from None


def _plus(day: date, delta: relativedelta | timedelta, what: str) -> date:
    """day + delta, turning 'year out of range' into BadInput instead of a traceback."""
    try:
        return day + delta
    except (OverflowError, ValueError):
        raise BadInput(f"{what} falls outside the supported calendar") from None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --------------------------------------------------------------------------- parsing


def parse_date(text: str, *, what: str = "date") -> date:
    """Parse a strict ISO 8601 calendar date, YYYY-MM-DD, years 1900–2200.

    Nothing else is accepted (no surrounding spaces, no '2026-1-5', no '31/12/2026'): a
    date that decides when a customer's data is deleted must never be guessed.  Raises
    InvalidDate with a one-line message naming `what` and showing the (truncated, repr'd)
    text.
    """
    hint = "use ISO 8601, YYYY-MM-DD"
    if not isinstance(text, str):
        raise InvalidDate(f"invalid {what}: {_show(text)}; {hint}")
    match = _DATE_RE.fullmatch(text)
    if match is None:
        raise InvalidDate(f"invalid {what}: {_show(text)}; {hint}")
    year, month, day = (int(g) for g in match.groups())
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise InvalidDate(f"invalid {what}: {_show(text)}; the year must be between {MIN_YEAR} and {MAX_YEAR}")
    try:
        return date(year, month, day)
    except ValueError:
        raise InvalidDate(f"invalid {what}: {_show(text)}; no such day in the calendar") from None


def parse_duration(text: str) -> relativedelta:
    """Parse an ISO 8601 date duration: P7Y, P10Y6M, P18M, P90D, P1Y2M10D, P2W.

    Only the date part is allowed: retention is counted in calendar days, so 'PT5H' is
    refused, as are '', 'P', '7Y', negatives, fractions and surrounding spaces.  Raises
    BadInput.  Years and months stay calendar units (P1M from Jan 31 is Feb 28/29).
    """
    hint = "use an ISO 8601 duration such as P7Y, P18M or P90D"
    if not isinstance(text, str):
        raise BadInput(f"invalid duration {_show(text)}; {hint}")
    if text.startswith("-"):
        raise BadInput(f"invalid duration {_show(text)}: it must not be negative")
    if text.startswith("P") and "T" in text:
        raise BadInput(
            f"invalid duration {_show(text)}: time parts are not allowed, retention is counted in days (e.g. P90D)"
        )
    match = _DURATION_RE.fullmatch(text)
    if match is None or not any(match.groups()):
        raise BadInput(f"invalid duration {_show(text)}; {hint}")
    years, months, weeks, days = (int(g) if g else 0 for g in match.groups())
    return relativedelta(years=years, months=months, weeks=weeks, days=days)


# --------------------------------------------------------------------------- periods


def period_bounds(start: date, term_months: int, k: int) -> tuple[date, date]:
    """(first_day, end_date) of period k, both inclusive.

    first_day = start + k·T months and the next boundary = start + (k+1)·T months, each
    computed directly from `start` (dateutil clamps to the month's last day), so periods
    tile without gaps and never drift: start 2024-01-31, T=1 gives [01-31, 02-28],
    [02-29, 03-30], [03-31, 04-29], ...  end_date = next boundary − 1 day.
    """
    start = _require_date(start, "contract start")
    term_months = _require_int(term_months, "term_months", minimum=1)
    k = _require_int(k, "period index", minimum=0)
    first = _plus(start, relativedelta(months=k * term_months), "the contract period")
    boundary = _plus(start, relativedelta(months=(k + 1) * term_months), "the contract period")
    return first, boundary - timedelta(days=1)


def period_containing(start: date, term_months: int, day: date) -> tuple[int, date, date]:
    """(k, first_day, end_date) of the period containing `day`.

    A day before `start` (notice given before the contract began) belongs to period 0:
    the first period is the one it can end.
    """
    start = _require_date(start, "contract start")
    term_months = _require_int(term_months, "term_months", minimum=1)
    day = _require_date(day, "date")
    if day <= start:
        first, end = period_bounds(start, term_months, 0)
        return 0, first, end
    # Month distance gives k or k+1 (clamping can put a boundary late in its month);
    # correct by stepping, each step still computed from `start`.
    months = (day.year - start.year) * 12 + (day.month - start.month)
    k = max(0, months // term_months)
    first, end = period_bounds(start, term_months, k)
    while first > day:
        k -= 1
        first, end = period_bounds(start, term_months, k)
    while end < day:
        k += 1
        first, end = period_bounds(start, term_months, k)
    return k, first, end


def is_timely(period_end: date, received: date, notice_days: int = 30) -> bool:
    """Whether notice received on `received` is in time to end the contract at `period_end`.

    Timely when (period_end − received) ≥ notice_days: exactly 30 days is timely, 29 late.
    """
    period_end = _require_date(period_end, "period end")
    received = _require_date(received, "notice date")
    notice_days = _require_int(notice_days, "notice_days", minimum=0)
    return (period_end - received).days >= notice_days


# --------------------------------------------------------------------------- timeline


@dataclass(frozen=True)
class Timeline:
    """Every date that follows from one notice (design §1)."""

    received: date
    period_end: date  # end of the period in which notice was received
    timely: bool
    days_before_period_end: int  # period_end - received
    notice_days: int
    termination_date: date  # E: period_end if timely else end of the next period
    export_deadline: date  # E + export_window_days (inclusive)
    purge_due: date  # E + export_window_days + 1 (local date)
    purge_due_at: datetime  # aware UTC instant of 00:00 local time on purge_due
    timezone: str
    reason: str  # plain English: why timely / late


def compute_timeline(
    received: date,
    *,
    start: date | None = None,
    term_months: int | None = None,
    period_end: date | None = None,
    notice_days: int = 30,
    export_window_days: int = 90,
    timezone: str = DEFAULT_TIMEZONE,
) -> Timeline:
    """Compute the whole timeline for notice received on `received`.

    Terms are given either as (start, term_months) — the period containing `received` is
    used — or as `period_end`, the current period's end, optionally with term_months, which
    is needed only when the notice is late.  With period_end alone the next period is
    computed from period_end + 1 day as a new start (the original start is unknown, so
    month-end clamping may differ from the start-based result).  Raises BadInput on
    inconsistent or out-of-range terms.
    """
    received = _require_date(received, "notice date")
    notice_days = _require_int(notice_days, "notice_days", minimum=0)
    export_window_days = _require_int(export_window_days, "export_window_days", minimum=0)
    _zone(timezone)
    if term_months is not None:
        term_months = _require_int(term_months, "term_months", minimum=1, maximum=MAX_TERM_MONTHS)

    if start is not None and period_end is not None:
        raise BadInput("give either the contract start and term, or the period end, not both")
    if start is not None:
        start = _require_date(start, "contract start")
        if term_months is None:
            raise BadInput("a contract start needs term_months to know when periods end")
        k, _first, current_end = period_containing(start, term_months, received)
        timely = is_timely(current_end, received, notice_days)
        termination = current_end if timely else period_bounds(start, term_months, k + 1)[1]
    elif period_end is not None:
        current_end = _require_date(period_end, "period end")
        if received > current_end:
            raise BadInput(
                f"notice received after the given period end ({received.isoformat()} is after "
                f"{current_end.isoformat()}); give the end of the period the notice falls in"
            )
        timely = is_timely(current_end, received, notice_days)
        if timely:
            termination = current_end
        elif term_months is None:
            raise BadInput(
                f"notice is late for the period ending {current_end.isoformat()}; "
                "term_months is needed to know when the next period ends"
            )
        else:
            next_start = _plus(current_end, timedelta(days=1), "the next period")
            termination = period_bounds(next_start, term_months, 0)[1]
    else:
        raise BadInput("no contract terms: give the contract start and term_months, or the period end")

    days_before = (current_end - received).days
    export_deadline = _plus(termination, timedelta(days=export_window_days), "the export deadline")
    purge_due = _plus(export_deadline, timedelta(days=1), "the purge date")
    return Timeline(
        received=received,
        period_end=current_end,
        timely=timely,
        days_before_period_end=days_before,
        notice_days=notice_days,
        termination_date=termination,
        export_deadline=export_deadline,
        purge_due=purge_due,
        purge_due_at=local_midnight_utc(purge_due, timezone),
        timezone=timezone,
        reason=_reason(days_before, current_end, notice_days, timely, termination),
    )


def _reason(days_before: int, period_end: date, notice_days: int, timely: bool, end: date) -> str:
    if days_before == 0:
        when = f"on the period end ({period_end.isoformat()})"
    else:
        only = "" if timely else "only "
        when = f"{only}{_plural(days_before, 'day')} before the period end ({period_end.isoformat()})"
    if notice_days == 0:
        need = "no minimum notice is required"
    elif notice_days == 1:
        need = "at least 1 is required"
    else:
        need = f"at least {notice_days} are required"
    if timely:
        return f"notice received {when}; {need}, so the contract ends on {end.isoformat()}"
    return f"notice received {when}; {need}; the contract therefore runs one more period, to {end.isoformat()}"


# --------------------------------------------------------------------------- instants


def local_midnight_utc(day: date, timezone: str) -> datetime:
    """The aware UTC instant at which `day` begins in `timezone`.

    Correct across DST: 2026-03-29 in Stockholm begins at 2026-03-28T23:00Z (CET) and
    2026-10-26 at 2026-10-25T23:00Z.  In zones whose clocks jump over midnight the day
    begins at the first instant that exists (fold=0 maps the missing 00:00 there).
    """
    day = _require_date(day, "date")
    local = datetime.combine(day, time(0, 0), tzinfo=_zone(timezone))
    return local.astimezone(UTC)


def purge_due_at(
    termination_date: date,
    export_window_days: int,
    timezone: str,
    *,
    confirmed_at: datetime | None = None,
    waived: bool = False,
) -> datetime:
    """When the purge falls due, as an aware UTC instant.

    Normally 00:00 local on E + window + 1.  When the customer confirmed the handover and
    waived the rest of the window: max(00:00 local on E + 1, confirmed_at) — the service
    runs until E whatever is waived — but never later than the normal due (a waiver only
    shortens the window).  A waiver without its confirmation instant is BadInput.
    """
    termination_date = _require_date(termination_date, "termination date")
    export_window_days = _require_int(export_window_days, "export_window_days", minimum=0)
    purge_day = _plus(termination_date, timedelta(days=export_window_days + 1), "the purge date")
    normal = local_midnight_utc(purge_day, timezone)
    if not waived:
        return normal
    if confirmed_at is None:
        raise BadInput("a waived export window needs the confirmation time")
    confirmed_at = _require_aware(confirmed_at, "confirmed_at").astimezone(UTC)
    after_end = local_midnight_utc(termination_date + timedelta(days=1), timezone)
    return min(normal, max(after_end, confirmed_at))


def retention_until(termination_date: date, duration: str) -> date:
    """Last day retained rows must be kept: E + duration, inclusive.

    P7Y from 2026-12-31 keeps rows through 2033-12-31; they become deletable the next day
    (see retention_purge_due).
    """
    termination_date = _require_date(termination_date, "termination date")
    return _plus(termination_date, parse_duration(duration), "the retention end")


def retention_purge_due(termination_date: date, duration: str) -> date:
    """First local day on which retained rows may be deleted: retention_until + 1 day."""
    return _plus(retention_until(termination_date, duration), timedelta(days=1), "the retention end")


def today(timezone: str, now: datetime | None = None) -> date:
    """The local calendar date of `now` (default: the current UTC instant) in `timezone`."""
    zone = _zone(timezone)
    if now is None:
        now = datetime.now(UTC)
    return _require_aware(now, "now").astimezone(zone).date()


def days_between(a: date, b: date) -> int:
    """Whole days from a to b (b − a): positive when b is later."""
    return (_require_date(b, "date") - _require_date(a, "date")).days


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Facts:
    """What the ledger knows about one customer, gathered elsewhere."""

    timeline: Timeline | None
    withdrawn: bool = False
    confirmed_at: datetime | None = None  # aware UTC
    waived: bool = False
    closed_at: datetime | None = None
    purged_at: datetime | None = None
    retained_until: date | None = None  # latest retention end still pending after the purge
    retention_purged_at: datetime | None = None
    hold_active: bool = False
    purge_failed: bool = False


def waiver_counts(facts: Facts) -> bool:
    """Whether the customer's waiver of the export window counts: only together with its
    confirmation instant (never delete earlier on incomplete evidence)."""
    return facts.waived and facts.confirmed_at is not None


def effective_purge_due_at(facts: Facts) -> datetime | None:
    """The purge due instant after applying a waiver (``waiver_counts``); None without a
    timeline.  A waived flag without its confirmation instant falls back to the normal due.
    """
    tl = facts.timeline
    if tl is None:
        return None
    window = (tl.export_deadline - tl.termination_date).days
    waived = waiver_counts(facts)
    return purge_due_at(
        tl.termination_date,
        window,
        tl.timezone,
        confirmed_at=facts.confirmed_at if waived else None,
        waived=waived,
    )


def derive_state(facts: Facts, now: datetime) -> str:
    """The customer's state at `now` (aware), derived from recorded facts; one of STATES.

    Precedence, first match wins:
      none (no timeline) → purged (purged, no retention pending) → held (hold active) →
      purged_retained (retained rows not yet purged) → withdrawn → purge_failed →
      purge_due (now ≥ effective due) → closed (closure done) →
      noticed (local date ≤ E) → terminated (after E, window open).
    A hold outranks everything that can still change data, including a pending retention
    purge; once nothing is left, 'purged' is the truth.  A recorded closure is reported
    even before E.  Dates compare in the timeline's time zone.
    """
    now = _require_aware(now, "now")
    tl = facts.timeline
    if tl is None:
        return "none"
    if facts.purged_at is not None:
        retention_pending = facts.retained_until is not None and facts.retention_purged_at is None
        if not retention_pending:
            return "purged"
        if facts.hold_active:
            return "held"
        return "purged_retained"
    if facts.hold_active:
        return "held"
    if facts.withdrawn:
        return "withdrawn"
    if facts.purge_failed:
        return "purge_failed"
    due = effective_purge_due_at(facts)
    assert due is not None
    if now >= due:
        return "purge_due"
    if facts.closed_at is not None:
        return "closed"
    if today(tl.timezone, now) <= tl.termination_date:
        return "noticed"
    return "terminated"
