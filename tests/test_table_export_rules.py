"""Config that real schemas need: columns and tables that are purged but never exported,
per-customer media roots, a customer's display name under database tenancy, and the
FILL IN placeholder of a drafted config.

On the example LMS: ``[tables.logins] omit_columns = ["password_hash"]`` and
``[tables.page_views] export = false``.  The package must hold neither the column (in
any format: CSV, Excel, JSON, XML, SQL dump, datapackage.json) nor the table, nor a
single hash value; the purge still deletes every row of both.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from learnexit.cli import app
from learnexit.config import load_settings
from learnexit.errors import ConfigError
from learnexit.export.run import run_export
from learnexit.ledger.store import Ledger
from learnexit.offboarding.clock import parse_now
from learnexit.offboarding.notice import record_notice
from learnexit.source import Source
from learnexit.source.inspection import inspect_customer

runner = CliRunner()
DUE_NOW = "2027-06-01"
LOGIN_COLUMNS = ["id", "organisation_id", "user_id", "unique_id", "workflow_state", "last_login_at"]


def with_rules(template: Path, root: Path, extra: str = "") -> Path:
    shutil.copytree(template, root)
    config = root / "learnexit.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace(
        '[tables.page_views]\ncategory = "reports"',
        '[tables.page_views]\ncategory = "reports"\nexport = false\n[tables.logins]\nomit_columns = ["password_hash"]',
    )
    config.write_text(text + extra, encoding="utf-8")
    return config


@pytest.fixture(scope="module")
def exported(example_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("rules") / "ex"
    config = with_rules(example_template, root)
    settings = load_settings(config)
    result = run_export(settings, "acme", formats=["csv", "xlsx", "json", "xml", "sql"], out=root / "out")
    return config, Path(result.path)


def test_csv_header_and_datapackage_leave_the_column_out(exported: tuple[Path, Path]) -> None:
    _, package = exported
    header = (package / "data" / "csv" / "logins.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.lstrip("\ufeff").split(",") == LOGIN_COLUMNS
    resources = json.loads((package / "data" / "datapackage.json").read_text(encoding="utf-8"))["resources"]
    logins = next(r for r in resources if r["name"] == "logins")
    assert [f["name"] for f in logins["schema"]["fields"]] == LOGIN_COLUMNS
    assert not any("page_views" in r["name"] for r in resources)


def test_sql_dump_has_the_table_without_the_column_and_loads(exported: tuple[Path, Path], tmp_path: Path) -> None:
    _, package = exported
    dump = (package / "data" / "sql" / "acme.sql").read_text(encoding="utf-8")
    assert "page_views" not in dump
    db = sqlite3.connect(tmp_path / "loaded.db")
    db.executescript(dump)
    assert [r[1] for r in db.execute("PRAGMA table_info(logins)")] == LOGIN_COLUMNS
    assert db.execute("SELECT count(*) FROM logins").fetchone()[0] == 59
    db.close()


def test_no_format_holds_the_column_the_table_or_a_hash(exported: tuple[Path, Path], example_template: Path) -> None:
    _, package = exported
    source = sqlite3.connect(example_template / "lms.db")
    hashes = [r[0] for r in source.execute("SELECT password_hash FROM logins")]
    source.close()
    assert hashes
    texts: list[tuple[str, str]] = []
    for path in sorted((package / "data").rglob("*")):
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as z:
                texts += [(f"{path.name}:{n}", z.read(n).decode("utf-8", "replace")) for n in z.namelist()]
        elif path.is_file():
            texts.append((path.name, path.read_bytes().decode("utf-8", "replace")))
    assert {name for name, _ in texts} >= {"logins.csv", "logins.json", "acme.json", "acme.xml", "acme.sql"}
    for name, text in texts:
        assert "password_hash" not in text, name
        assert "page_views" not in text, name
        assert not any(h in text for h in hashes), name


def test_the_purge_still_deletes_both_tables(example_template: Path, tmp_path: Path) -> None:
    config = with_rules(example_template, tmp_path / "ex")
    settings = load_settings(config)
    db = tmp_path / "ex" / "lms.db"

    def acme_rows(table: str) -> int:
        con = sqlite3.connect(db)
        try:
            return int(
                con.execute(
                    f"SELECT count(*) FROM {table} WHERE organisation_id = (SELECT id FROM organisations WHERE slug='acme')"
                ).fetchone()[0]
            )
        finally:
            con.close()

    before_other = sqlite3.connect(db).execute("SELECT count(*) FROM logins").fetchone()[0] - acme_rows("logins")
    assert acme_rows("logins") == 59 and acme_rows("page_views") > 0
    with Ledger(settings.state_url) as ledger:
        record_notice(settings, ledger, "acme", parse_now("2026-11-20").date())
    result = runner.invoke(
        app, ["purge", "acme", "--yes", "--json", "--config", str(config)], env={"LEARNEXIT_NOW": DUE_NOW}
    )
    assert result.exit_code == 0, result.stderr
    deleted = json.loads(result.stdout)["customers"][0]["deleted"]
    assert deleted["logins"] == 59 and deleted["page_views"] > 0
    assert acme_rows("logins") == 0 and acme_rows("page_views") == 0
    assert sqlite3.connect(db).execute("SELECT count(*) FROM logins").fetchone()[0] == before_other


def test_omitting_a_key_or_a_missing_column_is_a_config_error(example_template: Path, tmp_path: Path) -> None:
    for n, (column, problem) in enumerate([("id", "primary key"), ("nope", "does not exist")]):
        root = tmp_path / f"ex{n}"
        config = with_rules(example_template, root)
        config.write_text(
            config.read_text(encoding="utf-8").replace(
                'omit_columns = ["password_hash"]', f'omit_columns = ["{column}"]'
            ),
            encoding="utf-8",
        )
        with pytest.raises(ConfigError, match=problem):
            inspect_customer(load_settings(config), "acme")


def test_fill_in_legal_basis_refuses_to_load(example_template: Path, tmp_path: Path) -> None:
    config = with_rules(example_template, tmp_path / "ex")
    text = config.read_text(encoding="utf-8")
    config.write_text(re.sub(r'legal_basis = ".*"', 'legal_basis = "FILL IN"', text), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[tables.invoices\] legal_basis: still says FILL IN"):
        load_settings(config)
    result = runner.invoke(app, ["inspect", "acme", "--config", str(config)])
    assert result.exit_code == 2
    assert "FILL IN" in result.stderr


def _legacy(example_template: Path, root: Path, customer_section: str, media_root: str = ".") -> Path:
    shutil.copytree(example_template / "legacy", root)
    config = root / "learnexit.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('tenancy = "database"', 'tenancy = "database"\n' + customer_section)
    text = text.replace('root = "."', f'root = "{media_root}"')
    config.write_text(text, encoding="utf-8")
    return config


def test_database_tenancy_name_literal_and_query(example_template: Path, tmp_path: Path) -> None:
    config = _legacy(example_template, tmp_path / "a", 'name = "Acme Learning AB"')
    assert inspect_customer(load_settings(config), "acme").name == "Acme Learning AB"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a' / 'acme.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO mdl_config (name, value) VALUES ('sitename', 'Acme  Academy')")
    engine.dispose()
    query = "name_query = \"SELECT value FROM mdl_config WHERE name = 'sitename'\""
    config = _legacy(example_template, tmp_path / "b", query)
    shutil.copy(tmp_path / "a" / "acme.db", tmp_path / "b" / "acme.db")
    settings = load_settings(config)
    with Source(settings, "acme") as src:
        assert src.customer_name() == "Acme Academy"
    with Source(settings, "globex") as src:  # no sitename row: the key, never an empty name
        assert src.customer_name() == "globex"
    missing = _legacy(example_template, tmp_path / "d", 'name_query = "SELECT name FROM no_such_table"')
    with pytest.raises(ConfigError, match=r"\[customer\] name_query failed: no such table: no_such_table"):
        inspect_customer(load_settings(missing), "acme")
    bad = _legacy(example_template, tmp_path / "c", 'name_query = "DELETE FROM mdl_user"')
    with pytest.raises(ConfigError, match="name_query: must be a SELECT"):
        load_settings(bad)


def test_media_root_per_customer(example_template: Path, tmp_path: Path) -> None:
    root = tmp_path / "ex"
    config = _legacy(example_template, root, "", media_root="files/{customer}")
    (root / "files" / "acme").mkdir(parents=True)
    shutil.move(str(root / "filedir"), str(root / "files" / "acme" / "filedir"))
    settings = load_settings(config)
    assert settings.media is not None and "{customer}" in settings.media.root
    assert settings.for_customer("acme").media.root == str((root / "files" / "acme").resolve())  # type: ignore[union-attr]
    result = run_export(settings, "acme", formats=["media"], out=root / "out")
    copied = [p for p in (Path(result.path) / "data" / "media").rglob("*") if p.is_file()]
    assert copied and not any("missing" in n for n in result.notes)
    with pytest.raises(ConfigError, match="cannot name a folder"):
        settings.for_customer("../etc")


def test_media_root_placeholders_other_than_customer_are_refused(example_template: Path, tmp_path: Path) -> None:
    config = _legacy(example_template, tmp_path / "ex", "", media_root="files/{site}")
    with pytest.raises(ConfigError, match=r"\[media\] root: the only placeholder allowed is \{customer\}"):
        load_settings(config)


def test_a_role_cannot_export_what_omit_columns_or_export_false_leave_out(
    example_template: Path, tmp_path: Path
) -> None:
    config = with_rules(example_template, tmp_path / "a", "\n[tables.quiz_attempts]\nexport = false\n")
    with pytest.raises(ConfigError, match=r"\[roles.quiz_results\] table: quiz_attempts has export = false"):
        load_settings(config)
    text = (example_template / "learnexit.toml").read_text(encoding="utf-8")
    config = with_rules(example_template, tmp_path / "b")
    config.write_text(
        text.replace('category = "users"', 'category = "users"\nomit_columns = ["email"]'), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"\[roles.people\] email: users.email is in omit_columns"):
        load_settings(config)


def test_inspect_shows_what_is_not_exported(example_template: Path, tmp_path: Path) -> None:
    config = with_rules(example_template, tmp_path / "ex")
    result = runner.invoke(app, ["inspect", "acme", "--config", str(config)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("page_views" in line and "purged, not exported" in line for line in lines)
    assert any("logins" in line and "not exported: password_hash" in line for line in lines)
