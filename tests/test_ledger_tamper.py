"""The ledger's state tables edited by hand (issue 17, item 3).

The audit entries are hash-chained; the rows of notices, holds, confirmations, exports
and purges are not.  Every decision that deletes or refuses must agree with the entries
that recorded those rows: a row edited, deleted or added by hand is refused with exit 1
naming the customer and the record, and ``audit --verify`` reports it.  Runs on the
example LMS (SQLite).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import test_purge
from test_purge import DUE_NOW, EARLY_NOW, RECEIVED, RECORDED, Lms, as_json, give_notice, purge, snapshot
from typer.testing import CliRunner

from learnexit.cli import app
from learnexit.config import load_settings
from learnexit.errors import VerificationFailed
from learnexit.ledger import schema as L
from learnexit.ledger.consistency import all_problems, customer_problems
from learnexit.ledger.store import Ledger, utcnow
from learnexit.offboarding.clock import parse_now
from learnexit.offboarding.closure import run_closure
from learnexit.offboarding.confirm import confirm_handover
from learnexit.offboarding.holds import place_hold, release_hold
from learnexit.offboarding.notice import record_notice
from learnexit.offboarding.status import audit_report
from learnexit.purge.plan import plan_purge

# test_purge's fixture: a private SQLite copy of the session's example per test
lite = test_purge.lite
runner = CliRunner()
BOTH_DUE = "2027-12-01"  # acme's purge is due from 2027-05-01, initech's from 2027-09-13


def cli(lms: Lms, *args: str, now: str) -> Any:
    return runner.invoke(app, [*args, "--config", str(lms.config)], env={"LEARNEXIT_NOW": now}, catch_exceptions=False)


def ledger_sql(lms: Lms, sql: str, **params: Any) -> None:
    """What someone with write access to the ledger does by hand."""
    with lms.ledger() as ledger, ledger.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def only_id(lms: Lms, table: sa.Table, customer: str = "acme") -> int:
    with lms.ledger() as ledger:
        (row,) = ledger.rows(table, customer)
    return int(row["id"])


def verify(lms: Lms, now: str = DUE_NOW) -> tuple[int, dict[str, Any], str]:
    """``audit --verify``: (exit code, its JSON, its stderr)."""
    result = cli(lms, "audit", "--verify", "--json", now=now)
    return result.exit_code, json.loads(result.stdout), result.stderr


def due_by_customer(result: Any) -> dict[str, dict[str, Any]]:
    return {c["customer"]: c for c in as_json(result)["customers"]}


# --------------------------------------------------------------------------- the notice


def test_purge_due_date_moved_into_the_past_is_refused(lite: Lms) -> None:
    """The attack: two days after acme's notice was recorded, its dates moved by hand so
    that the purge fell due yesterday (before the fix, ``purge --due`` purged acme)."""
    give_notice(lite)
    notice_id = only_id(lite, L.notices)
    ledger_sql(
        lite,
        "UPDATE notices SET termination_date = '2026-11-20', export_deadline = '2026-11-25', "
        "purge_due_at = '2026-11-25 23:00:00.000000' WHERE id = :id",
        id=notice_id,
    )
    before = snapshot(lite.url)

    run = purge(lite, "--due", "--yes", "--json", now="2026-11-27")
    assert run.exit_code == 1, run.stdout
    acme = due_by_customer(run)["acme"]
    assert acme["status"] == "failed"
    assert acme["error"].startswith(f"acme: ledger record notices #{notice_id} disagrees with its audit entry 1")
    assert "(termination_date, export_deadline, purge_due_at)" in acme["error"]
    assert "nothing was done" in acme["error"]
    assert "purge_due_failed customer=acme" in run.stderr
    assert snapshot(lite.url) == before
    with lite.ledger() as ledger:
        assert ledger.rows(L.purges) == []

    one = purge(lite, "acme", "--yes", now="2026-11-27")
    assert one.exit_code == 1 and f"acme: ledger record notices #{notice_id}" in one.stderr
    dry = purge(lite, "acme", "--dry-run", now="2026-11-27")
    assert dry.exit_code == 1 and "purge_due_at" in dry.stderr
    assert snapshot(lite.url) == before

    code, data, err = verify(lite)
    assert code == 1 and data["valid"] is False and data["chain_valid"] is True
    assert data["problems"] == [
        f"acme: ledger record notices #{notice_id} disagrees with its audit entry 1 "
        "(termination_date, export_deadline, purge_due_at)"
    ]
    assert "ledger disagrees with the audit chain: acme: ledger record notices" in err
    text = cli(lite, "audit", "--verify", now=DUE_NOW)
    assert text.exit_code == 1 and "Ledger DISAGREES" in text.stdout and f"notices #{notice_id}" in text.stdout


def test_export_window_reopened_by_hand_is_refused(lite: Lms, tmp_path: Path) -> None:
    give_notice(lite)  # the export window closes on 2027-04-30
    notice_id = only_id(lite, L.notices)
    ledger_sql(lite, "UPDATE notices SET export_deadline = '2027-12-31' WHERE id = :id", id=notice_id)
    out = tmp_path / "out"
    late = cli(lite, "export", "acme", "-f", "csv", "--out", str(out), now=DUE_NOW)
    assert late.exit_code == 1
    assert f"acme: ledger record notices #{notice_id} disagrees with its audit entry 1 (export_deadline)" in late.stderr
    assert not out.exists() or not any(out.iterdir())
    with lite.ledger() as ledger:
        assert ledger.rows(L.exports) == []


def test_a_notice_row_deleted_by_hand_is_noticed(lite: Lms) -> None:
    give_notice(lite)
    notice_id = only_id(lite, L.notices)
    ledger_sql(lite, "DELETE FROM notices WHERE id = :id", id=notice_id)
    run = purge(lite, "--due", "--yes", "--json", now=DUE_NOW)
    assert run.exit_code == 1
    error = due_by_customer(run)["acme"]["error"]
    assert error.startswith(f"acme: audit entry 1 (notice.recorded) names ledger record notices #{notice_id}")
    assert verify(lite)[0] == 1


# --------------------------------------------------------------------------- holds


def test_a_hold_released_by_hand_still_holds(lite: Lms) -> None:
    give_notice(lite)
    give_notice(lite, "initech")
    with lite.ledger() as ledger:
        place_hold(lite.settings, ledger, "acme", "Tvist om faktura 2026-114", now=RECORDED)
    hold_id = only_id(lite, L.holds)
    ledger_sql(
        lite,
        "UPDATE holds SET released_at = '2026-12-01 10:00:00.000000', released_by = 'ops' WHERE id = :id",
        id=hold_id,
    )
    acme_rows = snapshot(lite.url)["organisations"]

    one = purge(lite, "acme", "--yes", now=DUE_NOW)
    assert one.exit_code == 1
    assert f"acme: ledger record holds #{hold_id} disagrees with its audit entries (released_at set" in one.stderr

    run = purge(lite, "--due", "--yes", "--json", now=BOTH_DUE)
    assert run.exit_code == 1  # acme failed this run; initech was purged all the same
    by = due_by_customer(run)
    assert by["acme"]["status"] == "failed" and f"holds #{hold_id}" in by["acme"]["error"]
    assert by["initech"]["status"] == "done"
    after = snapshot(lite.url)["organisations"]
    assert [r for r in after.values() if r["slug"] == "acme"] == [r for r in acme_rows.values() if r["slug"] == "acme"]

    release = cli(lite, "release", "acme", now=DUE_NOW)
    assert release.exit_code == 1 and f"holds #{hold_id}" in release.stderr
    code, data, _ = verify(lite)
    assert code == 1 and any(f"holds #{hold_id}" in p for p in data["problems"])


def test_a_hold_row_deleted_by_hand_still_holds(lite: Lms) -> None:
    give_notice(lite)
    with lite.ledger() as ledger:
        place_hold(lite.settings, ledger, "acme", "Tvist om faktura 2026-114", now=RECORDED)
    hold_id = only_id(lite, L.holds)
    ledger_sql(lite, "DELETE FROM holds WHERE id = :id", id=hold_id)
    before = snapshot(lite.url)
    one = purge(lite, "acme", "--yes", now=DUE_NOW)
    assert one.exit_code == 1
    assert f"acme: audit entry 2 (hold.placed) names ledger record holds #{hold_id}, which is not there" in one.stderr
    run = purge(lite, "--due", "--yes", "--json", now=DUE_NOW)
    assert run.exit_code == 1 and due_by_customer(run)["acme"]["status"] == "failed"
    assert snapshot(lite.url) == before


def test_a_hold_added_by_hand_is_noticed(lite: Lms) -> None:
    """A row without its entry is a disagreement too (here one that would only refuse)."""
    give_notice(lite)
    with lite.ledger() as ledger, ledger.transaction() as conn:
        conn.execute(
            L.holds.insert().values(
                customer="acme", identity_id=ledger.case_id(conn, "acme"), reason="x", placed_by="ops",
                placed_at=utcnow(),
            )
        )  # fmt: skip
    hold_id = only_id(lite, L.holds)
    code, data, _ = verify(lite)
    assert code == 1 and data["problems"] == [f"acme: ledger record holds #{hold_id} has no audit entry (hold.placed)"]


# --------------------------------------------------------------------------- confirmations


def test_a_waiver_added_by_hand_is_refused(lite: Lms) -> None:
    """Confirmed without waiving the window: the purge is due 2027-05-01.  Set waived by
    hand, it would be due the day after the termination date."""
    give_notice(lite)
    with lite.ledger() as ledger:
        confirm_handover(lite.settings, ledger, "acme", by="Jane Doe", without_export_reason="paper copy", now=RECORDED)
    conf_id = only_id(lite, L.confirmations)
    ledger_sql(lite, "UPDATE confirmations SET waived = 1 WHERE id = :id", id=conf_id)
    before = snapshot(lite.url)
    run = purge(lite, "--due", "--yes", "--json", now=EARLY_NOW)
    assert run.exit_code == 1
    error = due_by_customer(run)["acme"]["error"]
    assert error.startswith(f"acme: ledger record confirmations #{conf_id} disagrees with its audit entry 2 (waived)")
    assert snapshot(lite.url) == before  # not purged, and the accounts were not closed either
    again = cli(lite, "confirm", "acme", "--by", "Jane Doe", now=EARLY_NOW)
    assert again.exit_code == 1 and f"confirmations #{conf_id}" in again.stderr
    with lite.ledger() as ledger:
        with pytest.raises(VerificationFailed, match=f"confirmations #{conf_id}"):
            run_closure(lite.settings, ledger, "acme", now=parse_now(EARLY_NOW))


# --------------------------------------------------------------------------- purges


def test_a_retention_date_moved_by_hand_is_refused(lite: Lms) -> None:
    """acme's invoices are kept until 2034-01-30; the purge's record edited to say
    2027-06-01 would have the retention purge delete them seven years early."""
    give_notice(lite)
    done = purge(lite, "acme", "--yes", now=DUE_NOW)
    assert done.exit_code == 0, done.stderr
    purge_id = only_id(lite, L.purges)
    with lite.ledger() as ledger:
        (row,) = ledger.rows(L.purges, "acme")
    retained = json.loads(row["retained"])
    assert retained["invoices"]["until"] == "2034-01-30"
    retained["invoices"]["until"] = "2027-06-01"
    ledger_sql(lite, "UPDATE purges SET retained = :r WHERE id = :id", r=json.dumps(retained), id=purge_id)
    before = snapshot(lite.url)
    run = purge(lite, "--due", "--yes", "--json", now="2027-07-01")
    assert run.exit_code == 1
    error = due_by_customer(run)["acme"]["error"]
    assert error.startswith(f"acme: ledger record purges #{purge_id} disagrees with its audit entry")
    assert "(retained)" in error
    assert snapshot(lite.url) == before


# --------------------------------------------------------------------------- the honest flow


def test_an_untampered_flow_passes(lite: Lms, tmp_path: Path) -> None:
    """notice, hold, release, export, confirm, purge --due: exit 0 at every step, and the
    records agree with the chain before and after (exports removed by the purge too)."""
    give_notice(lite)
    give_notice(lite, "initech")
    assert cli(lite, "hold", "acme", "--reason", "Tvist om faktura 2026-114", now="2026-11-26").exit_code == 0
    assert cli(lite, "release", "acme", now="2026-11-27").exit_code == 0
    exported = cli(lite, "export", "acme", "-f", "csv", "--out", str(tmp_path / "out"), now="2026-12-01")
    assert exported.exit_code == 0, exported.stderr
    confirmed = cli(lite, "confirm", "acme", "--by", "Jane Doe", "--waive-window", now="2026-12-02")
    assert confirmed.exit_code == 0, confirmed.stderr
    assert verify(lite, now="2026-12-02")[0] == 0
    run = purge(lite, "--due", "--yes", "--json", now="2027-02-15")  # waived: due after the termination date
    assert run.exit_code == 0, run.stderr
    assert due_by_customer(run)["acme"]["status"] == "done" and "initech" not in due_by_customer(run)
    with lite.ledger() as ledger:
        assert [e["status"] for e in ledger.rows(L.exports, "acme")] == ["removed"]
        events = [e["event"] for e in ledger.audit_entries("acme")]
        assert events.count("export_removed") == 1
    code, data, _ = verify(lite, now="2027-02-15")
    assert code == 0 and data["valid"] is True and data["problems"] == []
    later = purge(lite, "--due", "--yes", "--json", now=BOTH_DUE)  # initech's turn; acme has nothing left due
    assert later.exit_code == 0, later.stderr
    assert set(due_by_customer(later)) == {"initech"}


def test_edits_are_found_on_every_ledger_engine(dbs: Any, lite: Lms) -> None:
    """Dates, instants and flags read back from PostgreSQL and MariaDB as they were
    written: an honest ledger has no problems there, an edited one does."""
    settings = load_settings(lite.config, state_url=dbs.new("state"))
    now = parse_now("2026-11-29")
    with Ledger(settings.state_url) as ledger:
        record_notice(settings, ledger, "acme", RECEIVED, now=now)
        place_hold(settings, ledger, "acme", "case 1", now=now)
        release_hold(settings, ledger, "acme", now=now)
        place_hold(settings, ledger, "acme", "case 2", now=now)
        confirm_handover(settings, ledger, "acme", by="Jane Doe", without_export_reason="paper", now=now)
        assert customer_problems(ledger, "acme") == [] and all_problems(ledger) == {}
        notice_id, hold_id = ledger.rows(L.notices)[0]["id"], ledger.rows(L.holds)[-1]["id"]
        with ledger.engine.begin() as conn:
            conn.execute(L.notices.update().values(purge_due_at=datetime(2026, 11, 30, 23)))
            conn.execute(L.holds.update().where(L.holds.c.id == hold_id).values(released_at=datetime(2026, 11, 30)))
        assert customer_problems(ledger, "acme") == [
            f"acme: ledger record notices #{notice_id} disagrees with its audit entry 1 (purge_due_at)",
            f"acme: ledger record holds #{hold_id} disagrees with its audit entries (released_at set, "
            "no hold.released entry)",
        ]
        with pytest.raises(VerificationFailed, match=r"notices #\d+ .*\(1 more: see `learnexit audit --verify`\)"):
            plan_purge(settings, ledger, "acme", parse_now(DUE_NOW))
        report = audit_report(ledger, verify=True)
        assert (report["valid"], report["chain_valid"], len(report["ledger_problems"])) == (False, True, 2)


def test_status_check_says_which_records_disagree(lite: Lms) -> None:
    give_notice(lite)
    assert cli(lite, "status", "--check", now="2026-12-01").exit_code == 0
    notice_id = only_id(lite, L.notices)
    ledger_sql(lite, "UPDATE notices SET timely = 0 WHERE id = :id", id=notice_id)
    check = cli(lite, "status", "--check", "--json", now="2026-12-01")
    assert check.exit_code == 5
    (item,) = json.loads(check.stdout)["attention"]
    assert (item["customer"], item["kind"]) == ("acme", "ledger_disagrees")
    assert item["message"] == f"acme: ledger record notices #{notice_id} disagrees with its audit entry 1 (timely)"
