"""Tests for learnexit.contract: worked examples pinning exact dates, then properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learnexit import contract as c
from learnexit.contract import (
    Facts,
    Timeline,
    compute_timeline,
    days_between,
    derive_state,
    effective_purge_due_at,
    is_timely,
    local_midnight_utc,
    parse_date,
    parse_duration,
    period_bounds,
    period_containing,
    purge_due_at,
    retention_purge_due,
    retention_until,
    today,
)
from learnexit.errors import BadInput, InvalidDate

STHLM = "Europe/Stockholm"
D = date


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# =========================================================================== parse_date


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-29", D(2026, 11, 29)),
        ("2024-02-29", D(2024, 2, 29)),
        ("1900-01-01", D(1900, 1, 1)),
        ("2200-12-31", D(2200, 12, 31)),
    ],
)
def test_parse_date_accepts_iso(text, expected):
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30",
        "2025-02-29",
        "2026-13-01",
        "2026-00-10",
        "2026-01-00",
        "31/12/2026",
        "2026-1-5",
        "2026-01-5",
        "",
        " 2026-01-01",
        "2026-01-01 ",
        "2026-01-01\n",
        "1899-12-31",
        "2201-01-01",
        "0000-01-01",
        "9999-12-31",
        "20260101",
        "2026/01/01",
        "2026-01-01T00:00:00",
        "2026-W01-1",
        "2026-001",
        "+2026-01-01",
        "２０２６-01-01",  # full-width digits
        "٢٠٢٦-01-01",  # Arabic-Indic digits
        "2026-01-01\x00",
        "2026-01-01😀",
        "today",
    ],
)
def test_parse_date_rejects(text):
    with pytest.raises(InvalidDate):
        parse_date(text)


@pytest.mark.parametrize("value", [None, 20260101, b"2026-01-01", D(2026, 1, 1)])
def test_parse_date_rejects_non_strings(value):
    with pytest.raises(InvalidDate):
        parse_date(value)  # type: ignore[arg-type]


def test_parse_date_message_names_what_and_shows_text():
    with pytest.raises(InvalidDate) as exc:
        parse_date("2026-02-30", what="--received")
    msg = exc.value.message
    assert "--received" in msg and "'2026-02-30'" in msg
    assert "\n" not in str(exc.value)


def test_parse_date_message_makes_nul_and_newlines_visible_and_truncates():
    with pytest.raises(InvalidDate) as exc:
        parse_date("2026\x00-01-01\nrm -rf /" + "x" * 200, what="period end")
    text = str(exc.value)
    assert "\\x00" in text and "\\n" in text and "\n" not in text
    assert "x" * 41 not in text and "…" in text
    assert "period end" in text


def test_parse_date_message_shows_emoji():
    with pytest.raises(InvalidDate) as exc:
        parse_date("😀")
    assert "'😀'" in str(exc.value)


def test_parse_date_errors_are_bad_input_exit_2():
    with pytest.raises(BadInput) as exc:
        parse_date("nope")
    assert exc.value.exit_code == 2


@settings(max_examples=300)
@given(st.dates(min_value=D(1900, 1, 1), max_value=D(2200, 12, 31)))
def test_parse_date_round_trips(d):
    assert parse_date(d.isoformat()) == d


@settings(max_examples=500)
@given(st.one_of(st.text(max_size=20), st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", fullmatch=True)))
def test_parse_date_either_exact_or_invalid_date(text):
    try:
        d = parse_date(text)
    except InvalidDate as e:
        assert "\n" not in str(e)
    else:
        assert d.isoformat() == text


# =========================================================================== parse_duration


@pytest.mark.parametrize(
    "text, expected",
    [
        ("P7Y", relativedelta(years=7)),
        ("P10Y6M", relativedelta(years=10, months=6)),
        ("P18M", relativedelta(years=1, months=6)),
        ("P90D", relativedelta(days=90)),
        ("P1Y2M10D", relativedelta(years=1, months=2, days=10)),
        ("P2W", relativedelta(days=14)),
        ("P0D", relativedelta()),
    ],
)
def test_parse_duration_accepts(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "7Y",
        "PT5H",
        "P1DT5H",
        "PT",
        "-P7Y",
        "P-7Y",
        "P1.5Y",
        "P1,5Y",
        "p7y",
        " P7Y",
        "P7Y ",
        "P7Y\n",
        "P7",
        "P1M1Y",  # wrong order
        "P7Y7Y",
        "P١Y",  # Arabic-Indic digit
        "P1234567Y",  # absurd
        "P\x00",
    ],
)
def test_parse_duration_rejects(text):
    with pytest.raises(BadInput):
        parse_duration(text)


def test_parse_duration_time_part_message_explains():
    with pytest.raises(BadInput) as exc:
        parse_duration("PT5H")
    assert "time" in str(exc.value) and "days" in str(exc.value)


@settings(max_examples=300)
@given(st.text(max_size=16))
def test_parse_duration_never_crashes(text):
    try:
        assert isinstance(parse_duration(text), relativedelta)
    except BadInput as e:
        assert "\n" not in str(e)


# =========================================================================== periods


def test_jan31_monthly_in_leap_year_2024():
    s = D(2024, 1, 31)
    assert period_bounds(s, 1, 0) == (D(2024, 1, 31), D(2024, 2, 28))
    assert period_bounds(s, 1, 1) == (D(2024, 2, 29), D(2024, 3, 30))
    assert period_bounds(s, 1, 2) == (D(2024, 3, 31), D(2024, 4, 29))
    assert period_bounds(s, 1, 3) == (D(2024, 4, 30), D(2024, 5, 30))
    # no drift: a year later the periods are back on the 31st
    assert period_bounds(s, 1, 11) == (D(2024, 12, 31), D(2025, 1, 30))
    assert period_bounds(s, 1, 12) == (D(2025, 1, 31), D(2025, 2, 27))


def test_jan31_monthly_in_non_leap_year_2025():
    s = D(2025, 1, 31)
    assert period_bounds(s, 1, 0) == (D(2025, 1, 31), D(2025, 2, 27))
    assert period_bounds(s, 1, 1) == (D(2025, 2, 28), D(2025, 3, 30))
    assert period_bounds(s, 1, 2) == (D(2025, 3, 31), D(2025, 4, 29))
    assert period_bounds(s, 1, 12) == (D(2026, 1, 31), D(2026, 2, 27))


def test_yearly_from_leap_day():
    s = D(2024, 2, 29)
    assert period_bounds(s, 12, 0) == (D(2024, 2, 29), D(2025, 2, 27))
    assert period_bounds(s, 12, 1) == (D(2025, 2, 28), D(2026, 2, 27))
    assert period_bounds(s, 12, 2) == (D(2026, 2, 28), D(2027, 2, 27))
    assert period_bounds(s, 12, 3) == (D(2027, 2, 28), D(2028, 2, 28))
    assert period_bounds(s, 12, 4) == (D(2028, 2, 29), D(2029, 2, 27))


def test_ordinary_yearly_and_quarterly():
    assert period_bounds(D(2026, 1, 1), 12, 0) == (D(2026, 1, 1), D(2026, 12, 31))
    assert period_bounds(D(2026, 1, 1), 3, 3) == (D(2026, 10, 1), D(2026, 12, 31))


@pytest.mark.parametrize("term, k", [(0, 0), (-1, 0), (1, -1), (True, 0), (1.0, 0), (None, 0)])
def test_period_bounds_rejects(term, k):
    with pytest.raises(BadInput):
        period_bounds(D(2026, 1, 1), term, k)


def test_period_bounds_rejects_datetime_and_overflow():
    with pytest.raises(BadInput):
        period_bounds(datetime(2026, 1, 1), 12, 0)  # type: ignore[arg-type]
    with pytest.raises(BadInput):
        period_bounds(D(9999, 1, 1), 12, 5)


def test_period_containing_examples():
    s = D(2024, 1, 31)
    assert period_containing(s, 1, D(2024, 2, 28)) == (0, D(2024, 1, 31), D(2024, 2, 28))
    assert period_containing(s, 1, D(2024, 2, 29)) == (1, D(2024, 2, 29), D(2024, 3, 30))
    assert period_containing(s, 1, D(2024, 3, 31)) == (2, D(2024, 3, 31), D(2024, 4, 29))
    assert period_containing(D(2026, 1, 1), 12, D(2030, 6, 1)) == (4, D(2030, 1, 1), D(2030, 12, 31))


def test_period_containing_day_before_start_is_period_zero():
    assert period_containing(D(2026, 1, 1), 12, D(2025, 6, 1)) == (0, D(2026, 1, 1), D(2026, 12, 31))


def test_is_timely_boundary():
    assert is_timely(D(2026, 12, 31), D(2026, 12, 1)) is True  # 30 days
    assert is_timely(D(2026, 12, 31), D(2026, 12, 2)) is False  # 29 days
    assert is_timely(D(2026, 12, 31), D(2026, 12, 31), 0) is True
    assert is_timely(D(2026, 12, 31), D(2026, 12, 21), 10) is True
    with pytest.raises(BadInput):
        is_timely(D(2026, 12, 31), D(2026, 12, 1), -1)


# =========================================================================== timelines


def test_timely_exactly_30_days():
    t = compute_timeline(D(2026, 12, 1), start=D(2026, 1, 1), term_months=12)
    assert t.timely and t.days_before_period_end == 30
    assert t.period_end == t.termination_date == D(2026, 12, 31)


def test_late_29_days_rolls_to_next_period():
    t = compute_timeline(D(2026, 12, 2), start=D(2026, 1, 1), term_months=12)
    assert not t.timely and t.days_before_period_end == 29
    assert t.period_end == D(2026, 12, 31)
    assert t.termination_date == D(2027, 12, 31)
    assert t.export_deadline == D(2028, 3, 30)  # 2028 is a leap year
    assert t.purge_due == D(2028, 3, 31)
    assert "only 29 days" in t.reason and "one more period, to 2027-12-31" in t.reason


def test_late_notice_monthly_from_jan31_uses_start_not_chaining():
    # received 2024-02-20 in period [01-31, 02-28] (8 days before): late, next period ends 03-30
    t = compute_timeline(D(2024, 2, 20), start=D(2024, 1, 31), term_months=1, notice_days=10)
    assert (t.period_end, t.timely, t.termination_date) == (D(2024, 2, 28), False, D(2024, 3, 30))


def test_full_timeline_example_and_purge_instant():
    t = compute_timeline(D(2026, 11, 16), start=D(2026, 1, 1), term_months=12)
    assert t == Timeline(
        received=D(2026, 11, 16),
        period_end=D(2026, 12, 31),
        timely=True,
        days_before_period_end=45,
        notice_days=30,
        termination_date=D(2026, 12, 31),
        export_deadline=D(2027, 3, 31),
        purge_due=D(2027, 4, 1),
        purge_due_at=utc(2027, 3, 31, 22, 0),  # CEST, UTC+2
        timezone=STHLM,
        reason=t.reason,
    )
    assert t.reason.startswith("notice received 45 days before the period end (2026-12-31); at least 30 are required")


def test_period_end_only_terms():
    t = compute_timeline(D(2026, 11, 16), period_end=D(2026, 12, 31))
    assert t.timely and t.termination_date == D(2026, 12, 31)
    t = compute_timeline(D(2026, 12, 10), period_end=D(2026, 12, 31), term_months=12)
    assert not t.timely and t.termination_date == D(2027, 12, 31)
    # next period computed from period_end + 1 as a new start: 02-29 + 1 month = 03-29
    t = compute_timeline(D(2024, 2, 20), period_end=D(2024, 2, 28), term_months=1)
    assert t.termination_date == D(2024, 3, 28)
    # received on the period end itself: 0 days, late
    t = compute_timeline(D(2026, 12, 31), period_end=D(2026, 12, 31), term_months=12)
    assert not t.timely and t.days_before_period_end == 0 and "on the period end" in t.reason


def test_period_end_only_errors():
    with pytest.raises(BadInput, match="after the given period end"):
        compute_timeline(D(2027, 1, 2), period_end=D(2026, 12, 31), term_months=12)
    with pytest.raises(BadInput, match="term_months"):
        compute_timeline(D(2026, 12, 20), period_end=D(2026, 12, 31))


def test_notice_before_contract_start_uses_first_period():
    t = compute_timeline(D(2025, 10, 1), start=D(2026, 1, 1), term_months=12)
    assert t.period_end == D(2026, 12, 31) and t.timely and t.days_before_period_end == 456


def test_custom_notice_and_window_and_zone():
    t = compute_timeline(
        D(2026, 6, 1),
        start=D(2026, 1, 1),
        term_months=6,
        notice_days=0,
        export_window_days=0,
        timezone="America/New_York",
    )
    assert t.termination_date == t.export_deadline == D(2026, 6, 30)
    assert t.purge_due == D(2026, 7, 1)
    assert t.purge_due_at == utc(2026, 7, 1, 4, 0)
    assert "no minimum notice is required" in t.reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # no terms
        {"term_months": 12},  # term alone
        {"start": D(2026, 1, 1)},  # start without term
        {"start": D(2026, 1, 1), "term_months": 12, "period_end": D(2026, 12, 31)},
        {"start": D(2026, 1, 1), "term_months": 0},
        {"start": D(2026, 1, 1), "term_months": 1201},
        {"start": D(2026, 1, 1), "term_months": "12"},
        {"start": D(2026, 1, 1), "term_months": 12, "notice_days": -1},
        {"start": D(2026, 1, 1), "term_months": 12, "export_window_days": -1},
        {"start": D(2026, 1, 1), "term_months": 12, "notice_days": True},
        {"start": datetime(2026, 1, 1), "term_months": 12},
        {"start": "2026-01-01", "term_months": 12},
    ],
)
def test_compute_timeline_rejects(kwargs):
    with pytest.raises(BadInput):
        compute_timeline(D(2026, 6, 1), **kwargs)


@pytest.mark.parametrize("tz", ["Mars/Olympus", "", "Europe", "../etc/passwd", "utc", "a\x00b", "x" * 500])
def test_unknown_timezone_is_named(tz):
    with pytest.raises(BadInput) as exc:
        compute_timeline(D(2026, 6, 1), start=D(2026, 1, 1), term_months=12, timezone=tz)
    assert repr(tz[:40]) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_timeline_is_frozen():
    t = compute_timeline(D(2026, 6, 1), start=D(2026, 1, 1), term_months=12)
    with pytest.raises(AttributeError):
        t.timely = False  # type: ignore[misc]


# =========================================================================== instants


def test_local_midnight_across_dst_stockholm():
    assert local_midnight_utc(D(2026, 3, 28), STHLM) == utc(2026, 3, 27, 23)
    assert local_midnight_utc(D(2026, 3, 29), STHLM) == utc(2026, 3, 28, 23)  # still CET at 00:00
    assert local_midnight_utc(D(2026, 3, 30), STHLM) == utc(2026, 3, 29, 22)
    assert local_midnight_utc(D(2026, 10, 25), STHLM) == utc(2026, 10, 24, 22)  # still CEST
    assert local_midnight_utc(D(2026, 10, 26), STHLM) == utc(2026, 10, 25, 23)
    assert local_midnight_utc(D(2026, 10, 26), STHLM).tzinfo is not None


def test_local_midnight_when_clocks_skip_midnight():
    # Santiago springs forward at 00:00 -> 01:00: the day begins at 01:00 local
    u = local_midnight_utc(D(2024, 9, 8), "America/Santiago")
    assert u == utc(2024, 9, 8, 4)
    assert u.astimezone(ZoneInfo("America/Santiago")).hour == 1
    # Samoa skipped 2011-12-30 entirely: the instant is the start of the next day
    assert local_midnight_utc(D(2011, 12, 30), "Pacific/Apia") == local_midnight_utc(D(2011, 12, 31), "Pacific/Apia")


def test_purge_due_at_normal_and_waived():
    e = D(2026, 12, 31)
    normal = utc(2027, 3, 31, 22)
    assert purge_due_at(e, 90, STHLM) == normal
    # confirmed before E: due at 00:00 local on E + 1 (CET: 23:00Z)
    assert purge_due_at(e, 90, STHLM, confirmed_at=utc(2026, 12, 15, 10), waived=True) == utc(2026, 12, 31, 23)
    # confirmed after E: due at the confirmation instant
    assert purge_due_at(e, 90, STHLM, confirmed_at=utc(2027, 1, 15, 9, 30), waived=True) == utc(2027, 1, 15, 9, 30)
    # confirmation in another offset is normalised to UTC
    cet = timezone(timedelta(hours=1))
    got = purge_due_at(e, 90, STHLM, confirmed_at=datetime(2027, 1, 15, 10, 30, tzinfo=cet), waived=True)
    assert got == utc(2027, 1, 15, 9, 30) and got.utcoffset() == timedelta(0)
    # a waiver never postpones the normal due
    assert purge_due_at(e, 90, STHLM, confirmed_at=utc(2027, 6, 1), waived=True) == normal
    # confirmation without waiver changes nothing
    assert purge_due_at(e, 90, STHLM, confirmed_at=utc(2026, 12, 15)) == normal


def test_purge_due_at_rejects():
    with pytest.raises(BadInput):
        purge_due_at(D(2026, 12, 31), 90, STHLM, waived=True)
    with pytest.raises(BadInput):
        purge_due_at(D(2026, 12, 31), 90, STHLM, confirmed_at=datetime(2027, 1, 1), waived=True)
    with pytest.raises(BadInput):
        purge_due_at(D(2026, 12, 31), -1, STHLM)
    with pytest.raises(BadInput):
        purge_due_at(D(2026, 12, 31), 90, "Nowhere/Land")


def test_retention():
    assert retention_until(D(2026, 12, 31), "P7Y") == D(2033, 12, 31)
    assert retention_purge_due(D(2026, 12, 31), "P7Y") == D(2034, 1, 1)
    assert retention_until(D(2024, 8, 31), "P18M") == D(2026, 2, 28)
    assert retention_until(D(2024, 2, 29), "P1Y") == D(2025, 2, 28)
    assert retention_until(D(2026, 12, 31), "P90D") == D(2027, 3, 31)
    with pytest.raises(BadInput):
        retention_until(D(2026, 12, 31), "PT1H")
    with pytest.raises(BadInput):
        retention_until(D(2026, 12, 31), "P999999Y")


def test_today_and_days_between():
    assert today(STHLM, utc(2026, 3, 28, 23, 30)) == D(2026, 3, 29)
    assert today(STHLM, utc(2026, 3, 28, 22, 59)) == D(2026, 3, 28)
    assert today("America/New_York", utc(2026, 1, 1, 3)) == D(2025, 12, 31)
    assert isinstance(today(STHLM), date)
    with pytest.raises(BadInput):
        today(STHLM, datetime(2026, 1, 1))
    assert days_between(D(2026, 12, 1), D(2026, 12, 31)) == 30
    assert days_between(D(2026, 12, 31), D(2026, 12, 1)) == -30


# =========================================================================== state


TL = compute_timeline(D(2026, 11, 16), start=D(2026, 1, 1), term_months=12)  # E = 2026-12-31


@pytest.mark.parametrize(
    "facts, now, state",
    [
        (Facts(None), utc(2026, 1, 1), "none"),
        (Facts(TL), utc(2026, 11, 20), "noticed"),
        (Facts(TL), utc(2026, 12, 31, 22, 59), "noticed"),  # 23:59 local on E
        (Facts(TL), utc(2026, 12, 31, 23, 0), "terminated"),  # 00:00 local on E + 1
        (Facts(TL), utc(2027, 3, 31, 21, 59), "terminated"),
        (Facts(TL, confirmed_at=utc(2027, 1, 5), closed_at=utc(2027, 1, 5)), utc(2027, 2, 1), "closed"),
        (Facts(TL), utc(2027, 3, 31, 22, 0), "purge_due"),
        (Facts(TL, closed_at=utc(2027, 1, 5)), utc(2027, 4, 2), "purge_due"),
        (Facts(TL, withdrawn=True), utc(2027, 4, 2), "withdrawn"),
        (Facts(TL, hold_active=True), utc(2027, 4, 2), "held"),
        (Facts(TL, hold_active=True, withdrawn=True), utc(2026, 11, 20), "held"),
        (Facts(TL, purge_failed=True), utc(2027, 4, 2), "purge_failed"),
        (Facts(TL, purged_at=utc(2027, 4, 1)), utc(2027, 4, 2), "purged"),
        (Facts(TL, purged_at=utc(2027, 4, 1), hold_active=True), utc(2027, 4, 2), "purged"),
        (
            Facts(TL, purged_at=utc(2027, 4, 1), retained_until=D(2033, 12, 31)),
            utc(2027, 4, 2),
            "purged_retained",
        ),
        (
            Facts(TL, purged_at=utc(2027, 4, 1), retained_until=D(2033, 12, 31), hold_active=True),
            utc(2027, 4, 2),
            "held",
        ),
        (
            Facts(
                TL,
                purged_at=utc(2027, 4, 1),
                retained_until=D(2033, 12, 31),
                retention_purged_at=utc(2034, 1, 1),
            ),
            utc(2034, 1, 2),
            "purged",
        ),
        # waiver confirmed before E: purge due at 00:00 local on E + 1
        (Facts(TL, confirmed_at=utc(2026, 12, 1), waived=True), utc(2026, 12, 31, 22, 59), "noticed"),
        (Facts(TL, confirmed_at=utc(2026, 12, 1), waived=True), utc(2026, 12, 31, 23, 0), "purge_due"),
        # waiver after E: due at the confirmation
        (Facts(TL, confirmed_at=utc(2027, 1, 10, 12), waived=True), utc(2027, 1, 10, 11), "terminated"),
        (Facts(TL, confirmed_at=utc(2027, 1, 10, 12), waived=True), utc(2027, 1, 10, 12), "purge_due"),
    ],
)
def test_derive_state(facts, now, state):
    assert state in c.STATES
    assert derive_state(facts, now) == state


def test_every_state_is_covered_by_examples():
    params = test_derive_state.pytestmark[0].args[1]
    assert {p[2] for p in params} == set(c.STATES)


def test_derive_state_requires_aware_now():
    with pytest.raises(BadInput):
        derive_state(Facts(TL), datetime(2027, 1, 1))


def test_effective_purge_due_at():
    assert effective_purge_due_at(Facts(None)) is None
    assert effective_purge_due_at(Facts(TL)) == TL.purge_due_at
    assert effective_purge_due_at(Facts(TL, confirmed_at=utc(2026, 12, 1), waived=True)) == utc(2026, 12, 31, 23)
    # waived flag without its confirmation instant: the normal due, never earlier
    assert effective_purge_due_at(Facts(TL, waived=True)) == TL.purge_due_at


# =========================================================================== properties

starts = st.dates(min_value=D(1950, 1, 1), max_value=D(2150, 12, 31))
terms = st.integers(min_value=1, max_value=60)
common_terms = st.sampled_from([1, 1, 3, 6, 12, 12, 24, 36])


@settings(max_examples=500)
@given(starts, terms, st.integers(min_value=0, max_value=200))
def test_periods_tile_without_gaps_or_overlap(start, term, k):
    first, end = period_bounds(start, term, k)
    nxt_first, nxt_end = period_bounds(start, term, k + 1)
    assert first <= end < nxt_first <= nxt_end
    assert end + timedelta(days=1) == nxt_first
    assert first == start + relativedelta(months=k * term)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(starts, common_terms, st.integers(min_value=1, max_value=40))
def test_no_drift_iterating_equals_direct(start, term, n):
    k, first, end = period_containing(start, term, start)
    assert (k, first) == (0, start)
    for i in range(1, n + 1):
        k, first, end = period_containing(start, term, end + timedelta(days=1))
        assert k == i
        assert (first, end) == period_bounds(start, term, i)


@settings(max_examples=500)
@given(starts, terms, st.integers(min_value=-400, max_value=30000))
def test_period_containing_contains_day(start, term, offset):
    day = start + timedelta(days=offset)
    k, first, end = period_containing(start, term, day)
    assert (first, end) == period_bounds(start, term, k)
    if day >= start:
        assert first <= day <= end
    else:
        assert k == 0 and first == start


receipts = st.dates(min_value=D(1990, 1, 1), max_value=D(2100, 12, 31))


@settings(max_examples=400)
@given(
    receipts,
    starts,
    common_terms,
    st.integers(min_value=0, max_value=120),
    st.integers(min_value=0, max_value=400),
    st.sampled_from([STHLM, "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]),
)
def test_timeline_properties(received, start, term, notice, window, tz):
    t = compute_timeline(
        received, start=start, term_months=term, notice_days=notice, export_window_days=window, timezone=tz
    )
    k, _first, end = period_containing(start, term, received)
    assert t.period_end == end
    assert t.days_before_period_end == (end - received).days
    assert (t.export_deadline - t.termination_date).days == window
    assert t.purge_due > t.export_deadline
    assert (t.purge_due - t.export_deadline).days == 1
    assert t.purge_due_at > local_midnight_utc(t.export_deadline, tz)
    assert t.purge_due_at == local_midnight_utc(t.purge_due, tz)
    assert t.timely == is_timely(end, received, notice)
    if t.timely:
        assert t.termination_date == t.period_end
        assert "only" not in t.reason
    else:
        assert t.termination_date == period_bounds(start, term, k + 1)[1]
        assert t.termination_date > t.period_end
        assert t.termination_date.isoformat() in t.reason
    assert t.received <= t.termination_date


@settings(max_examples=300)
@given(
    st.dates(min_value=D(1990, 1, 1), max_value=D(2100, 12, 31)),
    st.integers(min_value=0, max_value=400),
    common_terms,
    st.integers(min_value=0, max_value=120),
)
def test_period_end_only_timeline(period_end, before, term, notice):
    received = period_end - timedelta(days=before)
    t = compute_timeline(received, period_end=period_end, term_months=term, notice_days=notice)
    assert t.period_end == period_end
    if t.timely:
        assert t.termination_date == period_end
    else:
        nxt = period_end + timedelta(days=1)
        assert t.termination_date == nxt + relativedelta(months=term) - timedelta(days=1)
        assert t.termination_date > period_end
    with pytest.raises(BadInput):
        compute_timeline(period_end + timedelta(days=1), period_end=period_end, term_months=term)


@settings(max_examples=400)
@given(
    starts,
    common_terms,
    st.integers(min_value=-100, max_value=20000),
    st.integers(min_value=0, max_value=400),
    st.integers(min_value=0, max_value=120),
)
def test_timeliness_monotone_in_received(start, term, offset, gap, notice):
    r2 = start + timedelta(days=offset)
    r1 = r2 - timedelta(days=gap)
    pe = period_containing(start, term, r2)[2]
    # same period end: earlier receipt is never less timely
    if is_timely(pe, r2, notice):
        assert is_timely(pe, r1, notice)
    # and an earlier receipt never ends the contract later
    t1 = compute_timeline(r1, start=start, term_months=term, notice_days=notice)
    t2 = compute_timeline(r2, start=start, term_months=term, notice_days=notice)
    assert t1.termination_date <= t2.termination_date


@settings(max_examples=400)
@given(
    st.dates(min_value=D(1970, 1, 1), max_value=D(2100, 12, 31)),
    st.sampled_from([STHLM, "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
)
def test_local_midnight_round_trips(day, tz):
    u = local_midnight_utc(day, tz)
    assert u.utcoffset() == timedelta(0)
    local = u.astimezone(ZoneInfo(tz))
    assert local.date() == day
    assert (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)


@settings(max_examples=400)
@given(
    st.dates(min_value=D(1970, 1, 1), max_value=D(2100, 12, 31)),
    st.sampled_from(["America/Santiago", "America/Havana", "Asia/Beirut", "America/Sao_Paulo", "America/Asuncion"]),
)
def test_local_midnight_is_start_of_day_even_where_midnight_is_skipped(day, tz):
    zone = ZoneInfo(tz)
    u = local_midnight_utc(day, tz)
    assert u.astimezone(zone).date() == day
    assert (u - timedelta(microseconds=1)).astimezone(zone).date() < day


@settings(max_examples=400)
@given(
    st.dates(min_value=D(1990, 1, 1), max_value=D(2100, 12, 31)),
    st.integers(min_value=0, max_value=400),
    st.integers(min_value=-200 * 86400, max_value=600 * 86400),
    st.sampled_from([STHLM, "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
)
def test_waiver_bounds(e, window, seconds, tz):
    normal = purge_due_at(e, window, tz)
    after_end = local_midnight_utc(e + timedelta(days=1), tz)
    confirmed = after_end + timedelta(seconds=seconds)
    waived = purge_due_at(e, window, tz, confirmed_at=confirmed, waived=True)
    assert after_end <= waived <= normal  # never before E + 1, never after the normal due
    if confirmed <= normal:
        assert waived == max(after_end, confirmed)
    assert waived.utcoffset() == timedelta(0)
    tl = compute_timeline(e, period_end=e, notice_days=0, export_window_days=window, timezone=tz)
    assert effective_purge_due_at(Facts(tl, confirmed_at=confirmed, waived=True)) == waived


@settings(max_examples=200)
@given(
    receipts,
    common_terms,
    st.lists(st.integers(min_value=0, max_value=2000 * 86400), min_size=2, max_size=6),
)
def test_state_progresses_forward_in_time(received, term, offsets):
    order = ["noticed", "terminated", "purge_due"]
    tl = compute_timeline(received, period_end=received + timedelta(days=40), term_months=term)
    base = datetime.combine(received, datetime.min.time(), tzinfo=UTC)
    states = [derive_state(Facts(tl), base + timedelta(seconds=s)) for s in sorted(offsets)]
    idx = [order.index(s) for s in states]
    assert idx == sorted(idx)


@settings(max_examples=300)
@given(receipts, st.sampled_from(["P7Y", "P10Y6M", "P18M", "P90D", "P1Y2M10D", "P2W", "P0D"]))
def test_retention_purge_due_is_day_after(e, duration):
    until = retention_until(e, duration)
    assert until >= e
    assert retention_purge_due(e, duration) == until + timedelta(days=1)
