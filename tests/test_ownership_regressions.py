"""Issue 16's cases, one named test each, on the example LMS with small realistic changes.

Each test changes a copy of the example the way a real LMS would (a section tree that
crosses customers, a course copied from another customer's course, a sub-organisation,
a row chaining to two customers, a person's last course, a Moodle-style reference
cycle, a newcomer taking a purged customer's key), runs the real CLI, and compares every
row of every table with the reference oracle of ``test_ownership_oracle`` (plain
``SELECT *``, the rules in plain Python, no learnexit code).  The example's invoice
retention is left out so that the oracle's rules apply unchanged.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from helpers import example_site
from test_ownership_oracle import Ref, Rows, Schema, decide, expected_after, exported_rows, read_all
from typer.testing import CliRunner

from learnexit.cli.app import app

runner = CliRunner()

NOTICE_NOW = "2026-01-15"
DUE_NOW = "2026-07-01"  # the notice below: period end 2026-03-31, purge due 2026-06-30
LATER_NOW = "2026-08-01"  # a second customer's notice, after the first one's purge
LATER_DUE_NOW = "2027-02-01"  # period end 2026-09-30: due 2026-12-29
SHARED = {"catalogue_items", "developer_keys"}
VIA = {"users": ["logins.user_id", "memberships.user_id"]}
ON_DELETE = ("NO ACTION", "CASCADE", "SET NULL")


# --------------------------------------------------------------------------- the example


@dataclass
class Site:
    root: Path
    config: Path
    url: str
    kind: str
    not_counting: tuple[tuple[str, str], ...] = ()  # back-references of added cycles

    @property
    def media(self) -> Path:
        return self.root / "media"

    def cli(self, *args: str, now: str = NOTICE_NOW) -> Any:
        return runner.invoke(app, [*args, "--config", str(self.config)], env={"LEARNEXIT_NOW": now})

    def sql(self, *statements: str) -> None:
        engine = sa.create_engine(self.url)
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.exec_driver_sql(statement)
        finally:
            engine.dispose()

    def value(self, query: str) -> Any:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                return conn.exec_driver_sql(query).scalar()
        finally:
            engine.dispose()

    def schema(self) -> Schema:
        """The example's ownership description, from the database's own catalogue."""
        engine = sa.create_engine(self.url)
        try:
            inspector = sa.inspect(engine)
            tables = sorted(inspector.get_table_names())
            refs = []
            for t in tables:
                columns = {c["name"]: c for c in inspector.get_columns(t)}
                for fk in inspector.get_foreign_keys(t):
                    (col,) = fk["constrained_columns"]
                    ondelete = (fk.get("options") or {}).get("ondelete")
                    counts = (t, col) not in self.not_counting
                    refs.append(
                        Ref(t, col, fk["referred_table"], bool(columns[col]["nullable"]), ondelete, True, counts)
                    )
        finally:
            engine.dispose()
        personal = {"users": {"name": False, "email": False, "phone": True}}
        return Schema("organisations", "slug", tables, refs, VIA, SHARED, personal)

    def rows(self) -> Rows:
        return read_all(self.url, self.schema())


def make_site(kind: str, root: Path, template: Path, url: str | None) -> Site:
    url, text = example_site(kind, root, template, url)
    # no invoice retention: the oracle's rules (and issue 16's) are about ownership
    text = re.sub(r"(?m)^(retain|legal_basis) = .*\n", "", text)
    (root / "learnexit.toml").write_text(text, encoding="utf-8")
    return Site(root, root / "learnexit.toml", url, kind)


@pytest.fixture
def site(dbs: Any, tmp_path: Path, example_template: Path) -> Site:
    url = None if dbs.kind == "sqlite" else dbs.new("own")
    return make_site(dbs.kind, tmp_path / "ex", example_template, url)


@pytest.fixture
def lite(tmp_path: Path, example_template: Path) -> Site:
    return make_site("sqlite", tmp_path / "ex", example_template, None)


def add_reference(site: Site, table: str, column: str, target: str, ondelete: str = "NO ACTION") -> None:
    """A new nullable integer column of ``table`` referencing ``target.id``."""
    action = "" if ondelete == "NO ACTION" else f" ON DELETE {ondelete}"
    if site.kind == "sqlite":
        site.sql(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER REFERENCES {target} (id){action}")
    else:
        site.sql(
            f"ALTER TABLE {table} ADD COLUMN {column} INTEGER NULL",
            f"ALTER TABLE {table} ADD CONSTRAINT fk_{table}_{column} FOREIGN KEY ({column}) "
            f"REFERENCES {target} (id){action}",
        )


def org_id(site: Site, slug: str) -> int:
    return int(site.value(f"SELECT id FROM organisations WHERE slug = '{slug}'"))


def first(site: Site, query: str) -> int:
    value = site.value(query)
    assert value is not None, query
    return int(value)


def course_of(site: Site, slug: str, offset: int = 0) -> int:
    return first(
        site,
        f"SELECT c.id FROM courses c JOIN organisations o ON o.id = c.organisation_id "
        f"WHERE o.slug = '{slug}' ORDER BY c.id LIMIT 1 OFFSET {offset}",
    )


# --------------------------------------------------------------------------- the checks


def export_ids(site: Site, customer: str) -> dict[str, set[str]]:
    """The primary keys of every table in the customer's CSV export."""
    out = site.root / "out" / customer
    result = site.cli("export", customer, "--format", "csv", "--out", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    package = Path(json.loads(result.stdout)["path"])
    return {p.stem: set(exported_rows(package, p.stem)) for p in sorted((package / "data" / "csv").glob("*.csv"))}


def assert_export_is_oracle(site: Site, customer: str) -> dict[str, set[str]]:
    schema = site.schema()
    verdict = decide(schema, site.rows(), customer)
    got = export_ids(site, customer)
    for table in schema.tables:
        if table in SHARED:
            assert table not in got or not got[table], table
            continue
        want = {str(pk) for pk in verdict.mine[table]}
        assert got.get(table, set()) == want, (customer, table, sorted(got.get(table, set()) ^ want)[:10])
    return got


def give_notice(site: Site, customer: str, *, later: bool = False) -> None:
    dates = ("2026-08-01", "2026-09-30") if later else ("2026-01-10", "2026-03-31")
    now = LATER_NOW if later else NOTICE_NOW
    done = site.cli("notice", customer, "--received", dates[0], "--period-end", dates[1], now=now)
    assert done.exit_code == 0, done.stderr


def purge_as_oracle(site: Site, customer: str, *, may_refuse: bool, later: bool = False) -> tuple[Any, Rows, Rows]:
    """Notice and purge ``customer`` when due; the source ends exactly as the oracle says
    (or, where refusing is allowed, exit 3 and nothing changed).  Never a half-done purge."""
    schema = site.schema()
    before = read_all(site.url, schema)
    verdict = decide(schema, before, customer)
    give_notice(site, customer, later=later)
    result = site.cli("purge", customer, "--yes", "--json", now=LATER_DUE_NOW if later else DUE_NOW)
    after = read_all(site.url, schema)
    if may_refuse and result.exit_code == 3:
        assert after == before, "a refused purge changed the source"
        return result, before, after
    assert result.exit_code == 0, result.stderr
    want = expected_after(schema, before, verdict)
    for table in schema.tables:
        gone = set(before[table]) - set(after[table])
        assert gone == verdict.deleted[table], (table, sorted(gone ^ verdict.deleted[table])[:10])
        changed = [pk for pk in want[table] if after[table].get(pk) != want[table][pk]]
        assert not changed, (table, "rows changed outside the plan", changed[:10])
    return result, before, after


def output(result: Any) -> str:
    return (result.stdout or "") + (result.stderr or "")


# --------------------------------------------------------------------------- self-references crossing customers


def test_a_section_tree_crossing_customers_touches_no_globex_row(site: Site) -> None:
    """A globex section whose parent is an acme section: contested, with its subtree."""
    acme_section = first(
        site,
        "SELECT s.id FROM course_sections s JOIN courses c ON c.id = s.course_id "
        "JOIN organisations o ON o.id = c.organisation_id WHERE o.slug = 'acme' ORDER BY s.id LIMIT 1",
    )
    globex_section = first(
        site,
        "SELECT s.id FROM course_sections s JOIN courses c ON c.id = s.course_id JOIN organisations o "
        "ON o.id = c.organisation_id WHERE o.slug = 'globex' AND s.parent_id IS NULL AND EXISTS "
        "(SELECT 1 FROM course_sections k WHERE k.parent_id = s.id) ORDER BY s.id LIMIT 1",
    )
    site.sql(f"UPDATE course_sections SET parent_id = {acme_section} WHERE id = {globex_section}")
    verdict = decide(site.schema(), site.rows(), "acme")
    assert globex_section in verdict.contested["course_sections"]
    assert len(verdict.contested["course_sections"]) > 1  # its children are contested too

    acme = assert_export_is_oracle(site, "acme")
    globex = assert_export_is_oracle(site, "globex")
    assert str(globex_section) not in acme["course_sections"] | globex["course_sections"]
    _, before, after = purge_as_oracle(site, "acme", may_refuse=False)
    assert after["course_sections"][globex_section] == before["course_sections"][globex_section]


def test_a_course_copied_from_another_customers_course(site: Site) -> None:
    """GLOBEX-101 copied from an acme course: not acme's (nor only globex's)."""
    add_reference(site, "courses", "copied_from_id", "courses")
    globex_course = first(site, "SELECT id FROM courses WHERE code = 'GLOBEX-101'")
    site.sql(f"UPDATE courses SET copied_from_id = {course_of(site, 'acme')} WHERE id = {globex_course}")
    acme = assert_export_is_oracle(site, "acme")
    assert str(globex_course) not in acme["courses"]
    assert_export_is_oracle(site, "globex")
    _, before, after = purge_as_oracle(site, "acme", may_refuse=False)
    enrolments = {k for k, r in before["enrolments"].items() if r["course_id"] == globex_course}
    assert enrolments and all(after["enrolments"][k] == before["enrolments"][k] for k in enrolments)
    assert after["courses"][globex_course] == before["courses"][globex_course]


# --------------------------------------------------------------------------- sub-organisations


def add_sub_organisation(site: Site) -> tuple[int, int, int]:
    """acme-north under acme, with its own course, section and enrolment."""
    add_reference(site, "organisations", "parent_id", "organisations")
    acme = org_id(site, "acme")
    user = first(site, f"SELECT user_id FROM memberships WHERE organisation_id = {acme} ORDER BY id LIMIT 1")
    site.sql(
        "INSERT INTO organisations (id, slug, name, country, created_at, parent_id) "
        f"VALUES (9001, 'acme-north', 'Acme Norr', 'SE', '2025-01-01 00:00:00', {acme})",
        "INSERT INTO courses (id, organisation_id, catalogue_item_id, code, title, description, created_at) "
        "VALUES (9002, 9001, NULL, 'NORTH-1', 'Norr', 'A course of the sub-organisation', '2025-01-02 00:00:00')",
        "INSERT INTO course_sections (id, course_id, parent_id, title, position) VALUES (9003, 9002, NULL, 'S', 1)",
        "INSERT INTO enrolments (id, course_id, user_id, role, state, enrolled_at) "
        f"VALUES (9004, 9002, {user}, 'student', 'active', '2025-01-03 00:00:00')",
    )
    return 9001, 9002, 9004


def test_a_sub_organisation_is_listed_exported_and_purged(site: Site) -> None:
    org, course, enrolment = add_sub_organisation(site)
    inspected = site.cli("inspect", "acme", "--json")
    assert inspected.exit_code == 0, inspected.stderr
    listed = "acme-north" in inspected.stdout  # (asserted last: export and purge are checked first)
    got = assert_export_is_oracle(site, "acme")
    assert str(org) in got["organisations"] and str(course) in got["courses"]
    assert str(enrolment) in got["enrolments"]
    _, _, after = purge_as_oracle(site, "acme", may_refuse=False)
    assert org not in after["organisations"] and course not in after["courses"]
    assert enrolment not in after["enrolments"]
    assert listed, "inspect acme does not list the sub-organisation acme-north"


# --------------------------------------------------------------------------- contested rows


def test_a_row_chaining_to_two_customers_is_nobodys(lite: Site) -> None:
    """An activity row of globex about an acme course: in neither export, deleted by
    neither purge, reported as contested."""
    globex, acme_course = org_id(lite, "globex"), course_of(lite, "acme")
    row = first(lite, f"SELECT id FROM activity_log WHERE organisation_id = {globex} ORDER BY id LIMIT 1")
    lite.sql(f"UPDATE activity_log SET course_id = {acme_course} WHERE id = {row}")
    for customer in ("acme", "globex"):
        got = assert_export_is_oracle(lite, customer)
        assert str(row) not in got["activity_log"]
    give_notice(lite, "acme")
    check = lite.cli("status", "--check")
    assert check.exit_code == 5, output(check)
    assert "contested" in output(check).lower() and "activity_log" in output(check)
    inspected = lite.cli("inspect", "acme")
    assert "contested" in output(inspected).lower() and "activity_log" in output(inspected)
    _, before, after = purge_as_oracle(lite, "acme", may_refuse=False)
    assert after["activity_log"][row] == before["activity_log"][row]
    _, before, after = purge_as_oracle(lite, "globex", may_refuse=False, later=True)
    assert after["activity_log"][row] == before["activity_log"][row]


# --------------------------------------------------------------------------- predicted purges


@pytest.mark.parametrize("ondelete", ON_DELETE)
def test_a_globex_users_last_course_at_acme(site: Site, ondelete: str) -> None:
    """users.last_course_id of a globex-only person → an acme course: the purge keeps
    the course or refuses before its first DELETE; never a database failure half-way,
    never a changed globex row."""
    add_reference(site, "users", "last_course_id", "courses", ondelete)
    globex, acme = org_id(site, "globex"), org_id(site, "acme")
    person = first(
        site,
        f"SELECT user_id FROM memberships WHERE organisation_id = {globex} AND user_id NOT IN "
        f"(SELECT user_id FROM memberships WHERE organisation_id <> {globex}) ORDER BY user_id LIMIT 1",
    )
    course = course_of(site, "acme")
    site.sql(f"UPDATE users SET last_course_id = {course} WHERE id = {person}")
    result, before, after = purge_as_oracle(site, "acme", may_refuse=True)
    assert after["users"][person] == before["users"][person]
    if result.exit_code == 3:
        assert "users.last_course_id" in output(result), output(result)
    else:
        assert course in after["courses"] and after["organisations"][acme] == before["organisations"][acme]


def add_policy_cycle(site: Site, *, nullable: bool) -> None:
    """Moodle's tool_policy.currentversionid ↔ tool_policy_versions.policyid."""
    null = "NULL" if nullable else "NOT NULL"
    # (SQLite cannot add a constraint later, but accepts one naming a table still to come)
    later = ", FOREIGN KEY (currentversionid) REFERENCES tool_policy_versions (id)" if site.kind == "sqlite" else ""
    site.sql(
        "CREATE TABLE tool_policy (id INTEGER NOT NULL PRIMARY KEY, organisation_id INTEGER NOT NULL, "
        f"currentversionid INTEGER {null}, FOREIGN KEY (organisation_id) REFERENCES organisations (id){later})",
        "CREATE TABLE tool_policy_versions (id INTEGER NOT NULL PRIMARY KEY, policyid INTEGER NOT NULL, "
        "name VARCHAR(40) NOT NULL, FOREIGN KEY (policyid) REFERENCES tool_policy (id))",
    )
    if site.kind != "sqlite":
        site.sql(
            "ALTER TABLE tool_policy ADD CONSTRAINT fk_policy_current FOREIGN KEY (currentversionid) "
            "REFERENCES tool_policy_versions (id)"
        )
    site.not_counting = (("tool_policy", "currentversionid"),)


def test_a_nullable_reference_cycle_is_broken_without_config(site: Site) -> None:
    add_policy_cycle(site, nullable=True)
    rows = []
    for n, slug in enumerate(("acme", "globex", "acme")):
        policy, org = 9100 + 10 * n, org_id(site, slug)
        rows += [
            f"INSERT INTO tool_policy (id, organisation_id, currentversionid) VALUES ({policy}, {org}, NULL)",
            f"INSERT INTO tool_policy_versions (id, policyid, name) VALUES ({policy + 1}, {policy}, 'v1')",
            f"INSERT INTO tool_policy_versions (id, policyid, name) VALUES ({policy + 2}, {policy}, 'v2')",
            f"UPDATE tool_policy SET currentversionid = {policy + 2} WHERE id = {policy}",
        ]
    site.sql(*rows)
    assert_export_is_oracle(site, "acme")
    _, before, after = purge_as_oracle(site, "acme", may_refuse=False)
    assert set(after["tool_policy"]) == {9110} and set(after["tool_policy_versions"]) == {9111, 9112}
    assert after["tool_policy"][9110] == before["tool_policy"][9110]


def test_a_not_null_cycle_is_reported_from_the_notice_day(lite: Site) -> None:
    add_policy_cycle(lite, nullable=False)
    acme = org_id(lite, "acme")
    lite.sql(  # (plain SQLAlchemy connections do not enforce SQLite's foreign keys)
        f"INSERT INTO tool_policy (id, organisation_id, currentversionid) VALUES (9100, {acme}, 9101)",
        "INSERT INTO tool_policy_versions (id, policyid, name) VALUES (9101, 9100, 'v1')",
    )
    before = lite.rows()
    give_notice(lite, "acme")
    inspected = lite.cli("inspect", "acme")
    assert "cycle" in output(inspected).lower() and "tool_policy" in output(inspected), output(inspected)
    check = lite.cli("status", "--check")  # on the notice day, months before the purge
    assert check.exit_code == 5, output(check)
    assert "cycle" in output(check).lower() and "tool_policy" in output(check)
    refused = lite.cli("purge", "acme", "--yes", now=DUE_NOW)
    assert refused.exit_code == 3, output(refused)
    assert lite.rows() == before


# --------------------------------------------------------------------------- a resumed purge and a newcomer


def test_a_resumed_purge_never_touches_a_newcomer(lite: Site) -> None:
    """acme's purge fails after deleting its organisation row (its export package cannot
    be removed: the folder no longer looks like a package); a new organisation takes the
    key acme; purge --due must leave the newcomer alone."""
    acme = org_id(lite, "acme")
    lite.sql(f"DELETE FROM developer_keys WHERE organisation_id = {acme}")  # nothing keeps acme's row
    exported = lite.cli("export", "acme", "--format", "csv", "--out", str(lite.root / "out"), "--json")
    assert exported.exit_code == 0, output(exported)
    package = Path(json.loads(exported.stdout)["path"])
    (package / "bagit.txt").unlink()  # not a package any more: the purge will not remove it
    give_notice(lite, "acme")
    failed = lite.cli("purge", "acme", "--yes", "--json", now=DUE_NOW)
    assert failed.exit_code == 1, output(failed)
    assert lite.value(f"SELECT COUNT(*) FROM organisations WHERE id = {acme}") == 0

    user = first(lite, "SELECT id FROM users ORDER BY id LIMIT 1")
    lite.sql(
        "INSERT INTO organisations (id, slug, name, country, created_at) "
        "VALUES (9201, 'acme', 'Acme Nykomling', 'SE', '2026-06-30 00:00:00')",
        "INSERT INTO courses (id, organisation_id, catalogue_item_id, code, title, description, created_at) "
        "VALUES (9202, 9201, NULL, 'NEW-1', 'Ny', 'The newcomer''s course', '2026-06-30 00:00:00')",
        "INSERT INTO enrolments (id, course_id, user_id, role, state, enrolled_at) "
        f"VALUES (9203, 9202, {user}, 'student', 'active', '2026-06-30 00:00:00')",
    )
    shutil.rmtree(package)
    before = lite.rows()
    lite.cli("purge", "--due", "--yes", "--json", now=DUE_NOW)
    after = lite.rows()
    assert after["organisations"].get(9201) == before["organisations"][9201]
    assert after["courses"].get(9202) == before["courses"][9202]
    assert after["enrolments"].get(9203) == before["enrolments"][9203]
    for table, rows in before.items():  # nothing of anyone else changed either
        for pk, row in rows.items():
            if table in ("organisations", "courses", "enrolments", "users") or pk not in after[table]:
                continue
            assert after[table][pk] == row, (table, pk)
