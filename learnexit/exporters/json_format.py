"""JSON: ``data/json/<table>.json`` per owned table, and ``data/json/<customer>.json`` nested.

Values (both documents) are JSON-native where JSON is exact and the canonical text of
``values.text`` otherwise: ``null``, ``true``/``false``, integers (64-bit), finite floats
as numbers; **decimals as strings** with every digit the database gave (``"87.50"``: a
JSON number would be read as a binary float by most parsers); dates and times ISO 8601
strings; binary base64 strings; NaN/Infinity as the strings ``"NaN"``/``"Infinity"``.

Per table: one array of objects, one object per row (keys are the column names), written
row by row (constant memory).

Nested (``<customer>.json``), so a receiving system need not re-join tables::

    {
      "customer": "acme", "customer_name": "Acme AB",
      "generated_at": "2026-11-29T10:15:00Z",
      "people_table": "users",
      "nesting": {"enrolments": {"under": "users", "key": "enrolments",
                                 "columns": ["user_id"], "references": ["id"]}, ...},
      "people": [ {"id": 7, "name": "...", ..., "enrolments": [{...}, ...], "logins": [...]} ],
      "other": {"organisations": [{...}], "courses": [...], "enrolments": [...], ...}
    }

* ``people``: every row of the ``[roles.people]`` table, each with the rows of every owned
  table that references it — directly (``enrolments.user_id``) or through a chain (a
  table referencing ``certificates`` nests inside each certificate).  A table nests at
  its shallowest position only, through one reference (for a table with several
  references to the same parent: the role's ``person`` column, else the first column
  by name).  The customer table's row never nests (it is the export's root).  Child rows sit under ``key`` — the table's name, unless the parent has a
  column of that name (then ``<table>_rows``).  ``nesting`` says where every nested
  table is.
* ``other``: per owned table (parents first), every row not placed under a person:
  tables that do not reference people at all (courses, the organisation…) and rows
  whose reference is NULL or points outside this export.

Every owned row therefore appears exactly once in the nested document.  Memory stays
bounded: people are read ``PEOPLE_BATCH`` at a time (keyset pagination on the id), and
for each batch every nested table is queried once with ``person IN (batch)``, grouped in
memory for that batch only, written, and dropped.  Without ``[roles.people]`` (or when
that table is not exported) no nested document is written, and a note says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from ..source import Edge
from .base import Exporter, ExportJob, TableSpec, TableWriter, register
from .values import Sanitiser, file_stem, unique_stems

FOLDER = "json"
PEOPLE_BATCH = 500
NESTED_FORMAT = "learnexit-nested/1"


def json_paths(tables: list[str], customer: str) -> dict[str, str]:
    """Per-table files below ``data/``: ``json/<table>.json`` (never the nested file's name)."""
    stems = unique_stems(tables, reserved=(file_stem(customer),))
    return {name: f"{FOLDER}/{stem}.json" for name, stem in stems.items()}


def nested_path(customer: str) -> str:
    return f"{FOLDER}/{file_stem(customer)}.json"


def generated_at(job: ExportJob) -> str:
    """The export's start as ISO 8601 (a naive time is UTC, as the ledger stores it)."""
    at = job.started_at
    return at.isoformat() if at.tzinfo is not None else at.isoformat() + "Z"


# --------------------------------------------------------------------------- the nesting plan


@dataclass(frozen=True)
class Nest:
    """``table`` nests under ``parent`` records, under ``key``, through ``edge``."""

    table: str
    parent: str
    edge: Edge
    key: str
    depth: int


@dataclass
class NestingPlan:
    people: str | None  # the [roles.people] table, None when there is no nesting
    person_id: str | None
    reason: str | None  # why there is no nesting
    nests: dict[str, Nest] = field(default_factory=dict)  # nested table → where
    children: dict[str, list[Nest]] = field(default_factory=dict)  # parent table → nested tables
    other_tables: list[str] = field(default_factory=list)  # tables with an "other" section, parents first

    @property
    def nested(self) -> bool:
        return self.people is not None

    def kids(self, table: str) -> list[Nest]:
        return self.children.get(table, [])

    def describe(self) -> dict[str, Any]:
        return {
            n.table: {
                "under": n.parent,
                "key": n.key,
                "columns": list(n.edge.child_cols),
                "references": list(n.edge.parent_cols),
            }
            for n in self.nests.values()
        }


def nesting_plan(job: ExportJob) -> NestingPlan:
    """Where each owned table goes in the nested documents (JSON and XML)."""
    names = [t.name for t in job.tables]
    role = job.settings.roles.get("people")
    if role is None:
        return NestingPlan(None, None, "no [roles.people] is configured", other_tables=names)
    if role.table not in names:
        return NestingPlan(
            None, None, f"the people table {role.table!r} is not part of this export", other_tables=names
        )
    people, person_id = role.table, role.columns["id"]
    specs = {t.name: t for t in job.tables}
    person_columns = {r.table: r.columns.get("person") for r in job.settings.roles.values()}

    def key_of(name: str) -> tuple[str, ...]:
        if name == people:
            return (person_id,)
        return specs[name].primary_key

    nests: dict[str, Nest] = {}
    children: dict[str, list[Nest]] = defaultdict(list)
    level = [people]
    depth = 0
    placed = {people}
    order = {n: i for i, n in enumerate(names)}
    while level:
        depth += 1
        found: dict[str, Edge] = {}
        for spec in job.tables:
            if spec.name in placed or spec.name == job.settings.customer.table:
                continue  # the customer's own row is the export's root, never a person's record
            candidates = [
                e
                for e in spec.foreign_keys
                if e.parent in level
                and e.parent != spec.name
                and key_of(e.parent)
                and tuple(e.parent_cols) == tuple(key_of(e.parent))
            ]
            if not candidates:
                continue
            preferred = person_columns.get(spec.name)

            def rank(e: Edge, preferred: str | None = preferred) -> tuple[int, int, tuple[str, ...]]:
                return (0 if e.child_cols == (preferred,) else 1, order[e.parent], e.child_cols)

            found[spec.name] = min(candidates, key=rank)
        for name in sorted(found, key=order.__getitem__):
            edge = found[name]
            parent_columns = {c.casefold() for c in specs[edge.parent].column_names}
            taken = parent_columns | {n.key.casefold() for n in children[edge.parent]}
            key, n = name, 1
            while key.casefold() in taken:
                key = f"{name}_rows" if n == 1 else f"{name}_rows{n}"
                n += 1
            nest = Nest(name, edge.parent, edge, key, depth)
            nests[name] = nest
            children[edge.parent].append(nest)
            placed.add(name)
        level = sorted(found, key=order.__getitem__)
    plan = NestingPlan(people, person_id, None, nests, dict(children))
    # people whose id is NULL cannot be referenced: they go to "other" with the rest
    id_column = specs[people].table.c[person_id]
    nullable_id = bool(id_column.nullable) and not id_column.primary_key
    plan.other_tables = [n for n in names if n != people or nullable_id]
    return plan


# --------------------------------------------------------------------------- reading the tree


@dataclass
class Record:
    table: str
    row: sa.Row[Any]
    children: list[tuple[Nest, list[Record]]]


def _in(table: sa.Table, cols: tuple[str, ...], what: Any) -> ColumnElement[bool]:
    if len(cols) == 1:
        return table.c[cols[0]].in_(what)
    return sa.tuple_(*[table.c[c] for c in cols]).in_(what)


class NestedReader:
    """Reads the nested structure through the snapshot, one query (fully read) at a time."""

    def __init__(self, job: ExportJob, plan: NestingPlan) -> None:
        self.job = job
        self.plan = plan
        self.source = job.source

    def placed(self, table: str, ids: Any) -> ColumnElement[bool]:
        """Rows of ``table`` that sit under one of the people ``ids`` (values or a SELECT)."""
        nest = self.plan.nests[table]
        t = self.source.table(table)
        if nest.parent == self.plan.people:
            return _in(t, nest.edge.child_cols, ids)
        parent = self.source.table(nest.parent)
        sub = sa.select(*[parent.c[c] for c in nest.edge.parent_cols]).where(
            self.source.predicate(nest.parent), self.placed(nest.parent, ids)
        )
        return _in(t, nest.edge.child_cols, sub)

    def all_people(self) -> sa.Select[Any]:
        assert self.plan.people and self.plan.person_id
        people = self.source.table(self.plan.people)
        return sa.select(people.c[self.plan.person_id]).where(self.source.predicate(self.plan.people))

    def people(self) -> Iterator[Record]:
        """Every person with everything nested under them, ``PEOPLE_BATCH`` people at a time."""
        plan = self.plan
        assert plan.people and plan.person_id
        people = self.source.table(plan.people)
        id_col = people.c[plan.person_id]
        last: Any = None
        while True:
            stmt = self.source.owned_select(plan.people).where(id_col.is_not(None))
            if last is not None:
                stmt = stmt.where(id_col > last)
            stmt = stmt.order_by(None).order_by(id_col).limit(PEOPLE_BATCH)
            batch = self.job.conn.execute(stmt).all()
            if not batch:
                return
            last = batch[-1]._mapping[plan.person_id]
            ids = [r._mapping[plan.person_id] for r in batch]
            groups: dict[str, dict[tuple[Any, ...], list[sa.Row[Any]]]] = {}
            for table in plan.nests:
                nest = plan.nests[table]
                by_parent: dict[tuple[Any, ...], list[sa.Row[Any]]] = defaultdict(list)
                for part in self.job.rows(table, where=self.placed(table, ids)):
                    for row in part:
                        m = row._mapping
                        by_parent[tuple(m[c] for c in nest.edge.child_cols)].append(row)
                groups[table] = by_parent
            for row in batch:
                yield self._record(plan.people, row, groups)
            if len(batch) < PEOPLE_BATCH:
                return

    def _record(self, table: str, row: sa.Row[Any], groups: dict[str, Any]) -> Record:
        children = []
        m = row._mapping
        for nest in self.plan.kids(table):
            key = tuple(m[c] for c in nest.edge.parent_cols)
            rows = groups[nest.table].get(key, ())
            children.append((nest, [self._record(nest.table, r, groups) for r in rows]))
        return Record(table, row, children)

    def other(self, table: str) -> Iterator[list[sa.Row[Any]]]:
        """The rows of ``table`` not placed under a person, in batches."""
        plan = self.plan
        where: Any = None
        if table == plan.people:
            assert plan.person_id
            where = self.source.table(table).c[plan.person_id].is_(None)
        elif table in plan.nests:
            where = sa.case((self.placed(table, self.all_people()), 0), else_=1) == 1
        return self.job.rows(table, where=where)


# --------------------------------------------------------------------------- writers


def _dumps(obj: Any) -> bytes:
    # Reflected names are str subclasses (quoted_name), which orjson takes as keys only so.
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


class JsonWriter(TableWriter):
    """``json/<table>.json``: an array of row objects, streamed."""

    def __init__(self, job: ExportJob) -> None:
        self.job = job
        self.values = Sanitiser("json")
        self.paths = json_paths([t.name for t in job.tables], job.customer)
        self.file: IO[bytes] | None = None
        self.first = True

    def start_table(self, spec: TableSpec) -> None:
        self.file = self.job.open_file(self.paths[spec.name], "wb")
        self.file.write(b"[")
        self.first = True

    def write_batch(self, spec: TableSpec, rows: list[sa.Row[Any]]) -> None:
        assert self.file is not None
        names = spec.column_names
        convert = self.values.json
        table = spec.name
        chunks = []
        for row in rows:
            obj = {c: convert(v, table, c) for c, v in zip(names, row, strict=True)}
            chunks.append(b"\n" + _dumps(obj) if self.first else b",\n" + _dumps(obj))
            self.first = False
        self.file.write(b"".join(chunks))

    def end_table(self, spec: TableSpec, rows: int) -> None:
        if self.file is not None:
            self.file.write(b"\n]\n")
            self.file.close()
            self.file = None
        self.values.report(self.job)

    def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def record_object(record: Record, values: Sanitiser, specs: dict[str, TableSpec]) -> dict[str, Any]:
    spec = specs[record.table]
    table = record.table
    obj = {c: values.json(v, table, c) for c, v in zip(spec.column_names, record.row, strict=True)}
    for nest, children in record.children:
        obj[nest.key] = [record_object(child, values, specs) for child in children]
    return obj


def write_nested_json(job: ExportJob, plan: NestingPlan) -> None:
    values = Sanitiser("json")
    specs = {t.name: t for t in job.tables}
    reader = NestedReader(job, plan)
    head = {
        "customer": job.customer,
        "customer_name": job.customer_name,
        "generated_at": generated_at(job),
        "format": NESTED_FORMAT,
        "people_table": plan.people,
        "nesting": plan.describe(),
    }
    with job.open_file(nested_path(job.customer), "wb") as f:
        f.write(_dumps(head)[:-1] + b',\n"people":[')
        first = True
        for record in reader.people():
            f.write((b"\n" if first else b",\n") + _dumps(record_object(record, values, specs)))
            first = False
        f.write(b'\n],\n"other":{')
        for i, table in enumerate(plan.other_tables):
            spec = specs[table]
            f.write((b"\n" if i == 0 else b",\n") + _dumps(table) + b":[")
            first = True
            names = spec.column_names
            for part in reader.other(table):
                chunk = []
                for row in part:
                    obj = {c: values.json(v, table, c) for c, v in zip(names, row, strict=True)}
                    chunk.append((b"\n" if first else b",\n") + _dumps(obj))
                    first = False
                f.write(b"".join(chunk))
            f.write(b"\n]" if not first else b"]")
        f.write(b"\n}}\n")
    values.report(job)


@register
class JsonExporter(Exporter):
    name = "json"
    description = "one JSON file per table, and one nested document: each person with their records"
    folder = FOLDER
    order = 20

    def writer(self, job: ExportJob) -> TableWriter:
        return JsonWriter(job)

    def after(self, job: ExportJob) -> None:
        plan = nesting_plan(job)
        if not plan.nested:
            job.note(
                "json",
                f"no nested document {nested_path(job.customer)}: {plan.reason} (the per-table files hold every row)",
            )
            return
        write_nested_json(job, plan)
