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
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import test_purge
from helpers import pdf_text
from test_purge import Lms, as_json, digest, give_notice, oracle, purge, runner, snapshot

from learnexit.cli import app
from learnexit.ledger import schema as L
from learnexit.offboarding.notice import record_notice

# test_purge's fixtures, bound by name (importing them would make ruff see each test
# parameter as a redefinition)
lite = test_purge.lite
lms = test_purge.lms

LATER = "2027-07-01"  # after the purge, long before the invoices' retention ends (2034)


def status_check(lms: Lms, now: str = LATER) -> tuple[int, list[dict[str, Any]]]:
    result = runner.invoke(
        app, ["status", "--check", "--json", "--config", str(lms.config)], env={"LEARNEXIT_NOW": now}
    )
    assert result.stdout.strip(), result.stderr
    return result.exit_code, json.loads(result.stdout)["attention"]


def restore(url: str, backup: dict[str, Any]) -> None:
    """Put every row of ``backup`` (a snapshot) back as it was, with the reference checks
    off as a dump's load has them: what restoring a backup of the database does."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET session_replication_role = replica")
        elif engine.dialect.name == "mysql":
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
        for table in md.sorted_tables:
            pk = list(table.primary_key.columns)
            now = {tuple(r._mapping[c.name] for c in pk): dict(r._mapping) for r in conn.execute(sa.select(table))}
            for key, row in backup[table.name].items():
                if key not in now:
                    conn.execute(table.insert().values(row))
                elif now[key] != row:
                    conn.execute(table.update().where(*[c == v for c, v in zip(pk, key, strict=True)]).values(row))
    engine.dispose()


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


def test_each_case_rechecked_and_a_hold_keeps_its_restored_data(lite: Lms) -> None:
    """Two purged customers in one source (one reflection, re-pointed); a legal hold on
    one keeps its restored rows until it is released."""
    give_notice(lite, "acme")
    give_notice(lite, "initech")
    source = lite.root / "lms.db"
    backup = lite.root / "lms-nightly-backup.db"
    shutil.copy(source, backup)
    first = purge(lite, "--due", "--yes", "--json", now="2028-06-01")
    assert first.exit_code == 0, first.stderr
    full = {r["customer"]: r for r in as_json(first)["customers"]}
    assert {c: (r["kind"], r["status"]) for c, r in full.items()} == {
        "acme": ("full", "done"),
        "initech": ("full", "done"),
    }
    purged = snapshot(lite.url)
    shutil.copy(backup, source)

    code, items = status_check(lite, now="2028-07-01")
    assert code == 5
    found = {i["customer"]: i for i in reappeared(items)}
    assert set(found) == {"acme", "initech"}
    for customer, item in found.items():
        assert item["tables"] == {t: n for t, n in full[customer]["deleted"].items() if n}, customer

    held = runner.invoke(
        app,
        ["hold", "initech", "--reason", "court order 2028-117", "--config", str(lite.config)],
        env={"LEARNEXIT_NOW": "2028-07-01"},
    )
    assert held.exit_code == 0, held.stderr
    code, items = status_check(lite, now="2028-07-02")
    (item,) = [i for i in reappeared(items) if i["customer"] == "initech"]
    assert code == 5 and "legal hold" in item["message"]

    again = purge(lite, "--due", "--yes", "--json", now="2028-07-02")
    assert again.exit_code == 0, again.stderr
    data = as_json(again)
    assert [(r["customer"], r["kind"], r["status"]) for r in data["customers"]] == [("acme", "reapply", "done")]
    assert {"customer": "initech", "reason": "legal hold"}.items() <= data["skipped"][0].items()
    (redo,) = data["customers"]
    assert redo["deleted"] == full["acme"]["deleted"]
    restored, backed_up = snapshot(lite.url), snapshot(f"sqlite:///{backup}")
    for table, rows in restored.items():
        assert set(purged[table]) <= set(rows), table  # nothing beyond acme's rows went
        for key, row in rows.items():  # each row as after the purges, or as restored (initech's)
            assert row in (purged[table].get(key), backed_up[table].get(key)), (table, key)
    code, items = status_check(lite, now="2028-07-02")
    (item,) = reappeared(items)  # acme is done; initech's rows wait for the hold
    assert item["customer"] == "initech" and item["tables"] == found["initech"]["tables"]

    released = runner.invoke(
        app, ["release", "initech", "--config", str(lite.config)], env={"LEARNEXIT_NOW": "2028-07-03"}
    )
    assert released.exit_code == 0, released.stderr
    last = purge(lite, "--due", "--yes", "--json", now="2028-07-03")
    assert last.exit_code == 0, last.stderr
    (redo,) = as_json(last)["customers"]
    assert (redo["customer"], redo["kind"], redo["status"]) == ("initech", "reapply", "done")
    assert redo["deleted"] == full["initech"]["deleted"]
    assert snapshot(lite.url) == purged
    assert status_check(lite, now="2028-07-04") == (0, [])


def test_database_per_customer_restore_is_deleted_again(tmp_path: Path, example_template: Path) -> None:
    """Database tenancy (no customer row to pin): the customer's restored database is
    found and emptied again; the other customer's database never changes."""
    root = tmp_path / "legacy"
    shutil.copytree(example_template / "legacy", root)
    lms = Lms(root, root / "learnexit.toml", f"sqlite:///{root / 'acme.db'}", "sqlite")
    globex_url = f"sqlite:///{root / 'globex.db'}"
    with lms.ledger() as ledger:
        record_notice(
            lms.settings, ledger, "acme", test_purge.RECEIVED, period_end=date(2026, 12, 31), now=test_purge.RECORDED
        )
    shutil.copy(root / "acme.db", root / "acme-backup.db")
    globex_before = snapshot(globex_url)
    done = purge(lms, "acme", "--yes", "--json")
    assert done.exit_code == 0, done.stderr
    (full,) = as_json(done)["customers"]
    emptied = snapshot(lms.url)
    assert status_check(lms) == (0, [])

    shutil.copy(root / "acme-backup.db", root / "acme.db")
    code, items = status_check(lms)
    (item,) = reappeared(items)
    assert code == 5 and item["tables"] == {t: n for t, n in full["deleted"].items() if n}
    again = purge(lms, "--due", "--yes", "--json", now=LATER)
    assert again.exit_code == 0, again.stderr
    (redo,) = as_json(again)["customers"]
    assert (redo["kind"], redo["status"], redo["deleted"]) == ("reapply", "done", full["deleted"])
    assert snapshot(lms.url) == emptied and snapshot(globex_url) == globex_before
    assert status_check(lms) == (0, [])


def test_retention_is_judged_as_the_purges_left_it(lite: Lms) -> None:
    """Invoices past their retention that the retention purge has not removed yet are not
    "back"; after the retention purge, restored invoices are deleted again too (and stay
    deleted: no purge every cron run)."""
    give_notice(lite)
    source = lite.root / "lms.db"
    backup = lite.root / "lms-nightly-backup.db"
    shutil.copy(source, backup)
    assert purge(lite, "--due", "--yes").exit_code == 0

    code, items = status_check(lite, now=test_purge.RETENTION_NOW)
    assert code == 5 and [i["kind"] for i in items] == ["retention_purge_overdue"]
    retention = purge(lite, "--due", "--yes", "--json", now=test_purge.RETENTION_NOW)
    assert retention.exit_code == 0, retention.stderr
    assert [r["kind"] for r in as_json(retention)["customers"]] == ["retention"]
    emptied = snapshot(lite.url)

    shutil.copy(backup, source)
    code, items = status_check(lite, now="2034-03-01")
    (item,) = reappeared(items)
    assert code == 5 and item["tables"]["invoices"] == 34
    again = purge(lite, "--due", "--yes", "--json", now="2034-03-01")
    assert again.exit_code == 0, again.stderr
    (redo,) = as_json(again)["customers"]
    assert (redo["kind"], redo["status"], redo["retained"]) == ("reapply", "done", {})
    assert snapshot(lite.url) == emptied
    assert status_check(lite, now="2034-03-02") == (0, [])
    quiet = purge(lite, "--due", "--yes", "--json", now="2034-03-02")
    assert quiet.exit_code == 0 and as_json(quiet)["customers"] == []


def test_restore_found_and_deleted_again_on_every_engine(lms: Lms) -> None:
    """The same on SQLite, PostgreSQL and MariaDB, the rows put back as a dump's load would."""
    give_notice(lms)
    before = snapshot(lms.url)
    first = purge(lms, "--due", "--yes", "--json")
    assert first.exit_code == 0, first.stderr
    (full,) = as_json(first)["customers"]
    purged = snapshot(lms.url)
    restore(lms.url, before)
    assert snapshot(lms.url) == before

    code, items = status_check(lms)
    (item,) = reappeared(items)
    assert code == 5 and item["tables"] == {t: n for t, n in full["deleted"].items() if n}
    again = purge(lms, "--due", "--yes", "--json", now=LATER)
    assert again.exit_code == 0, again.stderr
    (redo,) = as_json(again)["customers"]
    assert (redo["kind"], redo["status"], redo["deleted"]) == ("reapply", "done", full["deleted"])
    assert snapshot(lms.url) == purged
    assert status_check(lms) == (0, [])
