"""Values that mean "no reference" (``sentinels``: Moodle's ``courseid = 0``) in the export.

The ownership predicates (``learnexit.source.ownership``) already read such a value as NULL.  The
export does the same: a row holding one is not a reference that points outside the
export (no note, the foreign key is kept), and the nested JSON/XML place it under no one.

Where a consumer checks references itself, the package says what the value means:
``datapackage.json`` gives the column a field-level ``missingValues`` (Table Schema; the
value reads as "no value" in that column only), and the SQL dump, whose FOREIGN KEY
would refuse the value, leaves that constraint out with a note naming the value.

The values named here are the configuration's, never a source value.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..source import Edge, sentinels_typed
from .values import csv_text


def _as_text(value: Any) -> str:
    return csv_text(value)


def none_texts(edge: Edge) -> dict[str, list[str]]:
    """Per child column of ``edge``: its "no reference" values as CSV text, in order."""
    out: dict[str, list[str]] = {}
    for column, values in edge.sentinels:
        texts = [t for t in dict.fromkeys(_as_text(v) for v in values) if t != ""]
        if texts:
            out[column] = texts
    return out


def holds_none(edge: Edge, ref: tuple[Any, ...]) -> bool:
    """True when a reference (the child columns' values, in order) holds a "no reference"
    value in one of its columns: it is no reference at all."""
    if not edge.sentinels:
        return False
    texts = none_texts(edge)
    for column, value in zip(edge.child_cols, ref, strict=True):
        if value is not None and column in texts and _as_text(value) in texts[column]:
            return True
    return False


def none_wording(edge: Edge, table: str | None = None) -> str:
    """``userid: 0 means none`` (``logs.userid`` with ``table``; ``a: 0, -1 means none;
    b: 0 means none`` for several columns)."""
    prefix = f"{table}." if table else ""
    parts = [f"{prefix}{column}: {', '.join(texts)} means none" for column, texts in none_texts(edge).items()]
    return "; ".join(parts)


def declare_none(fields: list[dict[str, Any]], edge: Edge, primary_key: tuple[str, ...]) -> bool:
    """Give the Table Schema ``fields`` of ``edge``'s child columns their "no reference"
    values as a field-level ``missingValues`` (after ``""``, the schema's own), so
    ``frictionless validate`` reads them as no value and the foreign key holds; such a
    field is no longer ``required``.  False (``fields`` untouched) when a column is part
    of the primary key, which cannot be missing: the foreign key is then not declared."""
    texts = none_texts(edge)
    if not texts:
        return True
    if set(texts) & set(primary_key):
        return False
    for spec in fields:
        values = texts.get(spec["name"])
        if values is None:
            continue
        spec["missingValues"] = list(dict.fromkeys(["", *spec.get("missingValues", []), *values]))
        constraints = spec.get("constraints")
        if constraints is not None:
            constraints.pop("required", None)
            if not constraints:
                del spec["constraints"]
    return True


def no_none(table: Any, edge: Edge) -> list[Any]:
    """Conditions that none of ``edge``'s child columns of ``table`` (a table or subquery
    with those columns) holds a "no reference" value (NULL passes: it is handled apart)."""
    conds: list[Any] = []
    for column, values in edge.sentinels:
        col = table.c[column]
        typed = sentinels_typed(col, values)
        if typed:
            conds.append(sa.or_(col.is_(None), col.not_in(typed)))
    return conds
