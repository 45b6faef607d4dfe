"""What needs a human: ``status --check``, one item per problem.

The offboarding case reports what its records and the customer's source say.  Checks
that belong to other parts of learnexit (data a finished purge deleted, back in the
source: ``reappeared_data``) are handed in by the caller (``more``), so that the case
does not import the purge.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from .. import contract
from ..config import Settings, scrub
from ..contract import Facts
from ..errors import LearnexitError
from ..ledger import records
from ..ledger.consistency import all_problems
from ..ledger.records import CaseRecords
from ..ledger.store import Ledger, aware
from ..source import Source, cycle_can_break, unbreakable_cycle_note
from .cases import open_source
from .clock import resolve_now
from .facts import facts_of

__all__ = ["ATTENTION_DAYS", "AttentionCheck", "check_attention"]

ATTENTION_DAYS = 14  # an export window closing within this many days needs a human

AttentionCheck = Callable[[Settings, Ledger, Sequence[str] | None], list[dict[str, Any]]]
"""More ``status --check`` items: ``(settings, ledger, customers or None for all) -> items``."""

_CHECK_UNCLASSIFIED_STATES = ("noticed", "terminated", "closed", "purge_due", "purge_failed", "held", "purged_retained")


def check_attention(
    settings: Settings,
    ledger: Ledger,
    customers: list[str] | None = None,
    now: datetime | None = None,
    *,
    more: Sequence[AttentionCheck] = (),
) -> list[dict[str, Any]]:
    """What needs a human (``status --check``), one item per problem.

    Kinds: ``export_window_closing`` (deadline within ATTENTION_DAYS, no complete export,
    not confirmed), ``purge_overdue`` (due and not done, no hold),
    ``retention_purge_overdue``, ``purge_failed`` (the latest purge failed),
    ``unclassified_tables`` (in the customer's source, while a purge is still to come) and
    ``source_problem`` (the source could not be checked), ``contested_rows`` (rows whose
    references lead to two customers: nobody's until settled) and ``deletion_cycle`` (a
    NOT NULL cycle of references the purge will refuse), from the notice on; then the
    items of each check in ``more`` (the CLI adds the purge's ``reappeared_data``: rows a
    finished purge deleted are in the source again, say after a backup was restored).
    """
    at = resolve_now(settings, now)
    items: list[dict[str, Any]] = []
    names = records.known_customers(ledger) if customers is None else customers
    datamaps: dict[str, list[str] | LearnexitError] = {}
    items += _disagreements(ledger, customers)  # kind ledger_disagrees
    for customer in names:
        rec = records.read_case(ledger, customer)
        facts = facts_of(rec)
        state = contract.derive_state(facts, at)
        if facts.timeline is None or state in ("none", "withdrawn"):
            continue
        items += _record_items(customer, rec, facts, state, at)
        if state in _CHECK_UNCLASSIFIED_STATES:
            items += _source_items(settings, ledger, customer, state, datamaps)
    for check in more:
        items += check(settings, ledger, customers)
    return items


def _record_items(customer: str, rec: CaseRecords, facts: Facts, state: str, at: datetime) -> list[dict[str, Any]]:
    """What the case's records say needs a human."""
    tl = facts.timeline
    assert tl is not None
    items: list[dict[str, Any]] = []
    today = contract.today(tl.timezone, at)
    days_left = (tl.export_deadline - today).days
    if (
        facts.purged_at is None
        and 0 <= days_left <= ATTENTION_DAYS
        and not rec.complete_exports
        and not rec.current_confirmations
    ):
        items.append(
            {
                "customer": customer,
                "kind": "export_window_closing",
                "export_deadline": tl.export_deadline,
                "days_left": days_left,
                "message": (
                    f"{customer}: the export window closes on {tl.export_deadline.isoformat()} "
                    f"({days_left} days left) and no complete export was delivered"
                ),
            }
        )
    due = contract.effective_purge_due_at(facts)
    if state == "purge_due" and due is not None:
        items.append(
            {
                "customer": customer,
                "kind": "purge_overdue",
                "purge_due_at": due,
                "message": f"{customer}: the purge was due at {due:%Y-%m-%d %H:%MZ} and has not been done",
            }
        )
    items += _retention_and_failure(customer, rec, facts, state, today)
    return items


def _retention_and_failure(
    customer: str, rec: CaseRecords, facts: Facts, state: str, today: date
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if state == "purged_retained" and facts.retained_until is not None and today > facts.retained_until:
        items.append(
            {
                "customer": customer,
                "kind": "retention_purge_overdue",
                "retained_until": facts.retained_until,
                "message": (
                    f"{customer}: retained rows were kept until {facts.retained_until.isoformat()} and are still there"
                ),
            }
        )
    if rec.purges and rec.purges[-1]["status"] == "failed":
        last = rec.purges[-1]
        items.append(
            {
                "customer": customer,
                "kind": "purge_failed",
                "purge_id": last["id"],
                "failed_at": aware(last["finished_at"] or last["started_at"]),
                "message": f"{customer}: the last purge (#{last['id']}) failed: {scrub(str(last['error'] or 'no detail'))}",
            }
        )
    return items


def _source_items(
    settings: Settings, ledger: Ledger, customer: str, state: str, datamaps: dict[str, list[str] | LearnexitError]
) -> list[dict[str, Any]]:
    """What the customer's source says needs a human (while a purge is still to come)."""
    found = _unclassified(settings, customer, datamaps)
    if isinstance(found, LearnexitError):
        return [
            {
                "customer": customer,
                "kind": "source_problem",
                "message": f"{customer}: cannot check the source: {found.message}",
            }
        ]
    if found:
        return [
            {
                "customer": customer,
                "kind": "unclassified_tables",
                "tables": found,
                "message": (
                    f"{customer}: unclassified tables block the purge: {', '.join(found)} (classify them in [tables])"
                ),
            }
        ]
    if state != "purged_retained":
        return _ownership_problems(settings, ledger, customer)
    return []


def _ownership_problems(settings: Settings, ledger: Ledger, customer: str) -> list[dict[str, Any]]:
    """Contested rows and reference cycles the purge could not break, from the notice on
    (not first on the purge date)."""
    items: list[dict[str, Any]] = []
    try:
        with open_source(settings, ledger, customer) as src:
            with src.snapshot() as conn:
                contested = src.contested_report(conn)
            cycles = [e for e in src.datamap.back_edges() if not cycle_can_break(src, e)]
            for c in contested:
                items.append(
                    {"customer": customer, "kind": "contested_rows", "table": c.table, "rows": c.rows,
                     "references": c.references, "message": f"{customer}: {c.note()}"}
                )  # fmt: skip
            for e in cycles:
                items.append(
                    {"customer": customer, "kind": "deletion_cycle", "reference": e.label,
                     "message": f"{customer}: {unbreakable_cycle_note(src, e)}"}
                )  # fmt: skip
    except LearnexitError as exc:
        items.append(
            {
                "customer": customer,
                "kind": "source_problem",
                "message": f"{customer}: cannot check the source: {exc.message}",
            }
        )
    return items


def _unclassified(
    settings: Settings, customer: str, cache: dict[str, list[str] | LearnexitError]
) -> list[str] | LearnexitError:
    try:
        url = settings.source_url_for(customer)
    except LearnexitError as exc:
        return exc
    key = url if settings.customer.tenancy == "shared" else f"{url}#{customer}"
    if key not in cache:
        try:
            with Source(settings, customer) as src:
                cache[key] = src.datamap.unclassified()
        except LearnexitError as exc:
            cache[key] = exc
    return cache[key]


def _disagreements(ledger: Ledger, customers: list[str] | None) -> list[dict[str, Any]]:
    """``status --check`` items of kind ``ledger_disagrees``: ledger records that disagree
    with their audit entries (every decision for the customer is refused until settled)."""
    items = []
    for customer, problems in all_problems(ledger).items():
        if customers is None or customer in customers:
            more = f" ({len(problems) - 1} more: see `learnexit audit --verify`)" if len(problems) > 1 else ""
            items.append({"customer": customer, "kind": "ledger_disagrees", "problems": problems,
                          "message": problems[0] + more})  # fmt: skip
    return items
