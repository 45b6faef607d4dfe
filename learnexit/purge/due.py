"""Cron mode (``purge --due``): what is due, for every customer, under one lock.

Due closures, due purges (and unfinished ones resumed), due retention purges, and the
data of finished purges that came back (a restored backup) deleted again
(``reapply``).  One customer's failure does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from .. import contract
from ..config import Settings, scrub
from ..errors import LearnexitError, Refused, VerificationFailed
from ..export.records import reap_interrupted_exports
from ..ledger.consistency import all_problems, refusal
from ..ledger.records import known_customers
from ..ledger.store import Ledger
from ..logs import event
from ..offboarding.closure import due_closures, run_closure
from ..offboarding.facts import customer_facts
from ..valuefree import first_line
from .exports import exports_running
from .faults import NO_FAULTS, Faults
from .history import pending_retention, purge_rows, retention_due_day
from .plan import aware_now, plan_purge
from .reapply import due_plans, reapply_due
from .results import DueReport, Progress, PurgePlan, PurgeResult
from .run import check_lang, purge_customer, purge_lock

__all__ = ["due_work", "plan_due", "purge_due"]


def due_work(
    settings: Settings, ledger: Ledger, now: datetime | None = None
) -> tuple[list[tuple[str, str, int | None]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(customers to purge now with the reason and, for an earlier case of a key that now
    names a new customer, that case's id; customers skipped and why; customers whose
    ledger records disagree with the audit, with the error: failed, nothing decided for
    them) — reads only."""
    now = aware_now(settings, now)
    work: list[tuple[str, str, int | None]] = []
    skipped: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    disagree = all_problems(ledger)  # one read of the ledger for every customer
    for customer in sorted(set(known_customers(ledger)) | disagree.keys()):
        try:
            for case_id in [*ledger.earlier_cases(customer), None]:
                if case_id is None:
                    found = _due_reason(settings, ledger, customer, now, disagree.get(customer, []))
                else:
                    with ledger.use_case(customer, case_id):
                        found = _due_reason(settings, ledger, customer, now, disagree.get(customer, []))
                if found is None:
                    continue
                why, skip = found
                if skip is not None:
                    skipped.append({"customer": customer, "reason": skip, "would": why})
                else:
                    work.append((customer, why, case_id))
        except VerificationFailed as exc:
            failed.append({"customer": customer, "error": exc.message})
    return work, skipped, failed


def _due_reason(
    settings: Settings, ledger: Ledger, customer: str, now: datetime, problems: list[str]
) -> tuple[str, str | None] | None:
    """Why the customer's current case is due for a purge now (and why it is skipped).
    VerificationFailed when its records disagree with the audit (``problems``): whatever
    they say is not acted on, due or not."""
    if problems:
        raise refusal(problems)
    facts = customer_facts(ledger, customer)
    purges = purge_rows(ledger, customer)
    last = purges[-1] if purges else None
    why: str | None = None
    if last is not None and last["status"] in ("running", "failed"):
        why = f"resume purge #{last['id']} ({last['status']})"
    elif facts.timeline is None or (facts.withdrawn and not purges):
        return None
    elif not any(p["status"] == "done" and p["kind"] == "full" for p in purges):
        due = contract.effective_purge_due_at(facts)
        if due is not None and now >= due and not facts.withdrawn:
            why = f"purge due since {due:%Y-%m-%d %H:%MZ}"
    else:
        done = [p for p in purges if p["status"] == "done"]
        pending = pending_retention(done[-1])
        due_day = retention_due_day(pending)
        if due_day is not None and contract.today(settings.contract.timezone, now) >= due_day:
            why = f"retention purge due since {due_day.isoformat()}"
    if why is None:
        return None
    if facts.hold_active:
        return why, "legal hold"
    if exports_running(settings, ledger, customer):
        return why, "export running"
    return why, None


@contextmanager
def _case(ledger: Ledger, customer: str, case_id: int | None) -> Iterator[None]:
    """Work on an earlier case of ``customer`` (None: the current one)."""
    if case_id is None:
        yield
    else:
        with ledger.use_case(customer, case_id):
            yield


def plan_due(
    settings: Settings, ledger: Ledger, now: datetime | None = None
) -> tuple[list[str], list[PurgePlan], list[dict[str, Any]]]:
    """What ``purge --due`` would do now: (closures, purge plans, skipped) — reads only.
    The plans include deleting again what came back after a finished purge (``reapply``)."""
    now = aware_now(settings, now)
    closures = due_closures(settings, ledger, now)
    work, skipped, failed = due_work(settings, ledger, now)
    plans = []
    for item in failed:
        plan = PurgePlan(customer=item["customer"], name=item["customer"], kind="full",
                         tenancy=settings.customer.tenancy, now=now)  # fmt: skip
        plan.refusals.append(item["error"])
        plans.append(plan)
    for customer, _why, case_id in work:
        try:
            with _case(ledger, customer, case_id):
                plans.append(plan_purge(settings, ledger, customer, now))
        except LearnexitError as exc:
            plan = PurgePlan(customer=customer, name=customer, kind="full", tenancy=settings.customer.tenancy, now=now)
            plan.refusals.append(exc.message)
            plans.append(plan)
    again, more = due_plans(settings, ledger, now, work)  # data that came back after a purge
    return closures, plans + again, skipped + more


def purge_due(
    settings: Settings,
    ledger: Ledger,
    now: datetime | None = None,
    *,
    lang: str | None = None,
    confirmed: Sequence[str] | None = None,
    progress: Progress | None = None,
    faults: Faults = NO_FAULTS,
) -> DueReport:
    """Cron mode: exports interrupted on this host reaped (their clear-text builds
    destroyed, ``export.reap_interrupted_exports``), due closures, due purges, due
    retention purges, and the data of finished purges that came back (a restored backup)
    deleted again (``reapply``) — one lock, every customer.

    One customer's failure does not stop the others; ``DueReport.exit_code`` is 1 when
    any failed (3 when the only problems were refusals).  Safe to run every few minutes:
    with nothing due it changes nothing.  ``confirmed`` limits the purges to those
    customers (the ones an operator typed).  Busy (4) when another purge holds the lock.
    """
    now = aware_now(settings, now)
    language = check_lang(settings, lang)
    report = DueReport(now=now)
    with purge_lock(settings, ledger):
        report.interrupted_exports = reap_interrupted_exports(ledger)
        for customer in due_closures(settings, ledger, now):
            try:
                rows = run_closure(settings, ledger, customer, now=now)
                report.closures.append({"customer": customer, "rows": rows})
                event("closure_done", customer=customer, rows=sum(rows.values()))
            except LearnexitError as exc:
                report.closures.append({"customer": customer, "error": exc.message})
                event("closure_failed", level=logging.ERROR, customer=customer, error=exc.message)
        work, report.skipped, failed = due_work(settings, ledger, now)
        for item in failed:  # a failure of this run (exit 1); the other customers go on
            event("purge_due_failed", level=logging.ERROR, customer=item["customer"], error=item["error"])
            report.results.append(
                PurgeResult(customer=item["customer"], status="failed", error=item["error"], exit_code=1)
            )
        for customer, why, case_id in work:
            if confirmed is not None and customer not in confirmed:
                report.skipped.append({"customer": customer, "reason": "not confirmed", "would": why})
                continue
            event("purge_due", customer=customer, why=why)
            try:
                with _case(ledger, customer, case_id):
                    result = purge_customer(settings, ledger, customer, now, None, language, progress, faults)
            except LearnexitError as exc:
                status = "refused" if isinstance(exc, Refused) else "failed"
                result = PurgeResult(customer=customer, status=status, error=exc.message, exit_code=exc.exit_code)
                if status == "failed":
                    event("purge_due_failed", level=logging.ERROR, customer=customer, error=exc.message)
            except Exception as exc:  # noqa: BLE001 - one customer's bug must not stop the others
                text = scrub(f"internal error: {first_line(exc)}")
                result = PurgeResult(customer=customer, status="failed", error=text, exit_code=1)
                event("purge_internal_error", level=logging.ERROR, customer=customer, error=text)
            report.results.append(result)
        # Finished cases whose data came back (a restored backup): deleted again.
        reapply_due(
            settings, ledger, now, language, report, work, confirmed=confirmed, progress=progress, faults=faults
        )
    return report
