"""SQLite reflected in a few statements (``learnexit.source.sqlite_pragmas``) is the schema
SQLAlchemy reflects on its own, one table at a time: the oracle is SQLAlchemy itself.

Awkward schemas (composite and WITHOUT ROWID keys, references with and without named
columns, to missing tables and to themselves, named and unnamed unique constraints,
partial, expression and descending indexes, generated columns, CHECKs, quoted names) and
random ones (hypothesis) are reflected both ways and compared column by column,
constraint by constraint, warning by warning; the statements run are counted.
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learnexit.source import sqlite_pragmas

AWKWARD = """
CREATE TABLE orgs (id INTEGER PRIMARY KEY AUTOINCREMENT, slug VARCHAR(20) NOT NULL UNIQUE, "Display Name" TEXT DEFAULT 'x');
CREATE TABLE "order" (
    "select" INTEGER NOT NULL,
    line INTEGER NOT NULL,
    org_id INTEGER REFERENCES orgs ON DELETE CASCADE,
    amount DECIMAL(10, 2) CHECK (amount >= 0),
    note,
    PRIMARY KEY ("select", line)
) WITHOUT ROWID;
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL,
    parent_id INTEGER REFERENCES items(id) DEFERRABLE INITIALLY DEFERRED,
    ord_select INTEGER,
    ord_line INTEGER,
    code TEXT COLLATE NOCASE,
    price REAL,
    total REAL GENERATED ALWAYS AS (price * 2) VIRTUAL,
    label TEXT GENERATED ALWAYS AS (upper(code)) STORED,
    at DATETIME DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT items_org FOREIGN KEY (org_id) REFERENCES orgs(id) ON UPDATE SET NULL,
    FOREIGN KEY (ord_select, ord_line) REFERENCES "order"("select", line),
    CONSTRAINT uq_code_org UNIQUE (code, org_id),
    UNIQUE (parent_id, ord_line),
    CONSTRAINT price_positive CHECK (price > 0)
);
CREATE INDEX ix_items_code ON items (code);
CREATE UNIQUE INDEX ux_items_at ON items (at DESC, id);
CREATE INDEX ix_items_partial ON items (price) WHERE price > 10;
CREATE INDEX ix_items_expr ON items (lower(code));
CREATE TABLE "we""ird tab" ("co,l" INTEGER, "x y" TEXT);
CREATE TABLE empty_one (a);
CREATE VIEW v_items AS SELECT id, code FROM items;
"""


def described(metadata: sa.MetaData) -> list[Any]:
    """Everything reflection gives a table, in a form two reflections can be compared by."""
    out: list[Any] = []
    for table in sorted(metadata.tables.values(), key=lambda t: t.name):
        out.append(("table", table.name, table.comment, sorted(table.dialect_kwargs.items())))
        for c in table.columns:
            computed = (str(c.computed.sqltext), c.computed.persisted) if c.computed is not None else None
            default = getattr(c.server_default, "arg", None)
            default = str(default) if default is not None else None
            out.append(("column", c.name, repr(c.type), c.nullable, c.primary_key, default, computed, c.autoincrement))
        constraints = []  # (a set: in no order of its own)
        for con in table.constraints:
            if isinstance(con, sa.ForeignKeyConstraint):
                targets = [e.target_fullname for e in con.elements]
                info = (con.ondelete, con.onupdate, con.deferrable, con.initially, con.match)
                constraints.append(("fk", con.name, [c.name for c in con.columns], targets, info))
            elif isinstance(con, sa.CheckConstraint):
                constraints.append(("check", con.name, str(con.sqltext)))
            else:
                constraints.append((type(con).__name__, con.name, [c.name for c in con.columns]))
        out.extend(sorted(constraints, key=repr))
        for ix in sorted(table.indexes, key=lambda i: str(i.name)):
            where = ix.dialect_options["sqlite"].get("where")
            out.append(("index", ix.name, [c.name for c in ix.columns], ix.unique, str(where)))
    return out


def reflect(url: str, fast: bool, schema: str | None = None, temp: bool = False) -> tuple[list[Any], list[str], int]:
    """The described schema, the warnings reflection gave, and the statements it ran."""
    engine = sa.create_engine(url)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        with engine.connect() as conn, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if temp:
                conn.exec_driver_sql("CREATE TEMP TABLE scratch (k INTEGER)")
            statements.clear()
            metadata = sa.MetaData()
            if fast:
                with sqlite_pragmas.prefetched(conn, schema):
                    metadata.reflect(conn, schema=schema)
            else:
                metadata.reflect(conn, schema=schema)
        return described(metadata), sorted(str(w.message) for w in caught), len(statements)
    finally:
        engine.dispose()


@pytest.fixture
def awkward(tmp_path: Path) -> Iterator[str]:
    db = tmp_path / "awkward.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(AWKWARD)
        conn.execute("INSERT INTO orgs (slug) VALUES ('acme')")  # (sqlite_sequence gets a row)
    yield f"sqlite:///{db}"


def test_an_awkward_schema_reflects_the_same_in_a_few_statements(awkward: str) -> None:
    slow, slow_warnings, slow_statements = reflect(awkward, fast=False)
    fast, fast_warnings, fast_statements = reflect(awkward, fast=True)
    assert fast == slow
    assert fast_warnings == slow_warnings and any("expression-based index ix_items_expr" in w for w in slow_warnings)
    assert fast_statements <= 12 and slow_statements > 50
    names = {entry[1] for entry in slow if entry[0] == "table"}
    assert names == {"orgs", "order", "items", 'we"ird tab', "empty_one"}  # (views and sqlite_sequence not)
    assert ("fk", "items_org", ["org_id"], ["orgs.id"], (None, "SET NULL", None, None, None)) in fast


def test_what_sqlalchemy_cannot_reflect_fails_the_same_way(tmp_path: Path) -> None:
    db = tmp_path / "ghost.db"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, ghost_id INTEGER REFERENCES nowhere(id))")
    for fast in (False, True):
        with pytest.raises(sa.exc.NoSuchTableError, match="nowhere"):
            reflect(f"sqlite:///{db}", fast=fast)


def test_main_by_name_reflects_the_same(awkward: str) -> None:
    assert reflect(awkward, fast=True, schema="main")[0] == reflect(awkward, fast=False, schema="main")[0]


def test_with_temporary_tables_sqlalchemy_reflects_on_its_own(awkward: str) -> None:
    slow, _, slow_statements = reflect(awkward, fast=False, temp=True)
    fast, _, fast_statements = reflect(awkward, fast=True, temp=True)
    assert fast == slow and fast_statements == slow_statements + 1  # (the look at temp.sqlite_master)


def test_an_attached_schema_is_left_to_sqlalchemy(awkward: str, tmp_path: Path) -> None:
    engine = sa.create_engine(awkward)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"ATTACH DATABASE '{tmp_path / 'awkward.db'}' AS other")
            with sqlite_pragmas.prefetched(conn, "other"):
                assert "_get_table_pragma" not in vars(conn.dialect)
            assert "_get_table_pragma" not in vars(conn.dialect)
    finally:
        engine.dispose()


def test_other_engines_are_left_alone(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            with sqlite_pragmas.prefetched(conn, None):
                assert "_get_table_pragma" in vars(conn.dialect)
            assert "_get_table_pragma" not in vars(conn.dialect)  # (put back)
            conn.dialect.name = "postgresql"  # (what the check looks at)
            try:
                with sqlite_pragmas.prefetched(conn, None):
                    assert "_get_table_pragma" not in vars(conn.dialect)
            finally:
                conn.dialect.name = "sqlite"
    finally:
        engine.dispose()


def test_the_methods_are_put_back_after_an_error(awkward: str) -> None:
    engine = sa.create_engine(awkward)
    try:
        with engine.connect() as conn:
            with pytest.raises(RuntimeError), sqlite_pragmas.prefetched(conn, None):
                raise RuntimeError("reflection failed")
            assert "_get_table_pragma" not in vars(conn.dialect) and "_get_table_sql" not in vars(conn.dialect)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- random schemas

TYPES = ["INTEGER", "TEXT", "VARCHAR(40)", "REAL", "NUMERIC(12, 2)", "BLOB", "DATETIME", "BOOLEAN", ""]


@st.composite
def schemas(draw: st.DrawFn) -> list[str]:
    n = draw(st.integers(min_value=1, max_value=6))
    statements = []
    for t in range(n):
        cols = draw(st.integers(min_value=1, max_value=5))
        names = [f"c{i}" for i in range(cols)]
        parts = []
        for name in names:
            kind = draw(st.sampled_from(TYPES))
            extra = draw(st.sampled_from(["", " NOT NULL", " UNIQUE", " DEFAULT 0", " COLLATE NOCASE"]))
            parts.append(f"{name} {kind}{extra}")
        pk = draw(st.sampled_from(["none", "first", "composite"]))
        if pk == "first":
            parts.append(f"PRIMARY KEY ({names[0]})")
        elif pk == "composite" and cols > 1:
            parts.append(f"PRIMARY KEY ({names[0]}, {names[1]})")
        if t > 0 and draw(st.booleans()):
            target = draw(st.integers(min_value=0, max_value=t - 1))
            named = draw(st.booleans())
            parts.append(
                f"{'CONSTRAINT fk_' + str(t) + ' ' if named else ''}FOREIGN KEY ({names[-1]}) REFERENCES t{target}"
            )
        if cols > 1 and draw(st.booleans()):
            parts.append(f"UNIQUE ({names[-1]}, {names[0]})")
        without = (
            " WITHOUT ROWID" if pk != "none" and draw(st.booleans()) and not (pk == "composite" and cols == 1) else ""
        )
        statements.append(f"CREATE TABLE t{t} ({', '.join(parts)}){without}")
        if draw(st.booleans()):
            unique = "UNIQUE " if draw(st.booleans()) else ""
            where = f" WHERE {names[0]} IS NOT NULL" if draw(st.booleans()) else ""
            statements.append(f"CREATE {unique}INDEX ix_{t} ON t{t} ({names[-1]}){where}")
    return statements


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schemas())
def test_random_schemas_reflect_the_same(tmp_path: Path, statements: list[str]) -> None:
    db = tmp_path / "random.db"
    db.unlink(missing_ok=True)
    with sqlite3.connect(db) as conn:
        for statement in statements:
            try:
                conn.execute(statement)
            except sqlite3.Error:  # (WITHOUT ROWID needs a primary key SQLite accepts, etc.)
                continue
    url = f"sqlite:///{db}"
    assert outcome(url, fast=True) == outcome(url, fast=False)


def outcome(url: str, fast: bool) -> Any:
    """The reflected schema and its warnings, or the error SQLAlchemy raised (a reference
    to a table without a primary key is one it cannot reflect)."""
    try:
        return reflect(url, fast=fast)[:2]
    except sa.exc.SQLAlchemyError as exc:
        return type(exc).__name__, str(exc)
