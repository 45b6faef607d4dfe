"""Plan first, and the plan is honest: :func:`plan_purge` only reads.

Per owned table, children first, it counts the rows that go, the rows retained under a
legal basis (and the parent rows those reference, which are kept minimised), and, for
``owned_via`` tables (people), the rows kept because someone outside the customer's
data still references them.  It lists media files and export packages, and every
refusal: unclassified tables, an active hold, a running export, not yet due, no notice.
A plan also says what kind of purge is next: ``full``, ``retention`` (rows kept under a
legal basis whose time has come), a resumed unfinished one, or ``none``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from .. import contract
from ..config import Settings
from ..contract import Facts
from ..errors import BadInput
from ..ledger.consistency import require_consistent
from ..ledger.store import Ledger, aware
from ..offboarding import clock
from ..offboarding.cases import require_customer
from ..offboarding.facts import active_hold, customer_facts
from ..source import Edge, Source, check_customer_key, cycle_can_break, unbreakable_cycle_note
from ..source.keys import chunks, key_cols, key_in, tables_with_rows
from .conditions import count_rows, db_error, flag_counts, not_true
from .exports import exports_running
from .history import (
    candidate_keys,
    earlier_keys,
    export_rows,
    pending_retention,
    purge_rows,
    retention_due_day,
    stored_name,
)
from .journal import RETAINED
from .keys import CHUNK, decode_keys
from .media_refs import plan_media
from .results import PurgePlan, TablePlan
from .scope import Scope
from .source import open_source

__all__ = ["aware_now", "back_edges", "fill_plan", "plan_purge"]


def aware_now(settings: Settings, now: datetime | None) -> datetime:
    """``now`` in UTC (BadInput when naive), or the clock's now."""
    if now is None:
        return clock.now(settings.contract.timezone)
    if now.tzinfo is None:
        raise BadInput("now must be timezone-aware")
    return now.astimezone(UTC)


def plan_purge(
    settings: Settings,
    ledger: Ledger,
    customer: str,
    now: datetime | None = None,
    force_reason: str | None = None,
    *,
    count: bool = True,
) -> PurgePlan:
    """What purging ``customer`` now would do; reads only.  Refusals are in ``plan.refusals``.

    ``force_reason`` (``--force --reason``) lifts the "not yet due" refusal, nothing else:
    a hold, unclassified tables and a missing notice always refuse.

    ``count=False`` checks without counting: the same refusals and errors (an unknown
    customer, a hold, not due, unclassified tables, a cycle of references that cannot be
    ordered), but no row counts, media or notes — what ``purge --yes`` needs to refuse
    before it takes the lock, while the counted plan is made once, under the lock.
    """
    check_customer_key(customer)
    settings = settings.for_customer(customer)  # ({customer} in [media] root)
    if force_reason is not None:
        force_reason = " ".join(force_reason.split())
        if not force_reason:
            raise BadInput("--reason must say why the purge is forced")
    now = aware_now(settings, now)
    require_consistent(ledger, customer)  # decide on records that agree with the audit chain
    facts = customer_facts(ledger, customer)
    purges = purge_rows(ledger, customer)
    plan = PurgePlan(
        customer=customer,
        name=customer,
        kind="full",
        tenancy=settings.customer.tenancy,
        now=now,
        backup_note=settings.purge.backup_note,
        timezone=settings.contract.timezone,
    )
    _refuse_while_busy(plan, settings, ledger)
    tl = facts.timeline
    if tl is None:
        plan.refusals.append(f"no notice is recorded for {customer}; record it first (learnexit notice)")
        require_customer(settings, ledger, customer)
        if count and not purges:  # the dry run still shows what a purge would delete
            _count_without_notice(plan, settings, ledger, customer, now)
        return plan
    plan.termination_date = tl.termination_date
    plan.purge_due_at = contract.effective_purge_due_at(facts)
    unfinished = purges[-1] if purges and purges[-1]["status"] in ("running", "failed") else None
    full_done = any(p["kind"] == "full" for p in purges if p["status"] == "done")
    expire_all = _decide_kind(plan, settings, facts, purges, force_reason)
    if expire_all is None:
        return plan
    if settings.closure and facts.closed_at is None and plan.kind == "full":
        plan.closure_pending = [f"{ref} = {value!r}" for ref, value in settings.closure.items()]
    plan.exports = [e for e in export_rows(ledger, customer) if e.get("path") and e["status"] != "removed"]
    row_may_be_gone = full_done or unfinished is not None
    with open_source(settings, ledger, customer, row_may_be_gone=row_may_be_gone) as src:
        plan.name = src.customer_name() if not src.customer_row_gone else stored_name(purges, customer)
        unclassified = src.datamap.unclassified()
        if unclassified:
            plan.refusals.append(
                f"unclassified tables: {', '.join(unclassified)}; classify each in [tables] "
                "(owned_via, shared = true, or a [[relations]] entry) before purging"
            )
            return plan
        scope = Scope(settings, src, tl.termination_date, now, expire_all=expire_all)
        extra = earlier_keys(ledger, customer, RETAINED, None) if plan.kind == "retention" else {}
        if unfinished is not None:
            for name, keys in candidate_keys(ledger, int(unfinished["id"])).items():
                extra.setdefault(name, set()).update(keys)
        if count:
            fill_plan(plan, settings, src, scope, extra, ledger)
        else:
            plan.refusals += back_edges(settings, src, scope)[1]
    return plan


def _refuse_while_busy(plan: PurgePlan, settings: Settings, ledger: Ledger) -> None:
    """A legal hold, or an export of the customer running, refuses the purge."""
    customer = plan.customer
    hold = active_hold(ledger, customer)
    if hold is not None:
        plan.refusals.append(
            f"{customer} is on legal hold since {aware(hold['placed_at']):%Y-%m-%d} (placed by "
            f"{hold['placed_by']}); release it first (learnexit release {customer})"
        )
    running = exports_running(settings, ledger, customer)
    if running:
        plan.refusals.append(
            f"an export of {customer} is running (export #{running[0]['id']}, started "
            f"{aware(running[0]['started_at']):%Y-%m-%d %H:%MZ}); purge when it has finished"
        )


def _decide_kind(
    plan: PurgePlan, settings: Settings, facts: Facts, purges: list[dict[str, Any]], force_reason: str | None
) -> bool | None:
    """The plan's kind (resume, full, retention, none) and the refusals of its timing;
    whether every retention has expired (None: the plan is complete, nothing to count)."""
    customer, now, tl = plan.customer, plan.now, facts.timeline
    assert tl is not None
    unfinished = purges[-1] if purges and purges[-1]["status"] in ("running", "failed") else None
    done = [p for p in purges if p["status"] == "done"]
    if unfinished is not None:
        plan.kind = unfinished["kind"]
        plan.resume_of = int(unfinished["id"])
        plan.forced_reason = unfinished["forced_reason"] or force_reason
        plan.notes.append(
            f"purge #{unfinished['id']} ({unfinished['kind']}) started {aware(unfinished['started_at']):%Y-%m-%d %H:%MZ} "
            f"is {unfinished['status']}; this run resumes it"
        )
        return plan.kind == "retention" and bool(unfinished["forced_reason"])
    if facts.withdrawn:
        plan.refusals.append(f"the notice of {customer} was withdrawn; nothing is to be purged")
        return None
    if not any(p["kind"] == "full" for p in done):
        due = plan.purge_due_at
        assert due is not None
        if now < due:
            if force_reason:
                plan.forced_reason = force_reason
                plan.notes.append(f"forced before the purge is due ({due:%Y-%m-%d %H:%MZ}): {force_reason}")
            else:
                if contract.waiver_counts(facts):
                    why = f"the contract runs through {tl.termination_date.isoformat()}; the export window is waived"
                else:
                    why = f"export window open through {tl.export_deadline.isoformat()}"
                plan.refusals.append(
                    f"the purge of {customer} is not due until {due:%Y-%m-%d %H:%MZ} ({why}); "
                    "use --force --reason TEXT to purge earlier"
                )
        return False
    return _retention_kind(plan, settings, done[-1], force_reason)


def _retention_kind(plan: PurgePlan, settings: Settings, last: dict[str, Any], force_reason: str | None) -> bool | None:
    """After the full purge: a retention purge when rows are retained (due or forced),
    else nothing (None)."""
    customer = plan.customer
    pending = pending_retention(last)
    plan.last_purge = {
        "id": last["id"],
        "kind": last["kind"],
        "finished_at": aware(last["finished_at"]),
        "certificate": last["certificate"],
        "retained": pending,
    }
    if not pending:
        plan.kind = "none"
        plan.notes.append(
            f"{customer} was purged on {aware(last['finished_at'] or last['started_at']):%Y-%m-%d}; nothing is left"
        )
        return None
    plan.kind = "retention"
    due_day = retention_due_day(pending)
    today = contract.today(settings.contract.timezone, plan.now)
    if due_day is None or today < due_day:
        if force_reason:
            plan.forced_reason = force_reason
            plan.notes.append(f"retention purge forced before it is due: {force_reason}")
            return True
        until = max(str(info["until"]) for info in pending.values())
        when = due_day.isoformat() if due_day else "an unknown date"
        plan.refusals.append(
            f"{customer} was purged; the retained rows ({', '.join(sorted(pending))}) are kept until "
            f"{until} and the retention purge is not due before {when}"
        )
    return False


def _count_without_notice(plan: PurgePlan, settings: Settings, ledger: Ledger, customer: str, now: datetime) -> None:
    """Count the plan of a customer without a notice (it stays refused): what a purge would
    delete and keep if the contract ended today, for ``purge CUSTOMER --dry-run``."""
    today = contract.today(settings.contract.timezone, now)
    plan.notes.append(
        f"no notice, so no termination date: counted as if the contract ended today ({today.isoformat()})"
    )
    with open_source(settings, ledger, customer, row_may_be_gone=False) as src:
        plan.name = src.customer_name()
        unclassified = src.datamap.unclassified()
        if unclassified:
            plan.refusals.append(f"unclassified tables: {', '.join(unclassified)}; classify each in [tables]")
            return
        if settings.closure:
            plan.closure_pending = [f"{ref} = {value!r}" for ref, value in settings.closure.items()]
        fill_plan(plan, settings, src, Scope(settings, src, today, now, expire_all=False), {}, ledger)


def back_edges(settings: Settings, src: Source, scope: Scope) -> tuple[list[Edge], list[str]]:
    """Declared references between the customer's tables that point "forwards" in the
    deletion order (they close a cycle), and refusals.  A nullable one is broken by
    setting it NULL in the rows to delete first; a NOT NULL one cannot be, and the purge
    refuses before it starts (``inspect`` and ``status --check`` say so from the notice)."""
    edges, refusals = [], []
    for e in src.datamap.back_edges():
        if not (e.declared and e.child in scope.owned and e.parent in scope.owned):
            continue
        if cycle_can_break(src, e):
            edges.append(e)
        else:
            refusals.append(unbreakable_cycle_note(src, e))
    return edges, refusals


def fill_plan(
    plan: PurgePlan, settings: Settings, src: Source, scope: Scope, extra: dict[str, set[str]], ledger: Ledger
) -> None:
    """Count ``plan`` under ``scope`` (``extra``: owned_via keys earlier purges recorded)."""
    unlink, refusals = back_edges(settings, src, scope)
    plan.refusals += refusals
    plan.unlink = [f"{e.child}.{','.join(e.child_cols)}" for e in unlink]
    try:
        with src.snapshot() as conn:
            scope.settle(conn)
            holding = tables_with_rows(conn, [src.table(t) for t in scope.children_first])
            sided = {t: _sided_counts(conn, src, scope, t) for t in scope.children_first if t in holding}
            counted = {t: figures["contested"] for t, figures in sided.items() if figures is not None}
            for contested in src.contested_report(conn, holding, counted):
                plan.contested[contested.table] = contested.rows
                plan.notes.append(contested.note())
            for t in scope.children_first:
                info = src.datamap.info[t]
                tp = TablePlan(table=t, how=info.how or "", delete=0)
                if t in scope.via:
                    tp.strategy = "only those nothing outside the customer's data still references"
                elif scope.self_edges.get(t):
                    edge = scope.self_edges[t][0]
                    tp.strategy = f"deepest rows first, by {t}.{','.join(edge.child_cols)}"
                if t in holding:  # (an empty table: nothing to count)
                    _count_table(plan, tp, conn, src, scope, extra, sided.get(t))
                if tp.retained:
                    tp.until, tp.legal_basis, tp.reason = scope.retention_info(t)
                    if tp.reason is not None:
                        values, _dirty = scope.personal(t)
                        tp.minimise = tuple(values)
                        if not values:
                            plan.notes.append(
                                f"{t}: {tp.retained} retained rows keep all their columns "
                                f"(no personal_columns configured in [tables.{t}])"
                            )
                plan.tables.append(tp)
            media = settings.media
            if media is not None and media.table in scope.owned:
                plan_media(plan, settings, src, scope, ledger, conn)
    except sa.exc.SQLAlchemyError as exc:
        raise db_error("cannot plan the purge", exc) from None
    plan.notes += scope.notes


def _sided_counts(conn: Any, src: Source, scope: Scope, t: str) -> dict[str, int] | None:
    """For a table owned through references (not people): its contested rows and the
    plan's three counts of the customer's rows, from one scan (None for other tables).

    The rows whose references lead to this customer are read once, each marked by side
    (the customer's, contested, or undecided: a reference that is unknown) and, for the
    customer's, whether it is retained and whether it is kept for others.  Counted one by
    one, an activity log of a million rows was read four times."""
    sides = src.sides(t)
    if sides is None or t in scope.via:
        return None
    mine, elsewhere = sides
    ret, held = scope.ret(t), scope.held(t)
    table = src.table(t)
    # (the customer's: "leads elsewhere" is false, not unknown — as in the predicate)
    columns = [sa.case((sa.not_(elsewhere), 1), (elsewhere, 2), else_=0).label("le_side")]
    for name, cond in (("le_ret", ret), ("le_held", held)):
        columns.append(sa.case((cond, 1), else_=0).label(name) if cond is not None else sa.literal(0).label(name))
    rows = sa.select(*columns).select_from(table).where(mine).subquery("le_rows")
    stmt = sa.select(rows.c.le_side, rows.c.le_ret, rows.c.le_held, sa.func.count()).group_by(
        rows.c.le_side, rows.c.le_ret, rows.c.le_held
    )
    out = {"contested": 0, "delete": 0, "retained": 0, "kept_shared": 0}
    for side, r, h, n in conn.execute(stmt):
        if side == 2:
            out["contested"] += n
        elif side == 1:
            # (as ``_count_table`` counts them: the doomed rows are neither retained nor
            # held, kept_shared are held and not retained)
            if r:
                out["retained"] += n
            elif h:
                out["kept_shared"] += n
            else:
                out["delete"] += n
    return out


def _count_table(
    plan: PurgePlan,
    tp: TablePlan,
    conn: Any,
    src: Source,
    scope: Scope,
    extra: dict[str, set[str]],
    sided: dict[str, int] | None,
) -> None:
    """Count one table that holds rows into ``tp`` (and its notes into ``plan``;
    ``sided``: its counts from ``_sided_counts``, where it has them)."""
    t = tp.table
    table = src.table(t)
    keep = scope.ret(t)
    if t in scope.via:
        pk = key_cols(table)
        other = scope.other_ref(t)
        pred = src.predicate(t)
        # kept_shared: pred and other; retained: pred, not other, keep
        flags = flag_counts(conn, table, [pred], other, keep)
        tp.kept_shared = sum(n for (o, _k), n in flags.items() if o)
        tp.retained = sum(n for (o, k), n in flags.items() if not o and k)
        total = sum(flags.values())
        keys = decode_keys(extra.get(t, set()))
        for chunk in chunks(keys, CHUNK):
            flags = flag_counts(conn, table, [key_in(pk, chunk), not_true(pred)], other, keep)
            total += sum(flags.values())
            tp.kept_shared += sum(n for (o, _k), n in flags.items() if o)
            tp.retained += sum(n for (o, k), n in flags.items() if not o and k)
        tp.delete = total - tp.kept_shared - tp.retained
        return
    if sided is not None:
        tp.delete, tp.retained, tp.kept_shared = sided["delete"], sided["retained"], sided["kept_shared"]
    else:
        tp.delete = count_rows(conn, table, scope.doomed(t))
        tp.retained = count_rows(conn, table, keep) if keep is not None else 0
        shared = scope.shared_only(t)
        tp.kept_shared = count_rows(conn, table, shared) if shared is not None else 0
    if tp.kept_shared:
        values, _dirty = scope.personal(t)
        plan.notes.append(
            f"{t}: {tp.kept_shared} rows stay because {', '.join(scope.held_by(t))} "
            "(outside the customer's data) still reference them" + (f"; {', '.join(values)} blanked" if values else "")
        )
