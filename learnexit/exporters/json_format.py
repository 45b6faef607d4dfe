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
  whose reference is NULL, holds a "no reference" value (``sentinels``: ``userid = 0``
  is nobody's) or points outside this export.

Every owned row therefore appears exactly once in the nested document.  Memory stays
bounded (see ``NestedReader``): on SQLite and PostgreSQL each table nested under people
is read once, ordered by person, and merged with the people, so one person's rows are
in memory at a time; on MySQL people are read in batches cut to about ``NESTED_ROWS``
nested rows and each nested table is queried per batch.  Without ``[roles.people]`` (or
when that table is not exported) no nested document is written, and a note says so.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from ..errors import OperationalError
from ..none_values import no_none
from ..source import Edge
from .base import Exporter, ExportJob, TableSpec, TableWriter, register, stream_columns, stream_tuples
from .values import NUL, SEP, Sanitiser, file_stem, has_surrogates, iso_by_orjson, marked, unique_stems

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
    children: list[tuple[Nest, list[Record] | Leaves]]
    value: tuple[Any, ...] = ()  # the row as each sink's ``prepare`` made it (by the sink's slot)


@dataclass
class Leaves:
    """The rows of a table without nested tables of its own under one record: only what
    each sink's ``prepare`` made of them (``made[slot]``, in row order)."""

    made: list[list[Any]]


@dataclass
class _Group:
    """Rows of a nested table under one parent record: the rows themselves (only when the
    table has nested tables of its own) and each sink's prepared values of them."""

    rows: list[tuple[Any, ...]] | None
    made: list[list[Any]]


# prepare(table, columns of a batch) -> per sink, its prepared value of each row
Prepare = Callable[[str, list[Sequence[Any]]], list[list[Any]]]
Batch = tuple[list[Sequence[Any]], list[list[Any]]]  # (the columns, per sink the prepared rows)


def _in(table: sa.Table, cols: tuple[str, ...], what: Any) -> ColumnElement[bool]:
    if len(cols) == 1:
        return table.c[cols[0]].in_(what)
    return sa.tuple_(*[table.c[c] for c in cols]).in_(what)


def _run_end(keys: Sequence[Any], pos: int, person: Any) -> int:
    """The end of the run of ``keys`` equal to ``person`` that starts at ``pos``."""
    n = len(keys)
    if pos >= n or keys[pos] != person:
        return pos
    try:  # the keys come sorted: find the end in C, then make sure of it
        end = bisect_right(keys, person, pos)  # type: ignore[call-overload]
    except TypeError:
        end = pos
    if end > pos and (end == n or keys[end] != person) and keys[pos:end].count(person) == end - pos:
        return end
    end = pos
    while end < n and keys[end] == person:
        end += 1
    return end


class _Stream:
    """One nested table's rows in the order of the people they belong to (a merge join)."""

    def __init__(self, batches: Iterator[Batch], key: int, rows: bool, sinks: int) -> None:
        self.batches = batches
        self.key = key
        self.want_rows = rows
        self.sinks = sinks
        self.keys: Sequence[Any] = ()
        self.rows: list[tuple[Any, ...]] = []
        self.made: list[list[Any]] = []
        self.pos = 0

    def _fill(self) -> bool:
        while self.pos >= len(self.keys):
            batch = next(self.batches, None)
            if batch is None:
                return False
            columns, self.made = batch
            self.keys = columns[self.key]
            self.rows = list(zip(*columns, strict=True)) if self.want_rows else []
            self.pos = 0
        return True

    def take(self, person: Any) -> _Group:
        """The rows that belong to ``person`` (they come next, if there are any)."""
        group = _Group([] if self.want_rows else None, [[] for _ in range(self.sinks)])
        while self._fill():
            pos = self.pos
            end = _run_end(self.keys, pos, person)
            if end > pos:
                if group.rows is not None:
                    group.rows.extend(self.rows[pos:end])
                for out, made in zip(group.made, self.made, strict=True):
                    out.extend(made[pos:end])
            self.pos = end
            if end < len(self.keys):
                break
        return group

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
    per batch of people in both cases.  ``prepare(table, columns)`` turns each batch into
    every sink's own values once (a column at a time): ``Record.value`` and ``Leaves``.
    """

    def __init__(self, job: ExportJob, plan: NestingPlan, prepare: Prepare, sinks: int = 1) -> None:
        self.job = job
        self.plan = plan
        self.source = job.source
        self.prepare = prepare
        self.sinks = sinks
        self.index = {t.name: {c: i for i, c in enumerate(t.column_names)} for t in job.tables}

    def placed(self, table: str, ids: Any) -> ColumnElement[bool]:
        """Rows of ``table`` that sit under one of the people ``ids`` (values or a SELECT).
        A row whose reference holds a "no reference" value (``sentinels``) sits under no one,
        even when a row has that value as its key ("person #0")."""
        nest = self.plan.nests[table]
        t = self.source.table(table)
        nobody = no_none(t, nest.edge)
        if nest.parent == self.plan.people:
            return sa.and_(_in(t, nest.edge.child_cols, ids), *nobody)
        parent = self.source.table(nest.parent)
        sub = sa.select(*[parent.c[c] for c in nest.edge.parent_cols]).where(
            self.source.predicate(nest.parent), self.placed(nest.parent, ids)
        )
        return sa.and_(_in(t, nest.edge.child_cols, sub), *nobody)

    def all_people(self) -> sa.Select[Any]:
        assert self.plan.people and self.plan.person_id
        people = self.source.table(self.plan.people)
        return sa.select(people.c[self.plan.person_id]).where(self.source.predicate(self.plan.people))

    def _batches(
        self, table: str, where: Any = None, order_by: Any = None, batch_size: int | None = None
    ) -> Iterator[Batch]:
        """The rows of ``table`` a batch at a time, as columns, with every sink's values."""
        stmt = self.job.select(table, where, order_by)
        for columns in stream_columns(self.job.conn, stmt, batch_size or self.job.options.batch_size):
            yield columns, self.prepare(table, columns)

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
                batches = self._batches(nest.table, where=where, order_by=order, batch_size=STREAM_BATCH)
                key = self.index[nest.table][nest.edge.child_cols[0]]
                streams[nest.table] = _Stream(batches, key, bool(plan.kids(nest.table)), self.sinks)
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
        """The people (id not NULL) in id order, ``size`` at a time (keyset pagination),
        as (row, every sink's value of it)."""
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
            made = self.prepare(plan.people, list(zip(*rows, strict=True)))
            yield list(zip(rows, zip(*made, strict=True), strict=True))
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

    def _groups(self, tables: list[str], ids: list[Any]) -> dict[str, dict[tuple[Any, ...], _Group]]:
        """The rows of ``tables`` under the people ``ids``, grouped by the row they nest in."""
        groups: dict[str, dict[tuple[Any, ...], _Group]] = {}
        for table in tables:
            nest = self.plan.nests[table]
            index = self.index[table]
            want_rows = bool(self.plan.kids(table))
            by_parent: dict[tuple[Any, ...], _Group] = {}
            for columns, made in self._batches(table, where=self.placed(table, ids)):
                rows = list(zip(*columns, strict=True))
                keys = zip(*[columns[index[c]] for c in nest.edge.child_cols], strict=True)
                for i, key in enumerate(keys):
                    group = by_parent.get(key)
                    if group is None:
                        group = by_parent[key] = _Group([] if want_rows else None, [[] for _ in made])
                    if group.rows is not None:
                        group.rows.append(rows[i])
                    for out, values in zip(group.made, made, strict=True):
                        out.append(values[i])
            groups[table] = by_parent
        return groups

    def _record(self, table: str, row: tuple[Any, ...], value: tuple[Any, ...], groups: dict[str, Any]) -> Record:
        kids = self.plan.children.get(table)
        if not kids:
            return Record(table, row, [], value)
        children: list[tuple[Nest, list[Record] | Leaves]] = []
        for nest in kids:
            key = self._key(table, row, nest.edge.parent_cols)
            group: _Group | None = groups[nest.table].get(key)
            if self.plan.children.get(nest.table):
                records = []
                if group is not None:
                    assert group.rows is not None
                    records = [
                        self._record(nest.table, r, v, groups)
                        for r, v in zip(group.rows, zip(*group.made, strict=True), strict=True)
                    ]
                children.append((nest, records))
            else:
                children.append((nest, Leaves(group.made if group is not None else [[] for _ in range(self.sinks)])))
        return Record(table, row, children, value)

    def other(self, table: str) -> Iterator[list[list[Any]]]:
        """The rows of ``table`` not placed under a person, in batches: per sink, its values."""
        plan = self.plan
        where: Any = None
        if table == plan.people:
            assert plan.person_id
            where = self.source.table(table).c[plan.person_id].is_(None)
        elif table in plan.nests:
            where = sa.case((self.placed(table, self.all_people()), 0), else_=1) == 1
        for _columns, made in self._batches(table, where=where):
            yield made


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


def json_objects_of_columns(values: Sanitiser, spec: TableSpec, columns: list[Sequence[Any]]) -> list[dict[str, Any]]:
    """The rows of a batch given as its columns as JSON objects (values as
    ``Sanitiser.json`` gives them), a column at a time.  Strings with lone surrogates are
    left as they are: ``dump_objects`` fixes them."""
    names = [str(c) for c in spec.column_names]
    table = spec.name
    converted = [values.json_column(col, table, name) for col, name in zip(columns, names, strict=True)]
    return [dict(zip(names, row, strict=True)) for row in zip(*converted, strict=True)]


_NONE = type(None)
_INT64 = 2**63
_SEP, _NUL = SEP.encode(), NUL.encode()
_NUMERIC = frozenset((int, float, bool))


def _json_column(values: Sanitiser, table: str, name: str, col: Sequence[Any]) -> tuple[Any, Any, Any]:
    """One column of a batch for ``json_rows``: (its slot in the row template: ``b"%s"``,
    ``b'"%s"'`` or ``b"null"``; the UTF-8 texts that fill it, ``None`` for the constant
    slot; the column as ``Sanitiser.json_column`` gives it, ``None`` where it was not
    needed).  The slot is ``None`` when orjson refused a value (a lone surrogate)."""
    kinds = set(map(type, col))
    nulls = _NONE in kinds
    kinds.discard(_NONE)
    if iso_by_orjson(col, kinds):  # orjson writes them as isoformat() does
        text = orjson.dumps(col)
        if not nulls:
            return b'"%s"', text[2:-2].split(b'","'), None
        return b"%s", text[1:-1].split(b","), None
    conv: Any = None
    if len(kinds) == 1:
        kind = next(iter(kinds))
        if kind is str or kind is bool:
            conv = col  # (what json_column gives them: they are JSON as they are)
        elif kind is int:
            ints = list(filter(None, col)) if nulls else col  # (0 and NULL need no check)
            if -_INT64 <= min(ints, default=0) and max(ints, default=0) < _INT64:
                conv = col
    if conv is None:
        conv = values.json_column(col, table, name)
        if conv is not col:
            kinds = set(map(type, conv))
            nulls = _NONE in kinds
            kinds.discard(_NONE)
    try:
        if not kinds:
            return b"null", None, conv
        if kinds <= _NUMERIC:  # (json_column left only 64-bit integers and finite floats)
            return b"%s", orjson.dumps(conv)[1:-1].split(b","), conv
        if kinds == {str}:
            joined = marked(conv, nulls)
            if joined is not None:
                # (UTF-8 is self-synchronising: the bytes of SEP are only ever SEP)
                text = orjson.dumps(joined)[1:-1]
                if not nulls:
                    return b'"%s"', text.split(_SEP), conv
                text = (b'"' + text.replace(_SEP, b'"' + _SEP + b'"') + b'"').replace(b'"' + _NUL + b'"', b"null")
                return b"%s", text.split(_SEP), conv
        return b"%s", list(map(orjson.dumps, conv)), conv
    except orjson.JSONEncodeError:
        return None, None, conv


def _json_fills(values: Sanitiser, spec: TableSpec, columns: list[Sequence[Any]]) -> tuple[Any, Any]:
    """A batch's rows as a template: (the constant texts between the values, the values'
    texts per column; UTF-8), such that a row is ``consts[0] + fills[0][i] + consts[1] +
    … + consts[-1]``; or (``None``, the rows' objects) when orjson refused a string of the
    batch (a lone surrogate), for ``_object_text`` or ``dump_objects`` to fix."""
    names = [str(c) for c in spec.column_names]
    table = spec.name
    consts = [b"{"]
    fills: list[Sequence[bytes]] = []
    converted: list[Any] = []
    failed = False
    for name, col in zip(names, columns, strict=True):
        if failed:
            converted.append(values.json_column(col, table, name))
            continue
        slot, fill, conv = _json_column(values, table, name, col)
        converted.append(conv)
        if slot is None:
            failed = True
            continue
        head, _, tail = slot.partition(b"%s")
        consts[-1] += (b"," if len(consts[-1]) > 1 or fills else b"") + _dumps(name) + b":" + head
        if fill is not None:
            fills.append(fill)
            consts.append(tail)
    if failed:
        converted = [
            [None if v is None else v.isoformat() for v in col] if conv is None else conv
            for col, conv in zip(columns, converted, strict=True)
        ]
        return None, [dict(zip(names, row, strict=True)) for row in zip(*converted, strict=True)]
    consts[-1] += b"}"
    return consts, fills


def _interleave(consts: list[bytes], fills: list[Sequence[bytes]], rows: int, end: bytes) -> bytes:
    """Every row of a template (``_json_fills``), each followed by ``end``, as one text:
    the pieces laid out in one list by slice assignment and joined, all in C."""
    width = 2 * len(fills) + 1
    flat: list[bytes] = [b""] * (rows * width)
    for j, fill in enumerate(fills):
        flat[2 * j :: width] = [consts[j]] * rows
        flat[2 * j + 1 :: width] = fill
    flat[width - 1 :: width] = [consts[-1] + end] * rows
    return b"".join(flat)


def json_rows(values: Sanitiser, spec: TableSpec, columns: list[Sequence[Any]]) -> list[Any]:
    """Each row of a batch (given as its columns) as its JSON object in UTF-8: exactly
    ``_dumps`` of the object ``json_objects_of_columns`` makes, but made a column at a
    time.  When orjson refuses a string of the batch (a lone surrogate), the objects
    themselves, for ``_object_text`` or ``join_rows`` to fix."""
    consts, fills = _json_fills(values, spec, columns)
    if consts is None:
        return list(fills)
    rows = len(columns[0]) if columns else 0
    if not rows:
        return []
    text = _interleave(consts, fills, rows, _SEP)
    if text.count(_SEP) == rows:  # (no value or name holds the mark)
        return text[: -len(_SEP)].split(_SEP)
    template = b"%s".join(c.replace(b"%", b"%%") for c in consts)
    if not fills:
        return [template % ()] * rows
    return list(map(template.__mod__, zip(*fills, strict=True)))


def json_text(values: Sanitiser, spec: TableSpec, columns: list[Sequence[Any]], sep: bytes) -> bytes:
    """``json_rows`` joined by ``sep``."""
    consts, fills = _json_fills(values, spec, columns)
    if consts is None:
        return join_rows(values, spec.name, fills, sep)
    rows = len(columns[0]) if columns else 0
    if not rows:
        return b""
    return _interleave(consts, fills, rows, sep)[: -len(sep)]


def fix_surrogates(values: Sanitiser, table: str, obj: dict[str, Any]) -> None:
    """Replace lone surrogates (which orjson refuses) in an object's strings, noted."""
    for key, value in obj.items():
        if type(value) is str and has_surrogates(value):
            obj[key] = values.encodable(value, table, key)


def _object_text(values: Sanitiser, table: str, obj: Any) -> bytes:
    """A row's JSON text: as ``json_rows`` made it, or its object dumped (lone surrogates
    replaced and noted first if need be)."""
    if type(obj) is bytes:
        return obj
    try:
        return _dumps(obj)
    except orjson.JSONEncodeError:
        fix_surrogates(values, table, obj)
        return _dumps(obj)


def join_rows(values: Sanitiser, table: str, rows: list[Any], sep: bytes) -> bytes:
    """``json_rows`` texts (or objects) joined by ``sep``."""
    try:
        return sep.join(rows)
    except TypeError:
        return sep.join([_object_text(values, table, row) for row in rows])


def dump_objects(values: Sanitiser, table: str, objects: list[Any]) -> bytes:
    """Objects as JSON, one a line (lone surrogates replaced and noted first if need be)."""
    return join_rows(values, table, objects, b",\n")


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
        self.file.write(b"\n" if self.first else b",\n")
        self.file.write(json_text(self.values, spec, columns, b",\n"))
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


class NestedSink:
    """A document ``write_nested`` writes while it reads the nested structure once."""

    def prepare(self, table: str, columns: list[Sequence[Any]]) -> list[Any]:
        """This document's own form of each row of a batch (given as its columns)."""
        raise NotImplementedError

    def begin(self) -> None:
        pass

    def person(self, record: Record, slot: int) -> None:
        """A person with everything nested (``record.value[slot]``: this sink's values)."""

    def between(self) -> None:
        """After the people, before the other rows."""

    def table(self, index: int, table: str) -> None:
        pass

    def rows(self, table: str, values: list[Any]) -> None:
        """A batch of rows not placed under a person (this sink's values of them)."""

    def end_table(self, table: str) -> None:
        pass

    def end(self) -> None:
        pass

    def close(self) -> None:
        pass


def write_nested(job: ExportJob, plan: NestingPlan, sinks: list[NestedSink]) -> None:
    """Read the people, what nests under them and the other rows once, and write every
    sink's document from it (the nested JSON and the XML read the same structure)."""

    def prepare(table: str, columns: list[Sequence[Any]]) -> list[list[Any]]:
        return [sink.prepare(table, columns) for sink in sinks]

    reader = NestedReader(job, plan, prepare, len(sinks))
    try:
        for sink in sinks:
            sink.begin()
        if plan.nested:
            for record in reader.people():
                for slot, sink in enumerate(sinks):
                    sink.person(record, slot)
        for sink in sinks:
            sink.between()
        for i, table in enumerate(plan.other_tables):
            for sink in sinks:
                sink.table(i, table)
            for made in reader.other(table):
                if made[0]:
                    for sink, values in zip(sinks, made, strict=True):
                        sink.rows(table, values)
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
        self.keys = {n.key: _dumps(n.key) for n in plan.nests.values()}
        self.file: IO[bytes] | None = None
        self.first = True

    def prepare(self, table: str, columns: list[Sequence[Any]]) -> list[Any]:
        return json_rows(self.values, self.specs[table], columns)

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

    def record_text(self, record: Record, slot: int, out: list[bytes]) -> None:
        """A record with its nested records as one JSON object, onto ``out`` in pieces:
        the same text as orjson gives of the object (its columns, then a list per nested
        table), put together from the rows' texts."""
        own = _object_text(self.values, record.table, record.value[slot])
        if not record.children:
            out.append(own)
            return
        out.append(own[:-1])
        sep = b"" if own == b"{}" else b","
        for nest, children in record.children:
            out.append(sep + self.keys[nest.key] + b":[")
            sep = b","
            if isinstance(children, Leaves):
                out.append(join_rows(self.values, nest.table, children.made[slot], b","))
            else:
                for i, child in enumerate(children):
                    if i:
                        out.append(b",")
                    self.record_text(child, slot, out)
            out.append(b"]")
        out.append(b"}")

    def person(self, record: Record, slot: int) -> None:
        out = [b"\n" if self.first else b",\n"]
        self.record_text(record, slot, out)
        for data in out:
            self._write(data)
        self.first = False

    def between(self) -> None:
        self._write(b'\n],\n"other":{')

    def table(self, index: int, table: str) -> None:
        self._write((b"\n" if index == 0 else b",\n") + _dumps(table) + b":[")
        self.first = True

    def rows(self, table: str, values: list[Any]) -> None:
        self._write((b"\n" if self.first else b",\n") + dump_objects(self.values, table, values))
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
