"""Formats exported side by side in several processes give the package one process gives.

``LEARNEXIT_EXPORT_WORKERS`` forces the number of processes.  The example LMS is exported
with every format once in one process and once in two (SQLite, and PostgreSQL with its
exported snapshot), and the packages are compared file by file; a worker's failure, and a
source written while the workers start, are handled.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa
from test_documents import docx_text, pdf_text

from learnexit.config import Settings, load_settings
from learnexit.demo import build_example, build_shared_schema, populate_shared
from learnexit.errors import OperationalError
from learnexit.export import parallel, specs
from learnexit.export.run import ExportResult, run_export
from learnexit.exporters import xml_format
from learnexit.exporters.csv_format import CsvWriter
from learnexit.exporters.sql_format import SqlWriter
from learnexit.exporters.xlsx_format import XlsxWriter
from learnexit.ledger.schema import exports
from learnexit.ledger.store import Ledger
from learnexit.package.verify import verify_package
from learnexit.source import Source

FORMATS = ["csv", "xlsx", "json", "xml", "pdf", "docx", "media", "sql"]
NOW = "2026-11-29T10:15:00Z"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parallel")
    build_example(root, activity_rows=3000)
    return root


def settings_for(example: Path, tmp: Path, source_url: str | None = None) -> Settings:
    settings = load_settings(example / "learnexit.toml", source_url=source_url)
    return dataclasses.replace(settings, state_url=f"sqlite:///{tmp / 'state.db'}")


def run(settings: Settings, out: Path, workers: int, monkeypatch: pytest.MonkeyPatch, **options: Any) -> ExportResult:
    monkeypatch.setenv("LEARNEXIT_EXPORT_WORKERS", str(workers))
    monkeypatch.setenv("LEARNEXIT_NOW", NOW)
    return run_export(settings, "acme", out=out, **options)


def export(settings: Settings, out: Path, workers: int, monkeypatch: pytest.MonkeyPatch) -> ExportResult:
    return run(settings, out, workers, monkeypatch, formats=FORMATS)


def postgresql_example(db_factory: Any, name: str) -> str:
    """The example LMS (3,000 activity rows) in a new PostgreSQL database: its URL."""
    url = db_factory("postgresql").new(name)
    engine = sa.create_engine(url)
    build_shared_schema(engine)
    populate_shared(engine, media_root=None, activity_rows=3000)
    engine.dispose()
    return str(url)


def sorted_lines(path: Path) -> list[str]:
    # foreign keys come in the order reflection finds them, which is not stable: compare lines
    return sorted(line.rstrip(", ") for line in path.read_text(encoding="utf-8").splitlines())


def xlsx_values(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    wb = openpyxl.load_workbook(path, read_only=True)
    return {ws.title: list(ws.iter_rows(values_only=True)) for ws in wb.worksheets}


def same_package(one: ExportResult, two: ExportResult) -> None:
    a, b = one.path / "data", two.path / "data"
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        if rel.endswith((".csv", ".json", ".xml", ".xsd")) and rel != "datapackage.json":
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
        elif rel.endswith(".sql"):
            assert sorted_lines(a / rel) == sorted_lines(b / rel), rel
        elif rel.endswith(".xlsx"):
            assert xlsx_values(a / rel) == xlsx_values(b / rel), rel
    assert sorted(one.notes) == sorted(two.notes)
    assert one.tables == two.tables
    tables_a = {r["name"]: r.get("schema") for r in json.loads((a / "datapackage.json").read_bytes())["resources"]}
    tables_b = {r["name"]: r.get("schema") for r in json.loads((b / "datapackage.json").read_bytes())["resources"]}
    assert tables_a.keys() == tables_b.keys()
    assert verify_package(one.path).valid and verify_package(two.path).valid


def test_two_processes_write_the_package_one_process_writes(example: Path, tmp_path: Path, monkeypatch) -> None:
    settings = settings_for(example, tmp_path)
    one = export(settings, tmp_path / "one", 1, monkeypatch)
    two = export(settings, tmp_path / "two", 2, monkeypatch)
    same_package(one, two)
    # The summary, made once every format is done (by the render pool's workers), says
    # what the one-process summary says.
    summary = Path("data") / "documents" / "export-summary"
    assert pdf_text(two.path / summary.with_suffix(".pdf")) == pdf_text(one.path / summary.with_suffix(".pdf"))
    assert docx_text(two.path / summary.with_suffix(".docx")) == docx_text(one.path / summary.with_suffix(".docx"))


def test_postgresql_workers_read_the_exported_snapshot(example: Path, tmp_path: Path, db_factory, monkeypatch) -> None:
    url = postgresql_example(db_factory, "parallel")
    settings = settings_for(example, tmp_path, source_url=url)
    one = export(settings, tmp_path / "one", 1, monkeypatch)
    two = export(settings, tmp_path / "two", 3, monkeypatch)
    same_package(one, two)


def test_a_source_written_meanwhile_is_exported_by_one_process(example: Path, tmp_path: Path, monkeypatch) -> None:
    settings = settings_for(example, tmp_path)
    calls = []

    def changed(self: Source, conn: Any) -> bool:
        calls.append(os.getpid())
        return False

    monkeypatch.setattr(Source, "snapshot_unchanged", changed)
    result = export(settings, tmp_path / "out", 2, monkeypatch)
    assert calls == [os.getpid()] * 2  # asked by the counting helper, then before the workers start
    assert verify_package(result.path).valid
    assert (result.path / "data" / "documents" / "export-summary.pdf").is_file()


def test_a_failing_worker_fails_the_export_cleanly(example: Path, tmp_path: Path, monkeypatch) -> None:
    settings = settings_for(example, tmp_path)

    def broken(self: Any, job: Any) -> None:
        raise OperationalError("the XML step broke")

    monkeypatch.setattr(xml_format.XmlExporter, "after", broken)
    out = tmp_path / "out"
    with pytest.raises(OperationalError, match="the XML step broke"):
        export(settings, out, 2, monkeypatch)
    assert not out.exists() or os.listdir(out) == []
    with Ledger(settings.state_url) as ledger:
        assert [r["status"] for r in ledger.rows(exports, "acme")] == ["failed"]


def test_formats_are_grouped_so_one_read_feeds_several_writers() -> None:
    from learnexit.export.parallel import format_costs, group_formats, reads_rows
    from learnexit.exporters.base import load_builtin

    registry = load_builtin()
    everything = [registry[name] for name in FORMATS]
    cost = format_costs(everything)
    fillers = {"media", "xml", "docx"}  # no rows read, little to do (XML and Word are made by JSON and PDF)
    for workers in (1, 2, 3, 8):
        tasks = group_formats(everything, workers)
        names = [e.name for task in tasks for e in task]
        assert sorted(names) == sorted(FORMATS)  # every format exactly once
        groups = [task for task in tasks if not {e.name for e in task} <= fillers]
        # one per process at most (the documents and the workbook are one unit)
        assert len(groups) == min(workers, len(FORMATS) - len(fillers) - 1)
        assert [[e.name] for e in sorted(everything, key=lambda e: -cost[e.name]) if e.name in fillers] == [
            [e.name for e in task] for task in tasks[len(groups) :]
        ]  # then the small ones, each on its own, for whichever process is free first
        loads = [sum(cost[e.name] for e in task) for task in groups]
        assert loads == sorted(loads, reverse=True)  # the costliest task starts first
        # no process gets much more than another: at most the costliest unit (the documents,
        # which go with the workbook: its read through the driver feeds their activity counts)
        unit = cost["pdf"] + cost["xlsx"]
        assert max(loads) - min(loads) <= unit
        together = [task for task in tasks if {"pdf", "xlsx"} & {e.name for e in task}]
        assert len(together) == 1 and {"pdf", "xlsx"} <= {e.name for e in together[0]}
    two = [[e.name for e in task] for task in group_formats(everything, 2)]
    # the XML document is written by the JSON step, Word with PDF: they cost (almost) nothing
    assert cost["xml"] < 1 and cost["docx"] < 1
    assert sum(reads_rows(registry[n]) for n in two[0]) >= 1 and sum(reads_rows(registry[n]) for n in two[1]) >= 1
    assert [[e.name for e in task] for task in group_formats([registry["csv"], registry["sql"]], 4)] == [
        ["sql"],
        ["csv"],
    ]


# --------------------------------------------------------------------------- a big table in key ranges


def split_at(monkeypatch: pytest.MonkeyPatch, rows: int) -> list[tuple[str, str, int]]:
    """Tables from ``rows`` rows are read in key ranges; returns the ranges the export's own
    process took in ((format, table, range), recorded as each was joined)."""
    monkeypatch.setattr(parallel, "SPLIT_FROM_ROWS", rows)
    joined: list[tuple[str, str, int]] = []
    for fmt, writer in (("csv", CsvWriter), ("sql", SqlWriter)):
        original = writer.join_part

        def record(self: Any, spec: Any, part: int, output: Any, *, fmt: str = fmt, original: Any = original) -> None:
            joined.append((fmt, spec.name, part))
            original(self, spec, part, output)

        monkeypatch.setattr(writer, "join_part", record)
    return joined


def dump_rows(path: Path) -> list[str]:
    """A dump's row tuples, whatever INSERT statement each landed in."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("("):
            rows.append(line.rstrip(",;"))
    return rows


def loaded(dump: Path, tmp: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = tmp / f"{dump.parents[3].name}.db"  # (<out>/<package>/data/sql/acme.sql)
    con = sqlite3.connect(db)
    con.executescript(dump.read_text(encoding="utf-8"))
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    out = {t: con.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables}
    con.close()
    return out


def hostile_copy(example: Path, tmp: Path) -> Path:
    """The example with awkward text in acme's lowest and highest activity rows (so in
    the first and the last key range): quotes, commas, CR/LF, a NUL character."""
    copy = tmp / "hostile"
    copy.mkdir()
    shutil.copy2(example / "lms.db", copy / "lms.db")
    shutil.copy2(example / "learnexit.toml", copy / "learnexit.toml")
    shutil.copytree(example / "media", copy / "media")
    con = sqlite3.connect(copy / "lms.db")
    acme = con.execute("SELECT id FROM organisations WHERE slug = 'acme'").fetchone()[0]
    low, high = con.execute("SELECT min(id), max(id) FROM activity_log WHERE organisation_id = ?", (acme,)).fetchone()
    con.execute("UPDATE activity_log SET detail = ? WHERE id = ?", ('first, "range"\r\nnul:\x00 end', low))
    con.execute("UPDATE activity_log SET detail = ? WHERE id = ?", ("last\x00range\r", high))
    con.commit()
    con.close()
    return copy


def test_one_format_reads_the_biggest_table_in_two_key_ranges(example: Path, tmp_path: Path, monkeypatch) -> None:
    settings = settings_for(example, tmp_path)
    one = run(settings, tmp_path / "one", 1, monkeypatch, formats=["csv"])
    joined = split_at(monkeypatch, 500)
    two = run(settings, tmp_path / "two", 2, monkeypatch, formats=["csv"])
    assert joined == [("csv", "activity_log", 1)]  # the rest was read by this process
    a, b = one.path / "data" / "csv", two.path / "data" / "csv"
    assert sorted(os.listdir(a)) == sorted(os.listdir(b))  # no range file left behind
    for name in os.listdir(a):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert one.tables == two.tables and one.notes == two.notes
    assert verify_package(two.path).valid


def test_key_ranges_hold_even_rows_by_the_counted_spread() -> None:
    """The counting scan's halves say where the rows lie; the ranges are cut there (rows
    spread evenly between the points), not at the middle of the key span."""
    from learnexit.export.parallel import even_rows
    from learnexit.export.specs import _Stats, key_spread

    # 1,000 rows with keys 1..100, then 100 rows with keys 500..1000 (counted in two halves)
    halves = [_Stats(100, [], low=500, high=1000, keyed=100), _Stats(1000, [], low=1, high=100, keyed=1000)]
    spread = key_spread(halves)
    assert spread == ((1, 0), (100, 1000), (500, 1000), (1000, 1100))
    assert even_rows(spread, 2, 1, 1000) == (56,)  # about 550 rows below key 56 (the span's middle: 500)
    assert even_rows(spread, 4, 1, 1000) == (29, 56, 84)
    assert even_rows(spread, 2, 1, 1000)[0] - 1 < 500
    assert key_spread([_Stats(0, []), _Stats(7, [], low=3, high=9, keyed=7)]) == ((3, 0), (9, 7))
    assert even_rows((), 2, 1, 1000) is None  # (not counted: the even split of the span)
    assert even_rows(((5, 0), (5, 3)), 2, 5, 5) is None  # (no range of a key of its own)
    assert even_rows(((5, 0), (5, 3)), 2, 5, 6) == (6,)


def test_sql_in_key_ranges_loads_the_same_rows(example: Path, tmp_path: Path, monkeypatch) -> None:
    settings = settings_for(hostile_copy(example, tmp_path), tmp_path)
    one = run(settings, tmp_path / "one", 1, monkeypatch, formats=["sql", "csv"])
    joined = split_at(monkeypatch, 500)
    two = run(settings, tmp_path / "two", 2, monkeypatch, formats=["sql"])
    three = run(settings, tmp_path / "three", 3, monkeypatch, formats=["csv"])
    assert joined == [("sql", "activity_log", 1), ("csv", "activity_log", 1), ("csv", "activity_log", 2)]
    dump_one, dump_two = (r.path / "data" / "sql" / "acme.sql" for r in (one, two))
    assert loaded(dump_one, tmp_path) == loaded(dump_two, tmp_path)
    assert dump_rows(dump_one) == dump_rows(dump_two)  # the same rows in the same order
    assert sorted(os.listdir(dump_two.parent)) == ["acme.sql"]
    csv_one = one.path / "data" / "csv" / "activity_log.csv"
    assert csv_one.read_bytes() == (three.path / "data" / "csv" / "activity_log.csv").read_bytes()
    assert b'"first, ""range""\r\nnul:\x00 end"' in csv_one.read_bytes()


def test_value_changes_in_several_ranges_are_noted_once_with_the_total(
    example: Path, tmp_path: Path, monkeypatch
) -> None:
    settings = settings_for(hostile_copy(example, tmp_path), tmp_path)
    options = {"formats": ["sql"], "sql_dialect": "postgresql"}
    one = run(settings, tmp_path / "one", 1, monkeypatch, **options)
    joined = split_at(monkeypatch, 500)
    two = run(settings, tmp_path / "two", 2, monkeypatch, **options)
    assert joined == [("sql", "activity_log", 1)]
    note = "sql: activity_log.detail: 2 values contained NUL characters PostgreSQL cannot store: removed"
    assert note in one.notes
    assert one.notes == two.notes
    dumps = [r.path / "data" / "sql" / "acme.sql" for r in (one, two)]
    assert dump_rows(dumps[0]) == dump_rows(dumps[1])


def test_postgresql_workers_read_key_ranges_of_the_exported_snapshot(
    example: Path, tmp_path: Path, db_factory, monkeypatch
) -> None:
    """(The SQL dump: CSV from PostgreSQL is the server's one COPY, never cut into ranges;
    tests/test_pg_copy.py.)"""
    url = postgresql_example(db_factory, "ranges")
    settings = settings_for(example, tmp_path, source_url=url)
    one = run(settings, tmp_path / "one", 1, monkeypatch, formats=["sql"])
    joined = split_at(monkeypatch, 500)
    two = run(settings, tmp_path / "two", 2, monkeypatch, formats=["sql"])
    assert joined == [("sql", "activity_log", 1)]
    dumps = [r.path / "data" / "sql" / "acme.sql" for r in (one, two)]
    assert dump_rows(dumps[0]) == dump_rows(dumps[1])


def test_a_failing_range_worker_fails_the_export_cleanly(example: Path, tmp_path: Path, monkeypatch) -> None:
    settings = settings_for(example, tmp_path)
    split_at(monkeypatch, 500)

    def broken(self: Any, spec: Any, part: int) -> None:
        raise OperationalError(f"range {part} of {spec.name} broke")

    monkeypatch.setattr(CsvWriter, "start_part", broken)  # (the forked worker has it too)
    out = tmp_path / "out"
    with pytest.raises(OperationalError, match="range 1 of activity_log broke"):
        run(settings, out, 2, monkeypatch, formats=["csv"])
    assert not out.exists() or os.listdir(out) == []
    with Ledger(settings.state_url) as ledger:
        assert [r["status"] for r in ledger.rows(exports, "acme")] == ["failed"]


def test_small_tables_and_formats_that_cannot_split_are_not_split(example: Path, tmp_path: Path, monkeypatch) -> None:
    settings = settings_for(example, tmp_path)
    joined = split_at(monkeypatch, 10**9)  # no table that big
    run(settings, tmp_path / "csv", 2, monkeypatch, formats=["csv"])
    split_at(monkeypatch, 500)
    result = run(settings, tmp_path / "json", 2, monkeypatch, formats=["json", "csv"])  # two groups: no ranges
    assert joined == []
    assert verify_package(result.path).valid


# --------------------------------------------------------------------------- the workbook zipped on a thread


def slow_zip(monkeypatch: pytest.MonkeyPatch, seconds: float, error: BaseException | None = None) -> None:
    original = XlsxWriter._zip

    def zip_slowly(self: XlsxWriter) -> None:
        time.sleep(seconds)
        if error is not None:
            raise error
        original(self)

    monkeypatch.setattr(XlsxWriter, "_zip", zip_slowly)


def zipping_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("learnexit-")]


@pytest.mark.parametrize("workers", [1, 2])
def test_the_export_waits_for_the_workbook_zipped_on_a_thread(
    example: Path, tmp_path: Path, monkeypatch, workers: int
) -> None:
    slow_zip(monkeypatch, 0.5)
    result = run(settings_for(example, tmp_path), tmp_path / "out", workers, monkeypatch, formats=["xlsx", "csv"])
    sheets = xlsx_values(result.path / "data" / "excel" / "acme.xlsx")
    assert len(sheets["activity_log"]) == result.tables["activity_log"] + 1  # the header row
    assert verify_package(result.path).valid
    assert sorted(os.listdir(result.path / "data" / "excel")) == ["acme.xlsx"]  # no sheet files left
    assert zipping_threads() == []


def test_a_failure_while_zipping_fails_the_export(example: Path, tmp_path: Path, monkeypatch) -> None:
    settings = settings_for(example, tmp_path)
    slow_zip(monkeypatch, 0.1, OSError(28, "No space left on device"))
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        run(settings, out, 1, monkeypatch, formats=["xlsx", "json"])
    assert not out.exists() or os.listdir(out) == []
    with Ledger(settings.state_url) as ledger:
        assert [r["status"] for r in ledger.rows(exports, "acme")] == ["failed"]


def test_a_later_failure_waits_for_the_zipping_before_cleaning_up(example: Path, tmp_path: Path, monkeypatch) -> None:
    settings = settings_for(example, tmp_path)
    slow_zip(monkeypatch, 0.5)

    def broken(self: Any, job: Any) -> None:
        raise OperationalError("the XML step broke")

    monkeypatch.setattr(xml_format.XmlExporter, "after", broken)
    out = tmp_path / "out"
    with pytest.raises(OperationalError, match="the XML step broke"):
        run(settings, out, 1, monkeypatch, formats=["xlsx", "xml"])
    assert zipping_threads() == []  # waited for, not left writing into a removed folder
    assert not out.exists() or os.listdir(out) == []


# --------------------------------------------------------------------------- counting in halves


def specs_summary(specs: list[Any], totals: dict[str, int], notes: list[str]) -> Any:
    return (
        dict(totals),
        sorted(notes),
        [(t.name, sorted(e.label for e in t.foreign_keys), t.key_range) for t in specs],
    )


@pytest.mark.parametrize(
    ("engine_kind", "server_workers"), [("sqlite", None), ("postgresql", True), ("postgresql", False)]
)
def test_counting_big_tables_in_halves_on_a_helper_finds_what_one_scan_finds(
    example: Path, tmp_path: Path, db_factory, monkeypatch, engine_kind: str, server_workers: bool | None
) -> None:
    """SQLite (and PostgreSQL without parallel query) count a big table in two key
    halves, one on the helper; PostgreSQL counts it whole on the helper, with workers of
    its own.  Either way the figures are one scan's."""
    url = None
    if engine_kind == "postgresql":
        url = postgresql_example(db_factory, "halves")
    settings = settings_for(example, tmp_path, source_url=url)
    monkeypatch.setattr(specs, "STATS_SPLIT_SPAN", 100)  # activity_log, and no small table
    halved: list[str] = []
    original = specs.key_halves

    def record(source: Source, conn: Any, name: str) -> Any:
        halves = original(source, conn, name)
        if halves is not None:
            halved.append(name)
        return halves

    monkeypatch.setattr(specs, "key_halves", record)
    read_by: list[tuple[Any, bool]] = []  # (the connection, whole?) of each count of activity_log
    original_stats = specs._read_stats

    def stats(on: Any, stmt: Any, *args: Any) -> Any:
        text = str(stmt)
        if "FROM activity_log" in text:
            read_by.append((on, "activity_log.id <" not in text and "activity_log.id >=" not in text))
        return original_stats(on, stmt, *args)

    monkeypatch.setattr(specs, "_read_stats", stats)
    with Source(settings, "acme") as source, source.snapshot() as conn:
        if server_workers is False:
            conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
        assert specs.server_parallel(conn) is bool(server_workers)
        plain: tuple[dict[str, int], list[str]] = ({}, [])
        one = specs_summary(specs.build_specs(source, conn, plain[1], plain[0]), *plain)
        with specs.counting_helper(source, conn) as helper:
            assert helper is not None
            helped: tuple[dict[str, int], list[str]] = ({}, [])
            read_by.clear()
            two = specs_summary(specs.build_specs(source, conn, helped[1], helped[0], helper), *helped)
            if server_workers:
                assert read_by == [(helper, True)]
            else:
                assert sorted(on is helper for on, _ in read_by) == [False, True]
                assert not any(whole for _, whole in read_by)
    assert ("activity_log" in halved) is not bool(server_workers)
    assert one == two
    assert two[0]["activity_log"] == 1800 and dict(t[::2] for t in two[2])["activity_log"] is not None


def test_no_helper_when_the_source_changed_since_the_snapshot_began(example: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Source, "snapshot_unchanged", lambda self, conn: False)
    with Source(settings_for(example, tmp_path), "acme") as source, source.snapshot() as conn:
        with specs.counting_helper(source, conn) as helper:
            assert helper is None


def test_halves_hold_every_row_once_even_null_keys(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    with engine.begin() as conn:  # INT (not INTEGER): not the rowid, so SQLite lets it be NULL or text
        conn.exec_driver_sql("CREATE TABLE t (k INT PRIMARY KEY, v TEXT)")
        rows = [(k, "x") for k in range(0, 400_000, 997)] + [(None, "null"), (None, "null2")]
        conn.exec_driver_sql("INSERT INTO t VALUES (?, ?)", rows)
    table = sa.Table("t", sa.MetaData(), autoload_with=engine)

    class Tables:  # what key_halves asks of a Source
        def __init__(self) -> None:
            self.engine = engine

        def table(self, name: str) -> sa.Table:
            return table

    count = sa.select(sa.func.count()).select_from(table)
    with engine.connect() as conn:
        halves = specs.key_halves(Tables(), conn, "t")  # type: ignore[arg-type]
        assert halves is not None
        first, second = halves
        a = conn.execute(count.where(first)).scalar()
        b = conn.execute(count.where(second)).scalar()
        both = conn.execute(count.where(first, second)).scalar()
    assert (a + b, both) == (len(rows), 0)
    with engine.begin() as conn:  # a text key (SQLite sorts it after every number): no halves
        conn.exec_driver_sql("INSERT INTO t VALUES ('text', 't')")
    with engine.connect() as conn:
        assert specs.key_halves(Tables(), conn, "t") is None  # type: ignore[arg-type]
    engine.dispose()


def test_streams_collect_garbage_seldom_and_restore_the_collector(tmp_path: Path, monkeypatch) -> None:
    """``stream_columns`` turns automatic collection off while its batches are read (a
    collection every 700 new tuples walked each live batch), collects the young
    generation every ``GC_EVERY_BATCHES`` batches, and turns it back on when the stream
    ends, is closed early or fails; nested streams leave it to the outermost."""
    import gc

    from learnexit.exporters import base

    db = tmp_path / "rows.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"row {i}") for i in range(1, 1001)])
    engine = sa.create_engine(f"sqlite:///{db}")
    table = sa.Table("t", sa.MetaData(), autoload_with=engine)
    collections: list[int] = []
    real_collect = gc.collect
    monkeypatch.setattr(gc, "collect", lambda generation=2: collections.append(generation) or real_collect(generation))
    monkeypatch.setattr(base, "GC_EVERY_BATCHES", 4)
    assert gc.isenabled()
    with engine.connect() as conn:
        seen = []
        for columns in base.stream_columns(conn, sa.select(table), 100):
            seen.append(gc.isenabled())
            assert len(columns[0]) == 100
        assert seen == [False] * 10 and gc.isenabled()
        assert collections == [0, 0]  # after batches 4 and 8

        outer = base.stream_columns(conn, sa.select(table).where(table.c.id <= 300), 100)
        next(outer)
        inner = base.stream_columns(conn, sa.select(table).where(table.c.id > 900), 10)
        assert sum(len(c[0]) for c in inner) == 100
        assert not gc.isenabled()  # (the outer stream is still being read)
        outer.close()  # closed early
        assert gc.isenabled()

        with pytest.raises(sa.exc.OperationalError):
            for _ in base.stream_columns(conn, sa.select(sa.text("* FROM no_such_table")), 10):
                pass
        assert gc.isenabled()
        failing = base.stream_columns(conn, sa.select(table), 100)
        next(failing)
        with pytest.raises(KeyError):
            failing.throw(KeyError("a writer failed"))
        assert gc.isenabled()
    engine.dispose()
