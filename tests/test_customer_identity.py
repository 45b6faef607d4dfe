"""Issue 16, rule 1: a customer is one row, found by its exact key; nothing reaches it
under another spelling, and a row that replaces it is somebody else.

- On MariaDB with a case- and accent-insensitive key column (``utf8mb4_general_ci``),
  ``ACME``, ``acme `` and ``Ácme`` are refused (exit 2, "did you mean 'acme'?") and change
  nothing; a hold on ``acme`` cannot be bypassed by another spelling.
- Integer keys work for every command on SQLite, PostgreSQL and MariaDB; ``01``, ``1.0``,
  `` 1`` and ``+1`` are refused (exit 2, "did you mean '1'?").
- The first record pins the row: a different row taking the key is refused (exit 3); after
  a finished purge a new row with the key is a new customer with its own offboarding.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from learnexit.cli.app import app
from learnexit.demo import build_shared_schema, populate_shared

runner = CliRunner()

NOTICE_NOW = "2026-01-15"
DUE_NOW = "2026-07-01"  # period end 2026-03-31: the purge is due on 2026-06-30
LATER_NOTICE_NOW = "2026-08-01"
LATER_DUE_NOW = "2027-02-01"  # period end 2026-09-30: due 2026-12-29


def cli(config: Path, *args: str, now: str = NOTICE_NOW) -> Any:
    return runner.invoke(app, [*args, "--config", str(config)], env={"LEARNEXIT_NOW": now})


def output(result: Any) -> str:
    return (result.stdout or "") + (result.stderr or "")


def rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (plain SELECT *), sorted."""
    engine = sa.create_engine(url)
    try:
        md = sa.MetaData()
        md.reflect(engine)
        with engine.connect() as conn:
            return {
                name: sorted((tuple(r) for r in conn.execute(sa.select(t))), key=repr) for name, t in md.tables.items()
            }
    finally:
        engine.dispose()


def sql(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def notice(config: Path, customer: str, *, later: bool = False) -> Any:
    if later:
        return cli(
            config, "notice", customer, "--received", "2026-08-01", "--period-end", "2026-09-30", now=LATER_NOTICE_NOW
        )
    return cli(config, "notice", customer, "--received", "2026-01-10", "--period-end", "2026-03-31")


def refusals(config: Path, spelling: str, out: Path) -> dict[str, Any]:
    """Every command that names a customer, with ``spelling``."""
    return {
        "notice": cli(config, "notice", spelling, "--received", "2026-01-10", "--period-end", "2026-03-31"),
        "export": cli(config, "export", spelling, "--format", "csv", "--out", str(out)),
        "hold": cli(config, "hold", spelling, "--reason", "litigation"),
        "release": cli(config, "release", spelling),
        "status": cli(config, "status", spelling),
        "inspect": cli(config, "inspect", spelling),
        "confirm": cli(config, "confirm", spelling, "--by", "Jane Doe", "--without-export", "--reason", "r"),
        "purge": cli(config, "purge", spelling, "--yes", now=DUE_NOW),
        "purge --force": cli(config, "purge", spelling, "--force", "--reason", "asked", "--yes"),
    }


def assert_refused(config: Path, url: str, spelling: str, right: str, out: Path) -> None:
    before = rows(url)
    for command, result in refusals(config, spelling, out).items():
        assert result.exit_code == 2, (command, spelling, output(result))
        assert f"did you mean '{right}'?" in output(result), (command, spelling, output(result))
    assert rows(url) == before, spelling
    assert not out.exists() or not any(out.iterdir()), spelling


# --------------------------------------------------------------------------- MariaDB collation


@pytest.fixture
def folding(db_factory: Callable[[str], Any], tmp_path: Path, example_template: Path) -> tuple[Path, str]:
    """The example LMS on MariaDB, its slug column case- and accent-insensitive."""
    url = str(db_factory("mariadb").new("ci"))
    engine = sa.create_engine(url)
    build_shared_schema(engine)
    populate_shared(engine, media_root=tmp_path / "media")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "ALTER TABLE organisations MODIFY slug VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL"
        )
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM organisations WHERE slug = 'Ácme '").scalar() == 1
    engine.dispose()
    text = (example_template / "learnexit.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///lms.db"', f'url = "{url}"', 1)
    (tmp_path / "learnexit.toml").write_text(text, encoding="utf-8")
    return tmp_path / "learnexit.toml", url


def test_a_folded_spelling_is_refused_and_changes_nothing(folding: tuple[Path, str], tmp_path: Path) -> None:
    config, url = folding
    for spelling in ("ACME", "acme ", "Ácme"):
        assert_refused(config, url, spelling, "acme", tmp_path / "out")
    listing = cli(config, "status", "--json")
    assert listing.exit_code == 0, output(listing)
    assert "acme" not in listing.stdout.lower()  # nothing was recorded under any spelling


def test_a_hold_cannot_be_bypassed_by_another_spelling(folding: tuple[Path, str]) -> None:
    config, url = folding
    assert cli(config, "hold", "acme", "--reason", "litigation").exit_code == 0
    assert notice(config, "ACME").exit_code == 2
    assert notice(config, "acme").exit_code == 0
    assert cli(config, "confirm", "ACME", "--by", "Jane Doe", "--without-export", "--reason", "r").exit_code == 2
    confirmed = cli(config, "confirm", "acme", "--by", "Jane Doe", "--without-export", "--reason", "own copy")
    assert confirmed.exit_code == 0, output(confirmed)
    assert cli(config, "release", "ACME").exit_code == 2
    before = rows(url)
    forced = cli(config, "purge", "Ácme", "--force", "--reason", "asked", "--yes", now=DUE_NOW)
    assert forced.exit_code == 2, output(forced)
    due = cli(config, "purge", "--due", "--yes", "--json", now=DUE_NOW)
    assert due.exit_code in (0, 3), output(due)
    for done in json.loads(due.stdout or '{"customers": []}').get("customers", []):
        assert done.get("status") != "done", done
    held = cli(config, "purge", "acme", "--yes", now=DUE_NOW)
    assert held.exit_code == 3, output(held)
    # nothing deleted (the account closure, due since the confirmation, may have run: a
    # hold keeps the data, it does not keep the accounts open)
    assert {t: len(r) for t, r in rows(url).items()} == {t: len(r) for t, r in before.items()}
    status = cli(config, "status", "acme", "--json", now=DUE_NOW)
    assert status.exit_code == 0 and json.loads(status.stdout)["state"] != "purged"


# --------------------------------------------------------------------------- integer keys


def small_world(url: str) -> None:
    """Two organisations keyed by an integer column (``id`` or ``code``), with courses."""
    sql(
        url,
        "CREATE TABLE orgs (id INTEGER NOT NULL PRIMARY KEY, code INTEGER NOT NULL UNIQUE, "
        "slug VARCHAR(40) NOT NULL UNIQUE, name VARCHAR(40) NOT NULL)",
        "CREATE TABLE courses (id INTEGER NOT NULL PRIMARY KEY, org_id INTEGER NOT NULL, title VARCHAR(40) NOT NULL, "
        "FOREIGN KEY (org_id) REFERENCES orgs (id))",
        "CREATE TABLE enrolments (id INTEGER NOT NULL PRIMARY KEY, course_id INTEGER NOT NULL, "
        "person VARCHAR(40) NOT NULL, FOREIGN KEY (course_id) REFERENCES courses (id))",
        "INSERT INTO orgs (id, code, slug, name) VALUES (1, 1, 'acme', 'Acme'), (2, 2, 'globex', 'Globex')",
        "INSERT INTO courses (id, org_id, title) VALUES (10, 1, 'A1'), (11, 1, 'A2'), (20, 2, 'G1')",
        "INSERT INTO enrolments (id, course_id, person) VALUES (100, 10, 'Ann'), (101, 11, 'Bo'), (200, 20, 'Cy')",
    )


def small_config(folder: Path, url: str, key: str) -> Path:
    config = folder / "learnexit.toml"
    config.write_text(
        f'[source]\nurl = "{url}"\n[state]\nurl = "sqlite:///{folder / "state.db"}"\n'
        f'[customer]\ntable = "orgs"\nkey = "{key}"\nname_column = "name"\n',
        encoding="utf-8",
    )
    return config


@pytest.fixture
def keyed(dbs: Any, tmp_path: Path) -> Callable[[str], tuple[Path, str]]:
    def make(key: str) -> tuple[Path, str]:
        url = f"sqlite:///{tmp_path / 'src.db'}" if dbs.kind == "sqlite" else str(dbs.new("intkey"))
        small_world(url)
        return small_config(tmp_path, url, key), url

    return make


@pytest.mark.parametrize("key", ["id", "code"])
def test_an_integer_key_works_for_every_command(
    keyed: Callable[[str], tuple[Path, str]], tmp_path: Path, key: str
) -> None:
    config, url = keyed(key)
    for args in (
        ("inspect", "1"),
        ("status", "1"),
        ("export", "1", "--format", "csv", "--out", str(tmp_path / "out")),
        ("hold", "1", "--reason", "litigation"),
        ("release", "1"),
    ):
        result = cli(config, *args)
        assert result.exit_code == 0, (args, output(result))
    assert notice(config, "1").exit_code == 0
    (package,) = (tmp_path / "out").iterdir()
    assert (package / "data" / "csv" / "courses.csv").read_text(encoding="utf-8").count("\n") == 3  # header + 2
    done = cli(config, "purge", "1", "--yes", "--json", now=DUE_NOW)
    assert done.exit_code == 0, output(done)
    left = rows(url)
    assert [r[0] for r in left["orgs"]] == [2] and [r[0] for r in left["courses"]] == [20]
    assert [r[0] for r in left["enrolments"]] == [200]


def test_an_integer_key_spelt_otherwise_is_refused(keyed: Callable[[str], tuple[Path, str]], tmp_path: Path) -> None:
    config, url = keyed("id")
    for spelling in ("01", "1.0", " 1", "+1"):
        assert_refused(config, url, spelling, "1", tmp_path / "out")


def test_a_hold_on_an_integer_key_cannot_be_bypassed(keyed: Callable[[str], tuple[Path, str]]) -> None:
    config, url = keyed("code")
    assert cli(config, "hold", "1", "--reason", "litigation").exit_code == 0
    assert notice(config, "1").exit_code == 0
    before = rows(url)
    for spelling in ("01", "+1"):
        assert notice(config, spelling).exit_code == 2, spelling
        forced = cli(config, "purge", spelling, "--force", "--reason", "asked", "--yes", now=DUE_NOW)
        assert forced.exit_code == 2, output(forced)
    due = cli(config, "purge", "--due", "--yes", "--json", now=DUE_NOW)
    assert due.exit_code in (0, 3), output(due)
    assert rows(url) == before


# --------------------------------------------------------------------------- the pinned row


@pytest.fixture
def lite(tmp_path: Path) -> tuple[Path, str]:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    small_world(url)
    return small_config(tmp_path, url, "slug"), url


def test_a_row_replacing_the_noticed_one_is_refused(lite: tuple[Path, str], tmp_path: Path) -> None:
    """The notice pins acme's row; a different row taking the key later is not acme:
    nothing that reads or changes the source acts on it (a hold, which only blocks, may
    still be placed on the case)."""
    config, url = lite
    assert notice(config, "acme").exit_code == 0
    sql(
        url,
        "UPDATE orgs SET slug = 'acme-old', code = 91 WHERE id = 1",
        "INSERT INTO orgs (id, code, slug, name) VALUES (7, 7, 'acme', 'Not Acme')",
        "INSERT INTO courses (id, org_id, title) VALUES (70, 7, 'N1')",
    )
    before = rows(url)
    for args, now in (
        (("export", "acme", "--format", "csv", "--out", str(tmp_path / "out")), NOTICE_NOW),
        (("confirm", "acme", "--by", "Jane Doe", "--without-export", "--reason", "r"), NOTICE_NOW),
        (("purge", "acme", "--yes"), DUE_NOW),
        (("purge", "acme", "--dry-run"), DUE_NOW),
    ):
        result = cli(config, *args, now=now)
        assert result.exit_code == 3, (args, output(result))
    due = cli(config, "purge", "--due", "--yes", "--json", now=DUE_NOW)
    assert due.exit_code in (0, 1, 3), output(due)
    assert rows(url) == before
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_after_a_finished_purge_the_key_is_a_new_customer(lite: tuple[Path, str]) -> None:
    config, url = lite
    assert notice(config, "acme").exit_code == 0
    assert cli(config, "purge", "acme", "--yes", now=DUE_NOW).exit_code == 0
    listing = cli(config, "status", "--json", now=DUE_NOW)
    assert [c["state"] for c in json.loads(listing.stdout)["customers"]] == ["purged"], output(listing)

    sql(
        url,
        "INSERT INTO orgs (id, code, slug, name) VALUES (8, 8, 'acme', 'Acme Again')",
        "INSERT INTO courses (id, org_id, title) VALUES (80, 8, 'N1')",
        "INSERT INTO enrolments (id, course_id, person) VALUES (800, 80, 'Dee')",
    )
    status = cli(config, "status", "acme", "--json", now=LATER_NOTICE_NOW)
    assert status.exit_code == 0, output(status)
    assert json.loads(status.stdout)["state"] == "none", status.stdout  # a new case, nothing recorded yet
    again = notice(config, "acme", later=True)
    assert again.exit_code == 0, output(again)
    before = rows(url)
    # the old case's purge is finished: cron does nothing to the newcomer before its own due date
    early = cli(config, "purge", "--due", "--yes", "--json", now=LATER_NOTICE_NOW)
    assert early.exit_code == 0, output(early)
    assert rows(url) == before
    done = cli(config, "purge", "acme", "--yes", "--json", now=LATER_DUE_NOW)
    assert done.exit_code == 0, output(done)
    left = rows(url)
    assert [r[0] for r in left["orgs"]] == [2] and [r[0] for r in left["courses"]] == [20]
    assert [r[0] for r in left["enrolments"]] == [200]
