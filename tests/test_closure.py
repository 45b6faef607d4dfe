"""Account closure: only the customer's rows change, on SQLite, PostgreSQL and MariaDB.

The example LMS is loaded into a fresh database of each engine.  Every table is dumped
before and after; the expected "after" is derived by hand from the "before" dump (the
customer's logins; its people that no other organisation references; its course
sections, a self-referencing table that MySQL would refuse in an UPDATE subquery), and
everything else must be identical.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from learnexit.config import load_settings
from learnexit.demo import build_example, build_shared_schema, populate_shared
from learnexit.errors import ConfigError
from learnexit.ledger import schema as L
from learnexit.ledger.store import Ledger
from learnexit.offboarding.clock import parse_now
from learnexit.offboarding.closure import due_closures, run_closure
from learnexit.offboarding.confirm import confirm_handover
from learnexit.offboarding.notice import record_notice

CLOSURE = '[closure]\nset = { "logins.workflow_state" = "deleted", "users.phone" = "closed", "course_sections.title" = "(closed)" }\n'


def at(text: str) -> datetime:
    return parse_now(text, "Europe/Stockholm")


@pytest.fixture(scope="module")
def example_config(tmp_path_factory: pytest.TempPathFactory) -> str:
    dest = tmp_path_factory.mktemp("example")
    build_example(dest, activity_rows=100)
    return (dest / "learnexit.toml").read_text(encoding="utf-8")


def make_site(dbs, tmp_path: Path, example_config: str, closure: str = CLOSURE):
    url = dbs.new("lms")
    engine = sa.create_engine(url)
    build_shared_schema(engine)
    populate_shared(engine, media_root=None, activity_rows=100)
    engine.dispose()
    text = example_config.replace('url = "sqlite:///lms.db"', f'url = "{url}"')
    start = text.index("[closure]")
    end = text.index("\n[", start + 1)
    text = text[:start] + closure + text[end + 1 :]
    cfg = tmp_path / "learnexit.toml"
    cfg.write_text(text, encoding="utf-8")
    return load_settings(cfg), url


Rows = dict[str, dict[tuple, dict[str, Any]]]


def dump(url: str) -> Rows:
    """Every row of every table, keyed by primary key."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    md.reflect(engine)
    out: Rows = {}
    with engine.connect() as conn:
        for table in md.sorted_tables:
            pk = list(table.primary_key.columns)
            out[table.name] = {
                tuple(r._mapping[c.name] for c in pk): dict(r._mapping)
                for r in conn.execute(sa.select(table).order_by(*pk))
            }
    engine.dispose()
    return out


def exact(rows: Rows) -> dict[str, dict[tuple, list[tuple[str, str]]]]:
    """Rows compared by type and value (repr), column by column."""
    return {t: {k: [(c, repr(v)) for c, v in row.items()] for k, row in table.items()} for t, table in rows.items()}


def expected_after(before: Rows, slug: str) -> Rows:
    """The closure's effect, worked out from the dump alone."""
    org = next(key[0] for key, row in before["organisations"].items() if row["slug"] == slug)
    after = {t: {k: dict(row) for k, row in rows.items()} for t, rows in before.items()}
    mine: set[int] = set()
    others: set[int] = set()
    for table in ("logins", "memberships"):
        for key, row in before[table].items():
            (mine if row["organisation_id"] == org else others).add(row["user_id"])
            if table == "logins" and row["organisation_id"] == org:
                after["logins"][key]["workflow_state"] = "deleted"
    for key in before["users"]:
        if key[0] in mine and key[0] not in others:
            after["users"][key]["phone"] = "closed"
    courses = {key[0] for key, row in before["courses"].items() if row["organisation_id"] == org}
    sections = {key[0]: row for key, row in before["course_sections"].items()}
    chosen = {sid for sid, row in sections.items() if row["course_id"] in courses}
    grew = True
    while grew:  # descendants through parent_id
        extra = {sid for sid, row in sections.items() if row["parent_id"] in chosen and sid not in chosen}
        chosen |= extra
        grew = bool(extra)
    for sid in chosen:
        after["course_sections"][(sid,)]["title"] = "(closed)"
    return after


def changed_rows(a: Rows, b: Rows) -> dict[str, int]:
    ea, eb = exact(a), exact(b)
    counts = {t: sum(1 for k in ea[t] if ea[t][k] != eb[t].get(k)) for t in ea}
    return {t: n for t, n in counts.items() if n}


def test_closure_changes_only_the_customers_rows(dbs, tmp_path: Path, example_config: str) -> None:
    settings, url = make_site(dbs, tmp_path, example_config)
    before = dump(url)
    expected = expected_after(before, "acme")
    with Ledger(settings.state_url) as ledger:
        record_notice(settings, ledger, "acme", date(2026, 11, 20), now=at("2026-11-29"))
        rows = run_closure(settings, ledger, "acme", now=at("2027-01-31"))
        after = dump(url)
        assert exact(after) == exact(expected)  # every other row and column: same type, same value
        assert rows == {
            "logins.workflow_state": changed_rows(before, after)["logins"],
            "users.phone": changed_rows(before, after)["users"],
            "course_sections.title": changed_rows(before, after)["course_sections"],
        }
        assert rows["logins.workflow_state"] == 59 and rows["users.phone"] == 59  # the shared person is kept
        # idempotent: nothing changes, nothing more is recorded
        again = run_closure(settings, ledger, "acme", now=at("2027-02-01"))
        assert again == dict.fromkeys(rows, 0)
        assert exact(dump(url)) == exact(expected)
        assert len(ledger.rows(L.closures)) == 1
        assert [e["event"] for e in ledger.audit_entries("acme")] == ["notice.recorded", "closure.performed"]


def test_closure_is_scheduled_until_after_the_termination_date(dbs, tmp_path: Path, example_config: str) -> None:
    settings, url = make_site(
        dbs, tmp_path, example_config, '[closure]\nset = { "logins.workflow_state" = "deleted" }\n'
    )
    before = dump(url)
    with Ledger(settings.state_url) as ledger:
        record_notice(settings, ledger, "globex", date(2026, 11, 20), now=at("2026-11-29"))  # E = 2027-02-28
        d = confirm_handover(
            settings, ledger, "globex", by="Li Wei", without_export_reason="own copy", now=at("2026-11-29")
        )
        assert d["closure"]["status"] == "scheduled"
        assert d["closure"]["due_at"] == datetime(2027, 2, 28, 23, 0, tzinfo=UTC)  # 00:00 CET on 2027-03-01
        assert exact(dump(url)) == exact(before)
        assert due_closures(settings, ledger, at("2027-02-28T23:59:00")) == []
        assert due_closures(settings, ledger, at("2027-03-01T00:00:00")) == ["globex"]
        assert exact(dump(url)) == exact(before)  # listing changes nothing
        assert run_closure(settings, ledger, "globex", now=at("2027-03-01")) == {"logins.workflow_state": 39}
        assert due_closures(settings, ledger, at("2027-03-02")) == []
        assert changed_rows(before, dump(url)) == {"logins": 39}


def test_closure_refuses_tables_the_customer_does_not_own(db_factory, tmp_path: Path, example_config: str) -> None:
    settings, url = make_site(
        db_factory("sqlite"), tmp_path, example_config, '[closure]\nset = { "developer_keys.key_hash" = "x" }\n'
    )
    before = dump(url)
    with Ledger(settings.state_url) as ledger:
        record_notice(settings, ledger, "acme", date(2026, 11, 20), now=at("2026-11-29"))
        with pytest.raises(ConfigError, match="developer_keys is shared"):
            run_closure(settings, ledger, "acme", now=at("2027-02-01"))
        assert ledger.rows(L.closures) == []
    assert exact(dump(url)) == exact(before)
