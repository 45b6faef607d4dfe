"""The LMS recipes in examples/recipes/ work on the schemas they are written for.

``moodle.toml`` against two Moodle-like sites (``lms_schemas``: Moodle's table and column
names, database per site), with and without declared foreign keys, and a file pool per
site: inspect shows nothing unclassified, the export nests each person's records and
copies the site's files, the purge deletes exactly that site (its files too) and leaves
the other site's database and files byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tomllib
from pathlib import Path

import pytest
import sqlalchemy as sa
from lms_schemas import build_moodle
from typer.testing import CliRunner

from learnexit.cli import app
from learnexit.config import load_settings
from learnexit.source.inspection import inspect_customer

ROOT = Path(__file__).resolve().parents[1]
MOODLE = ROOT / "examples" / "recipes" / "moodle.toml"
runner = CliRunner()


def file_pool(db: Path, root: Path) -> dict[str, bytes]:
    """Real files for every mdl_files row (contenthash = SHA-1 of the content, Moodle's
    filedir layout); returns them by path below ``root``."""
    files: dict[str, bytes] = {}
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        for (key,) in conn.exec_driver_sql("SELECT id FROM mdl_files").all():
            content = f"file {key} of {db.stem}\n".encode()
            digest = hashlib.sha1(content).hexdigest()
            conn.exec_driver_sql(
                "UPDATE mdl_files SET contenthash = ?, filesize = ? WHERE id = ?", (digest, len(content), key)
            )
            rel = f"filedir/{digest[0:2]}/{digest[2:4]}/{digest}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(content)
            files[rel] = content
    engine.dispose()
    return files


def tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("declare_keys", [False, True], ids=["no-keys", "declared-keys"])
def test_moodle_recipe_offboards_exactly_one_site(declare_keys: bool, tmp_path: Path) -> None:
    for site, name in ((1, "site_a"), (2, "site_b")):
        build_moodle(f"sqlite:///{tmp_path / (name + '.db')}", site=site, declare_keys=declare_keys, log_rows=1500)
        file_pool(tmp_path / f"{name}.db", tmp_path / "moodledata" / name)
    text = MOODLE.read_text(encoding="utf-8")
    recipe = tomllib.loads(text)
    text = text.replace(recipe["source"]["url"], "sqlite:///{customer}.db")
    text = text.replace(recipe["media"]["root"], "moodledata/{customer}")
    config = tmp_path / "learnexit.toml"
    config.write_text(text, encoding="utf-8")
    settings = load_settings(config)

    report = inspect_customer(settings, "site_a")
    assert report.unclassified == []
    assert report.name == "course-fullname-1-1"  # name_query: the front page's full name

    out = runner.invoke(
        app,
        [
            "export",
            "site_a",
            "--format",
            "json,csv,media",
            "--out",
            str(tmp_path / "out"),
            "--json",
            "--config",
            str(config),
        ],
    )
    assert out.exit_code == 0, out.stderr
    package = Path(json.loads(out.stdout)["path"])
    doc = json.loads((package / "data" / "json" / "site_a.json").read_text(encoding="utf-8"))
    assert doc["customer_name"] == "course-fullname-1-1"
    people = doc["people"]
    assert len(people) == 40
    nested = {key for person in people for key in person if key.startswith("mdl_")}
    for table in (
        "mdl_user_enrolments",
        "mdl_grade_grades",
        "mdl_quiz_attempts",
        "mdl_forum_posts",
        "mdl_course_completions",
        "mdl_lesson_attempts",
        "mdl_h5pactivity_attempts",
    ):
        assert table in nested, table
    header = (package / "data" / "csv" / "mdl_user.csv").read_text(encoding="utf-8").splitlines()[0]
    assert "password" not in header and "secret" not in header
    copied = [p for p in (package / "data" / "media").rglob("files-filename-*") if p.is_file()]
    assert len(copied) == _count(tmp_path / "site_a.db", "mdl_files")

    b_db = hashlib.sha256((tmp_path / "site_b.db").read_bytes()).hexdigest()
    b_files = tree(tmp_path / "moodledata" / "site_b")
    notice = ["notice", "site_a", "--received", "2026-11-20", "--period-end", "2027-01-30", "--config", str(config)]
    assert runner.invoke(app, notice).exit_code == 0
    purge = runner.invoke(
        app, ["purge", "site_a", "--yes", "--json", "--config", str(config)], env={"LEARNEXIT_NOW": "2027-06-01"}
    )
    assert purge.exit_code == 0, purge.stderr
    outcome = json.loads(purge.stdout)["customers"][0]
    assert outcome["verified"] is True and outcome["kept_shared"] == {}
    shared = {n for n, t in settings.tables.items() if t.shared}
    con = sqlite3.connect(tmp_path / "site_a.db")
    left = {
        n: con.execute(f"SELECT count(*) FROM {n}").fetchone()[0]
        for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    con.close()
    assert {n for n, c in left.items() if c and n not in shared} == set(outcome["retained"])
    assert set(outcome["retained"]) <= {"mdl_payments", "mdl_payment_accounts", "mdl_context", "mdl_user"}
    assert left["mdl_payments"] == 24 and left["mdl_files"] == 0
    assert tree(tmp_path / "moodledata" / "site_a") == {}
    assert hashlib.sha256((tmp_path / "site_b.db").read_bytes()).hexdigest() == b_db
    assert tree(tmp_path / "moodledata" / "site_b") == b_files


def _count(db: Path, table: str) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        con.close()


CANVAS = ROOT / "examples" / "recipes" / "canvas.toml"
GLOBAL = {"settings", "delayed_jobs", "developer_keys"}


def _rows_by_tenant(db: Path) -> dict[str, dict[int, str]]:
    """Every row of every table by id, as text (tenant 1's ids are 100001.., tenant 2's
    200001.., the global tables' 1..)."""
    con = sqlite3.connect(db)
    try:
        out = {}
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            out[name] = {int(r[0]): repr(r) for r in con.execute(f"SELECT * FROM {name}")}
        return out
    finally:
        con.close()


@pytest.mark.parametrize("declare_keys", [False, True], ids=["no-keys", "declared-keys"])
def test_canvas_recipe_offboards_exactly_one_root_account(declare_keys: bool, tmp_path: Path) -> None:
    from lms_schemas import build_canvas

    db = tmp_path / "canvas.db"
    build_canvas(f"sqlite:///{db}", declare_keys=declare_keys)
    text = CANVAS.read_text(encoding="utf-8")
    text = text.replace(tomllib.loads(text)["source"]["url"], "sqlite:///canvas.db")
    config = tmp_path / "learnexit.toml"
    config.write_text(text, encoding="utf-8")
    tenant = "accounts-uuid-2-1"  # the first tenant's root account

    report = inspect_customer(load_settings(config), tenant)
    assert report.unclassified == [] and report.name == "accounts-name-2-1"
    out = runner.invoke(
        app,
        ["export", tenant, "--format", "json,csv", "--out", str(tmp_path / "out"), "--json", "--config", str(config)],
    )
    assert out.exit_code == 0, out.stderr
    package = Path(json.loads(out.stdout)["path"])
    doc = json.loads((package / "data" / "json" / f"{tenant}.json").read_text(encoding="utf-8"))
    assert doc["people_table"] == "users" and len(doc["people"]) == 30
    assert all(p["id"] // 100_000 == 1 for p in doc["people"])  # no one of the other tenant
    nested = {key for person in doc["people"] for key in person if isinstance(person[key], list)}
    assert {"enrollments", "submissions", "quiz_submissions", "discussion_entries", "page_views"} <= nested
    header = (package / "data" / "csv" / "pseudonyms.csv").read_text(encoding="utf-8").splitlines()[0]
    assert "crypted_password" not in header and "persistence_token" not in header

    before = _rows_by_tenant(db)
    notice = ["notice", tenant, "--received", "2026-11-20", "--period-end", "2027-01-30", "--config", str(config)]
    assert runner.invoke(app, notice).exit_code == 0
    purge = runner.invoke(
        app, ["purge", tenant, "--yes", "--json", "--config", str(config)], env={"LEARNEXIT_NOW": "2027-06-01"}
    )
    assert purge.exit_code == 0, purge.stderr
    assert json.loads(purge.stdout)["customers"][0]["verified"] is True
    after = _rows_by_tenant(db)
    for name, rows in before.items():
        if name in GLOBAL:
            assert after[name] == rows, name
            continue
        assert not [k for k in after[name] if k // 100_000 == 1], name  # the tenant's rows: all gone
        assert after[name] == {k: v for k, v in rows.items() if k // 100_000 == 2}, name  # the other's: untouched


@pytest.mark.parametrize("declare_keys", [False, True], ids=["no-keys", "declared-keys"])
def test_canvas_sub_accounts_belong_to_their_root_account(declare_keys: bool, tmp_path: Path) -> None:
    from lms_schemas import build_canvas

    db = tmp_path / "canvas.db"
    build_canvas(f"sqlite:///{db}", declare_keys=declare_keys)
    text = CANVAS.read_text(encoding="utf-8")
    text = text.replace(tomllib.loads(text)["source"]["url"], "sqlite:///canvas.db")
    (tmp_path / "learnexit.toml").write_text(text, encoding="utf-8")
    report = inspect_customer(load_settings(tmp_path / "learnexit.toml"), "accounts-uuid-2-1")
    assert next(t.rows for t in report.tables if t.table == "accounts") == 4  # the root and its 3 sub-accounts
