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
bounded (see ``nesting.NestedReader``): on SQLite and PostgreSQL each table nested under people
is read once, ordered by person, and merged with the people, so one person's rows are
in memory at a time, and of a table with nothing nested in it (an activity log) only a
reading batch, written as it is read; on MySQL people are read in batches cut to about ``NESTED_ROWS``
nested rows and each nested table is queried per batch.  Without ``[roles.people]`` (or
when that table is not exported) no nested document is written, and a note says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any

import orjson

from .base import DirectSink, Exporter, ExportJob, TableSpec, TableWriter, generated_at, register
from .nesting import (
    NESTED_FORMAT,
    Leaves,
    Nest,
    NestedSink,
    NestingPlan,
    Record,
    Streamed,
    nested_sinks,
    nesting_plan,
    register_sink,
    write_nested,
)
from .speedups import TEXT_JSON, RowTemplate
from .values import NUL, SEP, Sanitiser, file_stem, has_surrogates, iso_by_orjson, marked, unique_stems

FOLDER = "json"


def json_paths(tables: list[str], customer: str) -> dict[str, str]:
    """Per-table files below ``data/``: ``json/<table>.json`` (never the nested file's name)."""
    stems = unique_stems(tables, reserved=(file_stem(customer),))
    return {name: f"{FOLDER}/{stem}.json" for name, stem in stems.items()}


def nested_path(customer: str) -> str:
    return f"{FOLDER}/{file_stem(customer)}.json"


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


def json_template(spec: TableSpec) -> RowTemplate:
    """A row's JSON object (``json_rows``) as a template for C: ``{"name":value,…}``."""
    columns = []
    for i, name in enumerate(spec.column_names):
        prefix = (b"," if i else b"") + _dumps(str(name)) + b":"
        columns.append((prefix, b"", prefix + b"null"))
    return TEXT_JSON, b"{", b"}", tuple(columns)


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

    def direct(self, spec: TableSpec) -> DirectSink | None:
        if self.file is None:
            return None
        return DirectSink(template=json_template(spec), texts=self._texts)

    def _texts(self, texts: list[bytes]) -> None:
        """A batch of rows' objects made by C (``direct``), as ``write_columns`` writes them."""
        assert self.file is not None
        self.file.write((b"\n" if self.first else b",\n") + b",\n".join(texts))
        self.first = False

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

    def row_template(self, table: str) -> RowTemplate:
        return json_template(self.specs[table])

    def _write(self, data: bytes) -> None:
        assert self.file is not None
        self.file.write(data)

    put = _write

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

    def record_text(self, record: Record, slot: int, out: list[bytes | Nest]) -> None:
        """A record with its nested records as one JSON object, onto ``out`` in pieces:
        the same text as orjson gives of the object (its columns, then a list per nested
        table), put together from the rows' texts (a ``Streamed`` table's rows: its nest
        marks where, ``leaves`` makes them)."""
        own = _object_text(self.values, record.table, record.value[slot])
        if not record.children:
            out.append(own)
            return
        out.append(own[:-1])
        sep = b"" if own == b"{}" else b","
        for nest, children in record.children:
            out.append(sep + self.keys[nest.key] + b":[")
            sep = b","
            if isinstance(children, Streamed):
                out.append(nest)
            elif isinstance(children, Leaves):
                out.append(join_rows(self.values, nest.table, children.made[slot], b","))
            else:
                for i, child in enumerate(children):
                    if i:
                        out.append(b",")
                    self.record_text(child, slot, out)
            out.append(b"]")
        out.append(b"}")

    def person(self, record: Record, slot: int) -> list[bytes | Nest]:
        out: list[bytes | Nest] = [b"\n" if self.first else b",\n"]
        self.record_text(record, slot, out)
        self.first = False
        return out

    def leaves(self, nest: Nest, values: list[Any], first: bool) -> bytes:
        return (b"" if first else b",") + join_rows(self.values, nest.table, values, b",")

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


register_sink("json", NestedJson)


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
        # Another chosen format's nested document (the XML) nests the same way: the
        # structure is read once for all of them.
        write_nested(job, plan, nested_sinks(job, plan, "json"))
