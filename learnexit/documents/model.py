"""What a document says, independent of how it is drawn.

Exporters and the notice letter build these plain, picklable values with every text
already translated and every number and date already formatted; ``layout`` turns them
into HTML (for WeasyPrint's PDF) and plain text, ``word`` into a .docx.  Because both
renderers read the same values, the PDF and the Word file carry the same content.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2  # 2 = section, 3 = subsection (1 is the document title)


@dataclass(frozen=True)
class Paragraph:
    text: str
    style: str = "body"  # body | lead | muted | small | pre (keeps line breaks) | code (a hash: monospace)


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Facts:
    """Label → value pairs (a definition list)."""

    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Figures:
    """Headline numbers, drawn as a row of cards."""

    items: tuple[tuple[str, str], ...]  # (label, value)


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()  # right-aligned columns
    empty: str = ""  # said instead of an empty table
    widths: tuple[int, ...] = ()  # relative column widths (percent), optional


@dataclass(frozen=True)
class BarChart:
    """A bar chart: SVG in the PDF, a table of the same numbers in Word."""

    title: str
    labels: tuple[str, ...]
    values: tuple[int, ...]
    label_heading: str  # heading of the label column in the table form
    value_heading: str
    x_axis: str = ""
    empty: str = ""


Block = Heading | Paragraph | Bullets | Facts | Figures | Table | BarChart


@dataclass(frozen=True)
class Report:
    """A report or letter: a title, a header naming both parties, and blocks."""

    lang: str
    title: str
    subtitle: str
    organisation: str
    vendor: str
    generated: str  # "Generated 29 November 2026" (translated)
    blocks: tuple[Block, ...]
    landscape: bool = False
    letter: bool = False  # a letter has no running title and reads as correspondence


@dataclass(frozen=True)
class Certificate:
    lang: str
    organisation: str
    vendor: str
    person: str
    course: str
    issued: str  # formatted date, or "—"
    number: str  # certificate number, or "—"
    score: str | None = None
    reproduced: str = ""  # the small print: where this copy comes from
    completed: str | None = None  # the line above ``course`` when not "has completed the course"

    @classmethod
    def sample(cls, lang: str, with_score: bool, texts: dict[str, str]) -> Certificate:
        """A certificate whose varying texts are ``texts`` (by field: organisation, person,
        course, issued, number, score, reproduced, and completed if given), to lay out a
        template that others reuse (the PDF's ``CertificateLayout``, Word's
        ``certificate_template``); no score line unless ``with_score``."""
        return cls(
            lang=lang,
            organisation=texts["organisation"],
            vendor="",
            person=texts["person"],
            course=texts["course"],
            issued=texts["issued"],
            number=texts["number"],
            score=texts["score"] if with_score else None,
            reproduced=texts["reproduced"],
            completed=texts.get("completed"),
        )


Document = Report | Certificate
