"""XML: ``data/xml/<customer>.xml`` with the nesting of the JSON document, and its XSD.

The document (streamed with ``lxml.etree.xmlfile``; memory stays bounded as for JSON)::

    <export customer="acme" customer_name="…" generated_at="…" people_table="users"
            xsi:noNamespaceSchemaLocation="acme.xsd">
      <people>
        <users><id>7</id><name>…</name><phone xsi:nil="true"></phone>
          <enrolments><id>3</id>…</enrolments>…
        </users>
      </people>
      <other>
        <organisations>…</organisations>
        <courses>…</courses>
      </other>
    </export>

One element per row, named after its table; inside it one element per column (in table
order, every column present: NULL is ``xsi:nil="true"``), then the nested rows (see
``nesting``: same plan, same placement, every owned row exactly once).  Without
``[roles.people]`` there is no ``<people>``: every table is in ``<other>``, flat.

Text is the canonical text of ``values.text`` (non-finite numbers spelt ``NaN``/``INF``/
``-INF`` as XML Schema wants); characters XML 1.0 cannot hold become U+FFFD, noted.
Table and column names that are not XML names are made into XML names (``1st col`` →
``_1st_col``); such an element keeps the original name in a ``name`` attribute (columns)
or ``table`` attribute (rows; also used when a nested row's element is not its table's
name).

The XSD (``data/xml/<customer>.xsd``) is generated from the data map: per table a type
``row.<table>`` (the columns, each typed: xs:integer, a decimal-or-double union,
xs:boolean, xs:date, xs:dateTime, xs:time, xs:base64Binary, xs:string; all nillable) and
``nested.<table>`` (the same, extended by its nested tables).  The document validates
against it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import orjson
from lxml import etree

from .base import Exporter, ExportJob, TableSpec, generated_at, register
from .nesting import (
    NESTED_FORMAT,
    Leaves,
    Nest,
    NestedSink,
    NestingPlan,
    Record,
    Streamed,
    nesting_plan,
    register_sink,
    write_nested,
)
from .speedups import TEXT_XML, RowTemplate
from .values import NUL, SEP, Sanitiser, file_stem, iso_by_orjson, marked, xml_legal

FOLDER = "xml"
XS = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NIL = f"{{{XSI}}}nil"
NUMBER_TYPE = "number"  # xs:decimal ∪ xs:double (decimals exact, floats incl. NaN/INF)

XSD_TYPES = {
    "integer": "xs:integer",
    "number": NUMBER_TYPE,
    "boolean": "xs:boolean",
    "date": "xs:date",
    "datetime": "xs:dateTime",
    "binary": "xs:base64Binary",
    "string": "xs:string",
}


def xml_path(customer: str) -> str:
    return f"{FOLDER}/{file_stem(customer)}.xml"


def xsd_path(customer: str) -> str:
    return f"{FOLDER}/{file_stem(customer)}.xsd"


# --------------------------------------------------------------------------- names


def is_xml_name(name: str) -> bool:
    """True when ``name`` can be an element name (an NCName: no colon)."""
    if not name or ":" in name:
        return False
    try:
        etree.Element(name)
    except ValueError:
        return False
    return True


def xml_name(name: str) -> str:
    """``name`` if it is an XML name, else a close XML name (``1st col`` → ``_1st_col``)."""
    if is_xml_name(name):
        return name
    candidate = re.sub(r"[^\w.\-]", "_", name)
    if not candidate or not (candidate[0].isalpha() or candidate[0] == "_"):
        candidate = "_" + candidate
    if is_xml_name(candidate):
        return candidate
    candidate = re.sub(r"[^A-Za-z0-9_.\-]", "_", candidate)
    return candidate if is_xml_name(candidate) else "_"


def _unique(names: list[str], taken: set[str] | None = None) -> dict[str, str]:
    used = set() if taken is None else set(taken)
    out: dict[str, str] = {}
    for name in names:
        base = xml_name(name)
        candidate, n = base, 2
        while candidate in used:
            candidate, n = f"{base}_{n}", n + 1
        used.add(candidate)
        out[name] = candidate
    return out


def column_xsd_type(spec: TableSpec, column: str) -> str:
    col = next(c for c in spec.columns if c.name == column)
    if col.kind == "string":
        try:
            if col.sql_type.python_type is dt.time:
                return "xs:time"
        except NotImplementedError:
            pass
    return XSD_TYPES.get(col.kind, "xs:string")


@dataclass
class XmlLayout:
    """Every element name the document and its schema use."""

    plan: NestingPlan
    specs: dict[str, TableSpec]
    row_element: dict[str, str]  # table → element name of its rows in <other>
    columns: dict[str, dict[str, str]]  # table → column → element name
    child_element: dict[str, str]  # nested table → its element name inside the parent row

    @classmethod
    def build(cls, job: ExportJob, plan: NestingPlan) -> XmlLayout:
        specs = {t.name: t for t in job.tables}
        row_element = _unique([t.name for t in job.tables])
        columns = {t.name: _unique(t.column_names) for t in job.tables}
        child_element: dict[str, str] = {}
        for parent, nests in plan.children.items():
            taken = set(columns[parent].values())
            mapped = _unique([n.key for n in nests], taken)
            for n in nests:
                child_element[n.table] = mapped[n.key]
        return cls(plan, specs, row_element, columns, child_element)


# --------------------------------------------------------------------------- the schema


def _xs(tag: str, parent: etree._Element | None = None, **attrib: str) -> etree._Element:
    """An XML Schema element ``xs:tag`` (under ``parent``); a trailing ``_`` in a name is dropped."""
    el = (
        etree.Element(f"{{{XS}}}{tag}", nsmap={"xs": XS})
        if parent is None
        else etree.SubElement(parent, f"{{{XS}}}{tag}")
    )
    for k, v in attrib.items():
        el.set(k.rstrip("_"), v)
    return el


def build_xsd(layout: XmlLayout, job: ExportJob) -> etree._Element:
    schema = _xs("schema", elementFormDefault="unqualified")
    doc = _xs("annotation", schema)
    _xs("documentation", doc).text = (
        f"learnexit export of {job.customer}: one element per row, named after its table; "
        "one child element per column (NULL: xsi:nil); nested rows follow the columns."
    )
    number = _xs("simpleType", schema, name=NUMBER_TYPE)
    _xs("union", number, memberTypes="xs:decimal xs:double")

    _table_types(schema, layout)
    _export_element(schema, layout)
    return schema


def _table_types(schema: etree._Element, layout: XmlLayout) -> None:
    """Per table its flat type (the columns) and, when tables nest in it, its nested type."""
    for spec in layout.specs.values():
        flat = _xs("complexType", schema, name=_flat_type(layout, spec.name))
        seq = _xs("sequence", flat)
        for column in spec.column_names:
            element_name = layout.columns[spec.name][column]
            el = _xs("element", seq, name=element_name, nillable="true")
            base = column_xsd_type(spec, column)
            if element_name == column:
                el.set("type", base)
            else:
                ext = _xs("extension", _xs("simpleContent", _xs("complexType", el)), base=base)
                _xs("attribute", ext, name="name", type="xs:string", fixed=xml_legal(column)[0])
        _xs("attribute", flat, name="table", type="xs:string", use="optional")
    for spec in layout.specs.values():
        nests = layout.plan.kids(spec.name)
        if not nests:
            continue
        nested = _xs("complexType", schema, name=_type_of(layout, spec.name))
        ext = _xs("extension", _xs("complexContent", nested), base=_flat_type(layout, spec.name))
        seq = _xs("sequence", ext)
        for nest in nests:
            _xs(
                "element",
                seq,
                name=layout.child_element[nest.table],
                type=_type_of(layout, nest.table),
                minOccurs="0",
                maxOccurs="unbounded",
            )


def _export_element(schema: etree._Element, layout: XmlLayout) -> None:
    """The root element: ``<people>`` (when rows nest), ``<other>`` and the attributes."""
    root = _xs("element", schema, name="export")
    ctype = _xs("complexType", root)
    seq = _xs("sequence", ctype)
    plan = layout.plan
    if plan.nested:
        assert plan.people
        people = _xs("element", seq, name="people", minOccurs="0")
        pseq = _xs("sequence", _xs("complexType", people))
        _xs(
            "element",
            pseq,
            name=layout.row_element[plan.people],
            type=_type_of(layout, plan.people),
            minOccurs="0",
            maxOccurs="unbounded",
        )
    other = _xs("element", seq, name="other")
    oseq = _xs("sequence", _xs("complexType", other))
    for table in plan.other_tables:
        _xs(
            "element",
            oseq,
            name=layout.row_element[table],
            type=_flat_type(layout, table),
            minOccurs="0",
            maxOccurs="unbounded",
        )
    for attr, use in (
        ("customer", "required"),
        ("customer_name", "required"),
        ("generated_at", "required"),
        ("format", "required"),
        ("people_table", "optional"),
    ):
        _xs("attribute", ctype, name=attr, type="xs:dateTime" if attr == "generated_at" else "xs:string", use=use)


def _flat_type(layout: XmlLayout, table: str) -> str:
    return f"row.{layout.row_element[table]}"


def _type_of(layout: XmlLayout, table: str) -> str:
    """The type of ``table``'s rows where they nest (with their own nested rows)."""
    if layout.plan.kids(table):
        return f"nested.{layout.row_element[table]}"
    return _flat_type(layout, table)


# --------------------------------------------------------------------------- the document


_NONE = type(None)
_SEP, _NUL = SEP.encode(), NUL.encode()
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_NEEDS_ESCAPE = re.compile("[&<>\r]")
_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
)


def _attr(name: str, value: str) -> str:
    """`` name="value"``, escaped as lxml escapes attribute values."""
    return f' {name}="{value.translate(_ATTR_ESCAPES)}"'


class XmlDocument(NestedSink):
    """Writes the document as text, a batch of rows at a time (the same bytes lxml's
    ``xmlfile`` writes: text escaped ``& < >`` and CR as ``&#13;``, NULL as an element with
    ``xsi:nil="true"`` and no content, one row element a line)."""

    def __init__(self, job: ExportJob, layout: XmlLayout) -> None:
        self.job = job
        self.layout = layout
        self.values = Sanitiser("xml")
        self.file: IO[bytes] | None = None
        # per table: the (open tag, close tag, NULL element) of each column, and whether
        # the column's name (kept in a ``name`` attribute) needed characters replaced
        self.columns: dict[str, list[tuple[str, str, str]]] = {}
        self.bad_names: dict[str, list[str]] = {}
        self.unmarkable: set[str] = set()
        for table, spec in layout.specs.items():
            tags = []
            bad = []
            for column in spec.column_names:
                tag = layout.columns[table][column]
                extra = ""
                if tag != column:
                    fixed, n = xml_legal(column)
                    extra = _attr("name", fixed)
                    if n:
                        bad.append(column)
                tags.append((f"<{tag}{extra}>", f"</{tag}>", f'<{tag}{extra} xsi:nil="true"></{tag}>'))
            self.columns[table] = tags
            self.bad_names[table] = bad
            # (columns whose tags hold the marks ``values.marked`` uses: value by value)
            self.unmarkable.update(t[0] for t in tags if any(m in "".join(t) for m in (SEP, NUL)))
        self.table_attr: dict[str, tuple[str, bool]] = {}
        for table in layout.specs:
            fixed, n = xml_legal(table)
            self.table_attr[table] = (_attr("table", fixed), bool(n))

    def rows_xml(self, table: str, columns: list[Sequence[Any]]) -> list[bytes]:
        """The column elements of each row of a batch given as its columns, in UTF-8 (the
        sink's ``prepare``), a column at a time."""
        rows = len(columns[0]) if columns else 0
        if not rows:
            return []
        spec = self.layout.specs[table]
        self.templated(table, rows)
        elements = [
            self._elements(tags, table, column, col)
            for tags, column, col in zip(self.columns[table], spec.column_names, columns, strict=True)
        ]
        return list(map(b"".join, zip(*elements, strict=True)))

    def _elements(self, tags: tuple[str, str, str], table: str, column: str, col: Sequence[Any]) -> list[bytes]:
        """One column's elements in UTF-8: the column's texts joined (``values.marked``),
        escaped, encoded and wrapped in their tags in C, then split.  (UTF-8 is
        self-synchronising: the bytes of ``SEP`` and ``NUL`` are only ever those.)"""
        start, end, nil = (t.encode() for t in tags)
        kinds = set(map(type, col))
        nulls = _NONE in kinds
        kinds.discard(_NONE)
        joined = None
        if tags[0] in self.unmarkable:
            pass
        elif kinds == {int}:
            try:  # (orjson writes a 64-bit integer as str() does)
                joined = orjson.dumps(col)[1:-1].replace(b",", _SEP).replace(b"null", _NUL)
            except orjson.JSONEncodeError:
                pass
        elif iso_by_orjson(col, kinds):  # (as isoformat() does)
            joined = orjson.dumps(col)[1:-1].replace(b",", _SEP).replace(b'"', b"").replace(b"null", _NUL)
        if joined is None:
            texts = self.values.xml_column(col, table, column)
            if texts is not col:
                nulls = None in texts
            text = marked(texts, nulls) if tags[0] not in self.unmarkable else None
            if text is None:
                s, e, z = tags
                if _NEEDS_ESCAPE.search("".join(filter(None, texts))):
                    out = [z if t is None else s + t.translate(_TEXT_ESCAPES) + e for t in texts]
                else:
                    out = [z if t is None else s + t + e for t in texts]
                return list(map(str.encode, out))
            if _NEEDS_ESCAPE.search(text):
                text = text.translate(_TEXT_ESCAPES)
            joined = text.encode()
        data = start + joined.replace(_SEP, end + _SEP + start) + end
        if nulls:
            data = data.replace(start + _NUL + end, nil)
        return data.split(_SEP)

    def start_tag(self, element: str, table: str, rows: int = 1) -> str:
        """The start tag of ``rows`` rows of ``table`` as ``element``."""
        if element == table:
            return f"<{element}>"
        attr, changed = self.table_attr[table]
        if changed:
            self.values.changed(table, "(name)", "contained characters XML cannot hold: replaced by U+FFFD", rows)
        return f"<{element}{attr}>"

    def elements(self, element: str, table: str, bodies: list[bytes], end: str, out: list[Any]) -> None:
        """Rows (their column elements ``bodies``) as ``element`` elements, each ended by
        ``end``, onto ``out``."""
        if bodies:
            start = self.start_tag(element, table, len(bodies)).encode()
            close = end.encode()
            out += (start, (close + start).join(bodies), close)

    def record_xml(self, element: str, record: Record, slot: int, out: list[bytes | Nest]) -> None:
        """A record with its nested records onto ``out``, in pieces (joined, they are the
        record's element; a ``Streamed`` table's rows: its nest marks where, ``leaves``
        makes them)."""
        out += (self.start_tag(element, record.table).encode(), record.value[slot])
        for nest, children in record.children:
            tag = self.layout.child_element[nest.table]
            if isinstance(children, Streamed):
                out.append(nest)
            elif isinstance(children, Leaves):
                self.elements(tag, nest.table, children.made[slot], f"</{tag}>", out)
            else:
                for child in children:
                    self.record_xml(tag, child, slot, out)
        out.append(f"</{element}>".encode())

    # -- the document, as a sink of ``nesting.write_nested`` -------------------------

    def prepare(self, table: str, columns: list[Sequence[Any]]) -> list[Any]:
        return self.rows_xml(table, columns)

    def row_template(self, table: str) -> RowTemplate:
        tags = tuple((s.encode(), e.encode(), z.encode()) for s, e, z in self.columns[table])
        return TEXT_XML, b"", b"", tags

    def templated(self, table: str, rows: int) -> None:
        for _column in self.bad_names[table]:  # counted once per row written, as lxml wrote each
            self.values.changed(table, "(name)", "contained characters XML cannot hold: replaced by U+FFFD", rows)

    def _put(self, text: str) -> None:
        assert self.file is not None
        self.file.write(text.encode("utf-8"))

    def begin(self) -> None:
        job, plan = self.job, self.layout.plan
        xml_string = self.values.xml_string
        attrib = [
            ("xsi:noNamespaceSchemaLocation", xsd_path(job.customer).rsplit("/", 1)[1]),
            ("customer", xml_string(job.customer, "(export)", "customer")),
            ("customer_name", xml_string(job.customer_name, "(export)", "customer_name")),
            ("generated_at", generated_at(job)),
            ("format", NESTED_FORMAT),
        ]
        if plan.people:
            attrib.append(("people_table", xml_string(plan.people, "(export)", "people_table")))
        self.file = job.open_file(xml_path(job.customer), "wb", buffering=1 << 20)
        self._put("<?xml version='1.0' encoding='utf-8'?>\n")
        self._put(f'<export xmlns:xsi="{XSI}"' + "".join(_attr(k, v) for k, v in attrib) + ">\n")
        if plan.nested:
            self._put("<people>\n")

    def person(self, record: Record, slot: int) -> list[bytes | Nest]:
        assert self.layout.plan.people
        out: list[bytes | Nest] = []
        self.record_xml(self.layout.row_element[self.layout.plan.people], record, slot, out)
        out.append(b"\n")
        return out

    def leaves(self, nest: Nest, values: list[Any], first: bool) -> bytes:
        tag = self.layout.child_element[nest.table]
        out: list[bytes] = []
        self.elements(tag, nest.table, values, f"</{tag}>", out)
        return b"".join(out)

    def put(self, data: bytes) -> None:
        assert self.file is not None
        self.file.write(data)

    def between(self) -> None:
        self._put(("</people>\n" if self.layout.plan.nested else "") + "<other>\n")

    def rows(self, table: str, values: list[Any]) -> None:
        assert self.file is not None
        element = self.layout.row_element[table]
        out: list[bytes] = []
        self.elements(element, table, values, f"</{element}>\n", out)
        for data in out:
            self.file.write(data)

    def end(self) -> None:
        self._put("</other>\n</export>")
        self.close()
        self.values.report(self.job)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def write(self) -> None:
        write_nested(self.job, self.layout.plan, [self])


def _nested_xml(job: ExportJob, plan: NestingPlan) -> XmlDocument:
    return XmlDocument(job, XmlLayout.build(job, plan))


register_sink("xml", _nested_xml)


@register
class XmlExporter(Exporter):
    name = "xml"
    description = "one XML document (people with their records) and its XML Schema"
    folder = FOLDER
    order = 30

    def after(self, job: ExportJob) -> None:
        plan = nesting_plan(job)
        if not plan.nested:
            job.note("xml", f"rows are not nested under people: {plan.reason}")
        layout = XmlLayout.build(job, plan)
        schema = build_xsd(layout, job)
        with job.open_file(xsd_path(job.customer), "wb") as f:
            f.write(etree.tostring(schema, xml_declaration=True, encoding="utf-8", pretty_print=True))
        if plan.nested and "json" in job.options.formats:
            return  # the JSON step wrote the document with its own: the structure is read once
        XmlDocument(job, layout).write()
