"""Read Moodle's XMLDB definitions (``db/install.xml``) and fill one synthetic site.

Our own reader of the documented XMLDB format, for ``bench/moodle_real.py``: a file has
``<TABLE NAME>`` elements with ``<FIELD NAME TYPE LENGTH NOTNULL SEQUENCE DEFAULT>``,
``<KEY NAME TYPE FIELDS REFTABLE REFFIELDS>`` (TYPE primary, unique, foreign,
foreign-unique) and ``<INDEX NAME UNIQUE FIELDS>``.  No Moodle file is part of learnexit.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    length: int | None
    notnull: bool
    default: str | None
    comment: str = ""


@dataclass(frozen=True)
class ForeignKey:
    table: str
    fields: tuple[str, ...]
    reftable: str
    reffields: tuple[str, ...]


@dataclass
class TableDef:
    name: str
    fields: list[Field] = field(default_factory=list)
    uniques: list[tuple[str, ...]] = field(default_factory=list)
    foreign: list[ForeignKey] = field(default_factory=list)


@dataclass
class Schema:
    tables: dict[str, TableDef] = field(default_factory=dict)

    @property
    def foreign_keys(self) -> list[ForeignKey]:
        return [fk for t in self.tables.values() for fk in t.foreign]


def _cols(text: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in (text or "").split(",") if c.strip())


def read_schema(folder: Path) -> Schema:
    schema = Schema()
    for path in sorted(folder.rglob("install.xml")):
        for el in ET.parse(path).getroot().iter("TABLE"):
            t = TableDef(el.get("NAME", ""))
            for f in el.iter("FIELD"):
                length = f.get("LENGTH")
                t.fields.append(
                    Field(
                        f.get("NAME", ""),
                        f.get("TYPE", "char").lower(),
                        int(length) if length and length.isdigit() else None,
                        f.get("NOTNULL") == "true",
                        f.get("DEFAULT"),
                        f.get("COMMENT", ""),
                    )
                )
            for k in el.iter("KEY"):
                kind, cols = k.get("TYPE", ""), _cols(k.get("FIELDS"))
                if kind in ("unique", "foreign-unique"):
                    t.uniques.append(cols)
                if kind in ("foreign", "foreign-unique"):
                    t.foreign.append(ForeignKey(t.name, cols, k.get("REFTABLE", ""), _cols(k.get("REFFIELDS"))))
            for i in el.iter("INDEX"):
                if i.get("UNIQUE") == "true":
                    t.uniques.append(_cols(i.get("FIELDS")))
            schema.tables[t.name] = t
    return schema


# --------------------------------------------------------------------------- one site's data

SIZES = {"user": 300, "course": 40, "context": 800, "course_modules": 300, "role": 8, "modules": 25}
_TIME_WORDS = ("time", "date", "start", "end", "modified", "created", "expires", "lastaccess", "deadline")


def _order(schema: Schema) -> list[str]:
    """Referenced tables first (cycles broken in name order)."""
    done: list[str] = []
    seen: set[str] = set()

    def visit(name: str, path: set[str]) -> None:
        if name in seen or name in path or name not in schema.tables:
            return
        path.add(name)
        for fk in schema.tables[name].foreign:
            if fk.reftable != name:
                visit(fk.reftable, path)
        path.discard(name)
        seen.add(name)
        done.append(name)

    for name in sorted(schema.tables):
        visit(name, set())
    return done


def _plain(rng: random.Random, f: Field, row_id: int, table: str) -> Any:
    """A value for a column that is no declared reference."""
    if f.type == "int":  # LENGTH is Moodle's number of digits (4: a SMALLINT)
        return min(_int(rng, f), 10 ** (f.length or 10) - 1, 32_767 if (f.length or 10) <= 4 else 2**31 - 1)
    name = f.name.lower()
    if f.type in ("number", "float"):
        return round(rng.random() * 100, 5)
    if f.type == "binary":
        return b"\x00\x01"
    if f.type == "char":
        text = f"{name}{row_id}.{table}"  # no two tables share a text value by chance
        return text[: f.length] if f.length else text
    return f"{name} text {row_id}"


def _int(rng: random.Random, f: Field) -> int:
    name = f.name.lower()
    if name.startswith("time") or any(name.endswith(w) for w in _TIME_WORDS):
        return rng.randint(1_600_000_000, 1_750_000_000)
    if f.length is not None and f.length <= 2:
        return rng.randint(0, 1)
    if name.endswith("id") or name in ("instance", "itemid", "objectid"):
        return rng.randint(0, 200)  # an undeclared (often polymorphic) reference
    return rng.randint(0, 100) if rng.random() < 0.4 else rng.randint(101, 1_000_000)


def _table_rows(
    rng: random.Random, t: TableDef, n: int, made: dict[str, list[dict[str, Any]]], planned: dict[str, int]
) -> list[dict[str, Any]]:
    fields = [f for f in t.fields if f.name != "id"]
    rows = [{"id": i, **{f.name: _plain(rng, f, i, t.name) for f in fields}} for i in range(1, n + 1)]
    by_name = {f.name: f for f in t.fields}
    for fk in sorted(t.foreign, key=lambda k: len(k.fields)):  # composite keys last: they win
        target = made.get(fk.reftable)
        for row in rows:
            if fk.reftable == t.name and fk.reffields == ("id",):
                row[fk.fields[0]] = rng.randint(1, row["id"] - 1) if row["id"] > 1 else 0
            elif target:
                pick = target[rng.randrange(len(target))]
                for col, ref in zip(fk.fields, fk.reffields, strict=False):
                    if pick.get(ref) is not None or not by_name[col].notnull:
                        row[col] = pick.get(ref)
            elif fk.reffields == ("id",) and fk.reftable in planned:
                row[fk.fields[0]] = rng.randint(1, planned[fk.reftable])
        if len(fk.fields) == 1 and (f := by_name.get(fk.fields[0])) is not None:
            for row in rows:
                if f.default == "0" and rng.random() < 0.15:
                    row[f.name] = 0  # Moodle's "none"
                elif not f.notnull and f.default is None and rng.random() < 0.15:
                    row[f.name] = None
    kept: list[dict[str, Any]] = []
    seen: list[set[tuple[Any, ...]]] = [set() for _ in t.uniques]
    for row in rows:
        keys = [tuple(row.get(c) for c in u) for u in t.uniques]
        if any(None not in k and k in s for k, s in zip(keys, seen, strict=True)):
            continue
        for k, s in zip(keys, seen, strict=True):
            s.add(k)
        kept.append(row)
    return kept


def fill(
    engine: sa.Engine, metadata: sa.MetaData, schema: Schema, prefix: str, *, log_rows: int, seed: int
) -> dict[str, int]:
    """Rows for every table (ids 1..N, N varying by table), references per the declared
    foreign keys, 0 or NULL for "none" in a share of rows where Moodle's column defaults
    to 0 (or is nullable), ``log_rows`` rows in the standard log.  Returns rows per table."""
    rng = random.Random(seed)
    planned = {}
    for name in schema.tables:
        planned[name] = SIZES.get(name, random.Random(f"{seed}:{name}").randint(3, 120))
    planned["logstore_standard_log"] = log_rows
    made: dict[str, list[dict[str, Any]]] = {}
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        for name in _order(schema):
            rows = _table_rows(rng, schema.tables[name], planned[name], made, planned)
            if name == "course" and rows:
                rows[0]["format"] = "site"  # every Moodle has its front page: course 1, format 'site'
                rows[0]["fullname"] = "Site A Academy"
            table = metadata.tables[prefix + name]
            for start in range(0, len(rows), 5000):
                conn.execute(table.insert(), rows[start : start + 5000])
            counts[name] = len(rows)
            if name != "logstore_standard_log":
                made[name] = rows
    return counts
