"""What the nested JSON and XML documents share: where each owned table nests
(``NestingPlan``), reading that structure once with bounded memory (``NestedReader``),
and writing every chosen nested document from one read (``NestedSink``, ``write_nested``).

A table nests under people (the ``[roles.people]`` table) directly or through a chain of
references, at its shallowest position; every row not placed under a person goes to the
"other" section, so every owned row appears exactly once.  The format modules register
their documents here (``register_sink``); neither format imports the other.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from ..errors import OperationalError
from ..source import Edge
from . import speedups
from .base import ExportJob, stream_columns, stream_tuples
from .none_values import no_none
from .speedups import RowTemplate

__all__ = [
    "NESTED_FORMAT",
    "NESTED_ROWS",
    "PEOPLE_BATCH",
    "STREAM_BATCH",
    "Leaves",
    "Nest",
    "NestedReader",
    "NestedSink",
    "NestingPlan",
    "Record",
    "Streamed",
    "nested_sinks",
    "nesting_plan",
    "register_sink",
    "write_nested",
]

PEOPLE_BATCH = 500
NESTED_ROWS = 20_000  # nested rows in memory at once, about (batched reading)
STREAM_BATCH = 1000  # rows fetched at a time from each table merged with the people
NESTED_FORMAT = "learnexit-nested/1"


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
    """Where each owned table goes in the nested documents (made by ``nesting_plan``)."""

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
    """One row of the nested structure with the records nested under it."""

    table: str
    row: tuple[Any, ...]  # the row's values, in the table's column order
    children: list[tuple[Nest, list[Record] | Leaves | Streamed]]
    value: tuple[Any, ...] = ()  # the row as each sink's ``prepare`` made it (by the sink's slot)


@dataclass
class Leaves:
    """The rows of a table without nested tables of its own under one record: only what
    each sink's ``prepare`` made of them (``made[slot]``, in row order)."""

    made: list[list[Any]]


class Streamed:
    """The rows of a table without nested tables of its own under one person, read while
    they are written: iterating gives each batch's run of them, per sink what its
    ``prepare`` made (``chunk[slot]``).  ``write_nested`` reads them all, in lockstep for
    every sink, where each sink's ``person`` placed the table's nest; a person's rows
    are never all in memory at once (the biggest table, an activity log, may hold
    hundreds of thousands of one person's rows)."""

    def __init__(self, table: str, chunks: Iterator[list[list[Any]]]) -> None:
        self.table = table
        self.chunks = chunks
        self.done = False

    def __iter__(self) -> Iterator[list[list[Any]]]:
        yield from self.chunks
        self.done = True


@dataclass
class _Group:
    """Rows of a nested table under one parent record: the rows themselves (only when the
    table has nested tables of its own) and each sink's prepared values of them."""

    rows: list[tuple[Any, ...]] | None
    made: list[list[Any]]


# prepare(table, columns of a batch) -> per sink, its prepared value of each row
Prepare = Callable[[str, list[Sequence[Any]]], list[list[Any]]]
Batch = tuple[list[Sequence[Any]], list[list[Any]]]  # (the columns, per sink the prepared rows)
# A batch of a table merged with the people: (each row's person, the rows themselves when
# the table has nested tables of its own, per sink the prepared rows)
StreamBatch = tuple[Sequence[Any], "list[tuple[Any, ...]] | None", list[list[Any]]]
# templates(table) -> per sink, what its ``prepare`` makes of a row, for C to make it
# (``NestedSink.row_template``); None when one of them cannot say
Templates = Callable[[str], "list[RowTemplate] | None"]


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

    def __init__(self, batches: Iterator[StreamBatch], rows: bool, sinks: int) -> None:
        self.batches = batches
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
            self.keys, rows, self.made = batch
            self.rows = rows or []
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

    def run(self, person: Any) -> Iterator[list[list[Any]]]:
        """The rows that belong to ``person``, each batch's part of them as it is read
        (per sink, its values): ``take`` without holding them all."""
        while self._fill():
            pos = self.pos
            end = self.pos = _run_end(self.keys, pos, person)
            if end > pos:
                yield [made[pos:end] for made in self.made]
            if end < len(self.keys):
                return

    def left(self) -> bool:
        return self._fill()


class NestedReader:
    """Reads the nested structure through the snapshot, with bounded memory.

    On SQLite and PostgreSQL with whole-number person ids, each table nested directly
    under people is read once, ordered by its person reference, and merged with the
    people (ordered by id): one query per table, and only one person's rows in memory;
    of a table without nested tables of its own not even those (``Streamed``: a batch at
    a time, written as they are read).
    Elsewhere (MySQL allows one open result at a time) people are read in batches and
    each nested table is queried per batch, the batches cut so that about
    ``NESTED_ROWS`` nested rows are in memory at once.  Tables nested deeper are read
    per batch of people in both cases.  ``prepare(table, columns)`` turns each batch into
    every sink's own values once (a column at a time): ``Record.value`` and ``Leaves``.
    """

    def __init__(
        self,
        job: ExportJob,
        plan: NestingPlan,
        prepare: Prepare,
        sinks: int = 1,
        templates: Templates | None = None,
        counted: Callable[[str, int], None] | None = None,
    ) -> None:
        self.job = job
        self.plan = plan
        self.source = job.source
        self.prepare = prepare
        self.sinks = sinks
        self.templates = templates
        self.counted = counted
        self.index = {t.name: {c: i for i, c in enumerate(t.column_names)} for t in job.tables}
        self.empty = {t.name for t in job.tables if t.rows == 0}  # (counted in this snapshot: no query)

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
        if table in self.empty:
            return
        stmt = self.job.select(table, where, order_by)
        for columns in stream_columns(self.job.conn, stmt, batch_size or self.job.options.batch_size):
            yield columns, self.prepare(table, columns)

    def _stream_batches(
        self, table: str, where: Any, order_by: Any, key: int, want_rows: bool
    ) -> Iterator[StreamBatch]:
        """The rows of ``table`` merged with the people, ``STREAM_BATCH`` at a time: made
        by C straight from SQLite when the table has nothing nested in it and every sink
        gives its row's template (``speedups.sqlite_texts``: no Python object per value),
        the rest (all, or after a value C leaves to Python) through the driver."""
        if table in self.empty:
            return
        stmt = self.job.select(table, where, order_by)
        texts = None if want_rows else self._texts(table, stmt, key)
        if texts is not None:
            for keys, made in texts:
                if self.counted is not None:
                    self.counted(table, len(keys))
                yield keys, None, made
            if texts.finished:
                return
        given = 0 if texts is None else texts.rows
        for columns in stream_columns(self.job.conn, stmt, STREAM_BATCH, given):
            rows = list(zip(*columns, strict=True)) if want_rows else None
            yield columns[key], rows, self.prepare(table, columns)

    def _texts(self, table: str, stmt: sa.Select[Any], key: int) -> speedups.SqliteTexts | None:
        templates = self.templates(table) if self.templates is not None else None
        if templates is None:
            return None
        return speedups.sqlite_texts(self.job.conn, stmt, templates, key, STREAM_BATCH, self.job.fill_key_sets)

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
                # (a table counted empty is not read: no condition to build)
                where = self.placed(nest.table, self.all_people()) if nest.table not in self.empty else None
                key = self.index[nest.table][nest.edge.child_cols[0]]
                want_rows = bool(plan.kids(nest.table))
                batches = self._stream_batches(nest.table, where, order, key, want_rows)
                streams[nest.table] = _Stream(batches, want_rows, self.sinks)
            for batch in self._people_batches(id_col, PEOPLE_BATCH):
                ids = [row[id_index] for row, _ in batch]
                groups: dict[str, Any] = self._groups([n for n in plan.nests if n not in streams], ids)
                for row, value in batch:
                    person = row[id_index]
                    runs = []
                    for table, stream in streams.items():
                        if stream.want_rows:
                            groups[table] = {(person,): stream.take(person)}
                        else:
                            runs.append(Streamed(table, stream.run(person)))
                            groups[table] = {(person,): runs[-1]}
                    yield self._record(plan.people, row, value, groups)
                    for run in runs:
                        if not run.done:
                            raise OperationalError(f"nested documents: rows of {run.table} were not written")
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
            if nest.table in self.empty:
                continue
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
            if table in self.empty:
                groups[table] = by_parent
                continue
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
        children: list[tuple[Nest, list[Record] | Leaves | Streamed]] = []
        for nest in kids:
            key = self._key(table, row, nest.edge.parent_cols)
            group: _Group | Streamed | None = groups[nest.table].get(key)
            if isinstance(group, Streamed):
                children.append((nest, group))
            elif self.plan.children.get(nest.table):
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
        if table in self.empty:
            return
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


class NestedSink:
    """A document ``write_nested`` writes while it reads the nested structure once."""

    def prepare(self, table: str, columns: list[Sequence[Any]]) -> list[Any]:
        """This document's own form of each row of a batch (given as its columns)."""
        raise NotImplementedError

    def row_template(self, table: str) -> RowTemplate | None:
        """What ``prepare`` makes of a row of ``table`` (UTF-8 text), for C to make it from
        the source's values (``speedups.sqlite_texts``); None: only ``prepare`` can."""
        return None

    def templated(self, table: str, rows: int) -> None:
        """``rows`` rows of ``table`` were made from ``row_template``: what ``prepare``
        notes of every row (a column's name that had to change), noted."""

    def begin(self) -> None:
        pass

    def person(self, record: Record, slot: int) -> list[bytes | Nest]:
        """A person with everything nested (``record.value[slot]``: this sink's values),
        as pieces of the document in order; where the rows of a ``Streamed`` child go,
        its ``Nest`` (``write_nested`` puts ``leaves`` of them there, in order)."""
        raise NotImplementedError

    def leaves(self, nest: Nest, values: list[Any], first: bool) -> bytes:
        """A run of a person's rows of ``nest.table`` (this sink's values of them, never
        none); ``first``: the first run of the person's rows of that table."""
        raise NotImplementedError

    def put(self, data: bytes) -> None:
        """``data`` at the end of the document."""

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

    def templates(table: str) -> list[RowTemplate] | None:
        made = [t for sink in sinks if (t := sink.row_template(table)) is not None]
        return made if len(made) == len(sinks) else None

    def templated(table: str, rows: int) -> None:
        for sink in sinks:
            sink.templated(table, rows)

    reader = NestedReader(job, plan, prepare, len(sinks), templates, templated)
    try:
        for sink in sinks:
            sink.begin()
        if plan.nested:
            for record in reader.people():
                _write_person(record, sinks)
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


def _write_person(record: Record, sinks: list[NestedSink]) -> None:
    """Every sink's pieces of ``record``; the rows of its ``Streamed`` children as they are
    read, each run into every sink where its ``person`` placed the nest."""
    streamed = {nest.table: rows for nest, rows in record.children if isinstance(rows, Streamed)}
    pieces = [sink.person(record, slot) for slot, sink in enumerate(sinks)]
    at = [0] * len(sinks)
    while True:
        marks: list[Nest | None] = []
        for i, sink in enumerate(sinks):
            parts, k = pieces[i], at[i]
            mark: Nest | None = None
            while k < len(parts):
                part = parts[k]
                k += 1
                if isinstance(part, Nest):
                    mark = part
                    break
                sink.put(part)
            marks.append(mark)
            at[i] = k
        nest = marks[0]
        if any(m is not nest for m in marks):
            raise OperationalError("nested documents: the documents place a person's rows differently")
        if nest is None:
            return
        first = True
        for chunk in streamed[nest.table]:
            for slot, sink in enumerate(sinks):
                sink.put(sink.leaves(nest, chunk[slot], first))
            first = False


SinkFactory = Callable[[ExportJob, NestingPlan], NestedSink]
_SINKS: dict[str, SinkFactory] = {}


def register_sink(format_name: str, factory: SinkFactory) -> None:
    """Make format ``format_name``'s nested document known, so that another format's step
    can write it together with its own (the structure is then read once)."""
    _SINKS[format_name] = factory


def nested_sinks(job: ExportJob, plan: NestingPlan, first: str) -> list[NestedSink]:
    """The nested documents of ``first`` and then of every other chosen format that has
    one (in the order they were registered), to be written by one ``write_nested``."""
    names = [first] + [name for name in _SINKS if name != first and name in job.options.formats]
    return [_SINKS[name](job, plan) for name in names]
