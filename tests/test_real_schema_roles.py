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
import re
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import docx
import frictionless
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from learnexit.cli import app
from learnexit.config import load_settings
from learnexit.export.run import run_export
from learnexit.ledger.store import Ledger
from learnexit.offboarding.notice import record_notice
from learnexit.package.verify import verify_package

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
    # (the command the package's README names, from the Python running the tests: a venv
    # used without activating it has no frictionless on PATH)
    command = str(Path(sys.executable).with_name("frictionless"))
    cli = subprocess.run(
        [command, "validate", "--json", str(data / "datapackage.json")], capture_output=True, text=True
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


# --------------------------------------------------------------------------- roles on real schemas

ROLE_SCHEMA = """
CREATE TABLE sites (id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE TABLE users (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL REFERENCES sites(id), name TEXT NOT NULL);
CREATE TABLE courses (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL REFERENCES sites(id), fullname TEXT NOT NULL);
CREATE TABLE course_completions (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL REFERENCES sites(id),
    userid INTEGER NOT NULL, course INTEGER NOT NULL, timecompleted DATETIME);
CREATE TABLE quiz (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL REFERENCES sites(id), name TEXT, grade REAL);
CREATE TABLE quiz_grades (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL REFERENCES sites(id),
    quiz INTEGER NOT NULL, userid INTEGER NOT NULL, grade REAL);
CREATE TABLE badge (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL REFERENCES sites(id), name TEXT NOT NULL);
CREATE TABLE badge_issued (id INTEGER PRIMARY KEY, site_id INTEGER NOT NULL REFERENCES sites(id),
    badgeid INTEGER NOT NULL, userid INTEGER NOT NULL, dateissued DATETIME, uniquehash TEXT NOT NULL);
INSERT INTO sites VALUES (1, 'site_a', 'Site A');
INSERT INTO users VALUES (1, 1, 'Ada Lind'), (2, 1, 'Bo Berg');
INSERT INTO courses VALUES (10, 1, 'Welding'), (11, 1, 'Painting');
INSERT INTO course_completions VALUES
    (1, 1, 1, 10, '2026-10-01 10:00:00'), (2, 1, 2, 10, NULL), (3, 1, 0, 10, '2026-10-02 10:00:00'),
    (4, 1, 2, 11, '2026-10-05 10:00:00');
INSERT INTO quiz VALUES (50, 1, 'Safety quiz', 10.0);
INSERT INTO quiz_grades VALUES (60, 1, 50, 1, 8.0), (61, 1, 50, 2, 5.0), (62, 1, 50, 0, 3.0);
INSERT INTO badge VALUES (80, 1, 'Welding badge');
INSERT INTO badge_issued VALUES (70, 1, 80, 1, '2026-10-03 09:00:00', 'abc123'),
    (71, 1, 80, 0, '2026-10-04 09:00:00', 'zero999');
"""

ROLE_CONFIG = """
[source]
url = "sqlite:///lms.db"
[state]
url = "sqlite:///state.db"
[customer]
table = "sites"
key = "slug"
name_column = "name"
[[relations]]
from = "course_completions.userid"
to = "users.id"
[[relations]]
from = "course_completions.course"
to = "courses.id"
[[relations]]
from = "quiz_grades.userid"
to = "users.id"
[[relations]]
from = "quiz_grades.quiz"
to = "quiz.id"
[[relations]]
from = "badge_issued.userid"
to = "users.id"
sentinels = [0]
[[relations]]
from = "badge_issued.badgeid"
to = "badge.id"
[roles.people]
table = "users"
id = "id"
name = "name"
nobody = [0]
[roles.courses]
table = "courses"
id = "id"
title = "fullname"
[roles.completions]
table = "course_completions"
person = "userid"
course = "course"
completed_at = "timecompleted"
completed_only = true
[roles.certificates]
table = "badge_issued"
person = "userid"
title = "badge.name"
issued_at = "dateissued"
number = "uniquehash"
[roles.quiz_results]
table = "quiz_grades"
person = "userid"
quiz = "quiz"
score = "grade"
max_score = "quiz.grade"
"""


def pdf_lines(path: Path) -> list[str]:
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True)
    return [" ".join(line.split()) for line in text.stdout.splitlines() if line.strip()]


def build_roles(root: Path, config: str = ROLE_CONFIG) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(root / "lms.db") as db:
        db.executescript(ROLE_SCHEMA)
    db.close()
    path = root / "learnexit.toml"
    path.write_text(config, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def role_export(tmp_path_factory: pytest.TempPathFactory) -> Any:
    config = build_roles(tmp_path_factory.mktemp("roles") / "lms")
    return export(config, ["pdf", "docx"])


def test_completions_count_only_once_completed_and_never_for_no_one(role_export: Any) -> None:
    docs = Path(role_export.path) / "data" / "documents"
    welding = pdf_lines(docs / "reports" / "completions" / "10-Welding.pdf")
    # Bo's row has no timecompleted (enrolled, not completed); userid 0 is no one
    assert welding[welding.index("Summary") :][:9] == [
        "Summary",
        "Completions 1",
        "Average score —",
        "Certificates issued 0",
        "First and last completion 1 October 2026 – 1 October 2026",
        "Completions",
        "Person Completed Score Certificate",
        "Ada Lind 1 October 2026 — —",
        "Site A · Completion report Page 1 of 1",
    ]
    painting = pdf_lines(docs / "reports" / "completions" / "11-Painting.pdf")
    assert painting[painting.index("Person Completed Score Certificate") + 1 :] == [
        "Bo Berg 5 October 2026 — —",
        "Site A · Completion report Page 1 of 1",
    ]


def test_user_statistics_have_real_people_only_with_the_remote_maximum(role_export: Any) -> None:
    docs = Path(role_export.path) / "data" / "documents"
    lines = pdf_lines(docs / "reports" / "user-statistics.pdf")
    start = next(i for i, line in enumerate(lines) if line.startswith("Person Courses Completions"))
    # quiz_grades.grade of 10 (quiz.grade, through quiz_grades.quiz → quiz.id): 8 → 80 %, 5 → 50 %
    assert lines[start + 1 : start + 3] == [
        "Ada Lind 1 1 1 — 1 80.0% 0 — —",
        "Bo Berg 1 1 0 — 1 50.0% 0 — —",
    ]
    assert lines[start + 3].startswith("Site A · User statistics")


def test_a_badge_without_a_course_is_awarded_by_its_name(role_export: Any) -> None:
    docs = Path(role_export.path) / "data" / "documents"
    assert sorted(p.name for p in (docs / "certificates").iterdir()) == ["abc123.docx", "abc123.pdf"]
    assert pdf_lines(docs / "certificates" / "abc123.pdf")[:7] == [
        "Site A",
        "Certificate of Completion",
        "This is to certify that",
        "Ada Lind",
        "has been awarded",
        "Welding badge",
        "3 October 2026 ✓ abc123",
    ]
    word = docx.Document(str(docs / "certificates" / "abc123.docx"))
    texts = [p.text for p in word.paragraphs if p.text.strip()]
    assert texts[:6] == [
        "Site A",
        "Certificate of Completion",
        "This is to certify that",
        "Ada Lind",
        "has been awarded",
        "Welding badge",
    ]
    no_one = [
        "1 row of badge_issued names no person (userid empty or meaning no one): no certificate for it",
        "1 row of course_completions names no person (userid empty or meaning no one): no completion for it",
    ]
    expected = [f"{fmt}: {text}" for text in no_one for fmt in ("pdf", "docx")]
    assert sorted(n for n in role_export.notes if "no person" in n) == sorted(expected)


@pytest.mark.parametrize(
    "old,new,message",
    [
        (
            'max_score = "quiz.grade"',
            'max_score = "badge.name"',
            r"\[roles.quiz_results\] max_score: badge.name must be reached from quiz_grades by one reference, "
            r"but no foreign key or \[\[relations\]\] leads there",
        ),
        (
            'max_score = "quiz.grade"',
            'max_score = "quiz.points"',
            r"\[roles.quiz_results\] max_score: quiz has no column points",
        ),
        (
            'completed_at = "timecompleted"\n',
            "",
            r"\[roles.completions\] completed_only: needs completed_at",
        ),
    ],
)
def test_role_options_that_cannot_work_are_config_errors(old: str, new: str, message: str, tmp_path: Path) -> None:
    assert old in ROLE_CONFIG
    config = build_roles(tmp_path / "lms", ROLE_CONFIG.replace(old, new))
    runner = CliRunner()
    notice = ["notice", "site_a", "--received", "2026-11-20", "--period-end", "2027-01-30", "--config", str(config)]
    done = runner.invoke(app, notice)
    if done.exit_code == 0:
        done = runner.invoke(app, ["export", "site_a", "--format", "pdf", "--config", str(config)])
    assert done.exit_code == 2, done.output
    assert re.search(message, done.stderr), done.stderr


# --------------------------------------------------------------------------- on every engine


def build_on(url: str) -> None:
    """The sentinel schema without declared person/course keys (Moodle declares none;
    PostgreSQL and MariaDB would refuse a 0 under a declared one)."""
    md = sa.MetaData()
    sites = sa.Table(
        "sites", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("slug", sa.String(20), nullable=False, unique=True), sa.Column("name", sa.String(50), nullable=False),
    )  # fmt: skip
    site = lambda: sa.Column("site_id", sa.Integer, sa.ForeignKey("sites.id"), nullable=False)  # noqa: E731
    users = sa.Table(
        "users", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), site(),
        sa.Column("name", sa.String(50), nullable=False),
    )  # fmt: skip
    logs = sa.Table(
        "logs", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), site(),
        sa.Column("userid", sa.Integer, nullable=False), sa.Column("courseid", sa.Integer, nullable=False),
    )  # fmt: skip
    courses = sa.Table(
        "courses", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), site(),
        sa.Column("fullname", sa.String(50), nullable=False),
    )  # fmt: skip
    engine = sa.create_engine(url)
    try:
        md.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sites.insert(), [{"id": 1, "slug": "site_a", "name": "Site A"}])
            conn.execute(
                users.insert(),
                [{"id": 0, "site_id": 1, "name": "Person Zero"}, {"id": 1, "site_id": 1, "name": "Ada"}],
            )
            conn.execute(courses.insert(), [{"id": 10, "site_id": 1, "fullname": "Welding"}])
            conn.execute(
                logs.insert(),
                [
                    {"id": 100, "site_id": 1, "userid": 1, "courseid": 10},
                    {"id": 101, "site_id": 1, "userid": 0, "courseid": 10},
                    {"id": 102, "site_id": 1, "userid": 1, "courseid": 0},
                ],
            )
    finally:
        engine.dispose()


ENGINE_CONFIG = """
[customer]
table = "sites"
key = "slug"
name_column = "name"
[[relations]]
from = "logs.userid"
to = "users.id"
sentinels = [0]
[[relations]]
from = "logs.courseid"
to = "courses.id"
sentinels = [0]
[roles.people]
table = "users"
id = "id"
name = "name"
"""


def test_none_values_nest_under_no_one_and_validate_on_every_engine(dbs: Any, tmp_path: Path) -> None:
    url = dbs.new("sentinels")
    build_on(url)
    config = tmp_path / "learnexit.toml"
    config.write_text(ENGINE_CONFIG, encoding="utf-8")
    settings = load_settings(config, source_url=url, state_url=f"sqlite:///{tmp_path / 'state.db'}")
    with Ledger(settings.state_url) as ledger:
        record_notice(settings, ledger, "site_a", date(2026, 11, 20), period_end=date(2027, 1, 30), now=STARTED)
    result = run_export(settings, "site_a", formats=["csv", "json", "xml"], out=tmp_path / "out", now=STARTED)
    assert not [n for n in result.notes if "not part of this export" in n or n.startswith("csv:")], result.notes
    data = Path(result.path) / "data"
    nested = json.loads((data / "json" / "site_a.json").read_text(encoding="utf-8"))
    assert {p["id"]: [r["id"] for r in p["logs"]] for p in nested["people"]} == {0: [], 1: [100, 102]}
    assert [r["id"] for r in nested["other"]["logs"]] == [101]
    package = json.loads((data / "datapackage.json").read_text(encoding="utf-8"))
    logs = next(r["schema"] for r in package["resources"] if r["name"] == "logs")
    assert {f["name"]: f.get("missingValues") for f in logs["fields"]} == {
        "id": None, "site_id": None, "userid": ["", "0"], "courseid": ["", "0"],
    }  # fmt: skip
    assert sorted(k["fields"][0] for k in logs["foreignKeys"]) == ["courseid", "site_id", "userid"]
    report = frictionless.validate(str(data / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
