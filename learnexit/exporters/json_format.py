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
bounded (see ``NestedReader``): on SQLite and PostgreSQL each table nested under people
is read once, ordered by person, and merged with the people, so one person's rows are
in memory at a time; on MySQL people are read in batches cut to about ``NESTED_ROWS``
nested rows and each nested table is queried per batch.  Without ``[roles.people]`` (or
when that table is not exported) no nested document is written, and a note says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from ..errors import OperationalError
from ..source import Edge
from .base import Exporter, ExportJob, TableSpec, TableWriter, register, stream_tuples
from .values import Sanitiser, file_stem, has_surrogates, unique_stems

FOLDER = "json"
PEOPLE_BATCH = 500
NESTED_ROWS = 20_000  # nested rows in memory at once, about (batched reading)
STREAM_BATCH = 1000  # rows fetched at a time from each table merged with the people
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
    row: tuple[Any, ...]  # the row's values, in the table's column order
    children: list[tuple[Nest, list[Record]]]
    value: Any = None  # the row as the reader's ``prepare`` made it (format-specific), if any


# prepare(table, rows) -> one prepared value per row (a format's converted form of it)
Prepare = Callable[[str, list[tuple[Any, ...]]], list[Any]]


def _in(table: sa.Table, cols: tuple[str, ...], what: Any) -> ColumnElement[bool]:
    if len(cols) == 1:
        return table.c[cols[0]].in_(what)
    return sa.tuple_(*[table.c[c] for c in cols]).in_(what)


class _Stream:
    """One nested table's rows in the order of the people they belong to (a merge join)."""

    def __init__(self, batches: Iterator[list[tuple[Any, Any]]], key: int) -> None:
        self.batches = batches
        self.key = key
        self.batch: list[tuple[Any, Any]] = []
        self.pos = 0

    def _fill(self) -> bool:
        while self.pos >= len(self.batch):
            batch = next(self.batches, None)
            if batch is None:
                return False
            self.batch, self.pos = batch, 0
        return True

    def take(self, person: Any) -> list[tuple[Any, Any]]:
        """The rows that belong to ``person`` (they come next, if there are any)."""
        out: list[tuple[Any, Any]] = []
        key = self.key
        while self._fill():
            batch, pos = self.batch, self.pos
            end = pos
            while end < len(batch) and batch[end][0][key] == person:
                end += 1
            out.extend(batch[pos:end])
            self.pos = end
            if end < len(batch):
                break
        return out

    def left(self) -> bool:
        return self._fill()


class NestedReader:
    """Reads the nested structure through the snapshot, with bounded memory.

    On SQLite and PostgreSQL with whole-number person ids, each table nested directly
    under people is read once, ordered by its person reference, and merged with the
    people (ordered by id): one query per table, and only one person's rows in memory.
    Elsewhere (MySQL allows one open result at a time) people are read in batches and
    each nested table is queried per batch, the batches cut so that about
    ``NESTED_ROWS`` nested rows are in memory at once.  Tables nested deeper are read
    per batch of people in both cases.  ``prepare(table, rows)`` turns each batch of
    rows into the format's own values once (a column at a time); they are ``Record.value``.
    """

    def __init__(self, job: ExportJob, plan: NestingPlan, prepare: Prepare | None = None) -> None:
        self.job = job
        self.plan = plan
        self.source = job.source
        self.prepare = prepare
        self.index = {t.name: {c: i for i, c in enumerate(t.column_names)} for t in job.tables}

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

    def _prepared(self, table: str, batches: Iterator[list[tuple[Any, ...]]]) -> Iterator[list[tuple[Any, Any]]]:
        """(row, prepared value) pairs, a batch at a time."""
        for batch in batches:
            values = self.prepare(table, batch) if self.prepare is not None else [None] * len(batch)
            yield list(zip(batch, values, strict=True))

    def _key(self, table: str, row: tuple[Any, ...], cols: tuple[str, ...]) -> tuple[Any, ...]:
        index = self.index[table]
        return tuple(row[index[c]] for c in cols)

    def _streaming(self) -> bool:
        plan = self.plan
        assert plan.people and plan.person_id
        if self.job.conn.dialect.name not in ("sqlite", "postgresql"):
            return False
        column = next(c for c in self.job.spec(plan.people).columns if c.name == plan.person_id)
        return column.kind == "integer"

    def people(self) -> Iterator[Record]:
        """Every person with everything nested under them."""
        plan = self.plan
        assert plan.people and plan.person_id
        people = self.source.table(plan.people)
        id_col = people.c[plan.person_id]
        id_index = self.index[plan.people][plan.person_id]
        direct = [n for n in plan.kids(plan.people)]
        streams: dict[str, _Stream] = {}
        if self._streaming():
            for nest in direct:
                t = self.source.table(nest.table)
                order = [t.c[nest.edge.child_cols[0]], *t.primary_key.columns]
                where = self.placed(nest.table, self.all_people())
                batches = self.job.tuples(nest.table, where=where, order_by=order, batch_size=STREAM_BATCH)
                streams[nest.table] = _Stream(
                    self._prepared(nest.table, batches), self.index[nest.table][nest.edge.child_cols[0]]
                )
            for batch in self._people_batches(id_col, PEOPLE_BATCH):
                ids = [row[id_index] for row, _ in batch]
                groups = self._groups([n for n in plan.nests if n not in streams], ids)
                for row, value in batch:
                    person = row[id_index]
                    for table, stream in streams.items():
                        groups[table] = {(person,): stream.take(person)}
                    yield self._record(plan.people, row, value, groups)
            for table, stream in streams.items():
                if stream.left():
                    raise OperationalError(f"nested documents: rows of {table} could not be placed under their person")
            return
        weights = self._weights(direct)
        for batch in self._people_batches(id_col, PEOPLE_BATCH):
            for part in _cut(batch, [weights.get(row[id_index], 0) for row, _ in batch], NESTED_ROWS):
                ids = [row[id_index] for row, _ in part]
                groups = self._groups(list(plan.nests), ids)
                for row, value in part:
                    yield self._record(plan.people, row, value, groups)

    def _people_batches(self, id_col: Any, size: int) -> Iterator[list[tuple[Any, Any]]]:
        """The people (id not NULL) in id order, ``size`` at a time (keyset pagination)."""
        plan = self.plan
        assert plan.people and plan.person_id
        id_index = self.index[plan.people][plan.person_id]
        last: Any = None
        while True:
            where = id_col.is_not(None) if last is None else sa.and_(id_col.is_not(None), id_col > last)
            stmt = self.job.select(plan.people, where=where, order_by=[id_col]).limit(size)
            rows = [r for part in stream_tuples(self.job.conn, stmt, size) for r in part]
            if not rows:
                return
            last = rows[-1][id_index]
            yield next(self._prepared(plan.people, iter([rows])))
            if len(rows) < size:
                return

    def _weights(self, direct: list[Nest]) -> dict[Any, int]:
        """Rows nested directly under each person (to cut the batches)."""
        weights: dict[Any, int] = defaultdict(int)
        for nest in direct:
            t = self.source.table(nest.table)
            col = t.c[nest.edge.child_cols[0]]
            stmt = (
                sa.select(col, sa.func.count())
                .where(self.source.predicate(nest.table), self.placed(nest.table, self.all_people()))
                .group_by(col)
            )
            for key, n in self.job.conn.execute(stmt):
                weights[key] += int(n)
        return weights

    def _groups(self, tables: list[str], ids: list[Any]) -> dict[str, dict[tuple[Any, ...], list[tuple[Any, Any]]]]:
        """The rows of ``tables`` under the people ``ids``, grouped by the row they nest in."""
        groups: dict[str, dict[tuple[Any, ...], list[tuple[Any, Any]]]] = {}
        for table in tables:
            nest = self.plan.nests[table]
            by_parent: dict[tuple[Any, ...], list[tuple[Any, Any]]] = defaultdict(list)
            for part in self._prepared(table, self.job.tuples(table, where=self.placed(table, ids))):
                for item in part:
                    by_parent[self._key(table, item[0], nest.edge.child_cols)].append(item)
            groups[table] = by_parent
        return groups

    def _record(self, table: str, row: tuple[Any, ...], value: Any, groups: dict[str, Any]) -> Record:
        kids = self.plan.children.get(table)
        if not kids:
            return Record(table, row, [], value)
        children = []
        for nest in kids:
            key = self._key(table, row, nest.edge.parent_cols)
            items = groups[nest.table].get(key, ())
            children.append((nest, [self._record(nest.table, r, v, groups) for r, v in items]))
        return Record(table, row, children, value)

    def other(self, table: str) -> Iterator[list[tuple[Any, Any]]]:
        """The rows of ``table`` not placed under a person, in batches of (row, prepared)."""
        plan = self.plan
        where: Any = None
        if table == plan.people:
            assert plan.person_id
            where = self.source.table(table).c[plan.person_id].is_(None)
        elif table in plan.nests:
            where = sa.case((self.placed(table, self.all_people()), 0), else_=1) == 1
        return self._prepared(table, self.job.tuples(table, where=where))


def _cut(items: list[Any], weights: list[int], budget: int) -> Iterator[list[Any]]:
    """``items`` in runs whose weights add up to at most ``budget`` (a heavy item alone)."""
    run: list[Any] = []
    total = 0
    for item, weight in zip(items, weights, strict=True):
        if run and total + weight > budget:
            yield run
            run, total = [], 0
        run.append(item)
        total += weight
    if run:
        yield run


# --------------------------------------------------------------------------- writers


def _dumps(obj: Any) -> bytes:
    # Reflected names are str subclasses (quoted_name), which orjson takes as keys only so.
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


def json_objects(values: Sanitiser, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """The rows as JSON objects (values as ``Sanitiser.json`` gives them), a column at a
    time.  Strings with lone surrogates are left as they are: ``dump_objects`` fixes them."""
    if not rows:
        return []
    return json_objects_of_columns(values, spec, list(zip(*rows, strict=True)))


def json_objects_of_columns(values: Sanitiser, spec: TableSpec, columns: list[Sequence[Any]]) -> list[dict[str, Any]]:
    """``json_objects`` of a batch given as its columns."""
    names = [str(c) for c in spec.column_names]
    table = spec.name
    converted = [values.json_column(col, table, name) for col, name in zip(columns, names, strict=True)]
    return [dict(zip(names, row, strict=True)) for row in zip(*converted, strict=True)]


def fix_surrogates(values: Sanitiser, table: str, obj: dict[str, Any]) -> None:
    """Replace lone surrogates (which orjson refuses) in an object's strings, noted."""
    for key, value in obj.items():
        if type(value) is str and has_surrogates(value):
            obj[key] = values.encodable(value, table, key)


def dump_objects(values: Sanitiser, table: str, objects: list[dict[str, Any]]) -> bytes:
    """Objects as JSON, one a line (lone surrogates replaced and noted first if need be)."""
    try:
        return b",\n".join(map(_dumps, objects))
    except orjson.JSONEncodeError:
        for obj in objects:
            fix_surrogates(values, table, obj)
        return b",\n".join(map(_dumps, objects))


class JsonWriter(TableWriter):
    """``json/<table>.json``: an array of row objects, streamed a batch at a time."""

    def __init__(self, job: ExportJob) -> None:
        self.job = job
        self.values = Sanitiser("json")
        self.paths = json_paths([t.name for t in job.tables], job.customer)
        self.file: IO[bytes] | None = None
        self.first = True

    def start_table(self, spec: TableSpec) -> None:
        self.file = self.job.open_file(self.paths[spec.name], "wb", buffering=1 << 20)
        self.file.write(b"[")
        self.first = True

    def write_batch(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.write_columns(spec, list(zip(*rows, strict=True)), len(rows))

    def write_columns(self, spec: TableSpec, columns: list[Sequence[Any]], rows: int) -> None:
        assert self.file is not None
        if not rows:
            return
        text = dump_objects(self.values, spec.name, json_objects_of_columns(self.values, spec, columns))
        self.file.write((b"\n" if self.first else b",\n") + text)
        self.first = False

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


def record_object(
    record: Record, values: Sanitiser, specs: dict[str, TableSpec], slot: int | None = None
) -> dict[str, Any]:
    """A record with its nested records as one JSON object (from ``Record.value`` when
    the reader prepared it with ``json_objects``; ``slot``: its place in the values
    ``write_nested`` prepared for several documents at once)."""
    spec = specs[record.table]
    table = record.table
    prepared = record.value if slot is None or record.value is None else record.value[slot]
    if not isinstance(prepared, dict):
        obj = {c: values.json(v, table, c) for c, v in zip(spec.column_names, record.row, strict=True)}
    elif record.children:
        obj = dict(prepared)  # (the prepared row stays as it is: it must not hold the children)
    else:
        obj = prepared
    for nest, children in record.children:
        obj[nest.key] = [record_object(child, values, specs, slot) for child in children]
    return obj


def _fix_object(obj: dict[str, Any], record: Record, values: Sanitiser) -> None:
    fix_surrogates(values, record.table, obj)
    for nest, children in record.children:
        for child_obj, child in zip(obj[nest.key], children, strict=True):
            _fix_object(child_obj, child, values)


class NestedSink:
    """A document ``write_nested`` writes while it reads the nested structure once."""

    def prepare(self, table: str, rows: list[tuple[Any, ...]]) -> list[Any]:
        """This document's own form of each row (made a batch at a time)."""
        raise NotImplementedError

    def begin(self) -> None:
        pass

    def person(self, record: Record, slot: int | None) -> None:
        pass

    def between(self) -> None:
        """After the people, before the other rows."""

    def table(self, index: int, table: str) -> None:
        pass

    def rows(self, table: str, part: list[tuple[Any, Any]], slot: int | None) -> None:
        pass

    def end_table(self, table: str) -> None:
        pass

    def end(self) -> None:
        pass

    def close(self) -> None:
        pass


def write_nested(job: ExportJob, plan: NestingPlan, sinks: list[NestedSink]) -> None:
    """Read the people, what nests under them and the other rows once, and write every
    sink's document from it (the nested JSON and the XML read the same structure)."""
    single = len(sinks) == 1

    def prepare(table: str, rows: list[tuple[Any, ...]]) -> list[Any]:
        made = [sink.prepare(table, rows) for sink in sinks]
        return made[0] if single else list(zip(*made, strict=True))

    slots: list[int | None] = [None] if single else list(range(len(sinks)))
    reader = NestedReader(job, plan, prepare)
    try:
        for sink in sinks:
            sink.begin()
        if plan.nested:
            for record in reader.people():
                for sink, slot in zip(sinks, slots, strict=True):
                    sink.person(record, slot)
        for sink in sinks:
            sink.between()
        for i, table in enumerate(plan.other_tables):
            for sink in sinks:
                sink.table(i, table)
            for part in reader.other(table):
                if part:
                    for sink, slot in zip(sinks, slots, strict=True):
                        sink.rows(table, part, slot)
            for sink in sinks:
                sink.end_table(table)
        for sink in sinks:
            sink.end()
    finally:
        for sink in sinks:
            sink.close()


class NestedJson(NestedSink):
    """``json/<customer>.json``: the people with their records, then the other rows."""

    def __init__(self, job: ExportJob, plan: NestingPlan) -> None:
        self.job = job
        self.plan = plan
        self.values = Sanitiser("json")
        self.specs = {t.name: t for t in job.tables}
        self.file: IO[bytes] | None = None
        self.first = True

    def prepare(self, table: str, rows: list[tuple[Any, ...]]) -> list[Any]:
        return json_objects(self.values, self.specs[table], rows)

    def _write(self, data: bytes) -> None:
        assert self.file is not None
        self.file.write(data)

    def begin(self) -> None:
        job, plan = self.job, self.plan
        head = {
            "customer": job.customer,
            "customer_name": job.customer_name,
            "generated_at": generated_at(job),
            "format": NESTED_FORMAT,
            "people_table": plan.people,
            "nesting": plan.describe(),
        }
        self.file = job.open_file(nested_path(job.customer), "wb", buffering=1 << 20)
        self._write(_dumps(head)[:-1] + b',\n"people":[')
        self.first = True

    def person(self, record: Record, slot: int | None) -> None:
        obj = record_object(record, self.values, self.specs, slot)
        try:
            data = _dumps(obj)
        except orjson.JSONEncodeError:  # a lone surrogate somewhere under this person
            _fix_object(obj, record, self.values)
            data = _dumps(obj)
        self._write((b"\n" if self.first else b",\n") + data)
        self.first = False

    def between(self) -> None:
        self._write(b'\n],\n"other":{')

    def table(self, index: int, table: str) -> None:
        self._write((b"\n" if index == 0 else b",\n") + _dumps(table) + b":[")
        self.first = True

    def rows(self, table: str, part: list[tuple[Any, Any]], slot: int | None) -> None:
        objects = [obj if slot is None else obj[slot] for _row, obj in part]
        self._write((b"\n" if self.first else b",\n") + dump_objects(self.values, table, objects))
        self.first = False

    def end_table(self, table: str) -> None:
        self._write(b"\n]" if not self.first else b"]")

    def end(self) -> None:
        self._write(b"\n}}\n")
        self.close()
        self.values.report(self.job)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def write_nested_json(job: ExportJob, plan: NestingPlan) -> None:
    write_nested(job, plan, [NestedJson(job, plan)])


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
        sinks: list[NestedSink] = [NestedJson(job, plan)]
        if "xml" in job.options.formats:
            # The XML document nests the same way: read the structure once for both.
            from .xml_format import XmlDocument, XmlLayout

            sinks.append(XmlDocument(job, XmlLayout.build(job, plan)))
        write_nested(job, plan, sinks)
