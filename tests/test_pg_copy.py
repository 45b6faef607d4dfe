"""CSV from PostgreSQL written by the server (``COPY … TO STDOUT``, ``exporters.pg_csv``)
is the file the driver's batches give, byte for byte.

A CSV-only read pass over PostgreSQL hands each table whose columns all have a type it
knows (integers, numeric, uuid, text, booleans, timestamps without time zone, dates,
bytea) to the server's COPY; C turns the server's text into the canonical text as the
rows arrive.  Here, against a real PostgreSQL:

* hostile values of every such type (quotes, commas, CR, LF, ``\\.``, empty strings,
  years 1 and 9999, fractions PostgreSQL writes short): the same files as without the
  speedups, and COPY was used for exactly the tables it can take;
* a COPY that stops in the middle — a value C leaves to the driver, an error of the
  server's — keeps the rows before it, goes back to its savepoint, and the driver
  writes the rest: the same file; a value Python's ``datetime`` cannot hold fails the
  export as the driver always did;
* an error raised by the writer stops the COPY and leaves the connection usable;
* the guards: not in a transaction, no connection, a database that is not UTF-8, a
  ``DateStyle`` that is not ISO, one column, a type it does not know: not used;
* a table the server writes is not cut into key ranges (the server reads it with its
  own workers), unless other formats read the rows too.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import PG_ADMIN, DatabaseFactory
from test_parallel_export import split_at
from test_speedups import NATIVE, export_in_process, needs_native, source_config

from learnexit.export import reading
from learnexit.exporters import pg_csv, speedups

pytestmark = needs_native

SCHEMA = [
    "CREATE TABLE orgs (id integer PRIMARY KEY, slug varchar(20) UNIQUE NOT NULL, name text)",
    """CREATE TABLE items (
        id integer PRIMARY KEY,
        org_id integer NOT NULL REFERENCES orgs(id),
        label text,
        code varchar(40),
        big bigint,
        small smallint,
        amount numeric(30, 10),
        huge numeric,
        at timestamp,
        at3 timestamp(3),
        on_day date,
        flag boolean,
        bin bytea,
        uid uuid
    )""",
    # a float and a time zone: read through the driver
    "CREATE TABLE readings (id integer PRIMARY KEY, org_id integer NOT NULL REFERENCES orgs(id), x float8, at timestamptz)",
    # one column (csv.writer quotes a lone empty field): through the driver
    "CREATE TABLE tags (org_id integer NOT NULL REFERENCES orgs(id))",
    # char(n): PostgreSQL pads it, and its '' compares equal to '   '
    "CREATE TABLE codes (id integer PRIMARY KEY, org_id integer NOT NULL REFERENCES orgs(id), c char(4))",
]
TEXT = [
    'it\'s "quoted", with commas',
    '"',
    '""',
    "CRLF\r\ninside",
    "lone CR\r",
    "LF\nonly",
    "\\.",
    "\\",
    "C:\\path\\to\\n\\",
    "emoji 🎓🚀 åäö",
    "",
    " ",
    ",",
    "=1+2",
    "'; DROP TABLE items; --",
    "\ufeffbom",
    "tab\tand\u2028separator",
    "t",
    "NULL",
]
MICROS = [0, 1, 10, 500000, 123456, 999999, 120000]


def item_rows(n: int = 150) -> list[dict[str, Any]]:
    rows = []
    for i in range(1, n + 1):
        year = [1, 999, 1000, 1970, 2026, 9999][i % 6]
        stamp = dt.datetime(year, 1 + i % 12, 1 + i % 28, i % 24, i % 60, (i * 7) % 60, MICROS[i % len(MICROS)])
        rows.append(
            {
                "id": i,
                "org_id": 1 if i % 9 else 2,
                "label": TEXT[i % len(TEXT)] if i % 8 else None,
                "code": f"c{i}" if i % 4 else TEXT[(i * 3) % len(TEXT)][:40],
                "big": [0, -1, 2**63 - 1, -(2**63), None][i % 5],
                "small": [0, -(2**15), 2**15 - 1, None][i % 4],
                "amount": [Decimal("12345678901234.123456"), Decimal("1E+3"), Decimal("-0.000001"), None][i % 4],
                "huge": [Decimal(10**39 - 1), Decimal("1E-30"), Decimal("NaN"), Decimal("-0.50"), None][i % 5],
                "at": stamp if i % 10 else None,
                "at3": stamp.replace(microsecond=(stamp.microsecond // 1000) * 1000),
                "on_day": [dt.date(1, 1, 1), dt.date(999, 12, 31), dt.date(2026, 11, 29), dt.date(9999, 12, 31), None][
                    i % 5
                ],
                "flag": [True, False, None][i % 3],
                "bin": [b"", b"\x00'\\\x1a", bytes(range(256)), b"\n" * 60, None][i % 5],
                "uid": uuid.UUID(int=i * 7919) if i % 3 else None,
            }
        )
    return rows


def fill(url: str, items: list[dict[str, Any]]) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for ddl in SCHEMA:
                conn.exec_driver_sql(ddl)
            conn.exec_driver_sql("INSERT INTO orgs VALUES (1, 'acme', 'Acme'), (2, 'other', 'Other')")
            cols = list(items[0])
            insert = f"INSERT INTO items ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})"
            conn.execute(sa.text(insert), items)
            conn.execute(
                sa.text("INSERT INTO readings VALUES (:id, 1, :x, :at)"),
                [
                    {"id": i, "x": [0.1, 1e16, -0.0][i % 3], "at": dt.datetime(2026, 1, i, tzinfo=dt.UTC)}
                    for i in (1, 2, 3)
                ],
            )
            conn.exec_driver_sql("INSERT INTO tags VALUES (1), (1), (2)")
            conn.exec_driver_sql("INSERT INTO codes VALUES (1, 1, 'ab'), (2, 1, ''), (3, 1, NULL), (4, 2, 'x')")
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def pg_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    factory = DatabaseFactory("postgresql", tmp_path_factory.mktemp("pg-copy"))
    try:
        url = factory.new("pgcopy")
        fill(url, item_rows())
        yield url
    finally:
        factory.drop_all()


class Copies:
    """Which tables ``pg_csv`` wrote, and how each COPY ended (in the first export that
    read the table: the one with the speedups)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.done: dict[str, tuple[int, bool, str | None] | None] = {}
        real = reading.pg_csv

        def spy(conn: sa.Connection, stmt: sa.Select[Any], write: Any) -> Any:
            out = real(conn, stmt, write)
            self.done.setdefault(stmt.get_final_froms()[0].name, out)  # type: ignore[attr-defined]  # (the first export's)
            return out

        monkeypatch.setattr(reading, "pg_csv", spy)


def export_both(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, formats: tuple[str, ...] = ("csv",)
) -> tuple[tuple[dict[str, bytes], list[str]], tuple[dict[str, bytes], list[str]], Copies]:
    """The CSV export with the server's COPY and with the speedups off (in this process)."""
    monkeypatch.setenv("LEARNEXIT_EXPORT_WORKERS", "1")
    cfg = source_config(tmp_path, url, "\n[export]\nbatch_size = 16\n")
    copies = Copies(monkeypatch)
    fast = export_in_process(cfg, tmp_path / "c", monkeypatch, speedups_off=False, formats=list(formats))
    slow = export_in_process(cfg, tmp_path / "py", monkeypatch, speedups_off=True, formats=list(formats))
    return fast, slow, copies


def csv_files(package: tuple[dict[str, bytes], list[str]]) -> dict[str, bytes]:
    return {name: data for name, data in package[0].items() if name.endswith(".csv")}


def test_the_server_writes_the_files_the_driver_gives(
    pg_source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, slow, copies = export_both(pg_source, tmp_path, monkeypatch)
    assert csv_files(fast) == csv_files(slow)
    assert fast[1] == slow[1]  # the notes
    assert fast[0] == slow[0]  # every file of the package
    # COPY for the tables whose every column it takes, all of their rows
    assert copies.done["items"] == (134, True, None)
    assert copies.done["orgs"] == (1, True, None)
    assert copies.done["readings"] is None and copies.done["codes"] is None and copies.done["tags"] is None

    # and, by a plain oracle of its own, every field is the canonical text of what was stored
    got = parsed(csv_files(fast)["csv/items.csv"])
    expected = [[oracle(row[name], name) for name in row] for row in item_rows() if row["org_id"] == 1]
    assert got[0] == list(item_rows()[0])
    assert got[1:] == expected


def parsed(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def oracle(value: Any, column: str) -> str:
    """The CSV field of a value of ``items`` as the table stores it (numeric(30, 10) keeps
    ten places; timestamp(3) milliseconds), in canonical text."""
    if value is None:
        return ""
    if column == "amount":
        value = value.quantize(Decimal("1E-10"))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return "NaN" if value.is_nan() else format(value, "f")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def test_numbers_and_binary_are_written_as_the_canonical_text(
    pg_source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, _, _ = export_both(pg_source, tmp_path, monkeypatch)
    lines = csv_files(fast)["csv/items.csv"].decode("utf-8").split("\r\n")
    header = lines[0].split(",")
    assert header[:4] == ["id", "org_id", "label", "code"]
    text = "\r\n".join(lines)
    assert f",{10**39 - 1}," in text and ",0.000000000000000000000000000001," in text and ",NaN," in text
    assert ",-0.50," in text and ",9223372036854775807," in text and ",-32768," in text
    assert ",true," in text and ",false," in text
    assert ",AAEC" in text  # bytes(range(256)), base64 on one line
    assert ",CgoK" in text and "\nCgoK" not in text


def test_a_value_left_to_the_driver_stops_the_copy_and_the_driver_writes_the_rest(
    pg_source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``code`` declared a date to C: rows of date-like codes go by COPY, the first other
    code stops it; the driver reads from that row on, in the same snapshot."""
    engine = sa.create_engine(pg_source)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE items SET code = '2026-11-' || lpad((1 + id %% 28)::text, 2, '0') WHERE id < 40")
    engine.dispose()
    real = pg_csv._field

    def code_as_date(column: Any) -> Any:
        found = real(column)
        return (column, pg_csv.DATE) if column.name == "code" else found

    monkeypatch.setattr(pg_csv, "_field", code_as_date)
    try:
        fast, slow, copies = export_both(pg_source, tmp_path, monkeypatch)
    finally:
        engine = sa.create_engine(pg_source)
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE items SET code = 'c' || id WHERE id < 40")
        engine.dispose()
    assert fast[0] == slow[0]
    found = copies.done["items"]
    assert found is not None
    rows, finished, message = found
    assert not finished and message == "left to the driver"
    assert 0 < rows < 134  # (the rows of org 1 with id < 40 came by COPY)


def test_an_error_of_the_server_in_the_middle_goes_back_to_the_savepoint(
    pg_source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The label asked for as an integer: the server fails on the first label that is not
    one (after rows that are); the rows before it stay, the driver writes the rest."""
    real = pg_csv._field

    def failing_code(column: Any) -> Any:
        if column.name == "code":
            return sa.cast(sa.func.nullif(sa.func.ltrim(column, "c"), ""), sa.Integer), pg_csv.AS_IS
        return real(column)

    monkeypatch.setattr(pg_csv, "_field", failing_code)
    name = sa.make_url(pg_source).database
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:  # (read by the key's index, no sort: each row is made as it is sent)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET enable_sort = off')
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET max_parallel_workers_per_gather = 0')
        fast, slow, copies = export_both(pg_source, tmp_path, monkeypatch)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" RESET enable_sort')
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" RESET max_parallel_workers_per_gather')
        admin.dispose()
    found = copies.done["items"]
    assert found is not None
    rows, finished, message = found
    assert not finished and message is not None and "invalid input syntax" in message
    assert rows > 0
    # (the rows written came from the cast: the files differ exactly there, and the
    # export went on in the same transaction after the savepoint)
    items_fast, items_slow = (parsed(csv_files(p)["csv/items.csv"]) for p in (fast, slow))
    assert len(items_fast) == len(items_slow) == 1 + 134
    assert items_fast[1 + rows :] == items_slow[1 + rows :]
    assert [r[:3] + [r[3].removeprefix("c")] + r[4:] for r in items_slow[1 : 1 + rows]] == items_fast[1 : 1 + rows]
    assert {k: v for k, v in fast[0].items() if k != "csv/items.csv" and k.startswith("csv/")} == {
        k: v for k, v in slow[0].items() if k != "csv/items.csv" and k.startswith("csv/")
    }


@pytest.mark.parametrize("value", ["infinity", "-infinity", "10000-01-01", "0044-03-15 BC"])
def test_a_timestamp_python_cannot_hold_fails_the_export_as_the_driver_does(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = DatabaseFactory("postgresql", tmp_path)
    try:
        url = factory.new("pgcopyinf")
        fill(url, item_rows(30))
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE items SET at = CAST(:v AS timestamp) WHERE id = 20"), {"v": value})
        engine.dispose()
        monkeypatch.setenv("LEARNEXIT_EXPORT_WORKERS", "1")
        cfg = source_config(tmp_path, url)
        copies = Copies(monkeypatch)
        errors = []
        for off in (False, True):
            with pytest.raises(Exception) as caught:
                export_in_process(cfg, tmp_path / f"out{off}", monkeypatch, speedups_off=off, formats=["csv"])
            errors.append((type(caught.value), str(caught.value)))
        assert errors[0] == errors[1]
        found = copies.done["items"]
        assert found is not None and found[1] is False and found[2] == "left to the driver"
        assert found[0] == 17  # the rows of org 1 before id 20 (9 and 18 are org 2's)
    finally:
        factory.drop_all()


def job_connection(url: str) -> tuple[sa.Engine, sa.Connection]:
    engine = sa.create_engine(url)
    conn = engine.connect()
    conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    return engine, conn


def items_select(conn: sa.Connection) -> sa.Select[Any]:
    items = sa.Table("items", sa.MetaData(), autoload_with=conn)
    return sa.select(*items.columns).order_by(items.c.id)


def test_an_error_raised_by_the_writer_stops_the_copy_and_leaves_the_connection_usable(pg_source: str) -> None:
    engine, conn = job_connection(pg_source)
    try:
        stmt = items_select(conn)
        calls = []

        def write(data: bytes, rows: int) -> None:
            calls.append(rows)
            raise OSError(28, "No space left on device")

        with pytest.raises(OSError, match="No space left"):
            pg_csv.pg_csv(conn, stmt, write)
        assert calls  # (the first chunk: the last rows, as the table is small)
        assert conn.exec_driver_sql("SELECT count(*) FROM items").scalar() == 150
        got: list[bytes] = []
        assert pg_csv.pg_csv(conn, stmt, lambda data, rows: got.append(data)) == (150, True, None)
        assert b"".join(got).count(b"\r\n") >= 150
    finally:
        conn.close()
        engine.dispose()


def test_a_copy_the_server_refuses_before_its_first_row_reads_nothing(pg_source: str) -> None:
    """An error before the COPY starts (here when the server plans it) is the server's
    message and no rows; the connection, back at the savepoint, reads on."""
    assert NATIVE is not None
    engine, conn = job_connection(pg_source)
    try:
        conn.exec_driver_sql("SELECT 1")  # (the transaction begins)
        conn.exec_driver_sql("SAVEPOINT before")
        address = conn.connection.dbapi_connection.pgconn.pgconn_ptr  # type: ignore[union-attr]
        sql = "COPY (SELECT 1 / 0, 2) TO STDOUT (FORMAT csv)"
        rows, finished, message = NATIVE.pg_copy_csv(address, sql, [0, 0], lambda *a: None, 1024)
        assert (rows, finished) == (0, False) and "division by zero" in message
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT before")
        assert conn.exec_driver_sql("SELECT count(*) FROM items").scalar() == 150
    finally:
        conn.close()
        engine.dispose()


def test_nothing_is_copied_outside_a_transaction_or_without_a_connection(pg_source: str) -> None:
    assert NATIVE is not None
    assert pg_csv.pg_library() is not None
    engine = sa.create_engine(pg_source, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            address = conn.connection.dbapi_connection.pgconn.pgconn_ptr  # type: ignore[union-attr]
            sql = "COPY (SELECT 1, 2) TO STDOUT (FORMAT csv)"
            assert NATIVE.pg_copy_csv(address, sql, [0, 0], lambda *a: None, 1024) is None  # (autocommit: idle)
            assert NATIVE.pg_copy_csv(0, sql, [0, 0], lambda *a: None, 1024) is None
            with pytest.raises(TypeError):
                NATIVE.pg_copy_csv("x", sql, [0, 0], lambda *a: None, 1024)
    finally:
        engine.dispose()


def test_the_server_is_not_asked_where_its_text_could_differ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database that is not UTF-8, or whose DateStyle is not ISO: the driver reads (and
    the files are the same)."""
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"le_pgascii_{uuid.uuid4().hex[:8]}"
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            )
            conn.exec_driver_sql(f"ALTER DATABASE {name} SET client_encoding = 'UTF8'")
        fill(url, item_rows(20))
        (tmp_path / "ascii").mkdir()
        (tmp_path / "german").mkdir()
        fast, slow, copies = export_both(url, tmp_path / "ascii", monkeypatch)
        assert fast[0] == slow[0] and copies.done["items"] is None
        with admin.connect() as conn:
            conn.exec_driver_sql(f"ALTER DATABASE {name} SET DateStyle = 'German, DMY'")
        drop = sa.create_engine(url)  # (psycopg cannot read a timestamptz written so)
        with drop.begin() as conn:
            conn.exec_driver_sql("DROP TABLE readings")
        drop.dispose()
        fast, slow, copies = export_both(url, tmp_path / "german", monkeypatch)
        assert fast[0] == slow[0] and copies.done["items"] is None
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


def test_copy_select_takes_the_types_whose_text_it_knows(pg_source: str) -> None:
    engine = sa.create_engine(pg_source)
    try:
        with engine.connect() as conn:
            meta = sa.MetaData()
            meta.reflect(conn)
            found = pg_csv.copy_select(sa.select(*meta.tables["items"].columns))
            assert found is not None
            assert found[1] == [0, 0, 1, 1, 0, 0, 0, 0, 3, 3, 4, 2, 1, 0]
            for name in ("readings", "tags", "codes"):
                assert pg_csv.copy_select(sa.select(*meta.tables[name].columns)) is None
    finally:
        engine.dispose()


def test_a_table_the_server_writes_is_not_cut_into_ranges(
    pg_source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read by the driver, the big table is cut into key ranges for two processes; written
    by the server, it is one COPY (the server reads it with its own workers): the same file."""
    joined = split_at(monkeypatch, 50)
    monkeypatch.setenv("LEARNEXIT_EXPORT_WORKERS", "2")
    cfg = source_config(tmp_path, pg_source, "\n[export]\nbatch_size = 16\n")
    slow = export_in_process(cfg, tmp_path / "py", monkeypatch, speedups_off=True, formats=["csv"])
    assert joined == [("csv", "items", 1)]
    joined.clear()
    fast = export_in_process(cfg, tmp_path / "c", monkeypatch, speedups_off=False, formats=["csv"])
    assert joined == []
    assert fast == slow


def test_without_the_speedups_nothing_is_copied(pg_source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, conn = job_connection(pg_source)
    try:
        monkeypatch.setattr(speedups, "native", None)
        assert pg_csv.pg_csv(conn, items_select(conn), lambda *a: None) is None
        monkeypatch.setattr(speedups, "native", NATIVE)
        monkeypatch.setattr(speedups, "direct_reads", False)
        assert pg_csv.pg_csv(conn, items_select(conn), lambda *a: None) is None
    finally:
        conn.close()
        engine.dispose()


def test_the_environment_does_not_leak_into_other_tests() -> None:
    assert os.environ.get(speedups.SPEEDUPS_ENV) in (None, "", "0")
