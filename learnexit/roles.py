"""Roles are checked against the reflected source: a role's ``person`` column must
reference ``[roles.people]`` (its ``id`` column), a ``course`` column ``[roles.courses]``.

The documents and the nested JSON/XML read those columns as people and course ids; a
column that holds something else (``person = "enrolment_id"``) would give documents
that show people by an id that is no person's.  A reference is a declared foreign key
or a ``[[relations]]`` entry, on exactly that column, to exactly the role's id column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from .config import Settings
from .errors import ConfigError

__all__ = ["check_roles"]

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
    ``person``/``course`` column does not reference the people/courses role's id."""
    by_name = dict(tables) if isinstance(tables, Mapping) else {t.name: t for t in tables}
    refs: set[tuple[str, str, str, str]] | None = None
    for name, role in settings.roles.items():
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
