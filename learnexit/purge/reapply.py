"""Deleted stays deleted: finished purges re-checked after a restore (issue 17, item 4).

Restoring the source from a backup taken before a purge brings the customer's rows
back, and data protection law expects the deletion to be applied again.  Every
offboarding case whose full purge is done is re-checked, cheaply:

* The case's own customer row is looked for by its key **and** the primary key the case
  pinned (``PinnedRow``): a row that now carries the key under another primary key is a
  new customer with a case of its own, and nothing of it ever counts here.  When that
  row is not there, no row can lead to it, and the case costs one query.
* When it is there, the rows the ownership predicate finds are counted the way the
  purge decides them (``Scope``): outside retention and not kept for others; and kept
  rows whose personal columns, blanked by the purge, hold data again.
* Counts only, never row data; one reflected source per source URL (the same Source is
  re-pointed from case to case).

``status --check`` reports what came back (``reappeared_data``, exit 5); ``purge --due``
deletes it again with a purge of kind ``reapply`` under the same case (audit
``purge.reapply_started`` … ``purge.verified`` → ``purge.reapplied``) and a certificate
addendum that names the case's first certificate and its SHA-256.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from .. import contract
from ..config import Settings, scrub
from ..errors import LearnexitError, OperationalError, Refused, UnknownCustomer
from ..ledger.purge_records import finished_cases, purges_of
from ..ledger.store import Ledger, aware
from ..logs import event
from ..offboarding.facts import customer_facts
from ..source import PinnedRow, describe_db_error
from .conditions import count_rows, flag_counts, not_true
from .faults import NO_FAULTS, Faults
from .history import addendum_facts, purge_rows, stored_name
from .plan import fill_plan
from .results import DueReport, Progress, PurgePlan, PurgeResult
from .run import Run
from .scope import Scope
from .source import PurgeSource, open_source

__all__ = ["KIND", "Reappeared", "attention", "due_plans", "plan_reapply", "recheck", "reapply_due"]

KIND = "reapply"


@dataclass
class Reappeared:
    """Data of a finished case that is in the source again."""

    customer: str
    case_id: int
    purge_id: int  # the case's full purge: the certificate the addendum extends
    held: bool
    tables: dict[str, int] = field(default_factory=dict)  # rows outside retention
    minimised: dict[str, int] = field(default_factory=dict)  # kept rows with personal data again

    @property
    def found(self) -> bool:
        return bool(self.tables or self.minimised)

    def summary(self) -> str:
        """Counts only: '4,013 rows (activity_log 2,400, ...); 1 kept row ... (users 1)'."""
        parts = []
        if self.tables:
            each = ", ".join(f"{t} {n:,}" for t, n in self.tables.items())
            parts.append(f"{_rows(sum(self.tables.values()))} ({each})")
        if self.minimised:
            each = ", ".join(f"{t} {n:,}" for t, n in self.minimised.items())
            parts.append(
                f"{_rows(sum(self.minimised.values()), 'kept row')} with blanked columns filled again ({each})"
            )
        return "; ".join(parts)

    def attention_item(self) -> dict[str, Any]:
        then = "kept while the legal hold lasts" if self.held else "`learnexit purge --due` deletes it again"
        return {
            "customer": self.customer,
            "kind": "reappeared_data",
            "case_id": self.case_id,
            "purge_id": self.purge_id,
            "tables": self.tables,
            "minimised": self.minimised,
            "message": (
                f"{self.customer}: data deleted by purge #{self.purge_id} is in the source again "
                f"(a restored backup?): {self.summary()}; {then}"
            ),
        }


def _rows(n: int, word: str = "row") -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


@dataclass
class _Case:
    customer: str
    case_id: int
    row_pk: str | None
    purge_id: int
    termination: date
    held: bool
    # Retention as the case's purges left it: as at its full purge (rows retained then are
    # kept, even past their date, until the retention purge), or all gone after that one.
    retention_as_of: datetime
    retention_done: bool


# --------------------------------------------------------------------------- which cases


def _finished_cases(settings: Settings, ledger: Ledger, customers: Sequence[str] | None) -> list[_Case]:
    """Cases whose full purge is done and whose latest purge is done (a running or failed
    one is resumed by ``purge --due`` and reported as ``purge_failed``)."""
    try:
        with ledger.engine.connect() as conn:
            rows = finished_cases(conn, customers)
    except sa.exc.SQLAlchemyError as exc:
        raise OperationalError(f"cannot read the ledger: {describe_db_error(exc)}") from None
    out = []
    for row in rows:
        customer, case_id = str(row["customer"]), int(row["id"])
        if row["row_pk"] is None and settings.customer.tenancy == "shared":
            continue  # never pinned: a restore could not be told from a new customer
        with ledger.use_case(customer, case_id):
            purges = purges_of(ledger, customer)
            full = next((p for p in purges if p["kind"] == "full" and p["status"] == "done"), None)
            if full is None or purges[-1]["status"] != "done":
                continue
            facts = customer_facts(ledger, customer)
        if facts.timeline is None:
            continue
        retention_done = any(p["kind"] == "retention" and p["status"] == "done" for p in purges)
        as_of = aware(full["started_at"])
        assert as_of is not None
        termination = facts.timeline.termination_date
        out.append(
            _Case(
                customer, case_id, row["row_pk"], int(full["id"]), termination, facts.hold_active, as_of, retention_done
            )
        )
    return out


# --------------------------------------------------------------------------- counting


def _count_case(settings: Settings, src: PurgeSource, case: _Case) -> tuple[dict[str, int], dict[str, int]]:
    """(rows outside retention, kept rows with personal data again) per table."""
    if not src.root_present():
        return {}, {}
    # Rows a due retention purge has not removed yet are not "back": they never went.
    scope = Scope(settings, src, case.termination, case.retention_as_of, expire_all=case.retention_done)
    rows: dict[str, int] = {}
    minimised: dict[str, int] = {}
    with src.snapshot() as conn:
        scope.settle(conn)
        for t in scope.children_first:
            table = src.table(t)
            pred = src.predicate(t)
            if t in scope.via:
                other = scope.other_ref(t)
                flags = flag_counts(conn, table, [pred], other, scope.ret(t))
                n = sum(n for (o, k), n in flags.items() if not o and not k)
            else:
                n = count_rows(conn, table, scope.doomed(t))
            if n:
                rows[t] = n
            blanked = _blanked(scope, t)
            if blanked is not None:
                m = count_rows(conn, table, *blanked)
                if m:
                    minimised[t] = m
    return rows, minimised


def _blanked(scope: Scope, t: str) -> list[Any] | None:
    """Conditions for kept rows of ``t`` whose personal columns the purge blanked and
    that hold data again (what the purge's minimising step would blank once more)."""
    if t in scope.retain_until or not scope.settings.rule(t).personal_columns:
        return None
    if t in scope.via:
        keep = scope.ret(t)
        if keep is None:
            return None
        _values, dirty = scope.personal(t)
        return None if dirty is None else [scope.src.predicate(t), keep, dirty, not_true(scope.other_ref(t))]
    keep = scope.minimise_cond(t)
    if keep is None:
        return None
    _values, dirty = scope.personal(t)
    return None if dirty is None else [keep, dirty]


def recheck(
    settings: Settings,
    ledger: Ledger,
    customers: Sequence[str] | None = None,
    *,
    skip: set[int] | None = None,
) -> tuple[list[Reappeared], list[tuple[str, LearnexitError]]]:
    """Every finished case re-checked against the source: (cases with data back, problems
    as (customer, error)).  Reads only; ``skip`` names case ids left out.  Rows are judged
    as the case's purges left them (no clock): what a due retention purge has still to
    remove is not data that came back."""
    cases = [c for c in _finished_cases(settings, ledger, customers) if c.case_id not in (skip or set())]
    by_url: dict[str, list[_Case]] = {}
    problems: list[tuple[str, LearnexitError]] = []
    for case in cases:
        try:
            by_url.setdefault(settings.source_url_for(case.customer), []).append(case)
        except LearnexitError as exc:
            problems.append((case.customer, exc))
    found: list[Reappeared] = []
    for group in by_url.values():
        src: PurgeSource | None = None
        try:
            for case in group:
                pinned = PinnedRow(case.row_pk, deleted=True) if case.row_pk is not None else None
                try:
                    if src is None:
                        src = PurgeSource(settings, case.customer, row_may_be_gone=True, pinned=pinned)
                    else:
                        src.rebind(case.customer, pinned)
                    rows, minimised = _count_case(settings, src, case)
                except UnknownCustomer:
                    continue  # database tenancy: the customer's database is gone
                except sa.exc.SQLAlchemyError as exc:
                    problems.append((case.customer, OperationalError(f"source read failed: {describe_db_error(exc)}")))
                    continue
                except LearnexitError as exc:
                    problems.append((case.customer, exc))
                    continue
                hit = Reappeared(case.customer, case.case_id, case.purge_id, case.held, rows, minimised)
                if hit.found:
                    found.append(hit)
        finally:
            if src is not None:
                src.close()
    return found, problems


def attention(settings: Settings, ledger: Ledger, customers: Sequence[str] | None) -> list[dict[str, Any]]:
    """``status --check`` items: ``reappeared_data`` per case, ``source_problem`` when the
    re-check could not read the source."""
    found, problems = recheck(settings, ledger, customers)
    items = [r.attention_item() for r in found]
    for customer, exc in problems:
        items.append(
            {"customer": customer, "kind": "source_problem",
             "message": f"{customer}: cannot re-check the purged data: {exc.message}"}
        )  # fmt: skip
    return items


# --------------------------------------------------------------------------- deleting again


def plan_reapply(settings: Settings, ledger: Ledger, found: Reappeared, now: datetime) -> PurgePlan:
    """The counted plan of deleting ``found`` again (reads only; call inside the case)."""
    customer = found.customer
    plan = PurgePlan(
        customer=customer,
        name=customer,
        kind=KIND,
        tenancy=settings.customer.tenancy,
        now=now,
        backup_note=settings.purge.backup_note,
        timezone=settings.contract.timezone,
    )
    facts = customer_facts(ledger, customer)
    tl = facts.timeline
    if tl is None:  # (a finished case always has one)
        plan.refusals.append(f"no notice is recorded for {customer}")
        return plan
    plan.termination_date = tl.termination_date
    plan.purge_due_at = contract.effective_purge_due_at(facts)
    plan.notes.append(
        f"data deleted by purge #{found.purge_id} is in the source again (a restored backup?); "
        "this purge deletes it again"
    )
    if facts.hold_active:
        plan.refusals.append(f"{customer} is on legal hold; release it first (learnexit release {customer})")
    with open_source(settings, ledger, customer, row_may_be_gone=True) as src:
        plan.name = stored_name(purge_rows(ledger, customer), customer)
        unclassified = src.datamap.unclassified()
        if unclassified:
            plan.refusals.append(
                f"unclassified tables: {', '.join(unclassified)}; classify each in [tables] before purging"
            )
            return plan
        # after a retention purge nothing of the case is retained any more (as Run decides)
        expire_all = bool(addendum_facts(ledger, customer).get("retention_done"))
        scope = Scope(settings, src, tl.termination_date, now, expire_all=expire_all)
        fill_plan(plan, settings, src, scope, {}, ledger)
    return plan


def _case_ids(ledger: Ledger, work: Sequence[tuple[str, str, int | None]]) -> set[int]:
    ids = set()
    for customer, _why, case_id in work:
        if case_id is None:
            case = ledger.case_of(customer)
            if case is None:
                continue
            case_id = int(case["id"])
        ids.add(case_id)
    return ids


def due_plans(
    settings: Settings, ledger: Ledger, now: datetime, work: Sequence[tuple[str, str, int | None]]
) -> tuple[list[PurgePlan], list[dict[str, Any]]]:
    """``purge --due --dry-run``: (plans of deleting reappeared data again, skipped)."""
    found, problems = recheck(settings, ledger, None, skip=_case_ids(ledger, work))
    plans: list[PurgePlan] = []
    skipped = [_problem(customer, exc) for customer, exc in problems]
    for hit in found:
        if hit.held:
            skipped.append({"customer": hit.customer, "reason": "legal hold", "would": _why(hit)})
            continue
        try:
            with ledger.use_case(hit.customer, hit.case_id):
                plans.append(plan_reapply(settings, ledger, hit, now))
        except LearnexitError as exc:
            plan = PurgePlan(customer=hit.customer, name=hit.customer, kind=KIND, tenancy=settings.customer.tenancy,
                             now=now)  # fmt: skip
            plan.refusals.append(exc.message)
            plans.append(plan)
    return plans, skipped


def _why(hit: Reappeared) -> str:
    return f"delete again what purge #{hit.purge_id} deleted: {hit.summary()}"


def _problem(customer: str, exc: LearnexitError) -> dict[str, Any]:
    return {"customer": customer, "reason": f"cannot re-check the purged data: {exc.message}", "would": "re-check"}


def reapply_due(
    settings: Settings,
    ledger: Ledger,
    now: datetime,
    lang: str,
    report: DueReport,
    work: Sequence[tuple[str, str, int | None]],
    *,
    confirmed: Sequence[str] | None = None,
    progress: Progress | None = None,
    faults: Faults = NO_FAULTS,
) -> None:
    """``purge --due`` (under its lock, after the due purges): delete reappeared data
    again, one case at a time; results and skips go into ``report``."""
    found, problems = recheck(settings, ledger, None, skip=_case_ids(ledger, work))
    report.skipped += [_problem(customer, exc) for customer, exc in problems]
    for hit in found:
        why = _why(hit)
        if hit.held:
            report.skipped.append({"customer": hit.customer, "reason": "legal hold", "would": why})
            continue
        if confirmed is not None and hit.customer not in confirmed:
            report.skipped.append({"customer": hit.customer, "reason": "not confirmed", "would": why})
            continue
        event("purge_due", customer=hit.customer, why=why)
        result: PurgeResult
        try:
            with ledger.use_case(hit.customer, hit.case_id):
                plan = plan_reapply(settings, ledger, hit, now)
                if plan.refusals:
                    raise Refused("; ".join(plan.refusals))
                result = Run(settings, ledger, plan, now, lang, progress, faults).go()
        except LearnexitError as exc:
            status = "refused" if isinstance(exc, Refused) else "failed"
            result = PurgeResult(customer=hit.customer, status=status, kind=KIND, error=exc.message,
                                 exit_code=exc.exit_code)  # fmt: skip
            if status == "failed":
                event("purge_due_failed", level=logging.ERROR, customer=hit.customer, error=exc.message)
        except Exception as exc:  # noqa: BLE001 - one customer's bug must not stop the others
            first = str(exc).strip().splitlines()
            text = scrub(f"internal error: {type(exc).__name__}: {first[0] if first else ''}")
            result = PurgeResult(customer=hit.customer, status="failed", kind=KIND, error=text, exit_code=1)
            event("purge_internal_error", level=logging.ERROR, customer=hit.customer, error=text)
        report.results.append(result)
