"""``learnexit export``: every row of one customer, in every chosen format, in one package.

The run, in order (design §4, issue 4):

1. Resolve the options (formats from the config unless given; an unknown format, dialect,
   language or age recipient is bad input, exit 2, before anything is touched).
2. Check the export window against the ledger's active notice: after the export deadline
   the export is refused (exit 3) unless a reason for the late export is given.  No
   notice at all is allowed, and said in the notes.
3. Record the export as ``running`` (with an audit entry), create ``<name>.partial/``.
4. Open ONE snapshot.  Build the table specs (owned tables parents first, column kinds,
   references among exported tables whose targets are all exported), count each table,
   then read each table once, feeding every selected format's ``TableWriter``; then run
   each format's ``after`` step in ``order``, still in the snapshot.
5. Problems reported by the formats (missing media) fail the export unless allowed.
6. ``package.finish_package`` writes datapackage.json, index.html and the bag, and renames
   the package into place.  Only then is the ledger row marked ``complete``; any failure
   marks it ``failed`` and removes the partial build.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import contract
from .calendar import active_notice
from .calendar import now as current_time
from .config import LANGS, SQL_DIALECTS, Settings, scrub
from .errors import BadInput, LearnexitError, OperationalError, Refused
from .exporters.base import (
    ColumnSpec,
    Exporter,
    ExportJob,
    ExportOptions,
    TableSpec,
    TableWriter,
    column_kind,
    load_builtin,
)
from .ledger import Ledger, exports, utcnow
from .logs import event
from .package import PackageBuild, discard_package, finish_package, plan_package
from .source import Edge, Source, describe_db_error

# Seconds to sleep after each table of the read pass: lets tests interrupt an export
# mid-way deterministically.  Never set it in production.
SLOW_EXPORT_ENV = "LEARNEXIT_TEST_SLOW_EXPORT"

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
        }


# --------------------------------------------------------------------------- options


def split_formats(values: Iterable[str]) -> list[str]:
    """``["csv,xlsx", "json"]`` → ``["csv", "xlsx", "json"]`` (order kept, no repeats)."""
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if name and name not in names:
                names.append(name)
    return names


def resolve_formats(requested: Sequence[str] | None, settings: Settings) -> list[Exporter]:
    """The exporters to run, from ``requested`` or the config; unknown names are exit 2."""
    registry = load_builtin()
    names = split_formats(requested) if requested else list(settings.export.formats)
    if not names:
        raise BadInput("no export format chosen")
    unknown = [n for n in names if n not in registry]
    if unknown:
        source = "--format" if requested else f"{settings.label}: [export] formats"
        available = ", ".join(sorted(registry)) or "none"
        raise BadInput(f"{source}: unknown or unavailable format {unknown[0]!r} (available: {available})")
    return [registry[n] for n in names]


def parse_recipients(values: Sequence[str]) -> list[Any]:
    """age recipients (``age1…`` or ``ssh-…`` public keys, or a file of them, one a line)."""
    if not values:
        return []
    import pyrage

    texts: list[str] = []
    for value in values:
        value = value.strip()
        if value and not value.startswith(("age1", "ssh-")) and Path(value).is_file():
            lines = Path(value).read_text(encoding="utf-8").splitlines()
            texts.extend(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
        else:
            texts.append(value)
    recipients = []
    for text in texts:
        try:
            if text.startswith("ssh-"):
                recipients.append(pyrage.ssh.Recipient.from_str(text))
            else:
                recipients.append(pyrage.x25519.Recipient.from_str(text))
        except pyrage.RecipientError as exc:
            raise BadInput(f"--encrypt-to: not an age recipient {text[:24]!r}…: {exc}") from None
    if not recipients:
        raise BadInput("--encrypt-to: no recipient given")
    return recipients


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
    """(export deadline, late?) — or Refused when the window has closed and no reason is given."""
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


# --------------------------------------------------------------------------- table specs


def _dangling(source: Source, conn: sa.Connection, edge: Edge) -> int:
    """Exported rows of ``edge.child`` whose reference points outside the exported rows
    of ``edge.parent`` (frictionless semantics: a key with any value set must match)."""
    owned = source.owned_select(edge.child).order_by(None).subquery("le_owned")
    parent = source.table(edge.parent)
    parent_keys = (
        sa.select(*[parent.c[c] for c in edge.parent_cols])
        .where(source.predicate(edge.parent), *[parent.c[c].is_not(None) for c in edge.parent_cols])
        .correlate(None)
    )
    cols = [owned.c[c] for c in edge.child_cols]
    key = cols[0] if len(cols) == 1 else sa.tuple_(*cols)
    matched = sa.and_(*[c.is_not(None) for c in cols], key.in_(parent_keys))
    stmt = (
        sa.select(sa.func.count()).select_from(owned).where(sa.or_(*[c.is_not(None) for c in cols]), sa.not_(matched))
    )
    return int(conn.execute(stmt).scalar() or 0)


def build_specs(source: Source, conn: sa.Connection, notes: list[str]) -> list[TableSpec]:
    """Owned tables, parents first, with their columns and the references among them.

    A reference is kept only when every exported row's target is exported too, so the
    SQL dump loads and ``frictionless validate`` passes; a dropped one is noted.
    """
    settings = source.settings
    owned = source.owned_tables()
    exported = set(owned)
    specs = []
    for name in owned:
        table = source.table(name)
        columns = tuple(
            ColumnSpec(c.name, column_kind(c), bool(c.nullable), bool(c.primary_key), c.type) for c in table.columns
        )
        keys = []
        for edge in source.datamap.edges:
            if edge.child != name or edge.parent not in exported:
                continue
            outside = _dangling(source, conn, edge)
            if outside:
                rows = "1 exported row references a row" if outside == 1 else f"{outside} exported rows reference rows"
                notes.append(
                    f"{edge.label}: {rows} not part of this export; the reference is kept as plain "
                    "values, not declared as a foreign key"
                )
                continue
            keys.append(edge)
        specs.append(
            TableSpec(
                name=name,
                columns=columns,
                primary_key=tuple(c.name for c in table.primary_key.columns),
                foreign_keys=tuple(keys),
                category=settings.rule(name).category,
                table=table,
            )
        )
    return specs


# --------------------------------------------------------------------------- the read pass


def read_pass(job: ExportJob, exporters: Sequence[Exporter], totals: dict[str, int]) -> None:
    """Read every table once from the snapshot, feeding every format's TableWriter."""
    writers: list[TableWriter] = []
    delay = float(os.environ.get(SLOW_EXPORT_ENV) or 0)
    try:
        for exporter in exporters:
            writer = exporter.writer(job)
            if writer is not None:
                writers.append(writer)
        for spec in job.tables:
            for w in writers:
                w.start_table(spec)
            rows = 0
            job.progress(spec.name, 0)
            for batch in job.rows(spec.name):
                for w in writers:
                    w.write_batch(spec, batch)
                rows += len(batch)
                job.progress(spec.name, rows)
            for w in writers:
                w.end_table(spec, rows)
            if rows != totals[spec.name]:
                raise OperationalError(
                    f"{spec.name}: read {rows} rows but counted {totals[spec.name]} in the same snapshot"
                )
            job.counts[spec.name] = rows
            event("export_table", customer=job.customer, table=spec.name, rows=rows)
            if delay:
                time.sleep(delay)
        for w in writers:
            w.close()
    except BaseException:
        for w in writers:
            try:
                w.abort()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
        raise


# --------------------------------------------------------------------------- ledger


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, LearnexitError):
        return exc.message
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return describe_db_error(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    first = str(exc).strip().splitlines()
    return scrub(f"{type(exc).__name__}: {first[0] if first else ''}".rstrip(": "))


def _record_start(
    ledger: Ledger, customer: str, build: PackageBuild, formats: list[str], late_reason: str | None, at: datetime
) -> int:
    with ledger.transaction() as conn:
        inserted = conn.execute(
            exports.insert().values(
                customer=customer,
                started_at=at.replace(tzinfo=None),
                status="running",
                path=str(build.final),
                formats=",".join(formats),
                late_reason=late_reason,
                recorded_by=ledger.actor,
            )
        )
        export_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
        ledger.append_audit(
            conn,
            "export",
            "export_started",
            customer,
            {
                "export_id": export_id,
                "formats": formats,
                "late": late_reason is not None,
                "late_reason": late_reason,
                "path": str(build.final),
            },
        )
    return export_id


def _record_failure(ledger: Ledger, customer: str, export_id: int, exc: BaseException) -> None:
    error = _error_text(exc)
    try:
        with ledger.transaction() as conn:
            conn.execute(
                exports.update()
                .where(exports.c.id == export_id)
                .values(status="failed", finished_at=utcnow(), error=error[:2000])
            )
            ledger.append_audit(conn, "export", "export_failed", customer, {"export_id": export_id, "error": error})
    except LearnexitError:
        event("export_failure_not_recorded", level=40, customer=customer, export_id=export_id)


# --------------------------------------------------------------------------- the command


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
) -> ExportResult:
    """Export every row of ``customer`` into a verified package; see the module docstring."""
    exporters = resolve_formats(formats, settings)
    format_names = [e.name for e in exporters]
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

    with Source(settings, customer) as source, Ledger(settings.state_url) as ledger:
        notes: list[str] = []
        deadline, late = check_window(settings, ledger, customer, started, late_reason, notes)
        unclassified = source.datamap.unclassified()
        if unclassified:
            notes.append(
                f"{len(unclassified)} tables are unclassified and were not exported: {', '.join(unclassified)} "
                "(classify them in [tables] of the config)"
            )
        customer_name = source.customer_name()
        build = plan_package(out_dir, customer, started, zip_output=zip_output, encrypted=bool(recipients))
        export_id = _record_start(ledger, customer, build, format_names, late_reason if late else None, started)
        event("export_started", customer=customer, export_id=export_id, formats=",".join(format_names))
        try:
            build.create()
            with source.snapshot() as conn:
                specs = build_specs(source, conn, notes)
                totals = {s.name: source.count(conn, s.name) for s in specs}
                job = ExportJob(
                    settings=settings,
                    source=source,
                    conn=conn,
                    customer=customer,
                    customer_name=customer_name,
                    data_dir=build.data_dir,
                    tables=specs,
                    options=ExportOptions(
                        formats=tuple(format_names),
                        sql_dialect=dialect,
                        lang=language,
                        allow_missing_media=allow_missing_media,
                        batch_size=settings.export.batch_size,
                    ),
                    started_at=started,
                    export_deadline=deadline,
                    notes=notes,
                )
                if progress is not None:
                    report = progress
                    job.progress = lambda label, n: report(label, n, totals.get(label))
                read_pass(job, exporters, totals)
                for exporter in sorted(exporters, key=lambda e: (e.order, format_names.index(e.name))):
                    exporter.after(job)
            problems = list(job.problems)
            if problems:
                if not allow_missing_media:
                    raise OperationalError(
                        f"export incomplete: {len(problems)} problem(s), first: {problems[0]} "
                        "(--allow-missing-media exports anyway and lists them in index.html)"
                    )
                notes.extend(f"exported despite: {p}" for p in problems)
            packaged = finish_package(
                build, job, formats=[(e.name, e.description) for e in exporters], recipients=recipients
            )
        except BaseException as exc:
            discard_package(build)
            _record_failure(ledger, customer, export_id, exc)
            event("export_failed", level=40, customer=customer, export_id=export_id)
            raise
        finished = _aware(settings, None)
        try:
            with ledger.transaction() as lconn:
                lconn.execute(
                    exports.update()
                    .where(exports.c.id == export_id)
                    .values(
                        status="complete",
                        finished_at=finished.replace(tzinfo=None),
                        path=str(packaged.path),
                        files=packaged.files,
                        bytes=packaged.bytes,
                        rows=json.dumps(job.counts, sort_keys=True),
                        manifest_sha256=packaged.manifest_sha256,
                    )
                )
                ledger.append_audit(
                    lconn,
                    "export",
                    "export_completed",
                    customer,
                    {
                        "export_id": export_id,
                        "path": str(packaged.path),
                        "files": packaged.files,
                        "bytes": packaged.bytes,
                        "rows": sum(job.counts.values()),
                        "tables": len(job.counts),
                        "manifest_sha256": packaged.manifest_sha256,
                        "late": late,
                        "encrypted": bool(recipients),
                    },
                )
        except LearnexitError as exc:
            raise OperationalError(
                f"the package is complete at {packaged.path}, but the ledger could not record it: {exc.message}"
            ) from None
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
            formats=format_names,
            export_id=export_id,
            started_at=started,
            finished_at=finished,
            export_deadline=deadline,
            late=late,
            encrypted=bool(recipients),
            zip=build.zip_output,
            payload_files=packaged.payload_files,
        )


def available_formats() -> list[dict[str, str]]:
    """Every registered format: name, description, folder (for ``--list-formats``)."""
    return [
        {"name": e.name, "description": e.description, "folder": getattr(e, "folder", "")}
        for e in sorted(load_builtin().values(), key=lambda e: e.name)
    ]


__all__ = [
    "ExportResult",
    "available_formats",
    "build_specs",
    "check_window",
    "parse_recipients",
    "read_pass",
    "resolve_formats",
    "run_export",
    "split_formats",
]
