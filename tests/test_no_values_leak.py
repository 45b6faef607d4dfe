"""No value from the source enters an error message, a log line, a ledger row or an
audit entry: they name table, column and row key instead.

* Text that is not valid UTF-8 (a Latin-1 name in SQLite) is exported with U+FFFD and a
  note naming table, column and row key — the same bytes with and without the C
  speedups — instead of failing the export with the value in ``exports.error`` and in
  the hash-chained audit entry, where no purge could remove it.
* After notice, export, confirm and purge of acme on the example LMS, no text value acme
  had (every text value of its rows, 4 characters or longer) is in any ledger table
  (audit details included) or in the commands' logs, text or JSON.
* Driver errors that quote values (PostgreSQL's key details and input syntax errors,
  MySQL's duplicate entries and incorrect strings, SQLite's undecodable text) are
  described without them.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_purge import Lms, make_lms, oracle, snapshot
from typer.testing import CliRunner

import learnexit
from learnexit.cli import app
from learnexit.source import describe_db_error

runner = CliRunner()
LATIN1_NAME = "Jörgen Brännström".encode("latin-1")  # stored as TEXT without decoding


def cli(lms: Lms, now: str, *args: str, log_format: str = "text") -> Any:
    return runner.invoke(
        app,
        ["--log-format", log_format, "--log-level", "debug", *args, "--config", str(lms.config)],
        env={"LEARNEXIT_NOW": now},
        catch_exceptions=False,
    )


def acme_user(lms: Lms) -> int:
    with sa.create_engine(lms.url).connect() as conn:
        return int(
            conn.exec_driver_sql(
                "SELECT min(m.user_id) FROM memberships m JOIN organisations o ON o.id = m.organisation_id "
                "WHERE o.slug = 'acme'"
            ).scalar_one()
        )


def store_latin1_name(lms: Lms, user_id: int) -> None:
    with sqlite3.connect(lms.root / "lms.db") as db:
        db.execute("UPDATE users SET name = CAST(? AS TEXT) WHERE id = ?", (LATIN1_NAME, user_id))
    db.close()


def acme_values(lms: Lms) -> set[str]:
    """Every text value of acme's rows, 4 characters or longer — except its key and its
    name, which the ledger keeps on purpose (the certificate names the customer)."""
    snap = snapshot(lms.url)
    o = oracle(snap)
    org = snap["organisations"][o.org]
    values: set[str] = set()
    for table, keys in o.acme.items():
        for key in keys:
            for value in snap[table][key].values():
                if isinstance(value, str) and len(value.strip()) >= 4:
                    values.add(value)
    # An enumeration that is one of the tool's own words ("deleted", "file") or part of a
    # table name ("activity", "page") is not personal data and shows up by design.
    vocabulary = " ".join([*snap, *(c for rows in snap.values() for r in list(rows.values())[:1] for c in r)])
    vocabulary += " ".join(p.read_text("utf-8") for p in Path(learnexit.__file__).parent.rglob("*.py"))
    words = {v for v in values if re.fullmatch(r"[a-z_]+", v) and v in vocabulary}
    return values - words - {org["slug"], org["name"]}


def ledger_text(lms: Lms) -> dict[str, str]:
    """Every ledger table as one text: every column of every row."""
    engine = sa.create_engine(lms.settings.state_url)
    md = sa.MetaData()
    out: dict[str, str] = {}
    try:
        md.reflect(engine)
        with engine.connect() as conn:
            for table in md.tables.values():
                parts = []
                for row in conn.execute(sa.select(table)):
                    for value in row:
                        if isinstance(value, bytes):
                            value = value.decode("utf-8", "replace")
                        parts.append("" if value is None else str(value))
                out[table.name] = "\n".join(parts)
    finally:
        engine.dispose()
    return out


def spellings(value: str) -> set[str]:
    """The value as written, and as JSON writes it (escaped)."""
    out = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    # text with U+FFFD: also every readable run of it
    out |= {part for part in value.split("\ufffd") if len(part.strip()) >= 4}
    return out


def leaks(values: set[str], texts: dict[str, str]) -> list[tuple[str, str]]:
    return [(where, v) for v in sorted(values) for s in spellings(v) for where, t in texts.items() if s in t]


@pytest.mark.parametrize(("kind", "log_format"), [("sqlite", "text"), ("sqlite", "json"), ("postgresql", "json")])
def test_no_source_value_reaches_the_ledger_or_the_logs(
    db_factory: Any, tmp_path: Path, example_template: Path, kind: str, log_format: str
) -> None:
    url = None if kind == "sqlite" else db_factory(kind).new("leak")
    lms = make_lms(kind, tmp_path / "ex", example_template, url)
    values = acme_values(lms)
    if kind == "sqlite":
        store_latin1_name(lms, acme_user(lms))
        values.add(LATIN1_NAME.decode("utf-8", "replace"))
    assert len(values) > 500  # names, e-mails, answers, paths, titles…
    logs: dict[str, str] = {}
    steps = [
        ("notice", "2026-11-25T12:00:00Z", ["notice", "acme", "--received", "2026-11-20"]),
        ("export", "2027-02-01T10:00:00Z", ["export", "acme", "--out", str(tmp_path / "out")]),
        ("confirm", "2027-02-02T10:00:00Z", ["confirm", "acme", "--by", "Support"]),
        ("purge-plan", "2027-06-01T10:00:00Z", ["purge", "acme", "--dry-run"]),
        ("purge", "2027-06-01T10:00:00Z", ["purge", "acme", "--yes"]),
        ("status", "2027-06-02T10:00:00Z", ["status", "acme"]),
    ]
    for name, now, args in steps:
        result = cli(lms, now, *args, log_format=log_format)
        assert result.exit_code == 0, (name, result.stderr)
        logs[f"stderr of {name}"] = result.stderr
        if name != "purge-plan":  # (the plan shows the customer's own counts, on stdout)
            logs[f"stdout of {name}"] = result.stdout
    if kind == "sqlite":
        assert "users.name row" in logs["stdout of export"] + logs["stderr of export"]
        assert "U+FFFD" in logs["stdout of export"] + logs["stderr of export"]
    texts = {**ledger_text(lms), **logs}
    assert texts["audit"] and texts["purges"] and texts["exports"]
    assert leaks(values, texts) == []


def test_text_that_is_not_utf8_is_exported_with_replacement_and_a_note(
    tmp_path: Path, example_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lms = make_lms("sqlite", tmp_path / "ex", example_template)
    user = acme_user(lms)
    store_latin1_name(lms, user)
    assert cli(lms, "2026-11-25T12:00:00Z", "notice", "acme", "--received", "2026-11-20").exit_code == 0
    packages = {}
    for speedups in ("on", "off"):
        if speedups == "off":
            monkeypatch.setenv("LEARNEXIT_NO_SPEEDUPS", "1")
        out = tmp_path / f"out-{speedups}"
        result = cli(lms, "2027-02-01T10:00:00Z", "export", "acme", "--out", str(out), "--format", "csv,json,xml,sql")
        assert result.exit_code == 0, result.stderr
        note = f"users.name row {user}: text that is not valid UTF-8 in the source, exported with U+FFFD"
        assert (result.stdout + result.stderr).count(note) == 1
        (package,) = out.iterdir()
        packages[speedups] = {
            p.relative_to(package / "data").as_posix(): p.read_bytes()
            for p in sorted((package / "data").rglob("*"))
            if p.is_file() and p.suffix in (".csv", ".json", ".xml", ".sql") and p.name != "datapackage.json"
        }
        users_csv = (package / "data" / "csv" / "users.csv").read_text("utf-8")
        assert "J\ufffdrgen Br\ufffdnnstr\ufffdm" in users_csv
        assert note in (package / "data" / "index.html").read_text("utf-8")
    assert packages["on"] == packages["off"]  # the same bytes with and without the C speedups


def test_an_export_that_fails_on_a_bad_value_names_table_column_and_key_only(
    tmp_path: Path, example_template: Path
) -> None:
    lms = make_lms("sqlite", tmp_path / "ex", example_template)
    user = acme_user(lms)
    bad = "Anna-Karin Lindqvist 1985"  # personal data where a timestamp should be
    with sqlite3.connect(lms.root / "lms.db") as db:
        db.execute(
            "UPDATE logins SET last_login_at = ? WHERE id = (SELECT min(id) FROM logins WHERE user_id = ?)", (bad, user)
        )
        login = db.execute("SELECT min(id) FROM logins WHERE user_id = ?", (user,)).fetchone()[0]
    db.close()
    assert cli(lms, "2026-11-25T12:00:00Z", "notice", "acme", "--received", "2026-11-20").exit_code == 0
    result = cli(lms, "2027-02-01T10:00:00Z", "export", "acme", "--out", str(tmp_path / "out"), log_format="json")
    assert result.exit_code == 1
    texts = ledger_text(lms)
    (error,) = [line for line in texts["exports"].splitlines() if "logins.last_login_at" in line]
    assert f"id = {login}" in error
    assert "logins.last_login_at" in texts["audit"]
    for text in (*texts.values(), result.stdout, result.stderr):
        assert "Lindqvist" not in text and "Anna-Karin" not in text


# --------------------------------------------------------------------------- driver errors


def _failure(engine: sa.Engine, *statements: str) -> BaseException:
    with engine.begin() as conn:
        for sql in statements[:-1]:
            conn.exec_driver_sql(sql)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(statements[-1])
    except sa.exc.SQLAlchemyError as exc:
        return exc
    raise AssertionError("the statement did not fail")


def test_driver_errors_are_described_without_the_values_they_quote(dbs: Any) -> None:
    engine = sa.create_engine(dbs.new("errors"))
    try:
        duplicate = _failure(
            engine,
            "CREATE TABLE people (id INTEGER PRIMARY KEY, email VARCHAR(80) NOT NULL, age INTEGER)",
            "CREATE UNIQUE INDEX people_email ON people (email)",
            "INSERT INTO people (id, email) VALUES (1, 'karin.secret@example.se')",
            "INSERT INTO people (id, email) VALUES (2, 'karin.secret@example.se')",
        )
        text = describe_db_error(duplicate)
        assert "karin.secret" not in text and "example.se" not in text
        assert "people" in text or "email" in text or "constraint" in text  # still says what failed
        if dbs.kind != "sqlite":
            typed = _failure(engine, "INSERT INTO people (id, email, age) VALUES (3, 'x', 'Lindqvist')")
            assert "Lindqvist" not in describe_db_error(typed)
    finally:
        engine.dispose()


def test_an_undecodable_sqlite_value_is_never_quoted() -> None:
    """Without the source's decoding, sqlite3 quotes the text it cannot decode; the
    description drops it (any engine made elsewhere, e.g. by a test, still fails safely)."""
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (name TEXT)")
        conn.exec_driver_sql("INSERT INTO t VALUES (CAST(x'4ac3b67267656e204272c3' AS TEXT))")
    with pytest.raises(sa.exc.OperationalError) as failed, engine.connect() as conn:
        conn.exec_driver_sql("SELECT name FROM t").all()
    assert "rgen" in str(failed.value)  # the driver's own message quotes it
    assert "rgen" not in describe_db_error(failed.value) and "column 'name'" in describe_db_error(failed.value)


def test_a_bulk_read_meeting_invalid_text_starts_again_after_the_rows_given(tmp_path: Path) -> None:
    """Bulk reads decode with the driver's C code; the batch holding text that is not UTF-8
    fails there, and the read goes on leniently after the rows already given: every row
    once, in order, the bad text with U+FFFD (counted once)."""
    import sqlalchemy as sa

    from learnexit.exporters.base import stream_columns
    from learnexit.source import text_decode
    from learnexit.source.reflect import make_engine

    db = tmp_path / "t.db"
    with sqlite3.connect(db) as raw:
        raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        raw.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"name {i}") for i in range(1, 51)])
        raw.execute("UPDATE t SET name = CAST(x'4a6f73e9' AS TEXT) WHERE id = 37")  # 'Jos' + Latin-1 é
    engine = make_engine(f"sqlite:///{db}")
    table = sa.Table("t", sa.MetaData(), autoload_with=engine)
    statements: list[tuple[str, Any]] = []
    sa.event.listen(engine, "before_cursor_execute", lambda _c, _cur, sql, params, *_: statements.append((sql, params)))
    before = text_decode.replaced()
    with engine.connect() as conn:
        batches = list(stream_columns(conn, sa.select(table).order_by(table.c.id), 10))
        assert conn.connection.dbapi_connection.text_factory is not str  # lenient again afterwards
    engine.dispose()
    ids = [i for columns in batches for i in columns[0]]
    names = [n for columns in batches for n in columns[1]]
    assert ids == list(range(1, 51))
    assert names[36] == "Jos\ufffd" and names[35] == "name 36" and names[37] == "name 38"
    assert text_decode.replaced() == before + 1
    offsets = [params for sql, params in statements if "OFFSET" in sql]
    assert len(offsets) == 1 and 30 in tuple(offsets[0])  # started again after the three batches given
