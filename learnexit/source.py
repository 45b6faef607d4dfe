"""The source LMS: reflect it, work out what belongs to a customer, stream those rows.

Ownership (design §2, tenancy "shared"): the customer table's row is the root.  A
table is *owned* when a chain of references (declared foreign keys plus the config's
``[[relations]]``) leads from it to the customer table through owned tables; a row is
owned when its chain leads to the customer's row.  ``owned_via`` tables (people kept in
a global table) are owned row by row when one of the customer's rows references them;
ownership never flows *out* of them.  ``shared = true`` wins over discovery.  Every
other table is *unclassified*.

Row sets are expressed as SQL predicates (``col IN (SELECT ...)``) evaluated by the
database, never as key lists in Python; self-references become recursive CTEs.
"""

from __future__ import annotations

import json
import os
import re
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.sql.elements import ColumnElement

from . import text_decode
from .config import Settings, mask_url, scrub
from .errors import BadInput, ConfigError, OperationalError, Refused, UnknownCustomer
from .valuefree import without_values

# What a customer key may look like when it is spliced into a URL (tenancy
# "database"): no path separators, no dots at the start, nothing a shell or a URL
# would interpret.
_URL_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
MAX_KEY_LENGTH = 200


def check_customer_key(customer: str) -> str:
    """Reject keys no customer can have, before anything touches a database."""
    if not customer or not customer.strip():
        raise BadInput("customer key is empty")
    if len(customer) > MAX_KEY_LENGTH:
        raise BadInput(f"customer key is {len(customer)} characters long (at most {MAX_KEY_LENGTH})")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in customer):
        raise BadInput(f"customer key {customer[:40]!r} contains control characters")
    return customer


@dataclass(frozen=True)
class Edge:
    """``child.child_cols`` references ``parent.parent_cols``."""

    child: str
    child_cols: tuple[str, ...]
    parent: str
    parent_cols: tuple[str, ...]
    declared: bool = True
    # (column, values) pairs: a child column holding one of its values means "no reference"
    sentinels: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    @property
    def is_self(self) -> bool:
        return self.child == self.parent

    @property
    def label(self) -> str:
        return f"{self.child}.{','.join(self.child_cols)} → {self.parent}.{','.join(self.parent_cols)}"


@dataclass
class TableInfo:
    name: str
    status: str  # owned | shared | unclassified
    how: str | None = None  # customer | chain | owned_via | database | None
    via: str = ""
    depth: int | None = None
    edges: list[Edge] = field(default_factory=list)  # edges used for the row predicate
    self_edges: list[Edge] = field(default_factory=list)  # self-references (trees), all followed
    via_sources: list[tuple[str, str, str]] = field(default_factory=list)  # (table, col, target col)
    note: str | None = None

    @property
    def owned(self) -> bool:
        return self.status == "owned"

    @property
    def self_edge(self) -> Edge | None:
        return self.self_edges[0] if self.self_edges else None


def _install_sqlite_transactions(engine: Engine, begin: str = "BEGIN") -> None:
    """Make pysqlite honour BEGIN, so a read transaction is a real snapshot."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)


def make_engine(url: str, *, what: str = "source", sqlite_begin: str = "BEGIN") -> Engine:
    """An engine for ``url``.  ``sqlite_begin`` = "BEGIN IMMEDIATE" makes every SQLite
    transaction take the write lock at once (the ledger: writers queue, never deadlock)."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.drivername.startswith("postgresql"):
        # JIT compiles the nested ownership predicates for seconds per query: off.
        kwargs["connect_args"] = {"connect_timeout": 10, "options": "-c jit=off"}
    elif parsed.drivername.startswith("mysql"):
        kwargs["connect_args"] = {"connect_timeout": 10, "charset": "utf8mb4"}
    if what == "state" and not parsed.drivername.startswith("sqlite"):
        # The ledger connection idles while an export or purge works on the source; a
        # server restart or pg_terminate_backend must not lose the record at the end.
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(url, **kwargs)
    except Exception as exc:  # missing driver, bad URL
        raise ConfigError(f"{what} URL {mask_url(url)}: {scrub(str(exc)).splitlines()[0]}") from None
    if parsed.drivername.startswith("sqlite"):
        _install_sqlite_transactions(engine, sqlite_begin)
        if what != "state":
            text_decode.install(engine)  # text that is not valid UTF-8: U+FFFD, never a failed read
    return engine


def _floats_stay_floats(_inspector: Any, _table: Any, column_info: dict[str, Any]) -> None:
    """MySQL's DOUBLE reflects as a Decimal rounded to 10 places: read floats as floats."""
    kind = column_info.get("type")
    if isinstance(kind, sa.Float):
        kind.asdecimal = False


def describe_db_error(exc: BaseException) -> str:
    """The first line of a driver error, secrets scrubbed and the values it quotes
    replaced (``valuefree``): it goes into messages, logs and the ledger."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return scrub(without_values(text[0]) if text else type(orig).__name__)


def key_text(value: Any) -> str:
    """The text a stored key value is typed as (what a customer key must equal exactly)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


@dataclass(frozen=True)
class CustomerRow:
    """One row of the customer table: its stored key and its primary key."""

    key: Any
    pk: tuple[Any, ...]

    @property
    def pk_text(self) -> str:
        return pk_text(self.pk)


@dataclass(frozen=True)
class PinnedRow:
    """The customer row an offboarding case was opened for, as the ledger recorded it
    (``pk_text``), and whether the case's purge has deleted it (``deleted``)."""

    pk_text: str
    deleted: bool = False

    @property
    def pk(self) -> tuple[Any, ...]:
        return tuple(json.loads(self.pk_text))


def pk_text(pk: tuple[Any, ...] | list[Any]) -> str:
    """A primary key as canonical text (how the ledger stores and compares it)."""
    return json.dumps([key_text(v) for v in pk], ensure_ascii=False, separators=(",", ":"))


def _pk_label(table: sa.Table, pk: tuple[Any, ...]) -> str:
    names = [c.name for c in table.primary_key.columns] or ["key"]
    return ", ".join(f"{n} {key_text(v)}" for n, v in zip(names, pk, strict=False))


def _loose_integer(typed: str) -> int | None:
    """What a database's numeric comparison would make of ``typed`` (' 01', '+1', '1.0')."""
    try:
        number = Decimal(typed.strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


def _key_probe(key_col: sa.Column[Any], typed: str) -> ColumnElement[bool] | None:
    """A condition that finds the typed key and its near misses, in the column's own type."""
    kind = key_col.type
    if isinstance(kind, sa.Integer):
        values = {v for v in (_loose_integer(typed),) if v is not None and abs(v) < 2**63}
        return key_col.in_(sorted(values)) if values else None
    if isinstance(kind, sa.String):
        folded = typed.strip().lower()
        return sa.or_(key_col == typed, sa.func.lower(sa.func.trim(key_col)) == folded)
    return sa.cast(key_col, sa.String) == typed


def find_customer_row(engine: Engine, table: sa.Table, key_col: sa.Column[Any], typed: str) -> CustomerRow:
    """The one row whose key, as text, is exactly ``typed``.

    No collation folding, no numeric coercion: a key that would match only under the
    database's own comparison ('ACME', 'acme ', '01') is refused with the key it
    resembles, so two spellings can never reach one customer."""
    pk_cols = list(table.primary_key.columns) or [key_col]
    probe = _key_probe(key_col, typed)
    rows: list[Any] = []
    if probe is not None:
        with engine.connect() as conn:
            rows = list(conn.execute(sa.select(key_col, *pk_cols).where(probe).limit(20)))
    exact = [r for r in rows if key_text(r[0]) == typed]
    if len(exact) > 1:
        raise BadInput(f"customer key {typed[:60]!r} matches several {table.name} rows")
    if exact:
        return CustomerRow(exact[0][0], tuple(exact[0][1:]))
    hint = ""
    if rows:
        hint = f"; did you mean {key_text(rows[0][0])!r}?"
    raise UnknownCustomer(
        f"unknown customer {typed[:60]!r}: no {table.name} row with {key_col.name} exactly that value{hint}"
    )


def _present(table: Any, cols: tuple[str, ...], sentinels: tuple[tuple[str, tuple[Any, ...]], ...]) -> list[Any]:
    """Conditions that a reference is set: no column NULL, none holding a "none" value."""
    conds: list[Any] = [table.c[c].isnot(None) for c in cols]
    for col, values in sentinels:
        typed = sentinels_typed(table.c[col], values)
        if typed:
            conds.append(table.c[col].not_in(typed))
    return conds


def sentinels_typed(column: Any, values: tuple[Any, ...]) -> list[Any]:
    """Sentinel ("none") values in the column's own type (0 for an integer column, '0' for text)."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return list(values)
    out = []
    for value in values:
        try:
            out.append(python_type(value))
        except (TypeError, ValueError, ArithmeticError):
            continue
    return out


def _constraint_order(fk: sa.ForeignKeyConstraint) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    return (
        tuple(c.name for c in fk.columns),
        fk.referred_table.name,
        tuple(el.column.name for el in fk.elements),
    )


class Source:
    """One customer's view of the source database."""

    def __init__(self, settings: Settings, customer: str, *, pinned: PinnedRow | None = None) -> None:
        self.settings = settings
        self.customer = check_customer_key(customer)
        self.tenancy = settings.customer.tenancy
        if self.tenancy == "database" and not _URL_SAFE_KEY.fullmatch(customer):
            raise BadInput(f"customer key {customer[:40]!r} cannot name a database: use letters, digits, '_', '-', '.'")
        self.url = settings.source_url_for(customer)
        parsed = make_url(self.url)
        if parsed.drivername.startswith("sqlite") and self.tenancy == "database":
            db = parsed.database or ""
            if db and db != ":memory:" and not os.path.exists(db):
                raise UnknownCustomer(f"unknown customer {customer!r}: no database file {db}")
        elif parsed.drivername.startswith("sqlite"):
            # SQLite would silently create an empty database for a mistyped path.
            db = parsed.database or ""
            if db and db != ":memory:" and not db.startswith("file:") and not os.path.exists(db):
                raise ConfigError(f"{settings.label}: [source] url: the SQLite database {db} does not exist")
        self.engine = make_engine(self.url)
        self.metadata = sa.MetaData()
        event.listen(self.metadata, "column_reflect", _floats_stay_floats)
        try:
            with self.engine.connect() as conn:
                self.metadata.reflect(conn, schema=settings.source_schema)
        except sa.exc.OperationalError as exc:
            text = describe_db_error(exc)
            if self.tenancy == "database" and ("does not exist" in text or "Unknown database" in text):
                raise UnknownCustomer(f"unknown customer {customer!r}: {text}") from None
            raise OperationalError(f"cannot read source {mask_url(self.url)}: {text}") from None
        except sa.exc.SQLAlchemyError as exc:
            raise OperationalError(f"cannot read source {mask_url(self.url)}: {describe_db_error(exc)}") from None
        self.datamap = DataMap(settings, self.metadata)
        self.pinned = pinned
        self.customer_pk: tuple[Any, ...] | None = None
        self._customer_value: Any = None
        if self.tenancy == "shared":
            self._customer_value = self._find_customer()
        self._preds: dict[str, ColumnElement[bool]] = {}
        self._reach_cache: dict[tuple[str, bool], ColumnElement[bool]] = {}
        self._key_sets: dict[tuple[str, tuple[str, ...], bool], sa.Select[Any]] = {}
        self._cte_counter = 0
        self._watches: dict[int, tuple[Connection, Any]] = {}

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the customer ---------------------------------------------------------

    def _find_customer(self) -> Any:
        """The customer's row, found by the exact text of its key (rule 1 of ownership)."""
        cust = self.settings.customer
        table = self.table(cust.table or "")
        found = find_customer_row(self.engine, table, table.c[cust.key], self.customer)
        if self.pinned is not None and found.pk_text != self.pinned.pk_text:
            raise Refused(
                f"customer key {self.customer!r} now names another {cust.table} row "
                f"({_pk_label(table, found.pk)}) than the one this offboarding case was opened for "
                f"({_pk_label(table, self.pinned.pk)}); nothing was done"
            )
        self.customer_pk = found.pk
        return found.key

    @property
    def customer_row_pk(self) -> str | None:
        """The customer row's primary key as the ledger pins it (None: database tenancy)."""
        return pk_text(self.customer_pk) if self.customer_pk is not None else None

    @property
    def customer_value(self) -> Any:
        """The customer's key as stored (an int for an integer key column)."""
        return self._customer_value

    def customer_name(self) -> str:
        """The organisation's display name (the key when none is configured)."""
        cust = self.settings.customer
        if cust.name or cust.name_query:
            from .naming import configured_name

            return configured_name(self.settings, self.engine, self.customer)
        if self.tenancy != "shared" or not cust.name_column:
            return self.customer
        table = self.table(cust.table or "")
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(table.c[cust.name_column]).where(self._root_row(table))).scalar()
        return str(value) if value is not None else self.customer

    # -- tables and predicates ------------------------------------------------

    def table(self, name: str) -> sa.Table:
        return self.datamap.table(name)

    def owned_tables(self) -> list[str]:
        """Owned tables, parents before children."""
        return [t for t in self.datamap.order if self.datamap.info[t].owned]

    def predicate(self, name: str) -> ColumnElement[bool]:
        """SQL condition selecting exactly this customer's rows of ``name``.

        A row is the customer's when every ownership reference of it that is set leads
        to this customer (rule 3): rows whose references also lead elsewhere are
        *contested* (``contested``) and belong to no one until the config settles it."""
        if name not in self._preds:
            self._preds[name] = self._build_predicate(name)
        return self._preds[name]

    def _build_predicate(self, name: str) -> ColumnElement[bool]:
        info = self.datamap.info[name]
        table = self.table(name)
        if not info.owned:
            return sa.false()
        if info.how == "database":
            return sa.true()
        if info.how == "customer":
            return self._reach(name, mine=True)
        if info.how == "owned_via":
            conditions: list[ColumnElement[bool]] = []
            for src_name, src_col, target_col in info.via_sources:
                src = self.table(src_name)
                sentinels = self.datamap.none_values(src_name, src_col, name, target_col)
                sub = sa.select(src.c[src_col]).where(
                    self.predicate(src_name), *_present(src, (src_col,), ((src_col, sentinels),))
                )
                conditions.append(table.c[target_col].in_(sub))
            return sa.or_(*conditions) if conditions else sa.false()
        return sa.and_(self._reach(name, mine=True), sa.not_(self._reach(name, mine=False)))

    def keyed(self, name: str, cond: ColumnElement[bool], label: str) -> ColumnElement[bool]:
        """On SQLite, ``cond`` as "the key is in a named set of keys" (a CTE the statement's
        WITH clause defines once): nested ownership conditions stay flat however long the
        chain of tables, where SQLite's parser refuses deeply nested statements ("parser
        stack overflow").  PostgreSQL and MariaDB take the nesting (and MariaDB limits the
        number of WITH elements), so they keep the conditions inline."""
        table = self.table(name)
        pk = list(table.primary_key.columns)
        if not pk or self.engine.dialect.name != "sqlite":
            return cond
        self._cte_counter += 1
        keys = sa.select(*pk).where(cond).cte(name=f"le_{label}_{self._cte_counter}")
        return _in(table, tuple(c.name for c in pk), sa.select(*keys.c))

    def not_owned(self, name: str, row: Any) -> ColumnElement[bool]:
        """``row`` (the table ``name`` or an alias of it) is not one of the customer's rows."""
        table = self.table(name)
        pk = tuple(c.name for c in table.primary_key.columns)
        if not pk:
            return sa.not_(self.predicate(name))
        keys = sa.select(*[table.c[c] for c in pk]).where(self.predicate(name)).correlate(None)
        return sa.not_(_in(row, pk, keys))

    def forget_conditions(self) -> None:
        """Drop every condition built so far (they name the customer's row): for a Source
        re-pointed at another customer of the same database."""
        self._preds.clear()
        self._reach_cache.clear()
        self._key_sets.clear()

    def contested(self, name: str) -> ColumnElement[bool] | None:
        """Rows of ``name`` whose references lead to this customer and to another one."""
        if self.datamap.info[name].how != "chain":
            return None
        return sa.and_(self._reach(name, mine=True), self._reach(name, mine=False))

    def leads_elsewhere(self, name: str, edge: Edge) -> ColumnElement[bool]:
        """Rows of ``name`` whose reference ``edge`` leads to a customer other than this one."""
        return self._edge_leads(self.table(name), edge, mine=False)

    def _root_row(self, table: sa.Table) -> ColumnElement[bool]:
        """The customer's own row: its key and (once pinned) its primary key."""
        cond = [table.c[self.settings.customer.key] == self._customer_value]
        pk = list(table.primary_key.columns)
        if self.customer_pk is not None and pk:
            cond += [col == value for col, value in zip(pk, self.customer_pk, strict=True)]
        return sa.and_(*cond)

    def _reach(self, name: str, *, mine: bool) -> ColumnElement[bool]:
        """Rows of ``name`` whose ownership references lead to this customer (``mine``) or
        to any other customer (not ``mine``); both hold for a contested row.  The
        condition is on the table's own columns; the parents' rows it needs are key sets
        (``_key_set``), so it stays flat however long the chain."""
        key = (name, mine)
        if key in self._reach_cache:
            return self._reach_cache[key]
        info = self.datamap.info[name]
        table = self.table(name)
        if info.how == "customer":
            root = self._root_row(table)
            tree = self._tree(table, info.self_edges, root) if info.self_edges else root
            cond = tree if mine else sa.not_(tree)
        else:
            parts = [self._edge_leads(table, e, mine=mine) for e in info.edges]
            cond = sa.or_(*parts) if parts else sa.false()
            if info.self_edges:
                cond = self._tree(table, info.self_edges, cond)
        self._reach_cache[key] = cond
        return cond

    def _edge_leads(self, table: sa.Table, edge: Edge, *, mine: bool) -> ColumnElement[bool]:
        sub = self._key_set(edge.parent, edge.parent_cols, mine=mine)
        return sa.and_(*_present(table, edge.child_cols, edge.sentinels), _in(table, edge.child_cols, sub))

    def _key_set(self, name: str, cols: tuple[str, ...], *, mine: bool) -> sa.Select[Any]:
        """The ``cols`` of the rows of ``name`` that ``_reach`` selects.  On SQLite a named
        CTE, which the statement's WITH clause defines once: SQLite's parser refuses deeply
        nested statements ("parser stack overflow"); PostgreSQL and MariaDB take the
        nesting (and MariaDB limits the number of WITH elements), so they keep it inline."""
        key = (name, cols, mine)
        if key in self._key_sets:
            return self._key_sets[key]
        table = self.table(name)
        columns = [table.c[c] for c in cols]
        keys = sa.select(*columns).where(self._reach(name, mine=mine), *[c.isnot(None) for c in columns])
        if self.engine.dialect.name == "sqlite":
            self._cte_counter += 1
            cte = keys.cte(name=f"le_{'mine' if mine else 'other'}_{self._cte_counter}")
            keys = sa.select(*cte.c)
        self._key_sets[key] = keys
        return keys

    def _tree(self, table: sa.Table, edges: list[Edge], base: ColumnElement[bool]) -> ColumnElement[bool]:
        """Rows matching ``base`` and all their descendants through the self-references."""
        self._cte_counter += 1
        key_cols = tuple(dict.fromkeys(c for e in edges for c in e.parent_cols))
        tree = (
            sa.select(*[table.c[c] for c in key_cols])
            .where(base)
            .cte(name=f"le_tree_{self._cte_counter}", recursive=True)
        )
        child = table.alias(f"le_child_{self._cte_counter}")
        links = [
            sa.and_(
                *_present(child, e.child_cols, e.sentinels),
                *[child.c[cc] == tree.c[pc] for cc, pc in zip(e.child_cols, e.parent_cols, strict=True)],
            )
            for e in edges
        ]
        step = sa.select(*[child.c[c] for c in key_cols]).where(sa.or_(*links))
        tree = tree.union(step)  # UNION, not UNION ALL: stops on cycles in the data
        return _in(table, key_cols, sa.select(*[tree.c[c] for c in key_cols]))

    def contested_report(self, conn: Connection) -> list[ContestedTable]:
        """Every table with contested rows, and which of its references lead elsewhere."""
        out = []
        for name in self.owned_tables():
            cond = self.contested(name)
            if cond is None:
                continue
            table = self.table(name)
            rows = int(conn.execute(sa.select(sa.func.count()).select_from(table).where(cond)).scalar() or 0)
            if not rows:
                continue
            info = self.datamap.info[name]
            disagree = []
            for e in [*info.edges, *info.self_edges]:
                hit = sa.select(sa.func.count()).select_from(table).where(cond, self.leads_elsewhere(name, e))
                if conn.execute(hit).scalar():
                    disagree.append(f"{name}.{','.join(e.child_cols)} → {e.parent}")
            out.append(ContestedTable(name, rows, disagree))
        return out

    def sub_organisations(self, conn: Connection) -> list[str]:
        """Keys of the customer table's rows under the customer's own (sub-organisations)."""
        cust = self.settings.customer
        if self.tenancy != "shared" or not self.datamap.info[cust.table or ""].self_edges:
            return []
        table = self.table(cust.table or "")
        stmt = sa.select(table.c[cust.key]).where(self.predicate(table.name), sa.not_(self._root_row(table)))
        return sorted(key_text(v) for (v,) in conn.execute(stmt.limit(1000)))

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

    @contextmanager
    def snapshot(self, imported: str | None = None) -> Iterator[Connection]:
        """One read transaction: every table read through it sees the same moment.

        ``imported``: a PostgreSQL snapshot another process exported with
        ``share_snapshot`` — this transaction then sees exactly what that one sees.
        """
        dialect = self.engine.dialect.name
        watch: Connection | None = None
        try:
            if dialect == "sqlite" and self.shareable():
                # Remember the database's version before the snapshot starts: readers in
                # other processes see the same data as long as it has not changed since.
                watch = self.engine.connect()
                version = _data_version(watch)
            conn = self.engine.connect()
            if dialect in ("postgresql", "mysql", "mariadb"):
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            trans = conn.begin()
            if dialect == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                if imported is not None:
                    if not re.fullmatch(r"[0-9A-Fa-f-]+", imported):
                        raise OperationalError(f"not a PostgreSQL snapshot id: {imported[:40]!r}")
                    conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{imported}'")
            if watch is not None:
                self._watches[id(conn)] = (watch, version)
        except sa.exc.SQLAlchemyError as exc:
            if watch is not None:
                watch.close()
            raise OperationalError(f"cannot read source {mask_url(self.url)}: {describe_db_error(exc)}") from None
        failed = False
        try:
            yield conn
        except sa.exc.SQLAlchemyError as exc:
            failed = True
            raise OperationalError(f"source read failed: {describe_db_error(exc)}") from None
        except BaseException:
            failed = True
            raise
        finally:
            try:
                trans.rollback()
            except sa.exc.SQLAlchemyError as exc:
                # (a connection the server ended may say so only now, at the rollback: the
                # error that ended the read is the one to report)
                if not failed:
                    raise OperationalError(f"source read failed: {describe_db_error(exc)}") from None
            finally:
                conn.close()
                if watch is not None:
                    self._watches.pop(id(conn), None)
                    watch.close()

    def shareable(self) -> bool:
        """Can other processes read the same snapshot as ``snapshot()`` (parallel exports)?

        PostgreSQL: yes, an exported snapshot.  SQLite (a file): yes while nothing writes —
        ``snapshot_unchanged`` tells.  MySQL/MariaDB: no (one process reads).
        """
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            return True
        if dialect == "sqlite":
            db = make_url(self.url).database or ""
            return bool(db) and db != ":memory:" and "mode=memory" not in db
        return False

    def share_snapshot(self, conn: Connection) -> str | None:
        """What another process passes to ``snapshot(imported=…)`` to read the same data
        (PostgreSQL: ``pg_export_snapshot()``, valid while this transaction lasts)."""
        if self.engine.dialect.name == "postgresql":
            return str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar())
        return None

    def start_snapshot(self, conn: Connection) -> None:
        """Make the snapshot begin now (SQLite begins it at the first read)."""
        if self.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()

    def snapshot_unchanged(self, conn: Connection) -> bool:
        """SQLite: True when no one has committed since ``conn``'s snapshot began, so a
        snapshot begun in another process meanwhile holds the same data."""
        watched = self._watches.get(id(conn))
        if watched is None:
            return self.engine.dialect.name == "postgresql"
        watch, version = watched
        return bool(_data_version(watch) == version)


def _data_version(conn: Connection) -> Any:
    """SQLite's ``PRAGMA data_version`` after a read (which makes the connection notice
    other connections' commits), outside any transaction of its own."""
    try:
        conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
        return conn.exec_driver_sql("PRAGMA data_version").scalar()
    finally:
        conn.rollback()


def _in(table: sa.Table | Any, cols: tuple[str, ...], sub: sa.Select[Any]) -> ColumnElement[bool]:
    if len(cols) == 1:
        return table.c[cols[0]].in_(sub)
    return sa.tuple_(*[table.c[c] for c in cols]).in_(sub)


def _reaches(deps: dict[str, set[str]], a: str, b: str) -> bool:
    """Does table ``a`` depend on table ``b``, directly or through others?"""
    stack, seen = [a], set()
    while stack:
        x = stack.pop()
        if x == b:
            return True
        if x not in seen:
            seen.add(x)
            stack.extend(deps[x])
    return False


class DataMap:
    """The classification of every table of a reflected source (no customer needed)."""

    def __init__(self, settings: Settings, metadata: sa.MetaData) -> None:
        self.settings = settings
        self.metadata = metadata
        self.by_name: dict[str, sa.Table] = {t.name: t for t in metadata.tables.values()}
        self.notes: list[str] = []
        self._validate_config()
        self.edges = self._collect_edges()
        self.info: dict[str, TableInfo] = {}
        self._classify()
        self.order = self._parent_first_order()

    def table(self, name: str) -> sa.Table:
        try:
            return self.by_name[name]
        except KeyError:
            raise ConfigError(f"table {name!r} does not exist in the source") from None

    # -- validation: every name the config uses must exist --------------------

    def _need(self, where: str, table: str, column: str | None = None) -> None:
        label = self.settings.label
        if table not in self.by_name:
            raise ConfigError(f"{label}: {where}: table {table!r} does not exist in the source")
        if column is not None and column not in self.by_name[table].c:
            raise ConfigError(f"{label}: {where}: column {table}.{column} does not exist in the source")

    def _validate_config(self) -> None:
        s = self.settings
        if s.customer.tenancy == "shared":
            self._need("[customer] table", s.customer.table or "")
            self._need("[customer] key", s.customer.table or "", s.customer.key)
            if s.customer.name_column:
                self._need("[customer] name_column", s.customer.table or "", s.customer.name_column)
        for i, rel in enumerate(s.relations, 1):
            for col in rel.from_columns:
                self._need(f"[[relations]] #{i} from", rel.from_table, col)
            for col in rel.to_columns:
                self._need(f"[[relations]] #{i} to", rel.to_table, col)
        for name, rule in s.tables.items():
            self._need(f"[tables.{name}]", name)
            for src, col in rule.owned_via:
                self._need(f"[tables.{name}] owned_via", src, col)
            for col in rule.personal_columns:
                self._need(f"[tables.{name}] personal_columns", name, col)
            for col in rule.ignore_references:
                self._need(f"[tables.{name}] ignore_references", name, col)
            for col in rule.omit_columns:
                self._need(f"[tables.{name}] omit_columns", name, col)
                if self.by_name[name].c[col].primary_key:
                    raise ConfigError(
                        f"{s.label}: [tables.{name}] omit_columns: {col} is the primary key; it must stay"
                    )
        if s.contract.table:
            for key in ("customer_column", "start_column", "term_column"):
                col = getattr(s.contract, key)
                if col:
                    self._need(f"[contract] {key}", s.contract.table, col)
        if s.media:
            m = s.media
            self._need("[media] table", m.table)
            for key in ("path_column", "name_column", "size_column", "checksum_column"):
                col = getattr(m, key)
                if col:
                    self._need(f"[media] {key}", m.table, col)
            if m.path_template:
                for col in re.findall(r"\{(\w+)", m.path_template):
                    self._need("[media] path_template", m.table, col)
        for name, role in s.roles.items():
            self._need(f"[roles.{name}] table", role.table)
            for key, col in role.columns.items():
                self._need(f"[roles.{name}] {key}", role.table, col)
        for ref in s.closure:
            table, col = ref.split(".")
            self._need(f"[closure] set.{ref}", table, col)

    # -- the graph ------------------------------------------------------------

    def _collect_edges(self) -> list[Edge]:
        edges: list[Edge] = []
        seen: set[tuple[str, tuple[str, ...], str]] = set()
        for table in self.by_name.values():
            ignored = set(self.settings.rule(table.name).ignore_references)
            # (a set: sorted, so every run lists a table's references in the same order)
            for fk in sorted(table.foreign_key_constraints, key=_constraint_order):
                parent = fk.referred_table.name
                child_cols = tuple(c.name for c in fk.columns)
                parent_cols = tuple(el.column.name for el in fk.elements)
                if ignored & set(child_cols):
                    continue
                key = (table.name, child_cols, parent)
                if key not in seen:
                    seen.add(key)
                    sentinels = self._sentinels(table.name, child_cols, (), parent, parent_cols)
                    edges.append(Edge(table.name, child_cols, parent, parent_cols, True, sentinels))
        for rel in self.settings.relations:
            if set(self.settings.rule(rel.from_table).ignore_references) & set(rel.from_columns):
                continue
            key = (rel.from_table, rel.from_columns, rel.to_table)
            if key not in seen:
                seen.add(key)
                sentinels = self._sentinels(
                    rel.from_table, rel.from_columns, rel.sentinels, rel.to_table, rel.to_columns
                )
                edges.append(Edge(rel.from_table, rel.from_columns, rel.to_table, rel.to_columns, False, sentinels))
        return edges

    def _sentinels(
        self,
        table: str,
        columns: tuple[str, ...],
        extra: tuple[Any, ...],
        parent: str,
        parent_cols: tuple[str, ...],
    ) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        """The "no reference" values of each column of a reference: the relation's own
        (``extra``), the table's and ``[roles.people] nobody`` (``none_values``)."""
        out = []
        for col, parent_col in zip(columns, parent_cols, strict=True):
            values = tuple(dict.fromkeys((*extra, *self.none_values(table, col, parent, parent_col))))
            if values:
                out.append((col, values))
        return tuple(out)

    def none_values(self, table: str, column: str, parent: str, parent_column: str) -> tuple[Any, ...]:
        """The values of ``table.column``, a reference to ``parent.parent_column``, that mean
        "no reference": the column's ``sentinels`` (``[tables.X]``) and, when it points at
        the people role's id, ``[roles.people] nobody`` (Moodle's ``userid = 0``).  The one
        place every reference learns them: ownership, export notes, nesting and purge."""
        values = self.settings.rule(table).sentinels_of(column)
        people = self.settings.roles.get("people")
        if people is not None and (parent, parent_column) == (people.table, people.columns.get("id")):
            values = (*values, *people.nobody)
        return tuple(dict.fromkeys(values))

    def _classify(self) -> None:
        s = self.settings
        names = sorted(self.by_name)
        info = {n: TableInfo(n, "unclassified") for n in names}
        self.info = info
        for n in names:
            if s.rule(n).shared:
                info[n].status, info[n].how, info[n].via = "shared", "shared", "shared = true"
        if s.customer.tenancy == "database":
            for n in names:
                if info[n].status != "shared":
                    info[n].status, info[n].how, info[n].via = "owned", "database", "the whole database"
            for e in self.edges:
                if e.is_self and info[e.child].owned:
                    info[e.child].self_edges.append(e)
            return
        root = s.customer.table or ""
        info[root].status, info[root].how, info[root].depth = "owned", "customer", 0
        info[root].via = f"the customer table ({s.customer.key})"
        via_tables = {n for n in names if s.rule(n).owned_via and info[n].status != "shared"}

        # Breadth-first from the root along references, children towards parents.
        by_parent: dict[str, list[Edge]] = {}
        for e in self.edges:
            by_parent.setdefault(e.parent, []).append(e)
        chain_of: dict[str, list[str]] = {root: [root]}
        changed = True
        while changed:
            changed = False
            queue = deque(n for n in names if info[n].how in ("customer", "chain"))
            while queue:
                parent = queue.popleft()
                for e in sorted(by_parent.get(parent, []), key=lambda e: (e.child, e.child_cols)):
                    child = e.child
                    if child == parent or info[child].status != "unclassified" or child in via_tables:
                        continue
                    info[child].status, info[child].how = "owned", "chain"
                    info[child].depth = (info[parent].depth or 0) + 1
                    chain_of[child] = [f"{child}.{','.join(e.child_cols)}"] + chain_of[parent]
                    queue.append(child)
                    changed = True
            # owned_via tables become owned once one of their source tables is
            for n in sorted(via_tables):
                if info[n].status != "unclassified":
                    continue
                sources = []
                for src, col in s.rule(n).owned_via:
                    if info[src].owned:
                        sources.append((src, col, self._via_target(n, src, col)))
                if sources:
                    info[n].status, info[n].how = "owned", "owned_via"
                    info[n].via_sources = sources
                    info[n].via = "referenced by the customer's " + ", ".join(f"{src}.{col}" for src, col, _ in sources)
                    changed = True
        for n, chain in chain_of.items():
            if info[n].how == "chain":
                info[n].via = " → ".join(chain)
        # Now choose the edges each chain table's predicate uses, never forming a cycle.
        chain_tables = {n for n in names if info[n].how in ("customer", "chain")}
        depends: dict[str, set[str]] = {n: set() for n in names}

        def reaches(a: str, b: str) -> bool:
            return _reaches(depends, a, b)

        candidates = [e for e in self.edges if info[e.child].how == "chain" and e.parent in chain_tables]
        candidates.sort(
            key=lambda e: (
                (info[e.parent].depth or 0) >= (info[e.child].depth or 0),
                e.child,
                e.child_cols,
            )
        )
        # Every self-reference of the customer table and of chain tables is followed: a
        # sub-organisation is the organisation's, a section under another is its parent's.
        for e in self.edges:
            if e.is_self and info[e.child].how in ("customer", "chain"):
                info[e.child].self_edges.append(e)
        for e in candidates:
            if e.is_self:
                continue
            if reaches(e.parent, e.child):
                self.notes.append(f"reference {e.label} is not used to find the customer's rows: it would form a cycle")
                continue
            depends[e.child].add(e.parent)
            info[e.child].edges.append(e)
        for n in names:
            if info[n].status == "unclassified":
                refs = [e.parent for e in self.edges if e.child == n and e.parent != n]
                if any(r in via_tables for r in refs):
                    info[n].note = (
                        "reaches the customer only through an owned_via table; classify it "
                        "(shared = true, or owned_via) — ownership does not flow out of owned_via tables"
                    )
                else:
                    info[n].note = "no reference chain leads to the customer table; classify it in [tables]"
            elif info[n].status == "owned" and info[n].how == "owned_via":
                pass

    def _via_target(self, table: str, src: str, col: str) -> str:
        """Which column of ``table`` the ``src.col`` reference points at."""
        for e in self.edges:
            if e.child == src and e.child_cols == (col,) and e.parent == table:
                return e.parent_cols[0]
        pk = list(self.by_name[table].primary_key.columns)
        if len(pk) != 1:
            raise ConfigError(
                f"{self.settings.label}: [tables.{table}] owned_via: {src}.{col} does not reference "
                f"{table}, and {table} has no single-column primary key to assume"
            )
        return pk[0].name

    def _parent_first_order(self) -> list[str]:
        """All tables, every referenced table before the tables referencing it.

        The references rows are found by come first and always hold; any other
        reference is honoured unless it would close a cycle (then the purge breaks it by
        setting the nullable column NULL first, or refuses when it cannot)."""
        names = sorted(self.by_name)
        deps: dict[str, set[str]] = {n: set() for n in names}

        def reaches(a: str, b: str) -> bool:
            return _reaches(deps, a, b)

        used = [e for n in names for e in self.info[n].edges]
        # NOT NULL references before nullable ones: where a cycle must be broken, it is
        # broken at a column the purge can set NULL.
        others = sorted(
            (e for e in self.edges if not e.is_self and e not in used),
            key=lambda e: (self._nullable(e), e.child, e.child_cols),
        )
        for e in used + others:
            if e.child != e.parent and e.parent not in deps[e.child] and not reaches(e.parent, e.child):
                deps[e.child].add(e.parent)
        order: list[str] = []
        done: set[str] = set()

        def visit(n: str) -> None:
            if n in done:
                return
            done.add(n)
            for p in sorted(deps[n]):
                visit(p)
            order.append(n)

        for n in names:
            visit(n)
        return order

    def _nullable(self, edge: Edge) -> bool:
        table = self.by_name[edge.child]
        return all(table.c[c].nullable for c in edge.child_cols)

    def back_edges(self) -> list[Edge]:
        """References that point against the parent-first order (they close a cycle)."""
        position = {t: i for i, t in enumerate(self.order)}
        return [e for e in self.edges if not e.is_self and position[e.parent] > position[e.child]]

    def owned(self) -> list[str]:
        return [n for n in self.order if self.info[n].owned]

    def unclassified(self) -> list[str]:
        return [n for n in self.order if self.info[n].status == "unclassified"]


@dataclass
class ContestedTable:
    """Rows of a table whose references lead to this customer and to another one."""

    table: str
    rows: int
    references: list[str]

    def note(self) -> str:
        refs = " and ".join(self.references) or "its references"
        return (
            f"{self.table}: {self.rows} row{'s' if self.rows != 1 else ''} contested — {refs} lead to another "
            f"customer as well; neither exported nor deleted until settled in the source or with "
            f"[tables.{self.table}] ignore_references"
        )


@dataclass
class TableReport:
    table: str
    status: str
    rows: int | None
    via: str
    category: str | None
    retain: str | None
    legal_basis: str | None
    note: str | None
    references: list[str] = field(default_factory=list)
    contested: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "status": self.status,
            "rows": self.rows,
            "via": self.via,
            "category": self.category,
            "retain": self.retain,
            "legal_basis": self.legal_basis,
            "note": self.note,
            "references": self.references,
            "contested": self.contested,
        }


@dataclass
class InspectReport:
    customer: str
    name: str
    tenancy: str
    source: str
    tables: list[TableReport]
    notes: list[str]
    sub_organisations: list[str] = field(default_factory=list)
    contested: list[ContestedTable] = field(default_factory=list)

    @property
    def unclassified(self) -> list[str]:
        return [t.table for t in self.tables if t.status == "unclassified"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "name": self.name,
            "tenancy": self.tenancy,
            "source": self.source,
            "tables": [t.as_dict() for t in self.tables],
            "unclassified": self.unclassified,
            "notes": self.notes,
            "sub_organisations": self.sub_organisations,
            "contested": [{"table": c.table, "rows": c.rows, "references": c.references} for c in self.contested],
        }


def inspect_customer(settings: Settings, customer: str, *, pinned: PinnedRow | None = None) -> InspectReport:
    """The data map for one customer: every table, its classification, chain and rows,
    the sub-organisations, the contested rows and the cycles a purge could not break."""
    with Source(settings, customer, pinned=pinned) as src:
        dm = src.datamap
        reports = []
        with src.snapshot() as conn:
            contested = src.contested_report(conn)
            subs = src.sub_organisations(conn)
            by_table = {c.table: c.rows for c in contested}
            for name in dm.order:
                info = dm.info[name]
                rule = settings.rule(name)
                rows = src.count(conn, name) if info.owned else None
                refs = [
                    f"{','.join(e.child_cols)} → {e.parent}.{','.join(e.parent_cols)}"
                    + ("" if e.declared else " ([[relations]])")
                    for e in dm.edges
                    if e.child == name
                ]
                reports.append(
                    TableReport(
                        name,
                        info.status,
                        rows,
                        info.via,
                        rule.category,
                        rule.retain,
                        rule.legal_basis,
                        info.note,
                        refs,
                        by_table.get(name, 0),
                    )
                )
        from .quiet_loss import quiet_loss_notes

        notes = list(dm.notes) + quiet_loss_notes(dm)
        if subs:
            notes.append(f"sub-organisations of {customer} (theirs is the customer's): {', '.join(subs)}")
        notes += [c.note() for c in contested]
        notes += [unbreakable_cycle_note(src, e) for e in dm.back_edges() if not cycle_can_break(src, e)]
        return InspectReport(
            customer, src.customer_name(), src.tenancy, mask_url(src.url), reports, notes, subs, contested
        )


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
