"""Roles are checked against the reflected source: a role's ``person`` column must
reference ``[roles.people]`` (its ``id`` column), a ``course`` column ``[roles.courses]``,
and a column in another table (``max_score = "quiz.grade"``) must be reached through
exactly one reference from the role's table to that table.

The documents and the nested JSON/XML read those columns as people and course ids; a
column that holds something else (``person = "enrolment_id"``) would give documents
that show people by an id that is no person's.  A reference is a declared foreign key
or a ``[[relations]]`` entry, on exactly that column, to exactly the role's id column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from .config import Role, Settings
from .errors import ConfigError

__all__ = ["check_roles", "nobody", "remote_link"]

# role column → the role whose id it must reference
REFERENCING = {"person": "people", "course": "courses"}


def _references(settings: Settings, tables: Mapping[str, sa.Table]) -> set[tuple[str, str, str, str]]:
    """(table, column, referenced table, referenced column) of every one-column reference."""
    refs: set[tuple[str, str, str, str]] = set()
    for table in tables.values():
        for fk in table.foreign_key_constraints:
            for element in fk.elements:
                if len(fk.elements) == 1:
                    refs.add((table.name, element.parent.name, fk.referred_table.name, element.column.name))
    for rel in settings.relations:
        if len(rel.from_columns) == 1:
            refs.add((rel.from_table, rel.from_columns[0], rel.to_table, rel.to_columns[0]))
    return refs


def check_roles(settings: Settings, tables: Mapping[str, sa.Table] | Iterable[sa.Table]) -> None:
    """ConfigError (exit 2) naming the file, the role's key and the problem when a role's
    ``person``/``course`` column does not reference the people/courses role's id, or a
    column in another table (``max_score = "quiz.grade"``) cannot be reached."""
    by_name = dict(tables) if isinstance(tables, Mapping) else {t.name: t for t in tables}
    refs: set[tuple[str, str, str, str]] | None = None
    for name, role in settings.roles.items():
        for key in role.remote:
            remote_link(settings, by_name, role, key)
        for key, target_name in REFERENCING.items():
            column = role.columns.get(key)
            target = settings.roles.get(target_name)
            if column is None or target is None or name == target_name:
                continue
            if refs is None:
                refs = _references(settings, by_name)
            goal = (target.table, target.columns["id"])
            if (role.table, column, *goal) in refs:
                continue
            leads = sorted(f"{t}.{c}" for (rt, rc, t, c) in refs if (rt, rc) == (role.table, column))
            found = f"it references {', '.join(leads)}" if leads else "no foreign key or [[relations]] says so"
            raise ConfigError(
                f"{settings.label}: [roles.{name}] {key}: {role.table}.{column} must reference "
                f"[roles.{target_name}] {goal[0]}.{goal[1]}, but {found}"
            )


def remote_link(settings: Settings, tables: Mapping[str, sa.Table], role: Role, key: str) -> tuple[str, str, str, str]:
    """(column of the role's table, referenced table, its key column, the value column) of
    ``role.remote[key]``: ``quiz_grades.quiz`` → ``quiz.id``, value ``quiz.grade``.  The
    reference is the one declared (foreign key or ``[[relations]]``) from the role's table
    to that table; with several, the one on the role's ``quiz`` column.  ConfigError else."""
    other, value = role.remote[key]
    where = f"{settings.label}: [roles.{role.name}] {key}"
    if other not in tables:
        raise ConfigError(f"{where}: table {other} does not exist")
    if value not in tables[other].c:
        raise ConfigError(f"{where}: {other} has no column {value}")
    links = sorted((c, pc) for (t, c, rt, pc) in _references(settings, tables) if t == role.table and rt == other)
    preferred = [link for link in links if link[0] == role.columns.get("quiz")]
    if len(links) > 1 and len(preferred) == 1:
        links = preferred
    if len(links) != 1:
        found = "no foreign key or [[relations]] leads there" if not links else "several references lead there"
        raise ConfigError(f"{where}: {other}.{value} must be reached from {role.table} by one reference, but {found}")
    return links[0][0], other, links[0][1], value


def nobody(settings: Settings, role: Role) -> frozenset[str]:
    """The values of ``role``'s ``person`` column that mean no one, as text: ``[roles.people]
    nobody`` and the column's own "none" values (``sentinels`` of ``[tables.X]`` or of a
    ``[[relations]]`` entry from that column).  NULL is no one anyway."""
    column = role.columns.get("id" if role.name == "people" else "person")
    people = settings.roles.get("people")
    values: list[object] = list(people.nobody) if people is not None else []
    if column is not None and role.name != "people":
        values += settings.rule(role.table).sentinels_of(column)
        for rel in settings.relations:
            if rel.from_table == role.table and rel.from_columns == (column,):
                values += rel.sentinels
    return frozenset(str(v) for v in values)
