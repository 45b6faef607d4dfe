"""What a package says about itself: ``data/datapackage.json`` (a Frictionless Data
Package: every CSV with its schema and keys, every other file as a resource) and
``data/index.html`` (what is inside, counts, every note, how to check it)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from .. import __version__
from ..documents.i18n import format_bytes
from ..documents.notes import note_sentence
from ..errors import printable
from ..exporters.base import ExportJob, TableSpec
from ..exporters.csv_format import csv_paths
from ..exporters.none_values import declare_none, none_wording
from ..exporters.values import unique_stems
from .bag import DATAPACKAGE, INDEX, hash_file, relative_files, utc

_RESOURCE_NAME = re.compile(r"[^a-z0-9._/-]")


def _field(col: Any, dialect: Any) -> dict[str, Any]:
    """A Table Schema field matching the CSV text conventions of the csv format."""
    kinds: dict[str, dict[str, Any]] = {
        "integer": {"type": "integer"},
        "number": {"type": "number"},
        "boolean": {"type": "boolean", "trueValues": ["true"], "falseValues": ["false"]},
        "date": {"type": "date"},
        "datetime": {"type": "datetime"},
        "binary": {"type": "string", "format": "binary"},
        "string": {"type": "string"},
    }
    out: dict[str, Any] = {"name": col.name, **kinds.get(col.kind, {"type": "string"})}
    try:
        out["description"] = f"SQL type {col.sql_type.compile(dialect=dialect)}"
    except Exception:  # noqa: BLE001 - a type the dialect cannot render: leave it out
        pass
    # NULL and "" are both written as an empty cell, so "required" is only safe for
    # kinds where an empty cell cannot be a value.
    if not col.nullable and col.kind not in ("string", "binary") and not col.primary_key:
        out["constraints"] = {"required": True}
    return out


def _resource_name(text: str, used: set[str]) -> str:
    base = _RESOURCE_NAME.sub("-", text.lower()).strip("-/") or "resource"
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}-{n}"
    used.add(name)
    return name


def _file_format(rel: str) -> tuple[str, str]:
    ext = PurePosixPath(rel).suffix.lower().lstrip(".")
    media = {
        "csv": "text/csv",
        "json": "application/json",
        "xml": "application/xml",
        "xsd": "application/xml",
        "sql": "application/sql",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "pdf": "application/pdf",
        "html": "text/html",
        "txt": "text/plain",
    }
    return ext, media.get(ext, "application/octet-stream")


def _table_schema(
    job: ExportJob, spec: TableSpec, names: dict[str, str], kinds: dict[str, dict[str, str]], dialect: Any
) -> dict[str, Any]:
    """A CSV's Table Schema: its fields, primary key and the foreign keys it can declare
    (``names``: each CSV table's resource name; ``kinds``: each one's column kinds); a
    reference it cannot declare is noted."""
    schema: dict[str, Any] = {
        "fields": [_field(c, dialect) for c in spec.columns],
        "missingValues": [""],
    }
    if spec.primary_key:
        schema["primaryKey"] = list(spec.primary_key)
    foreign_keys = []
    undeclared: list[str] = []  # "no reference" values a field cannot declare
    for edge in spec.foreign_keys:
        if edge.parent not in names:
            continue
        child_kinds = [kinds[spec.name].get(c) for c in edge.child_cols]
        parent_kinds = [kinds[edge.parent].get(c) for c in edge.parent_cols]
        if child_kinds != parent_kinds:
            job.note(
                "csv",
                f"{edge.label}: column types differ, so datapackage.json does not declare this foreign key",
            )
            continue
        if not declare_none(schema["fields"], edge, spec.primary_key):
            undeclared.append(none_wording(edge, spec.name))
            continue
        foreign_keys.append(
            {
                "fields": list(edge.child_cols),
                "reference": {
                    "resource": "" if edge.parent == spec.name else names[edge.parent],
                    "fields": list(edge.parent_cols),
                },
            }
        )
    if foreign_keys:
        schema["foreignKeys"] = foreign_keys
    if undeclared:
        which = "the reference is" if len(undeclared) == 1 else "the references are"
        job.note("csv", f"{'; '.join(undeclared)}; {which} not declared in datapackage.json")
    return schema


def build_datapackage(job: ExportJob, data_dir: Path, hashes: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """The Frictionless Data Package: every CSV with its schema and keys, then every other
    file as a non-tabular resource.  ``hashes`` caches (sha256, size) per relative path."""
    dialect = job.source.engine.dialect
    used: set[str] = set()
    resources: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    kinds: dict[str, dict[str, str]] = {}
    described: set[str] = {DATAPACKAGE, INDEX}

    def digest(rel: str) -> tuple[str, int]:
        if rel not in hashes:
            hashes[rel] = hash_file(data_dir / rel, sync=True)
        return hashes[rel]

    paths = csv_paths([s.name for s in job.tables])
    csv_specs: list[TableSpec] = [s for s in job.tables if (data_dir / paths[s.name]).is_file()]
    for spec in csv_specs:
        names[spec.name] = _resource_name(spec.name, used)
        kinds[spec.name] = {c.name: c.kind for c in spec.columns}
    for spec in csv_specs:
        rel = paths[spec.name]
        described.add(rel)
        sha, size = digest(rel)
        with open(data_dir / rel, "rb") as fh:
            bom = fh.read(3) == b"\xef\xbb\xbf"
        resources.append(
            {
                "name": names[spec.name],
                "title": spec.name,
                "type": "table",
                "path": rel,
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8-sig" if bom else "utf-8",
                "bytes": size,
                "hash": f"sha256:{sha}",
                "dialect": {"delimiter": ",", "quoteChar": '"', "doubleQuote": True, "header": True},
                "schema": _table_schema(job, spec, names, kinds, dialect),
            }
        )
    for rel in relative_files(data_dir):
        if rel in described:
            continue
        sha, size = digest(rel)
        fmt, mediatype = _file_format(rel)
        resource: dict[str, Any] = {
            "name": _resource_name(rel, used),
            "type": "file",
            "path": rel,
            "mediatype": mediatype,
            "bytes": size,
            "hash": f"sha256:{sha}",
        }
        if fmt:
            resource["format"] = fmt
        resources.append(resource)
    # index.html is written after this file, so it is listed without size and hash.
    resources.append(
        {"name": _resource_name(INDEX, used), "type": "file", "path": INDEX, "format": "html", "mediatype": "text/html"}
    )
    started = utc(job.started_at)
    return {
        "name": _resource_name(f"{job.customer}-export", set()),
        "title": f"Data export of {job.customer_name} ({job.customer})",
        "created": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "description": "Every table of the customer's data as CSV (UTF-8, header row, RFC 4180); "
        "an empty cell is NULL; booleans are true/false; dates and times ISO 8601 (UTC); "
        "binary values base64.",
        "resources": resources,
    }


# --------------------------------------------------------------------------- index.html

_TEXT = {
    "en": {
        "title": "Data export: {name}",
        "intro": "This package holds every row of {name}'s data, read from one consistent snapshot. "
        "It is a BagIt bag: manifest-sha256.txt, next to this folder, lists a SHA-256 checksum for every file.",
        "customer": "Customer",
        "exported": "Exported at",
        "deadline": "Export deadline",
        "none": "none recorded",
        "formats": "Formats",
        "tool": "Made by",
        "vendor": "Delivered by",
        "read": "Read from",
        "read_primary": "the LMS database",
        "read_replica": "a read replica of the LMS database",
        "read_position": "as of its replay position {position}",
        "tables": "Tables",
        "table": "Table",
        "category": "Category",
        "rows": "Rows",
        "files_of": "Files",
        "total": "Total",
        "notes": "Notes",
        "no_notes": "No notes: nothing was truncated, changed or left out.",
        "files": "Every file in this package",
        "path": "File",
        "size": "Size",
        "check": "How to check this package",
        "check_text": "Any of these confirms that every file is complete and unchanged:",
        "csv_safe": "Opening the CSV files safely",
        "csv_safe_text": "The CSV files hold every value exactly as it was stored, including text that "
        "begins with =, +, - or @. A spreadsheet program that opens a CSV file directly (by a double-click) "
        "may take such text for a formula and run it. Import the files instead (Excel: Data → From Text/CSV; "
        "LibreOffice: the Text Import dialog) with every column set to Text, or open the Excel workbook "
        "in excel/, where every value is text or a number and never a formula.",
        "media": "Media files copied: {n}.",
    },
    "sv": {
        "title": "Dataexport: {name}",
        "intro": "Paketet innehåller varje rad av {name}s data, läst ur en och samma konsistenta ögonblicksbild. "
        "Det är en BagIt-påse: manifest-sha256.txt, bredvid den här mappen, anger en SHA-256-kontrollsumma "
        "för varje fil.",
        "customer": "Kund",
        "exported": "Exporterat",
        "deadline": "Sista exportdag",
        "none": "ingen registrerad",
        "formats": "Format",
        "tool": "Skapat med",
        "vendor": "Levererat av",
        "read": "Läst ur",
        "read_primary": "LMS-databasen",
        "read_replica": "en läskopia (replik) av LMS-databasen",
        "read_position": "som den var vid återspelningsposition {position}",
        "tables": "Tabeller",
        "table": "Tabell",
        "category": "Kategori",
        "rows": "Rader",
        "files_of": "Filer",
        "total": "Totalt",
        "notes": "Anmärkningar",
        "no_notes": "Inga anmärkningar: inget har kortats, ändrats eller utelämnats.",
        "files": "Alla filer i paketet",
        "path": "Fil",
        "size": "Storlek",
        "check": "Så kontrollerar du paketet",
        "check_text": "Vilket som helst av följande bekräftar att varje fil är komplett och oförändrad:",
        "csv_safe": "Öppna CSV-filerna säkert",
        "csv_safe_text": "CSV-filerna innehåller varje värde exakt som det lagrades, även text som börjar "
        "med =, +, - eller @. Ett kalkylprogram som öppnar en CSV-fil direkt (med ett dubbelklick) kan ta "
        "sådan text för en formel och köra den. Importera i stället filerna (Excel: Data → Från text/CSV; "
        "LibreOffice: dialogen Textimport) med alla kolumner som Text, eller öppna Excel-arbetsboken i "
        "excel/, där varje värde är text eller ett tal och aldrig en formel.",
        "media": "Kopierade mediefiler: {n}.",
    },
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:60rem;
padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25rem .5rem;
border-bottom:1px solid #eee;vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f4f4f4;padding:0 .2rem}li{margin:.2rem 0}
"""


def _human(size: int, lang: str = "en") -> str:
    """Decimal units (kB, MB), as the export summary and the CLI write them."""
    return format_bytes(size, lang)


def _link(rel: str, label: str | None = None) -> str:
    return f'<a href="{html.escape(quote(rel))}">{html.escape(printable(label or rel))}</a>'


def _read_row(job: ExportJob, t: dict[str, str]) -> list[str]:
    """The row saying where the data was read: the LMS database or its read replica, as of
    the replica's replay position (no URL: the vendor's hosts are not in the package)."""
    point = job.read_point
    if point is None:
        return []
    text = t["read_replica"] if point.reads == "replica" else t["read_primary"]
    if point.position is not None:
        text += ", " + t["read_position"].format(position=point.position)
    return [f"<tr><th>{html.escape(t['read'])}</th><td>{html.escape(printable(text))}</td></tr>"]


def render_index(job: ExportJob, formats: Sequence[tuple[str, str]], sizes: dict[str, int]) -> str:
    """``data/index.html``: what is inside, counts, every note, links.  Self-contained."""
    lang = job.options.lang if job.options.lang in _TEXT else "en"
    t = _TEXT[lang]

    def e(text: str) -> str:  # control characters in names and notes shown escaped (\x0a)
        return html.escape(printable(text))

    started = utc(job.started_at)
    # Per-table files share the table's file stem (csv/<stem>.csv, json/<stem>.json).
    stems = {stem: table for table, stem in unique_stems([s.name for s in job.tables]).items()}
    by_table: dict[str, list[str]] = {}
    for rel in sizes:
        p = PurePosixPath(rel)
        if p.parent.as_posix() in ("csv", "json") and p.stem in stems:
            by_table.setdefault(stems[p.stem], []).append(rel)
    out: list[str] = [
        "<!DOCTYPE html>",
        f'<html lang="{lang}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(t['title'].format(name=job.customer_name))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(t['title'].format(name=job.customer_name))}</h1>",
        f"<p>{e(t['intro'].format(name=job.customer_name))}</p>",
        "<table>",
        f"<tr><th>{e(t['customer'])}</th><td>{e(job.customer_name)} (<code>{e(job.customer)}</code>)</td></tr>",
        f"<tr><th>{e(t['exported'])}</th><td>{started.strftime('%Y-%m-%d %H:%M:%S')} UTC</td></tr>",
        f"<tr><th>{e(t['deadline'])}</th><td>"
        f"{e(job.export_deadline.isoformat() if job.export_deadline else t['none'])}</td></tr>",
        f"<tr><th>{e(t['formats'])}</th><td>"
        + "<br>".join(f"<b>{e(name)}</b>: {e(desc)}" for name, desc in formats)
        + "</td></tr>",
        f"<tr><th>{e(t['vendor'])}</th><td>{e(job.settings.vendor_name)}</td></tr>",
        *_read_row(job, t),
        f"<tr><th>{e(t['tool'])}</th><td>learnexit {e(__version__)}</td></tr>",
        "</table>",
        f"<h2>{e(t['tables'])}</h2>",
        f"<table><tr><th>{e(t['table'])}</th><th>{e(t['category'])}</th>"
        f"<th class=n>{e(t['rows'])}</th><th>{e(t['files_of'])}</th></tr>",
    ]
    for spec in job.tables:
        links = ", ".join(
            _link(rel, PurePosixPath(rel).suffix.lstrip(".")) for rel in sorted(by_table.get(spec.name, []))
        )
        out.append(
            f"<tr><td>{e(spec.name)}</td><td>{e(spec.category or '')}</td>"
            f"<td class=n>{job.counts.get(spec.name, 0):,}</td><td>{links}</td></tr>"
        )
    out.append(
        f"<tr><th>{e(t['total'])}</th><td></td><th class=n>{sum(job.counts.values()):,}</th><td></td></tr></table>"
    )
    out.append(f"<h2>{e(t['notes'])}</h2>")
    if job.notes:
        out.append("<ul>" + "".join(f"<li>{e(note_sentence(n))}</li>" for n in job.notes) + "</ul>")
    else:
        out.append(f"<p>{e(t['no_notes'])}</p>")
    if job.media:
        out.append(f"<p>{e(t['media'].format(n=len(job.media)))}</p>")
    out.append(f"<h2>{e(t['files'])}</h2>")
    out.append(f"<table><tr><th>{e(t['path'])}</th><th class=n>{e(t['size'])}</th><th class=n>bytes</th></tr>")
    for rel in sorted(sizes):
        out.append(
            f"<tr><td>{_link(rel)}</td><td class=n>{_human(sizes[rel], lang)}</td><td class=n>{sizes[rel]}</td></tr>"
        )
    out.append("</table>")
    if any(name == "csv" for name, _desc in formats):  # formula-looking text stays exact in CSV
        out.append(f"<h2 id=csv-safety>{e(t['csv_safe'])}</h2><p>{e(t['csv_safe_text'])}</p>")
    out.append(f"<h2>{e(t['check'])}</h2><p>{e(t['check_text'])}</p><ul>")
    for command in (
        "learnexit verify PACKAGE",
        "bagit.py --validate PACKAGE",
        "frictionless validate data/datapackage.json",
    ):
        out.append(f"<li><code>{e(command)}</code></li>")
    out.append("</ul></body></html>\n")
    return "\n".join(out)


__all__ = ["build_datapackage", "render_index"]
