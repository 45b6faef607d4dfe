"""What the customer reads: Excel column widths and header, Word table widths, the export
summary's wording (notes as sentences, times with their zone, one unit system), and
index.html naming the SQL dump's actual dialect.  On the example LMS (SQLite)."""

from __future__ import annotations

import html
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import docx
import openpyxl
import pytest
from docx.oxml.ns import qn
from docx.shared import Mm
from helpers import copy_example, pdf_text
from typer.testing import CliRunner

from learnexit.cli import app
from learnexit.documents.notes import note_sentence
from learnexit.documents.word import column_widths


@dataclass
class Export:
    data: Path
    stdout: str


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory, example_template: Path) -> Export:
    demo = copy_example(example_template, tmp_path_factory.mktemp("reading") / "demo")
    config = str(demo / "learnexit.toml")
    runner = CliRunner()
    notice = ["notice", "acme", "--received", "2026-11-20", "--config", config]
    assert runner.invoke(app, notice, env={"LEARNEXIT_NOW": "2026-11-20"}).exit_code == 0
    argv = ["export", "acme", "-f", "csv,xlsx,pdf,docx,media,sql", "--sql-dialect", "mysql", "--config", config]
    done = runner.invoke(app, argv, env={"LEARNEXIT_NOW": "2026-11-25"})
    assert done.exit_code == 0, done.output
    (package,) = (demo / "exports").iterdir()
    return Export(package / "data", done.stdout)


# --------------------------------------------------------------------------- Excel


def test_excel_columns_are_wide_enough_for_dates_and_the_header_is_styled(export: Export) -> None:
    book = openpyxl.load_workbook(export.data / "excel" / "acme.xlsx")
    checked = 0
    for sheet in book.worksheets:
        assert sheet.freeze_panes == "A2", sheet.title
        for cell in sheet[1]:
            assert cell.font.b and cell.fill.fgColor.rgb == "FFEEF2F6", (sheet.title, cell.value)
            width = sheet.column_dimensions[cell.column_letter].width
            assert width >= len(str(cell.value)), (sheet.title, cell.value)  # the header shows whole
        for cell in sheet[2] if sheet.max_row > 1 else ():
            fmt = cell.number_format
            if fmt in ("yyyy-mm-dd h:mm:ss", "yyyy-mm-dd"):  # Excel shows ### when narrower than this
                assert sheet.column_dimensions[cell.column_letter].width >= len(fmt), (sheet.title, cell.coordinate)
                checked += 1
    assert checked >= 10  # the example's created_at, issued_at, starts_on ... columns


def test_excel_sheet_parts_are_in_schema_order(export: Export) -> None:
    """<cols> comes between <sheetFormatPr> and <sheetData> (Excel refuses other orders)."""
    with zipfile.ZipFile(export.data / "excel" / "acme.xlsx") as book:
        for name in book.namelist():
            if name.startswith("xl/worksheets/"):
                xml = book.read(name).decode()
                assert re.search(r"<sheetFormatPr [^>]*/><cols>(<col [^>]*/>)+</cols><sheetData><row r=\"1\">", xml)
                assert xml.endswith("</sheetData></worksheet>")


# --------------------------------------------------------------------------- Word


def test_word_tables_have_fixed_widths_that_fit_the_longest_word(export: Export) -> None:
    document = docx.Document(str(export.data / "documents" / "reports" / "user-statistics.docx"))
    (table,) = [t for t in document.tables if "Person" in t.rows[0].cells[0].text]
    layout = table._tbl.tblPr.find(qn("w:tblLayout"))
    assert layout is not None and layout.get(qn("w:type")) == "fixed"
    widths = [column.width for column in table.columns]
    section = document.sections[0]
    assert abs(sum(widths) - (section.page_width - section.left_margin - section.right_margin)) < Mm(1)
    emails = [w for row in table.rows[1:] for w in row.cells[0].text.split() if "@" in w]
    assert emails  # the person column shows names and e-mail addresses
    # An e-mail address is one word: its column is wide enough for the longest (1.6 mm a character).
    assert widths[0] >= Mm(max(map(len, emails)) * 1.6)
    for row in table.rows:
        assert [cell.width for cell in row.cells] == widths


def test_column_widths_share_the_page_by_what_the_content_needs() -> None:
    rows = (("anna.lindqvist-bergstrom@example.com", "3", "12 Mar 2024"),)
    widths = column_widths(("Person", "Courses", "First activity"), rows, 174.0)
    assert abs(sum(widths) - 174.0) < 1e-9
    assert widths[0] >= len(rows[0][0]) * 1.6 and widths[2] >= len("activity") * 1.6
    assert column_widths(("a", "b"), (), 100.0, (30, 70)) == [30.0, 70.0]  # the document's own widths
    narrow = column_widths(("x" * 80, "y" * 80), (), 100.0)  # words wider than the page: shrunk alike
    assert abs(narrow[0] - narrow[1]) < 1e-9 and abs(sum(narrow) - 100.0) < 1e-9


# --------------------------------------------------------------------------- the summary, index.html, the CLI


@pytest.mark.parametrize(
    "note,sentence",
    [
        (
            "xlsx: course_materials.body: 1 value longer than 32,767 characters truncated "
            "(the full value is in CSV and JSON)",
            "Excel: 1 value in course_materials.body longer than 32,767 characters was truncated "
            "(the full value is in CSV and JSON).",
        ),
        (
            "xml: users.name: 3 values contained characters XML cannot hold: replaced by U+FFFD",
            "XML: 3 values in users.name contained characters XML cannot hold; they were replaced by U+FFFD.",
        ),
        ("sql: t.c: 2 values not finite (NaN/Infinity) written as text", "SQL: 2 values in t.c not finite (NaN/Infinity) were written as text."),
        ("no termination notice recorded: exported without an export window", "No termination notice recorded: exported without an export window."),
        ("Media files copied: 6.", "Media files copied: 6."),
        ("pdf: certificates skipped: [roles.certificates] is not configured", "PDF: certificates skipped: [roles.certificates] is not configured."),
    ],
)  # fmt: skip
def test_notes_read_as_sentences(note: str, sentence: str) -> None:
    assert note_sentence(note) == sentence


def test_the_summary_speaks_in_sentences_zoned_times_and_one_unit_system(export: Export) -> None:
    summary = " ".join(pdf_text(export.data / "documents" / "export-summary.pdf").split())
    assert "Exported 25 November 2026, 12:00 CET" in summary  # 11:00 UTC, in the contract's zone
    note = (
        "Excel: 1 value in course_materials.body longer than 32,767 characters was truncated "
        "(the full value is in CSV and JSON)."
    )
    assert note in summary
    assert re.search(r"6 files, [\d.]+ kB in total", summary)
    assert "SQL script that recreates the tables and rows (MySQL and MariaDB)" in summary
    index = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", (export.data / "index.html").read_text())).split())
    assert note in index and "2026-11-25 11:00:00 UTC" in index
    assert "for MySQL and MariaDB; load it with: mysql --default-character-set=utf8mb4 NEWDB < sql/acme.sql" in index
    assert "SQLite, PostgreSQL or" not in index
    assert re.search(r"csv/users\.csv [\d.]+ kB", index)
    assert f"note: {note}" in " ".join(export.stdout.split())
    assert re.search(r"\d+ files, [\d.]+ MB; formats", export.stdout)
    for text in (summary, index, export.stdout):
        assert not re.search(r"\b[KMG]iB\b", text)
