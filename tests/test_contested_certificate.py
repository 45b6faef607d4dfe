"""A contested row (its references lead to two customers) is reported everywhere the
ownership rules say — inspect, the export's notes, the purge plan, the deletion
certificate and ``status --check`` — and is neither exported nor deleted (issue 16, rule 3)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from helpers import pdf_text
from test_purge import DUE_NOW, Lms, as_json, give_notice, lite, lms, purge, runner  # noqa: F401

from learnexit.cli import app


def contest_one_activity_row(site: Lms) -> int:
    """An activity row of globex whose course is acme's: owned by both, so by neither."""
    with sqlite3.connect(site.root / "lms.db") as db:
        acme_course = db.execute(
            "SELECT c.id FROM courses c JOIN organisations o ON o.id = c.organisation_id WHERE o.slug = 'acme' LIMIT 1"
        ).fetchone()[0]
        row = db.execute(
            "SELECT a.id FROM activity_log a JOIN organisations o ON o.id = a.organisation_id "
            "WHERE o.slug = 'globex' ORDER BY a.id LIMIT 1"
        ).fetchone()[0]
        db.execute("UPDATE activity_log SET course_id = ? WHERE id = ?", (acme_course, row))
    return int(row)


def test_a_contested_row_is_reported_everywhere_and_stays(lite: Lms, tmp_path: Path) -> None:  # noqa: F811
    row = contest_one_activity_row(lite)
    config = ["--config", str(lite.config)]

    inspected = runner.invoke(app, ["inspect", "acme", "--json", *config])
    assert inspected.exit_code == 0, inspected.stderr
    report = json.loads(inspected.stdout)
    assert report["contested"] == [
        {"table": "activity_log", "rows": 1, "references": ["activity_log.organisation_id → organisations"]}
    ]

    exported = runner.invoke(app, ["export", "acme", "-f", "csv", "--out", str(tmp_path / "out"), "--json", *config])
    assert exported.exit_code == 0, exported.stderr
    assert any("activity_log: 1 row contested" in n for n in json.loads(exported.stdout)["notes"])
    package = Path(json.loads(exported.stdout)["path"])
    ids = [line.split(",", 1)[0] for line in (package / "data" / "csv" / "activity_log.csv").read_text().splitlines()]
    assert str(row) not in ids[1:]

    give_notice(lite)
    check = runner.invoke(app, ["status", "--check", "--json", *config], env={"LEARNEXIT_NOW": "2026-12-01"})
    assert check.exit_code == 5
    kinds = {(a["customer"], a["kind"]) for a in json.loads(check.stdout)["attention"]}
    assert ("acme", "contested_rows") in kinds

    done = purge(lite, "acme", "--yes", "--json")
    assert done.exit_code == 0, done.stderr
    with sqlite3.connect(lite.root / "lms.db") as db:
        assert db.execute("SELECT count(*) FROM activity_log WHERE id = ?", (row,)).fetchone() == (1,)
    certificate = as_json(done)["customers"][0]["certificate"]
    text = " ".join(pdf_text(certificate).split())
    assert "Kept because their owner is disputed" in text and "activity_log" in text


def test_the_export_counts_contested_rows_in_its_counting_scan(lms: Lms, monkeypatch) -> None:  # noqa: F811
    """The export counts a table's contested rows in the same scan as its own rows (each
    row leading to the customer marked as theirs or contested), a big table in halves on
    two connections: the figures are the contested report's own, the customer's rows what
    a plain count of the predicate finds — on every engine."""
    import sqlalchemy as sa

    from learnexit.export import specs
    from learnexit.ledger.store import Ledger
    from learnexit.offboarding.cases import open_source

    engine = sa.create_engine(lms.url)
    with engine.begin() as conn:  # seven of globex's activity rows on acme's courses
        acme = "SELECT c.id FROM courses c JOIN organisations o ON o.id = c.organisation_id WHERE o.slug = 'acme'"
        courses = [r[0] for r in conn.execute(sa.text(acme))]
        rows = conn.execute(
            sa.text(
                "SELECT a.id FROM activity_log a JOIN organisations o ON o.id = a.organisation_id "
                "WHERE o.slug = 'globex' ORDER BY a.id"
            )
        ).scalars()
        for i, row in enumerate(list(rows)[:70:10]):
            conn.execute(
                sa.text("UPDATE activity_log SET course_id = :c WHERE id = :r"), {"c": courses[i % 2], "r": row}
            )
    engine.dispose()
    monkeypatch.setattr(specs, "STATS_SPLIT_SPAN", 10)  # (every table with keys spanning 10: two halves)
    settings = lms.settings
    with Ledger(settings.state_url) as ledger, open_source(settings, ledger, "acme") as source:
        with source.snapshot() as conn:
            totals: dict[str, int] = {}
            contested: dict[str, int] = {}
            with specs.counting_helper(source, conn) as helper:
                specs.build_specs(source, conn, [], totals, helper, contested)
            report = {c.table: c.rows for c in source.contested_report(conn)}
            assert report == {"activity_log": 7}
            assert {t: n for t, n in contested.items() if n} == report
            assert set(contested) == {t for t in totals if source.sides(t) is not None}
            assert totals == {t: source.count(conn, t) for t in totals}


def test_the_purge_plan_counts_each_table_in_one_scan_as_the_plain_counts_do(lms: Lms) -> None:  # noqa: F811
    """The plan reads a table owned through references once: its contested rows and the
    rows to delete, retain and keep for others, each row marked by side.  The figures are
    what a plain count of each condition finds, table by table — here with contested
    activity rows (which keep two of acme's courses for globex) and retained invoices, on
    every engine."""
    import sqlalchemy as sa

    from learnexit.ledger.store import Ledger
    from learnexit.offboarding.clock import parse_now
    from learnexit.purge.conditions import count_rows
    from learnexit.purge.plan import plan_purge
    from learnexit.purge.scope import Scope
    from learnexit.purge.source import open_source as purge_source

    engine = sa.create_engine(lms.url)
    with engine.begin() as conn:  # seven of globex's activity rows on two of acme's courses
        acme = "SELECT c.id FROM courses c JOIN organisations o ON o.id = c.organisation_id WHERE o.slug = 'acme'"
        courses = [r[0] for r in conn.execute(sa.text(acme))]
        globex = (
            "SELECT a.id FROM activity_log a JOIN organisations o ON o.id = a.organisation_id "
            "WHERE o.slug = 'globex' ORDER BY a.id"
        )
        for i, row in enumerate(list(conn.execute(sa.text(globex)).scalars())[:70:10]):
            conn.execute(
                sa.text("UPDATE activity_log SET course_id = :c WHERE id = :r"), {"c": courses[i % 2], "r": row}
            )
    engine.dispose()
    give_notice(lms)
    settings = lms.settings
    now = parse_now(DUE_NOW)
    with Ledger(settings.state_url) as ledger:
        plan = plan_purge(settings, ledger, "acme", now)
        assert not plan.refusals, plan.refusals
        planned = {tp.table: (tp.delete, tp.retained, tp.kept_shared) for tp in plan.tables}
        with purge_source(settings, ledger, "acme", row_may_be_gone=False) as src:
            scope = Scope(settings, src, plan.termination_date, now)
            with src.snapshot() as conn:
                scope.settle(conn)
                plain: dict[str, tuple[int, int, int]] = {}
                contested: dict[str, int] = {}
                for t in scope.children_first:
                    if src.sides(t) is None or t in scope.via:
                        continue
                    table = src.table(t)
                    ret, shared = scope.ret(t), scope.shared_only(t)
                    plain[t] = (
                        count_rows(conn, table, scope.doomed(t)),
                        count_rows(conn, table, ret) if ret is not None else 0,
                        count_rows(conn, table, shared) if shared is not None else 0,
                    )
                    cond = src.contested(t)
                    if cond is not None and count_rows(conn, table, cond):
                        contested[t] = count_rows(conn, table, cond)
    assert contested == {"activity_log": 7}
    assert plan.contested == contested
    assert plain["courses"][2] == 2 and plain["invoices"][1] > 0  # kept for globex; retained
    assert {t: planned[t] for t in plain} == plain
