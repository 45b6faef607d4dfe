"""The read pass: every table of the export's snapshot read once, feeding every format's
``TableWriter`` (a big table perhaps in key ranges, one per process: ``Split``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..errors import OperationalError
from ..exporters import speedups
from ..exporters.base import DirectSink, Exporter, ExportJob, TableSpec, TableWriter
from ..exporters.pg_csv import pg_csv
from ..logs import event
from .hooks import NO_HOOKS, ExportHooks


@dataclass(frozen=True)
class Split:
    """One big table read in key ranges, one range per process: range 0 by the export's
    own process (which reads every other table too), range k by worker k.  ``bounds``
    holds the first key of ranges 1, 2, …; the ranges together hold every key."""

    table: str
    key: str
    bounds: tuple[int, ...]

    @property
    def parts(self) -> int:
        return len(self.bounds) + 1

    def where(self, spec: TableSpec, part: int) -> Any:
        key = spec.table.c[self.key]
        conditions = []
        if part > 0:
            conditions.append(key >= self.bounds[part - 1])
        if part < len(self.bounds):
            conditions.append(key < self.bounds[part])
        return sa.and_(*conditions)


# What the export's process receives from the workers that read the other ranges, in
# range order: (range, rows read, each format's ``TableWriter.end_part`` result).
PartResults = Callable[[], Iterable[tuple[int, int, dict[str, Any]]]]


def read_pass(
    job: ExportJob,
    exporters: Sequence[Exporter],
    totals: dict[str, int],
    label: str | None = None,
    split: Split | None = None,
    parts: PartResults | None = None,
    hooks: ExportHooks = NO_HOOKS,
) -> None:
    """Read every table once from the snapshot, feeding every format's TableWriter
    (``label``: the format, when each format reads on its own).  With ``split``, this
    process reads only the first key range of that table and takes the other ranges in
    from ``parts`` (written by worker processes) before the table ends.  ``hooks``: called
    after each table."""
    writers: list[tuple[str, TableWriter]] = []
    try:
        for exporter in exporters:
            writer = exporter.writer(job)
            if writer is not None:
                writers.append((exporter.name, writer))
        if not writers:  # only formats that read on their own (documents, media): nothing to feed
            return
        alone = reads_alone(job, writers)
        if split is None:  # (a watcher must see every row: not when a table is read in ranges)
            _add_watchers(job, exporters, writers, alone)
        # Batches as columns when every writer takes them so (no transposing back and forth).
        columnar = all(type(w).write_columns is not TableWriter.write_columns for _, w in writers)
        for spec in job.tables:
            for _, w in writers:
                w.start_table(spec)
            rows = 0
            job.progress(spec.name, 0)
            where = split.where(spec, 0) if split is not None and spec.name == split.table else None
            if where is None and totals[spec.name] == 0:
                pass  # counted empty in this snapshot: nothing to read (the writers' files are the same)
            elif columnar:
                rows = _read_columns(job, spec, where, writers, alone)
            else:
                for batch in job.tuples(spec.name, where):
                    for _, w in writers:
                        w.write_batch(spec, batch)
                    rows += len(batch)
                    job.progress(spec.name, rows)
            if where is not None and parts is not None:
                for part, part_rows, outputs in parts():
                    for name, w in writers:
                        w.join_part(spec, part, outputs[name])
                    rows += part_rows
                    job.progress(spec.name, rows)
            for _, w in writers:
                w.end_table(spec, rows)
            if rows != totals[spec.name]:
                raise OperationalError(
                    f"{spec.name}: read {rows} rows but counted {totals[spec.name]} in the same snapshot"
                )
            job.counts[spec.name] = rows
            # one line per table only when asked for (--log-level debug): 481 tables are 481 lines
            if label is None:
                event("export_table", level=logging.DEBUG, customer=job.customer, table=spec.name, rows=rows)
            else:
                event(
                    "export_table", level=logging.DEBUG, customer=job.customer, table=spec.name, rows=rows, format=label
                )
            hooks.after_table(spec.name)
        for _, w in writers:
            w.close()
    except BaseException:
        for _, w in writers:
            try:
                w.abort()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        raise


def _add_watchers(
    job: ExportJob, exporters: Sequence[Exporter], writers: list[tuple[str, TableWriter]], alone: list[bool]
) -> None:
    """The formats' watchers onto ``writers`` (and ``alone``), fed by a read through the
    driver the pass makes anyway, never by one of their own: when every writer would read
    alone by C, a format that may read through the driver does so and feeds them
    (``Exporter.driver_reads``: cheaper than the watchers' own read of the table); when
    none may, no watcher (its format reads what it needs itself)."""
    watchers = []
    for exporter in exporters:
        if type(exporter).writer is Exporter.writer and (watcher := exporter.watcher(job)) is not None:
            watchers.append((exporter.name, watcher))
    if watchers and all(alone):
        feeders = {e.name for e in exporters if e.driver_reads}
        for i, (name, _writer) in enumerate(writers):
            if name in feeders:
                alone[i] = False
                break
    if not all(alone):
        writers += watchers
        alone += [False] * len(watchers)


def reads_alone(job: ExportJob, writers: list[tuple[str, TableWriter]]) -> list[bool]:
    """Which writers read each table on their own, by C straight from the source
    (``read_direct``) when they can (``TableWriter.direct``): the only writer of the
    pass, or on SQLite every one (C reading a table again costs less than the driver's
    fetch it would share).  The others share one read through the driver."""
    can = [type(w).direct is not TableWriter.direct for _, w in writers]
    if len(writers) == 1 or (job.conn.dialect.name == "sqlite" and speedups.native is not None):
        return can
    return [False] * len(writers)


def _read_columns(
    job: ExportJob, spec: TableSpec, where: Any, writers: list[tuple[str, TableWriter]], alone: list[bool]
) -> int:
    """One table for every writer: each writer that reads alone by C (``read_direct``),
    then the rest — the other writers', and those C stopped before the end — in one
    read through the driver from the first row one of them lacks, each writer taking the
    rows it has not written.  Returns the rows read (every writer's, the same)."""
    have = [0] * len(writers)
    done: set[int] = set()
    counts: set[int] = set()
    report = job.progress
    shown = [0]

    def forward(label: str, n: int, total: int | None = None) -> None:  # (each read counts from 0 again)
        if label != spec.name:
            report(label, n, total)
        elif n > shown[0]:
            shown[0] = n
            report(label, n, total)

    job.progress = forward
    try:
        for i, writer in enumerate(writers):
            if alone[i]:
                have[i], finished = read_direct(job, spec, where, writer[1])
                if finished:
                    done.add(i)
                    counts.add(have[i])
        rest = [i for i in range(len(writers)) if i not in done]
        if rest:
            rows = min(have[i] for i in rest)
            for columns in job.columns(spec.name, where, offset=rows):
                n = len(columns[0])
                for i in rest:
                    skip = have[i] - rows
                    if skip < n:
                        part = columns if skip <= 0 else [c[skip:] for c in columns]
                        writers[i][1].write_columns(spec, part, n - max(skip, 0))
                rows += n
                job.progress(spec.name, rows)
            counts.add(rows)
    finally:
        job.progress = report
    if len(counts) > 1:
        raise OperationalError(f"{spec.name}: read {sorted(counts)} rows in the same snapshot")
    return counts.pop() if counts else 0


def read_direct(job: ExportJob, spec: TableSpec, where: Any, writer: TableWriter) -> tuple[int, bool]:
    """The table's rows written straight from the source by C for ``writer``, one that
    reads alone (``reads_alone``) and takes them so (``TableWriter.direct``: CSV,
    SQL, JSON and the workbook from SQLite — ``speedups.sqlite_csv``, ``sqlite_inserts``,
    ``sqlite_texts``, ``sqlite_rows`` —, CSV from PostgreSQL's COPY): (rows written, all
    of them?).  (0, False) when it cannot: the pass reads the rows, or the rest of them,
    through the driver."""
    sink = writer.direct(spec)
    if sink is None:
        return 0, False

    def write(records: bytes, rows: int) -> None:
        assert sink.write is not None
        sink.write(records)
        job.progress(spec.name, rows)

    prepare = job.fill_key_sets
    stmt = job.select(spec.name, where)
    if sink.template is not None:
        got = _direct_texts(job, spec, stmt, sink, prepare)
    elif sink.sheet is not None:
        handle = speedups.sqlite_rows(job.conn, stmt, prepare)
        got = None if handle is None else sink.sheet(handle, lambda rows: job.progress(spec.name, rows))
    elif sink.statements is None and job.conn.dialect.name == "postgresql":
        copied = pg_csv(job.conn, stmt, write)
        got = None if copied is None else copied[:2]
        if copied is not None and copied[2] is not None:  # (the driver reads the rest, and says what is wrong)
            event("export_copy_stopped", level=logging.DEBUG, table=spec.name, rows=copied[0])
    elif sink.statements is None:
        got = speedups.sqlite_csv(job.conn, stmt, write, prepare)
    else:
        got = speedups.sqlite_inserts(job.conn, stmt, write, sink.statements, sink.refs, prepare)
    rows, finished = got or (0, False)
    sink.wrote(rows)
    return rows, finished


def _direct_texts(
    job: ExportJob, spec: TableSpec, stmt: sa.Select[Any], sink: DirectSink, prepare: Any
) -> tuple[int, bool] | None:
    """A direct sink's rows as its template's texts (``speedups.sqlite_texts``), a batch
    at a time: (rows written, all of them?), None when C cannot read them."""
    assert sink.template is not None and sink.texts is not None
    texts = speedups.sqlite_texts(job.conn, stmt, [sink.template], -1, job.options.batch_size, prepare)
    if texts is None:
        return None
    for _keys, (batch,) in texts:
        sink.texts(batch)
        job.progress(spec.name, texts.rows)
    return texts.rows, texts.finished


def read_part(job: ExportJob, exporters: Sequence[Exporter], split: Split, part: int) -> tuple[int, dict[str, Any]]:
    """In a worker: range ``part`` of the split table into every format's files of its own
    (``TableWriter.start_part``); returns the rows read and each format's result."""
    spec = job.spec(split.table)
    writers: list[tuple[str, TableWriter]] = []
    try:
        for exporter in exporters:
            writer = exporter.writer(job)
            if writer is not None:
                writers.append((exporter.name, writer))
                writer.start_part(spec, part)
        # (C reads a range only for a lone writer: several share one read through the driver)
        rows = _read_columns(job, spec, split.where(spec, part), writers, [len(writers) == 1] * len(writers))
        return rows, {name: w.end_part(spec, part, rows) for name, w in writers}
    except BaseException:
        for _, w in writers:
            try:
                w.abort_part(spec, part)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        raise


__all__ = ["PartResults", "Split", "read_direct", "read_part", "read_pass"]
