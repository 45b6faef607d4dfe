"""Certificates and reports as PDF ("pdf") and Word ("docx"), with the same content.

What each table means comes from ``[roles.*]`` (design §2).  A document whose roles are
not configured, or whose role table is not part of this customer's export, is skipped
with a note — never guessed.  Every value is read through ``job.rows`` (this customer's
rows from the export's snapshot), one result at a time, and aggregated while streaming:
only the lookups (people's names, course titles, certificate numbers) and per-person
counters are kept in memory.

Files (below ``data/documents/``; the .pdf and the .docx of a document sit side by side):

* ``certificates/<number>.pdf`` — one per issued certificate
* ``reports/completions/<course id>-<title>.pdf`` — one per course
* ``reports/user-statistics.pdf``, ``reports/analytics-summary.pdf``, ``reports/feedback.pdf``
* ``export-summary.pdf``
"""

from __future__ import annotations

import multiprocessing
import weakref
from collections.abc import Sequence
from typing import Any, ClassVar

from ..config import Role
from ..documents.fonts import undrawable_note
from ..documents.render import RenderQueue, default_workers, warm_pool
from .base import Exporter, ExportJob, TableSpec, TableWriter, register
from .documents_activity import activity, activity_batch, feedback, user_statistics
from .documents_build import FOLDER, REPORTS, DocumentBuild, key_text
from .documents_learning import certificates, completions, quiz_results
from .documents_summary import analytics, export_summary

WARM_FROM_ROWS = 10_000  # exports this big start the render pool before reading the rows
DOCUMENT_FORMATS = ("pdf", "docx")


def build_documents(b: DocumentBuild) -> None:
    """Read the lookups, make every document and hand it to the render queue."""
    people = b.role("people", document="certificates and user statistics")
    if people is not None:
        b.people = {}
        for row in b.rows(people):
            key = b.person_key(b.value(row, people, "id"), people)
            if key is not None:
                name = b.value(row, people, "name")
                b.people[key] = b.t("none") if name is None else str(name)
                email = b.value(row, people, "email")
                if email:
                    b.emails[key] = str(email)
    courses = b.role("courses", document="certificates and completion reports")
    if courses is not None:
        b.courses = {}
        for row in b.rows(courses):
            key = key_text(b.value(row, courses, "id"))
            if key is not None:
                title = b.value(row, courses, "title")
                b.courses[key] = b.t("none") if title is None else str(title)
    certificates(b)
    completions(b)
    quiz_results(b)
    activity(b)
    feedback_report = feedback(b)
    user_statistics(b)
    analytics(b)
    if feedback_report is not None:
        b.emit(f"{REPORTS}/feedback", feedback_report)
    if b.unknown_people:
        b.note(
            f"{len(b.unknown_people)} people referenced by the documents are not among this customer's "
            "people rows; they are shown by id"
        )
    boxes = undrawable_note(b.pdf_chars) if b.pdf_chars else None
    if boxes is not None:
        b.note(boxes)
    if not b.job.parallel:  # (side by side, it waits for every format: ``finish``)
        export_summary(b)


_WATCHED = "documents"  # job.shared: the DocumentBuild the read pass fed (``ActivityWatcher``)
_WARM_POOL = "documents.pool"  # job.shared: the render workers, kept for the export summary


class ActivityWatcher(TableWriter):
    """Feeds ``documents_activity.activity_batch`` with the activity table's rows as a read pass reads
    them (every row, in the table's order, in the batches ``activity`` would read), and
    marks the table as counted once it ends."""

    def __init__(self, build: DocumentBuild, role: Role, spec: TableSpec) -> None:
        self.build = build
        self.table = role.table
        names = spec.column_names
        self.person = names.index(role.columns["person"]) if "person" in role.columns else None
        self.at = names.index(role.columns["at"]) if "at" in role.columns else None

    def write_columns(self, spec: TableSpec, columns: list[Sequence[Any]], rows: int) -> None:
        if spec.name == self.table and rows:
            persons = columns[self.person] if self.person is not None else [None] * rows
            instants = columns[self.at] if self.at is not None else [None] * rows
            activity_batch(self.build, persons, instants)

    def write_batch(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        if spec.name == self.table and rows:
            self.write_columns(spec, list(zip(*rows, strict=True)), len(rows))

    def end_table(self, spec: TableSpec, rows: int) -> None:
        if spec.name == self.table:
            self.build.activity_watched = True


def _expected_documents(job: ExportJob) -> int:
    """How many documents of one format an export will make, at most, known before they
    are made (the progress bar's total): a certificate per certificates row, a completion
    report per course, three reports and the summary."""
    roles = job.settings.roles
    expected = 4
    for role in ("certificates", "courses"):
        if role in roles:
            expected += job.counts.get(roles[role].table, 0)
    return expected


class _DocumentsExporter(Exporter):
    folder: ClassVar[str] = FOLDER
    order: ClassVar[int] = 70  # after media (60): the export summary counts the media files

    def _formats(self, job: ExportJob) -> list[str] | None:
        """The document formats this one makes (None: made with the first of them)."""
        fmts = [f for f in DOCUMENT_FORMATS if f in job.options.formats] or [self.name]
        if self.name not in fmts:
            return [self.name]
        return fmts if self.name == fmts[0] else None

    def prepare(self, job: ExportJob) -> None:
        if self._formats(job) is not None and sum(job.counts.values()) >= WARM_FROM_ROWS:
            warm_pool()  # WeasyPrint loads while the rows are read

    def after(self, job: ExportJob) -> None:
        # PDF and Word of the same export are made together, by the first of them: the
        # data is read and aggregated once, and one pool of workers renders both.
        fmts = self._formats(job)
        if fmts is None:
            return  # made with the first
        label = f"{'/'.join(fmts)} documents"
        expected = _expected_documents(job) * len(fmts)
        with RenderQueue(progress=lambda done, total: job.progress(label, done, total), expected=expected) as queue:
            build = job.shared.pop(_WATCHED, None)  # (fed by the read pass: ``watcher``)
            if build is None or build.job is not job or build.fmts != fmts:
                build = DocumentBuild(job, fmts, queue)
            build.queue = queue
            build_documents(build)
            # The export summary follows once every format is done (``finish``, in the
            # export's own process): this process's warm workers render it then.
            keep = job.parallel and multiprocessing.parent_process() is None
            queue.finish(keep_pool=keep)
            if keep and (pool := queue.detach()) is not None:
                job.shared[_WARM_POOL] = pool
                # (an export that fails before its summary: the workers go with the job)
                weakref.finalize(job, pool.shutdown, wait=False, cancel_futures=True)

    def watcher(self, job: ExportJob) -> TableWriter | None:
        """When other formats read the activity table anyway, the documents' activity counts
        are taken from that read instead of reading the table again."""
        fmts = self._formats(job)
        role = job.settings.roles.get("activity")
        if fmts is None or role is None or role.table not in {t.name for t in job.tables}:
            return None
        build = DocumentBuild(job, fmts, RenderQueue(workers=1))  # (``after`` gives it the real queue)
        job.shared[_WATCHED] = build
        return ActivityWatcher(build, role, job.spec(role.table))

    def finish(self, job: ExportJob) -> None:
        """The export summary, when the formats ran side by side (once all are done): made
        by the first document format for all of them, as in ``after``, each format by a
        worker of the render pool — the documents' own, still warm, when this process
        rendered them; else new ones from its fork server (WeasyPrint loaded already) —
        not by importing WeasyPrint here."""
        if not job.parallel:
            return
        fmts = self._formats(job)
        if fmts is None:
            return  # made with the first
        prefix = f"{fmts[0]}: "  # (made together, the formats' notes are the same)
        warm = job.shared.pop(_WARM_POOL, None)
        workers = min(len(fmts), default_workers())
        with RenderQueue(workers=workers, parallel_from=1, chunk=1, pool=warm) as queue:
            build = DocumentBuild(job, fmts, queue)
            build.own_notes = [n[len(prefix) :] for n in job.notes if n.startswith(prefix)]
            export_summary(build)
            queue.finish()


@register
class PdfExporter(_DocumentsExporter):
    name = "pdf"
    description = "certificates and reports as PDF (data/documents/)"


@register
class DocxExporter(_DocumentsExporter):
    name = "docx"
    description = "certificates and reports as Word documents (data/documents/)"
