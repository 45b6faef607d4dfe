"""Excel: ``data/excel/<customer>.xlsx``, one sheet per owned table.

The workbook is written directly as SpreadsheetML (ECMA-376), a batch of rows at a time,
so memory stays flat however long a table is and a million rows take seconds, not
minutes.  The first sheet, ``Contents``, lists every sheet with its table and the rows
it holds (sheet names are shortened and made unique, so they need not equal the table
name).  Each table sheet has a header row (bold, shaded, frozen) and one row per
database row; column widths come from the column types and header names (dates and
times wide enough not to show ``###``), not from measuring every value.

* A table longer than ``MAX_DATA_ROWS`` (1,048,575: Excel's row limit minus the header)
  continues on further sheets named ``<table> (2)``, ``<table> (3)`` …
* Strings are always inline text cells (``t="inlineStr"``): a value starting with ``=``
  never becomes a formula, ``#N/A`` never becomes an error.  NULL is an empty cell; so is
  an empty string (as in CSV; the JSON and SQL files tell them apart).
* Numbers, booleans, dates and times are typed cells (dates and times as Excel serial
  numbers with a date or time format); Excel's limits (15 digits, no time zones, no
  dates before 1900, 32,767 characters per cell, no control characters) are handled by
  ``values.Sanitiser.excel`` and noted; the full values are in CSV and JSON.
* Each sheet is streamed to a temporary file kept next to the workbook inside the
  package being built (``excel/.<customer>.sheet<N>.xml.part``, never in the system temp
  folder); the workbook is zipped from them at the end, and they are removed when the
  workbook is saved or the export fails.
* A batch's rows are written by the C speedups (``_speedups.xlsx_rows``) where they are
  compiled; a column holding what the sanitiser changes or notes is made into cells by
  the Python path below, which writes the same bytes on its own.
"""

from __future__ import annotations

import datetime as dt
import operator
import os
import re
import shutil
import zipfile
from collections.abc import Sequence
from itertools import compress, repeat
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import quoteattr

import orjson

from . import speedups
from .base import Background, DirectSink, Exporter, ExportJob, TableSpec, TableWriter, register
from .speedups import native_batch
from .values import EXCEL_DIGITS, EXCEL_MAX_CHARS, SEP, Sanitiser, file_stem, marked, xml_clean

_isal_zlib: Any
try:  # (optional: ``pip install learnexit[all]`` has it; zlib otherwise)
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - depends on the installation
    _isal_zlib = None

FOLDER = "excel"
MAX_DATA_ROWS = 1_048_575  # Excel's 1,048,576 rows less the header row
MAX_COLUMNS = 16_384
MAX_SHEET_TITLE = 31
CONTENTS_TITLE = "Contents"
_BAD_TITLE_CHARS = re.compile(r"[\[\]:*?/\\\x00-\x1f\x7f]")
_EPOCH = dt.datetime(1899, 12, 30)  # Excel's (Windows) day 0
_SECONDS_PER_DAY = 86_400
# Cell styles (the order of cellXfs in styles.xml)
_BOLD, _DATETIME, _DATE, _TIME = 1, 2, 3, 4
_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_NEEDS_ESCAPE = re.compile("[&<>\r]")


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


def _fast_deflate(member: Any) -> None:
    """Deflate a zip member being written with ISA-L (``isal``, when installed) instead of
    zlib: a third of the CPU for a worksheet at level 1, and a smaller stream (the same
    DEFLATE format; any unzip reads it).  The member's compressor is zipfile's own
    attribute (Python 3.11-3.14); without it, or without ``isal``, zlib as before."""
    if _isal_zlib is None or getattr(member, "_compressor", None) is None:
        return
    member._compressor = _isal_zlib.compressobj(1, _isal_zlib.DEFLATED, -15)


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA …"""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


# --------------------------------------------------------------------------- cells


def serial(value: dt.datetime | dt.date | dt.time) -> float:
    """An Excel serial number (days since 1899-12-30, the fraction the time of day),
    computed as openpyxl does, so readers get back the value openpyxl would write."""
    if isinstance(value, dt.time):
        return _day_fraction(value)
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    days = (value - _EPOCH).days
    if 0 < days <= 60:  # Excel's phantom 1900-02-29
        days -= 1
    return days + _day_fraction(value)


def _day_fraction(value: dt.datetime | dt.time) -> float:
    return (value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 10**6) / _SECONDS_PER_DAY


def text_cell(ref: str, value: str, style: int = 0) -> str:
    """An inline string cell (never a formula); leading/trailing spaces kept."""
    s = f' s="{style}"' if style else ""
    space = ' xml:space="preserve"' if value != value.strip() else ""
    return f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>{value.translate(_TEXT_ESCAPES)}</t></is></c>'


def cell(ref: str, value: Any) -> str:
    """Any value ``Sanitiser.excel`` returns, as a cell ('' for an empty one)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return text_cell(ref, value)
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, dt.datetime):
        return f'<c r="{ref}" s="{_DATETIME}" t="n"><v>{serial(value):.16g}</v></c>'
    if isinstance(value, dt.date):
        return f'<c r="{ref}" s="{_DATE}" t="n"><v>{serial(value):.16g}</v></c>'
    if isinstance(value, dt.time):
        return f'<c r="{ref}" s="{_TIME}" t="n"><v>{serial(value):.16g}</v></c>'
    return f'<c r="{ref}" t="n"><v>{"%.16g" % value}</v></c>'  # noqa: UP031 - int, float, Decimal as openpyxl writes them


def column_cells(letter: str, rows: Sequence[str], values: Sequence[Any]) -> list[str]:
    """The cells of one column of a batch (``rows``: the row numbers as text)."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if len(kinds) == 1:
        kind = kinds.pop()
        if kind is int:  # Sanitiser.excel left only integers of at most 15 digits as numbers
            return ["" if v is None else f'<c r="{letter}{n}" t="n"><v>{v}</v></c>' for n, v in zip(rows, values)]
        if kind is str:
            escaped = values
            if _NEEDS_ESCAPE.search("".join(filter(None, values))):
                escaped = [v and v.translate(_TEXT_ESCAPES) for v in values]
            return [
                ""
                if not v
                else (
                    f'<c r="{letter}{n}" t="inlineStr"><is><t>{e}</t></is></c>'
                    if v == v.strip()
                    else f'<c r="{letter}{n}" t="inlineStr"><is><t xml:space="preserve">{e}</t></is></c>'
                )
                for n, v, e in zip(rows, values, escaped)
            ]
        if kind is dt.datetime:
            return [
                "" if v is None else f'<c r="{letter}{n}" s="{_DATETIME}" t="n"><v>{serial(v):.16g}</v></c>'
                for n, v in zip(rows, values)
            ]
    return [cell(f"{letter}{n}", v) for n, v in zip(rows, values)]


_TZINFO = operator.attrgetter("tzinfo")
_MICROSECOND = operator.attrgetter("microsecond")
_EPOCH_ORDINAL = _EPOCH.toordinal()
_NO_PHANTOM = dt.datetime(1900, 3, 1)  # from here on, a serial is days since _EPOCH, no correction
_DAYS = operator.attrgetter("days")
_SECONDS = operator.attrgetter("seconds")
_MICROSECONDS = operator.attrgetter("microseconds")
_NONE = type(None)
_SEP = SEP.encode()  # (UTF-8 is self-synchronising: these bytes are only ever SEP)
_EXCEL_LIMIT = 10**EXCEL_DIGITS


def excel_values(values: Sanitiser, column: Sequence[Any], table: str, name: str) -> Sequence[Any]:
    """``values.excel_column(column, table, name)``, its common cases (which it leaves
    as they are) recognised in C first."""
    kinds = set(map(type, column))
    nulls = _NONE in kinds
    kinds.discard(_NONE)
    if len(kinds) == 1:
        kind = next(iter(kinds))
        if kind is bool:
            return column
        present = list(filter(None, column)) if nulls else column  # (0, "" need no checks)
        if kind is int:
            if -_EXCEL_LIMIT < min(present, default=0) and max(present, default=0) < _EXCEL_LIMIT:
                return column
        elif kind is str:
            if max(map(len, present), default=0) <= EXCEL_MAX_CHARS // 2 and xml_clean("".join(present)):
                return column
        elif kind is dt.datetime:
            if not any(map(operator.is_not, map(_TZINFO, present), repeat(None))) and min(present).year >= 1900:
                return column
        elif kind is dt.date:
            if min(present).year >= 1900:
                return column
    return values.excel_column(column, table, name)


def join_rows(parts: Sequence[Any], rows: int, end: bytes) -> bytes:
    """Rows put together from ``parts`` (UTF-8 texts the same in every row, and lists of
    one per row), each row followed by ``end``: every piece laid out in one list by slice
    assignment and joined, all in C.  (Bytes, not str: one value outside Latin-1 would
    make every piece of a str join four bytes a character.)"""
    merged: list[Any] = []
    for part in [*parts, end]:
        if isinstance(part, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += part
        else:
            merged.append(part)
    width = len(merged)
    flat: list[bytes] = [b""] * (rows * width)
    for j, part in enumerate(merged):
        flat[j::width] = [part] * rows if isinstance(part, bytes) else part
    return b"".join(flat)


def _utf8(texts: Sequence[str]) -> list[bytes]:
    """Each text as UTF-8 (joined, encoded and split in C; texts hold no newline)."""
    return "\n".join(texts).encode().split(b"\n")


def _some_cells(parts: list[Any], rows: int, empty: Sequence[bool]) -> list[bytes]:
    """One column's cells (``parts`` as for ``join_rows``), no cell where ``empty``."""
    cells = join_rows(parts, rows, _SEP)[: -len(_SEP)].split(_SEP)
    for i in compress(range(rows), empty):
        cells[i] = b""
    return cells


def column_parts(letter: str, rows: Sequence[bytes], values: Sequence[Any]) -> list[Any]:
    """``column_cells`` (as UTF-8) as parts for ``join_rows``; its common cases (integers,
    strings without leading or trailing white space, datetimes since 1900-03-01 without
    NULLs) without a Python call per value where it can.  (``rows``: the row numbers.)"""
    kinds = set(map(type, values))
    nulls = _NONE in kinds
    kinds.discard(_NONE)
    n = len(rows)
    if len(kinds) == 1:
        kind = next(iter(kinds))
        ref = f'<c r="{letter}'.encode()
        if kind is int:  # (at most 15 digits: orjson writes them as str() does)
            parts = [ref, rows, b'" t="n"><v>', orjson.dumps(values)[1:-1].split(b","), b"</v></c>"]
            if not nulls:
                return parts
            return [_some_cells(parts, n, list(map(operator.is_, values, repeat(None))))]
        if kind is str and not nulls:  # (with NULLs, column_cells is as fast)
            distinct = list(filter(None, set(values)))
            if list(map(str.strip, distinct)) == distinct:  # (else: xml:space="preserve" cells)
                joined = marked(values, False)
                if joined is not None:
                    if _NEEDS_ESCAPE.search(joined):
                        joined = joined.translate(_TEXT_ESCAPES)
                    texts = joined.encode().split(_SEP)
                    parts = [ref, rows, b'" t="inlineStr"><is><t>', texts, b"</t></is></c>"]
                    if "" not in values:
                        return parts
                    return [_some_cells(parts, n, list(map(operator.not_, values)))]
        if kind is dt.datetime and not nulls and min(values) >= _NO_PHANTOM:
            # serial(), the same operations in the same order, a whole column in C: the
            # days since _EPOCH (no correction from 1900-03-01 on) + the time of day's
            # seconds (+ microseconds / 10**6, when there are any) / 86,400
            spans = list(map(operator.sub, values, repeat(_EPOCH)))
            seconds: Any = map(_SECONDS, spans)
            if any(map(_MICROSECOND, values)):
                seconds = map(operator.add, seconds, map(operator.truediv, map(_MICROSECONDS, spans), repeat(10**6)))
            fractions = map(operator.truediv, seconds, repeat(_SECONDS_PER_DAY))
            serials = map(operator.add, map(_DAYS, spans), fractions)
            texts = _utf8(list(map(format, serials, repeat(".16g"))))
            return [ref, rows, f'" s="{_DATETIME}" t="n"><v>'.encode(), texts, b"</v></c>"]
    numbers = [r.decode() for r in rows]
    return [list(map(str.encode, column_cells(letter, numbers, values)))]


# --------------------------------------------------------------------------- the package parts


def _styles() -> str:
    return (
        f'{_HEAD}<styleSheet xmlns="{_NS}">'
        '<numFmts count="3"><numFmt numFmtId="164" formatCode="yyyy-mm-dd h:mm:ss"/>'
        '<numFmt numFmtId="165" formatCode="yyyy-mm-dd"/><numFmt numFmtId="166" formatCode="h:mm:ss"/></numFmts>'
        '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
        '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
        '<fills count="3"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill>'
        '<fill><patternFill patternType="solid"><fgColor rgb="FFEEF2F6"/><bgColor indexed="64"/></patternFill></fill>'
        "</fills>"
        '<borders count="2"><border><left/><right/><top/><bottom/><diagonal/></border>'
        '<border><left/><right/><top/><bottom style="thin"><color rgb="FFC9D3DE"/></bottom><diagonal/></border>'
        "</borders>"
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="5"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="0" fontId="1" fillId="2" borderId="1" xfId="0" applyFont="1" applyFill="1" applyBorder="1"/>'
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="166" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        "</styleSheet>"
    )


def _content_types(sheets: int) -> str:
    sheet_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{sheet_type}"/>' for n in range(1, sheets + 1)
    )
    return (
        f'{_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        '<Override PartName="/docProps/core.xml" '
        'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        '<Override PartName="/docProps/app.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
        f"{overrides}</Types>"
    )


def _root_rels() -> str:
    return (
        f'{_HEAD}<Relationships xmlns="{_PKG_REL}">'
        f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/'
        'core-properties" Target="docProps/core.xml"/>'
        f'<Relationship Id="rId3" Type="{_REL}/extended-properties" Target="docProps/app.xml"/>'
        "</Relationships>"
    )


def _core(created: dt.datetime) -> str:
    at = created.astimezone(dt.UTC) if created.tzinfo else created
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{_HEAD}<cp:coreProperties "
        'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<dc:creator>learnexit</dc:creator>"
        f'<dcterms:created xsi:type="dcterms:W3CDTF">{stamp}</dcterms:created>'
        f'<dcterms:modified xsi:type="dcterms:W3CDTF">{stamp}</dcterms:modified>'
        "</cp:coreProperties>"
    )


def _app() -> str:
    return (
        f"{_HEAD}<Properties "
        'xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
        "<Application>learnexit</Application></Properties>"
    )


def _workbook(titles: list[str]) -> str:
    sheets = "".join(
        f'<sheet name={quoteattr(title)} sheetId="{n}" r:id="rId{n}"/>' for n, title in enumerate(titles, 1)
    )
    return (
        f'{_HEAD}<workbook xmlns="{_NS}" xmlns:r="{_REL}">'
        '<bookViews><workbookView activeTab="0"/></bookViews>'
        f"<sheets>{sheets}</sheets></workbook>"
    )


def _workbook_rels(sheets: int) -> str:
    rels = "".join(
        f'<Relationship Id="rId{n}" Type="{_REL}/worksheet" Target="worksheets/sheet{n}.xml"/>'
        for n in range(1, sheets + 1)
    )
    return (
        f'{_HEAD}<Relationships xmlns="{_PKG_REL}">{rels}'
        f'<Relationship Id="rId{sheets + 1}" Type="{_REL}/styles" Target="styles.xml"/></Relationships>'
    )


_SHEET_START = (
    f'{_HEAD}<worksheet xmlns="{_NS}"><sheetViews><sheetView workbookViewId="0">'
    '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
    '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
    '<sheetFormatPr defaultRowHeight="15"/>'
)  # then <cols> (known with the header) and <sheetData>

# Column widths (in Excel's character widths) by what a column holds: set once from the
# column types and header names, never by measuring values (the sheet is streamed).  A
# date or time shown in "yyyy-mm-dd h:mm:ss" needs 19 characters, or Excel shows ###.
_KIND_WIDTH = {"datetime": 20.0, "date": 12.0, "integer": 11.0, "number": 13.0, "boolean": 8.0, "binary": 24.0}
_TEXT_WIDTH = (10.0, 36.0, 36.0)  # text: at least, when its length is unknown, at most (wider: wrap)


def column_width(kind: str | None, header: str, length: int | None = None) -> float:
    """The width of a column of ``kind`` headed ``header`` (``length``: a text column's
    declared maximum, e.g. VARCHAR(20))."""
    least, unknown, most = _TEXT_WIDTH
    if kind in _KIND_WIDTH:
        width = _KIND_WIDTH[kind]
    elif length:
        width = min(max(float(length) + 1, least), most)
    else:
        width = unknown
    return min(max(width, len(header) * 1.1 + 3), 60.0)  # (the header is bold; a long name gets its room)


def cols_xml(widths: Sequence[float]) -> str:
    """``<cols>`` for ``widths`` (empty for no columns)."""
    cols = "".join(f'<col min="{n}" max="{n}" width="{w:.6g}" customWidth="1"/>' for n, w in enumerate(widths, start=1))
    return f"<cols>{cols}</cols>" if cols else ""


def spec_widths(spec: TableSpec, names: Sequence[str]) -> list[float]:
    """Widths for a table's columns (``names``: the headers as written)."""
    widths = []
    for column, name in zip(spec.columns, names, strict=False):
        length = getattr(column.sql_type, "length", None) if column.kind == "string" else None
        widths.append(column_width(column.kind, name, length if isinstance(length, int) else None))
    return widths


_CONTENTS_WIDTHS = (32.0, 32.0, 11.0, 11.0, 11.0)
_SHEET_END = "</sheetData></worksheet>"
_ZIP_PIECE = 4 << 20  # bytes compressed per call when zipping the workbook
_DIRECT_ROWS = 5000  # rows C writes at a time onto a sheet (``XlsxWriter.direct``)


class _Sheet:
    """One worksheet being streamed to its temporary file."""

    def __init__(self, path: Path, title: str) -> None:
        self.path = path
        self.title = title
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        self.file: IO[bytes] | None = os.fdopen(fd, "wb", buffering=1 << 20)
        self.file.write(_SHEET_START.encode())
        self.rows = 0  # rows written, the header included
        self.started = False  # <sheetData> written

    def write(self, xml: str) -> None:
        self.write_bytes(xml.encode("utf-8"))

    def write_bytes(self, xml: bytes) -> None:
        assert self.file is not None
        self.file.write(xml)

    def header(self, names: Sequence[str], widths: Sequence[float] = ()) -> None:
        """The column widths and the header row (bold, shaded, frozen: ``_SHEET_START``)."""
        self.rows = 1
        cells = "".join(text_cell(f"{column_letter(i)}1", name, _BOLD) for i, name in enumerate(names) if name)
        self.write(f'{cols_xml(widths)}<sheetData><row r="1">{cells}</row>')
        self.started = True

    def finish(self) -> None:
        if self.file is not None:
            if not self.started:
                self.file.write(b"<sheetData>")
            self.file.write(_SHEET_END.encode())
            self.file.close()
            self.file = None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class XlsxWriter(TableWriter):
    def __init__(self, job: ExportJob) -> None:
        self.job = job
        self.values = Sanitiser("xlsx")
        self.path = workbook_path(job.customer)
        self.used: set[str] = set()
        self.sheets: list[_Sheet] = []
        self.contents = self._sheet(sheet_title(CONTENTS_TITLE, self.used))
        self.contents.header(["sheet", "table", "first_row", "last_row", "rows"], _CONTENTS_WIDTHS)
        self.ws: _Sheet | None = None
        self.index: list[list[Any]] = []
        self.part = 0
        self.on_sheet = 0
        self.table_rows = 0
        self.sheet_first = 1
        self.columns = 0
        self.letters: list[str] = []
        self.handed_back: set[int] = set()  # the table's columns the C speedups left to Python
        self.zipping: Background | None = None

    # -- sheets ---------------------------------------------------------------

    def _sheet(self, title: str) -> _Sheet:
        number = len(self.sheets) + 1
        target = self.job.path(f"{FOLDER}/.{file_stem(self.job.customer)}.sheet{number}.xml.part")
        sheet = _Sheet(target, title)
        self.sheets.append(sheet)
        return sheet

    def _new_part(self, spec: TableSpec) -> None:
        self._close_part(spec)
        self.part += 1
        self.sheet_first = self.table_rows + 1
        self.on_sheet = 0
        self.ws = self._sheet(sheet_title(spec.name, self.used, self.part))
        names = [self.values.excel_string(c, spec.name, "(header)") for c in spec.column_names[: self.columns]]
        self.ws.header(names, spec_widths(spec, names))

    def _close_part(self, spec: TableSpec) -> None:
        if self.ws is not None:
            first = self.sheet_first if self.on_sheet else None
            last = self.table_rows if self.on_sheet else None
            self.index.append([self.ws.title, spec.name, first, last, self.on_sheet])
            self.ws.finish()
            self.ws = None

    # -- the TableWriter interface -------------------------------------------

    def start_table(self, spec: TableSpec) -> None:
        self.part = 0
        self.table_rows = 0
        self.columns = min(len(spec.columns), MAX_COLUMNS)
        self.letters = [column_letter(i) for i in range(self.columns)]
        self.handed_back = set()
        if len(spec.columns) > MAX_COLUMNS:
            self.job.note(
                "xlsx",
                f"{spec.name}: {len(spec.columns)} columns, Excel holds {MAX_COLUMNS}: "
                "the rest are in CSV and JSON only",
            )
        self._new_part(spec)

    def direct(self, spec: TableSpec) -> DirectSink | None:
        if speedups.native is None:
            return None
        return DirectSink(sheet=lambda handle, progress: self._sheet_rows(spec, handle, progress))

    def _sheet_rows(self, spec: TableSpec, handle: Any, progress: Any) -> tuple[int, bool]:
        """The rows of C's statement (``speedups.sqlite_rows``) onto the table's sheets, as
        ``write_columns`` puts them (``native.sqlite_cells``: the cells ``xlsx_rows`` makes
        of what the driver gives), a sheet's worth at a time: (rows written, all?)."""
        native = speedups.native
        assert native is not None
        letters = tuple(self.letters)
        written = 0
        try:
            while True:
                full = self.on_sheet >= MAX_DATA_ROWS  # (the next sheet is begun only for a row)
                on_sheet = 0 if full else self.on_sheet
                take = min(_DIRECT_ROWS, MAX_DATA_ROWS - on_sheet)
                xml, rows, state = native.sqlite_cells(handle, letters, on_sheet + 2, take)
                if rows:
                    if full:
                        self._new_part(spec)
                    assert self.ws is not None
                    self.ws.write_bytes(xml)
                    self.on_sheet += rows
                    self.table_rows += rows
                    written += rows
                    progress(written)
                if state:
                    return written, state == 1
        finally:
            native.sqlite_close(handle)

    def write_batch(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.write_columns(spec, list(zip(*rows, strict=True)), len(rows))

    def write_columns(self, spec: TableSpec, columns: list[Sequence[Any]], rows: int) -> None:
        done = 0
        while done < rows:
            if self.on_sheet >= MAX_DATA_ROWS:
                self._new_part(spec)
            take = min(rows - done, MAX_DATA_ROWS - self.on_sheet)
            part = columns if take == rows else [values[done : done + take] for values in columns]
            self._write_rows(spec, part, take)
            done += take

    def _write_rows(self, spec: TableSpec, columns: list[Sequence[Any]], rows: int) -> None:
        """Rows onto the current sheet, a column at a time."""
        assert self.ws is not None
        table = spec.name
        first = self.on_sheet + 2  # the header is row 1
        if speedups.native is not None:
            xml = self._native_rows(speedups.native, spec, columns, first, rows)
            if xml is not None:
                self.ws.write_bytes(xml)
                self.on_sheet += rows
                self.table_rows += rows
                return
        numbers = _utf8(list(map(str, range(first, first + rows))))
        parts: list[Any] = [b'<row r="', numbers, b'">']
        for letter, values, name in zip(self.letters, columns, spec.column_names, strict=False):
            parts += column_parts(letter, numbers, excel_values(self.values, values, table, name))
        parts.append(b"</row>")
        self.ws.write_bytes(join_rows(parts, rows, b""))
        self.on_sheet += rows
        self.table_rows += rows

    def _native_rows(
        self, native: Any, spec: TableSpec, columns: list[Sequence[Any]], first: int, rows: int
    ) -> bytes | None:
        """The rows by ``native.xlsx_rows``; a column it hands back is made into cells by
        ``column_cells`` (after ``Sanitiser.excel``, which notes what it changes).  ``None``
        when text cannot be encoded (the caller takes the Python path)."""
        letters = self.letters
        names = spec.column_names

        def convert(values: Sequence[Any], i: int) -> Sequence[Any]:
            numbers = list(map(str, range(first, first + rows)))
            return column_cells(letters[i], numbers, excel_values(self.values, values, spec.name, names[i]))

        def write(columns: list[Sequence[Any]], verbatim: list[bool]) -> bytes | int:
            return native.xlsx_rows(columns, verbatim, letters, first)

        return native_batch(self.values, columns[: len(letters)], set(), self.handed_back, convert, write)

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
        """Finish the contents sheet and start zipping the workbook on a thread: zlib works
        outside the GIL, so the compression overlaps with the formats' next steps (the
        export waits for it, ``ExportJob.wait_background``)."""
        contents = self.contents
        for n, entry in enumerate(self.index, start=2):
            contents.write(
                f'<row r="{n}">{"".join(cell(f"{column_letter(i)}{n}", v) for i, v in enumerate(entry))}</row>'
            )
        contents.finish()
        self.zipping = self.job.in_background(self._zip, "xlsx")

    def _zip(self) -> None:
        titles = [s.title for s in self.sheets]
        target = self.job.path(self.path)
        try:
            with (
                self.job.open_file(self.path, "wb") as raw,
                zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf,
            ):
                zf.writestr("[Content_Types].xml", _content_types(len(titles)))
                zf.writestr("_rels/.rels", _root_rels())
                zf.writestr("docProps/app.xml", _app())
                zf.writestr("docProps/core.xml", _core(self.job.started_at))
                zf.writestr("xl/workbook.xml", _workbook(titles))
                zf.writestr("xl/_rels/workbook.xml.rels", _workbook_rels(len(titles)))
                zf.writestr("xl/styles.xml", _styles())
                for n, sheet in enumerate(self.sheets, start=1):
                    # As ``zf.write`` would, but in big pieces: zlib and crc32 release the GIL
                    # for each call, and a thread that takes it back often waits its turn.
                    info = zipfile.ZipInfo.from_file(sheet.path, f"xl/worksheets/sheet{n}.xml")
                    info.compress_type = zipfile.ZIP_DEFLATED
                    # (the level's attribute: ``compress_level`` from Python 3.13, ``_compresslevel`` before)
                    setattr(info, "compress_level" if hasattr(info, "compress_level") else "_compresslevel", 1)
                    big = info.file_size > 1 << 30
                    with open(sheet.path, "rb") as src, zf.open(info, "w", force_zip64=big) as dst:
                        _fast_deflate(dst)
                        shutil.copyfileobj(src, dst, _ZIP_PIECE)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        finally:
            self._remove_temp_files()

    def abort(self) -> None:
        if self.zipping is not None:  # a later format failed: let the thread end first
            try:
                self.zipping.wait()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        self._remove_temp_files()
        self.job.path(self.path).unlink(missing_ok=True)

    def _remove_temp_files(self) -> None:
        for sheet in self.sheets:
            sheet.close()
            sheet.path.unlink(missing_ok=True)
        self.sheets = []


@register
class XlsxExporter(Exporter):
    name = "xlsx"
    description = "one Excel workbook, one sheet per table (typed values, strings never formulas)"
    folder = FOLDER
    driver_reads = True

    def writer(self, job: ExportJob) -> TableWriter:
        return XlsxWriter(job)
