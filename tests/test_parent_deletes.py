"""Deleting parent rows on SQLite with the foreign keys checked once per referencing table
(``source.sqlite_fk.ParentDeletes``): nothing committed that the per-row checks would
refuse, the check's findings sent back to the enforced delete, and every connection
enforcing foreign keys again afterwards, whatever happened in between."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from learnexit.config import load_settings
from learnexit.errors import OperationalError
from learnexit.ledger.store import Ledger
from learnexit.offboarding.clock import parse_now
from learnexit.offboarding.notice import record_notice
from learnexit.purge.run import execute_purge
from learnexit.source import make_engine
from learnexit.source.sqlite_fk import ParentDeletes, Reference

DUE_NOW = "2027-06-01"


def tiny(tmp_path: Path, *, index: bool, children: int = 50) -> sa.Engine:
    """people (3 rows), labels, notes naming a person (``children`` rows, all person 1)
    and a label, tags naming notes (indexed); foreign keys enforced, as on the source."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{tmp_path / 'tiny.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")
        conn.exec_driver_sql("CREATE TABLE labels (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, person_id INTEGER REFERENCES people(id), "
            "label_id INTEGER REFERENCES labels(id))"
        )
        conn.exec_driver_sql("CREATE TABLE tags (id INTEGER PRIMARY KEY, note_id INTEGER REFERENCES notes(id))")
        conn.exec_driver_sql("CREATE INDEX tags_note ON tags (note_id)")
        if index:
            conn.exec_driver_sql("CREATE INDEX notes_person ON notes (person_id)")
        conn.exec_driver_sql("INSERT INTO people VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        for i in range(children):
            conn.exec_driver_sql("INSERT INTO notes VALUES (?, 1, NULL)", (i + 1,))
    return engine


def enforcing(engine: sa.Engine, connections: int = 3) -> list[int]:
    """``PRAGMA foreign_keys`` of several connections checked out at once."""
    held = [engine.connect() for _ in range(connections)]
    try:
        return [int(c.exec_driver_sql("PRAGMA foreign_keys").scalar() or 0) for c in held]
    finally:
        for c in held:
            c.close()


def count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() or 0)


def test_references_come_from_the_database_with_their_indexes(tmp_path: Path) -> None:
    engine = tiny(tmp_path / "a", index=False)
    with engine.connect() as conn:
        parents = ParentDeletes(engine)
        assert parents.references(conn, "people") == [Reference("notes", ("person_id",), False)]
        assert parents.references(conn, "LABELS") == [Reference("notes", ("label_id",), False)]
        assert parents.references(conn, "notes") == [Reference("tags", ("note_id",), True)]
        assert parents.references(conn, "tags") == []
    engine.dispose()
    engine = tiny(tmp_path / "b", index=True)
    with engine.connect() as conn:
        assert ParentDeletes(engine).references(conn, "people") == [Reference("notes", ("person_id",), True)]
    engine.dispose()


@pytest.mark.parametrize(
    ("index", "rows", "children", "expected"),
    [
        (False, 3, 50, True),  # three scans of notes against one: pays
        (False, 2, 50, False),  # two against one: not by enough (``_MARGIN``)
        (True, 3, 50, False),  # an index: SQLite's own checks are lookups
        (False, 3, 0, False),  # nothing references the people
    ],
)
def test_worth_it_weighs_the_scans(tmp_path: Path, index: bool, rows: int, children: int, expected: bool) -> None:
    engine = tiny(tmp_path, index=index, children=children)
    with engine.connect() as conn:
        assert ParentDeletes(engine).worth_it(conn, "people", rows) is expected
    engine.dispose()


def test_a_clean_delete_commits_and_enforcement_comes_back(tmp_path: Path) -> None:
    engine = tiny(tmp_path, index=False)
    parents = ParentDeletes(engine)
    with parents.unenforced() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
        conn.exec_driver_sql("DELETE FROM people WHERE id IN (2, 3)")
        assert parents.left_naming(conn, "people") is False
        used = conn.connection.dbapi_connection
    with engine.connect() as conn:  # kept (with its key sets), enforcing again
        assert conn.connection.dbapi_connection is used
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert count(engine, "people") == 1
    assert enforcing(engine) == [1, 1, 1]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # and enforced it is
        conn.exec_driver_sql("DELETE FROM people WHERE id = 1")
    assert count(engine, "people") == 1
    engine.dispose()


class LeftNaming(Exception):
    pass


def test_a_row_left_naming_a_deleted_one_is_found_and_rolled_back(tmp_path: Path) -> None:
    engine = tiny(tmp_path, index=False)
    parents = ParentDeletes(engine)
    with pytest.raises(LeftNaming), parents.unenforced() as conn:
        conn.exec_driver_sql("DELETE FROM people")  # person 1 is still named by 50 notes
        assert parents.left_naming(conn, "people") is True
        raise LeftNaming
    assert count(engine, "people") == 3 and count(engine, "notes") == 50
    assert enforcing(engine) == [1, 1, 1]
    with engine.connect() as conn:  # found once: this parent goes the enforced way from now on
        assert parents.worth_it(conn, "people", 1000) is False
    engine.dispose()


def test_a_table_added_after_the_weighing_is_checked_too(tmp_path: Path) -> None:
    """The catalogue is read again at the check: a table another program created since
    (say an LMS upgrade during the purge) with a row naming a person counts."""
    engine = tiny(tmp_path, index=False)
    parents = ParentDeletes(engine)
    with engine.connect() as conn:
        assert parents.worth_it(conn, "people", 3)  # (the catalogue is read and kept here)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE badges (id INTEGER PRIMARY KEY, person_id INTEGER REFERENCES people(id))")
        conn.exec_driver_sql("INSERT INTO badges VALUES (1, 2)")
    with pytest.raises(LeftNaming), parents.unenforced() as conn:
        conn.exec_driver_sql("DELETE FROM people WHERE id IN (2, 3)")
        assert parents.left_naming(conn, "people") is True
        raise LeftNaming
    assert count(engine, "people") == 3
    engine.dispose()


def test_a_table_sqlite_cannot_check_sends_the_delete_back(tmp_path: Path) -> None:
    """A referencing table with another foreign key SQLite cannot use ("foreign key
    mismatch": its parent columns have no unique index) fails ``foreign_key_check``,
    where SQLite's per-row checks of the people never look at that key: the delete goes
    the enforced way, and succeeds there."""
    engine = tiny(tmp_path, index=False)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE codes (id INTEGER PRIMARY KEY, code TEXT)")
        conn.exec_driver_sql(
            "CREATE TABLE pins (id INTEGER PRIMARY KEY, person_id INTEGER REFERENCES people(id), "
            "code TEXT REFERENCES codes(code))"
        )
    parents = ParentDeletes(engine)
    with pytest.raises(LeftNaming), parents.unenforced() as conn:
        conn.exec_driver_sql("DELETE FROM people WHERE id IN (2, 3)")
        assert parents.left_naming(conn, "people") is True
        raise LeftNaming
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM people WHERE id IN (2, 3)")
    assert count(engine, "people") == 1
    engine.dispose()


def test_a_dangling_reference_to_another_parent_is_not_this_deletes(tmp_path: Path) -> None:
    """A note naming a label that was never there (written with foreign keys off, long
    ago) is no reason to send a delete of people back; one naming a person that is gone
    is (whoever left it: the check cannot tell, so the enforced delete decides)."""
    engine = tiny(tmp_path, index=False)
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA foreign_keys = OFF")
        raw.driver_connection.execute("INSERT INTO notes VALUES (900, NULL, 77)")
        raw.driver_connection.commit()
    finally:
        raw.invalidate()  # (its foreign keys were switched off by hand)
    parents = ParentDeletes(engine)
    with parents.unenforced() as conn:
        conn.exec_driver_sql("DELETE FROM people WHERE id IN (2, 3)")
        assert parents.left_naming(conn, "people") is False
    assert count(engine, "people") == 1
    engine.dispose()


def test_whatever_happens_inside_every_connection_enforces_again(tmp_path: Path) -> None:
    engine = tiny(tmp_path, index=False)
    parents = ParentDeletes(engine)
    with pytest.raises(sa.exc.OperationalError), parents.unenforced() as conn:
        conn.exec_driver_sql("DELETE FROM people WHERE id = 3")
        conn.exec_driver_sql("SELECT * FROM no_such_table")
    assert count(engine, "people") == 3  # rolled back
    assert enforcing(engine) == [1, 1, 1]
    lost: list[Any] = []
    with pytest.raises(sa.exc.SQLAlchemyError), parents.unenforced() as conn:
        lost.append(conn.connection.dbapi_connection)
        conn.connection.dbapi_connection.close()  # the connection is lost meanwhile
    with engine.connect() as conn:  # discarded: a new one, enforcing
        assert conn.connection.dbapi_connection is not lost[0]
    assert enforcing(engine) == [1, 1, 1]
    engine.dispose()


# --------------------------------------------------------------------------- the purge


# A reference the purge does not follow (``ignore_references``): (its table, its column,
# the acme-only row it is made to name, the other customer's row made to name it).
HIDDEN = {
    "person": (
        "attachments",
        "uploaded_by",
        "SELECT u.id FROM users u JOIN memberships m ON m.user_id = u.id JOIN organisations o "
        "ON o.id = m.organisation_id GROUP BY u.id HAVING min(o.slug) = 'acme' AND max(o.slug) = 'acme' "
        "ORDER BY u.id LIMIT 1",
        "SELECT a.id FROM attachments a JOIN courses c ON c.id = a.course_id JOIN organisations o "
        "ON o.id = c.organisation_id WHERE o.slug <> 'acme' ORDER BY a.id LIMIT 1",
    ),
    "course": (
        "activity_log",
        "course_id",
        "SELECT c.id FROM courses c JOIN organisations o ON o.id = c.organisation_id "
        "WHERE o.slug = 'acme' ORDER BY c.id LIMIT 1",
        "SELECT a.id FROM activity_log a JOIN organisations o ON o.id = a.organisation_id "
        "WHERE o.slug <> 'acme' ORDER BY a.id LIMIT 1",
    ),
}


def example(tmp_path: Path, template: Path, name: str, *, hidden: str | None) -> Path:
    """A copy of the example.  ``hidden``: a row of another customer names a person
    ("person") or a course ("course") only acme has, through a column whose reference
    ownership does not follow (``ignore_references``): the purge's own conditions take
    the row for free, the database's foreign key does not."""
    root = tmp_path / name
    root.mkdir()
    shutil.copy(template / "lms.db", root / "lms.db")
    shutil.copytree(template / "media", root / "media")
    text = (template / "learnexit.toml").read_text(encoding="utf-8")
    if hidden is not None:
        table, column, target_sql, row_sql = HIDDEN[hidden]
        section, rule = f"[tables.{table}]\n", f'ignore_references = ["{column}"]\n'
        text = text.replace(section, section + rule) if section in text else f"{text}\n{section}{rule}"
        engine = sa.create_engine(f"sqlite:///{root / 'lms.db'}")
        with engine.begin() as conn:
            target, row = conn.exec_driver_sql(target_sql).scalar(), conn.exec_driver_sql(row_sql).scalar()
            assert target is not None and row is not None
            conn.exec_driver_sql(f"UPDATE {table} SET {column} = ? WHERE id = ?", (target, row))
        engine.dispose()
    (root / "learnexit.toml").write_text(text, encoding="utf-8")
    settings = load_settings(root / "learnexit.toml")
    with Ledger(settings.state_url) as ledger:
        record_notice(settings, ledger, "acme", date(2026, 11, 20), now=datetime(2026, 11, 25, 12, tzinfo=UTC))
    return root


def run_purge(root: Path) -> tuple[str, dict[str, list[tuple[Any, ...]]]]:
    """The purge's outcome ("done", or the error's text) and every row left."""
    settings = load_settings(root / "learnexit.toml")
    try:
        with Ledger(settings.state_url) as ledger:
            outcome = execute_purge(settings, ledger, "acme", parse_now(DUE_NOW)).status
    except OperationalError as exc:
        outcome = str(exc)
    engine = sa.create_engine(f"sqlite:///{root / 'lms.db'}")
    md = sa.MetaData()
    md.reflect(engine)
    with engine.connect() as conn:
        rows = {
            t.name: [tuple(r) for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))]
            for t in md.sorted_tables
        }
        dangling = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    engine.dispose()
    assert dangling == []
    return outcome, rows


@pytest.mark.parametrize("hidden", [None, "person", "course"])
def test_the_purge_leaves_what_the_enforced_delete_leaves(
    tmp_path: Path,
    example_template: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    hidden: str | None,
) -> None:
    """The same purge twice: people and courses deleted with one check per referencing
    table, and with SQLite's checks per row.  Every row left is the same, and so is the
    outcome — also where a reference the purge does not follow still names a person or
    a course: the check finds it, and the enforced delete refuses as it always did."""
    fast = example(tmp_path, example_template, "fast", hidden=hidden)
    plain = example(tmp_path, example_template, "plain", hidden=hidden)
    used: list[str] = []
    real = ParentDeletes.worth_it

    def spy(self: ParentDeletes, conn: Any, parent: str, rows: int) -> bool:
        verdict = real(self, conn, parent, rows)
        if verdict:
            used.append(parent)
        return verdict

    monkeypatch.setattr(ParentDeletes, "worth_it", spy)
    with caplog.at_level(logging.INFO, logger="learnexit"):
        fast_outcome = run_purge(fast)
    assert {"users", "courses"} <= set(used)  # (the example's people and courses go the checked way)
    again: list[Any] = [r for r in caplog.records if r.getMessage() == "purge_enforced_again"]
    monkeypatch.setattr(ParentDeletes, "worth_it", lambda *_: False)
    plain_outcome = run_purge(plain)
    assert fast_outcome == plain_outcome
    if hidden:
        table = {"person": "users", "course": "courses"}[hidden]
        assert table in fast_outcome[0] and fast_outcome[0] != "done"
        assert {r.le_fields["table"] for r in again} == {table}  # found, then refused enforced
    else:
        assert fast_outcome[0] == "done" and not again
