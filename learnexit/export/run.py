"""``run_export``: the export's steps in order (see ``learnexit.export``), from the
options to the ledger record of the finished package."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from .. import contract
from ..config import SQL_DIALECTS, Settings
from ..documents.i18n import LANGS
from ..errors import BadInput, OperationalError, Refused, printable
from ..exporters.base import Exporter, ExportJob, ExportOptions
from ..exporters.sql_dialect import check_mysql_names
from ..ledger.consistency import require_consistent
from ..ledger.store import Ledger
from ..logs import event
from ..offboarding.cases import open_source
from ..offboarding.clock import now as current_time
from ..offboarding.facts import active_notice
from ..package.build import PackageBuild, discard_package, finish_package, plan_package
from ..quiet_loss import quiet_loss_notes
from ..roles import check_roles
from ..source import ReadPoint, Source
from ..source.snapshot import REPLICA_LAG_WARNING_SECONDS
from .hooks import NO_HOOKS, ExportHooks
from .options import parse_recipients, resolve_formats
from .parallel import run_formats
from .records import check_not_purged, reap_interrupted_exports, record_completion, record_failure, record_start
from .specs import build_specs, counting_helper

Progress = Callable[[str, int, int | None], None]  # (label, rows done, rows expected or None)


@dataclass
class ExportResult:
    customer: str
    path: Path
    files: int
    bytes: int
    tables: dict[str, int]
    notes: list[str]
    problems: list[str]
    manifest_sha256: str
    formats: list[str]
    export_id: int
    started_at: datetime
    finished_at: datetime
    export_deadline: date | None = None
    late: bool = False
    encrypted: bool = False
    zip: bool = False
    payload_files: int = 0
    read: ReadPoint | None = None  # where the snapshot was read (the primary or its replica)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "path": str(self.path),
            "files": self.files,
            "bytes": self.bytes,
            "tables": dict(self.tables),
            "rows": self.rows,
            "notes": list(self.notes),
            "problems": list(self.problems),
            "manifest_sha256": self.manifest_sha256,
            "formats": list(self.formats),
            "export_id": self.export_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "export_deadline": self.export_deadline,
            "late": self.late,
            "zip": self.zip,
            "encrypted": self.encrypted,
            "read": self.read.as_dict() if self.read is not None else None,
        }


def _aware(settings: Settings, now: datetime | None) -> datetime:
    if now is None:
        return current_time(settings.contract.timezone)  # honours $LEARNEXIT_NOW (rehearsals)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)  # naive means UTC, as in the ledger
    return now.astimezone(UTC)


# --------------------------------------------------------------------------- the window


def check_window(
    settings: Settings, ledger: Ledger, customer: str, now: datetime, late_reason: str | None, notes: list[str]
) -> tuple[date | None, bool]:
    """(export deadline, late?) — or Refused when the window has closed and no reason is
    given; VerificationFailed when the customer's ledger records disagree with the audit."""
    require_consistent(ledger, customer)  # the deadline must be the one the notice recorded
    notice = active_notice(ledger, customer)  # the latest notice not withdrawn
    if notice is None:
        notes.append("no termination notice recorded: exported without an export window")
        return None, False
    deadline: date = notice["export_deadline"]
    today = contract.today(settings.contract.timezone, now)
    if today <= deadline:
        if late_reason:
            notes.append(f"--late given, but the export window is open until {deadline.isoformat()}")
        return deadline, False
    if not late_reason:
        raise Refused(
            f"the export window for {customer} closed on {deadline.isoformat()} "
            f"(today is {today.isoformat()}); to export anyway give --late --reason TEXT"
        )
    # The reason is staff's record (ledger and audit), not part of the customer's package.
    notes.append(
        f"late export, {(today - deadline).days} days after the export deadline {deadline.isoformat()} "
        "(the reason is recorded in the ledger)"
    )
    return deadline, True


# --------------------------------------------------------------------------- the command


def _progress_totals(report: Progress, totals: dict[str, int], format_names: list[str]) -> Callable[..., None]:
    """``job.progress`` for a caller's ``report``: every step with its total.  The tables
    of a read pass in this process add up to one bar (``rows``: a bar per table would be a
    line per table); formats side by side have a bar each, over all rows; media and
    documents bring their own totals."""
    everything = sum(totals.values())
    read: dict[str, int] = {}

    def forward(label: str, n: int, total: int | None = None) -> None:
        if total is None and label in totals and label not in format_names:
            read[label] = n
            report("rows", sum(read.values()), everything)
        elif total is None and label in format_names:
            report(label, n, everything)
        else:
            report(label, n, total)

    return forward


@dataclass(frozen=True)
class _Request:
    """``run_export``'s options, checked before anything is touched."""

    exporters: list[Exporter]
    format_names: list[str]
    dialect: str
    language: str
    late_reason: str | None
    recipients: list[Any]
    started: datetime
    out_dir: Path
    allow_missing_media: bool


def _request(
    settings: Settings,
    formats: Sequence[str] | None,
    out: str | os.PathLike[str] | None,
    sql_dialect: str | None,
    lang: str | None,
    late_reason: str | None,
    allow_missing_media: bool,
    encrypt_to: Sequence[str],
    now: datetime | None,
) -> _Request:
    """The options checked (bad input, exit 2) and completed from the config."""
    exporters = resolve_formats(formats, settings)
    dialect = sql_dialect or settings.export.sql_dialect
    if dialect not in SQL_DIALECTS:
        raise BadInput(f"--sql-dialect must be one of {', '.join(SQL_DIALECTS)}, not {dialect!r}")
    language = lang or settings.export.lang
    if language not in LANGS:
        raise BadInput(f"--lang must be one of {', '.join(LANGS)}, not {language!r}")
    if late_reason is not None:
        late_reason = " ".join(late_reason.split())
        if not late_reason:
            raise BadInput("--reason must say why the export is late")
    recipients = parse_recipients(encrypt_to)
    started = _aware(settings, now)
    out_dir = Path(out).absolute() if out is not None else settings.export.out  # the ledger keeps this path
    return _Request(
        exporters,
        [e.name for e in exporters],
        dialect,
        language,
        late_reason,
        recipients,
        started,
        out_dir,
        allow_missing_media,
    )


def _prepare(
    settings: Settings, ledger: Ledger, source: Source, customer: str, request: _Request, notes: list[str]
) -> tuple[date | None, bool, str]:
    """Everything checked before the export is recorded: roles, the window, MySQL names,
    no purge started; the notes about the source; earlier exports of the customer whose
    process is gone reaped.  (export deadline, late?, the customer's name)."""
    check_roles(settings, source.datamap.by_name)  # (before anything is recorded)
    deadline, late = check_window(settings, ledger, customer, request.started, request.late_reason, notes)
    unclassified = source.datamap.unclassified()
    if unclassified:
        notes.append(
            printable(
                f"{len(unclassified)} tables are unclassified and were not exported: {', '.join(unclassified)} "
                "(classify them in [tables] of the config)"
            )
        )
    if "sql" in request.format_names and request.dialect == "mysql":  # a dump that would not load: refused first
        check_mysql_names([(t, [c.name for c in source.table(t).columns]) for t in source.owned_tables()])
    customer_name = source.customer_name()
    check_not_purged(ledger, customer, source.customer_row_pk)  # checked again when the export is recorded
    reap_interrupted_exports(ledger, customer)  # (their clear-text builds go first)
    return deadline, late, customer_name


def _export_rows(
    settings: Settings,
    source: Source,
    customer: str,
    customer_name: str,
    build: PackageBuild,
    request: _Request,
    deadline: date | None,
    notes: list[str],
    progress: Progress | None,
    hooks: ExportHooks,
) -> ExportJob:
    """Every format's files from one snapshot of the customer's rows."""
    with source.snapshot() as conn:
        point = source.read_point(conn)  # (first: on PostgreSQL this takes the snapshot)
        if point.lagging:
            event(
                "export_replica_behind",
                level=30,
                customer=customer,
                seconds=round(point.lag_seconds or 0),
                threshold=REPLICA_LAG_WARNING_SECONDS,
                position=point.position,
            )
        totals: dict[str, int] = {}
        contested: dict[str, int] = {}
        first = len(notes)  # (the contested tables are noted before what the counting notes)
        with counting_helper(source, conn) as helper:
            specs = build_specs(source, conn, notes, totals, helper, contested)
        notes[first:first] = [c.note() for c in source.contested_report(conn, counted=contested)]
        notes.extend(quiet_loss_notes(source.datamap))
        job = ExportJob(
            settings=settings,
            source=source,
            conn=conn,
            customer=customer,
            customer_name=customer_name,
            data_dir=build.data_dir,
            tables=specs,
            options=ExportOptions(
                formats=tuple(request.format_names),
                sql_dialect=request.dialect,
                lang=request.language,
                allow_missing_media=request.allow_missing_media,
                batch_size=settings.export.batch_size,
            ),
            started_at=request.started,
            export_deadline=deadline,
            notes=notes,
            read_point=point,
        )
        if progress is not None:
            job.progress = _progress_totals(progress, totals, request.format_names)
        run_formats(job, request.exporters, totals, request.format_names, hooks)
        job.notes[:] = dict.fromkeys(job.notes)  # (a source note from each read pass: once)
    return job


def _accept_problems(problems: list[str], notes: list[str], allow_missing_media: bool) -> None:
    """Problems the formats reported (missing media) fail the export unless allowed."""
    if problems:
        if not allow_missing_media:
            raise OperationalError(
                f"export incomplete: {len(problems)} problem(s), first: {problems[0]} "
                "(--allow-missing-media exports anyway and lists them in index.html)"
            )
        notes.extend(f"exported despite: {p}" for p in problems)


def _start(
    ledger: Ledger, customer: str, row_pk: str | None, build: PackageBuild, request: _Request, late: bool
) -> int:
    """Record the export's start, then create its ``.partial`` build: a process killed in
    between leaves a record the next export reaps, never an unrecorded folder.  An output
    folder that cannot be written fails before anything is recorded."""
    build.prepare()
    late_reason = request.late_reason if late else None
    export_id = record_start(ledger, customer, row_pk, build, request.format_names, late_reason, request.started)
    try:
        build.create()
    except BaseException as exc:
        discard_package(build)
        record_failure(ledger, customer, export_id, exc)
        raise
    return export_id


def run_export(
    settings: Settings,
    customer: str,
    *,
    formats: Sequence[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    zip_output: bool = False,
    sql_dialect: str | None = None,
    lang: str | None = None,
    late_reason: str | None = None,
    allow_missing_media: bool = False,
    encrypt_to: Sequence[str] = (),
    now: datetime | None = None,
    progress: Progress | None = None,
    hooks: ExportHooks = NO_HOOKS,
) -> ExportResult:
    """Export every row of ``customer`` into a verified package; see ``learnexit.export``.
    ``hooks``: where tests reach in (``ExportHooks``; the default does nothing)."""
    settings = settings.for_customer(customer)
    request = _request(settings, formats, out, sql_dialect, lang, late_reason, allow_missing_media, encrypt_to, now)
    started, recipients = request.started, request.recipients
    with Ledger(settings.state_url) as ledger, open_source(settings, ledger, customer, reads="replica") as source:
        notes: list[str] = []
        deadline, late, customer_name = _prepare(settings, ledger, source, customer, request, notes)
        build = plan_package(request.out_dir, customer, started, zip_output=zip_output, encrypted=bool(recipients))
        export_id = _start(ledger, customer, source.customer_row_pk, build, request, late)
        event("export_started", customer=customer, export_id=export_id, formats=",".join(request.format_names))
        try:
            job = _export_rows(
                settings, source, customer, customer_name, build, request, deadline, notes, progress, hooks
            )
            problems = list(job.problems)
            _accept_problems(problems, notes, allow_missing_media)
            described = [(e.name, e.describe(job)) for e in request.exporters]
            packaged = finish_package(build, job, formats=described, recipients=recipients)
        except BaseException as exc:
            discard_package(build)
            record_failure(ledger, customer, export_id, exc)
            event("export_failed", level=30, customer=customer, export_id=export_id)  # the CLI prints the error
            raise
        finished = _aware(settings, None)
        record_completion(
            ledger,
            customer,
            source.customer_row_pk,
            export_id,
            packaged,
            job.counts,
            late=late,
            encrypted=bool(recipients),
            at=finished,
            read=job.read_point,
        )
        event("export_completed", customer=customer, export_id=export_id, rows=sum(job.counts.values()))
        return ExportResult(
            customer=customer,
            path=packaged.path,
            files=packaged.files,
            bytes=packaged.bytes,
            tables=dict(job.counts),
            notes=list(notes),
            problems=problems,
            manifest_sha256=packaged.manifest_sha256,
            formats=request.format_names,
            export_id=export_id,
            started_at=started,
            finished_at=finished,
            export_deadline=deadline,
            late=late,
            encrypted=bool(recipients),
            zip=build.zip_output,
            payload_files=packaged.payload_files,
            read=job.read_point,
        )


__all__ = ["ExportResult", "Progress", "check_window", "run_export"]
