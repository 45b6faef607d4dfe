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
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa

from learnexit.config import Settings, load_settings
from learnexit.errors import OperationalError
from learnexit.example import build_example, build_shared_schema, populate_shared
from learnexit.export import ExportResult, run_export
from learnexit.exporters import xml_format
from learnexit.ledger import Ledger, exports
from learnexit.package import verify_package
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


def export(settings: Settings, out: Path, workers: int, monkeypatch: pytest.MonkeyPatch) -> ExportResult:
    monkeypatch.setenv("LEARNEXIT_EXPORT_WORKERS", str(workers))
    monkeypatch.setenv("LEARNEXIT_NOW", NOW)
    return run_export(settings, "acme", formats=FORMATS, out=out)


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
    summary = two.path / "data" / "documents" / "export-summary.pdf"
    assert summary.is_file() and summary.stat().st_size > 1000


def test_postgresql_workers_read_the_exported_snapshot(example: Path, tmp_path: Path, db_factory, monkeypatch) -> None:
    url = db_factory("postgresql").new("parallel")
    engine = sa.create_engine(url)
    build_shared_schema(engine)
    populate_shared(engine, media_root=None, activity_rows=3000)
    engine.dispose()
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
    assert calls == [os.getpid()]
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
    from learnexit.export import _costs, _groups, _reads
    from learnexit.exporters.base import load_builtin

    registry = load_builtin()
    everything = [registry[name] for name in FORMATS]
    cost = _costs(everything)
    for workers in (1, 2, 3, 8):
        tasks = _groups(everything, workers)
        names = [e.name for task in tasks for e in task]
        assert sorted(names) == sorted(FORMATS)  # every format exactly once
        assert len(tasks) == min(workers, len(FORMATS))  # one task per process at most
        loads = [sum(cost[e.name] for e in task) for task in tasks]
        assert loads == sorted(loads, reverse=True)  # the costliest task starts first
        assert max(loads) - min(loads) <= max(cost.values())  # no process gets much more than another
    two = [[e.name for e in task] for task in _groups(everything, 2)]
    # the XML document is written by the JSON step, Word with PDF: they cost (almost) nothing
    assert cost["xml"] < 1 and cost["docx"] < 1
    assert sum(_reads(registry[n]) for n in two[0]) >= 1 and sum(_reads(registry[n]) for n in two[1]) >= 1
    assert [[e.name for e in task] for task in _groups([registry["csv"], registry["sql"]], 4)] == [["sql"], ["csv"]]
