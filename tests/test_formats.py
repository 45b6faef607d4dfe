"""The export formats: every row of the customer, equal values, nothing of anyone else.

On all three engines the example LMS is loaded into a fresh database and ``acme`` is
exported with ``run_export``.  The expected rows are read from the source with plain SQL
written out here by hand for the example's schema (not with the ownership code under
test), and the row counts are checked against the example's own counts (known by
construction).  Each format is read back independently (csv module, openpyxl, json,
lxml, and the SQL dump loaded with each engine's own client into a fresh database) and
compared value by value.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as dt
import io
import json
import math
import re
import shutil
import sqlite3
import subprocess
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa
from conftest import ENGINES, DatabaseFactory
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from learnexit.config import Settings, load_settings
from learnexit.demo import build_example, build_shared_schema, populate_shared
from learnexit.export.run import run_export
from learnexit.exporters import values, xlsx_format
from learnexit.exporters.base import Exporter, load_builtin
from learnexit.exporters.xlsx_format import sheet_title

CUSTOMER = "acme"
OTHERS = ("globex", "initech")
SHARED = {"catalogue_items", "developer_keys"}
FORMATS = ["csv", "xlsx", "json", "xml", "sql"]
DIALECT_OF = {"sqlite": "sqlite", "postgresql": "postgresql", "mariadb": "mysql"}
KIND_OF = {v: k for k, v in DIALECT_OF.items()}
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"

# Which rows of the example belong to a customer, written out by hand for its schema.
_ORG = "SELECT id FROM organisations WHERE slug = :c"
_COURSES = f"SELECT id FROM courses WHERE organisation_id IN ({_ORG})"
OWNED_IDS = {
    "organisations": _ORG,
    "users": f"SELECT user_id FROM logins WHERE organisation_id IN ({_ORG}) "
    f"UNION SELECT user_id FROM memberships WHERE organisation_id IN ({_ORG})",
    "activity_log": f"SELECT id FROM activity_log WHERE organisation_id IN ({_ORG}) OR course_id IN ({_COURSES})",
    "quiz_attempts": f"SELECT id FROM quiz_attempts WHERE quiz_id IN (SELECT id FROM quizzes WHERE course_id IN "
    f"({_COURSES}))",
    "survey_questions": f"SELECT id FROM survey_questions WHERE survey_id IN (SELECT id FROM surveys WHERE course_id "
    f"IN ({_COURSES}))",
    "survey_answers": f"SELECT id FROM survey_answers WHERE survey_id IN (SELECT id FROM surveys WHERE course_id "
    f"IN ({_COURSES}))",
    **{
        t: f"SELECT id FROM {t} WHERE organisation_id IN ({_ORG})"
        for t in ("contracts", "courses", "memberships", "logins", "invoices", "page_views", "reports")
    },
    **{
        t: f"SELECT id FROM {t} WHERE course_id IN ({_COURSES})"
        for t in (
            "course_sections",
            "course_materials",
            "enrolments",
            "completions",
            "quizzes",
            "surveys",
            "feedback",
            "certificates",
            "attachments",
        )
    },
}
SAFE_VALUE = re.compile(r"^[\w.@+-]{6,}$")  # written identically by every format


# --------------------------------------------------------------------------- the source


Rows = dict[str, dict[Any, dict[str, Any]]]  # table → id → {column: value}


def read_rows(url: str, customer: str) -> Rows:
    """The customer's rows of every owned table, selected with OWNED_IDS, typed by reflection."""
    engine = sa.create_engine(url)
    md = sa.MetaData()
    try:
        with engine.connect() as conn:
            md.reflect(conn)
            out: Rows = {}
            for table, ids in OWNED_IDS.items():
                t = md.tables[table]
                sub = sa.text(ids).bindparams(c=customer).columns(sa.column("id", sa.Integer))
                rows = conn.execute(sa.select(t).where(t.c.id.in_(sub)).order_by(t.c.id)).all()
                out[table] = {r.id: dict(r._mapping) for r in rows}
            return out
    finally:
        engine.dispose()


def shared_values(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            keys = {r[0] for r in conn.execute(sa.text("SELECT key_hash FROM developer_keys"))}
            codes = {r[0] for r in conn.execute(sa.text("SELECT code FROM catalogue_items"))}
    finally:
        engine.dispose()
    return keys | {c for c in codes if SAFE_VALUE.match(c)}


@dataclasses.dataclass
class Case:
    kind: str
    url: str
    settings: Settings
    counts: dict[str, int]
    truth: Rows
    foreign: set[str]  # values of other customers (and shared tables) that acme's data never contains
    package: Path
    notes: list[str]
    dumps: dict[str, Path]  # dialect → SQL dump


@pytest.fixture(scope="module")
def example_config(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The example's own learnexit.toml (build_example writes it)."""
    root = tmp_path_factory.mktemp("example")
    build_example(root)
    return (root / "learnexit.toml").read_text(encoding="utf-8")


@pytest.fixture(scope="module", params=ENGINES)
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, example_config: str):
    """The example on one engine, exported once (all formats) plus an SQL dump per dialect.

    Module-scoped over the same database factory as ``dbs``: loading the example and
    exporting it once per engine keeps the whole module fast.
    """
    kind = str(request.param)
    root = tmp_path_factory.mktemp(f"formats-{kind}")
    factory = DatabaseFactory(kind, root)
    try:
        url = factory.new("formats")
        engine = sa.create_engine(url)
        build_shared_schema(engine)
        info = populate_shared(engine, media_root=None)
        engine.dispose()
        cfg = root / "learnexit.toml"
        cfg.write_text(example_config, encoding="utf-8")
        settings = load_settings(cfg, source_url=url, state_url=f"sqlite:///{root / 'state.db'}")
        truth = read_rows(url, CUSTOMER)
        acme_text = "\n".join(str(v) for rows in truth.values() for row in rows.values() for v in row.values())
        foreign: set[str] = set()
        for other in OTHERS:
            for table, rows in read_rows(url, other).items():
                for row_id, row in rows.items():
                    if row_id in truth[table]:
                        continue  # a person in both organisations: theirs too
                    foreign |= {v for v in row.values() if isinstance(v, str) and SAFE_VALUE.match(v)}
        foreign |= shared_values(url)
        foreign = {v for v in foreign if v not in acme_text}
        result = run_export(settings, CUSTOMER, formats=FORMATS, out=root / "out", sql_dialect=DIALECT_OF[kind])
        dumps = {DIALECT_OF[kind]: result.path / "data" / "sql" / f"{CUSTOMER}.sql"}
        for dialect in DIALECT_OF.values():
            if dialect not in dumps:
                extra = run_export(
                    settings, CUSTOMER, formats=["sql"], out=root / f"out-{dialect}", sql_dialect=dialect
                )
                dumps[dialect] = extra.path / "data" / "sql" / f"{CUSTOMER}.sql"
        yield Case(
            kind, url, settings, info.counts[CUSTOMER], truth, foreign, result.path / "data", list(result.notes), dumps
        )
    finally:
        factory.drop_all()


def test_hand_written_ownership_matches_the_example_counts(case: Case) -> None:
    # The yardstick itself is right: the example counts every row as it generates it.
    assert {t: len(rows) for t, rows in case.truth.items()} == case.counts
    assert all(case.counts[t] > 0 for t in ("users", "activity_log", "course_sections", "survey_answers"))


# --------------------------------------------------------------------------- value comparison


def same_text(text: str | None, value: Any) -> bool:
    """``text`` is the canonical text of ``value`` (design: exact values, ISO 8601, base64)."""
    if value is None:
        return text is None
    if text is None:
        return False
    if isinstance(value, bool):
        return text == ("true" if value else "false")
    if isinstance(value, int):
        return text == str(value)
    if isinstance(value, Decimal):  # exact: same digits, same exponent, no exponent notation
        return "E" not in text.upper() and Decimal(text).as_tuple() == value.as_tuple()
    if isinstance(value, float):
        return float(text) == value
    if isinstance(value, dt.datetime):
        return "T" in text and dt.datetime.fromisoformat(text) == value
    if isinstance(value, dt.date):
        return text == value.isoformat()
    if isinstance(value, bytes):
        return base64.b64decode(text, validate=True) == value
    return text == value


def same_json(item: Any, value: Any) -> bool:
    """JSON-native where exact (null, booleans, integers, floats), canonical text otherwise."""
    if value is None or isinstance(value, (bool, int, float)):
        return type(item) is type(value) and item == value
    return isinstance(item, str) and same_text(item, value)


def same_excel(cell: Any, value: Any) -> bool:
    if value is None:
        return cell is None
    if isinstance(value, bool):
        return cell is value or cell == int(value)
    if isinstance(value, Decimal):
        return isinstance(cell, (int, float)) and Decimal(repr(cell)) == value
    if isinstance(value, dt.datetime):
        return isinstance(cell, dt.datetime) and abs(cell - value) < dt.timedelta(milliseconds=1)
    if isinstance(value, dt.date):
        return isinstance(cell, dt.datetime) and cell.date() == value and cell.time() == dt.time()
    if isinstance(value, str):
        if value == "":
            return cell in (None, "")  # an empty text is an empty cell in Excel, as in CSV
        if len(value) > values.EXCEL_MAX_CHARS:
            return isinstance(cell, str) and len(cell) <= values.EXCEL_MAX_CHARS and value.startswith(cell)
        return cell == value
    return type(cell) is type(value) and cell == value


def same_db(loaded: Any, value: Any) -> bool:
    if isinstance(value, float) and isinstance(loaded, float) and math.isnan(value):
        return math.isnan(loaded)
    if isinstance(value, bool) or isinstance(loaded, bool):
        return loaded is not None and value is not None and bool(loaded) == bool(value) and int(loaded) == int(value)
    if isinstance(value, Decimal) and loaded is not None:
        return Decimal(str(loaded)) == value
    return type(loaded) is type(value) and loaded == value


def compare(label: str, got: Rows, truth: Rows, same: Any) -> None:
    """Every table and row of ``truth`` in ``got``, no other row, every value ``same``."""
    assert set(got) == set(truth), f"{label}: tables"
    problems = []
    for table, rows in truth.items():
        extra = set(got[table]) - set(rows)
        missing = set(rows) - set(got[table])
        if extra or missing:
            problems.append(f"{table}: {len(missing)} missing, {len(extra)} not acme's: {sorted(extra)[:5]}")
            continue
        for row_id, row in rows.items():
            exported = got[table][row_id]
            assert set(exported) == set(row), f"{label}: {table} columns {sorted(exported)} != {sorted(row)}"
            for column, value in row.items():
                if not same(exported[column], value):
                    problems.append(f"{table}[{row_id}].{column}: {exported[column]!r:.80} != {value!r:.80}")
    assert not problems, f"{label}: {len(problems)} differences, first: {problems[:5]}"


# --------------------------------------------------------------------------- readers, one per tabular format


def read_csv(data: Path, case: Case) -> Rows:
    out: Rows = {}
    for path in sorted((data / "csv").glob("*.csv")):
        raw = path.read_bytes()
        assert raw.endswith(b"\r\n") and not raw.startswith(b"\xef\xbb\xbf"), path
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, strict=True)
            header = next(reader)
            rows = {}
            for record in reader:
                row = dict(zip(header, record, strict=True))
                rows[int(row["id"])] = row
        out[path.stem] = rows
    # CSV cannot tell NULL from "": compare NULL as the empty field
    return {
        t: {i: {c: (v if v != "" else None) for c, v in r.items()} for i, r in rows.items()} for t, rows in out.items()
    }


def same_csv(text: str | None, value: Any) -> bool:
    if value == "":
        return text is None
    return same_text(text, value)


def read_xlsx_sheets(path: Path) -> dict[str, list[tuple[str, list[list[Any]]]]]:
    """table → [(sheet title, rows without header)], in Contents order; header checked."""
    wb = openpyxl.load_workbook(path)
    contents = wb.worksheets[0]
    assert contents.title == "Contents"
    listing = [r for r in contents.iter_rows(min_row=2, values_only=True)]
    out: dict[str, list[tuple[str, list[list[Any]]]]] = {}
    for sheet, table, _first, _last, rows in listing:
        ws = wb[sheet]
        data = [list(r) for r in ws.iter_rows(values_only=True)]
        assert len(data) - 1 == rows
        out.setdefault(table, []).append((sheet, data))
    assert len(wb.worksheets) == 1 + len(listing)
    return out


def read_xlsx(data: Path, case: Case) -> Rows:
    out: Rows = {}
    for table, sheets in read_xlsx_sheets(data / "excel" / f"{CUSTOMER}.xlsx").items():
        rows = {}
        for _title, data_rows in sheets:
            header = data_rows[0]
            for record in data_rows[1:]:
                row = dict(zip(header, record, strict=True))
                rows[row["id"]] = row
        out[table] = rows
    return out


def read_json_tables(data: Path, case: Case) -> Rows:
    out: Rows = {}
    for path in sorted((data / "json").glob("*.json")):
        if path.stem == CUSTOMER:
            continue  # the nested document
        rows = json.loads(path.read_bytes())
        out[path.stem] = {r["id"]: r for r in rows}
    return out


def load_dump(kind: str, url: str, dump: Path) -> None:
    """Load an SQL dump with the engine's own client (the driver when it is not installed)."""
    u = sa.engine.make_url(url)
    if kind == "sqlite":
        if shutil.which("sqlite3"):
            with open(dump, "rb") as f:
                done = subprocess.run(["sqlite3", "-bail", u.database], stdin=f, capture_output=True)
            assert done.returncode == 0 and not done.stderr, done.stderr.decode()
        else:
            with sqlite3.connect(u.database) as conn:
                conn.executescript(dump.read_text(encoding="utf-8"))
    elif kind == "postgresql":
        if shutil.which("psql"):
            done = subprocess.run(
                [
                    "psql",
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    u.host,
                    "-p",
                    str(u.port or 5432),
                    "-U",
                    u.username,
                    "-d",
                    u.database,
                    "-f",
                    str(dump),
                ],
                capture_output=True,
            )
            assert done.returncode == 0, done.stderr.decode()
        else:
            import psycopg

            with psycopg.connect(
                host=u.host, port=u.port or 5432, user=u.username, dbname=u.database, autocommit=True
            ) as conn:
                conn.execute(dump.read_text(encoding="utf-8"))
    else:
        client = shutil.which("mariadb") or shutil.which("mysql")
        if client:
            with open(dump, "rb") as f:
                done = subprocess.run(
                    [
                        client,
                        "-h",
                        u.host,
                        "-P",
                        str(u.port or 3306),
                        "-u",
                        u.username,
                        "--default-character-set=utf8mb4",
                        u.database,
                    ],
                    stdin=f,
                    capture_output=True,
                )
            assert done.returncode == 0, done.stderr.decode()
        else:
            import pymysql
            from pymysql.constants import CLIENT

            conn = pymysql.connect(
                host=u.host,
                port=u.port or 3306,
                user=u.username,
                database=u.database,
                charset="utf8mb4",
                client_flag=CLIENT.MULTI_STATEMENTS,
            )
            try:
                with conn.cursor() as cur:
                    cur.execute(dump.read_text(encoding="utf-8"))
                    while cur.nextset():
                        pass
            finally:
                conn.close()


def read_database(url: str) -> Rows:
    engine = sa.create_engine(url)
    md = sa.MetaData()

    @sa.event.listens_for(md, "column_reflect")
    def _floats_as_floats(_inspector: Any, _table: Any, info: dict[str, Any]) -> None:
        if isinstance(info["type"], sa.Float):  # MySQL's DOUBLE reflects as Decimal(scale 10) otherwise
            info["type"].asdecimal = False

    try:
        with engine.connect() as conn:
            md.reflect(conn)
            return {name: {r.id: dict(r._mapping) for r in conn.execute(sa.select(t))} for name, t in md.tables.items()}
    finally:
        engine.dispose()


def read_sql(data: Path, case: Case, db_factory: Any) -> Rows:
    url = db_factory(case.kind).new("dump")
    load_dump(case.kind, url, data / "sql" / f"{CUSTOMER}.sql")
    return read_database(url)


READERS = {
    "csv": (read_csv, same_csv),
    "xlsx": (read_xlsx, same_excel),
    "json": (read_json_tables, same_json),
    "sql": (read_sql, same_db),
}
TABULAR = sorted(n for n, e in load_builtin().items() if type(e).writer is not Exporter.writer)


@pytest.mark.parametrize("fmt", TABULAR)
def test_every_row_round_trips_in_every_tabular_format(case: Case, fmt: str, db_factory) -> None:
    assert fmt in READERS, f"format {fmt!r} has no reader in this test: add one to READERS"
    reader, same = READERS[fmt]
    got = reader(case.package, case, db_factory) if fmt == "sql" else reader(case.package, case)
    compare(fmt, got, case.truth, same)


# --------------------------------------------------------------------------- nested JSON and XML


def test_nested_json_holds_every_row_once_under_its_person(case: Case) -> None:
    doc = json.loads((case.package / "json" / f"{CUSTOMER}.json").read_bytes())
    assert doc["customer"] == CUSTOMER and doc["people_table"] == "users"
    nesting = doc["nesting"]
    # every table that references users directly nests under the person, by that reference
    for table in (
        "enrolments",
        "completions",
        "quiz_attempts",
        "certificates",
        "survey_answers",
        "logins",
        "memberships",
        "feedback",
        "activity_log",
        "page_views",
    ):
        assert nesting[table] == {"under": "users", "key": table, "columns": ["user_id"], "references": ["id"]}
    got: Rows = {t: {} for t in case.truth}
    seen: list[tuple[str, Any]] = []
    child_keys = {t: {n["key"] for n in nesting.values() if n["under"] == t} for t in case.truth}

    def collect(table: str, obj: dict[str, Any], parent: dict[str, Any] | None) -> None:
        got[table][obj["id"]] = {k: v for k, v in obj.items() if k not in child_keys[table]}
        seen.append((table, obj["id"]))
        if parent is not None:
            n = nesting[table]
            assert [obj[c] for c in n["columns"]] == [parent[c] for c in n["references"]]
        for child, n in nesting.items():
            if n["under"] == table:
                for item in obj[n["key"]]:
                    collect(child, item, obj)

    for person in doc["people"]:
        collect("users", person, None)
    for table, rows in doc["other"].items():
        for row in rows:
            got[table][row["id"]] = row
            seen.append((table, row["id"]))
    assert len(seen) == len(set(seen)), "a row appears twice in the nested document"
    compare("nested json", got, case.truth, same_json)
    assert not SHARED & set(doc["other"])


def xml_records(case: Case) -> tuple[Rows, list[tuple[str, Any]]]:
    tree = etree.parse(str(case.package / "xml" / f"{CUSTOMER}.xml"))
    root = tree.getroot()
    got: Rows = {t: {} for t in case.truth}
    seen: list[tuple[str, Any]] = []

    def record(el: Any, parent: dict[str, Any] | None, parent_table: str | None) -> None:
        table = el.get("table") or el.tag
        row: dict[str, Any] = {}
        for child in el:
            if len(child) or child.get("table"):  # a nested row
                continue
            row[child.tag] = None if child.get(XSI_NIL) == "true" else (child.text or "")
        row_id = int(row["id"])
        got[table][row_id] = row
        seen.append((table, row_id))
        if parent is not None and parent_table == "users":
            assert any(row.get(c) == parent["id"] for c in ("user_id", "uploaded_by", "billing_contact_id"))
        for child in el:
            if len(child):
                record(child, row, table)

    people = root.find("people")
    assert people is not None
    for el in people:
        record(el, None, None)
    for el in root.find("other"):
        record(el, None, None)
    return got, seen


def test_xml_validates_against_its_schema_and_holds_every_row(case: Case) -> None:
    schema = etree.XMLSchema(etree.parse(str(case.package / "xml" / f"{CUSTOMER}.xsd")))
    doc = etree.parse(str(case.package / "xml" / f"{CUSTOMER}.xml"))
    assert schema.validate(doc), schema.error_log
    got, seen = xml_records(case)
    assert len(seen) == len(set(seen)), "a row appears twice in the XML"
    compare("xml", got, case.truth, lambda text, value: same_text(text, value))


# --------------------------------------------------------------------------- isolation and limits


def package_texts(data: Path) -> list[tuple[str, bytes]]:
    """Every file's bytes, and every member's of the xlsx."""
    out = []
    for path in sorted(p for p in data.parent.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        out.append((str(path), raw))
        if raw[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                out.extend((f"{path}!{m}", zf.read(m)) for m in zf.namelist())
    return out


def test_no_other_customer_and_no_shared_table_anywhere(case: Case) -> None:
    # a meaningful sample: e-mails, logins, codes, invoice numbers, key hashes of both other organisations
    assert len(case.foreign) > 100
    assert any(v.endswith("@globex.example") for v in case.foreign)
    assert any(v.endswith("@initech.example") for v in case.foreign)
    files = package_texts(case.package) + [(str(p), p.read_bytes()) for p in case.dumps.values()]
    for name, raw in files:
        for value in case.foreign:
            assert value.encode("utf-8") not in raw, f"{value!r} (not acme's) found in {name}"
    for table in SHARED:
        assert not list(case.package.rglob(f"{table}.*"))
        for _name, raw in files:
            assert f"<{table}>".encode() not in raw and f'"{table}"'.encode() not in raw
    assert not SHARED & set(read_xlsx_sheets(case.package / "excel" / f"{CUSTOMER}.xlsx"))


def test_excel_strings_are_never_formulas_and_long_text_is_truncated_with_a_note(case: Case) -> None:
    wb = openpyxl.load_workbook(case.package / "excel" / f"{CUSTOMER}.xlsx")
    formula_like = 0
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    assert cell.data_type == "s", (ws.title, cell.coordinate)
                    formula_like += 1
                assert cell.data_type != "f"
    assert formula_like >= 2  # "=1+2" (a person's name) and the survey answer "=1+1"
    long = [
        (t, i, c, v)
        for t, rows in case.truth.items()
        for i, r in rows.items()
        for c, v in r.items()
        if isinstance(v, str) and len(v) > values.EXCEL_MAX_CHARS
    ]
    assert long, "the example has a text longer than Excel's cell limit"
    for table, _row_id, column, _value in long:
        assert (
            f"xlsx: {table}.{column}: 1 value longer than 32,767 characters truncated "
            "(the full value is in CSV and JSON)" in case.notes
        )
    # and the full value is in CSV and JSON (exactly: the round-trip test compares them too)
    table, row_id, column, value = long[0]
    rows = json.loads((case.package / "json" / f"{table}.json").read_bytes())
    assert next(r for r in rows if r["id"] == row_id)[column] == value
    with open(case.package / "csv" / f"{table}.csv", encoding="utf-8", newline="") as f:
        assert next(r for r in csv.DictReader(f) if r["id"] == str(row_id))[column] == value


def test_excel_continues_long_tables_on_further_sheets(case: Case, tmp_path: Path, monkeypatch) -> None:
    if case.kind != "sqlite":
        pytest.skip("sheet splitting does not depend on the engine: checked on SQLite")
    monkeypatch.setattr(xlsx_format, "MAX_DATA_ROWS", 50)
    result = run_export(case.settings, CUSTOMER, formats=["xlsx"], out=tmp_path)
    sheets = read_xlsx_sheets(result.path / "data" / "excel" / f"{CUSTOMER}.xlsx")
    for table, rows in case.truth.items():
        parts = sheets[table]
        expected_sheets = max(1, math.ceil(len(rows) / 50))
        assert len(parts) == expected_sheets, table
        assert [t for t, _ in parts] == [table] + [f"{table} ({n})" for n in range(2, expected_sheets + 1)]
        ids = [r[0] for _title, data in parts for r in data[1:]]
        assert ids == sorted(rows)  # in key order, none lost at the seams
        assert all(len(data) - 1 <= 50 for _title, data in parts)
        if expected_sheets > 1:
            assert (
                f"xlsx: {table}: {len(rows):,} rows continue over {expected_sheets} sheets "
                "(Excel holds 50 rows per sheet)" in result.notes
            )


def test_worksheets_deflated_by_isal_hold_what_zlib_gives(case: Case, tmp_path: Path, monkeypatch) -> None:
    """With ``isal`` installed the worksheets are deflated by ISA-L (``_fast_deflate``):
    another, smaller stream of the same members — openpyxl and zipfile read the same."""
    if case.kind != "sqlite" or xlsx_format._isal_zlib is None:
        pytest.skip("the deflating does not depend on the engine; isal is in learnexit[all]")
    monkeypatch.setenv("LEARNEXIT_NOW", "2026-11-29T10:15:00Z")  # (the workbook's core.xml holds it)
    fast = run_export(case.settings, CUSTOMER, formats=["xlsx"], out=tmp_path / "isal")
    monkeypatch.setattr(xlsx_format, "_isal_zlib", None)
    plain = run_export(case.settings, CUSTOMER, formats=["xlsx"], out=tmp_path / "zlib")
    books = [r.path / "data" / "excel" / f"{CUSTOMER}.xlsx" for r in (fast, plain)]
    with zipfile.ZipFile(books[0]) as a, zipfile.ZipFile(books[1]) as b:
        assert a.testzip() is None and b.testzip() is None
        assert a.namelist() == b.namelist()
        for name in a.namelist():
            assert a.read(name) == b.read(name), name
        sheets = [n for n in a.namelist() if n.startswith("xl/worksheets/")]
        # (ISA-L's stream is another than zlib's: it was used)
        assert any(a.getinfo(n).compress_size != b.getinfo(n).compress_size for n in sheets)
    assert read_xlsx_sheets(books[0]) == read_xlsx_sheets(books[1])


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_sql_dump_loads_into_a_fresh_database_of_each_engine(case: Case, dialect: str, db_factory) -> None:
    """Every dump loads into every engine (the matching one is also in the round-trip test)."""
    kind = KIND_OF[dialect]
    url = db_factory(kind).new("load")
    load_dump(kind, url, case.dumps[dialect])
    compare(f"sql {dialect} from {case.kind}", read_database(url), case.truth, same_db)
    head = case.dumps[dialect].read_text(encoding="utf-8")[:600]
    assert head.startswith("-- learnexit SQL dump\n-- customer: acme (Acme Lärande AB)\n")
    assert f"-- dialect: {dialect}" in head


# --------------------------------------------------------------------------- awkward values through the SQL dump

awk = sa.MetaData()
sa.Table("orgs", awk, sa.Column("id", sa.Integer, primary_key=True), sa.Column("slug", sa.String(20), unique=True))
sa.Table(
    "items",
    awk,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("items.id"), nullable=True),
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("code", sa.String(40), nullable=True),
    sa.Column("amount", sa.Numeric(20, 6), nullable=True),
    sa.Column("ratio", sa.Double, nullable=True),
    sa.Column("blob", sa.LargeBinary, nullable=True),
    sa.Column("flag", sa.Boolean, nullable=True),
    sa.Column("at", sa.DateTime, nullable=True),
    sa.Column("on", sa.Date, nullable=True),
)
AWK_CONFIG = """
[source]
url = "{url}"
[state]
url = "sqlite:///{state}"
[customer]
table = "orgs"
key = "slug"
"""
AWKWARD_TEXT = [
    'it\'s "quoted"',
    "C:\\path\\to\\n",
    "back\\",
    "line\nbreak\r\nand\ttab",
    "emoji 🎓🚀 åäö",
    "",
    " leading and trailing ",
    "=1+2",
    "'; DROP TABLE items; --",
    "\\'",
    "percent % and _",
]


def awkward_rows(kind: str) -> list[dict[str, Any]]:
    rows = []
    # ids chosen so that parents come AFTER children: 1 → 3 → 2, and 4 references itself
    parents = {1: 3, 2: None, 3: 2, 4: 4}
    for i in range(1, 13):
        rows.append(
            {
                "id": i,
                "org_id": 1,
                "parent_id": parents.get(i),
                "label": AWKWARD_TEXT[i - 1] if i <= len(AWKWARD_TEXT) else None,
                "code": f"c{i}",
                "amount": Decimal("12345678901234.123456") if i == 1 else Decimal(i).scaleb(-6),
                "ratio": [0.1, 1e300, -2.5e-300, None][i % 4],
                "blob": bytes(range(256)) if i == 1 else b"\\'\x00",
                "flag": [True, False, None][i % 3],
                "at": dt.datetime(2026, 1, 2, 3, 4, 5, 123456 if kind != "mariadb" else 0),
                "on": dt.date(1899, 12, 31) if i == 2 else dt.date(2026, 11, 29),
            }
        )
    if kind != "postgresql":
        rows[5]["label"] = "nul\x00inside"  # PostgreSQL text cannot hold NUL
    else:  # only PostgreSQL stores NaN and Infinity
        rows[7]["ratio"], rows[8]["ratio"] = float("nan"), float("inf")
    return rows


def make_awkward_source(url: str, kind: str, folder: Path) -> tuple[Settings, list[dict[str, Any]]]:
    engine = sa.create_engine(url)
    awk.create_all(engine)
    rows = awkward_rows(kind)
    with engine.begin() as conn:
        conn.execute(awk.tables["orgs"].insert(), [{"id": 1, "slug": "a"}, {"id": 2, "slug": "b"}])
        # insert without the self-references first: the source must accept them too
        conn.execute(awk.tables["items"].insert(), [{**r, "parent_id": None} for r in rows])
        for r in rows:
            if r["parent_id"] is not None:
                conn.execute(
                    awk.tables["items"]
                    .update()
                    .where(awk.tables["items"].c.id == r["id"])
                    .values(parent_id=r["parent_id"])
                )
        conn.execute(awk.tables["items"].insert(), [{"id": 99, "org_id": 2, "code": "not-a-row-of-a"}])
    engine.dispose()
    cfg = folder / "awk.toml"
    cfg.write_text(AWK_CONFIG.format(url=url, state=folder / "state.db"), encoding="utf-8")
    return load_settings(cfg), rows


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_sql_dump_renders_awkward_values_exactly(dbs, db_factory, tmp_path: Path, dialect: str) -> None:
    url = dbs.new("awk")
    settings, rows = make_awkward_source(url, dbs.kind, tmp_path)
    result = run_export(settings, "a", formats=["sql"], out=tmp_path / "out", sql_dialect=dialect)
    dump = result.path / "data" / "sql" / "a.sql"
    text = dump.read_text(encoding="utf-8")
    assert "not-a-row-of-a" not in text
    assert "UPDATE items SET parent_id = 3 WHERE id = 1;" in text  # forward reference: set after the INSERTs
    assert "FOREIGN_KEY_CHECKS" not in text
    target = db_factory(KIND_OF[dialect]).new("awkload")
    load_dump(KIND_OF[dialect], target, dump)
    loaded = read_database(target)
    # what the source holds (SQLite keeps decimals as binary floats, MariaDB no microseconds)
    expected = {i: r for i, r in read_database(url)["items"].items() if i != 99}
    assert {i: r["label"] for i, r in expected.items()} == {r["id"]: r["label"] for r in rows}
    if dialect == "postgresql" and dbs.kind != "postgresql":
        expected[6] = {**expected[6], "label": expected[6]["label"].replace("\x00", "")}
        assert "sql: items.label: 1 value contained NUL characters PostgreSQL cannot store: removed" in result.notes
    if dbs.kind == "postgresql" and dialect != "postgresql":
        lost = [8] if dialect == "sqlite" else [8, 9]  # SQLite keeps Infinity, not NaN; MySQL neither
        for i in lost:
            expected[i] = {**expected[i], "ratio": None}
        assert f"sql: items.ratio: 1 value NaN cannot be stored by {dialect}: written as NULL" in result.notes
    if dialect == "sqlite" and dbs.kind != "sqlite":
        assert expected[1]["amount"] == Decimal("12345678901234.123456")
        assert float(loaded["items"][1]["amount"]) == float(expected[1]["amount"])
        expected[1] = {**expected[1], "amount": loaded["items"][1]["amount"]}
        assert (
            "sql: items.amount: 1 value with more than 15 significant digits: SQLite keeps decimals as "
            "binary floating point and will round them when loading" in result.notes
        )
    assert set(loaded["items"]) == set(expected)
    for row_id, row in expected.items():
        for column, value in row.items():
            got = loaded["items"][row_id][column]
            assert same_db(got, value), (row_id, column, got, value)
    assert loaded["orgs"] == {1: {"id": 1, "slug": "a"}}


def test_mysql_doubles_are_read_as_floats(db_factory, tmp_path: Path) -> None:
    url = db_factory("mariadb").new("dbl")
    settings, _rows = make_awkward_source(url, "mariadb", tmp_path)
    result = run_export(settings, "a", formats=["csv"], out=tmp_path / "out")
    with open(result.path / "data" / "csv" / "items.csv", encoding="utf-8", newline="") as f:
        ratios = {r["id"]: r["ratio"] for r in csv.DictReader(f)}
    assert (ratios["1"], ratios["2"], ratios["3"]) == ("1e+300", "-2.5e-300", "")


def test_sql_non_finite_numbers_and_time_zones_per_dialect() -> None:
    san = values.Sanitiser("sql")
    from learnexit.exporters.sql_dialect import Literals, TargetColumn

    col = TargetColumn("x", sa.Double(), "float", True, False)
    dcol = TargetColumn("d", sa.Numeric(), "decimal", True, False)
    tcol = TargetColumn("t", sa.DateTime(), "datetime", True, False)
    bcol = TargetColumn("b", sa.LargeBinary(), "bytes", True, False)
    scol = TargetColumn("s", sa.Text(), "text", True, False)
    pg, lite, my = (Literals(d, san) for d in ("postgresql", "sqlite", "mysql"))
    assert pg.literal(float("nan"), col, "t") == "'NaN'::float8"
    assert pg.literal(float("-inf"), col, "t") == "'-Infinity'::float8"
    assert lite.literal(float("inf"), col, "t") == "9e999"
    assert lite.literal(float("nan"), col, "t") == "NULL"
    assert my.literal(float("nan"), col, "t") == "NULL"
    assert pg.literal(Decimal("NaN"), dcol, "t") == "'NaN'::numeric"
    assert pg.literal(Decimal("1E+3"), dcol, "t") == "1000"
    aware = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert pg.literal(aware, tcol, "t") == "'2026-06-01 12:00:00+02:00'"
    assert my.literal(aware, tcol, "t") == "'2026-06-01 10:00:00'"
    assert lite.literal(aware, tcol, "t") == "'2026-06-01 10:00:00.000000'"
    assert pg.literal(b"\x00'\\", bcol, "t") == "'\\x00275c'::bytea"
    assert my.literal(b"", bcol, "t") == "X''"
    assert my.literal("a\\b'c\x00", scol, "t") == "'a\\\\b''c\\0'"
    assert pg.literal("a\\b'c", scol, "t") == "'a\\b''c'"
    assert lite.literal("a\x00b", scol, "t") == "'a' || char(0) || 'b'"
    job = _NoteSink()
    san.report(job)
    assert any("NaN cannot be stored by sqlite: written as NULL" in n for n in job.notes)
    assert any("with a time zone written as UTC (mysql keeps no zone)" in n for n in job.notes)


class _NoteSink:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, fmt: str, text: str) -> None:
        self.notes.append(f"{fmt}: {text}")


# --------------------------------------------------------------------------- the sanitiser


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_decimal_text_is_exact_plain_notation(value: Decimal) -> None:
    out = values.text(value)
    assert out is not None and "E" not in out.upper()
    assert Decimal(out) == value
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent <= 0:  # every digit kept, trailing zeros too
        assert Decimal(out).as_tuple() == value.as_tuple()


@given(st.floats())
def test_float_text_reads_back_as_the_same_float(value: float) -> None:
    out = values.text(value)
    assert out is not None
    back = float(out.replace("Infinity", "inf"))
    assert back == value or (math.isnan(back) and math.isnan(value))


@given(st.text(st.characters(exclude_categories=()), max_size=50))
def test_xml_text_is_always_xml(value: str) -> None:
    san = values.Sanitiser("xml")
    fixed = san.xml_string(value, "t", "c")
    el = etree.Element("v")
    el.text = fixed  # raises on anything XML cannot hold
    assert (etree.fromstring(etree.tostring(el, encoding="utf-8")).text or "") == fixed
    assert (fixed != value) == bool(san.changes)
    assert len(fixed) == len(value)


@given(st.text(max_size=40), st.integers(min_value=1, max_value=40))
def test_utf16_truncation_never_splits_a_pair(value: str, limit: int) -> None:
    cut = values.truncate_utf16(value, limit)
    assert value.startswith(cut) and values.utf16_len(cut) <= limit
    rest = value[len(cut) :]
    assert not rest or values.utf16_len(cut + rest[0]) > limit


def test_canonical_text_of_every_kind() -> None:
    t = values.text
    assert t(None) is None and values.csv_text(None) == ""
    assert (t(True), t(False), t(0), t(-7)) == ("true", "false", "0", "-7")
    assert t(Decimal("1E+3")) == "1000" and t(Decimal("0.000001")) == "0.000001" and t(Decimal("87.50")) == "87.50"
    assert (t(Decimal("NaN")), t(Decimal("-Infinity")), t(float("inf")), t(float("nan"))) == (
        "NaN",
        "-Infinity",
        "Infinity",
        "NaN",
    )
    assert t(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05"
    assert t(dt.datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=dt.UTC)) == "2026-01-02T03:04:05.000060+00:00"
    assert t(dt.date(2026, 1, 2)) == "2026-01-02" and t(dt.time(9, 30)) == "09:30:00"
    assert t(dt.timedelta(days=-1, seconds=5)) == "-P0DT23H59M55S"
    assert t(b"\x00\xff") == "AP8=" and t({"a": [1, "å"]}) == '{"a":[1,"å"]}'
    assert t("  as is\r\n") == "  as is\r\n"


def test_excel_values_keep_what_excel_can_hold_and_note_the_rest() -> None:
    san = values.Sanitiser("xlsx")
    x = san.excel
    assert x("=1+2", "t", "c") == "=1+2"
    assert x(10**15, "t", "big") == str(10**15) and x(10**15 - 1, "t", "big") == 10**15 - 1
    assert x(Decimal("1234567890.123456"), "t", "dec") == "1234567890.123456"
    assert x(Decimal("87.50"), "t", "dec") == Decimal("87.50")
    assert x(dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=1))), "t", "at") == dt.datetime(
        2026, 1, 1, 11
    )
    assert x(dt.date(1899, 1, 1), "t", "on") == "1899-01-01"
    assert x("bell\x07", "t", "ctl") == "bell\ufffd"
    assert x(float("nan"), "t", "f") == "NaN"
    long = "🎓" * 20_000  # 40,000 UTF-16 units
    assert values.utf16_len(x(long, "t", "long")) <= 32_767
    job = _NoteSink()
    san.report(job)
    assert "xlsx: t.big: 1 value with more than 15 digits written as text (Excel would round them)" in job.notes
    assert "xlsx: t.at: 1 value with a time zone written as UTC without zone (Excel has no time zones)" in job.notes
    assert "xlsx: t.ctl: 1 value contained characters Excel cannot hold: replaced by U+FFFD" in job.notes
    assert (
        "xlsx: t.long: 1 value longer than 32,767 characters truncated (the full value is in CSV and JSON)" in job.notes
    )
    assert all("bell" not in n and "🎓" not in n for n in job.notes)  # counts, never values


def test_sheet_titles_are_safe_short_and_unique() -> None:
    used: set[str] = set()
    titles = [sheet_title(n, used) for n in ("a/b:c*d?e[f]g\\h", "History", "x" * 40, "X" * 40, "'quoted'")]
    assert titles[0] == "a_b_c_d_e_f_g_h"
    assert titles[1] == "History~2"
    assert titles[2] == "x" * 31 and titles[3] == "X" * 29 + "~2"
    assert titles[4] == "quoted"
    assert sheet_title("users", used, part=12) == "users (12)"
    assert all(len(t) <= 31 for t in titles)


# --------------------------------------------------------------------------- nesting shapes and awkward names

odd = sa.MetaData()
sa.Table("orgs", odd, sa.Column("id", sa.Integer, primary_key=True), sa.Column("slug", sa.String(20), unique=True))
sa.Table(
    "users",
    odd,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50)),
    sa.Column("logins", sa.Integer),
)  # a column named like a table that nests under users
sa.Table(
    "logins",
    odd,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
)
sa.Table(
    "grade items",
    odd,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("max score", sa.Numeric(6, 2)),
    sa.Column("2nd try", sa.Boolean),
)
sa.Table(
    "grade notes",
    odd,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("grade items.id"), nullable=False),
    sa.Column("text", sa.Text),
)
ODD_DATA = {
    "orgs": [{"id": 1, "slug": "a"}, {"id": 2, "slug": "b"}],
    "users": [
        {"id": 1, "name": "Ann", "logins": 3},
        {"id": 2, "name": "Bo", "logins": None},
        {"id": 3, "name": "Cy (b only)", "logins": 1},
    ],
    "logins": [
        {"id": 1, "org_id": 1, "user_id": 1},
        {"id": 2, "org_id": 1, "user_id": 2},
        {"id": 3, "org_id": 2, "user_id": 3},
    ],
    "grade items": [
        {"id": 1, "org_id": 1, "user_id": 1, "max score": Decimal("10.50"), "2nd try": True},
        {"id": 2, "org_id": 1, "user_id": None, "max score": None, "2nd try": None},
        {"id": 3, "org_id": 2, "user_id": 3, "max score": Decimal("1.00"), "2nd try": False},
    ],
    "grade notes": [
        {"id": 1, "item_id": 1, "text": "deep"},
        {"id": 2, "item_id": 2, "text": "orphan's"},
        {"id": 3, "item_id": 3, "text": "not a's"},
    ],
}
ODD_CONFIG = (
    AWK_CONFIG
    + """
[tables.users]
owned_via = ["logins.user_id"]
"""
)
PEOPLE_ROLE = """
[roles.people]
table = "users"
id = "id"
name = "name"
"""


@pytest.mark.parametrize("people_role", [True, False], ids=["people", "no-people"])
def test_nesting_depth_collisions_and_names_that_are_not_xml(
    dbs, db_factory, tmp_path: Path, people_role: bool
) -> None:
    url = dbs.new("odd")
    engine = sa.create_engine(url)
    odd.create_all(engine)
    with engine.begin() as conn:
        for table in odd.sorted_tables:
            conn.execute(table.insert(), ODD_DATA[table.name])
    engine.dispose()
    cfg = tmp_path / "odd.toml"
    cfg.write_text(
        ODD_CONFIG.format(url=url, state=tmp_path / "state.db") + (PEOPLE_ROLE if people_role else ""), encoding="utf-8"
    )
    result = run_export(
        load_settings(cfg), "a", formats=["json", "xml", "sql"], out=tmp_path / "out", sql_dialect=DIALECT_OF[dbs.kind]
    )
    data = result.path / "data"
    schema = etree.XMLSchema(etree.parse(str(data / "xml" / "a.xsd")))
    doc = etree.parse(str(data / "xml" / "a.xml"))
    assert schema.validate(doc), schema.error_log
    root = doc.getroot()
    if not people_role:
        assert not (data / "json" / "a.json").exists()
        assert (
            "json: no nested document json/a.json: no [roles.people] is configured (the per-table files "
            "hold every row)" in result.notes
        )
        assert "xml: rows are not nested under people: no [roles.people] is configured" in result.notes
        assert root.find("people") is None
        assert [el.get("table") or el.tag for el in root.find("other")] == [
            "orgs",
            "users",
            "users",
            "grade items",
            "grade items",
            "grade notes",
            "grade notes",
            "logins",
            "logins",
        ]
    else:
        nested = json.loads((data / "json" / "a.json").read_bytes())
        assert nested["nesting"] == {
            "logins": {"under": "users", "key": "logins_rows", "columns": ["user_id"], "references": ["id"]},
            "grade items": {"under": "users", "key": "grade items", "columns": ["user_id"], "references": ["id"]},
            "grade notes": {"under": "grade items", "key": "grade notes", "columns": ["item_id"], "references": ["id"]},
        }
        ann, bo = nested["people"]
        assert ann == {
            "id": 1,
            "name": "Ann",
            "logins": 3,
            "logins_rows": [{"id": 1, "org_id": 1, "user_id": 1}],
            "grade items": [
                {
                    "id": 1,
                    "org_id": 1,
                    "user_id": 1,
                    "max score": "10.50",
                    "2nd try": True,
                    "grade notes": [{"id": 1, "item_id": 1, "text": "deep"}],
                }
            ],
        }
        assert bo == {
            "id": 2,
            "name": "Bo",
            "logins": None,
            "logins_rows": [{"id": 2, "org_id": 1, "user_id": 2}],
            "grade items": [],
        }
        assert nested["other"] == {
            "orgs": [{"id": 1, "slug": "a"}],
            "grade items": [{"id": 2, "org_id": 1, "user_id": None, "max score": None, "2nd try": None}],
            "logins": [],
            "grade notes": [{"id": 2, "item_id": 2, "text": "orphan's"}],
        }
        users = root.find("people").findall("users")
        assert [u.findtext("name") for u in users] == ["Ann", "Bo"]
        item = users[0].find("grade_items")
        assert item.get("table") == "grade items"
        assert item.find("max_score").get("name") == "max score" and item.findtext("max_score") == "10.50"
        truth = "1" if dbs.kind == "mariadb" else "true"  # MySQL has no boolean type: TINYINT
        assert item.find("_2nd_try").get("name") == "2nd try" and item.findtext("_2nd_try") == truth
        assert item.find("grade_notes").findtext("text") == "deep"
        assert users[0].find("logins_rows").get("table") == "logins"
        assert users[0].findtext("logins") == "3"
        assert users[1].find("logins").get(XSI_NIL) == "true"
    # the SQL dump quotes every awkward name and loads
    target = db_factory(dbs.kind).new("oddload")
    load_dump(dbs.kind, target, data / "sql" / "a.sql")
    loaded = read_database(target)
    assert {t: sorted(rows) for t, rows in loaded.items()} == {
        "orgs": [1],
        "users": [1, 2],
        "logins": [1, 2],
        "grade items": [1, 2],
        "grade notes": [1, 2],
    }
    assert loaded["grade items"][1]["max score"] == Decimal("10.50")
