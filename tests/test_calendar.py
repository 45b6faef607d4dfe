"""The contract calendar: notices, status, confirmation, holds, --check and the audit trail.

Library tests and CLI tests run against the example LMS (built once, copied per test).
Dates are pinned by hand from the example's contracts: acme starts 2024-01-31 with
12-month terms (periods end 2025-01-30, 2026-01-30, 2027-01-30), globex 2025-03-01 / 12
(2026-02-28, 2027-02-28), initech 2023-06-15 / 6 (… 2026-12-14, 2027-06-14).
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from learnexit.cli import app
from learnexit.config import load_settings
from learnexit.demo import build_example
from learnexit.errors import BadInput, InvalidDate, OperationalError, Refused, UnknownCustomer
from learnexit.ledger import schema as L
from learnexit.ledger.store import Ledger
from learnexit.offboarding import clock
from learnexit.offboarding.attention import check_attention
from learnexit.offboarding.clock import parse_now
from learnexit.offboarding.closure import due_closures, run_closure
from learnexit.offboarding.confirm import confirm_handover
from learnexit.offboarding.facts import active_hold, active_notice
from learnexit.offboarding.holds import place_hold, release_hold
from learnexit.offboarding.notice import record_notice, withdraw_notice
from learnexit.offboarding.status import audit_report, customer_status
from learnexit.purge.plan import plan_purge

D = date


def at(text: str) -> datetime:
    return parse_now(text, "Europe/Stockholm")


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("example")
    build_example(dest, activity_rows=200)
    return dest


@pytest.fixture
def site(example_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the example (source database + config), with an empty ledger."""
    shutil.copy(example_dir / "lms.db", tmp_path / "lms.db")
    shutil.copy(example_dir / "learnexit.toml", tmp_path / "learnexit.toml")
    return tmp_path


@pytest.fixture
def settings(site: Path):
    return load_settings(site / "learnexit.toml")


@pytest.fixture
def ledger(settings):
    with Ledger(settings.state_url) as led:
        yield led


def add_export(ledger: Ledger, customer: str, status: str = "complete") -> None:
    """What the export command records when a package is delivered (or fails): the row
    and its audit entries, which every decision checks the row against."""
    with ledger.transaction() as conn:
        export_id = conn.execute(
            L.exports.insert().values(
                customer=customer,
                identity_id=ledger.case_id(conn, customer),
                started_at=datetime(2026, 11, 29, 12, 0),
                finished_at=datetime(2026, 11, 29, 12, 5),
                status=status,
                path=f"/exports/{customer}",
                recorded_by="tester@example",
            )
        ).inserted_primary_key[0]
        ledger.append_audit(
            conn, "export", "export_started", customer, {"export_id": export_id, "path": f"/exports/{customer}"}
        )
        ended = "export_completed" if status == "complete" else "export_failed"
        ledger.append_audit(conn, "export", ended, customer, {"export_id": export_id})


def add_purge(ledger: Ledger, customer: str, status: str, kind: str = "full", retained: dict | None = None) -> None:
    """What a purge records (the row and its audit entries), without purging."""
    with ledger.transaction() as conn:
        purge_id = conn.execute(
            L.purges.insert().values(
                customer=customer,
                identity_id=ledger.case_id(conn, customer),
                kind=kind,
                started_at=datetime(2027, 5, 1, 0, 5),
                finished_at=datetime(2027, 5, 1, 0, 9),
                status=status,
                retained=json.dumps(retained or {}),
                error="disk full" if status == "failed" else None,
                recorded_by="tester@example",
            )
        ).inserted_primary_key[0]
        ledger.append_audit(conn, "purge", "purge.started", customer, {"purge_id": purge_id, "kind": kind})
        ledger.append_audit(conn, "purge", f"purge.{status}", customer, {"purge_id": purge_id})


def audit_events(ledger: Ledger, customer: str | None = None) -> list[str]:
    """The calendar's audit events (those add_export and add_purge write left out)."""
    return [e["event"] for e in ledger.audit_entries(customer) if e["command"] not in ("export", "purge")]


# =========================================================================== now


def test_now_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEARNEXIT_NOW", "2027-01-31")
    assert clock.now() == datetime(2027, 1, 31, 11, 0, tzinfo=UTC)  # noon in Stockholm (CET)
    monkeypatch.setenv("LEARNEXIT_NOW", "2026-07-01")
    assert clock.now() == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)  # noon CEST
    monkeypatch.setenv("LEARNEXIT_NOW", "2027-01-31T00:30:00Z")
    assert clock.now() == datetime(2027, 1, 31, 0, 30, tzinfo=UTC)
    monkeypatch.setenv("LEARNEXIT_NOW", "2027-01-31T00:30:00")  # local time without an offset
    assert clock.now() == datetime(2027, 1, 30, 23, 30, tzinfo=UTC)
    for bad in ("tomorrow", "2027-02-30", "31/01/2027"):
        monkeypatch.setenv("LEARNEXIT_NOW", bad)
        with pytest.raises(InvalidDate):
            clock.now()
    monkeypatch.delenv("LEARNEXIT_NOW")
    assert abs((clock.now() - datetime.now(UTC)).total_seconds()) < 5


# =========================================================================== notices


def test_notice_from_the_contract_table(settings, ledger) -> None:
    out = record_notice(settings, ledger, "acme", D(2026, 11, 20), channel="letter", now=at("2026-11-29"))
    d = out.as_dict()
    assert d["action"] == "recorded" and d["name"] == "Acme Lärande AB"
    assert (d["received"], d["period_end"], d["timely"]) == (D(2026, 11, 20), D(2027, 1, 30), True)
    assert (d["termination_date"], d["export_deadline"], d["purge_due"]) == (
        D(2027, 1, 30),
        D(2027, 4, 30),
        D(2027, 5, 1),
    )
    assert d["purge_due_at"] == datetime(2027, 4, 30, 22, 0, tzinfo=UTC)  # 00:00 CEST
    assert d["days_left"] == 152 and d["state"] == "noticed"
    assert d["terms"]["source"] == "contract table" and d["terms"]["start"] == "2024-01-31"
    assert d["recorded_at"] == at("2026-11-29") and d["recorded_by"] == "tester@example"
    row = active_notice(ledger, "acme")
    assert row is not None and row["received"] == D(2026, 11, 20) and row["channel"] == "letter"
    assert audit_events(ledger) == ["notice.recorded"]


@pytest.mark.parametrize(
    "customer, received, period_end, timely, termination",
    [
        ("globex", D(2026, 1, 29), D(2026, 2, 28), True, D(2026, 2, 28)),  # exactly 30 days: timely
        ("globex", D(2026, 1, 30), D(2026, 2, 28), False, D(2027, 2, 28)),  # 29 days: one more period
        ("initech", D(2026, 11, 29), D(2026, 12, 14), False, D(2027, 6, 14)),  # 6-month terms
        ("acme", D(2025, 12, 31), D(2026, 1, 30), True, D(2026, 1, 30)),
    ],
)
def test_timely_and_late(settings, ledger, customer, received, period_end, timely, termination) -> None:
    d = record_notice(settings, ledger, customer, received, now=at("2026-11-29")).as_dict()
    assert (d["period_end"], d["timely"], d["termination_date"]) == (period_end, timely, termination)
    if not timely:
        assert "runs one more period, to " + termination.isoformat() in d["reason"]


def test_terms_from_flags(settings, ledger) -> None:
    d = record_notice(
        settings, ledger, "acme", D(2026, 11, 20), period_end=D(2026, 12, 31), dry_run=True, now=at("2026-11-29")
    ).as_dict()
    assert (d["timely"], d["termination_date"]) == (True, D(2026, 12, 31))
    d = record_notice(
        settings, ledger, "acme", D(2026, 12, 10), period_end=D(2026, 12, 31), dry_run=True, now=at("2026-12-10")
    ).as_dict()
    assert (d["timely"], d["termination_date"]) == (False, D(2027, 12, 31))  # next period: config's 12 months
    d = record_notice(
        settings,
        ledger,
        "acme",
        D(2026, 11, 20),
        start=D(2026, 1, 31),
        term_months=1,
        dry_run=True,
        now=at("2026-11-29"),
    ).as_dict()
    assert (d["period_end"], d["timely"], d["termination_date"]) == (D(2026, 11, 29), False, D(2026, 12, 30))
    assert d["action"] == "dry_run" and d["terms"]["source"] == "flags"
    with pytest.raises(BadInput):
        record_notice(settings, ledger, "acme", D(2026, 11, 20), start=D(2026, 1, 1), period_end=D(2026, 12, 31))
    with pytest.raises(BadInput):
        record_notice(settings, ledger, "acme", D(2026, 11, 20), term_months=3, now=at("2026-11-29"))
    assert ledger.rows(L.notices) == [] and audit_events(ledger) == []  # dry runs record nothing


def test_same_notice_twice_changes_nothing_a_different_one_is_refused(settings, ledger) -> None:
    now = at("2026-11-29")
    record_notice(settings, ledger, "acme", D(2026, 11, 20), reference="T-1", now=now)
    again = record_notice(settings, ledger, "acme", D(2026, 11, 20), reference="T-1", now=at("2026-11-30"))
    assert again.action == "unchanged" and again.recorded_at == now
    with pytest.raises(Refused, match="withdraw"):
        record_notice(settings, ledger, "acme", D(2026, 11, 21), reference="T-1", now=now)
    with pytest.raises(Refused):
        record_notice(settings, ledger, "acme", D(2026, 11, 20), reference="T-2", now=now)
    assert len(ledger.rows(L.notices)) == 1 and audit_events(ledger) == ["notice.recorded"]

    with pytest.raises(BadInput, match="not 2026-11-21"):
        withdraw_notice(settings, ledger, "acme", received=D(2026, 11, 21), now=now)
    w = withdraw_notice(settings, ledger, "acme", received=D(2026, 11, 20), now=now)
    assert w.action == "withdrawn" and w.state == "withdrawn"
    assert withdraw_notice(settings, ledger, "acme", now=now).action == "already_withdrawn"
    assert active_notice(ledger, "acme") is None
    assert customer_status(settings, ledger, "acme", now)["state"] == "withdrawn"

    second = record_notice(settings, ledger, "acme", D(2026, 11, 21), now=now)
    assert second.action == "recorded"
    rows = ledger.rows(L.notices, "acme")
    assert [r["withdrawn_at"] is not None for r in rows] == [True, False]  # the first is kept in history
    assert audit_events(ledger) == ["notice.recorded", "notice.withdrawn", "notice.recorded"]
    assert len(customer_status(settings, ledger, "acme", now)["history"]) == 2


def test_notice_input_errors(settings, ledger) -> None:
    now = at("2026-11-29")
    with pytest.raises(UnknownCustomer):
        record_notice(settings, ledger, "umbrella", D(2026, 11, 20), now=now)
    with pytest.raises(BadInput, match="future"):
        record_notice(settings, ledger, "acme", D(2026, 11, 30), now=now)
    with pytest.raises(BadInput, match="channel"):
        record_notice(settings, ledger, "acme", D(2026, 11, 20), channel="fax", now=now)
    with pytest.raises(BadInput, match="nothing to withdraw"):
        withdraw_notice(settings, ledger, "acme", now=now)
    assert ledger.rows(L.notices) == []


def test_back_dated_notice_keeps_the_recording_time(settings, ledger) -> None:
    out = record_notice(settings, ledger, "acme", D(2025, 12, 1), now=at("2026-11-29T09:15:00Z"))
    assert out.timeline.termination_date == D(2026, 1, 30)
    row = active_notice(ledger, "acme")
    assert row["received"] == D(2025, 12, 1) and row["recorded_at"] == datetime(2026, 11, 29, 9, 15)
    assert ledger.audit_entries("acme")[0]["details"].count('"back_dated_days":363') == 1
    # terminated long ago, window closed, purge due: the state says so
    assert out.state == "purge_due"


# =========================================================================== confirm and closure


def test_confirm_needs_an_export_or_a_reason(settings, ledger) -> None:
    now = at("2026-11-29")
    with pytest.raises(Refused, match="no notice"):
        confirm_handover(settings, ledger, "acme", by="Jane Doe", now=now)
    record_notice(settings, ledger, "acme", D(2026, 11, 20), now=now)
    add_export(ledger, "acme", status="failed")
    with pytest.raises(Refused, match="no complete export"):
        confirm_handover(settings, ledger, "acme", by="Jane Doe", now=now)
    with pytest.raises(BadInput):
        confirm_handover(settings, ledger, "acme", by="  ", without_export_reason="x", now=now)
    d = confirm_handover(settings, ledger, "acme", by="Jane Doe", without_export_reason="has a copy", now=now)
    assert d["action"] == "recorded" and d["confirmation"]["without_export_reason"] == "has a copy"
    assert d["closure"]["status"] == "scheduled" and d["closure"]["ran_now"] is False
    assert d["closure"]["due_at"] == datetime(2027, 1, 30, 23, 0, tzinfo=UTC)  # 00:00 CET on E + 1


def test_confirm_is_idempotent_and_a_later_waiver_brings_the_purge_forward(settings, ledger) -> None:
    now = at("2026-11-29")
    record_notice(settings, ledger, "acme", D(2026, 11, 20), now=now)
    add_export(ledger, "acme")
    first = confirm_handover(settings, ledger, "acme", by="Jane Doe", reference="T-9", now=now)
    assert first["action"] == "recorded" and first["purge_due"] == D(2027, 5, 1)
    again = confirm_handover(settings, ledger, "acme", by="Jane Doe", reference="T-9", now=now)
    assert again["action"] == "unchanged"
    assert len(ledger.rows(L.confirmations)) == 1
    early = plan_purge(settings, ledger, "acme", at("2026-11-30"), count=False).refusals
    assert early == [
        "the purge of acme is not due until 2027-04-30 22:00Z (export window open through 2027-04-30); "
        "use --force --reason TEXT to purge earlier"
    ]
    waived = confirm_handover(settings, ledger, "acme", by="Jane Doe", waive_window=True, now=at("2026-12-01"))
    assert waived["action"] == "waiver_added" and waived["waived"] is True
    # the refusal says why the purge waits: the contract period, not a window that is waived
    early = plan_purge(settings, ledger, "acme", at("2026-12-02"), count=False).refusals
    assert early == [
        "the purge of acme is not due until 2027-01-30 23:00Z (the contract runs through 2027-01-30; "
        "the export window is waived); use --force --reason TEXT to purge earlier"
    ]
    assert waived["purge_due_at"] == datetime(2027, 1, 30, 23, 0, tzinfo=UTC)
    assert waived["purge_due"] == D(2027, 1, 31)
    assert customer_status(settings, ledger, "acme", at("2027-01-31"))["state"] == "purge_due"
    assert audit_events(ledger, "acme") == ["notice.recorded", "handover.confirmed", "handover.window_waived"]


def test_closure_is_scheduled_until_the_termination_date_has_passed(settings, ledger, site: Path) -> None:
    record_notice(settings, ledger, "acme", D(2026, 11, 20), now=at("2026-11-29"))
    add_export(ledger, "acme")
    confirm_handover(settings, ledger, "acme", by="Jane Doe", now=at("2026-11-29"))
    db = sqlite3.connect(site / "lms.db")
    deleted = "SELECT count(*) FROM logins WHERE workflow_state = 'deleted'"
    assert db.execute(deleted).fetchone() == (0,)
    assert due_closures(settings, ledger, at("2027-01-30T23:59:59")) == []  # still E, local time
    assert customer_status(settings, ledger, "acme", at("2027-01-30"))["closure"]["status"] == "scheduled"
    assert due_closures(settings, ledger, at("2027-01-31T00:00:00")) == ["acme"]
    st = customer_status(settings, ledger, "acme", at("2027-01-31"))
    assert (st["state"], st["closure"]["status"]) == ("terminated", "due")
    assert run_closure(settings, ledger, "acme", now=at("2027-01-31")) == {"logins.workflow_state": 59}
    assert db.execute(deleted).fetchone() == (59,)
    assert run_closure(settings, ledger, "acme", now=at("2027-02-01")) == {"logins.workflow_state": 0}
    assert len(ledger.rows(L.closures)) == 1
    assert due_closures(settings, ledger, at("2027-02-01")) == []
    st = customer_status(settings, ledger, "acme", at("2027-02-01"))
    assert (st["state"], st["closure"]["status"], st["closure"]["rows"]) == (
        "closed",
        "done",
        {"logins.workflow_state": 59},
    )
    assert audit_events(ledger, "acme")[-1] == "closure.performed"


def test_confirm_after_the_termination_date_closes_at_once(settings, ledger) -> None:
    record_notice(settings, ledger, "globex", D(2026, 1, 10), now=at("2026-01-12"))  # E = 2026-02-28
    add_export(ledger, "globex")
    d = confirm_handover(settings, ledger, "globex", by="Li Wei", now=at("2026-03-02"))
    assert d["closure"]["ran_now"] is True and d["closure"]["changed"] == {"logins.workflow_state": 39}
    assert d["state"] == "closed"
    again = confirm_handover(settings, ledger, "globex", by="Li Wei", now=at("2026-03-03"))
    assert again["action"] == "unchanged" and again["closure"]["ran_now"] is False
    assert audit_events(ledger, "globex") == ["notice.recorded", "handover.confirmed", "closure.performed"]


def test_closure_failure_keeps_the_confirmation(settings, ledger, site: Path) -> None:
    record_notice(settings, ledger, "globex", D(2026, 1, 10), now=at("2026-01-12"))
    add_export(ledger, "globex")
    db = sqlite3.connect(site / "lms.db")
    db.execute("CREATE TRIGGER no_close BEFORE UPDATE ON logins BEGIN SELECT RAISE(ABORT, 'read only'); END")
    db.commit()
    with pytest.raises(OperationalError, match="confirmed and recorded.*closure failed"):
        confirm_handover(settings, ledger, "globex", by="Li Wei", now=at("2026-03-02"))
    assert len(ledger.rows(L.confirmations)) == 1 and ledger.rows(L.closures) == []
    assert due_closures(settings, ledger, at("2026-03-02")) == ["globex"]
    assert "closure.failed" in audit_events(ledger, "globex")


# =========================================================================== holds and states


def test_hold_and_release(settings, ledger) -> None:
    now = at("2026-11-29")
    with pytest.raises(UnknownCustomer):
        place_hold(settings, ledger, "umbrella", "case 1", now=now)
    assert place_hold(settings, ledger, "acme", "case 1", now=now)["action"] == "placed"
    assert place_hold(settings, ledger, "acme", "case 1", now=now)["action"] == "unchanged"
    with pytest.raises(Refused, match="already on hold"):
        place_hold(settings, ledger, "acme", "case 2", now=now)
    assert active_hold(ledger, "acme")["reason"] == "case 1"
    record_notice(settings, ledger, "acme", D(2026, 11, 20), now=now)
    assert customer_status(settings, ledger, "acme", at("2027-05-02"))["state"] == "held"
    assert release_hold(settings, ledger, "acme", now=now)["action"] == "released"
    assert release_hold(settings, ledger, "acme", now=now)["action"] == "no_active_hold"
    assert active_hold(ledger, "acme") is None
    assert customer_status(settings, ledger, "acme", at("2027-05-02"))["state"] == "purge_due"
    assert audit_events(ledger, "acme") == ["hold.placed", "notice.recorded", "hold.released"]


def test_states_follow_the_recorded_purges(settings, ledger) -> None:
    record_notice(settings, ledger, "acme", D(2026, 11, 20), now=at("2026-11-29"))
    states = {day: customer_status(settings, ledger, "acme", at(day))["state"] for day in (
        "2026-11-29", "2027-01-30", "2027-01-31", "2027-04-30", "2027-05-01")}  # fmt: skip
    assert states == {
        "2026-11-29": "noticed",
        "2027-01-30": "noticed",
        "2027-01-31": "terminated",
        "2027-04-30": "terminated",
        "2027-05-01": "purge_due",
    }
    add_purge(ledger, "acme", "failed")
    assert customer_status(settings, ledger, "acme", at("2027-05-01"))["state"] == "purge_failed"
    add_purge(ledger, "acme", "done", retained={"invoices": {"rows": 4, "until": "2034-01-30", "legal_basis": "x"}})
    st = customer_status(settings, ledger, "acme", at("2027-05-02"))
    assert (st["state"], st["retained_until"]) == ("purged_retained", D(2034, 1, 30))
    assert st["purged_at"] == datetime(2027, 5, 1, 0, 9, tzinfo=UTC)
    add_purge(ledger, "acme", "done", kind="retention")
    assert customer_status(settings, ledger, "acme", at("2034-02-01"))["state"] == "purged"
    with pytest.raises(Refused, match="purge"):
        withdraw_notice(settings, ledger, "acme", now=at("2034-02-01"))


# =========================================================================== --check


def kinds(settings, ledger, when: str) -> list[tuple[str, str]]:
    return [(i["customer"], i["kind"]) for i in check_attention(settings, ledger, now=at(when))]


def test_attention_exactly_when_needed(settings, ledger, site: Path) -> None:
    assert kinds(settings, ledger, "2026-11-29") == []
    record_notice(settings, ledger, "acme", D(2026, 11, 20), now=at("2026-11-29"))  # deadline 2027-04-30
    assert kinds(settings, ledger, "2027-04-15") == []  # 15 days left
    assert kinds(settings, ledger, "2027-04-16") == [("acme", "export_window_closing")]  # 14 days left
    assert kinds(settings, ledger, "2027-04-30") == [("acme", "export_window_closing")]  # last day
    add_export(ledger, "acme", status="failed")
    assert kinds(settings, ledger, "2027-04-16") == [("acme", "export_window_closing")]
    add_export(ledger, "acme")
    assert kinds(settings, ledger, "2027-04-16") == []
    assert kinds(settings, ledger, "2027-05-01") == [("acme", "purge_overdue")]
    place_hold(settings, ledger, "acme", "case 1", now=at("2027-05-01"))
    assert kinds(settings, ledger, "2027-05-01") == []
    release_hold(settings, ledger, "acme", now=at("2027-05-01"))
    add_purge(ledger, "acme", "failed")
    assert kinds(settings, ledger, "2027-05-01") == [("acme", "purge_failed")]
    add_purge(ledger, "acme", "done", retained={"invoices": {"rows": 4, "until": "2034-01-30", "legal_basis": "x"}})
    assert kinds(settings, ledger, "2027-05-02") == []
    assert kinds(settings, ledger, "2034-01-31") == [("acme", "retention_purge_overdue")]
    add_purge(ledger, "acme", "done", kind="retention")
    assert kinds(settings, ledger, "2034-02-01") == []


def test_attention_for_unclassified_tables(settings, ledger, site: Path) -> None:
    record_notice(settings, ledger, "initech", D(2026, 11, 29), now=at("2026-11-29"))
    assert kinds(settings, ledger, "2026-11-29") == []
    db = sqlite3.connect(site / "lms.db")
    db.execute("CREATE TABLE stray_notes (id INTEGER PRIMARY KEY, body TEXT)")
    db.commit()
    items = check_attention(settings, ledger, now=at("2026-11-29"))
    assert [(i["kind"], i["tables"]) for i in items] == [("unclassified_tables", ["stray_notes"])]


# =========================================================================== audit


def test_audit_has_no_personal_data_and_verifies(settings, ledger) -> None:
    now = at("2026-11-29")
    record_notice(settings, ledger, "acme", D(2026, 11, 20), reference="Letter from Jane Doe", now=now)
    confirm_handover(
        settings, ledger, "acme", by="Jane Doe", reference="jane@acme.example", without_export_reason="Jane says ok",
        now=now,
    )  # fmt: skip
    place_hold(settings, ledger, "acme", "Doe v. Acme", now=now)
    release_hold(settings, ledger, "acme", now=now)
    report = audit_report(ledger, "acme", verify=True)
    assert report["valid"] is True and report["checked"] == 4
    text = json.dumps([e["details"] for e in report["entries"]])
    assert "Jane" not in text and "Doe" not in text and "jane@" not in text
    assert [e["actor"] for e in report["entries"]] == ["tester@example"] * 4


# =========================================================================== CLI

runner = CliRunner()


def cli(site: Path, *args: str, now: str = "2026-11-29") -> tuple[int, dict | None, str]:
    result = runner.invoke(
        app,
        [*args, "--config", str(site / "learnexit.toml")],
        env={"LEARNEXIT_NOW": now, "LEARNEXIT_ACTOR": "tester@example"},
    )
    data = None
    if "--json" in args and result.stdout.strip():
        data = json.loads(result.stdout)
    return result.exit_code, data, result.stdout + result.stderr


NOTICE_KEYS = {
    "customer",
    "received",
    "period_end",
    "timely",
    "termination_date",
    "export_deadline",
    "purge_due",
    "state",
}


def test_cli_notice_status_confirm_status(site: Path, settings) -> None:
    code, d, _ = cli(
        site, "notice", "acme", "--received", "2026-11-20", "--channel", "letter", "--reference", "T-1", "--json"
    )
    assert code == 0 and NOTICE_KEYS <= set(d)
    assert {k: d[k] for k in NOTICE_KEYS | {"days_left", "purge_due_at", "action"}} == {
        "customer": "acme",
        "received": "2026-11-20",
        "period_end": "2027-01-30",
        "timely": True,
        "termination_date": "2027-01-30",
        "export_deadline": "2027-04-30",
        "purge_due": "2027-05-01",
        "purge_due_at": "2027-04-30T22:00:00Z",
        "state": "noticed",
        "days_left": 152,
        "action": "recorded",
    }
    code, again, _ = cli(
        site, "notice", "acme", "--received", "2026-11-20", "--channel", "letter", "--reference", "T-1", "--json"
    )
    assert code == 0 and again["action"] == "unchanged"

    code, st, _ = cli(site, "status", "acme", "--json")
    assert code == 0 and NOTICE_KEYS <= set(st)
    assert (st["state"], st["termination_date"], st["export_deadline"], st["purge_due"]) == (
        "noticed",
        "2027-01-30",
        "2027-04-30",
        "2027-05-01",
    )
    assert (st["confirmed"], st["exported"], st["closure"]["status"]) == (False, False, "awaiting_confirmation")
    assert [e["event"] for e in st["audit"]] == ["notice.recorded"]

    code, d, text = cli(site, "confirm", "acme", "--by", "Jane Doe", "--json")
    assert code == 3 and d is None and "no complete export" in text
    with Ledger(settings.state_url) as led:
        add_export(led, "acme")
    code, d, _ = cli(site, "confirm", "acme", "--by", "Jane Doe", "--reference", "T-2", "--json")
    assert code == 0 and d["action"] == "recorded" and d["state"] == "noticed"
    assert (d["closure"]["status"], d["closure"]["due_at"]) == ("scheduled", "2027-01-30T23:00:00Z")

    code, st, _ = cli(site, "status", "acme", "--json", now="2027-01-31")
    assert (code, st["state"], st["confirmed"], st["closure"]["status"], st["days_left"]) == (
        0,
        "terminated",
        True,
        "due",
        89,
    )
    code, d, _ = cli(site, "confirm", "acme", "--by", "Jane Doe", "--json", now="2027-01-31")
    assert (code, d["action"], d["closure"]["ran_now"], d["state"]) == (0, "unchanged", True, "closed")
    code, st, _ = cli(site, "status", "--json", now="2027-02-01")
    assert code == 0 and [(c["customer"], c["state"]) for c in st["customers"]] == [("acme", "closed")]
    assert NOTICE_KEYS <= set(st["customers"][0]) and st["as_of"] == "2027-02-01T11:00:00Z"
    entries = audit_report(Ledger(settings.state_url), "acme")["entries"]
    assert [e["event"] for e in entries if e["command"] != "export"] == [
        "notice.recorded",
        "handover.confirmed",
        "closure.performed",
    ]


def test_cli_status_after_a_waiver_counts_no_days_the_purge_will_take(site: Path, settings) -> None:
    assert cli(site, "notice", "acme", "--received", "2026-11-20")[0] == 0
    _, _, text = cli(site, "status", "acme")
    assert re.search(r"export deadline +2027-04-30  \(152 days left\)", text), text
    with Ledger(settings.state_url) as led:
        add_export(led, "acme")
    assert cli(site, "confirm", "acme", "--by", "Jane Doe", "--waive-window")[0] == 0
    code, st, _ = cli(site, "status", "acme", "--json")
    assert (code, st["export_deadline"], st["days_left"], st["waived"]) == (0, "2027-04-30", 152, True)
    _, _, text = cli(site, "status", "acme")
    flat = " ".join(text.split())  # (the row wraps at the terminal's width)
    assert "export deadline 2027-04-30 (waived: the purge is due 2027-01-31 00:00 Europe/Stockholm)" in flat, text
    assert "days left" not in text
    _, _, text = cli(site, "status")  # (piped: the list as one table, 160 columns wide)
    header = next(line for line in text.splitlines() if "export until" in line)
    row = next(line for line in text.splitlines() if "acme" in line)
    cells = dict(zip((c.strip() for c in header.split("┃")), (c.strip() for c in row.split("│")), strict=True))
    assert (cells["export until"], cells["left"], cells["purge"]) == ("2027-04-30", "waived", "due 2027-01-31")


def test_cli_late_notice_is_said_plainly(site: Path) -> None:
    code, _, text = cli(site, "notice", "globex", "--received", "2026-01-30", "--dry-run")
    assert code == 0
    assert "LATE: notice received only 29 days before the period end (2026-02-28)" in text
    assert "the contract therefore runs one more period, to 2027-02-28" in text
    assert "dry run" in text
    code, st, _ = cli(site, "status", "--json")
    assert st["customers"] == []  # the dry run recorded nothing


def test_cli_exit_codes(site: Path) -> None:
    assert cli(site, "notice", "acme", "--received", "2026-02-30")[0] == 2
    assert cli(site, "notice", "acme", "--received", "20.11.2026")[0] == 2
    assert cli(site, "notice", "acme")[0] == 2  # --received missing
    assert cli(site, "notice", "umbrella", "--received", "2026-11-20")[0] == 2
    assert cli(site, "notice", "acme", "--received", "2026-11-20", "--channel", "pigeon")[0] == 2
    assert cli(site, "notice", "acme", "--received", "2026-11-20", "--contract-start", "2026-1-1")[0] == 2
    assert cli(site, "status", "umbrella")[0] == 2
    code, _, text = cli(site, "notice", "acme", "--received", "2026-11-20")
    assert code == 0 and "timely" in text
    code, _, text = cli(site, "notice", "acme", "--received", "2026-11-21")
    assert code == 3 and text.count("\n") == 1 and "learnexit: error:" in text
    assert cli(site, "confirm", "acme", "--by", "X", "--without-export")[0] == 2  # needs --reason
    assert cli(site, "confirm", "acme", "--by", "X", "--reason", "r")[0] == 2  # --reason without --without-export
    assert cli(site, "confirm", "acme", "--by", "X", "--without-export", "--reason", "own copy")[0] == 0
    assert cli(site, "hold", "acme", "--reason", "case 1")[0] == 0
    assert cli(site, "hold", "acme", "--reason", "case 2")[0] == 3
    code, d, _ = cli(site, "release", "acme", "--json")
    assert (code, d["action"]) == (0, "released")
    code, d, _ = cli(site, "notice", "acme", "--withdraw", "--json")
    assert (code, d["action"], d["state"]) == (0, "withdrawn", "withdrawn")
    code, d, _ = cli(site, "notice", "acme", "--received", "2026-11-21", "--json")
    assert (code, d["action"]) == (0, "recorded")
    assert cli(site, "status", "acme", now="not-a-date")[0] == 2


def test_cli_status_check_exit_codes(site: Path, settings) -> None:
    code, d, _ = cli(site, "status", "--check", "--json")
    assert (code, d["attention"]) == (0, [])
    assert cli(site, "notice", "acme", "--received", "2026-11-20")[0] == 0
    code, d, _ = cli(site, "status", "--check", "--json", now="2027-04-15")
    assert (code, d["attention"]) == (0, [])
    code, d, text = cli(site, "status", "--check", now="2027-04-16")
    assert code == 5 and "Needs attention (1)" in text and "export_window_closing" in text
    code, d, _ = cli(site, "status", "acme", "--check", "--json", now="2027-04-16")
    assert code == 5 and [(i["kind"], i["days_left"]) for i in d["attention"]] == [("export_window_closing", 14)]
    with Ledger(settings.state_url) as led:
        add_export(led, "acme")
    assert cli(site, "status", "--check", now="2027-04-16")[0] == 0
    code, d, _ = cli(site, "status", "--check", "--json", now="2027-05-01")
    assert code == 5 and [i["kind"] for i in d["attention"]] == ["purge_overdue"]
    assert cli(site, "hold", "acme", "--reason", "case 1", now="2027-05-01")[0] == 0
    assert cli(site, "status", "--check", now="2027-05-01")[0] == 0
    code, _, text = cli(site, "status", now="2027-05-01")
    assert code == 0 and "HELD" in text


def test_cli_audit_verify_detects_tampering(site: Path, settings) -> None:
    cli(site, "notice", "acme", "--received", "2026-11-20")
    cli(site, "hold", "acme", "--reason", "case 1")
    code, d, _ = cli(site, "audit", "--verify", "--json")
    assert (code, d["valid"], [e["event"] for e in d["entries"]]) == (0, True, ["notice.recorded", "hold.placed"])
    code, d, _ = cli(site, "audit", "globex", "--json")
    assert (code, d["entries"]) == (0, [])
    engine = sa.create_engine(settings.state_url)
    with engine.begin() as conn:
        conn.execute(L.audit.update().where(L.audit.c.id == 1).values(actor="mallory"))
    engine.dispose()
    code, d, text = cli(site, "audit", "--verify", "--json")
    assert code == 1 and d["valid"] is False and "edited" in text
    code, _, text = cli(site, "audit", "--verify")
    assert code == 1 and "Chain BROKEN" in text


def test_cli_letter_needs_the_letter_module(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "learnexit.documents.letter", None)  # import fails
    code, _, text = cli(site, "notice", "acme", "--received", "2026-11-20", "--letter", str(site / "letters"))
    assert code == 1 and "letters not available" in text
    code, d, _ = cli(site, "status", "--json")
    assert d["customers"] == []  # refused before anything was recorded


def test_cli_letter_is_written_through_the_documents_module(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    class FakeLetter:
        @staticmethod
        def write_notice_letter(settings, customer, customer_name, timeline, out_dir, lang):
            calls.append((customer, customer_name, timeline.termination_date, Path(out_dir), lang))
            return [Path(out_dir) / "notice.pdf"]

    monkeypatch.setitem(sys.modules, "learnexit.documents.letter", FakeLetter)
    code, d, _ = cli(site, "notice", "acme", "--received", "2026-11-20", "--letter", str(site / "letters"), "--json")
    assert code == 0 and d["letters"] == [str(site / "letters" / "notice.pdf")]
    assert calls == [("acme", "Acme Lärande AB", D(2027, 1, 30), site / "letters", "en")]


@pytest.mark.parametrize("command", ["notice", "status", "confirm", "hold", "release", "audit"])
def test_cli_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.stdout and "Exit codes:" in result.stdout
    if command == "status":
        assert "LEARNEXIT_NOW" in result.stdout


def test_the_calendar_on_every_ledger_engine(dbs, site: Path) -> None:
    settings = load_settings(site / "learnexit.toml", state_url=dbs.new("state"))
    with Ledger(settings.state_url) as ledger:
        now = at("2026-11-29")
        record_notice(settings, ledger, "acme", D(2026, 11, 20), now=now)
        assert record_notice(settings, ledger, "acme", D(2026, 11, 20), now=now).action == "unchanged"
        place_hold(settings, ledger, "acme", "case 1", now=now)
        release_hold(settings, ledger, "acme", now=now)
        add_export(ledger, "acme")
        confirm_handover(settings, ledger, "acme", by="Jane Doe", now=now)
        assert due_closures(settings, ledger, at("2027-01-31")) == ["acme"]
        assert run_closure(settings, ledger, "acme", now=at("2027-01-31")) == {"logins.workflow_state": 59}
        st = customer_status(settings, ledger, "acme", at("2027-01-31"))
        assert (st["state"], st["received"], st["closure"]["performed_at"]) == (
            "closed",
            D(2026, 11, 20),
            datetime(2027, 1, 31, 11, 0, tzinfo=UTC),
        )
        assert audit_report(ledger, verify=True)["valid"] is True
        assert audit_events(ledger) == [
            "notice.recorded",
            "hold.placed",
            "hold.released",
            "handover.confirmed",
            "closure.performed",
        ]
