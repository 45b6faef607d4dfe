"""``[roles.people] nobody``: a person id that means no one, for every reference to people.

Moodle writes ``userid = 0`` for "no user" and declares no foreign keys.  With
``[roles.people] nobody = [0]`` every reference whose target is the people role's id
(here the ``[[relations]]`` entry ``logs.userid → users.id``) reads 0 as NULL, exactly as
if that relation declared ``sentinels = [0]``: no "not part of this export" note, the
foreign key declared with ``0`` as a missing value, the row nested under no one, and a
row owned only through its other references (``logs.courseid``).  Without ``nobody`` the
same export says the reference points outside it.  The purge of one site leaves the
other site's rows byte for byte as they were.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from learnexit.cli import app
from learnexit.config import load_settings
from learnexit.export.run import run_export
from learnexit.ledger.store import Ledger
from learnexit.offboarding.notice import record_notice
from learnexit.source import Source

STARTED = datetime(2026, 11, 29, 10, 15, tzinfo=UTC)

SCHEMA = """
CREATE TABLE sites (id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE TABLE users (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL REFERENCES sites(id), name TEXT NOT NULL);
CREATE TABLE courses (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL REFERENCES sites(id), fullname TEXT NOT NULL);
CREATE TABLE logs (id INTEGER PRIMARY KEY, userid INTEGER NOT NULL DEFAULT 0, courseid INTEGER, action TEXT NOT NULL);
INSERT INTO sites VALUES (1, 'site_a', 'Site A'), (2, 'site_b', 'Site B');
INSERT INTO users VALUES (1, 1, 'Ada'), (2, 1, 'Bo'), (3, 2, 'Cy');
INSERT INTO courses VALUES (10, 1, 'Welding'), (11, 2, 'Painting');
INSERT INTO logs VALUES
    (100, 1, 10, 'viewed'),   -- Ada in Welding: site_a's
    (101, 0, 10, 'cron'),     -- no one, in Welding: site_a's through the course
    (102, 0, NULL, 'system'), -- no one, no course: nobody's
    (103, 0, 11, 'cron'),     -- no one, in Painting: site_b's
    (104, 3, 11, 'viewed'),   -- Cy in Painting: site_b's
    (105, 2, NULL, 'login');  -- Bo, no course: site_a's through the person
"""

CONFIG = """
[source]
url = "sqlite:///lms.db"
[state]
url = "sqlite:///state.db"
[customer]
table = "sites"
key = "slug"
name_column = "name"
[[relations]]
from = "logs.userid"
to = "users.id"
[[relations]]
from = "logs.courseid"
to = "courses.id"
[roles.people]
table = "users"
id = "id"
name = "name"
"""

NOBODY = "nobody = [0]\n"
DANGLING = (
    "logs.userid → users.id: 1 exported row references a row not part of this export; "
    "the reference is kept as plain values, not declared as a foreign key"
)


def build(root: Path, extra: str = "", rows: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(root / "lms.db") as db:
        db.executescript(SCHEMA + rows)
    db.close()
    config = root / "learnexit.toml"
    config.write_text(CONFIG + extra, encoding="utf-8")
    return config


def export(config: Path) -> Any:
    settings = load_settings(config)
    with Ledger(settings.state_url) as ledger:
        record_notice(settings, ledger, "site_a", date(2026, 11, 20), period_end=date(2027, 1, 30), now=STARTED)
    return run_export(settings, "site_a", formats=["csv", "json"], out=config.parent / "out", now=STARTED)


def logs_schema(result: Any) -> dict[str, Any]:
    package = json.loads((Path(result.path) / "data" / "datapackage.json").read_text(encoding="utf-8"))
    return next(r["schema"] for r in package["resources"] if r["name"] == "logs")


def exported_ids(result: Any, table: str) -> list[int]:
    lines = (Path(result.path) / "data" / "csv" / f"{table}.csv").read_text(encoding="utf-8").splitlines()
    return [int(line.split(",")[0]) for line in lines[1:]]


def test_without_nobody_a_zero_person_points_outside_the_export(tmp_path: Path) -> None:
    result = export(build(tmp_path / "lms"))
    assert [n for n in result.notes if "not part of this export" in n] == [DANGLING]
    schema = logs_schema(result)
    assert schema["foreignKeys"] == [{"fields": ["courseid"], "reference": {"resource": "courses", "fields": ["id"]}}]
    assert exported_ids(result, "logs") == [100, 101, 105]


def test_nobody_is_no_reference_in_the_export(tmp_path: Path) -> None:
    result = export(build(tmp_path / "lms", NOBODY))
    assert not [n for n in result.notes if "not part of this export" in n or n.startswith("csv:")], result.notes
    schema = logs_schema(result)
    assert sorted(schema["foreignKeys"], key=lambda k: k["fields"]) == [
        {"fields": ["courseid"], "reference": {"resource": "courses", "fields": ["id"]}},
        {"fields": ["userid"], "reference": {"resource": "users", "fields": ["id"]}},
    ]
    assert {f["name"]: f.get("missingValues") for f in schema["fields"]} == {
        "id": None, "userid": ["", "0"], "courseid": None, "action": None,
    }  # fmt: skip
    # 101 is site_a's through Welding, 102 no one's, 103 site_b's through Painting
    assert exported_ids(result, "logs") == [100, 101, 105]
    nested = json.loads((Path(result.path) / "data" / "json" / "site_a.json").read_text(encoding="utf-8"))
    assert {p["id"]: [r["id"] for r in p["logs"]] for p in nested["people"]} == {1: [100], 2: [105]}
    assert [r["id"] for r in nested["other"]["logs"]] == [101]


def test_nobody_decides_ownership_like_a_relation_sentinel(tmp_path: Path) -> None:
    """With a person #0 in site_a, a 0 would tie rows to site_a: ``nobody`` unties them."""
    zero = "INSERT INTO users VALUES (0, 1, 'Person Zero');\n"
    plain = load_settings(build(tmp_path / "plain", rows=zero))
    settled = load_settings(build(tmp_path / "nobody", NOBODY, rows=zero))
    with Source(plain, "site_a") as src, src.snapshot() as conn:
        logs = src.table("logs")
        mine = conn.execute(sa.select(logs.c.id).where(src.predicate("logs")).order_by(logs.c.id)).scalars().all()
        assert mine == [100, 101, 102, 105]
        assert [c.table for c in src.contested_report(conn)] == ["logs"]  # 103: person #0 and Painting
    with Source(settled, "site_a") as src, src.snapshot() as conn:
        logs = src.table("logs")
        mine = conn.execute(sa.select(logs.c.id).where(src.predicate("logs")).order_by(logs.c.id)).scalars().all()
        assert mine == [100, 101, 105]
        assert src.contested_report(conn) == []
        edge = next(e for e in src.datamap.edges if e.child == "logs" and e.child_cols == ("userid",))
        assert edge.sentinels == (("userid", (0,)),)
    with Source(settled, "site_b") as src, src.snapshot() as conn:
        logs = src.table("logs")
        theirs = conn.execute(sa.select(logs.c.id).where(src.predicate("logs")).order_by(logs.c.id)).scalars().all()
        assert theirs == [103, 104]


def dump(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    conn.close()
    return out


@pytest.mark.parametrize("extra", ["", NOBODY], ids=["plain", "nobody"])
def test_the_purge_leaves_the_other_site_byte_identical(extra: str, tmp_path: Path) -> None:
    config = build(tmp_path / "lms", extra)
    before = dump(tmp_path / "lms" / "lms.db")
    runner = CliRunner()
    notice = ["notice", "site_a", "--received", "2026-01-10", "--period-end", "2026-03-31", "--config", str(config)]
    done = runner.invoke(app, notice, env={"LEARNEXIT_NOW": "2026-01-15"})
    assert done.exit_code == 0, done.output
    purged = runner.invoke(
        app, ["purge", "site_a", "--yes", "--json", "--config", str(config)], env={"LEARNEXIT_NOW": "2026-07-01"}
    )
    assert purged.exit_code == 0, purged.output
    after = dump(tmp_path / "lms" / "lms.db")
    assert after == {
        "courses": [r for r in before["courses"] if r[0] == 11],
        "logs": [r for r in before["logs"] if r[0] in (102, 103, 104)],
        "sites": [r for r in before["sites"] if r[0] == 2],
        "users": [r for r in before["users"] if r[0] == 3],
    }
    assert after["logs"] == [(102, 0, None, "system"), (103, 0, 11, "cron"), (104, 3, 11, "viewed")]


def test_the_purge_reads_nobody_as_no_reference_too(tmp_path: Path) -> None:
    """Person #0 is site_a's own: site_b's row 103 with ``userid = 0`` means "no one", so it
    does not keep site_a's person #0 (without ``nobody`` it would: a staying row naming it)."""
    zero = "INSERT INTO users VALUES (0, 1, 'Person Zero');\n"
    config = build(tmp_path / "lms", NOBODY, rows=zero)
    before = dump(tmp_path / "lms" / "lms.db")
    runner = CliRunner()
    notice = ["notice", "site_a", "--received", "2026-01-10", "--period-end", "2026-03-31", "--config", str(config)]
    assert runner.invoke(app, notice, env={"LEARNEXIT_NOW": "2026-01-15"}).exit_code == 0
    purged = runner.invoke(
        app, ["purge", "site_a", "--yes", "--json", "--config", str(config)], env={"LEARNEXIT_NOW": "2026-07-01"}
    )
    assert purged.exit_code == 0, purged.output
    after = dump(tmp_path / "lms" / "lms.db")
    assert after["users"] == [(3, 2, "Cy")]  # person #0 went with site_a
    assert after["logs"] == [r for r in before["logs"] if r[0] in (102, 103, 104)]
    assert after["courses"] == [(11, 2, "Painting")] and after["sites"] == [(2, "site_b", "Site B")]
