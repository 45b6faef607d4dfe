"""The purge's view of the source: a :class:`~learnexit.source.Source` that still builds
its predicates once the customer's own row is gone (the purge deletes it last)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..config import Settings
from ..errors import Refused, UnknownCustomer
from ..ledger.store import Ledger
from ..source import PinnedRow, Source
from .history import root_deleted

__all__ = ["PurgeSource", "open_source"]


class PurgeSource(Source):
    """A Source that still builds its predicates once the customer's own row is gone.

    A purge deletes the customer table's row last; resuming, verifying and the later
    retention purge must still be able to ask "what is left of this customer?".  The
    case's pinned row decides: once the purge has deleted it, a row that now carries the
    same key (a new customer) is never taken for it.
    """

    def __init__(self, settings: Settings, customer: str, *, row_may_be_gone: bool, pinned: PinnedRow | None) -> None:
        self.row_may_be_gone = row_may_be_gone
        self.customer_row_gone = False
        super().__init__(settings, customer, pinned=pinned)
        if self.engine.dialect.name == "postgresql":
            # The purge runs many small, selective statements whose nested ownership
            # subqueries look expensive to the planner: PostgreSQL's JIT would spend a
            # second compiling each one (measured: 37 s instead of 3 s on a tiny schema).
            self.engine.dispose()
            sa.event.listen(self.engine, "connect", _jit_off)

    def __enter__(self) -> PurgeSource:
        return self

    def find_customer(self) -> Any:
        pinned = self.pinned
        if not (self.row_may_be_gone and pinned is not None and pinned.deleted):
            try:
                return super().find_customer()
            except (UnknownCustomer, Refused):
                if not self.row_may_be_gone:
                    raise
        # The row is gone (or the key names a newcomer): the predicates still name the
        # case's own row, by key and pinned primary key, and so match nothing new.
        self.customer_row_gone = True
        table = self.table(self.settings.customer.table or "")
        if pinned is not None:
            self.customer_pk = tuple(
                _as_column_type(col, value) for col, value in zip(table.primary_key.columns, pinned.pk, strict=False)
            )
        return _as_column_type(table.c[self.settings.customer.key], self.customer)

    def rebind(self, customer: str, pinned: PinnedRow | None) -> None:
        """Point this source at another case (``recheck``: the schema is reflected once
        per URL).  Pinned as deleted, it never looks the key up: the case's own row is
        the one with the key and the pinned primary key, whether it is there or not."""
        self.customer_row_gone = False
        self.repoint(customer, pinned)

    def root_present(self) -> bool:
        """Is the case's own customer row there (its key and its pinned primary key)?"""
        if self.tenancy != "shared":
            return True
        table = self.table(self.settings.customer.table or "")
        with self.engine.connect() as conn:
            stmt = sa.select(sa.func.count()).select_from(table).where(self.root_row(table))
            return bool(conn.execute(stmt).scalar())


def _as_column_type(column: Any, text: Any) -> Any:
    try:
        return column.type.python_type(text)
    except (NotImplementedError, TypeError, ValueError, ArithmeticError):
        return text


def _jit_off(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET jit = off")
    finally:
        cursor.close()
    dbapi_connection.commit()


def open_source(settings: Settings, ledger: Ledger, customer: str, *, row_may_be_gone: bool) -> PurgeSource:
    """The purge's source for ``customer``, pinned to its case's row when the ledger pinned one."""
    case = ledger.case_of(customer)
    pinned = None
    if case is not None and case["row_pk"] is not None:
        pinned = PinnedRow(case["row_pk"], deleted=root_deleted(settings, ledger, customer))
    return PurgeSource(settings, customer, row_may_be_gone=row_may_be_gone, pinned=pinned)
