"""Deleted stays deleted (issue 17, item 4): a backup restored after a purge brings the
customer's rows back; ``status --check`` finds them and ``purge --due`` deletes them again,
under the same offboarding case, with its own audit entries and a certificate addendum —
and never takes a new customer that was given the old key for the old one.

On the example LMS (SQLite): the source file copied before the purge is copied back
after it, exactly what restoring a nightly backup does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import test_purge
from test_purge import Lms, as_json, digest, give_notice, oracle, pdf_text, purge, runner, snapshot

from learnexit import ledger as L
from learnexit.cli import app

# test_purge's fixtures, bound by name (importing them would make ruff see each test
# parameter as a redefinition)
template = test_purge.template
lite = test_purge.lite

LATER = "2027-07-01"  # after the purge, long before the invoices' retention ends (2034)


def status_check(lms: Lms, now: str = LATER) -> tuple[int, list[dict[str, Any]]]:
    result = runner.invoke(
        app, ["status", "--check", "--json", "--config", str(lms.config)], env={"LEARNEXIT_NOW": now}
    )
    assert result.stdout.strip(), result.stderr
    return result.exit_code, json.loads(result.stdout)["attention"]


def reappeared(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i["kind"] == "reappeared_data"]


def _squeeze(text: str) -> str:
    return "".join(text.split())


def test_restored_backup_is_reported_and_deleted_again(lite: Lms) -> None:
    give_notice(lite)
    source = lite.root / "lms.db"
    backup = lite.root / "lms-nightly-backup.db"
    shutil.copy(source, backup)
    before = snapshot(lite.url)
    o = oracle(before)

    first = purge(lite, "--due", "--yes", "--json")
    assert first.exit_code == 0, first.stderr
    (full,) = as_json(first)["customers"]
    assert (full["kind"], full["status"], full["verified"]) == ("full", "done", True)
    purged = snapshot(lite.url)
    assert status_check(lite) == (0, [])  # nothing came back yet

    shutil.copy(backup, source)  # the restore
    assert snapshot(lite.url) == before

    code, items = status_check(lite)
    assert code == 5
    (item,) = reappeared(items)
    assert item["customer"] == "acme" and item["purge_id"] == full["purge_id"]
    assert item["tables"] == {t: n for t, n in full["deleted"].items() if n}
    assert item["minimised"] == {"users": len(o.contacts - o.shared_users)}  # blanked columns filled again
    assert "acme" in item["message"] and "purge --due" in item["message"]
    text = runner.invoke(app, ["status", "--check", "--config", str(lite.config)], env={"LEARNEXIT_NOW": LATER})
    assert text.exit_code == 5 and "reappeared_data: acme" in text.stdout

    dry = purge(lite, "--due", "--dry-run", "--json", now=LATER)
    assert dry.exit_code == 0, dry.stderr
    (plan,) = as_json(dry)["customers"]
    assert plan["kind"] == "reapply" and plan["deleted"] == full["deleted"]
    assert snapshot(lite.url) == before

    again = purge(lite, "--due", "--yes", "--json", now=LATER)
    assert again.exit_code == 0, again.stderr
    (redo,) = as_json(again)["customers"]
    assert (redo["kind"], redo["status"], redo["verified"]) == ("reapply", "done", True)
    assert redo["deleted"] == full["deleted"]  # exactly the rows the first purge deleted
    assert redo["retained"] == full["retained"] and redo["kept_shared"] == full["kept_shared"]
    after = snapshot(lite.url)
    assert after == purged  # retained invoices stay, their contacts are minimised again
    for table, rows in before.items():  # globex's and initech's rows, byte for byte, throughout
        others = {k: r for k, r in rows.items() if k not in o.acme.get(table, set())}
        assert digest({k: after[table][k] for k in others}) == digest(others), table

    # The addendum names the first certificate and its hash.
    first_cert = Path(full["certificate"])
    addendum = Path(redo["certificate"])
    assert addendum != first_cert and first_cert.exists()
    text_pdf = _squeeze(pdf_text(addendum))
    assert "Addendumtothecertificateofdeletion" in text_pdf
    assert _squeeze(first_cert.name) in text_pdf
    assert hashlib.sha256(first_cert.read_bytes()).hexdigest() in text_pdf

    with lite.ledger() as ledger:
        rows = ledger.rows(L.purges)
        assert [(p["kind"], p["status"]) for p in rows] == [("full", "done"), ("reapply", "done")]
        assert rows[0]["identity_id"] == rows[1]["identity_id"]  # the same offboarding case
        entries = ledger.audit_entries("acme")
        events = [e["event"] for e in entries]
        assert events[-3:] == ["purge.reapply_started", "purge.verified", "purge.reapplied"]
        details = json.loads(entries[-1]["details"])
        assert details["addendum_to"] == full["purge_id"]
        assert details["certificate_sha256"] == hashlib.sha256(addendum.read_bytes()).hexdigest()
        assert ledger.verify_audit().valid
        (case,) = ledger.rows(L.identities)
        assert case["finished_at"] is not None

    assert status_check(lite) == (0, [])
    quiet = purge(lite, "--due", "--yes", "--json", now=LATER)
    assert quiet.exit_code == 0 and as_json(quiet)["customers"] == []
    assert snapshot(lite.url) == purged


def _no_retention(lms: Lms) -> None:
    """acme's purge deletes its organisation row: no invoices retained, no key store row."""
    text = lms.config.read_text(encoding="utf-8")
    text = text.replace('retain = "P7Y"\nlegal_basis = "Bokföringslagen (1999:1078) 7 kap. 2 §"\n', "")
    lms.config.write_text(text, encoding="utf-8")
    engine = sa.create_engine(lms.url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "DELETE FROM developer_keys WHERE organisation_id = (SELECT id FROM organisations WHERE slug = 'acme')"
        )
    engine.dispose()


def test_a_new_customer_with_the_old_key_is_not_reapplied(lite: Lms) -> None:
    _no_retention(lite)
    give_notice(lite)
    old_id = next(r["id"] for r in snapshot(lite.url)["organisations"].values() if r["slug"] == "acme")
    done = purge(lite, "--due", "--yes", "--json")
    assert done.exit_code == 0, done.stderr
    assert as_json(done)["customers"][0]["status"] == "done"
    assert not any(r["slug"] == "acme" for r in snapshot(lite.url)["organisations"].values())

    # A new organisation gets the key: another row (primary key), its own course.
    engine = sa.create_engine(lite.url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO organisations (id, slug, name, country, created_at) "
            "VALUES (900, 'acme', 'Acme Nya AB', 'SE', '2027-06-10 09:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO courses (id, organisation_id, catalogue_item_id, code, title, description, created_at) "
            "VALUES (9001, 900, NULL, 'NEW-101', 'Welcome', 'A new customer''s first course', '2027-06-10 09:30:00')"
        )
    engine.dispose()
    assert old_id != 900
    fresh = snapshot(lite.url)

    code, items = status_check(lite)
    assert reappeared(items) == [] and code == 0, items
    quiet = purge(lite, "--due", "--yes", "--json", now=LATER)
    assert quiet.exit_code == 0 and as_json(quiet)["customers"] == []
    assert snapshot(lite.url) == fresh
    with lite.ledger() as ledger:
        assert [p["kind"] for p in ledger.rows(L.purges)] == ["full"]
