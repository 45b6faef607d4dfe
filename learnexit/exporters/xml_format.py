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
``json_format``: same plan, same placement, every owned row exactly once).  Without
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from lxml import etree

from .base import Exporter, ExportJob, TableSpec, register
from .json_format import NESTED_FORMAT, NestedReader, NestingPlan, Record, generated_at, nesting_plan
from .values import Sanitiser, file_stem, xml_legal

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


def build_xsd(layout: XmlLayout, job: ExportJob) -> etree._Element:
    def xs(tag: str, parent: etree._Element | None = None, **attrib: str) -> etree._Element:
        el = (
            etree.Element(f"{{{XS}}}{tag}", nsmap={"xs": XS})
            if parent is None
            else etree.SubElement(parent, f"{{{XS}}}{tag}")
        )
        for k, v in attrib.items():
            el.set(k.rstrip("_"), v)
        return el

    schema = xs("schema", elementFormDefault="unqualified")
    doc = xs("annotation", schema)
    xs("documentation", doc).text = (
        f"learnexit export of {job.customer}: one element per row, named after its table; "
        "one child element per column (NULL: xsi:nil); nested rows follow the columns."
    )
    number = xs("simpleType", schema, name=NUMBER_TYPE)
    xs("union", number, memberTypes="xs:decimal xs:double")

    for spec in layout.specs.values():
        flat = xs("complexType", schema, name=_flat_type(layout, spec.name))
        seq = xs("sequence", flat)
        for column in spec.column_names:
            element_name = layout.columns[spec.name][column]
            el = xs("element", seq, name=element_name, nillable="true")
            base = column_xsd_type(spec, column)
            if element_name == column:
                el.set("type", base)
            else:
                ext = xs("extension", xs("simpleContent", xs("complexType", el)), base=base)
                xs("attribute", ext, name="name", type="xs:string", fixed=xml_legal(column)[0])
        xs("attribute", flat, name="table", type="xs:string", use="optional")
    for spec in layout.specs.values():
        nests = layout.plan.kids(spec.name)
        if not nests:
            continue
        nested = xs("complexType", schema, name=_type_of(layout, spec.name))
        ext = xs("extension", xs("complexContent", nested), base=_flat_type(layout, spec.name))
        seq = xs("sequence", ext)
        for nest in nests:
            xs(
                "element",
                seq,
                name=layout.child_element[nest.table],
                type=_type_of(layout, nest.table),
                minOccurs="0",
                maxOccurs="unbounded",
            )

    root = xs("element", schema, name="export")
    ctype = xs("complexType", root)
    seq = xs("sequence", ctype)
    plan = layout.plan
    if plan.nested:
        assert plan.people
        people = xs("element", seq, name="people", minOccurs="0")
        pseq = xs("sequence", xs("complexType", people))
        xs(
            "element",
            pseq,
            name=layout.row_element[plan.people],
            type=_type_of(layout, plan.people),
            minOccurs="0",
            maxOccurs="unbounded",
        )
    other = xs("element", seq, name="other")
    oseq = xs("sequence", xs("complexType", other))
    for table in plan.other_tables:
        xs(
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
        xs("attribute", ctype, name=attr, type="xs:dateTime" if attr == "generated_at" else "xs:string", use=use)
    return schema


def _flat_type(layout: XmlLayout, table: str) -> str:
    return f"row.{layout.row_element[table]}"


def _type_of(layout: XmlLayout, table: str) -> str:
    """The type of ``table``'s rows where they nest (with their own nested rows)."""
    if layout.plan.kids(table):
        return f"nested.{layout.row_element[table]}"
    return _flat_type(layout, table)


# --------------------------------------------------------------------------- the document


class XmlDocument:
    def __init__(self, job: ExportJob, layout: XmlLayout) -> None:
        self.job = job
        self.layout = layout
        self.values = Sanitiser("xml")

    def write_row(self, xf: Any, element: str, table: str, row: sa.Row[Any], children: list[Any] | None = None) -> None:
        attrib = {} if element == table else {"table": self.values.xml_string(table, table, "(name)")}
        names = self.layout.columns[table]
        convert = self.values.xml
        with xf.element(element, attrib):
            for column, value in zip(self.layout.specs[table].column_names, row, strict=True):
                tag = names[column]
                col_attrib = {} if tag == column else {"name": self.values.xml_string(column, table, "(name)")}
                text = convert(value, table, column)
                if text is None:
                    col_attrib[NIL] = "true"
                    with xf.element(tag, col_attrib):
                        pass
                else:
                    with xf.element(tag, col_attrib):
                        xf.write(text)
            for nest, records in children or ():
                tag = self.layout.child_element[nest.table]
                for record in records:
                    self.write_record(xf, tag, record)

    def write_record(self, xf: Any, element: str, record: Record) -> None:
        self.write_row(xf, element, record.table, record.row, record.children)

    def write(self) -> None:
        job, layout, plan = self.job, self.layout, self.layout.plan
        reader = NestedReader(job, plan)
        attrib = {
            f"{{{XSI}}}noNamespaceSchemaLocation": xsd_path(job.customer).rsplit("/", 1)[1],
            "customer": self.values.xml_string(job.customer, "(export)", "customer"),
            "customer_name": self.values.xml_string(job.customer_name, "(export)", "customer_name"),
            "generated_at": generated_at(job),
            "format": NESTED_FORMAT,
        }
        if plan.people:
            attrib["people_table"] = self.values.xml_string(plan.people, "(export)", "people_table")
        with job.open_file(xml_path(job.customer), "wb") as f, etree.xmlfile(f, encoding="utf-8") as xf:
            xf.write_declaration()
            with xf.element("export", attrib, nsmap={"xsi": XSI}):
                xf.write("\n")
                if plan.nested:
                    assert plan.people
                    with _section(xf, "people"):
                        element = layout.row_element[plan.people]
                        for record in reader.people():
                            self.write_record(xf, element, record)
                            xf.write("\n")
                with _section(xf, "other"):
                    for table in plan.other_tables:
                        element = layout.row_element[table]
                        for part in reader.other(table):
                            for row in part:
                                self.write_row(xf, element, table, row)
                                xf.write("\n")
                        xf.flush()
        self.values.report(job)


@contextmanager
def _section(xf: Any, name: str) -> Iterator[None]:
    with xf.element(name):
        xf.write("\n")
        yield
    xf.write("\n")


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
        XmlDocument(job, layout).write()
