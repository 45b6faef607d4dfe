"""Which of one customer's rows go and which stay, as SQL conditions (no writes).

:class:`Scope` decides for every owned table: the rows retained under a legal basis
(and the rows those reference, kept minimised), the rows kept because data outside the
customer's still references them (``kept_shared``), and the rows that go.  For
``owned_via`` tables (people) a row goes only when no row that stays references it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from .. import contract
from ..config import Settings
from ..errors import ConfigError, Refused
from ..source import Edge, Source
from ..source.keys import key_cols
from ..source.ownership import reference_is_set
from .conditions import OutsideSets, cols_in, count_rows, not_owned_by, not_true, outside_of
from .rounds import cyclic_groups, holding_depends, rounds_needed, too_deep

__all__ = ["Scope", "personal_blanks", "retention_dates"]


class Scope:
    """Which of one customer's rows go and which stay, as SQL conditions (no writes)."""

    def __init__(
        self,
        settings: Settings,
        src: Source,
        termination: date | None,
        now: datetime,
        *,
        expire_all: bool = False,
    ) -> None:
        self.settings = settings
        self.src = src
        self.dm = src.datamap
        self.today = contract.today(settings.contract.timezone, now)
        owned = [t for t in self.dm.order if self.dm.info[t].owned]
        self.children_first = list(reversed(owned))
        self.owned = set(owned)
        self.via = {t for t in owned if self.dm.info[t].how == "owned_via"}
        self.retain_until, self.expired = retention_dates(settings, owned, termination, self.today, expire_all)
        self.refs: dict[str, list[Edge]] = {}
        for e in self.dm.edges:
            self.refs.setdefault(e.parent, []).append(e)
        self.self_edges: dict[str, list[Edge]] = {}
        for e in self.dm.edges:
            if e.child == e.parent:
                self.self_edges.setdefault(e.child, []).append(e)
        self.notes: list[str] = []
        self._ret: dict[tuple[str, int], ColumnElement[bool] | None] = {}
        self._because: dict[str, set[str]] = {}
        self._held: dict[tuple[str, int], ColumnElement[bool] | None] = {}
        self._held_by: dict[str, set[str]] = {}
        self._alias_n = 0
        self._outside = OutsideSets(src, self.owned)
        # Tables whose kept rows depend on each other in a cycle are decided in rounds
        # (``rounds``); ``settle`` finds how many the data needs.
        self.groups = cyclic_groups(holding_depends(self.owned, self.via, self.refs))
        self.ret_groups = cyclic_groups(holding_depends(self.owned, (), self.refs)) if self.retain_until else {}
        self.rounds = 1

    # -- retention ---------------------------------------------------------------

    def ret(self, t: str, r: int | None = None) -> ColumnElement[bool] | None:
        """Rows of ``t`` kept by retention (retained rows and what they reference), or
        None.  In a cycle of tables (``ret_groups``) round ``r`` follows the rows the
        others keep in round ``r - 1``; ``None``: the last round (``rounds``)."""
        r = self._round(self.ret_groups, t, r)
        if r < 0 or not self.retain_until:
            return None
        if (t, r) in self._ret:
            return self._ret[(t, r)]
        cond: ColumnElement[bool] | None = None
        because: set[str] = set()
        if t in self.retain_until:
            cond, because = self.src.predicate(t), {t}
        else:
            table = self.src.table(t)
            conds, because = self._kept_by_children(t, r, held=False)
            if conds:
                cond = self._ancestors(table, self.self_edges.get(t, []), sa.or_(*conds))
                if t not in self.via:
                    cond = sa.and_(cond, self.src.predicate(t))
                cond = self.src.keyed(t, cond, "kept")
        self._ret[(t, r)] = cond
        self._because[t] = self._because.get(t, set()) | because
        return cond

    def _kept_by_children(self, t: str, r: int, held: bool) -> tuple[list[ColumnElement[bool]], set[str]]:
        """Rows of ``t`` that kept rows of its owned child tables reference — ``held`` or
        retained (``ret``; followed through people too), each child at the round ``r``
        reads: a condition per reference, and the tables behind them."""
        groups, kept, why = (
            (self.groups, self.held, self._held_by) if held else (self.ret_groups, self.ret, self._because)
        )
        skip = self.via if held else ()
        table = self.src.table(t)
        conds: list[ColumnElement[bool]] = []
        behind: set[str] = set()
        for e in self.refs.get(t, []):
            if e.child == t or e.child not in self.owned or e.child in skip:
                continue
            child_cond = kept(e.child, self._child_round(groups, t, e.child, r))
            if child_cond is None:
                continue
            conds.append(self._referenced_by(table, e, child_cond))
            behind |= why.get(e.child, set())
        return conds, behind

    def _referenced_by(self, table: sa.Table, e: Edge, child_cond: ColumnElement[bool]) -> ColumnElement[bool]:
        """Rows of ``table`` that a row of ``e.child`` matching ``child_cond`` references through ``e``."""
        child = self.src.table(e.child)
        sub = sa.select(*[child.c[c] for c in e.child_cols]).where(
            child_cond, *reference_is_set(child, e.child_cols, e.sentinels)
        )
        return cols_in(table, e.parent_cols, sub)

    def _ancestors(self, table: sa.Table, edges: list[Edge], base: ColumnElement[bool]) -> ColumnElement[bool]:
        """Rows matching ``base`` and every row they reach through the self-references."""
        if not edges:
            return base
        self._alias_n += 1
        return _with_ancestors(table, edges, base, self._alias_n)

    def retention_info(self, t: str) -> tuple[date | None, str | None, str | None]:
        """(until, legal basis, reason) for the retained rows of ``t``."""
        self.ret(t)
        because = sorted(self._because.get(t, set()))
        if not because:
            return None, None, None
        until = max(self.retain_until[b] for b in because)
        bases = []
        for b in because:
            basis = self.settings.rule(b).legal_basis
            if basis and basis not in bases:
                bases.append(basis)
        reason = None if t in self.retain_until else "referenced by retained " + ", ".join(because)
        return until, "; ".join(bases) or None, reason

    # -- kept for others ------------------------------------------------------------

    def _outside_refs(self, t: str, r: int) -> tuple[ColumnElement[bool] | None, set[str]]:
        """Rows of ``t`` that rows outside the customer's data reference: another
        customer's, contested, shared or unclassified rows (a row of ``t`` itself
        included), and people (owned_via rows) that stay.  Every reference counts, the
        ones rows are found by too: the database must never cascade for the purge."""
        tests, sources = [], set()
        for e in self.refs.get(t, []):
            if e.child in self.via:
                if self.dm.info[e.child].how == "owned_via":
                    tests.append(
                        self.ref_exists(t, e, self._via_stays_at(self._child_round(self.groups, t, e.child, r)))
                    )
                    sources.add(e.child)
                continue
            if e.child in self.owned:
                if self.dm.info[e.child].how == "database":
                    continue  # the whole database is the customer's
                tests.append(self.outside_ref(t, e, not_owned_by(self.src, e.child)))
            else:
                tests.append(self.ref_exists(t, e, None))
            sources.add(e.child)
        return (sa.or_(*tests) if tests else None), sources

    def _via_stays_at(self, r: int) -> Callable[[Any], ColumnElement[bool]]:
        return lambda child: self._via_stays(child, r)

    def _via_stays(self, child: Any, r: int) -> ColumnElement[bool]:
        """owned_via rows (of ``child``, a table or an alias) that the purge leaves: not
        the customer's, or (from round 0) referenced by a row that stays."""
        name = child.name if isinstance(child, sa.Table) else child.element.name
        stays = not_true(self.src.predicate(name))
        if r < 0 or child is not self.src.table(name):
            return stays
        return sa.or_(stays, self.other_ref(name, r))

    def held(self, t: str, r: int | None = None) -> ColumnElement[bool] | None:
        """The customer's rows of ``t`` kept because data outside it still references them.

        Closed upwards: the rows such a row references are kept too.  (owned_via tables
        are decided row by row from their candidates instead.)  In a cycle of tables
        (``groups``) round ``r`` follows the rows the others keep in round ``r - 1``;
        ``None``: the last round (``rounds``).
        """
        if t in self.via:
            return None
        r = self._round(self.groups, t, r)
        if r < 0:
            return None
        if (t, r) in self._held:
            return self._held[(t, r)]
        table = self.src.table(t)
        outside, sources = self._outside_refs(t, r)
        kept, behind = self._kept_by_children(t, r, held=True)
        conds = ([outside] if outside is not None else []) + kept
        sources |= behind
        cond: ColumnElement[bool] | None = None
        if conds:
            cond = self._ancestors(table, self.self_edges.get(t, []), sa.or_(*conds))
            cond = self.src.keyed(t, sa.and_(cond, self.src.predicate(t)), "held")
        self._held[(t, r)] = cond
        self._held_by[t] = self._held_by.get(t, set()) | sources
        return cond

    def _round(self, groups: dict[str, int], t: str, r: int | None) -> int:
        """The round of ``t`` asked for: only tables in a cycle have more than one."""
        return self.rounds if r is None or t not in groups else r

    def _child_round(self, groups: dict[str, int], t: str, child: str, r: int) -> int:
        """The round of ``child`` that round ``r`` of ``t`` reads: the one before within
        the same cycle, the last one of a table outside it."""
        group = groups.get(t)
        return r - 1 if group is not None and groups.get(child) == group else self.rounds

    def settle(self, conn: Any) -> int:
        """Count, on ``conn``, how many rounds the cycles of tables need (one more
        keeps nothing more), and build every condition from then on with that many."""
        if not self.groups and not self.ret_groups:
            return self.rounds

        def size(cycle: tuple[str, str], r: int) -> int:
            kind, t = cycle
            table = self.src.table(t)
            if kind == "held" and t in self.via:
                return count_rows(conn, table, self.src.predicate(t), self.other_ref(t, r))
            cond = self.held(t, r) if kind == "held" else self.ret(t, r)
            return 0 if cond is None else count_rows(conn, table, cond)

        cycles = [("held", t) for t in sorted(self.groups)] + [("ret", t) for t in sorted(self.ret_groups)]
        rounds = rounds_needed(self.rounds, cycles, size, conn.dialect.name)
        if rounds != self.rounds:
            self.rounds = rounds
            self._held.clear()
            self._ret.clear()
        try:
            for t in sorted(set(self.groups) | set(self.ret_groups)):  # (each statement built once)
                sa.select(sa.func.count()).where(self.going(t)).compile(dialect=conn.dialect)
        except RecursionError:
            raise Refused(too_deep(rounds, conn.dialect.name)) from None
        return rounds

    def held_by(self, t: str) -> list[str]:
        """The tables outside the customer's data whose references keep rows of ``t``."""
        self.held(t)
        return sorted(self._held_by.get(t, set()))

    def keep(self, t: str) -> ColumnElement[bool] | None:
        """Rows of ``t`` that stay: retained, or kept for data outside the customer's."""
        conds = [c for c in (self.ret(t), self.held(t)) if c is not None]
        return sa.or_(*conds) if conds else None

    def shared_only(self, t: str) -> ColumnElement[bool] | None:
        """Rows kept for others and not retained (reported as kept_shared)."""
        held = self.held(t)
        if held is None:
            return None
        ret = self.ret(t)
        return held if ret is None else sa.and_(held, not_true(ret))

    def minimise_cond(self, t: str) -> ColumnElement[bool] | None:
        """Kept rows whose personal columns go (never the legally retained rows themselves)."""
        if t in self.retain_until:
            return None
        return self.keep(t)

    def doomed(self, t: str) -> ColumnElement[bool]:
        """This customer's rows of ``t`` that are to be deleted now (chain tables)."""
        pred = self.src.predicate(t)
        keep = self.keep(t)
        return pred if keep is None else sa.and_(pred, not_true(keep))

    def going(self, t: str) -> ColumnElement[bool]:
        """Rows of ``t`` the purge deletes: for owned_via tables only those no row that
        stays references (a person kept for another organisation is never changed)."""
        if t not in self.via:
            return self.doomed(t)
        keep = self.ret(t)
        conds = [self.src.predicate(t), not_true(self.other_ref(t))]
        return sa.and_(*conds, *([not_true(keep)] if keep is not None else []))

    def ref_exists(self, t: str, e: Edge, extra: Callable[[Any], ColumnElement[bool]] | None) -> Any:
        """Some row of ``e.child`` (``extra``: that also matches this) references this row of ``t``."""
        if e.child == t:
            self._alias_n += 1
        return ref_exists(self.src.table(t), self.src.table(e.child), e, extra, f"le_ref_{self._alias_n}")

    def outside_ref(self, t: str, e: Edge, outside: Callable[[Any], ColumnElement[bool]]) -> ColumnElement[bool]:
        """Some row of ``e.child`` (an owned table) outside the customer's data references
        this row of ``t`` through ``e``: from the child's shared set (``OutsideSets``)
        where there is one, else a subquery of the child itself (its rows ``outside``)."""
        shared = self._outside.reference(self.src.table(t), e) if e.child != t else None
        return shared if shared is not None else self.ref_exists(t, e, outside)

    def any_ref(self, t: str) -> ColumnElement[bool]:
        """Some row anywhere still references this row of ``t``."""
        tests = [self.ref_exists(t, e, None) for e in self.refs.get(t, [])]
        return sa.or_(*tests) if tests else sa.false()

    def other_ref(self, t: str, r: int | None = None) -> ColumnElement[bool]:
        """A row that stays after the purge references this row of ``t``: a row outside
        the customer's data, or one of the customer's rows kept for others (in a cycle
        of tables: kept by round ``r - 1``; ``None``: the last round)."""
        r = self._round(self.groups, t, r)
        tests = []
        for e in self.refs.get(t, []):
            if e.child == t or e.child not in self.owned or e.child in self.via:
                tests.append(self.ref_exists(t, e, None))
                continue
            pred = self.src.predicate(e.child)
            held = self.held(e.child, self._child_round(self.groups, t, e.child, r))
            if held is None:
                tests.append(self.outside_ref(t, e, outside_of(pred)))
            else:
                tests.append(self.ref_exists(t, e, outside_of(sa.and_(pred, not_true(held)))))
        return sa.or_(*tests) if tests else sa.false()

    def personal(self, t: str) -> tuple[dict[str, Any], ColumnElement[bool] | None]:
        """(blank values, "not yet blank" condition) for the personal columns of ``t``."""
        return personal_blanks(self.settings, self.src.table(t), t)


def retention_dates(
    settings: Settings, owned: list[str], termination: date | None, today: date, expire_all: bool
) -> tuple[dict[str, date], dict[str, date]]:
    """The tables retained under a legal basis: (kept until, by table) and (expired: since
    when, by table; ``expire_all``: every one)."""
    retain_until: dict[str, date] = {}
    expired: dict[str, date] = {}
    for t in owned:
        rule = settings.rule(t)
        if rule.retain and termination is not None:
            until = contract.retention_until(termination, rule.retain)
            if expire_all or today > until:
                expired[t] = until
            else:
                retain_until[t] = until
    return retain_until, expired


def personal_blanks(settings: Settings, table: sa.Table, t: str) -> tuple[dict[str, Any], ColumnElement[bool] | None]:
    """(blank values, "not yet blank" condition) for the personal columns of ``t``."""
    rule = settings.rule(t)
    values: dict[str, Any] = {}
    dirty: list[ColumnElement[bool]] = []
    unique_cols: set[str] = set()
    for constraint in table.constraints:
        if isinstance(constraint, (sa.UniqueConstraint, sa.PrimaryKeyConstraint)):
            unique_cols |= {c.name for c in constraint.columns}
    for index in table.indexes:
        if index.unique:
            unique_cols |= {c.name for c in index.columns if isinstance(c, sa.Column)}
    for name in rule.personal_columns:
        col = table.c[name]
        if col.nullable:
            values[name] = None
            dirty.append(col.isnot(None))
        elif isinstance(col.type, sa.String) and name not in unique_cols:
            values[name] = ""
            dirty.append(col != "")
        else:
            why = "is unique" if name in unique_cols else "is NOT NULL and not text"
            raise ConfigError(
                f"{settings.label}: [tables.{t}] personal_columns: {t}.{name} cannot be blanked "
                f"(it {why}); a retained {t} row could not be minimised"
            )
    return values, (sa.or_(*dirty) if dirty else None)


def _with_ancestors(table: sa.Table, edges: list[Edge], base: ColumnElement[bool], n: int) -> ColumnElement[bool]:
    """Rows matching ``base`` and every row they reach through the self-references
    (a recursive CTE; ``n`` makes its names unique in the statement)."""
    key = tuple(dict.fromkeys(c for e in edges for c in e.parent_cols))
    anc = sa.select(*[table.c[c] for c in key]).where(base).cte(name=f"le_keep_{n}", recursive=True)
    row = table.alias(f"le_keep_row_{n}")
    up = table.alias(f"le_keep_up_{n}")
    links = [
        sa.and_(
            *reference_is_set(row, e.child_cols, e.sentinels),
            *[up.c[pc] == row.c[cc] for cc, pc in zip(e.child_cols, e.parent_cols, strict=True)],
        )
        for e in edges
    ]
    step = sa.select(*[up.c[c] for c in key]).where(*[row.c[c] == anc.c[c] for c in key], sa.or_(*links))
    anc = anc.union(step)
    return cols_in(table, key, sa.select(*[anc.c[c] for c in key]))


def ref_exists(
    table: sa.Table, child: sa.Table, e: Edge, extra: Callable[[Any], ColumnElement[bool]] | None, alias: str
) -> Any:
    """Some row of ``child`` (``extra``: that also matches this) references this row of
    ``table`` through ``e`` (``alias``: the name of ``child`` when it is ``table``)."""
    if child is not table:
        # Uncorrelated: the referencing keys are collected once per statement (hashed
        # or indexed by the database), not looked up per row of ``t`` — without an
        # index on the referencing column, EXISTS scans the child table for each row.
        sub = (
            sa.select(*[child.c[c] for c in e.child_cols])
            .where(*reference_is_set(child, e.child_cols, e.sentinels))
            .correlate(None)
        )
        if extra is not None:
            sub = sub.where(extra(child))
        return sa.and_(*[table.c[c].isnot(None) for c in e.parent_cols], cols_in(table, e.parent_cols, sub))
    row: Any = child.alias(alias)
    conds = []
    pk = key_cols(table)
    if pk:
        conds.append(sa.not_(sa.and_(*[row.c[c.name] == table.c[c.name] for c in pk])))
    conds += [row.c[cc] == table.c[pc] for cc, pc in zip(e.child_cols, e.parent_cols, strict=True)]
    conds += reference_is_set(row, e.child_cols, e.sentinels)
    if extra is not None:
        conds.append(extra(row))
    return sa.exists().where(*conds)
