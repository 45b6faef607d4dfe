"""The data map: every table of a reflected source classified (owned, shared,
unclassified), the references between them, and an order with parents first.

Ownership (design §2, tenancy "shared"): the customer table's row is the root.  A
table is *owned* when a chain of references (declared foreign keys plus the config's
``[[relations]]``) leads from it to the customer table through owned tables.
``owned_via`` tables (people kept in a global table) become owned through the customer's
rows that reference them; ownership never flows *out* of them.  ``shared = true`` wins
over discovery.  Every other table is *unclassified*.  No customer is needed here.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..config import Settings
from ..errors import ConfigError


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


def _constraint_order(fk: sa.ForeignKeyConstraint) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    return (
        tuple(c.name for c in fk.columns),
        fk.referred_table.name,
        tuple(el.column.name for el in fk.elements),
    )


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


class _Names:
    """Checks that a name the config uses exists in the source (ConfigError else)."""

    def __init__(self, settings: Settings, by_name: dict[str, sa.Table]) -> None:
        self.label = settings.label
        self.by_name = by_name

    def need(self, where: str, table: str, column: str | None = None) -> None:
        if table not in self.by_name:
            raise ConfigError(f"{self.label}: {where}: table {table!r} does not exist in the source")
        if column is not None and column not in self.by_name[table].c:
            raise ConfigError(f"{self.label}: {where}: column {table}.{column} does not exist in the source")


def validate_names(settings: Settings, by_name: dict[str, sa.Table]) -> None:
    """Every table and column the config names must exist in the source (ConfigError)."""
    s = settings
    need = _Names(settings, by_name).need
    if s.customer.tenancy == "shared":
        need("[customer] table", s.customer.table or "")
        need("[customer] key", s.customer.table or "", s.customer.key)
        if s.customer.name_column:
            need("[customer] name_column", s.customer.table or "", s.customer.name_column)
    for i, rel in enumerate(s.relations, 1):
        for col in rel.from_columns:
            need(f"[[relations]] #{i} from", rel.from_table, col)
        for col in rel.to_columns:
            need(f"[[relations]] #{i} to", rel.to_table, col)
    for name, rule in s.tables.items():
        need(f"[tables.{name}]", name)
        for src, col in rule.owned_via:
            need(f"[tables.{name}] owned_via", src, col)
        for col in rule.personal_columns:
            need(f"[tables.{name}] personal_columns", name, col)
        for col in rule.ignore_references:
            need(f"[tables.{name}] ignore_references", name, col)
        for col in rule.omit_columns:
            need(f"[tables.{name}] omit_columns", name, col)
            if by_name[name].c[col].primary_key:
                raise ConfigError(f"{s.label}: [tables.{name}] omit_columns: {col} is the primary key; it must stay")
    if s.contract.table:
        for key in ("customer_column", "start_column", "term_column"):
            col = getattr(s.contract, key)
            if col:
                need(f"[contract] {key}", s.contract.table, col)
    if s.media:
        m = s.media
        need("[media] table", m.table)
        for key in ("path_column", "name_column", "size_column", "checksum_column"):
            col = getattr(m, key)
            if col:
                need(f"[media] {key}", m.table, col)
        if m.path_template:
            for col in re.findall(r"\{(\w+)", m.path_template):
                need("[media] path_template", m.table, col)
    for name, role in s.roles.items():
        need(f"[roles.{name}] table", role.table)
        for key, col in role.columns.items():
            need(f"[roles.{name}] {key}", role.table, col)
    for ref in s.closure:
        table, col = ref.split(".")
        need(f"[closure] set.{ref}", table, col)


class DataMap:
    """The classification of every table of a reflected source (no customer needed)."""

    def __init__(self, settings: Settings, metadata: sa.MetaData) -> None:
        self.settings = settings
        self.metadata = metadata
        self.by_name: dict[str, sa.Table] = {t.name: t for t in metadata.tables.values()}
        self.notes: list[str] = []
        validate_names(settings, self.by_name)
        self.edges = self._collect_edges()
        self.info: dict[str, TableInfo] = {}
        self._classify()
        self.order = self._parent_first_order()

    def table(self, name: str) -> sa.Table:
        try:
            return self.by_name[name]
        except KeyError:
            raise ConfigError(f"table {name!r} does not exist in the source") from None

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

    # -- classification -------------------------------------------------------

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
        self._discover(root, names, via_tables)
        self._choose_edges(names)
        self._note_unclassified(names, via_tables)

    def _discover(self, root: str, names: list[str], via_tables: set[str]) -> None:
        """Breadth-first from the root along references, children towards parents; an
        owned_via table becomes owned once one of its source tables is."""
        info = self.info
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
            for n in sorted(via_tables):
                if info[n].status != "unclassified":
                    continue
                sources = []
                for src, col in self.settings.rule(n).owned_via:
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

    def _choose_edges(self, names: list[str]) -> None:
        """The edges each chain table's predicate uses, never forming a cycle."""
        info = self.info
        chain_tables = {n for n in names if info[n].how in ("customer", "chain")}
        depends: dict[str, set[str]] = {n: set() for n in names}
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
            if _reaches(depends, e.parent, e.child):
                self.notes.append(f"reference {e.label} is not used to find the customer's rows: it would form a cycle")
                continue
            depends[e.child].add(e.parent)
            info[e.child].edges.append(e)

    def _note_unclassified(self, names: list[str], via_tables: set[str]) -> None:
        for n in names:
            if self.info[n].status != "unclassified":
                continue
            refs = [e.parent for e in self.edges if e.child == n and e.parent != n]
            if any(r in via_tables for r in refs):
                self.info[n].note = (
                    "reaches the customer only through an owned_via table; classify it "
                    "(shared = true, or owned_via) — ownership does not flow out of owned_via tables"
                )
            else:
                self.info[n].note = "no reference chain leads to the customer table; classify it in [tables]"

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

    # -- order ----------------------------------------------------------------

    def _parent_first_order(self) -> list[str]:
        """All tables, every referenced table before the tables referencing it.

        The references rows are found by come first and always hold; any other
        reference is honoured unless it would close a cycle (then the purge breaks it by
        setting the nullable column NULL first, or refuses when it cannot)."""
        names = sorted(self.by_name)
        deps: dict[str, set[str]] = {n: set() for n in names}
        used = [e for n in names for e in self.info[n].edges]
        # NOT NULL references before nullable ones: where a cycle must be broken, it is
        # broken at a column the purge can set NULL.
        others = sorted(
            (e for e in self.edges if not e.is_self and e not in used),
            key=lambda e: (self._nullable(e), e.child, e.child_cols),
        )
        for e in used + others:
            if e.child != e.parent and e.parent not in deps[e.child] and not _reaches(deps, e.parent, e.child):
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
