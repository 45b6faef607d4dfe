"""The account closure (design §1): the ``[closure]`` actions on the customer's rows.

It writes the source: every UPDATE runs in one source transaction, scoped to the
customer's own rows, and is recorded in the ledger while that transaction is still
open.  ``due_closures`` lists the customers whose closure is due (cron's
``purge --due`` runs them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..config import Settings
from ..errors import ConfigError, OperationalError, Refused
from ..ledger import records
from ..ledger.consistency import require_consistent
from ..ledger.store import Ledger, naive_utc
from ..source import Source, check_customer_key, describe_db_error
from ..source.keys import key_after, key_cols, key_in
from .cases import open_source
from .clock import resolve_now
from .facts import closure_due, purge_facts

__all__ = ["due_closures", "run_closure"]


def _customer_rows(src: Source, table_name: str, table: sa.Table) -> Any:
    """Where-clause: the customer's rows of ``table_name``, shared ones left out."""
    pred = src.predicate(table_name)
    info = src.datamap.info[table_name]
    if info.how == "owned_via":
        # A row of a global table (a person in two organisations) is also another
        # customer's: leave it alone when anything outside this customer references it.
        for via_table, via_col, target in info.via_sources:
            via = src.table(via_table)
            others = sa.select(via.c[via_col]).where(
                via.c[via_col].is_not(None), src.predicate(via_table).is_not(sa.true())
            )
            pred = sa.and_(pred, table.c[target].not_in(others))
    return pred


def _close_column(conn: Connection, src: Source, table_name: str, column: str, value: Any, batch: int) -> int:
    """Set ``column`` to ``value`` on the customer's rows that differ; rows changed.

    Rows of an ``owned_via`` table that another customer's rows reference too are
    shared and left unchanged.

    Keys are selected in batches and updated by key (MySQL refuses an UPDATE whose
    subquery reads the same table, which the ownership predicate may do).
    """
    table = src.table(table_name)
    pk = key_cols(table)
    if not pk:
        raise ConfigError(f"[closure] set.{table_name}.{column}: table {table_name} has no primary key")
    col = table.c[column]
    differs = sa.or_(col.is_(None), col != value)
    pred = _customer_rows(src, table_name, table)
    changed = 0
    last: tuple[Any, ...] | None = None
    while True:
        stmt = sa.select(*pk).where(pred, differs).order_by(*pk).limit(batch)
        if last is not None:
            stmt = stmt.where(key_after(pk, last))
        keys = [tuple(r) for r in conn.execute(stmt)]
        if not keys:
            break
        result = conn.execute(table.update().where(key_in(pk, keys)).where(differs).values({column: value}))
        changed += max(int(result.rowcount or 0), 0)
        last = keys[-1]
        if len(keys) < batch:
            break
    return changed


@contextmanager
def _source_write(src: Source) -> Iterator[Connection]:
    try:
        with src.engine.begin() as conn:
            yield conn
    except sa.exc.SQLAlchemyError as exc:
        raise OperationalError(f"account closure failed, nothing changed: {describe_db_error(exc)}") from None


def _require_owned(settings: Settings, src: Source) -> None:
    """ConfigError for a ``[closure]`` table the customer does not own."""
    for ref in settings.closure:
        table_name = ref.split(".", 1)[0]
        info = src.datamap.info.get(table_name)
        if info is None or not info.owned:
            status = info.status if info else "missing"
            raise ConfigError(
                f"{settings.label}: [closure] set.{ref}: table {table_name} is {status}, not owned by "
                "the customer; closure only changes the customer's own rows"
            )


def run_closure(settings: Settings, ledger: Ledger, customer: str, *, now: datetime | None = None) -> dict[str, int]:
    """Run the ``[closure]`` actions on this customer's rows; ``{"table.column": rows changed}``.

    All UPDATEs run in ONE source transaction, scoped by ``Source.predicate``; a table
    the customer does not own is a ConfigError (shared rows are never touched).
    Idempotent: rows already closed are left alone, so a second run changes nothing and
    records nothing.  The first run is always recorded (closures row + audit entry in one
    ledger transaction); a later run that finds re-opened rows records again.  Requires an
    active notice (Refused otherwise); the timing policy is the caller's (confirm,
    ``due_closures``).
    """
    check_customer_key(customer)
    at = resolve_now(settings, now)
    require_consistent(ledger, customer)
    rec = records.read_case(ledger, customer)
    if rec.active is None:
        raise Refused(f"no active notice for {customer}; the accounts stay open")
    already = bool(rec.current_closures)
    counts: dict[str, int] = {}
    if settings.closure:
        with open_source(settings, ledger, customer) as src:
            _require_owned(settings, src)
            try:
                with _source_write(src) as sconn:
                    for ref, value in settings.closure.items():
                        table_name, column = ref.split(".", 1)
                        counts[ref] = _close_column(sconn, src, table_name, column, value, settings.purge.batch_size)
                    if not (already and not any(counts.values())):
                        # Recorded while the source transaction is still open: when the
                        # ledger cannot take the record, the source change is rolled back.
                        _record_closure(ledger, customer, at, counts, already, bool(settings.closure))
                    return counts
            except OperationalError:
                ledger.record("closure", "closure.failed", customer, {"actions": sorted(settings.closure)})
                raise
    if already and not any(counts.values()):
        return counts
    _record_closure(ledger, customer, at, counts, already, bool(settings.closure))
    return counts


def _record_closure(
    ledger: Ledger, customer: str, at: datetime, counts: dict[str, int], already: bool, configured: bool
) -> None:
    with ledger.transaction() as conn:
        closure_id = records.add_closure(
            conn,
            customer=customer,
            identity_id=ledger.case_id(conn, customer),
            performed_at=naive_utc(at),
            rows=counts,
            recorded_by=ledger.actor,
        )
        ledger.append_audit(
            conn,
            "closure",
            "closure.performed" if not already else "closure.repeated",
            customer,
            {"closure_id": closure_id, "rows": counts, "configured": configured, "performed_at": naive_utc(at)},
        )


def due_closures(settings: Settings, ledger: Ledger, now: datetime | None = None) -> list[str]:
    """Customers whose account closure is due and not done (confirmed, E passed)."""
    at = resolve_now(settings, now)
    due = []
    for customer in records.known_customers(ledger):
        rec = records.read_case(ledger, customer)
        if rec.active is None or rec.current_closures:
            continue
        if purge_facts(rec.purges).purged_at is not None:
            continue
        when = closure_due(rec)
        if when is not None and at >= when:
            due.append(customer)
    return due
