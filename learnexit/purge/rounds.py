"""Tables whose kept rows depend on each other in a cycle, and how many rounds settle them.

A customer's row stays when a row that stays references it (a row outside the customer's
data, or another of its rows that stays).  Where tables reference each other in a cycle
(a people table and the rows whose ``last_id`` it records, an organisation's
back-reference to its latest course), the rows held that way can form chains of any
length: person 505 (another organisation's) keeps course 1001, course 1001 keeps person
503, person 503 keeps course 1003.  No fixed depth of conditions follows every chain, so
the :class:`~learnexit.purge.scope.Scope` builds them in rounds — round 0 sees only rows
outside the customer's data, round *r* also the rows held in round *r − 1* — and the
purge counts, on its own connection, whether one more round would keep any more rows.
The sets only grow from round to round, so equal counts mean the chain has ended.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

from ..errors import Refused
from ..source import Edge

__all__ = ["MAX_ROUNDS", "cyclic_groups", "holding_depends", "rounds_needed", "too_deep"]

MAX_ROUNDS = 64
K = TypeVar("K", bound=Hashable)


def holding_depends(
    owned: Collection[str], via: Collection[str], refs: Mapping[str, list[Edge]]
) -> dict[str, set[str]]:
    """Owned table -> the owned tables whose kept rows decide which of its rows are kept
    (``refs``: table -> the edges that reference it).  A row of an owned_via table that
    another owned_via row references always stays, so that pair decides nothing."""
    out: dict[str, set[str]] = {}
    for t in owned:
        deps = out.setdefault(t, set())
        for e in refs.get(t, []):
            if e.child != t and e.child in owned and not (t in via and e.child in via):
                deps.add(e.child)
    return out


def cyclic_groups(depends: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """The tables that lie on a cycle of ``depends`` (table -> tables it depends on),
    each with the number of its strongly connected group (Tarjan's algorithm, without
    recursion: a schema may have hundreds of tables)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: dict[str, int] = {}
    counter = 0
    for start in depends:
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, list(depends.get(start, ())))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in depends:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, list(depends.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    number = len(set(groups.values()))
                    for member in members:
                        groups[member] = number
    return groups


def rounds_needed(start: int, cycles: Sequence[K], size: Callable[[K, int], int], dialect: str) -> int:
    """The first number of rounds from ``start`` at which one more round keeps nothing
    more: ``size(cycle, r)``, the rows round ``r`` keeps, is the same for every one of
    ``cycles`` as round ``r - 1``'s (each counted once).  A round deeper than one
    statement can nest on ``dialect``, or more than ``MAX_ROUNDS``, is refused."""
    counted: dict[tuple[K, int], int] = {}

    def count(cycle: K, r: int) -> int:
        if (cycle, r) not in counted:
            counted[(cycle, r)] = size(cycle, r)
        return counted[(cycle, r)]

    rounds = max(start, 1)
    try:
        while any(count(cycle, rounds) != count(cycle, rounds - 1) for cycle in cycles):
            rounds += 1
            if rounds > MAX_ROUNDS:
                raise Refused(
                    f"rows kept for others reference each other more than {MAX_ROUNDS} levels deep "
                    "through a cycle of tables; the purge cannot decide which of them stay"
                )
    except RecursionError:
        raise Refused(too_deep(rounds, dialect)) from None
    return rounds


def too_deep(rounds: int, dialect: str) -> str:
    """Why the purge refuses rows held through more rounds than one statement can say."""
    return (
        f"rows kept for others reference each other about {rounds} levels deep through a cycle of "
        f"tables, too deep for one statement on {dialect}; the purge cannot decide which of them stay"
    )
