"""Real LMS schemas: "no reference" values in the export, and roles that fit real tables.

A small Moodle-like schema: ``logs.userid = 0`` and ``logs.courseid = 0`` mean "none"
(``[tables.logs] sentinels``), ``grades.userid = 0`` too (``[[relations]] sentinels``).
Such a row points nowhere: no "not part of this export" note, the foreign key stays in
datapackage.json with the value declared as missing for that field (``frictionless
validate`` passes), the nested JSON puts the row under no one (not under "person #0",
who exists here), and the SQL dump leaves out only the FOREIGN KEY the value would break,
saying why, and loads.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import frictionless
import pytest

from learnexit.calendar import record_notice
from learnexit.config import load_settings
from learnexit.export import run_export
from learnexit.ledger import Ledger
from learnexit.package import verify_package

STARTED = datetime(2026, 11, 29, 10, 15, tzinfo=UTC)

SCHEMA = """
CREATE TABLE sites (id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE TABLE users (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL REFERENCES sites(id), name TEXT NOT NULL);
CREATE TABLE courses (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL REFERENCES sites(id), fullname TEXT NOT NULL);
CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites(id),
    userid INTEGER NOT NULL DEFAULT 0 REFERENCES users(id),
    courseid INTEGER NOT NULL DEFAULT 0 REFERENCES courses(id),
    action TEXT NOT NULL
);
CREATE TABLE grades (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL REFERENCES sites(id),
                     userid INTEGER NOT NULL, grade INTEGER);
"""

ROWS = """
INSERT INTO sites VALUES (1, 'site_a', 'Site A'), (2, 'site_b', 'Site B');
INSERT INTO users VALUES (0, 1, 'Person Zero'), (1, 1, 'Ada'), (2, 1, 'Bo'), (3, 2, 'Other');
INSERT INTO courses VALUES (10, 1, 'Welding'), (11, 2, 'Other course');
INSERT INTO logs VALUES (100, 1, 1, 10, 'viewed'), (101, 1, 0, 10, 'cron'), (102, 1, 2, 0, 'login'),
                        (103, 1, 0, 0, 'system'), (104, 2, 3, 11, 'theirs');
INSERT INTO grades VALUES (200, 1, 1, 7), (201, 1, 0, 3), (202, 2, 3, 9);
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
[tables.logs]
sentinels = { userid = [0], courseid = [0] }
[[relations]]
from = "grades.userid"
to = "users.id"
sentinels = [0]
[roles.people]
table = "users"
id = "id"
name = "name"
"""


def build(root: Path, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(root / "lms.db") as db:
        db.executescript(SCHEMA + ROWS)
    db.close()
    config = root / "learnexit.toml"
    config.write_text(CONFIG + extra, encoding="utf-8")
    return config


def export(config: Path, formats: list[str], customer: str = "site_a") -> Any:
    settings = load_settings(config)
    with Ledger(settings.state_url) as ledger:
        record_notice(settings, ledger, customer, date(2026, 11, 20), period_end=date(2027, 1, 30), now=STARTED)
    return run_export(settings, customer, formats=formats, out=config.parent / "out", now=STARTED)


@pytest.fixture(scope="module")
def sentinel_export(tmp_path_factory: pytest.TempPathFactory) -> Any:
    config = build(tmp_path_factory.mktemp("sentinels") / "lms")
    return export(config, ["csv", "json", "xml", "sql"])


def test_no_dangling_reference_note_for_none_values(sentinel_export: Any) -> None:
    notes = list(sentinel_export.notes)
    assert not [n for n in notes if "not part of this export" in n], notes
    assert not [n for n in notes if n.startswith("csv:")], notes


def test_datapackage_declares_the_none_value_per_field_and_keeps_the_keys(sentinel_export: Any) -> None:
    data = Path(sentinel_export.path) / "data"
    package = json.loads((data / "datapackage.json").read_text(encoding="utf-8"))
    resources = {r["name"]: r["schema"] for r in package["resources"] if r.get("type") == "table"}
    logs = resources["logs"]
    assert logs["missingValues"] == [""]
    fields = {f["name"]: f for f in logs["fields"]}
    assert fields["userid"] == {"name": "userid", "type": "integer", "description": "SQL type INTEGER",
                                "missingValues": ["", "0"]}  # fmt: skip
    assert fields["courseid"]["missingValues"] == ["", "0"] and "constraints" not in fields["courseid"]
    assert "missingValues" not in fields["action"] and fields["site_id"]["constraints"] == {"required": True}
    assert sorted(logs["foreignKeys"], key=lambda k: k["fields"]) == [
        {"fields": ["courseid"], "reference": {"resource": "courses", "fields": ["id"]}},
        {"fields": ["site_id"], "reference": {"resource": "sites", "fields": ["id"]}},
        {"fields": ["userid"], "reference": {"resource": "users", "fields": ["id"]}},
    ]
    grades = resources["grades"]
    assert {f["name"]: f.get("missingValues") for f in grades["fields"]}["userid"] == ["", "0"]
    assert {"fields": ["userid"], "reference": {"resource": "users", "fields": ["id"]}} in grades["foreignKeys"]
    report = frictionless.validate(str(data / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    assert verify_package(Path(sentinel_export.path)).valid
    cli = subprocess.run(
        ["frictionless", "validate", "--json", str(data / "datapackage.json")], capture_output=True, text=True
    )
    assert json.loads(cli.stdout)["valid"] is True


def test_nested_json_puts_none_rows_under_no_one(sentinel_export: Any) -> None:
    data = Path(sentinel_export.path) / "data"
    nested = json.loads((data / "json" / "site_a.json").read_text(encoding="utf-8"))
    people = {p["id"]: p for p in nested["people"]}
    assert sorted(people) == [0, 1, 2]
    assert [r["id"] for r in people[0]["logs"]] == [] and people[0]["grades"] == []
    assert [r["id"] for r in people[1]["logs"]] == [100] and [r["id"] for r in people[1]["grades"]] == [200]
    assert [r["id"] for r in people[2]["logs"]] == [102] and people[2]["grades"] == []
    assert [r["id"] for r in nested["other"]["logs"]] == [101, 103]
    assert [r["id"] for r in nested["other"]["grades"]] == [201]
    assert nested["nesting"]["logs"] == {"under": "users", "key": "logs", "columns": ["userid"], "references": ["id"]}
    root = ElementTree.parse(data / "xml" / "site_a.xml").getroot()
    people_xml = root.find("people")
    assert people_xml is not None
    nested_xml = {
        u.findtext("id"): [(c.tag, c.findtext("id")) for c in u if c.find("id") is not None] for u in people_xml
    }
    assert nested_xml == {"0": [], "1": [("grades", "200"), ("logs", "100")], "2": [("logs", "102")]}
    other = root.find("other")
    assert other is not None
    assert [(c.tag, c.findtext("id")) for c in other if c.tag in ("logs", "grades")] == [
        ("grades", "201"), ("logs", "101"), ("logs", "103")
    ]  # fmt: skip


def test_sql_dump_leaves_out_only_the_keys_the_none_value_breaks_and_loads(
    sentinel_export: Any, tmp_path: Path
) -> None:
    data = Path(sentinel_export.path) / "data"
    dump = (data / "sql" / "site_a.sql").read_text(encoding="utf-8")
    notes = [n for n in sentinel_export.notes if n.startswith("sql:")]
    # person #0 exists, so userid = 0 has its row: that key stays; no course has id 0
    assert notes == [
        "sql: logs: foreign key logs.courseid → courses.id left out of the dump: "
        "courseid: 0 means none, and no exported row has that key"
    ]
    db = sqlite3.connect(tmp_path / "loaded.db")
    db.execute("PRAGMA foreign_keys = ON")
    db.executescript(dump)
    assert db.execute("SELECT id, userid, courseid FROM logs ORDER BY id").fetchall() == [
        (100, 1, 10), (101, 0, 10), (102, 2, 0), (103, 0, 0)
    ]  # fmt: skip
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    fks = {(r[2], r[3]) for r in db.execute("PRAGMA foreign_key_list(logs)")}
    assert fks == {("sites", "site_id"), ("users", "userid")}
    db.close()


def test_a_none_value_in_the_primary_key_leaves_the_key_undeclared_with_one_note(tmp_path: Path) -> None:
    root = tmp_path / "lms"
    config = build(root, "[tables.enrol]\nsentinels = { userid = [0], courseid = [0] }\n")
    with sqlite3.connect(root / "lms.db") as db:
        db.executescript(
            "CREATE TABLE enrol (site_id INTEGER NOT NULL REFERENCES sites(id),"
            " userid INTEGER NOT NULL REFERENCES users(id), courseid INTEGER NOT NULL REFERENCES courses(id),"
            " PRIMARY KEY (userid, courseid));"
            "INSERT INTO enrol VALUES (1, 1, 10), (1, 2, 0), (2, 3, 11);"
        )
    db.close()
    result = export(config, ["csv"])
    data = Path(result.path) / "data"
    package = json.loads((data / "datapackage.json").read_text(encoding="utf-8"))
    enrol = next(r["schema"] for r in package["resources"] if r["name"] == "enrol")
    assert enrol["foreignKeys"] == [{"fields": ["site_id"], "reference": {"resource": "sites", "fields": ["id"]}}]
    assert all("missingValues" not in f for f in enrol["fields"])
    csv_notes = [n for n in result.notes if n.startswith("csv:")]
    assert csv_notes == [
        "csv: enrol.courseid: 0 means none; enrol.userid: 0 means none; "
        "the references are not declared in datapackage.json"
    ]
    assert frictionless.validate(str(data / "datapackage.json")).valid
