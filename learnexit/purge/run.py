"""Executing a purge: plan → delete → media → exports → verify → certify (design §1 and §5).

This is the most dangerous code in learnexit.  :class:`Run` executes one plan, a new
purge or the resumption of an unfinished one, under the ledger's purge lock
(:func:`purge_lock`, kept fresh by a heartbeat).  Tables go children first, in up to
``MAX_PASSES`` passes: the first deletes, the next ones sweep rows written meanwhile and
retry tables a late reference blocked.  Then the media files, then the export packages
learnexit wrote; backups outside the tool's reach are named on the certificate with
``[purge] backup_note``.  A fresh discovery re-counts everything (``verify``); anything
left marks the purge ``failed`` (exit 1).  Otherwise a PDF certificate without personal
data states what was deleted, what is kept under which law until when, and the audit
chain's head hash.  PostgreSQL's JIT is switched off for the purge's connections.

Library code never prints; it reports through :func:`learnexit.logs.event` and an
optional ``progress`` callback.  Test-only faults come in as one
:class:`~learnexit.purge.faults.Faults` object (no-op by default).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from ..config import Settings, scrub
from ..documents.i18n import LANGS
from ..documents.render import PdfWorker, pdf_worker
from ..errors import BadInput, LearnexitError, OperationalError, Refused
from ..ledger.export_records import delivered_export_ids
from ..ledger.store import Ledger, aware, naive_utc
from ..logs import event
from ..offboarding.closure import run_closure
from ..source import check_customer_key
from ..valuefree import first_line
from .certificate import write_certificate
from .delete import Blanker, Blocked, Deleter, delete_group, groupable
from .exports import remove_exports
from .faults import NO_FAULTS, Faults
from .history import addendum_facts
from .journal import Journal
from .media_refs import delete_media
from .plan import aware_now, back_edges, plan_purge
from .record import (
    Counts,
    record_done,
    record_failure,
    record_unverified,
    record_verified,
    resume_purge,
    retained_entries,
    start_purge,
    started_at,
)
from .results import Progress, PurgePlan, PurgeResult
from .scope import Scope
from .source import open_source
from .verify import Verification, verify

__all__ = ["MAX_PASSES", "Run", "check_lang", "execute_purge", "purge_customer", "purge_lock", "start_certificate"]

MAX_PASSES = 3  # the first pass deletes; the next ones sweep rows written meanwhile


GROUP_TABLES = 100  # small tables deleted in one transaction at most (``Deleter.delete_group``)


def _delete_one(deleter: Deleter, scope: Scope, at: int, holding: set[str], grouped: dict[str, int]) -> int:
    """Delete the doomed rows of the ``at``-th table (children first); the rows deleted.

    A table that holds no rows is skipped (a row written into it meanwhile: the next
    pass).  A small table goes with the small tables after it in one transaction
    (``delete_group``, their counts kept in ``grouped``) when together they fit in one
    batch; otherwise each table goes batch by batch."""
    t = scope.children_first[at]
    if t not in holding:
        return 0
    if t in grouped:
        return grouped.pop(t)
    if t in scope.via:
        return deleter.delete_candidates(t)
    run = [t]
    if groupable(deleter, t):
        for later in scope.children_first[at + 1 :]:
            if len(run) >= GROUP_TABLES:
                break
            if later in holding:
                if not groupable(deleter, later):
                    break
                run.append(later)
    counts = delete_group(deleter, run) if len(run) > 1 else None
    if counts is None:
        return deleter.delete_table(t)
    grouped.update(counts)
    return grouped.pop(t)


class Run:
    """One execution of a purge (a new one or a resumed one)."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        plan: PurgePlan,
        now: datetime,
        lang: str,
        progress: Progress | None,
        faults: Faults = NO_FAULTS,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.plan = plan
        self.customer = plan.customer
        self.now = now
        self.lang = lang
        self.progress = progress
        self.faults = faults
        self.purge_id = 0
        self.before: dict[str, int] = {}
        self.stored_plan: dict[str, Any] = {}
        self.expire_all = False
        self.notes: list[str] = []
        self.journal = Journal(ledger, self.customer, 0)
        self.pdf: PdfWorker | None = None
        self._t0 = time.monotonic()

    def _clock(self) -> datetime:
        """Naive UTC "now" for the ledger: the run's ``now`` plus the time spent since."""
        return naive_utc(self.now) + timedelta(seconds=int(time.monotonic() - self._t0))

    def go(self) -> PurgeResult:
        """Start (or resume) the purge and run it to its end; the ``purges`` row is
        ``failed`` when anything goes wrong (run again to resume)."""
        plan = self.plan
        if plan.resume_of is not None:
            started = resume_purge(self.ledger, plan)
        else:
            started = start_purge(self.ledger, plan, self.now, self._addendum() if plan.kind == "reapply" else {})
        self.purge_id = started.purge_id
        self.before = started.before
        self.stored_plan = started.stored_plan
        self.expire_all = started.expire_all
        self.journal = Journal(self.ledger, self.customer, self.purge_id)
        try:
            return self._go()
        except BaseException as exc:
            self._fail(exc)
            raise

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, LearnexitError):
            text = exc.message
        elif isinstance(exc, KeyboardInterrupt):
            text = "interrupted"
        else:
            text = first_line(exc)
        text = scrub(text)[:2000]
        try:
            record_failure(self.ledger, self.purge_id, self.customer, text, self._clock())
        except LearnexitError:
            event("purge_failure_not_recorded", level=logging.ERROR, customer=self.customer, purge_id=self.purge_id)
        # WARNING: the error itself reaches the user once, as the command's error line
        # (or, with --due, as the run's purge_due_failed event)
        event("purge_failed", level=logging.WARNING, customer=self.customer, purge_id=self.purge_id, error=text)

    def _report(self, table: str, rows: int) -> None:
        if self.progress is not None and rows:
            self.progress(table, rows, self.before.get(table))

    def _go(self) -> PurgeResult:
        plan = self.plan
        settings = self.settings
        # The certificate at the end needs WeasyPrint: a process of its own imports it and
        # lays out a first page meanwhile (``PdfWorker``), while the purge deletes.
        self.pdf = pdf_worker(self.lang)
        if plan.closure_pending:
            counts = run_closure(settings, self.ledger, self.customer, now=self.now)
            with self.ledger.transaction() as conn:
                self.journal.bump(conn, "closure", sum(counts.values()), 1, True)
        self.journal.load_state()
        with open_source(settings, self.ledger, self.customer, row_may_be_gone=True) as src:
            if src.datamap.unclassified():
                raise Refused(f"unclassified tables appeared: {', '.join(src.datamap.unclassified())}")
            scope = Scope(settings, src, plan.termination_date, self.now, expire_all=self.expire_all)
            self.journal.reconcile(src)
            deleter = Deleter(settings, self.journal, src, scope, self.faults, self._report)
            deleter.capture(plan.kind == "retention")
            unlink, refusals = back_edges(settings, src, scope)
            if refusals:
                raise Refused(refusals[0])
            self._passes(deleter, Blanker(settings, self.journal, src, scope), scope, unlink)
            self.notes += delete_media(settings, self.journal, src, scope, self.faults, self._report)
        removed, export_error = remove_exports(self.journal)
        return self._finish(removed, export_error)

    def _passes(self, deleter: Deleter, blanker: Blanker, scope: Scope, unlink: list[Any]) -> None:
        """Pass 1 deletes; later passes sweep rows written meanwhile and retry tables a
        late reference blocked."""
        blocked: dict[str, str] = {}
        for passno in range(1, MAX_PASSES + 1):
            # Each pass reads the key sets afresh: rows written since the last one count.
            # (Within a pass children go before the parents whose key sets find them.)
            scope.src.refresh_key_sets()
            deleter.settle()  # (before the unlinking: it changes only rows that go)
            blanker.unlink(unlink)
            deleted = 0
            blocked = {}
            holding = deleter.holding_rows(scope.children_first)
            earlier = self.journal.progress() if passno == 1 else {}  # (a resumed run's rows)
            grouped: dict[str, int] = {}
            for at, t in enumerate(scope.children_first):
                # (a run that fails leaves its last batch's progress to reconcile)
                try:
                    n = _delete_one(deleter, scope, at, holding, grouped)
                    deleted += n
                except Blocked as exc:
                    self.journal.flush_done()
                    blocked[t] = exc.detail
                    event("purge_blocked", level=logging.WARNING, customer=self.customer, table=t, passno=passno)
                    continue
                if t in holding:
                    blanker.minimise(t)
                if passno == 1:
                    # Done with the ledger's next commit (the next table's first batch), not
                    # a commit of its own: a run killed before it reconciles the last batch
                    # and looks at the table again, finding nothing more to delete.
                    self.journal.mark_later(t)
                    event("purge_table", customer=self.customer, table=t, rows=earlier.get(t, 0) + n)
                else:
                    self.journal.flush_done()
            self.journal.flush_done()
            if passno > 1 and not blocked and deleted == 0:
                break
        if blocked:
            t, detail = next(iter(blocked.items()))
            raise OperationalError(
                f"cannot delete from {t}: rows are still referenced by data outside the customer's ({detail})"
            )

    def _result(self, found: Verification, removed: list[int], problems: list[str]) -> PurgeResult:
        progress = self.journal.progress()
        tables = found.order or list(found.record["tables"])
        return PurgeResult(
            customer=self.customer,
            status="done" if not problems else "failed",
            kind=self.plan.kind,
            purge_id=self.purge_id,
            name=str(self.stored_plan.get("name") or self.plan.name),
            deleted={t: progress.get(t, 0) for t in tables},
            retention=found.retention,
            kept_shared=found.kept,
            media=found.media,
            exports=[
                dict(e, status="removed" if e.get("id") in removed else e.get("status"))
                for e in self.stored_plan.get("exports", [])
            ],
            verified=not problems,
            verification=found.record,
            problems=problems,
            forced_reason=self.plan.forced_reason,
            resumed=self.plan.resume_of is not None,
            notes=self.notes,
        )

    def _finish(self, removed: list[int], export_error: str | None) -> PurgeResult:
        found = verify(
            self.settings, self.journal, self.plan.termination_date, self.now,
            expire_all=self.expire_all, before=self.before,
        )  # fmt: skip
        problems = found.problems
        if export_error is not None:
            problems.append(export_error)
        result = self._result(found, removed, problems)
        counts = Counts(result.deleted, found.retention, found.kept, found.record)
        summary = {
            "purge_id": self.purge_id,
            "verified": result.verified,
            "deleted": sum(result.deleted.values()),
            "retained": sum(result.retained.values()),
            "kept_shared": sum(found.kept.values()),
            "media_deleted": found.media.get("deleted", 0),
            "exports_removed": removed,
        }
        if problems:
            error = "verification failed: " + "; ".join(problems[:5])
            result.error = error
            result.exit_code = 1
            record_unverified(self.ledger, self.purge_id, self.customer, self._clock(), counts, error, summary)
            event("purge_verification_failed", level=logging.ERROR, customer=self.customer, problems=len(problems))
            return result
        head = record_verified(self.ledger, self.customer, summary)
        result.audit_head = head
        finished = self._clock()
        facts = self._certificate_facts(finished)
        path, digest = write_certificate(self.settings, result, facts, self.lang, self.pdf)
        result.certificate = str(path)
        retained = retained_entries(self.purge_id, result.retention, found.via_tables, found.retained_keys)
        certificate = (str(path), digest, finished)
        record_done(
            self.ledger, self.plan, self.purge_id, counts, retained, certificate, head, facts.get("addendum_to")
        )
        event("purge_done", customer=self.customer, purge_id=self.purge_id, rows=sum(result.deleted.values()))
        return result

    def _certificate_facts(self, finished: datetime) -> dict[str, Any]:
        with self.ledger.engine.connect() as conn:
            # The exports ``confirm`` recorded as delivered (the certificate lists only those).
            delivered = delivered_export_ids(conn, self.customer)
        return {
            "vendor": self.settings.vendor_name,
            "termination_date": self.plan.termination_date,
            "started_at": started_at(self.ledger, self.purge_id),
            "finished_at": aware(finished),
            "backup_note": self.settings.purge.backup_note,
            "timezone": self.settings.contract.timezone,
            "actor": self.ledger.actor,
            "delivered": delivered,
            "addendum_to": self._addendum() if self.plan.kind == "reapply" else None,
            "contested": dict(self.plan.contested),
        }

    def _addendum(self) -> dict[str, Any]:
        """The certificate a reapply purge's addendum extends (its case's first)."""
        return addendum_facts(self.ledger, self.customer)


@contextmanager
def purge_lock(settings: Settings, ledger: Ledger) -> Iterator[None]:
    """The ledger's purge lock, kept fresh by a heartbeat thread while it is held."""
    stale = timedelta(minutes=settings.purge.lock_stale_minutes)
    interval = max(1.0, min(30.0, stale.total_seconds() / 4))
    with ledger.lock("purge", stale_after=stale):
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(interval):
                try:
                    ledger.heartbeat("purge")
                except Exception:  # noqa: BLE001 - a missed beat is not fatal
                    event("purge_heartbeat_failed", level=logging.WARNING)

        thread = threading.Thread(target=beat, name="learnexit-purge-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)


def start_certificate(settings: Settings, lang: str | None) -> None:
    """Get the certificate's renderer ready now (``PdfWorker``), for a purge about to
    run: its fork server's start then overlaps the checks before the purge too.  Bad
    input is left for the purge to report (nothing is started)."""
    try:
        value = check_lang(settings, lang)
    except BadInput:
        return
    pdf_worker(value)


def check_lang(settings: Settings, lang: str | None) -> str:
    """The certificate's language: ``lang`` or ``[export] lang`` (BadInput if unknown)."""
    value = lang or settings.export.lang
    if value not in LANGS:
        raise BadInput(f"--lang must be one of {', '.join(LANGS)}, not {value!r}")
    return value


def purge_customer(
    settings: Settings,
    ledger: Ledger,
    customer: str,
    now: datetime,
    force_reason: str | None,
    lang: str,
    progress: Progress | None,
    faults: Faults = NO_FAULTS,
) -> PurgeResult:
    """Plan and run the purge of ``customer`` (the caller holds the purge lock)."""
    settings = settings.for_customer(customer)  # ({customer} in [media] root)
    plan = plan_purge(settings, ledger, customer, now, force_reason)
    if plan.refusals:
        raise Refused("; ".join(plan.refusals))
    if plan.kind == "none":
        last = plan.last_purge or {}
        return PurgeResult(
            customer=customer,
            status="nothing",
            kind=None,
            purge_id=last.get("id"),
            name=plan.name,
            certificate=last.get("certificate"),
            verified=True,
            notes=plan.notes,
        )
    return Run(settings, ledger, plan, now, lang, progress, faults).go()


def execute_purge(
    settings: Settings,
    ledger: Ledger,
    customer: str,
    now: datetime | None = None,
    *,
    force_reason: str | None = None,
    lang: str | None = None,
    progress: Progress | None = None,
    faults: Faults = NO_FAULTS,
) -> PurgeResult:
    """Purge ``customer`` now (or resume its unfinished purge), under the ledger's purge lock.

    Raises Busy (4) when another purge runs, Refused (3) when the plan refuses,
    OperationalError (1) when execution fails (the purge row is ``failed``; run again to
    resume).  A failed verification returns a result with ``status == "failed"`` and
    ``exit_code == 1``.
    """
    now = aware_now(settings, now)
    language = check_lang(settings, lang)
    check_customer_key(customer)
    with purge_lock(settings, ledger):
        return purge_customer(settings, ledger, customer, now, force_reason, language, progress, faults)
