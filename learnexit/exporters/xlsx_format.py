"""Excel: ``data/excel/<customer>.xlsx``, one sheet per owned table.

Written with openpyxl's write-only workbook, so memory stays flat however long a table
is.  The first sheet, ``Contents``, lists every sheet with its table and the rows it
holds (sheet names are shortened and made unique, so they need not equal the table name).
Each table sheet has a header row (bold, frozen) and one row per database row.

* A table longer than ``MAX_DATA_ROWS`` (1,048,575: Excel's row limit minus the header)
  continues on further sheets named ``<table> (2)``, ``<table> (3)`` …
* Strings are always text cells (``data_type = "s"``): a value starting with ``=`` never
  becomes a formula, ``#N/A`` never becomes an error.  NULL is an empty cell; so is an
  empty string (as in CSV; the JSON and SQL files tell them apart).
* Numbers, booleans, dates and times are typed cells; Excel's limits (15 digits, no time
  zones, no dates before 1900, 32,767 characters per cell, no control characters) are
  handled by ``values.Sanitiser.excel`` and noted; the full values are in CSV and JSON.
* openpyxl streams each sheet through a temporary file: they are kept next to the
  workbook inside the package being built (never in the system temp folder) and removed
  when the workbook is saved or the export fails.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.worksheet import _writer as sheet_writer

from .base import Exporter, ExportJob, TableSpec, TableWriter, register
from .values import Sanitiser, file_stem

FOLDER = "excel"
MAX_DATA_ROWS = 1_048_575  # Excel's 1,048,576 rows less the header row
MAX_COLUMNS = 16_384
MAX_SHEET_TITLE = 31
CONTENTS_TITLE = "Contents"
_BAD_TITLE_CHARS = re.compile(r"[\[\]:*?/\\\x00-\x1f\x7f]")


def workbook_path(customer: str) -> str:
    """The workbook's path below ``data/``."""
    return f"{FOLDER}/{file_stem(customer)}.xlsx"


def sheet_title(name: str, used: set[str], part: int = 1) -> str:
    """A safe, unique sheet title for ``name`` (its ``part``-th sheet), recorded in ``used``.

    Excel forbids ``[ ] : * ? / \\``, a leading or trailing apostrophe, titles over 31
    characters, "History", and two titles equal up to case.
    """
    base = _BAD_TITLE_CHARS.sub("_", name).strip("'").strip() or "table"
    suffix = "" if part == 1 else f" ({part})"
    n = 1
    while True:
        extra = suffix if n == 1 else f"{suffix}~{n}"
        title = base[: MAX_SHEET_TITLE - len(extra)].rstrip("'") + extra
        key = title.casefold()
        if key not in used and key != "history":
            used.add(key)
            return title
        n += 1


class XlsxWriter(TableWriter):
    def __init__(self, job: ExportJob) -> None:
        self.job = job
        self.values = Sanitiser("xlsx")
        self.path = workbook_path(job.customer)
        self.wb = Workbook(write_only=True)
        self.used: set[str] = set()
        self.temp_files: list[Path] = []
        self.bold = Font(bold=True)
        self.ws: Any = None
        self.ws_title = ""
        self.contents = self._sheet(
            sheet_title(CONTENTS_TITLE, self.used), ["sheet", "table", "first_row", "last_row", "rows"]
        )
        self.index: list[list[Any]] = []
        self.part = 0
        self.on_sheet = 0
        self.table_rows = 0
        self.sheet_first = 1
        self.columns = 0

    # -- sheets ---------------------------------------------------------------

    def _sheet(self, title: str, header: list[str]) -> Any:
        ws = self.wb.create_sheet(title)
        ws.freeze_panes = "A2"  # must be set before the first row is written
        self._stream_into_package(ws)
        ws.append([self._text_cell(ws, h, bold=True) for h in header])
        return ws

    def _stream_into_package(self, ws: Any) -> None:
        """Keep openpyxl's per-sheet temporary file inside the package (mode 0600)."""
        number = len(self.temp_files) + 1
        target = self.job.path(f"{FOLDER}/.{file_stem(self.job.customer)}.sheet{number}.xml.part")
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        self.temp_files.append(target)
        sheet_writer.ALL_TEMP_FILES.append(str(target))  # openpyxl removes it once written
        ws._writer = sheet_writer.WorksheetWriter(ws, out=str(target))
        ws._writer.write_top()

    def _text_cell(self, ws: Any, value: str, bold: bool = False) -> Any:
        cell = WriteOnlyCell(ws, value=value)
        cell.data_type = "s"  # text, whatever it looks like: never a formula or an error
        if bold:
            cell.font = self.bold
        return cell

    def _new_part(self, spec: TableSpec) -> None:
        self._close_part(spec)
        self.part += 1
        self.sheet_first = self.table_rows + 1
        self.on_sheet = 0
        title = sheet_title(spec.name, self.used, self.part)
        header = [self.values.excel_string(c, spec.name, "(header)") for c in spec.column_names[: self.columns]]
        self.ws = self._sheet(title, header)
        self.ws_title = title

    def _close_part(self, spec: TableSpec) -> None:
        if self.ws is not None:
            first = self.sheet_first if self.on_sheet else None
            last = self.table_rows if self.on_sheet else None
            self.index.append([self.ws_title, spec.name, first, last, self.on_sheet])
            self.ws = None

    # -- the TableWriter interface -------------------------------------------

    def start_table(self, spec: TableSpec) -> None:
        self.part = 0
        self.table_rows = 0
        self.columns = min(len(spec.columns), MAX_COLUMNS)
        if len(spec.columns) > MAX_COLUMNS:
            self.job.note(
                "xlsx",
                f"{spec.name}: {len(spec.columns)} columns, Excel holds {MAX_COLUMNS}: "
                "the rest are in CSV and JSON only",
            )
        self._new_part(spec)

    def write_batch(self, spec: TableSpec, rows: list[sa.Row[Any]]) -> None:
        names = spec.column_names[: self.columns]
        table = spec.name
        convert = self.values.excel
        for row in rows:
            if self.on_sheet >= MAX_DATA_ROWS:
                self._new_part(spec)
            ws = self.ws
            cells = []
            for value, column in zip(row, names, strict=False):
                v = convert(value, table, column)
                cells.append(self._text_cell(ws, v) if isinstance(v, str) else v)
            ws.append(cells)
            self.on_sheet += 1
            self.table_rows += 1

    def end_table(self, spec: TableSpec, rows: int) -> None:
        self._close_part(spec)
        if self.part > 1:
            self.job.note(
                "xlsx",
                f"{spec.name}: {self.table_rows:,} rows continue over {self.part} sheets "
                f"(Excel holds {MAX_DATA_ROWS:,} rows per sheet)",
            )
        self.values.report(self.job)

    def close(self) -> None:
        for entry in self.index:
            self.contents.append(
                [self._text_cell(self.contents, entry[0]), self._text_cell(self.contents, entry[1]), *entry[2:]]
            )
        with self.job.open_file(self.path, "wb") as f:
            self.wb.save(f)
        self._remove_temp_files()

    def abort(self) -> None:
        for ws in self.wb.worksheets:
            # Stop openpyxl's row generator first, then its XML stream, so nothing is left
            # half-open for the garbage collector to complain about.
            for part in (getattr(ws, "_rows", None), getattr(ws, "_writer", None)):
                if part is None:
                    continue
                try:
                    part.close()
                except Exception:  # noqa: BLE001 - best effort: the export has failed already
                    pass
        self._remove_temp_files()

    def _remove_temp_files(self) -> None:
        for path in self.temp_files:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            if str(path) in sheet_writer.ALL_TEMP_FILES:
                sheet_writer.ALL_TEMP_FILES.remove(str(path))
        self.temp_files = []


@register
class XlsxExporter(Exporter):
    name = "xlsx"
    description = "one Excel workbook, one sheet per table (typed values, strings never formulas)"
    folder = FOLDER

    def writer(self, job: ExportJob) -> TableWriter:
        return XlsxWriter(job)
