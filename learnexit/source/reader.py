"""``Source``: one customer's view of the source database — its tables classified, the
customer's row found, the customer's rows selected, counted and streamed.  It reads the
primary (``[source] url``) unless opened with ``reads="replica"`` (the export, when
``[source] read_url`` is set); the customer's row is then looked up on the primary too, and
the replica must hold the same row."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from ..config import Settings
from ..errors import ConfigError, Refused, UnknownCustomer
from .customer import (
    CustomerRow,
    PinnedRow,
    check_customer_key,
    check_database_key,
    find_customer_row,
    key_text,
    pk_label,
    pk_text,
)
from .datamap import DataMap, Edge
from .keysets import KeySets
from .naming import configured_name
from .ownership import ContestedTable, Ownership
from .reflect import check_source_file, make_engine, reflect_source, reflect_table
from .snapshot import Reads, SnapshotReader


class Source(SnapshotReader):
    """One customer's view of the source database."""

    def __init__(
        self, settings: Settings, customer: str, *, pinned: PinnedRow | None = None, reads: Reads = "primary"
    ) -> None:
        self.settings = settings
        self.customer = check_customer_key(customer)
        self.tenancy = settings.customer.tenancy
        if self.tenancy == "database":
            check_database_key(customer)
        replica = reads == "replica" and settings.source_read_url is not None
        url = settings.source_read_url_for(customer) if replica else settings.source_url_for(customer)
        check_source_file(settings, url, customer, "read_url" if replica else "url")
        super().__init__(make_engine(url), url, "replica" if replica else "primary")
        self.metadata = reflect_source(self.engine, self.url, settings, customer)
        self.datamap = DataMap(settings, self.metadata)
        self.pinned = pinned
        self.customer_pk: tuple[Any, ...] | None = None
        self._customer_value: Any = None
        self.key_sets = KeySets(self.engine) if KeySets.supported(self.engine) else None
        self.ownership = Ownership(
            self.datamap, self.root_row, flat=self.engine.dialect.name == "sqlite", key_sets=self.key_sets
        )
        if self.tenancy == "shared":
            self._customer_value = self.find_customer()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def snapshot(self, imported: str | None = None) -> Iterator[Connection]:
        """``SnapshotReader.snapshot``, with the key sets filled again inside it."""
        with super().snapshot(imported) as conn:
            if self.key_sets is not None:
                self.key_sets.read_snapshot(conn, True)
            try:
                yield conn
            finally:
                if self.key_sets is not None:
                    self.key_sets.read_snapshot(conn, False)

    def refresh_key_sets(self) -> None:
        """The key sets held in temporary tables are filled again at their next use (the
        purge calls this before each pass: rows written meanwhile count)."""
        if self.key_sets is not None:
            self.key_sets.refresh()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the customer ---------------------------------------------------------

    def find_customer(self) -> Any:
        """The customer's key as stored, from its row, found by the exact text of the key
        (rule 1 of ownership); sets ``customer_pk``.  A subclass may override it (the purge
        reads a case whose row it has deleted).  On a read replica the row is the one the
        key names on the primary, checked against the case's pin there, and the replica
        must hold that same row."""
        cust = self.settings.customer
        table = self.table(cust.table or "")
        if self.reads == "replica":
            primary = self._primary_row(table)
            try:
                found = find_customer_row(self.engine, table, table.c[cust.key], self.customer)
            except UnknownCustomer:
                found = None
            if found is None or found.pk_text != primary.pk_text:
                raise Refused(
                    f"the read replica ([source] read_url) does not hold the {cust.table} row "
                    f"({pk_label(table, primary.pk)}) customer key {self.customer!r} names on the primary: "
                    "the replica is behind or not a copy of the primary; nothing was done"
                )
        else:
            found = find_customer_row(self.engine, table, table.c[cust.key], self.customer)
            self._check_pin(table, found)
        self.customer_pk = found.pk
        return found.key

    def _check_pin(self, table: sa.Table, found: CustomerRow) -> None:
        """Refused when the key names another row than the one the case was opened for."""
        if self.pinned is not None and found.pk_text != self.pinned.pk_text:
            raise Refused(
                f"customer key {self.customer!r} now names another {table.name} row "
                f"({pk_label(table, found.pk)}) than the one this offboarding case was opened for "
                f"({pk_label(table, self.pinned.pk)}); nothing was done"
            )

    def _primary_row(self, table: sa.Table) -> CustomerRow:
        """The customer's row on the primary (only the customer table is reflected there),
        checked against the case's pin."""
        url = self.settings.source_url_for(self.customer)
        check_source_file(self.settings, url, self.customer)
        engine = make_engine(url)
        try:
            on_primary = reflect_table(engine, url, self.settings, table.name)
            if self.settings.customer.key not in on_primary.c:
                raise ConfigError(f"{table.name}.{self.settings.customer.key} does not exist in the primary")
            found = find_customer_row(engine, on_primary, on_primary.c[self.settings.customer.key], self.customer)
        finally:
            engine.dispose()
        self._check_pin(on_primary, found)
        return found

    def repoint(self, customer: str, pinned: PinnedRow | None) -> None:
        """Make this the source of another customer (or case) of the same database: the
        schema stays reflected, the customer's row is looked up again and every condition
        built for the previous one is forgotten."""
        self.customer = customer
        self.pinned = pinned
        self.customer_pk = None
        self.forget_conditions()  # every condition built so far names the previous case's row
        if self.tenancy == "shared":
            self._customer_value = self.find_customer()

    @property
    def customer_row_pk(self) -> str | None:
        """The customer row's primary key as the ledger pins it (None: database tenancy)."""
        return pk_text(self.customer_pk) if self.customer_pk is not None else None

    @property
    def customer_value(self) -> Any:
        """The customer's key as stored (an int for an integer key column)."""
        return self._customer_value

    def root_row(self, table: sa.Table) -> ColumnElement[bool]:
        """The customer's own row of the customer table: its key and (once pinned) its
        primary key."""
        cond = [table.c[self.settings.customer.key] == self._customer_value]
        pk = list(table.primary_key.columns)
        if self.customer_pk is not None and pk:
            cond += [col == value for col, value in zip(pk, self.customer_pk, strict=True)]
        return sa.and_(*cond)

    def customer_name(self) -> str:
        """The organisation's display name (the key when none is configured)."""
        cust = self.settings.customer
        if cust.name or cust.name_query:
            return configured_name(self.settings, self.engine, self.customer)
        if self.tenancy != "shared" or not cust.name_column:
            return self.customer
        table = self.table(cust.table or "")
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(table.c[cust.name_column]).where(self.root_row(table))).scalar()
        return str(value) if value is not None else self.customer

    def sub_organisations(self, conn: Connection) -> list[str]:
        """Keys of the customer table's rows under the customer's own (sub-organisations)."""
        cust = self.settings.customer
        if self.tenancy != "shared" or not self.datamap.info[cust.table or ""].self_edges:
            return []
        table = self.table(cust.table or "")
        stmt = sa.select(table.c[cust.key]).where(self.predicate(table.name), sa.not_(self.root_row(table)))
        return sorted(key_text(v) for (v,) in conn.execute(stmt.limit(1000)))

    # -- tables and predicates (``Ownership``) ---------------------------------

    def table(self, name: str) -> sa.Table:
        return self.datamap.table(name)

    def owned_tables(self) -> list[str]:
        """Owned tables, parents before children."""
        return self.datamap.owned()

    def predicate(self, name: str) -> ColumnElement[bool]:
        """SQL condition selecting exactly this customer's rows of ``name``.

        A row is the customer's when every ownership reference of it that is set leads
        to this customer (rule 3): rows whose references also lead elsewhere are
        *contested* (``contested``) and belong to no one until the config settles it."""
        return self.ownership.predicate(name)

    def keyed(self, name: str, cond: ColumnElement[bool], label: str) -> ColumnElement[bool]:
        """On SQLite and MariaDB, ``cond`` as "the key is in a set of keys" held in a
        temporary table (``KeySets``): conditions built from other conditions stay one
        level deep however the references run.  PostgreSQL keeps them inline."""
        return self.ownership.keyed(name, cond, label)

    def not_owned(self, name: str, row: Any) -> ColumnElement[bool]:
        """``row`` (the table ``name`` or an alias of it) is not one of the customer's rows."""
        return self.ownership.not_owned(name, row)

    def forget_conditions(self) -> None:
        """Drop every condition built so far (they name the customer's row): for a Source
        re-pointed at another customer of the same database."""
        self.ownership.forget()

    def contested(self, name: str) -> ColumnElement[bool] | None:
        """Rows of ``name`` whose references lead to this customer and to another one."""
        return self.ownership.contested(name)

    def leads_elsewhere(self, name: str, edge: Edge) -> ColumnElement[bool]:
        """Rows of ``name`` whose reference ``edge`` leads to a customer other than this one."""
        return self.ownership.leads_elsewhere(name, edge)

    def contested_report(
        self, conn: Connection, holding: set[str] | None = None, counted: Mapping[str, int] | None = None
    ) -> list[ContestedTable]:
        """Every table with contested rows, and which of its references lead elsewhere
        (``holding``: only these tables hold rows, the others are not looked at;
        ``counted``: tables whose contested rows were counted already, in this snapshot)."""
        return self.ownership.contested_report(conn, holding, counted)

    def sides(self, name: str) -> tuple[ColumnElement[bool], ColumnElement[bool]] | None:
        """A table owned through references: (rows leading to this customer, rows leading
        to another); the customer's rows are the first and not the second, contested rows
        both (see ``Ownership.sides``).  None for other tables."""
        return self.ownership.sides(name)

    # -- the customer's rows ----------------------------------------------------

    def owned_select(self, name: str) -> sa.Select[Any]:
        """This customer's rows of ``name`` in primary-key order."""
        table = self.table(name)
        order = list(table.primary_key.columns) or list(table.columns)
        return sa.select(table).where(self.predicate(name)).order_by(*order)

    def count(self, conn: Connection, name: str) -> int:
        table = self.table(name)
        stmt = sa.select(sa.func.count()).select_from(table).where(self.predicate(name))
        return int(conn.execute(stmt).scalar() or 0)

    def counts(self) -> dict[str, int]:
        with self.snapshot() as conn:
            return {t: self.count(conn, t) for t in self.owned_tables()}

    def stream(self, conn: Connection, name: str, batch_size: int = 5000) -> Iterator[list[sa.Row[Any]]]:
        """This customer's rows of ``name`` in batches, with a server-side cursor."""
        result = conn.execution_options(yield_per=batch_size).execute(self.owned_select(name))
        try:
            yield from (list(part) for part in result.partitions(batch_size))
        finally:
            result.close()


def cycle_can_break(src: Source, edge: Edge) -> bool:
    """A reference closing a cycle can be broken by the purge when it is not a declared
    foreign key of the customer's tables, or when its columns may be NULL."""
    info = src.datamap.info
    if not edge.declared or not (info[edge.child].owned and info[edge.parent].owned):
        return True
    return all(src.table(edge.child).c[c].nullable for c in edge.child_cols)


def unbreakable_cycle_note(src: Source, edge: Edge) -> str:
    return (
        f"cycle of references: {edge.label} closes a cycle and {edge.child}.{','.join(edge.child_cols)} is "
        f"NOT NULL — the purge will refuse; make that foreign key DEFERRABLE or the column nullable"
    )
