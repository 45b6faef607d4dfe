"""One run of the documents of one export (``DocumentBuild``): what the documents read
through ``[roles.*]``, the lookups and counters aggregated while streaming, the text
helpers every document uses, and handing each finished document to the render queue in
every chosen format.  The documents themselves are made by ``documents_learning``,
``documents_activity`` and ``documents_summary``; ``documents_format`` runs them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..config import Role
from ..documents import i18n
from ..documents.fonts import document_characters
from ..documents.model import Block, Report
from ..documents.render import RenderQueue
from ..errors import printable
from ..roles import nobody
from .base import ExportJob
from .media import NameAllocator

__all__ = [
    "CERTIFICATES",
    "FOLDER",
    "REPORTS",
    "CourseStats",
    "DocumentBuild",
    "PersonStats",
    "instant_kind",
    "key_text",
    "score_number",
]

FOLDER = "documents"
CERTIFICATES = "certificates"
REPORTS = "reports"


def key_text(value: Any) -> str | None:
    """A key as text (ids of any type compare as text); None stays None."""
    return None if value is None else str(value)


def score_number(value: Any) -> float | None:
    """A score as a float; None for NULL or anything that is not a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    try:
        return float(Decimal(str(value).strip()))
    except (InvalidOperation, ValueError):
        return None


def instant_kind(values: list[Any]) -> str | None:
    """ "naive" or "aware" when ``values`` are datetimes that compare as they are, else None."""
    if any(type(v) is not datetime for v in values):
        return None
    if all(v.tzinfo is None for v in values):
        return "naive"
    if all(v.utcoffset() is not None for v in values):
        return "aware"
    return None


@dataclass
class PersonStats:
    """What the documents count per person."""

    courses: set[str] = field(default_factory=set)
    completions: int = 0
    certificates: int = 0
    score_sum: float = 0.0
    score_n: int = 0
    quiz_attempts: int = 0
    quiz_sum: float = 0.0
    quiz_n: int = 0
    activity: int = 0
    first_seen: date | None = None
    last_seen: date | None = None


@dataclass
class CourseStats:
    """What the documents count per course."""

    completions: int = 0
    certificates: int = 0
    score_sum: float = 0.0
    score_n: int = 0


class DocumentBuild:
    """One run of the documents of one export, in one or both formats (the data is read
    and aggregated once; each document is rendered in every format)."""

    def __init__(self, job: ExportJob, fmt: str | list[str], queue: RenderQueue) -> None:
        self.job = job
        self.fmts = [fmt] if isinstance(fmt, str) else list(fmt)
        self.fmt = self.fmts[0]
        self.queue = queue
        self.lang = i18n.check_lang(job.options.lang)
        self.tz = job.settings.contract.timezone
        self.organisation = job.customer_name
        self.vendor = job.settings.vendor_name
        self.exported_on = i18n.local_date(job.started_at, self.tz) or job.started_at.date()
        self.generated = i18n.text(self.lang, "generated", date=i18n.format_date(self.exported_on, self.lang))
        self.exported_tables = {t.name for t in job.tables}
        self.people: dict[str, str] | None = None
        self.emails: dict[str, str] = {}  # shown under the name: two people may share one
        self.courses: dict[str, str] | None = None
        self.stats: dict[str, PersonStats] = {}
        self.course_stats: dict[str, CourseStats] = {}
        self.certificate_numbers: dict[tuple[str, str], str] = {}
        self.months: Counter[tuple[int, int]] = Counter()
        self.quiz_buckets = [0] * 10
        self.quiz_total = 0
        self.quiz_pct_n = 0
        self.quiz_pct_sum = 0.0
        self.activity_total = 0
        self.activity_span: tuple[date, date] | None = None
        # ``activity``'s state: person as read → [rows, earliest, latest]; the instants' kind
        # ("naive" | "aware") so far; first and last days of rows taken value by value;
        # whether the read pass fed every row already (``ActivityWatcher``).
        self.activity_spans: dict[Any, list[Any]] = {}
        self.activity_kind: str | None = None
        self.activity_days: list[date] = []
        self.activity_watched = False
        self.feedback_answers: int | None = None
        self.certificates_read: int | None = None
        self.unknown_people: set[str] = set()
        self.nobody: dict[str, frozenset[str]] = {}  # role → person values that mean no one
        self.names = NameAllocator()
        self.own_notes: list[str] = []
        self.pdf_chars: set[str] = set()  # every character outside ASCII the PDFs hold

    # -- helpers ---------------------------------------------------------------

    def t(self, key: str, **values: Any) -> str:
        return i18n.text(self.lang, key, **values)

    def note(self, text: str) -> None:
        self.own_notes.append(printable(text))
        for fmt in self.fmts:
            self.job.note(fmt, text)

    def role(self, name: str, *, needs: tuple[str, ...] = (), document: str) -> Role | None:
        """The role if it can be used for ``document``; otherwise a note and None."""
        role = self.job.settings.roles.get(name)
        if role is None:
            self.note(f"{document} skipped: [roles.{name}] is not configured")
            return None
        missing = [c for c in needs if c not in role.columns]
        if missing:
            self.note(f"{document} skipped: [roles.{name}] does not name {', '.join(missing)}")
            return None
        if role.table not in self.exported_tables:
            self.note(f"{document} skipped: [roles.{name}] table {role.table} is not part of this customer's export")
            return None
        return role

    def quiet_role(self, name: str) -> Role | None:
        """The role if usable, without a note (for optional parts of a document)."""
        role = self.job.settings.roles.get(name)
        if role is None or role.table not in self.exported_tables:
            return None
        return role

    def column(self, role: Role, key: str) -> sa.Column[Any]:
        return self.job.source.table(role.table).c[role.columns[key]]

    def rows(self, role: Role, order: tuple[str, ...] = (), extra: str | None = None) -> Iterator[dict[str, Any]]:
        """The role table's rows (only the role's columns, ``extra`` and the primary key),
        as dicts."""
        table = self.job.source.table(role.table)
        order_by = [self.column(role, k) for k in order if k in role.columns] or None
        if order_by is not None:
            order_by += list(table.primary_key.columns)
        more = [extra] if extra else []
        names = list(dict.fromkeys([*role.columns.values(), *more, *(c.name for c in table.primary_key.columns)]))
        columns = [table.c[n] for n in names]
        for batch in self.job.tuples(role.table, order_by=order_by, columns=columns):
            yield from (dict(zip(names, row, strict=True)) for row in batch)

    def value(self, row: Any, role: Role, key: str) -> Any:
        column = role.columns.get(key)
        return None if column is None else row[column]

    def who(self, row: Any, role: Role) -> str | None:
        """The row's person as a key; None when it names no one: NULL, or a value that
        means no one (``[roles.people] nobody``, the column's ``sentinels``)."""
        return self.person_key(self.value(row, role, "person"), role)

    def person_key(self, value: Any, role: Role) -> str | None:
        key = key_text(value)
        if role.name not in self.nobody:
            self.nobody[role.name] = nobody(self.job.settings, role)
        return None if key is None or key in self.nobody[role.name] else key

    def award_title(self, row: Any, role: Role, titles: tuple[str, dict[str, Any]] | None) -> str:
        """What a certificate without a course was awarded for: its ``title`` (in its own
        table or, ``titles``, in another), else "this certificate"."""
        title = self.value(row, role, "title") if titles is None else titles[1].get(str(row[titles[0]]))
        return self.t("certificate.this") if title is None else str(title)

    def activity_key(self, raw: Any) -> str | None:
        role = self.job.settings.roles.get("activity")
        return key_text(raw) if role is None else self.person_key(raw, role)

    def person_name(self, person: str | None) -> str:
        if person is None:
            return self.t("none")
        if self.people is not None and person in self.people:
            return self.people[person]
        self.unknown_people.add(person)
        return self.t("unknown_person", id=person)

    def course_title(self, course: str | None) -> str:
        if course is None:
            return self.t("none")
        if self.courses is not None and course in self.courses:
            return self.courses[course]
        return self.t("unknown_course", id=course)

    def date_text(self, value: Any) -> str:
        day = i18n.local_date(value, self.tz)
        if day is not None:
            return i18n.format_date(day, self.lang)
        return self.t("none") if value is None else str(value)

    def score_text(self, value: float | None) -> str:
        if value is None:
            return self.t("none")
        return i18n.format_number(value, self.lang, 0 if float(value).is_integer() else 2)

    def average(self, total: float, n: int, *, percent: bool = False) -> str:
        if not n:
            return self.t("none")
        return i18n.format_percent(total / n, self.lang) if percent else i18n.format_number(total / n, self.lang)

    def person(self, key: str) -> PersonStats:
        stats = self.stats.get(key)
        if stats is None:
            stats = self.stats[key] = PersonStats()
        return stats

    def emit(self, relpath: str, doc: Any) -> None:
        if "pdf" in self.fmts:
            self.pdf_chars |= document_characters(doc)
        for fmt in self.fmts:
            target: Path = self.job.path(f"{FOLDER}/{relpath}.{fmt}")
            self.queue.add(doc, fmt, target)

    def report(self, title: str, subtitle: str, blocks: list[Block], *, landscape: bool = False) -> Report:
        return Report(
            lang=self.lang,
            title=title,
            subtitle=subtitle,
            organisation=self.organisation,
            vendor=self.vendor,
            generated=self.generated,
            blocks=tuple(blocks),
            landscape=landscape,
        )
