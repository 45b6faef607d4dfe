"""The contract terms of a notice: from the command's flags or the source's contract table."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from .. import contract
from ..config import Settings
from ..contract import Timeline
from ..errors import BadInput
from ..source import Source

__all__ = ["ContractTerms", "resolve_terms", "timeline_for"]


@dataclass(frozen=True)
class ContractTerms:
    """How the contract period was found: from flags or the source's contract table."""

    source: str  # "flags" | "contract table"
    start: date | None = None
    term_months: int | None = None
    period_end: date | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_date(value: Any, what: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return contract.parse_date(value[:10] if len(value) > 10 and value[10] in "T " else value, what=what)
    raise BadInput(f"{what} is {type(value).__name__}, not a date")


def _from_flags(
    settings: Settings, start: date | None, term_months: int | None, period_end: date | None
) -> ContractTerms | None:
    """The terms the flags give, None when they give none."""
    if start is not None and period_end is not None:
        raise BadInput("give either --contract-start (with --term-months) or --period-end, not both")
    if start is not None:
        return ContractTerms("flags", start=start, term_months=term_months or settings.contract.term_months)
    if period_end is not None:
        return ContractTerms("flags", period_end=period_end, term_months=term_months or settings.contract.term_months)
    if term_months is not None:
        raise BadInput("--term-months needs --contract-start DATE (or --period-end DATE)")
    return None


def _customer_rows(settings: Settings, src: Source, table: sa.Table) -> Any:
    """Where-clause: the contract table's rows of the customer."""
    c, cust = settings.contract, settings.customer
    assert c.customer_column is not None
    if src.tenancy == "database":
        return sa.true()
    edge = next(
        (
            e
            for e in src.datamap.edges
            if e.child == c.table and e.child_cols == (c.customer_column,) and e.parent == cust.table
        ),
        None,
    )
    if edge is not None:
        ctab = src.table(cust.table or "")
        sub = sa.select(ctab.c[edge.parent_cols[0]]).where(ctab.c[cust.key] == src.customer_value)
        return table.c[c.customer_column].in_(sub)
    return table.c[c.customer_column] == src.customer_value  # the column holds the customer key itself


def _stored_terms(settings: Settings, src: Source) -> list[tuple[date, int]]:
    """(start, term months) of every contract row of the customer, in the source."""
    c = settings.contract
    assert c.table is not None and c.start_column is not None
    table = src.table(c.table)
    cond = _customer_rows(settings, src, table)
    cols = [table.c[c.start_column]]
    if c.term_column:
        cols.append(table.c[c.term_column])
    with src.snapshot() as conn:
        try:
            rows = conn.execute(sa.select(*cols).where(cond)).all()
        except (ValueError, TypeError, ArithmeticError):  # SQLite keeps any text in a DATE column
            raise BadInput(
                f"{c.table}.{c.start_column}: the stored contract start of {src.customer!r} is not a valid "
                "date: correct it, or give --contract-start DATE --term-months N or --period-end DATE"
            ) from None
    if not rows:
        raise BadInput(
            f"no row for {src.customer!r} in the contract table {c.table}: give --contract-start DATE "
            "--term-months N or --period-end DATE"
        )
    found: list[tuple[date, int]] = []
    for row in rows:
        if row[0] is None:
            continue
        term = c.term_months
        if c.term_column and row[1] is not None:
            try:
                term = int(row[1])
            except (TypeError, ValueError):
                raise BadInput(f"{c.table}.{c.term_column} is not a whole number of months") from None
        found.append((_as_date(row[0], f"{c.table}.{c.start_column}"), term))
    return found


def resolve_terms(
    settings: Settings,
    src: Source,
    received: date,
    *,
    start: date | None = None,
    term_months: int | None = None,
    period_end: date | None = None,
) -> ContractTerms:
    """The contract terms for a notice: the flags when given, else the contract table.

    ``src`` is an open :class:`learnexit.source.Source` for the customer.  With the
    contract table, the customer's row whose start is the latest on or before
    ``received`` is used (else the earliest).  Raises BadInput when no terms are found.
    """
    flags = _from_flags(settings, start, term_months, period_end)
    if flags is not None:
        return flags
    c = settings.contract
    if not c.table or not c.customer_column or not c.start_column:
        raise BadInput(
            f"no contract terms for {src.customer!r}: give --contract-start DATE --term-months N or "
            "--period-end DATE, or configure [contract] table/customer_column/start_column"
        )
    found = _stored_terms(settings, src)
    if not found:
        raise BadInput(f"the contract row for {src.customer!r} in {c.table} has no start date")
    found.sort()
    earlier = [f for f in found if f[0] <= received]
    chosen = earlier[-1] if earlier else found[0]
    return ContractTerms("contract table", start=chosen[0], term_months=chosen[1])


def timeline_for(settings: Settings, received: date, terms: ContractTerms) -> Timeline:
    """The timeline a notice received on ``received`` under ``terms`` sets."""
    c = settings.contract
    return contract.compute_timeline(
        received,
        start=terms.start,
        term_months=terms.term_months,
        period_end=terms.period_end,
        notice_days=c.notice_days,
        export_window_days=c.export_window_days,
        timezone=c.timezone,
    )
