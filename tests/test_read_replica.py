"""``[source] read_url`` (issue 21, item 3): the export reads a read replica, everything
that writes the source or decides what is deleted reads the primary.

- SQLite: the replica is another file, a copy of the example with a course renamed and a
  page view missing.  The package holds the copy's data; the purge's plan counts the
  primary's rows, the purge deletes from the primary, and the copy stays byte-identical.
- The replica must hold the customer row the key names on the primary (refused, 3).
- A replica that is not there stops the export only: notice, inspect, status, confirm
  and purge never open it.
- Config: the same rules as ``url``; a password is never printed.
- PostgreSQL: the package, the result and the ledger say where the snapshot was read and
  whether the server was in recovery (here: two ordinary databases, so "not in recovery").
"""

from __future__ import annotations

import ast
import contextlib
import csv
import dataclasses
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from learnexit.cli.app import app
from learnexit.config import load_settings, mask_url
from learnexit.demo import build_shared_schema, populate_shared
from learnexit.errors import ConfigError
from learnexit.export.run import run_export
from learnexit.source import ReadPoint

runner = CliRunner()

NOW = "2026-11-29T09:00:00"
DUE = "2027-02-01T09:00:00"  # notice received 2026-11-29, window waived: due 2027-01-31
PRIMARY_TITLE = "Välkommen till Acme – introduktion"
REPLICA_TITLE = "Only on the replica"
PRIMARY_URL_LINE = 'url = "sqlite:///lms.db"\n'


def cli(config: Path, *args: str, now: str = NOW, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, [*args, "--config", str(config)], env={"LEARNEXIT_NOW": now, **(env or {})})


def output(result: Any) -> str:
    return (result.stdout or "") + (result.stderr or "")


def with_read_url(config: Path, line: str) -> Path:
    """``config`` with ``line`` (a ``read_url = …`` line) after ``[source] url``."""
    text = config.read_text(encoding="utf-8")
    assert PRIMARY_URL_LINE in text
    config.write_text(text.replace(PRIMARY_URL_LINE, PRIMARY_URL_LINE + line + "\n", 1), encoding="utf-8")
    return config


def change(db: Path, *statements: str) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        for statement in statements:
            conn.execute(statement)


def one(db: Path, query: str) -> Any:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(query).fetchone()[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def audit_details(site: Path, event: str) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(site / "learnexit-state.db")) as conn:
        return [
            json.loads(d) for (d,) in conn.execute("SELECT details FROM audit WHERE event = ? ORDER BY id", (event,))
        ]


def csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


ACME_PAGE_VIEWS = "SELECT COUNT(*) FROM page_views WHERE organisation_id = 1"


@pytest.fixture
def replica_site(example_site: Path) -> Path:
    """The example with ``read_url`` naming ``replica.db``: a copy of ``lms.db`` in which
    acme's course 2 has another title and one of acme's page views is missing."""
    shutil.copyfile(example_site / "lms.db", example_site / "replica.db")
    lowest = one(example_site / "lms.db", "SELECT MIN(id) FROM page_views WHERE organisation_id = 1")
    change(
        example_site / "replica.db",
        f"UPDATE courses SET title = '{REPLICA_TITLE}' WHERE id = 2",
        f"DELETE FROM page_views WHERE id = {lowest}",
    )
    assert one(example_site / "lms.db", "SELECT title FROM courses WHERE id = 2") == PRIMARY_TITLE
    return with_read_url(example_site / "learnexit.toml", 'read_url = "sqlite:///replica.db"')


# --------------------------------------------------------------------------- SQLite


def test_the_export_reads_the_replica_and_the_purge_deletes_from_the_primary(replica_site: Path) -> None:
    site = replica_site.parent
    primary, replica = site / "lms.db", site / "replica.db"
    assert (one(primary, ACME_PAGE_VIEWS), one(replica, ACME_PAGE_VIEWS)) == (300, 299)
    assert cli(replica_site, "notice", "acme", "--received", "2026-11-29").exit_code == 0

    exported = cli(replica_site, "export", "acme", "-f", "csv,json", "--out", str(site / "out"), "--json")
    assert exported.exit_code == 0, output(exported)
    result = json.loads(exported.stdout)
    read = {"reads": "replica", "url": f"sqlite:///{replica}", "database": "sqlite"}  # (nothing more to say)
    assert result["read"] == read
    assert result["tables"]["page_views"] == 299  # the replica's rows
    package = Path(result["path"])
    assert csv_rows(package / "data" / "csv" / "courses.csv")["2"]["title"] == REPLICA_TITLE
    courses = json.loads((package / "data" / "json" / "courses.json").read_text(encoding="utf-8"))
    assert REPLICA_TITLE in json.dumps(courses, ensure_ascii=False)
    assert PRIMARY_TITLE not in json.dumps(courses, ensure_ascii=False)
    assert "Learnexit-Read-From: replica" in (package / "bag-info.txt").read_text(encoding="utf-8").splitlines()
    assert "<th>Read from</th><td>a read replica of the LMS database</td>" in (
        package / "data" / "index.html"
    ).read_text(encoding="utf-8")
    assert [d["read"] for d in audit_details(site, "export_completed")] == [read]
    with contextlib.closing(sqlite3.connect(site / "learnexit-state.db")) as conn:
        assert conn.execute("SELECT row_pk FROM identities WHERE customer = 'acme'").fetchall() == [('["1"]',)]
    text = cli(replica_site, "export", "acme", "-f", "csv", "--out", str(site / "again"))
    assert text.exit_code == 0 and f"Read from: sqlite:///{replica} (replica)" in text.stdout

    before = digest(replica)
    confirmed = cli(
        replica_site, "confirm", "acme", "--by", "Eva Ek", "--waive-window", "--package", str(result["export_id"])
    )
    assert confirmed.exit_code == 0, output(confirmed)
    plan = cli(replica_site, "purge", "acme", "--dry-run", "--json", now=DUE)
    assert plan.exit_code == 0, output(plan)
    assert json.loads(plan.stdout)["customers"][0]["deleted"]["page_views"] == 300  # the primary's rows
    purged = cli(replica_site, "purge", "acme", "--yes", now=DUE)
    assert purged.exit_code == 0, output(purged)
    assert one(primary, ACME_PAGE_VIEWS) == 0
    assert one(primary, "SELECT COUNT(*) FROM courses WHERE organisation_id = 1") == 0
    assert digest(replica) == before  # the purge never touched the replica
    assert one(replica, ACME_PAGE_VIEWS) == 299 and sorted(p.name for p in site.glob("replica.db*")) == ["replica.db"]


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE organisations SET id = 99 WHERE slug = 'acme'",  # another row has the key
        "DELETE FROM organisations WHERE slug = 'acme'",  # not replayed yet
    ],
)
def test_a_replica_without_the_primarys_customer_row_is_refused(example_site: Path, damage: str) -> None:
    shutil.copyfile(example_site / "lms.db", example_site / "replica.db")
    change(example_site / "replica.db", "PRAGMA foreign_keys = OFF", damage)
    config = with_read_url(example_site / "learnexit.toml", 'read_url = "sqlite:///replica.db"')
    assert cli(config, "notice", "acme", "--received", "2026-11-29").exit_code == 0
    refused = cli(config, "export", "acme", "-f", "csv", "--out", str(example_site / "out"))
    assert refused.exit_code == 3, output(refused)
    assert refused.stderr.strip() == (
        "learnexit: error: the read replica ([source] read_url) does not hold the organisations row (id 1) "
        "customer key 'acme' names on the primary: the replica is behind or not a copy of the primary; "
        "nothing was done"
    )
    assert not (example_site / "out").exists()
    assert audit_details(example_site, "export_started") == []


def test_the_case_pin_is_checked_on_the_primary_before_the_replica(example_site: Path) -> None:
    """A case pinned to row 1: the primary's key now names row 99 (and so does the
    replica): refused as without a replica, naming the case's row."""
    config = example_site / "learnexit.toml"
    assert cli(config, "notice", "acme", "--received", "2026-11-29").exit_code == 0
    change(example_site / "lms.db", "PRAGMA foreign_keys = OFF", "UPDATE organisations SET id = 99 WHERE slug = 'acme'")
    shutil.copyfile(example_site / "lms.db", example_site / "replica.db")
    with_read_url(config, 'read_url = "sqlite:///replica.db"')
    refused = cli(config, "export", "acme", "-f", "csv", "--out", str(example_site / "out"))
    assert refused.exit_code == 3, output(refused)
    assert refused.stderr.strip() == (
        "learnexit: error: customer key 'acme' now names another organisations row (id 99) than the one "
        "this offboarding case was opened for (id 1); nothing was done"
    )


def test_nothing_but_the_export_opens_the_replica(example_site: Path) -> None:
    config = with_read_url(example_site / "learnexit.toml", 'read_url = "sqlite:///gone/replica.db"')
    missing = example_site / "gone" / "replica.db"
    exported = cli(config, "export", "acme", "-f", "csv", "--out", str(example_site / "out"))
    assert exported.exit_code == 2, output(exported)
    assert exported.stderr.strip() == (
        f"learnexit: error: {config}: [source] read_url: the SQLite database {missing} does not exist"
    )
    for args, now in [
        (("notice", "acme", "--received", "2026-11-29"), NOW),
        (("inspect", "acme"), NOW),
        (("status", "acme"), NOW),
        (("status", "--check"), NOW),
        (("confirm", "acme", "--by", "Eva Ek", "--waive-window", "--without-export", "--reason", "own copy"), NOW),
        (("purge", "acme", "--dry-run"), DUE),
        (("purge", "acme", "--yes"), DUE),
    ]:
        result = cli(config, *args, now=now)
        assert result.exit_code in (0, 5), (args, output(result))  # (5: status --check wants a human)
        assert "read_url" not in output(result), args
    assert one(example_site / "lms.db", ACME_PAGE_VIEWS) == 0
    assert not missing.parent.exists()


def test_only_the_export_asks_for_the_replica() -> None:
    """Where the code names the replica at all: the export's one request, the Source that
    honours it, the config that holds it (read with ``ast``: nothing imported)."""
    package = Path(__file__).resolve().parents[1] / "learnexit"
    asking, naming = set(), set()
    for path in package.rglob("*.py"):
        rel = path.relative_to(package).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "reads" and isinstance(node.value, ast.Constant):
                if node.value.value == "replica":
                    asking.add(rel)
            if isinstance(node, ast.Attribute) and node.attr in ("source_read_url", "source_read_url_for"):
                naming.add(rel)
    assert asking == {"export/run.py"}
    assert naming == {"config.py", "source/reader.py"}


# --------------------------------------------------------------------------- config

PRIMARY_PG = "postgresql://learnexit:fake-primary-pw-3307@127.0.0.1:9/lms"
REPLICA_PG = "postgresql://learnexit:fake-replica-pw-8841@127.0.0.1:9/lms_replica"
PASSWORDS = ("fake-primary-pw-3307", "fake-replica-pw-8841")


def config_with(tmp_path: Path, source: str, tenancy: str = "shared") -> Path:
    config = tmp_path / "learnexit.toml"
    table = 'table = "organisations"\n' if tenancy == "shared" else ""
    config.write_text(f'[source]\n{source}\n[customer]\n{table}tenancy = "{tenancy}"\n', encoding="utf-8")
    return config


def test_read_url_is_resolved_like_url(tmp_path: Path) -> None:
    settings = load_settings(config_with(tmp_path, 'url = "sqlite:///lms.db"\nread_url = "sqlite:///copy/lms.db"'))
    assert settings.source_read_url == f"sqlite:///{tmp_path}/copy/lms.db"
    assert settings.source_read_url_for("acme") == f"sqlite:///{tmp_path}/copy/lms.db"
    plain = load_settings(config_with(tmp_path, 'url = "sqlite:///lms.db"'))
    assert plain.source_read_url is None and plain.source_read_url_for("acme") == f"sqlite:///{tmp_path}/lms.db"
    env = {"LEARNEXIT_SOURCE_READ_URL": "sqlite:///elsewhere.db"}  # (the environment wins over the file)
    overridden = load_settings(
        config_with(tmp_path, 'url = "sqlite:///lms.db"\nread_url = "sqlite:///copy.db"'), env=env
    )
    assert overridden.source_read_url == f"sqlite:///{tmp_path}/elsewhere.db"
    both = load_settings(
        config_with(tmp_path, f'url = "{PRIMARY_PG}_{{customer}}"\nread_url = "{REPLICA_PG}_{{customer}}"', "database")
    )
    assert both.source_read_url_for("acme") == REPLICA_PG.replace("postgresql:", "postgresql+psycopg:") + "_acme"
    with pytest.raises(ConfigError, match=r"\[source\] read_url contains \{customer\}; name a customer"):
        both.source_read_url_for(None)
    # the URL comes from the environment, the replica too: accepted
    env = {"LEARNEXIT_SOURCE_URL": "sqlite:///other.db", "LEARNEXIT_SOURCE_READ_URL": "sqlite:///other-copy.db"}
    moved = load_settings(config_with(tmp_path, 'url = "sqlite:///lms.db"\nread_url = "sqlite:///copy.db"'), env=env)
    assert moved.source_read_url == f"sqlite:///{tmp_path}/other-copy.db"


@pytest.mark.parametrize(
    ("source", "tenancy", "env", "problem"),
    [
        (f'url = "{PRIMARY_PG}"\nread_url = ""', "shared", {}, "[source] read_url: must not be empty"),
        (f'url = "{PRIMARY_PG}"\nread_url = 5', "shared", {}, "[source] read_url: must be a string, not int 5"),
        (
            f'url = "{PRIMARY_PG}"\nread_url = "{REPLICA_PG.replace("127.0.0.1:9", "db:port")}"', "shared", {},
            "[source] read_url: not a database URL: 'postgresql+psycopg://learnexit:***@db:port/lms_replica'",
        ),
        (
            f'url = "sqlite:///lms.db"\nread_url = "{REPLICA_PG}"', "shared", {},
            "[source] read_url: names a postgresql database, url a sqlite one: a replica is the same kind",
        ),
        (
            f'url = "{PRIMARY_PG}"\nread_url = "{PRIMARY_PG}"', "shared", {},
            "[source] read_url: is the same database as url (leave read_url out to read the primary)",
        ),
        (
            f'url = "{PRIMARY_PG}"\nread_url = "{REPLICA_PG}_{{customer}}"', "shared", {},
            '[source] read_url: {customer} in the URL needs tenancy = "database"',
        ),
        (
            f'url = "{PRIMARY_PG}_{{customer}}"\nread_url = "{REPLICA_PG}"', "database", {},
            '[source] read_url: tenancy = "database" needs {customer} in the URL',
        ),
        (
            f'url = "{PRIMARY_PG}"\nread_url = "{REPLICA_PG}"', "shared",
            {"LEARNEXIT_SOURCE_URL": PRIMARY_PG.replace("/lms", "/other")},
            "[source] read_url: url comes from LEARNEXIT_SOURCE_URL or the command line: "
            "set LEARNEXIT_SOURCE_READ_URL too",
        ),
        (
            f'url = "{PRIMARY_PG}"', "shared", {"LEARNEXIT_SOURCE_READ_URL": REPLICA_PG + "\n"},
            "[source] read_url: the URL contains a control character",
        ),
    ],
)  # fmt: skip
def test_a_bad_read_url_is_one_line_naming_the_key_and_no_password(
    tmp_path: Path, source: str, tenancy: str, env: dict[str, str], problem: str
) -> None:
    config = config_with(tmp_path, source, tenancy)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env=env)
    assert caught.value.message == f"{config}: {problem}"
    result = cli(config, "export", "acme", env=env)
    assert result.exit_code == 2
    assert result.stderr == f"learnexit: error: {config}: {problem}\n"
    assert not any(pw in output(result) for pw in PASSWORDS)


def test_an_unreachable_replica_fails_the_export_without_its_password(tmp_path: Path) -> None:
    config = config_with(tmp_path, f'url = "{PRIMARY_PG}"\nread_url = "{REPLICA_PG}"')
    exported = cli(config, "export", "acme", "-f", "csv", "--out", str(tmp_path / "out"))
    assert exported.exit_code == 1, output(exported)
    masked = "postgresql+psycopg://learnexit:***@127.0.0.1:9/lms_replica"
    assert exported.stderr.startswith(f"learnexit: error: cannot read source {masked}: ")
    inspected = cli(config, "inspect", "acme")  # the primary: away too, and masked too
    assert inspected.exit_code == 1, output(inspected)
    assert "learnexit:***@127.0.0.1:9/lms:" in inspected.stderr and "lms_replica" not in inspected.stderr
    assert not any(pw in output(exported) + output(inspected) for pw in PASSWORDS)


def test_a_read_point_says_where_and_when() -> None:
    standby = ReadPoint("replica", "postgresql+psycopg://le:***@replica/lms", "postgresql", True, "0/3000148", 300.0)
    assert standby.tag() == "replica, PostgreSQL in recovery, WAL replay position 0/3000148"
    assert not standby.lagging and dataclasses.replace(standby, lag_seconds=300.5).lagging
    assert ReadPoint("primary", "mysql+pymysql://le@db/lms", "mysql", read_only=False).tag() == "primary, read_only off"
    assert ReadPoint("primary", "sqlite:///lms.db", "sqlite").tag() == "primary"


# --------------------------------------------------------------------------- PostgreSQL


def example_on_postgresql(db_factory: Any, name: str) -> str:
    url = str(db_factory("postgresql").new(name))
    engine = sa.create_engine(url)
    try:
        build_shared_schema(engine)
        populate_shared(engine, media_root=None, activity_rows=300)
    finally:
        engine.dispose()
    return url


def test_postgresql_records_what_it_read_and_that_it_was_not_in_recovery(
    example_site: Path, db_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    primary = example_on_postgresql(db_factory, "rr_primary")
    replica = example_on_postgresql(db_factory, "rr_replica")
    engine = sa.create_engine(replica)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE courses SET title = '{REPLICA_TITLE}' WHERE id = 2")
            assert conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar() is False  # this machine's truth
    finally:
        engine.dispose()
    config = example_site / "learnexit.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(PRIMARY_URL_LINE, f'url = "{primary}"\nread_url = "{replica}"\n', 1),
        encoding="utf-8",
    )
    monkeypatch.setenv("LEARNEXIT_NOW", NOW)
    monkeypatch.setenv("LEARNEXIT_EXPORT_WORKERS", "2")  # the workers import the replica's snapshot
    settings = load_settings(config)
    result = run_export(settings, "acme", formats=("csv", "json"), out=example_site / "out")
    assert result.read == ReadPoint("replica", mask_url(replica), "postgresql", in_recovery=False)
    info = (result.path / "bag-info.txt").read_text(encoding="utf-8").splitlines()
    assert "Learnexit-Read-From: replica, PostgreSQL not in recovery" in info
    assert csv_rows(result.path / "data" / "csv" / "courses.csv")["2"]["title"] == REPLICA_TITLE
    assert REPLICA_TITLE in (result.path / "data" / "json" / "courses.json").read_text(encoding="utf-8")
    assert [d["read"] for d in audit_details(example_site, "export_completed")] == [result.read.as_dict()]

    plain = run_export(
        dataclasses.replace(settings, source_read_url=None), "acme", formats=("csv",), out=example_site / "plain"
    )
    assert plain.read == ReadPoint("primary", mask_url(primary), "postgresql", in_recovery=False)
    info = (plain.path / "bag-info.txt").read_text(encoding="utf-8").splitlines()
    assert "Learnexit-Read-From: primary, PostgreSQL not in recovery" in info
    assert csv_rows(plain.path / "data" / "csv" / "courses.csv")["2"]["title"] == PRIMARY_TITLE
