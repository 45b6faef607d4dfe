"""Documents as HTML (for WeasyPrint) and as plain text (for an e-mail body).

The page skeletons are files in ``templates/`` filled with ``string.Template``; every
value put into them is HTML-escaped here, because every value is customer data or
derived from it.  (WeasyPrint also gets a URL fetcher that refuses everything but
``data:`` URLs, so even an unescaped ``<img src="file:///…">`` could not read a file.)
"""

from __future__ import annotations

import html
import textwrap
from functools import cache
from importlib import resources
from string import Template

from . import i18n
from .charts import bar_chart_svg
from .model import BarChart, Bullets, Certificate, Document, Facts, Figures, Heading, Paragraph, Report, Table


@cache
def template(name: str) -> Template:
    """A file from ``templates/``, read once per process."""
    return Template(resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8"))


@cache
def stylesheet_text(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")


def page_css(lang: str) -> str:
    """The part of the page style that depends on the language: the page counter."""
    before, rest = i18n.text(lang, "page").split("{page}")
    middle, after = rest.split("{pages}")

    def css_string(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return (
        "@page { @bottom-right { content: "
        f"{css_string(before)} counter(page) {css_string(middle)} counter(pages) {css_string(after)}; }} }}"
    )


def esc(value: str) -> str:
    return html.escape(value, quote=True)


# --------------------------------------------------------------------------- HTML


def _block_html(block: object) -> str:
    if isinstance(block, Heading):
        level = min(max(block.level, 2), 3)
        return f"<h{level}>{esc(block.text)}</h{level}>"
    if isinstance(block, Paragraph):
        return f'<p class="{esc(block.style)}">{_inline(block.text)}</p>'
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Facts):
        rows = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in block.items)
        return f'<dl class="facts">{rows}</dl>'
    if isinstance(block, Figures):
        cards = "".join(
            f'<div class="figure"><span class="value">{esc(v)}</span><span class="label">{esc(k)}</span></div>'
            for k, v in block.items
        )
        return f'<div class="figures">{cards}</div>'
    if isinstance(block, Table):
        return _table_html(block)
    if isinstance(block, BarChart):
        if not any(block.values):
            return (
                f'<figure class="chart"><figcaption>{esc(block.title)}</figcaption>'
                f'<p class="empty">{esc(block.empty)}</p></figure>'
            )
        return f'<figure class="chart"><figcaption>{esc(block.title)}</figcaption>{bar_chart_svg(block)}</figure>'
    raise TypeError(f"unknown block {type(block).__name__}")


def _inline(text: str) -> str:
    """Escape, then show `backticked` spans as code (used for command names)."""
    parts = esc(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _table_html(table: Table) -> str:
    if not table.rows:
        return f'<p class="empty">{esc(table.empty)}</p>' if table.empty else ""
    numeric = table.numeric or (False,) * len(table.columns)
    cols = ""
    if table.widths:
        cols = "<colgroup>" + "".join(f'<col style="width:{w}%">' for w in table.widths) + "</colgroup>"
    head = "".join(
        f'<th class="num">{esc(c)}</th>' if num else f"<th>{esc(c)}</th>"
        for c, num in zip(table.columns, numeric, strict=True)
    )
    body = []
    for row in table.rows:
        cells = "".join(
            f'<td class="num">{esc(v)}</td>' if num else f"<td>{esc(v)}</td>"
            for v, num in zip(row, numeric, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    fixed = " fixed" if table.widths else ""
    return f'<table class="data{fixed}">{cols}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def report_html(doc: Report) -> str:
    if doc.letter:
        left, right = doc.vendor, ""
        running = f"{doc.vendor} · {doc.title}"
    else:
        left = doc.organisation
        right = f"{doc.vendor}"
        running = f"{doc.organisation} · {doc.title}"
    classes = " ".join(c for c in ("letter" if doc.letter else "report", "landscape" if doc.landscape else "") if c)
    return template("report.html").substitute(
        lang=esc(doc.lang),
        title=esc(doc.title),
        subtitle=esc(doc.subtitle),
        vendor=esc(doc.vendor),
        body_class=classes,
        running=esc(running),
        masthead_left=esc(left),
        masthead_right=esc(right),
        meta=esc(doc.generated),
        body="\n".join(_block_html(b) for b in doc.blocks),
    )


def certificate_lines(doc: Certificate) -> dict[str, str]:
    """The lines of a certificate that vary from one to the next, as shown (not escaped).

    ``score`` is the whole score line, and absent when the certificate has no score.
    """
    lines = {
        "organisation": doc.organisation,
        "person": doc.person,
        "course": doc.course,
        "issued": doc.issued,
        "number": doc.number,
        "reproduced": doc.reproduced,
    }
    if doc.score:
        lines["score"] = f"{i18n.text(doc.lang, 'certificate.score')}: {doc.score}"
    return lines


def certificate_title(doc: Certificate) -> str:
    """The PDF's title (the HTML ``<title>``)."""
    return f"{i18n.text(doc.lang, 'certificate.title')} – {doc.person}"


def certificate_html(doc: Certificate) -> str:
    t = lambda key, **kw: i18n.text(doc.lang, key, **kw)  # noqa: E731
    lines = certificate_lines(doc)
    score = f'<p class="score">{esc(lines["score"])}</p>' if "score" in lines else ""
    return template("certificate.html").substitute(
        lang=esc(doc.lang),
        title=esc(t("certificate.title")),
        organisation=esc(lines["organisation"]),
        person=esc(lines["person"]),
        course=esc(lines["course"]),
        certifies=esc(t("certificate.certifies")),
        completed=esc(doc.completed or t("certificate.completed")),
        score=score,
        issued=esc(lines["issued"]),
        issued_label=esc(t("certificate.issued")),
        number=esc(lines["number"]),
        number_label=esc(t("certificate.number")),
        seal="&#10003;",
        reproduced=esc(lines["reproduced"]),
    )


def document_html(doc: Document) -> str:
    return certificate_html(doc) if isinstance(doc, Certificate) else report_html(doc)


# --------------------------------------------------------------------------- plain text

WRAP = 72


def _wrap(text: str, indent: str = "", first: str | None = None) -> list[str]:
    lines: list[str] = []
    for k, para in enumerate(text.split("\n")):
        lead = first if (first is not None and k == 0) else indent
        lines.extend(textwrap.wrap(para, WRAP, initial_indent=lead, subsequent_indent=indent) or [lead.rstrip()])
    return lines


def document_text(doc: Report) -> str:
    """A report or letter as plain text, wrapped at 72 columns (an e-mail body)."""
    out: list[str] = [doc.title, "=" * min(len(doc.title), WRAP), ""]
    for block in doc.blocks:
        if isinstance(block, Heading):
            out += [block.text, "-" * min(len(block.text), WRAP)]
        elif isinstance(block, Paragraph):
            out += _wrap(block.text.replace("`", ""))
        elif isinstance(block, Bullets):
            for item in block.items:
                out += _wrap(item.replace("`", ""), indent="  ", first="- ")
        elif isinstance(block, (Facts, Figures)):
            width = min(max((len(k) for k, _ in block.items), default=0) + 2, 40)
            for k, v in block.items:
                label = f"{k}: ".ljust(width)
                if len(label) > width:  # a long label: the value goes on the next line
                    out.append(label.rstrip())
                    label = " " * width
                out += _wrap(v, indent=" " * width, first=label)
        elif isinstance(block, Table):
            if not block.rows:
                out += _wrap(block.empty) if block.empty else []
            for row in block.rows:
                out += _wrap("; ".join(f"{c}: {v}" for c, v in zip(block.columns, row, strict=True)), "  ", "- ")
        elif isinstance(block, BarChart):
            out.append(block.title)
            for label, value in zip(block.labels, block.values, strict=True):
                out.append(f"  {label}: {value}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
