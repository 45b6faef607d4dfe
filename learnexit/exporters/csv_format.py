"""CSV: ``data/csv/<table>.csv``, one file per owned table.

UTF-8 without a byte-order mark, a header row of column names, RFC 4180 (fields quoted
only when they must be, quotes doubled, records ended by CRLF; line breaks inside a
value are kept as they are, inside quotes).  Values are the canonical text of
``values.text``: NULL is the empty field, booleans ``true``/``false``, dates and times
ISO 8601, decimals exact, binary base64.  (An empty string and NULL therefore look the
same; ``datapackage.json`` declares which columns may be NULL.)
"""

from __future__ import annotations

import csv
from typing import IO, Any

import sqlalchemy as sa

from .base import Exporter, ExportJob, TableSpec, TableWriter, register
from .values import Sanitiser, unique_stems

FOLDER = "csv"


def csv_paths(tables: list[str]) -> dict[str, str]:
    """The file (below ``data/``) holding each table's rows: ``csv/<table>.csv``, the name
    made safe and unique (see ``values.unique_stems``)."""
    return {name: f"{FOLDER}/{stem}.csv" for name, stem in unique_stems(tables).items()}


class CsvWriter(TableWriter):
    def __init__(self, job: ExportJob) -> None:
        self.job = job
        self.values = Sanitiser("csv")
        self.paths = csv_paths([t.name for t in job.tables])
        self.file: IO[Any] | None = None
        self.out: Any = None

    def start_table(self, spec: TableSpec) -> None:
        self.file = self.job.open_file(self.paths[spec.name], "w", newline="", encoding="utf-8")
        self.out = csv.writer(self.file, dialect="excel", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        self.out.writerow([self.values.csv(c, spec.name, "(header)") for c in spec.column_names])

    def write_batch(self, spec: TableSpec, rows: list[sa.Row[Any]]) -> None:
        names = spec.column_names
        convert = self.values.csv
        table = spec.name
        self.out.writerows([[convert(v, table, c) for v, c in zip(row, names, strict=True)] for row in rows])

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


@register
class CsvExporter(Exporter):
    name = "csv"
    description = "one CSV file per table (UTF-8, RFC 4180, exact values)"
    folder = FOLDER

    def writer(self, job: ExportJob) -> TableWriter:
        return CsvWriter(job)
