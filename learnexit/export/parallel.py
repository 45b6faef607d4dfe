"""Running the formats (``run_formats``): in the export's own process, or side by side in
forked processes, each reading its own snapshot of the same data: groups of formats, one
process each (``group_formats``), or, when the formats make one group, a big table's key
ranges (``plan_split``).  See the ``learnexit.export`` docstring for the snapshot rules."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import queue
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from .. import errors
from ..errors import BadInput, LearnexitError, OperationalError
from ..exporters.base import Exporter, ExportJob, load_builtin
from ..logs import event
from ..machine import usable_cores
from ..package.build import prehash
from ..source import Source
from .hooks import NO_HOOKS, ExportHooks
from .reading import PartResults, Split, read_part, read_pass
from .records import error_text
from .specs import integer_key

# Processes that export formats side by side (default: one per core, when there is enough
# to do); 1 runs every format in this process.
EXPORT_WORKERS_ENV = "LEARNEXIT_EXPORT_WORKERS"
PARALLEL_FROM_ROWS = 10_000
# A table this big may be read in key ranges by several processes (``plan_split``).
SPLIT_FROM_ROWS = 100_000
# Rough seconds of each format alone for 600k rows, less the ~0.75 s every export spends
# before its formats (``bench/run.py``, 2026-12-06: JSON and XML rows made by C, Word
# certificates from templates), to balance the groups and start the costly tasks first.
_COST = {"json": 1.95, "xml": 0.5, "xlsx": 2.0, "pdf": 2.75, "docx": 1.7, "sql": 0.4, "csv": 0.3, "media": 0.05}
# A format cheaper than this that reads no rows is a task of its own (see ``group_formats``).
_FILLER_COST = 0.5
# A format whose ``after`` step makes another's files too when both are exported (the
# nested JSON step writes the XML document; the first document format renders both).
_MADE_WITH = {"xml": "json", "docx": "pdf"}


def format_costs(exporters: Sequence[Exporter]) -> dict[str, float]:
    """Each format's rough cost in this export (a format another one makes costs almost
    nothing, its maker the sum), to balance the groups of a parallel export."""
    names = {e.name for e in exporters}
    cost = {name: _COST.get(name, 1.0) for name in names}
    for name, maker in _MADE_WITH.items():
        if name in names and maker in names:
            cost[maker] += cost[name]
            cost[name] = 0.1
    return cost


def export_workers(source: Source, exporters: Sequence[Exporter], totals: dict[str, int]) -> int:
    """How many processes may export: one per core (``LEARNEXIT_EXPORT_WORKERS``
    overrides), and 1 when the source cannot share its snapshot with other processes
    (MySQL/MariaDB), fork is not available, or there is little to do.  ``run_formats``
    uses at most one per group of formats, or one per key range of a big table."""
    configured = os.environ.get(EXPORT_WORKERS_ENV, "").strip()
    if configured:
        try:
            wanted = max(1, int(configured))
        except ValueError:
            raise BadInput(f"{EXPORT_WORKERS_ENV} must be a whole number, not {configured!r}") from None
    else:
        if sum(totals.values()) < PARALLEL_FROM_ROWS:
            return 1
        wanted = usable_cores()
    if not exporters or not source.shareable() or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return wanted


def plan_split(job: ExportJob, group: Sequence[Exporter], workers: int, totals: dict[str, int]) -> Split | None:
    """When one group of formats would leave cores idle: the biggest table (at least
    ``SPLIT_FROM_ROWS`` rows, a one-column integer key) cut into ``workers`` ranges of
    keys, if every format of the group can write a table in ranges (``Exporter.splits``).
    The ranges hold about the same rows by the counting scan's spread of the keys
    (``TableSpec.key_spread``, ``even_rows``), else they split the lowest to highest key
    evenly (an uneven spread then costs time, not rows)."""
    readers = [e for e in group if reads_rows(e)]
    if workers < 2 or not readers:
        return None
    ranged = [t for t in job.tables if t.key_range is not None and totals.get(t.name, 0) >= SPLIT_FROM_ROWS]
    if not ranged:
        return None
    spec = max(ranged, key=lambda t: totals[t.name])
    key = integer_key(spec.table)
    if key is None or spec.key_range is None or not all(e.splits(job, spec) for e in readers):
        return None
    low, high = spec.key_range
    span = high - low + 1
    parts = min(workers, span)
    if parts < 2:
        return None
    bounds = even_rows(spec.key_spread, parts, low, high) or tuple(low + span * k // parts for k in range(1, parts))
    return Split(spec.name, key, bounds)


def even_rows(spread: Sequence[tuple[int, int]], parts: int, low: int, high: int) -> tuple[int, ...] | None:
    """The first keys of ranges 1, 2, … that hold about the same number of rows, read off
    ``spread`` (points (key, rows up to it), rows spread evenly between points); None when
    it does not give ``parts`` ranges of at least one key each within low..high."""
    total = spread[-1][1] if spread else 0
    if total <= 0:
        return None
    bounds = []
    for k in range(1, parts):
        target = total * k / parts
        for (k0, r0), (k1, r1) in zip(spread, spread[1:], strict=False):
            if r0 <= target <= r1 and r1 > r0:
                bounds.append(k0 + round((k1 - k0) * (target - r0) / (r1 - r0)) + 1)
                break
        else:
            return None
    keys = [low, *bounds, high + 1]
    if any(a >= b for a, b in zip(keys, keys[1:], strict=False)):
        return None
    return tuple(bounds)


def run_formats(
    job: ExportJob,
    exporters: Sequence[Exporter],
    totals: dict[str, int],
    order: list[str],
    hooks: ExportHooks = NO_HOOKS,
) -> None:
    """Every format's rows and documents, in this process or side by side in several:
    groups of formats, one process each, or (one group) a big table's key ranges."""
    job.counts.update(totals)  # verified table by table by every read pass
    workers = export_workers(job.source, exporters, totals)
    tasks = group_formats(exporters, workers) if workers > 1 else []
    split = plan_split(job, tasks[0], workers, totals) if len(tasks) == 1 else None
    parallel = len(tasks) > 1 or split is not None
    run = _Run(tasks, totals, split, hooks)
    if not parallel or not _run_parallel(job, exporters, order, run, workers):
        with _background_done(job):
            for exporter in exporters:
                exporter.prepare(job)
            read_pass(job, exporters, totals, hooks=hooks)
            for exporter in sorted(exporters, key=lambda e: (e.order, order.index(e.name))):
                exporter.after(job)
    with _background_done(job):
        if job.parallel and any(type(e).finish is not Exporter.finish for e in exporters):
            # The export summary is made now, the rest is final: hash it meanwhile (the
            # package hashes again only what changed or is new).
            known = dict(job.prehashed)
            job.in_background(lambda: job.prehashed.update(prehash(job.data_dir, known=known)), "prehash")
        for exporter in sorted(exporters, key=lambda e: (e.order, order.index(e.name))):
            exporter.finish(job)


@contextmanager
def _background_done(job: ExportJob) -> Iterator[None]:
    """The formats' background work started inside is done when this ends: waited for
    (its error raised) — and after a failure too, its own errors then giving way to the
    one being raised (no thread may still write while the export cleans up)."""
    try:
        yield
    except BaseException:
        try:
            job.wait_background()
        except Exception:  # noqa: BLE001 - the error being raised is the one to report
            pass
        raise
    job.wait_background()


@dataclass
class _TaskResult:
    """What one format did, handed back to the export's own process."""

    name: str
    read_notes: list[str]  # notes of its read pass
    after_notes: list[str]  # notes of its ``after`` step
    problems: list[str]
    media: list[dict[str, Any]]
    hashed: dict[str, Any] = field(default_factory=dict)  # its files' digests (``package.prehash``)


def reads_rows(exporter: Exporter) -> bool:
    """Whether the format takes the rows of the read pass (has a TableWriter)."""
    return type(exporter).writer is not Exporter.writer


def group_formats(exporters: Sequence[Exporter], workers: int) -> list[list[Exporter]]:
    """The tasks of a parallel export: the formats shared out over ``workers`` groups,
    costliest first, each to the group with the least work so far.  In a group, one read
    of each table feeds every format that takes the rows (instead of one read per format),
    then the formats' ``after`` steps run (a format that watches a read pass goes with one
    that reads through the driver).  A format that reads nothing and costs little
    (media; a format another one makes) is a task of its own at the end, taken by the
    first process that is free: the cost figures are rough, and this evens out the end."""
    cost = format_costs(exporters)
    fillers = [e for e in exporters if not reads_rows(e) and cost[e.name] < _FILLER_COST]
    units = [[e] for e in exporters if e not in fillers]
    # A format that watches a read pass (the documents' activity counts) goes with one
    # whose rows come through the driver: fed by that read, it need not read the table
    # again (beside formats C reads alone it would).
    watching = [u for u in units if type(u[0]).watcher is not Exporter.watcher]
    feeding = [u for u in units if u[0].driver_reads and u not in watching]
    if watching and feeding:
        host = max(watching, key=lambda u: cost[u[0].name])
        host += feeding[0]
        units.remove(feeding[0])
    groups: list[list[Exporter]] = [[] for _ in range(max(1, workers))]
    load = [0.0] * len(groups)
    for unit in sorted(units, key=lambda u: -sum(cost[e.name] for e in u)):
        i = load.index(min(load))
        groups[i] += unit
        load[i] += sum(cost[e.name] for e in unit)
    tasks = [g for _, g in sorted(zip(load, groups, strict=True), key=lambda pair: -pair[0]) if g]
    return tasks + [[e] for e in sorted(fillers, key=lambda e: -cost[e.name])]


def _run_task(
    job: ExportJob,
    group: list[Exporter],
    totals: dict[str, int],
    split: Split | None = None,
    parts: PartResults | None = None,
    hooks: ExportHooks = NO_HOOKS,
) -> list[_TaskResult]:
    """A group of formats: one read pass feeding all their writers, then their ``after``
    steps.  Each format's result holds the read-pass notes it wrote (notes begin with the
    format's name), so the package does not depend on how the formats were grouped."""
    job.notes, job.problems, job.media = [], [], []
    report = job.progress
    readers = [e for e in group if reads_rows(e)]
    done: dict[str, int] = {}

    def progress(label: str, n: int, total: int | None = None) -> None:  # a bar per format: rows of all tables
        if label in totals:
            done[label] = n
            for exporter in readers:
                report(exporter.name, sum(done.values()))
        else:
            report(label, n, total)

    job.progress = progress
    started = time.monotonic()
    try:
        with _background_done(job):
            for exporter in group:
                exporter.prepare(job)
            if readers:
                label = ",".join(e.name for e in readers)
                read_pass(job, group, totals, label=label, split=split, parts=parts, hooks=hooks)
            read_notes: dict[str, list[str]] = {e.name: [] for e in group}
            for note in job.notes:
                owner = next((e.name for e in readers if note.startswith(f"{e.name}: ")), group[0].name)
                read_notes[owner].append(note)
            results = []
            for exporter in sorted(group, key=lambda e: e.order):
                notes, problems, media = len(job.notes), len(job.problems), len(job.media)
                exporter.after(job)
                results.append(
                    _TaskResult(
                        exporter.name,
                        read_notes[exporter.name],
                        job.notes[notes:],
                        job.problems[problems:],
                        job.media[media:],
                    )
                )
                event(
                    "export_format",
                    customer=job.customer,
                    format=exporter.name,
                    seconds=round(time.monotonic() - started, 2),
                )
            # The group's files are final (its background work done: the workbook's zip):
            # hashed (and synced to disk) now, beside the other groups' work, rather than
            # all at the end.
            folders = _folders(group, job.options.formats)
            if folders:
                job.wait_background()
                results[0].hashed = prehash(job.data_dir, folders)
            return results
    finally:
        job.progress = report


def _folders(group: Sequence[Exporter], chosen: Sequence[str]) -> set[str]:
    """The folders below data/ the formats of ``group`` write: their own, and those of the
    chosen formats they make (``_MADE_WITH``)."""
    names = {e.name for e in group}
    made = {name for name, maker in _MADE_WITH.items() if maker in names and name in chosen}
    # (a format another chosen one makes: its files are that one's)
    folders = {e.folder for e in group if _MADE_WITH.get(e.name) not in chosen}
    if made:
        builtin = load_builtin()
        folders |= {builtin[name].folder for name in made if name in builtin}
    return folders


@dataclass
class _Run:
    """What every process of a parallel export shares: the tasks (groups of formats), the
    counted rows, the split table if any, the hooks; ``next_task`` (the index of the next
    task to take), ``updates`` (the workers' progress) and ``parent`` (the export's
    process) are set when the workers are forked."""

    tasks: list[list[Exporter]]
    totals: dict[str, int]
    split: Split | None
    hooks: ExportHooks
    next_task: Any = None
    updates: Any = None
    parent: int = 0


def _run_parallel(job: ExportJob, exporters: Sequence[Exporter], order: list[str], run: _Run, workers: int) -> bool:
    """Run the tasks (groups of formats) in this process and ``workers - 1`` forked ones
    (each takes the next task when it is free), each reading its
    own snapshot of the same data (PostgreSQL: the exported snapshot; SQLite: a new read
    transaction, used only when no one has written since this process's began).  With
    ``split`` (one task), worker k reads range k of the split table and this process
    everything else.  False when the snapshots could not be shared (then nothing was
    written: run sequentially)."""
    ctx = multiprocessing.get_context("fork")
    run.next_task = ctx.Value("i", 0)
    run.updates = ctx.Queue()
    run.parent = os.getpid()
    shared = job.source.share_snapshot(job.conn)
    base_notes, base_problems, base_media = job.notes, job.problems, job.media
    job.parallel = True  # (the forked workers get it too)
    children: list[tuple[Any, Any]] = []
    results: dict[str, _TaskResult] = {}
    # (one process per task, at most ``workers``; the rest take tasks as they become free)
    split = run.split
    ranges = list(range(1, split.parts)) if split is not None else [None] * (min(workers, len(run.tasks)) - 1)
    try:
        for part in ranges:
            ours, theirs = ctx.Pipe()
            process = ctx.Process(target=_worker, args=(job, run, shared, theirs, part), name="learnexit-export")
            process.start()
            theirs.close()
            children.append((process, ours))
        if not _start_workers(job, children):
            return False
        if split is not None:
            event("export_split", customer=job.customer, table=split.table, parts=split.parts)
        report = job.progress
        results.update(_run_here(job, run, children))
        for process, pipe in children:
            while True:
                message = _receive(process, pipe, run.updates, report)
                if message[0] == "done":
                    results.update({r.name: r for r in message[1]})
                    break
                _raise_from(message)
            process.join()
        _relay(run.updates, report)
    except BaseException:
        job.parallel = False
        for process, _pipe in children:
            if process.is_alive():
                process.kill()
            process.join()
        raise
    finally:
        for _process, pipe in children:
            pipe.close()
        run.updates.close()
        run.updates.cancel_join_thread()
        job.notes, job.problems, job.media = base_notes, base_problems, base_media
    _merge(job, exporters, order, results)
    return True


def _start_workers(job: ExportJob, children: list[tuple[Any, Any]]) -> bool:
    """Once every worker has its snapshot: tell them to go, or, when the source changed
    since this process's snapshot began, to stop (False: nothing was written)."""
    for process, pipe in children:
        message = _receive(process, pipe)
        if message[0] != "ready":
            _raise_from(message)
    if not job.source.snapshot_unchanged(job.conn):
        for _process, pipe in children:
            pipe.send("stop")
        for process, _pipe in children:
            process.join()
        job.parallel = False
        event("export_parallel_skipped", level=30, customer=job.customer, reason="the source changed")
        return False
    for _process, pipe in children:
        pipe.send("go")
    return True


def _run_here(job: ExportJob, run: _Run, children: list[tuple[Any, Any]]) -> dict[str, _TaskResult]:
    """This process's share: tasks until none is left (with a split, the first key range
    of the split table, joined with the workers' ranges, and everything else)."""
    report = job.progress
    updates = run.updates

    def progress(label: str, n: int, total: int | None = None, *, forward: Any = report) -> None:
        forward(label, n, total)
        _relay(updates, forward)

    def parts() -> Iterator[tuple[int, int, dict[str, Any]]]:
        for part, (process, pipe) in enumerate(children, start=1):
            message = _receive(process, pipe, updates, report)
            if message[0] != "part":
                _raise_from(message)
            yield part, message[1], message[2]

    results: dict[str, _TaskResult] = {}
    job.progress = progress
    try:
        while (task := _take(run.next_task, run.tasks)) is not None:
            done = _run_task(job, task, run.totals, run.split, parts, run.hooks)
            results.update((r.name, r) for r in done)
    finally:
        job.progress = report
    return results


def _merge(job: ExportJob, exporters: Sequence[Exporter], order: list[str], results: dict[str, _TaskResult]) -> None:
    """The formats' notes, problems and media, in the order one process would have
    produced them: read passes, then ``after`` steps; their files' digests."""
    for result in results.values():
        job.prehashed.update(result.hashed)
    for exporter in sorted(exporters, key=lambda e: order.index(e.name)):
        job.notes.extend(results[exporter.name].read_notes)
    for exporter in sorted(exporters, key=lambda e: (e.order, order.index(e.name))):
        result = results[exporter.name]
        job.notes.extend(result.after_notes)
        job.problems.extend(result.problems)
        job.media.extend(result.media)


def _take(counter: Any, tasks: list[list[Exporter]]) -> list[Exporter] | None:
    with counter.get_lock():
        i = counter.value
        counter.value = i + 1
    return tasks[i] if i < len(tasks) else None


def _relay(updates: Any, report: Any) -> None:
    """Pass on the progress the worker processes reported."""
    if updates is None:
        return
    while True:
        try:
            label, n, total = updates.get_nowait()
        except queue.Empty:
            return
        report(label, n, total)


def _receive(process: Any, pipe: Any, updates: Any = None, report: Any = None) -> Any:
    """The next message from a worker, or an error if it died without one."""
    while True:
        ready = multiprocessing.connection.wait([pipe, process.sentinel], timeout=0.2)
        if pipe in ready:
            try:
                return pipe.recv()
            except EOFError:
                pass
        elif not ready:
            _relay(updates, report)
            continue
        process.join()
        raise OperationalError(f"an export worker process died (exit code {process.exitcode})")


def _raise_from(message: Any) -> None:
    if message[0] == "error":
        _kind, error_type, text = message
        error_class = getattr(errors, error_type, None)
        if isinstance(error_class, type) and issubclass(error_class, LearnexitError):
            raise error_class(text)
        raise OperationalError(f"export worker failed: {text}")
    raise OperationalError(f"export worker sent {message[0]!r}")


def _worker(job: ExportJob, run: _Run, shared: str | None, pipe: Any, part: int | None = None) -> None:
    """A forked worker: its own snapshot, then formats until none is left (or, with
    ``part``, that range of the split table for the one task's formats)."""
    code = 0
    updates, parent = run.updates, run.parent
    try:
        source = job.source
        source.engine.dispose(close=False)  # the parent's connections are not ours to use
        with source.snapshot(imported=shared) as conn:
            source.start_snapshot(conn)
            pipe.send(("ready",))
            if pipe.recv() != "go":
                return
            own = replace(job, conn=conn, counts=dict(run.totals), notes=[], problems=[], media=[])

            def progress(label: str, n: int, total: int | None = None) -> None:
                if os.getppid() != parent:  # the export was killed: stop
                    os._exit(1)
                if updates is not None:
                    updates.put((label, n, total))

            own.progress = progress
            results = []
            if run.split is not None and part is not None:

                def alive(label: str, n: int, total: int | None = None) -> None:  # (the export's process shows it)
                    if os.getppid() != parent:
                        os._exit(1)

                own.progress = alive
                rows, outputs = read_part(own, [e for e in run.tasks[0] if reads_rows(e)], run.split, part)
                pipe.send(("part", rows, outputs))
            else:
                while (task := _take(run.next_task, run.tasks)) is not None:
                    results += _run_task(own, task, run.totals, hooks=run.hooks)
            pipe.send(("done", results))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        code = 1
        try:
            pipe.send(("error", type(exc).__name__, error_text(exc)))
        except Exception:  # noqa: BLE001 - the parent sees the exit code instead
            pass
    finally:
        if updates is not None:
            updates.close()
            updates.join_thread()
        pipe.close()
        os._exit(code)  # no cleanup of the parent's objects (connections, temporary files)


__all__ = [
    "EXPORT_WORKERS_ENV",
    "PARALLEL_FROM_ROWS",
    "SPLIT_FROM_ROWS",
    "export_workers",
    "format_costs",
    "even_rows",
    "group_formats",
    "plan_split",
    "reads_rows",
    "run_formats",
]
