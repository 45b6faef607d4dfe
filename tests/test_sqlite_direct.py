"""CSV and SQL read by C straight from a SQLite snapshot (``speedups.sqlite_csv``,
``speedups.sqlite_inserts``) are the files the batches give.

A read pass over a SQLite source that feeds one writer (CSV, or the SQL dump) hands each
table to C, which steps the export's own statement on the export's own connection and
writes the records from SQLite's values; it stops before the first row holding a value
it leaves to Python (a BLOB, a decimal column, text that is not UTF-8, a datetime not in
SQLAlchemy's storage format…; for SQL at the start of that row's batch, and also at a
reference to a key not written yet), and the pass reads the rest in batches from that
offset.  Here:

* properties over raw SQLite storage (any storage class in any declared column type,
  datetimes in many spellings, invalid UTF-8), CSV and INSERTs in every dialect: C then
  batches == batches alone, byte for byte, or the same error;
* whole CSV exports of the hostile source and SQL dumps with references (split over
  processes too): the same files with the direct read, without it, and without the C
  speedups at all — and the direct read was used;
* the references' contract (checked against the known keys, collected, 0 and NULL);
* the guards: no open transaction, another database's name, a connection that is not
  ``sqlite3.Connection``: nothing read (None).
"""

from __future__ import annotations

import _sqlite3
import dataclasses
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from test_parallel_export import split_at
from test_speedups import (
    NATIVE,
    assert_same_packages,
    export_in_process,
    hostile_sqlite,
    needs_native,
    source_config,
    writer_job,
)

from learnexit.errors import OperationalError
from learnexit.exporters import speedups
from learnexit.exporters.base import ColumnSpec, ExportJob, TableSpec, column_kind, stream_columns
from learnexit.exporters.csv_format import CsvWriter
from learnexit.exporters.sql_format import SqlWriter
from learnexit.source import text_decode

pytestmark = needs_native

TYPES: dict[str, Callable[[], sa.types.TypeEngine[Any]]] = {
    "integer": sa.Integer,
    "text": sa.Text,
    "varchar": lambda: sa.String(20),
    "float": sa.Float,
    "datetime": sa.DateTime,
    "date": sa.Date,
    "boolean": lambda: sa.Boolean(create_constraint=False),
    "numeric": lambda: sa.Numeric(10, 2),
    "blob": sa.LargeBinary,
}
STAMPS = [
    "2024-01-15 09:12:06.000000",
    "2024-01-15 09:12:06.123456",
    "2024-01-15 09:12:06.000001",
    "2024-01-15T09:12:06",
    "2024-01-15 09:12:06",
    "2024-02-29 23:59:59",
    "2023-02-29 00:00:00",
    "1900-02-29 00:00:00",
    "2000-02-29 00:00:00",
    "0001-01-01 00:00:00",
    "0000-01-01 00:00:00",
    "9999-12-31 23:59:59.999999",
    "2024-01-15",
    "2024-01-15 09:12",
    "2024-01-15 09:12:06.5",
    "2024-01-15 09:12:06.123",
    "2024-01-15 09:12:06+00:00",
    "2024-01-15 09:12:06.000000+02:00",
    "2024-13-01 00:00:00",
    "2024-00-10 00:00:00",
    "2024-04-31 00:00:00",
    "2024-01-15 24:00:00",
    "2024-01-15 23:60:00",
    "2024-01-15 23:59:60",
    " 2024-01-15 09:12:06",
    "2024-01-15 09:12:06 ",
    "2024/01/15 09:12:06",
    "２０２４-01-15 09:12:06",
    "20240115",
    "2024-W03-1",
    "yesterday",
    "",
]
PIECES = ['"', "'", ",", "\r", "\n", "\r\n", "\x00", "\\", "🎓", "é", "\t", ";", " ", "x", "1", "-"]


class BadText(bytes):
    """Bytes stored as TEXT (``CAST(? AS TEXT)``): SQLite keeps them, UTF-8 or not."""


values = st.one_of(
    st.none(),
    st.sampled_from([0, 1, -1, 2, 2**31, 2**63 - 1, -(2**63), 2**53 + 1]),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0.0, -0.0, 0.1, 1e16, 5e-324, 1e300, -2.5e-300, 2.0**53, float("inf"), float("-inf")]),
    st.floats(allow_nan=False),
    st.sampled_from(STAMPS),
    st.sampled_from(["2024-01-15", "2024-02-30", "0000-01-01", "2024-1-5", "9999-12-31", "true", "0", "1"]),
    st.lists(st.one_of(st.sampled_from(PIECES), st.characters(exclude_categories=["Cs"])), max_size=6).map("".join),
    st.binary(max_size=6),
    st.sampled_from(
        [b"a\xed\xa0\x80b", b"\xff", b"\xc3", b"\x80\x00\r\n", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"ok"]
    ).map(BadText),
)


def make_table(path: Path, types: list[str], rows: list[list[Any]]) -> tuple[sa.Table, TableSpec]:
    """Table ``t`` (``id`` and one column per type) created by SQLAlchemy, the rows stored
    raw through sqlite3 (whatever storage class each value has)."""
    columns = [sa.Column("id", sa.Integer, primary_key=True)]
    columns += [sa.Column(f"c{i}", TYPES[name]()) for i, name in enumerate(types)]
    table = sa.Table("t", sa.MetaData(), *columns)
    engine = sa.create_engine(f"sqlite:///{path}")
    table.metadata.create_all(engine)
    engine.dispose()
    raw = sqlite3.connect(path)
    for key, row in enumerate(rows, start=1):
        marks = ", ".join("CAST(? AS TEXT)" if isinstance(v, BadText) else "?" for v in row)
        raw.execute(f"INSERT INTO t VALUES (?{', ' if row else ''}{marks})", [key, *[_stored(v) for v in row]])
    raw.commit()
    raw.close()
    spec_columns = tuple(
        ColumnSpec(c.name, column_kind(c), bool(c.nullable), bool(c.primary_key), c.type) for c in table.c
    )
    return table, TableSpec("t", spec_columns, ("id",), (), None, table)


def _stored(value: Any) -> Any:
    return bytes(value) if isinstance(value, BadText) else value


def read_rows(
    path: Path, table: sa.Table, spec: TableSpec, *, direct: bool, fmt: str = "csv", batch_size: int = 7
) -> tuple[Any, ...]:
    """The table through a CsvWriter (``fmt`` "csv") or an SqlWriter (``fmt`` a dialect),
    as the read pass feeds it: with ``direct``, C first and batches from where it
    stopped; else batches only.  (file bytes, rows C wrote) or ("error", message)."""
    engine = sa.create_engine(f"sqlite:///{path}")
    text_decode.install(engine)  # (as a source engine: text that is not UTF-8 becomes U+FFFD)
    with tempfile.TemporaryDirectory() as tmp, engine.connect() as conn:
        conn.connection.dbapi_connection.execute("BEGIN")  # (the snapshot: a read transaction)
        job: ExportJob = writer_job(
            Path(tmp), [spec], "csv" if fmt == "csv" else "sql", "sqlite" if fmt == "csv" else fmt
        )
        job = dataclasses.replace(job, options=dataclasses.replace(job.options, batch_size=batch_size))
        writer = CsvWriter(job) if fmt == "csv" else SqlWriter(job)
        writer.start_table(spec)
        stmt = sa.select(table).order_by(table.c.id)
        done, finished = 0, False
        try:
            if direct:
                sink = writer.direct(spec)
                assert sink is not None or fmt != "csv"  # (SQL: not with a boolean or JSON column)
                write = lambda records, _rows: sink.write(records)  # noqa: E731
                if sink is None:
                    got = None
                elif sink.statements is None:
                    got = speedups.sqlite_csv(conn, stmt, write)
                else:
                    got = speedups.sqlite_inserts(conn, stmt, write, sink.statements, sink.refs)
                if got is not None and sink is not None:
                    done, finished = got
                    sink.wrote(done)
            rows = done
            for columns in () if finished else stream_columns(conn, stmt, batch_size, offset=done):
                writer.write_columns(spec, columns, len(columns[0]))
                rows += len(columns[0])
        except OperationalError as exc:
            writer.abort()
            return ("error", str(exc))
        writer.end_table(spec, rows)
        writer.close()
        files = sorted(p for p in Path(tmp).rglob("*") if p.is_file())
        data = b"".join(p.read_bytes() for p in files if p.suffix in (".csv", ".sql"))
    engine.dispose()
    if fmt != "csv":
        data = b"\n".join(line for line in data.split(b"\n") if not line.startswith(b"-- generated"))
    return data, done


def read_csv(path: Path, table: sa.Table, spec: TableSpec, *, direct: bool, batch_size: int = 7) -> tuple[Any, ...]:
    return read_rows(path, table, spec, direct=direct, batch_size=batch_size)


# What a column of each type mostly holds (a real table's values are mostly of its type;
# C must get all of those right, and stop at the rest).
TYPED = {
    "integer": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    "text": st.one_of(st.none(), st.lists(st.sampled_from(PIECES), max_size=5).map("".join)),
    "varchar": st.one_of(st.none(), st.text(max_size=5)),
    "float": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False), st.integers(-5, 5)),
    "datetime": st.one_of(st.none(), st.sampled_from(STAMPS), st.datetimes().map(str)),
    "date": st.one_of(st.none(), st.dates().map(str), st.sampled_from(["2024-02-30", "0000-01-01", "2024-1-5"])),
    "boolean": st.one_of(st.none(), st.sampled_from([0, 1, 2, -1])),
    "numeric": values,
    "blob": values,
}


@st.composite
def table_rows(draw: st.DrawFn) -> tuple[list[str], list[list[Any]]]:
    """1-4 typed columns and up to 25 rows, each value of its column's type (3 in 4) or
    anything at all."""
    types = draw(st.lists(st.sampled_from(sorted(TYPES)), min_size=0, max_size=4))
    cells = [st.one_of(TYPED[t], TYPED[t], TYPED[t], values) for t in types]
    rows = draw(st.lists(st.tuples(*cells).map(list), max_size=25))
    return types, rows


@settings(max_examples=150, deadline=None)
@given(table=table_rows())
def test_direct_csv_then_batches_equals_batches(table: tuple[list[str], list[list[Any]]]) -> None:
    types, rows = table
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lms.db"
        table, spec = make_table(path, types, rows)
        fast = read_csv(path, table, spec, direct=True)
        slow = read_csv(path, table, spec, direct=False)
    assert fast[0] == slow[0]
    if fast[0] != "error" and not any(t in ("numeric", "blob") for t in types):
        assert fast[1] <= len(rows)


@settings(max_examples=100, deadline=None)
@given(table=table_rows(), dialect=st.sampled_from(["sqlite", "postgresql", "mysql"]), batch=st.integers(1, 9))
def test_direct_inserts_then_batches_equal_batches(
    table: tuple[list[str], list[list[Any]]], dialect: str, batch: int
) -> None:
    """The SQL dump's INSERTs: C writes whole batches (a statement ends with each, as
    there) and leaves the batch holding a value it is not sure of to Python."""
    types, rows = table
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lms.db"
        sa_table, spec = make_table(path, types, rows)
        fast = read_rows(path, sa_table, spec, direct=True, fmt=dialect, batch_size=batch)
        slow = read_rows(path, sa_table, spec, direct=False, fmt=dialect, batch_size=batch)
    assert fast[0] == slow[0]
    if fast[0] != "error":
        assert fast[1] == len(rows) or fast[1] % batch == 0


def test_direct_csv_writes_the_plain_rows_itself(tmp_path: Path) -> None:
    """Values C is sure of: every row written by C, the same text as the batches."""
    rows = [
        [7, "plain", 'a "quoted", text\r\nline', 2.5, "2024-01-15 09:12:06.000000", "2024-02-29", 1],
        [
            -(2**63),
            "",
            "🎓 é\x00",
            -0.0,  # (SQLite keeps -0.0 as 0.0)
            "2024-01-15 09:12:06.123456",
            None,
            0,
        ],
        [None, None, None, None, None, None, None],
        [2**63 - 1, "x", ",", 1e300, "2024-01-15T23:59:59", "0001-01-01", 2],
    ]
    types = ["integer", "varchar", "text", "float", "datetime", "date", "boolean"]
    table, spec = make_table(tmp_path / "lms.db", types, rows)
    fast = read_csv(tmp_path / "lms.db", table, spec, direct=True)
    slow = read_csv(tmp_path / "lms.db", table, spec, direct=False)
    assert fast == (slow[0], 4)
    assert fast[0].splitlines()[1:] == [
        b'1,7,plain,"a ""quoted"", text',
        b'line",2.5,2024-01-15T09:12:06,2024-02-29,true',
        "2,-9223372036854775808,,🎓 é\x00,0.0,2024-01-15T09:12:06.123456,,false".encode(),
        b"3,,,,,,,",
        b'4,9223372036854775807,x,",",1e+300,2024-01-15T23:59:59,0001-01-01,true',
    ]


@pytest.mark.parametrize(
    "column,value,stops",
    [
        ("blob", b"\x00\x01", True),
        ("text", BadText(b"a\xed\xa0\x80b"), True),
        ("text", 5, False),  # (an integer in a text column: its digits, as the driver gives it)
        ("datetime", "2024-01-15 09:12:06.5", True),
        ("datetime", "2024-02-30 00:00:00", True),
        ("boolean", "yes", True),  # (a text "1" would be stored as the integer 1: affinity)
        ("float", float("inf"), True),
    ],
)
def test_direct_csv_stops_before_a_row_it_leaves_to_python(
    tmp_path: Path, column: str, value: Any, stops: bool
) -> None:
    rows = [[None], [value], [None]]
    table, spec = make_table(tmp_path / "lms.db", [column], rows)
    fast = read_csv(tmp_path / "lms.db", table, spec, direct=True)
    slow = read_csv(tmp_path / "lms.db", table, spec, direct=False)
    assert fast[0] == slow[0]
    if fast[0] != "error":
        assert fast[1] == (1 if stops else 3)


BAD_UTF8 = [b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\x9f\xbf", b"\xf4\x90\x80\x80", b"\xf4\x8f\xbf\xbf"]
BAD_UTF8 += [b"\xc0\xaf", b"\xc1\xbf", b"\xc2\x80", b"\xe0\x80\xaf", b"\xe0\xa0\x80", b"\xf0\x80\x80\xaf"]
BAD_UTF8 += [b"\xf0\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xff", b"\x80", b"\xc3", b"\xe2\x82", b"\xe2\x82\xac"]
DAYS = ["2024-01-15", "2024-02-29", "2023-02-29", "2024-04-31", "2024-13-01", "0000-01-01", "0001-01-01", "9999-12-31"]
DAYS += ["2024-1-05", "2024-01-5", "20240115", "2024-W03-1", "2024-01-15 00:00:00", " 2024-01-15", "2024/01/15", ""]


@pytest.mark.parametrize(
    "column,value",
    [("datetime", s) for s in STAMPS]
    + [("date", d) for d in DAYS]
    + [("text", BadText(b"a" + b + b"z")) for b in BAD_UTF8],
)
def test_direct_csv_gives_every_spelling_the_text_the_batches_give(tmp_path: Path, column: str, value: Any) -> None:
    """Each datetime and date spelling (valid, invalid, other ISO forms) and each edge of
    UTF-8 (surrogates, overlong forms, beyond U+10FFFF, the last valid code points): C
    writes what the batches write, or stops and they do (the same error, if any)."""
    table, spec = make_table(tmp_path / "lms.db", [column], [[None], [value], [value], [None]])
    fast = read_csv(tmp_path / "lms.db", table, spec, direct=True)
    assert fast[0] == read_csv(tmp_path / "lms.db", table, spec, direct=False)[0]


def test_direct_csv_reads_nothing_without_its_snapshot(tmp_path: Path) -> None:
    """Outside a transaction, on another database's connection, or given anything but a
    ``sqlite3.Connection``, the C reader reads nothing (None): the batches do it all."""
    table, spec = make_table(tmp_path / "lms.db", ["integer"], [[1], [2]])
    del spec
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'lms.db'}")
    written: list[bytes] = []
    with engine.connect() as conn:
        stmt = sa.select(table)
        conn.connection.dbapi_connection.commit()
        assert speedups.sqlite_csv(conn, stmt, lambda b, n: written.append(b)) is None  # no transaction
        conn.connection.dbapi_connection.execute("BEGIN")
        assert speedups.sqlite_csv(conn, stmt, lambda b, n: written.append(b)) == (2, True)
        dbapi = conn.connection.dbapi_connection
        assert NATIVE is not None
        other = str(tmp_path / "other.db")
        assert NATIVE.sqlite_csv(dbapi, other, "SELECT 1", (), [0], written.append, 1 << 20) is None
        assert NATIVE.sqlite_csv(object(), "", "SELECT 1", (), [0], written.append, 1 << 20) is None
        # a statement that does not prepare, or whose columns are not the kinds given: nothing
        main = str(tmp_path / "lms.db")
        assert NATIVE.sqlite_csv(dbapi, main, "SELECT * FROM nowhere", (), [0], written.append, 1 << 20) is None
        assert NATIVE.sqlite_csv(dbapi, main, "SELECT 1, 2", (), [0], written.append, 1 << 20) is None
        assert NATIVE.sqlite_csv(dbapi, main, "SELECT ?", (object(),), [0], written.append, 1 << 20) is None
    engine.dispose()
    assert written == [b"1,1\r\n2,2\r\n"]


@pytest.mark.parametrize("split", [False, True])
def test_csv_exports_are_the_same_with_and_without_the_direct_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, split: bool
) -> None:
    """The hostile source exported as CSV alone: direct read (used: counted), batches with
    C, and Python only give the same files and notes; split over two processes too."""
    hostile_sqlite(tmp_path / "lms.db", rows=300)
    cfg = source_config(tmp_path, f"sqlite:///{tmp_path / 'lms.db'}", "\n[export]\nbatch_size = 25\n")
    exports_three_ways(cfg, tmp_path, monkeypatch, "sqlite_csv", 100 if split else None, formats=["csv"])


def exports_three_ways(
    cfg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str, split_from: int | None, **options: Any
) -> tuple[dict[str, bytes], list[str]]:
    """The export of ``cfg`` with the direct read (``speedups.<reader>``, which must write
    rows in this process), with C batches and with Python only: the same files and notes.
    ``split_from``: tables from that many rows read in two processes (None: one process).
    Returns the direct read's package."""
    if split_from is not None:
        split_at(monkeypatch, split_from)
    monkeypatch.setenv("LEARNEXIT_EXPORT_WORKERS", "1" if split_from is None else "2")
    used: list[tuple[int, bool] | None] = []
    original = getattr(speedups, reader)

    def counted(*args: Any, **kwargs: Any) -> tuple[int, bool] | None:
        got = original(*args, **kwargs)
        used.append(got)
        return got

    monkeypatch.setattr(speedups, reader, counted)
    direct = export_in_process(cfg, tmp_path / "d", monkeypatch, speedups_off=False, **options)
    assert any(u is not None and u[0] > 0 for u in used)  # (rows written by C in this process)
    monkeypatch.setattr(speedups, "direct_reads", False)
    batches = export_in_process(cfg, tmp_path / "b", monkeypatch, speedups_off=False, **options)
    python = export_in_process(cfg, tmp_path / "p", monkeypatch, speedups_off=True, **options)
    assert_same_packages(direct, batches)
    assert_same_packages(direct, python)
    return direct


DANGLING_SCHEMA = """
CREATE TABLE orgs (id INTEGER PRIMARY KEY, slug VARCHAR(20) UNIQUE);
CREATE TABLE courses (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id), title TEXT);
CREATE TABLE marks (
    id INTEGER PRIMARY KEY,
    org_id INTEGER NOT NULL REFERENCES orgs(id),
    course_id INTEGER REFERENCES courses(id),
    note TEXT,
    at DATETIME
);
"""


def dangling_source(path: Path, rows: int, dangling: set[int]) -> None:
    """Two customers' courses and marks; acme's marks in ``dangling`` reference a course
    that does not exist (the SQL dump drops that foreign key, noted)."""
    conn = sqlite3.connect(path)
    conn.executescript(DANGLING_SCHEMA)
    conn.executemany("INSERT INTO orgs VALUES (?, ?)", [(1, "acme"), (2, "other")])
    conn.executemany("INSERT INTO courses VALUES (?, ?, ?)", [(i, 1 + i % 2, f"c{i}") for i in range(1, 11)])
    marks = []
    for i in range(1, rows + 1):
        org = 1 if i % 4 else 2
        course = 999 if i in dangling else (None if i % 9 == 0 else (2 if org == 1 else 1) + 2 * (i % 5))
        marks.append((i, org, course, f'note, "{i}"', f"2026-01-{1 + i % 28:02d} 10:00:{i % 60:02d}.000000"))
    conn.executemany("INSERT INTO marks VALUES (?, ?, ?, ?, ?)", marks)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("dangling", [set(), {37, 150}])
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_sql_dumps_are_the_same_with_and_without_the_direct_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, split: bool, dangling: set[int], dialect: str
) -> None:
    """References checked by C against the keys written (the export's own range) or
    collected for the export's process (a worker's range); marks referencing a course
    that is not there: the counting scan keeps that reference as plain values (noted).
    Direct read, batches with C, Python only: the same dump and notes."""
    dangling_source(tmp_path / "lms.db", 240, dangling)
    cfg = source_config(tmp_path, f"sqlite:///{tmp_path / 'lms.db'}", "\n[export]\nbatch_size = 20\n")
    options: dict[str, Any] = {"formats": ["sql"], "sql_dialect": dialect}
    direct = exports_three_ways(cfg, tmp_path, monkeypatch, "sqlite_inserts", 50 if split else None, **options)
    dropped = any("marks" in n and "not part of this export" in n for n in direct[1])
    assert dropped == bool(dangling)


def test_inserts_leave_a_batch_with_an_unknown_reference_to_python(tmp_path: Path) -> None:
    """``sqlite_inserts``' own contract for references: a value not among the known keys
    (a row the writer would defer) ends the read at the start of its batch; values seen
    are collected as 1-tuples; NULLs pass; text where a key is expected stops too."""
    conn = sqlite3.connect(tmp_path / "lms.db")
    conn.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, ref INTEGER)")
    refs = [1, 2, None, 0, 2, 1, 7, 2, 1, 2]  # (row 7 references 7: unknown; 0 is a key too)
    conn.executemany("INSERT INTO m VALUES (?, ?)", list(enumerate(refs, start=1)))
    conn.commit()
    conn.execute("BEGIN")
    assert NATIVE is not None and speedups.direct_reads
    assert NATIVE.sqlite_bind(_sqlite3.__file__, sqlite3.Connection)  # (as speedups does on first use)
    main = str(tmp_path / "lms.db")
    out: list[bytes] = []

    def run(known: Any, seen: Any, batch: int) -> Any:
        out.clear()
        statements = (0, "INSERT INTO m (id, ref) VALUES\n", 500, 1_000_000, batch)
        return NATIVE.sqlite_inserts(
            conn,
            main,
            "SELECT id, ref FROM m ORDER BY id",
            (),
            [0, 0],
            *statements,
            [(1, known, seen)],
            lambda b, n: out.append(b),
        )

    assert run({(0,), (1,), (2,), ("7",), (7.5,)}, None, 4) == (4, False)  # (rows 5-8 hold the unknown 7)
    assert b"".join(out) == b"INSERT INTO m (id, ref) VALUES\n(1, 1),\n(2, 2),\n(3, NULL),\n(4, 0);\n"
    assert run({(1,), (2,), (7,)}, None, 4) == (0, False)  # (row 4 references 0, not known)
    seen: set[tuple[Any, ...]] = set()
    assert run(None, seen, 4) == (10, True)
    assert seen == {(0,), (1,), (2,), (7,)}
    assert run({(0,), (1,), (2,), (7,)}, None, 3) == (10, True)
    conn.execute("UPDATE m SET ref = '2' WHERE id = 9")  # (stored as the integer 2: affinity)
    conn.execute("UPDATE m SET ref = 'two' WHERE id = 9")
    assert run({(0,), (1,), (2,), (7,)}, None, 3) == (6, False)
    conn.rollback()
    conn.close()


# --------------------------------------------------------------------------- worksheet rows


def read_sheets(
    path: Path, table: sa.Table, spec: TableSpec, *, direct: bool, per_sheet: int = 0, batch_size: int = 7
) -> tuple[Any, ...]:
    """The table through an XlsxWriter as the read pass feeds it alone: with ``direct``,
    C's worksheet rows (``native.sqlite_cells``) first and batches from where it stopped;
    (every sheet's XML, rows C wrote, the notes) or ("error", message)."""
    from learnexit.exporters import xlsx_format

    engine = sa.create_engine(f"sqlite:///{path}")
    text_decode.install(engine)
    with tempfile.TemporaryDirectory() as tmp, engine.connect() as conn:
        conn.connection.dbapi_connection.execute("BEGIN")
        job: ExportJob = writer_job(Path(tmp), [spec], "xlsx")
        job = dataclasses.replace(job, options=dataclasses.replace(job.options, batch_size=batch_size))
        saved = xlsx_format.MAX_DATA_ROWS
        if per_sheet:
            xlsx_format.MAX_DATA_ROWS = per_sheet
        try:
            writer = xlsx_format.XlsxWriter(job)
            writer.start_table(spec)
            stmt = sa.select(table).order_by(table.c.id)
            done, finished = 0, False
            if direct:
                sink = writer.direct(spec)
                assert sink is not None and sink.sheet is not None
                handle = speedups.sqlite_rows(conn, stmt)  # (None: a column SQLAlchemy converts)
                if handle is not None:
                    done, finished = sink.sheet(handle, lambda rows: None)
            rows = done
            for columns in () if finished else stream_columns(conn, stmt, batch_size, offset=done):
                writer.write_columns(spec, columns, len(columns[0]))
                rows += len(columns[0])
        except OperationalError as exc:
            return ("error", str(exc))
        finally:
            xlsx_format.MAX_DATA_ROWS = saved
        writer.end_table(spec, rows)
        sheets = [s.path.read_bytes() for s in writer.sheets[1:]]
        notes = list(job.notes)
        writer.abort()
    engine.dispose()
    return sheets, done, notes


@settings(max_examples=120, deadline=None)
@given(table=table_rows(), per_sheet=st.sampled_from([0, 4, 9]))
def test_direct_sheets_then_batches_equal_batches(table: tuple[list[str], list[list[Any]]], per_sheet: int) -> None:
    """The workbook's rows made by C from SQLite's values: the sheets (a table continued
    over several when they are small) and the notes of the batches alone."""
    types, rows = table
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lms.db"
        sa_table, spec = make_table(path, types, rows)
        fast = read_sheets(path, sa_table, spec, direct=True, per_sheet=per_sheet)
        slow = read_sheets(path, sa_table, spec, direct=False, per_sheet=per_sheet)
    assert fast[0] == slow[0]
    if fast[0] != "error":
        assert fast[2] == slow[2]


def test_direct_sheets_write_the_plain_rows_themselves(tmp_path: Path) -> None:
    rows = [
        [7, "plain", " padded ", "2024-01-15 09:12:06.000000", "2024-02-29", 1],
        [10**15 - 1, "a & <b> \r\n", "\u3000wide space", "1900-01-01 00:00:00.500000", "1900-03-01", 0],
        [None, "", None, None, None, None],
        [-(10**15) + 1, "🎓" * 3, "x", "2024-01-15T23:59:59", "9999-12-31", 2],
    ]
    types = ["integer", "text", "varchar", "datetime", "date", "boolean"]
    table, spec = make_table(tmp_path / "lms.db", types, rows)
    fast = read_sheets(tmp_path / "lms.db", table, spec, direct=True)
    slow = read_sheets(tmp_path / "lms.db", table, spec, direct=False)
    assert fast[0] == slow[0] and fast[1] == 4
    sheet = fast[0][0]
    assert b'<c r="D2" t="inlineStr"><is><t xml:space="preserve"> padded </t></is></c>' in sheet
    assert b'<c r="C3" t="inlineStr"><is><t xml:space="preserve">a &amp; &lt;b&gt; &#13;\n</t></is></c>' in sheet
    assert '<c r="D3" t="inlineStr"><is><t xml:space="preserve">\u3000wide space</t></is></c>'.encode() in sheet
    assert b'<row r="4"><c r="A4" t="n"><v>3</v></c></row>' in sheet  # (NULLs and '' write no cell)
    assert b'<c r="G2" t="b"><v>1</v></c>' in sheet and b'<c r="G5" t="b"><v>1</v></c>' in sheet


@pytest.mark.parametrize(
    "column,value",
    [
        ("integer", 10**15),  # (Excel keeps 15 digits: the string, noted, is Python's)
        ("integer", -(10**15)),
        ("float", 2.5),  # (rounding is noted by Python)
        ("text", "x" * 16384),  # (longer than C checks: Python counts its UTF-16 length)
        ("text", "nul\x00"),
        ("text", "\ufffe"),
        ("datetime", "1899-12-31 23:59:59"),
        ("date", "1899-12-31"),
        ("blob", b"\x01"),
        ("text", BadText(b"\xff")),
    ],
)
def test_direct_sheets_stop_before_a_row_they_leave_to_python(tmp_path: Path, column: str, value: Any) -> None:
    table, spec = make_table(tmp_path / "lms.db", [column], [[None], [value], [None]])
    fast = read_sheets(tmp_path / "lms.db", table, spec, direct=True)
    slow = read_sheets(tmp_path / "lms.db", table, spec, direct=False)
    assert fast[0] == slow[0] and fast[2] == slow[2]
    if fast[0] != "error":
        assert fast[1] == 1
