"""CSV: ``data/csv/<table>.csv``, one file per owned table.

UTF-8 without a byte-order mark, a header row of column names, RFC 4180 (fields quoted
only when they must be, quotes doubled, records ended by CRLF; line breaks inside a
value are kept as they are, inside quotes).  Values are the canonical text of
``values.text``: NULL is the empty field, booleans ``true``/``false``, dates and times
ISO 8601, decimals exact, binary base64.  (An empty string and NULL therefore look the
same; ``datapackage.json`` declares which columns may be NULL.)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import IO, Any

from . import speedups
from .base import DirectSink, Exporter, ExportJob, TableSpec, TableWriter, append_file, register
from .pg_csv import server_writes
from .speedups import native_batch
from .values import Sanitiser, unique_stems

FOLDER = "csv"


def csv_paths(tables: list[str]) -> dict[str, str]:
    """The file (below ``data/``) holding each table's rows: ``csv/<table>.csv``, the name
    made safe and unique (see ``values.unique_stems``)."""
    return {name: f"{FOLDER}/{stem}.csv" for name, stem in unique_stems(tables).items()}


_QUOTED = re.compile('[",\r\n]')  # what makes RFC 4180 (and csv.QUOTE_MINIMAL) quote a field


def _field(value: Any) -> str:
    text = "" if value is None else value if type(value) is str else str(value)
    return '"' + text.replace('"', '""') + '"' if _QUOTED.search(text) else text


def csv_fields(values: Sequence[Any]) -> list[str] | Sequence[Any]:
    """One column of a batch as CSV fields, exactly as ``csv.writer`` (QUOTE_MINIMAL) writes
    the values ``Sanitiser.csv_column`` gives: NULL empty, numbers as ``str``, text quoted
    only when it holds a quote, a comma or a line break (quotes doubled)."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if kinds == {int}:
        if None not in values:
            return list(map(str, values))
        return ["" if v is None else str(v) for v in values]
    if kinds == {str} or not kinds:
        if not _QUOTED.search("".join(filter(None, values))):
            return ["" if v is None else v for v in values] if None in values else values
        distinct = set(values)
        if len(distinct) * 4 < len(values):  # few distinct texts (codes, actions…): each quoted once
            fields = {v: _field(v) for v in distinct}
            return list(map(fields.__getitem__, values))
    return [_field(v) for v in values]


class CsvWriter(TableWriter):
    """Writes each batch a column at a time: the values are converted by
    ``Sanitiser.csv_column``, made fields by ``csv_fields`` (quoting only the columns that
    need it), joined into records, and the batch is encoded once.  A batch holding a lone
    surrogate (UTF-8 cannot encode it) is redone value by value through ``Sanitiser.csv``,
    which replaces it and notes it.

    With the C speedups (``speedups.native``) the records are written by
    ``csv_records``; a column it hands back (a Decimal, a datetime with a zone…) is made
    fields here as above and passed in finished, and stays so for the rest of the table."""

    def __init__(self, job: ExportJob) -> None:
        self.job = job
        self.values = Sanitiser("csv")
        self.paths = csv_paths([t.name for t in job.tables])
        self.file: IO[bytes] | None = None
        self.python_columns: set[int] = set()  # the table's columns converted here, not in C

    def _emit(self, columns: list[Sequence[Any]]) -> None:
        assert self.file is not None
        fields = [csv_fields(values) for values in columns]
        if len(fields) == 1:  # csv.writer quotes a record of one empty field (it would be a blank line)
            fields = [['""' if f == "" else f for f in fields[0]]]
        self.file.write(("\r\n".join(map(",".join, zip(*fields, strict=True))) + "\r\n").encode("utf-8"))

    def start_table(self, spec: TableSpec) -> None:
        self.file = self.job.open_file(self.paths[spec.name], "wb", buffering=1 << 20)
        self.python_columns = set()
        self._emit([[self.values.csv(c, spec.name, "(header)")] for c in spec.column_names])

    def direct(self, spec: TableSpec) -> DirectSink | None:
        return None if self.file is None else DirectSink(self.file.write)

    def write_batch(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.write_columns(spec, list(zip(*rows, strict=True)), len(rows))

    def write_columns(self, spec: TableSpec, columns: list[Sequence[Any]], rows: int) -> None:
        if not rows:
            return
        names = spec.column_names
        table = spec.name
        column = self.values.csv_column
        if speedups.native is not None:
            records = self._records(speedups.native, spec, columns)
            if records is not None:
                assert self.file is not None
                self.file.write(records)
                return
        counted = self.values.changes.copy()  # (what to go back to if the batch is redone)
        try:
            self._emit([column(values, table, name) for values, name in zip(columns, names, strict=True)])
        except UnicodeEncodeError:  # a lone surrogate somewhere in the batch: value by value
            self.values.changes = counted
            convert = self.values.csv
            self._emit([[convert(v, table, name) for v in values] for values, name in zip(columns, names, strict=True)])

    def _records(self, native: Any, spec: TableSpec, columns: list[Sequence[Any]]) -> bytes | None:
        """The batch's records by ``native.csv_records``; ``None`` when text in it cannot
        be encoded (the caller redoes the batch, replacing and noting lone surrogates)."""
        column = self.values.csv_column

        def convert(values: Sequence[Any], i: int) -> Sequence[Any]:
            return csv_fields(column(values, spec.name, spec.columns[i].name))

        return native_batch(self.values, columns, set(), self.python_columns, convert, native.csv_records)

    def end_table(self, spec: TableSpec, rows: int) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.values.report(self.job)

    def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    # -- a table in key ranges: each range's records in a file of its own, appended in order

    def _part_path(self, spec: TableSpec, part: int) -> str:
        folder, name = self.paths[spec.name].rsplit("/", 1)
        return f"{folder}/.{name}.part{part}"

    def start_part(self, spec: TableSpec, part: int) -> None:
        self.file = self.job.open_file(self._part_path(spec, part), "wb", buffering=1 << 20)
        self.python_columns = set()

    def end_part(self, spec: TableSpec, part: int, rows: int) -> dict[str, Any]:
        self.abort()
        changes, self.values.changes = self.values.changes, Counter()
        return {"path": self._part_path(spec, part), "changes": changes}

    def join_part(self, spec: TableSpec, part: int, output: dict[str, Any]) -> None:
        assert self.file is not None
        append_file(self.job.path(output["path"]), self.file)
        self.values.changes.update(output["changes"])

    def abort_part(self, spec: TableSpec, part: int) -> None:
        self.abort()
        self.job.path(self._part_path(spec, part)).unlink(missing_ok=True)


@register
class CsvExporter(Exporter):
    name = "csv"
    description = "one CSV file per table (UTF-8, RFC 4180, exact values)"
    folder = FOLDER

    def writer(self, job: ExportJob) -> TableWriter:
        return CsvWriter(job)

    def splits(self, job: ExportJob, spec: TableSpec) -> bool:
        # (a table PostgreSQL writes itself is one COPY: the server reads it with its own
        # parallel workers, where key ranges would each scan and sort the table again)
        alone = list(job.options.formats) == [self.name]  # (with other formats the rows are read for all)
        return not (alone and server_writes(job.conn, job.select(spec.name)))
