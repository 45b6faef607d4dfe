"""Roles on real schemas, for the documents: a value in another table, rows of no one.

``[roles.quiz_results] max_score = "quiz.grade"``: the maximum lives in the quiz table,
reached through the one reference from the role's table (``roles.remote_link``); it is
read once per export as a lookup (key → value) from this customer's rows of that table.
A row whose person is NULL or a value that means no one (``roles.nobody``) belongs to
no one: per-person documents leave it out, and a note counts such rows (names only,
never a value).
"""

from __future__ import annotations

from typing import Any

from ..config import Role
from ..roles import remote_link
from .base import ExportJob


def remote_values(job: ExportJob, role: Role, key: str) -> tuple[str, dict[str, Any]] | None:
    """(the role table's column that leads there, {referenced key as text: value}) for
    ``role.remote[key]``; None when that table is not part of this customer's export."""
    if key not in role.remote:
        return None
    child, other, key_column, value_column = remote_link(job.settings, job.source.datamap.by_name, role, key)
    if other not in {t.name for t in job.tables}:
        return None
    table = job.source.table(other)
    lookup: dict[str, Any] = {}
    for batch in job.tuples(other, columns=[table.c[key_column], table.c[value_column]]):
        for ref, value in batch:
            if ref is not None:
                lookup[str(ref)] = value
    return child, lookup


def no_one_note(rows: int, role: Role, what: str) -> str:
    """``2 rows of certificates name no person (user_id empty or meaning no one): no
    certificate for them`` (a table's and a column's name, never a value)."""
    column = role.columns.get("person", "person")
    counted = f"1 row of {role.table} names" if rows == 1 else f"{rows} rows of {role.table} name"
    return f"{counted} no person ({column} empty or meaning no one): no {what} for {'it' if rows == 1 else 'them'}"
