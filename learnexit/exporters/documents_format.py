"""Certificates and reports as PDF ("pdf") and Word ("docx"), with the same content.

What each table means comes from ``[roles.*]`` (design §2).  A document whose roles are
not configured, or whose role table is not part of this customer's export, is skipped
with a note — never guessed.  Every value is read through ``job.rows`` (this customer's
rows from the export's snapshot), one result at a time, and aggregated while streaming:
only the lookups (people's names, course titles, certificate numbers) and per-person
counters are kept in memory.

Files (below ``data/documents/``; the .pdf and the .docx of a document sit side by side):

* ``certificates/<number>.pdf`` — one per issued certificate
* ``reports/completions/<course id>-<title>.pdf`` — one per course
* ``reports/user-statistics.pdf``, ``reports/analytics-summary.pdf``, ``reports/feedback.pdf``
* ``export-summary.pdf``
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa

from ..config import Role
from ..contract import retention_until
from ..documents import i18n
from ..documents.fonts import document_characters, undrawable_note
from ..documents.model import (
    BarChart,
    Block,
    Certificate,
    Facts,
    Figures,
    Heading,
    Paragraph,
    Report,
    Table,
)
from ..documents.notes import note_sentence
from ..documents.render import RenderQueue, default_workers, warm_pool
from ..documents.role_rules import no_one_note, remote_values
from ..errors import printable
from ..roles import nobody
from .base import REGISTRY, Exporter, ExportJob, TableSpec, TableWriter, register
from .media import NameAllocator, safe_filename

FOLDER = "documents"
WARM_FROM_ROWS = 10_000  # exports this big start the render pool before reading the rows
DOCUMENT_FORMATS = ("pdf", "docx")
CERTIFICATES = "certificates"
REPORTS = "reports"


def _key(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> float | None:
    """A score as a float; None for NULL or anything that is not a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    try:
        return float(Decimal(str(value).strip()))
    except (InvalidOperation, ValueError):
        return None


def _instant_kind(values: list[Any]) -> str | None:
    """ "naive" or "aware" when ``values`` are datetimes that compare as they are, else None."""
    if any(type(v) is not datetime for v in values):
        return None
    if all(v.tzinfo is None for v in values):
        return "naive"
    if all(v.utcoffset() is not None for v in values):
        return "aware"
    return None


@dataclass
class _Person:
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
class _Course:
    completions: int = 0
    certificates: int = 0
    score_sum: float = 0.0
    score_n: int = 0


class _Build:
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
        self.stats: dict[str, _Person] = {}
        self.course_stats: dict[str, _Course] = {}
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
        key = _key(value)
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
        return _key(raw) if role is None else self.person_key(raw, role)

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

    def person(self, key: str) -> _Person:
        stats = self.stats.get(key)
        if stats is None:
            stats = self.stats[key] = _Person()
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

    # -- reading -----------------------------------------------------------------

    def run(self) -> None:
        people = self.role("people", document="certificates and user statistics")
        if people is not None:
            self.people = {}
            for row in self.rows(people):
                key = self.person_key(self.value(row, people, "id"), people)
                if key is not None:
                    name = self.value(row, people, "name")
                    self.people[key] = self.t("none") if name is None else str(name)
                    email = self.value(row, people, "email")
                    if email:
                        self.emails[key] = str(email)
        courses = self.role("courses", document="certificates and completion reports")
        if courses is not None:
            self.courses = {}
            for row in self.rows(courses):
                key = _key(self.value(row, courses, "id"))
                if key is not None:
                    title = self.value(row, courses, "title")
                    self.courses[key] = self.t("none") if title is None else str(title)
        self.certificates()
        self.completions()
        self.quiz_results()
        self.activity()
        feedback = self.feedback()
        self.user_statistics()
        self.analytics()
        if feedback is not None:
            self.emit(f"{REPORTS}/feedback", feedback)
        if self.unknown_people:
            self.note(
                f"{len(self.unknown_people)} people referenced by the documents are not among this customer's "
                "people rows; they are shown by id"
            )
        boxes = undrawable_note(self.pdf_chars) if self.pdf_chars else None
        if boxes is not None:
            self.note(boxes)
        if not self.job.parallel:  # (side by side, it waits for every format: ``finish``)
            self.export_summary()

    def certificates(self) -> None:
        role = self.role("certificates", document="certificates")
        with_course = role is not None and "course" in role.columns
        if role is None or self.people is None or (with_course and self.courses is None):
            if role is not None:
                needs = "[roles.people] and [roles.courses]" if with_course else "[roles.people]"
                self.note(f"certificates skipped: they need {needs} too")
            return
        reproduced = self.t(
            "certificate.reproduced", vendor=self.vendor, date=i18n.format_date(self.exported_on, self.lang)
        )
        pk = list(self.job.source.table(role.table).primary_key.columns)
        self.certificates_read = 0
        no_one = 0
        titles = remote_values(self.job, role, "title")
        for row in self.rows(role, extra=titles[0] if titles else None):
            self.certificates_read += 1
            person = self.who(row, role)
            if person is None:
                no_one += 1
                continue
            course = _key(self.value(row, role, "course"))
            number = self.value(row, role, "number")
            number_text = self.t("none") if number is None else str(number)
            if number is not None:
                stem = safe_filename(str(number), max_bytes=120)
            else:
                stem = "certificate-" + "-".join(str(row[c.name]) for c in pk)
            stem = self.names.allocate(safe_filename(stem, max_bytes=120))
            self.emit(
                f"{CERTIFICATES}/{stem}",
                Certificate(
                    lang=self.lang,
                    organisation=self.organisation,
                    vendor=self.vendor,
                    person=self.person_name(person),
                    course=self.course_title(course) if with_course else self.award_title(row, role, titles),
                    issued=self.date_text(self.value(row, role, "issued_at")),
                    number=number_text,
                    reproduced=reproduced,
                    completed=None if with_course else self.t("certificate.awarded"),
                ),
            )
            if person is not None and course is not None:
                self.certificate_numbers[(person, course)] = number_text
            if person is not None:
                self.person(person).certificates += 1
                if course is not None:
                    self.person(person).courses.add(course)
            if course is not None:
                self.course_stats.setdefault(course, _Course()).certificates += 1
        if no_one:
            self.note(no_one_note(no_one, role, "certificate"))

    def completions(self) -> None:
        role = self.role("completions", document="completion reports")
        if role is None:
            return
        if self.courses is None:
            self.note("completion reports skipped: they need [roles.courses] too")
        current: str | None = None
        entries: list[tuple[date | None, str, Any, float | None]] = []
        reported: set[str] = set()
        no_one = 0
        for row in self.rows(role, order=("course", "completed_at")):
            person = self.who(row, role)
            at = self.value(row, role, "completed_at")
            if person is None or (role.completed_only and at is None):
                if person is None:  # (not completed yet: no completion at all, no note)
                    no_one += 1
                continue
            course = _key(self.value(row, role, "course"))
            if course != current:
                if current is not None and self.courses is not None:
                    self.course_report(current, entries)
                    reported.add(current)
                current, entries = course, []
            day = i18n.local_date(at, self.tz)
            score = _number(self.value(row, role, "score"))
            entries.append((day, person, at, score))
            if day is not None:
                self.months[(day.year, day.month)] += 1
            stats = self.person(person)
            stats.completions += 1
            if course is not None:
                stats.courses.add(course)
            if score is not None:
                stats.score_sum += score
                stats.score_n += 1
            if course is not None:
                cs = self.course_stats.setdefault(course, _Course())
                cs.completions += 1
                if score is not None:
                    cs.score_sum += score
                    cs.score_n += 1
        if current is not None and self.courses is not None:
            self.course_report(current, entries)
            reported.add(current)
        for course in self.courses or {}:
            if course not in reported:
                self.course_report(course, [])
        if no_one:
            self.note(no_one_note(no_one, role, "completion"))

    def course_report(self, course: str, entries: list[tuple[date | None, str, Any, float | None]]) -> None:
        scores = [s for *_, s in entries if s is not None]
        days = [d for d, *_ in entries if d is not None]
        certs = (self.course_stats.get(course) or _Course()).certificates
        facts = [
            (self.t("completion.completed"), i18n.format_int(len(entries), self.lang)),
            (self.t("completion.average"), self.average(sum(scores), len(scores))),
            (self.t("completion.certificates"), i18n.format_int(certs, self.lang)),
        ]
        if days:
            span = f"{i18n.format_date(min(days), self.lang)} – {i18n.format_date(max(days), self.lang)}"
            facts.append((self.t("completion.first_last"), span))
        entries.sort(key=lambda e: (e[0] or date.min, i18n.sort_key(self.person_name(e[1] or None), self.lang)))
        rows = tuple(
            (
                self.person_name(person or None),
                self.date_text(at),
                self.score_text(score),
                self.certificate_numbers.get((person, course), self.t("none")),
            )
            for _, person, at, score in entries
        )
        blocks: list[Block] = [
            Heading(self.t("completion.summary")),
            Facts(tuple(facts)),
            Heading(self.t("completion.list")),
            Table(
                (
                    self.t("completion.person"),
                    self.t("completion.date"),
                    self.t("completion.score"),
                    self.t("completion.certificate"),
                ),
                rows,
                (False, False, True, False),
                empty=self.t("completion.none"),
                widths=(40, 22, 12, 26),
            ),
        ]
        title = self.course_title(course)
        stem = safe_filename(f"{course}-{title}", max_bytes=100)
        self.emit(
            f"{REPORTS}/completions/{stem}",
            self.report(self.t("completion.title"), self.t("completion.subtitle", course=title), blocks),
        )

    def quiz_results(self) -> None:
        role = self.quiet_role("quiz_results")
        if role is None:
            return
        maxima = remote_values(self.job, role, "max_score")
        if maxima is None and "max_score" in role.remote:
            other, column = role.remote["max_score"]
            self.note(f"quiz results: {other}.{column} is not part of this customer's export; no maximum scores")
        for row in self.rows(role, extra=maxima[0] if maxima else None):
            self.quiz_total += 1
            person = self.who(row, role)
            score = _number(self.value(row, role, "score"))
            if maxima is not None:
                maximum = _number(maxima[1].get(str(row[maxima[0]])))
            else:
                maximum = _number(self.value(row, role, "max_score"))
            pct = None
            if score is not None and maximum:
                pct = max(0.0, min(100.0, 100.0 * score / maximum))
                self.quiz_pct_sum += pct
                self.quiz_pct_n += 1
                self.quiz_buckets[min(int(pct // 10), 9)] += 1
            if person is not None:
                stats = self.person(person)
                stats.quiz_attempts += 1
                if pct is not None:
                    stats.quiz_sum += pct
                    stats.quiz_n += 1

    def activity(self) -> None:
        """Activity rows per person, their first and last day, and the whole span.

        A batch at a time (``activity_batch``), from the read pass when another format read
        the table anyway (``ActivityWatcher``), else read here: a day is a monotonic
        function of the instant, so only the earliest and latest instant of each person
        need converting to a local day, as long as the instants are datetimes of one kind
        (all naive, or all with an offset) that compare as they are.  Anything else goes
        value by value."""
        role = self.quiet_role("activity")
        if role is None:
            return
        if not self.activity_watched:
            table = self.job.source.table(role.table)
            wanted = [c for c in (role.columns.get("person"), role.columns.get("at")) if c is not None]
            names = list(dict.fromkeys(wanted)) or [next(iter(table.columns)).name]
            person_at = names.index(role.columns["person"]) if "person" in role.columns else None
            instant_at = names.index(role.columns["at"]) if "at" in role.columns else None
            for batch in self.job.tuples(role.table, columns=[table.c[n] for n in names]):
                persons = [r[person_at] for r in batch] if person_at is not None else [None] * len(batch)
                instants = [r[instant_at] for r in batch] if instant_at is not None else [None] * len(batch)
                self.activity_batch(persons, instants)
        days = self.activity_days
        for person, (rows, earliest, latest) in self.activity_spans.items():
            edge_days = [d for d in (i18n.local_date(earliest, self.tz), i18n.local_date(latest, self.tz)) if d]
            days.extend(edge_days)
            key = self.activity_key(person)
            if key is None:
                continue
            stats = self.person(key)
            stats.activity += rows
            for day in edge_days:
                if stats.first_seen is None or day < stats.first_seen:
                    stats.first_seen = day
                if stats.last_seen is None or day > stats.last_seen:
                    stats.last_seen = day
        if days:
            self.activity_span = (min(days), max(days))

    def activity_batch(self, persons: Sequence[Any], instants: Sequence[Any]) -> None:
        """One batch of activity rows (their people and instants, in the table's order)."""
        self.activity_total += len(persons)
        present = [v for v in instants if v is not None]
        batch_kind = _instant_kind(present) if present else self.activity_kind
        if present and (batch_kind is None or (self.activity_kind is not None and batch_kind != self.activity_kind)):
            self.activity_days.extend(self._activity_one_by_one(persons, instants))
            return
        self.activity_kind = batch_kind
        spans = self.activity_spans
        for person, at in zip(persons, instants, strict=True):
            span = spans.get(person)
            if span is None:
                spans[person] = [1, at, at]
                continue
            span[0] += 1
            if at is not None:
                if span[1] is None or at < span[1]:
                    span[1] = at
                if span[2] is None or at > span[2]:
                    span[2] = at

    def _activity_one_by_one(self, persons: Sequence[Any], instants: Sequence[Any]) -> list[date]:
        """Rows whose instants do not compare as they are: each converted to its day."""
        first: date | None = None
        last: date | None = None
        for raw, at in zip(persons, instants, strict=True):
            day = i18n.local_date(at, self.tz)
            if day is not None:
                first = day if first is None or day < first else first
                last = day if last is None or day > last else last
            person = self.activity_key(raw)
            if person is None:
                continue
            stats = self.person(person)
            stats.activity += 1
            if day is not None:
                if stats.first_seen is None or day < stats.first_seen:
                    stats.first_seen = day
                if stats.last_seen is None or day > stats.last_seen:
                    stats.last_seen = day
        return [d for d in (first, last) if d is not None]

    def feedback(self) -> Report | None:
        role = self.role("feedback", needs=("question", "answer"), document="feedback report")
        if role is None:
            return None
        questions: dict[str, Counter[str]] = {}
        blanks: Counter[str] = Counter()
        total = 0
        for row in self.rows(role):
            total += 1
            question = self.value(row, role, "question")
            qtext = self.t("none") if question is None else str(question)
            answers = questions.setdefault(qtext, Counter())
            answer = self.value(row, role, "answer")
            if answer is None or not str(answer).strip():
                blanks[qtext] += 1
            else:
                answers[str(answer)] += 1
        self.feedback_answers = total
        blocks: list[Block] = []
        if not questions:
            blocks.append(Paragraph(self.t("feedback.none"), "muted"))
        for n, (question, answers) in enumerate(questions.items(), start=1):
            answered = sum(answers.values())
            blocks += [
                Heading(self.t("feedback.question", n=n)),
                Paragraph(question, "pre"),
                Paragraph(
                    self.t(
                        "feedback.responses",
                        answers=i18n.format_int(answered, self.lang),
                        blank=i18n.format_int(blanks[question], self.lang),
                    ),
                    "small",
                ),
                Table(
                    (self.t("feedback.answer"), self.t("feedback.count")),
                    tuple(
                        (a, i18n.format_int(c, self.lang))
                        for a, c in sorted(answers.items(), key=lambda ac: (-ac[1], i18n.sort_key(ac[0], self.lang)))
                    ),
                    (False, True),
                    widths=(85, 15),
                ),
            ]
        return self.report(self.t("feedback.title"), self.t("feedback.subtitle"), blocks)

    # -- documents from the aggregates -------------------------------------------

    def user_statistics(self) -> None:
        if self.people is None:
            return
        keys = set(self.people) | set(self.stats)
        order = sorted(keys, key=lambda k: (i18n.sort_key(self.person_name(k), self.lang), k))
        n = lambda v: i18n.format_int(v, self.lang)  # noqa: E731
        rows = []
        for key in order:
            s = self.stats.get(key) or _Person()
            rows.append(
                (
                    "\n".join(filter(None, (self.person_name(key), self.emails.get(key)))),
                    n(len(s.courses)),
                    n(s.completions),
                    n(s.certificates),
                    self.average(s.score_sum, s.score_n),
                    n(s.quiz_attempts),
                    self.average(s.quiz_sum, s.quiz_n, percent=True),
                    n(s.activity),
                    i18n.format_date_short(s.first_seen, self.lang) if s.first_seen else self.t("none"),
                    i18n.format_date_short(s.last_seen, self.lang) if s.last_seen else self.t("none"),
                )
            )
        columns = tuple(
            self.t(f"users.{c}")
            for c in (
                "person",
                "courses",
                "completions",
                "certificates",
                "avg_score",
                "quiz_attempts",
                "quiz_avg",
                "activity",
                "first_seen",
                "last_seen",
            )
        )
        blocks: list[Block] = [
            Paragraph(self.t("users.intro"), "muted"),
            Table(
                columns,
                tuple(rows),
                (False,) + (True,) * 7 + (False, False),
                empty=self.t("no_rows"),
                widths=(25, 6, 8, 7, 9, 7, 8, 8, 11, 11),
            ),
        ]
        self.emit(
            f"{REPORTS}/user-statistics",
            self.report(self.t("users.title"), self.t("users.subtitle"), blocks, landscape=True),
        )

    def analytics(self) -> None:
        n = lambda v: i18n.format_int(v, self.lang)  # noqa: E731
        figures: list[tuple[str, str]] = []
        if self.people is not None:
            figures.append((self.t("analytics.people"), n(len(self.people))))
        if self.courses is not None:
            figures.append((self.t("analytics.courses"), n(len(self.courses))))
        has_completions = self.quiet_role("completions") is not None
        if has_completions:
            completions = sum(c.completions for c in self.course_stats.values())
            score_sum = sum(c.score_sum for c in self.course_stats.values())
            score_n = sum(c.score_n for c in self.course_stats.values())
            figures.append((self.t("analytics.completions"), n(completions)))
            figures.append((self.t("analytics.avg_completion"), self.average(score_sum, score_n)))
        if self.certificates_read is not None:
            figures.append((self.t("analytics.certificates"), n(self.certificates_read)))
        quiz = self.quiet_role("quiz_results") is not None
        if quiz:
            figures.append((self.t("analytics.quiz_attempts"), n(self.quiz_total)))
            figures.append(
                (self.t("analytics.avg_quiz"), self.average(self.quiz_pct_sum, self.quiz_pct_n, percent=True))
            )
        if self.quiet_role("activity") is not None:
            figures.append((self.t("analytics.activity"), n(self.activity_total)))
        if self.feedback_answers is not None:
            figures.append((self.t("analytics.feedback"), n(self.feedback_answers)))
        if not figures:
            self.note("analytics summary skipped: no [roles.*] it could use are configured")
            return
        blocks: list[Block] = [Heading(self.t("analytics.headline")), Figures(tuple(figures))]
        if self.activity_span is not None:
            first, last = self.activity_span
            span = f"{i18n.format_date(first, self.lang)} – {i18n.format_date(last, self.lang)}"
            blocks.append(Facts(((self.t("analytics.period"), span),)))
        if has_completions:
            labels, values = [], []
            if self.months:
                year, month = min(self.months)
                end = max(self.months)
                while (year, month) <= end:
                    labels.append(i18n.format_month(year, month, self.lang))
                    values.append(self.months[(year, month)])
                    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            blocks.append(
                BarChart(
                    self.t("analytics.completions_chart"),
                    tuple(labels),
                    tuple(values),
                    self.t("analytics.month"),
                    self.t("analytics.completions"),
                    x_axis=self.t("analytics.month"),
                    empty=self.t("analytics.no_data"),
                )
            )
        if quiz:
            labels = [f"{10 * k}–{10 * k + 9}" for k in range(9)] + ["90–100"]
            blocks.append(
                BarChart(
                    self.t("analytics.quiz_chart"),
                    tuple(labels),
                    tuple(self.quiz_buckets),
                    self.t("analytics.quiz_axis"),
                    self.t("analytics.attempts"),
                    x_axis=self.t("analytics.quiz_axis"),
                    empty=self.t("analytics.no_data"),
                )
            )
        if has_completions and self.courses is not None:
            titles = self.courses
            ranked = sorted(
                titles,
                key=lambda c: (
                    -(self.course_stats.get(c) or _Course()).completions,
                    i18n.sort_key(titles[c], self.lang),
                ),
            )
            rows = []
            for course in ranked:
                cs = self.course_stats.get(course) or _Course()
                rows.append(
                    (
                        self.course_title(course),
                        n(cs.completions),
                        n(cs.certificates),
                        self.average(cs.score_sum, cs.score_n),
                    )
                )
            blocks += [
                Heading(self.t("analytics.top_courses")),
                Table(
                    (
                        self.t("analytics.course"),
                        self.t("analytics.completions"),
                        self.t("analytics.certificates"),
                        self.t("analytics.avg_completion"),
                    ),
                    tuple(rows),
                    (False, True, True, True),
                    empty=self.t("no_rows"),
                    widths=(52, 14, 16, 18),
                ),
            ]
        self.emit(
            f"{REPORTS}/analytics-summary",
            self.report(
                self.t("analytics.title"), self.t("analytics.subtitle", organisation=self.organisation), blocks
            ),
        )

    def _format_contents(self, fmt: str) -> str:
        """What a format holds; the SQL dump with its dialect (SQLite, PostgreSQL, MySQL and MariaDB)."""
        text = self.t(f"fmt.{fmt}")
        if fmt == "sql":
            from .sql_format import DIALECT_NAMES

            dialect = DIALECT_NAMES.get(self.job.options.sql_dialect)
            text += f" ({dialect})" if dialect else ""
        return text

    def export_summary(self) -> None:
        job = self.job
        n = lambda v: i18n.format_int(v, self.lang)  # noqa: E731
        deadline = job.export_deadline
        facts = [
            (self.t("summary.organisation"), self.organisation),
            (self.t("summary.customer"), job.customer),
            (self.t("summary.exported"), i18n.format_instant(job.started_at, self.tz, self.lang)),
        ]
        if deadline is not None:
            facts.append((self.t("summary.deadline"), i18n.format_date(deadline, self.lang)))
            facts.append((self.t("summary.deletion"), i18n.format_date(deadline + timedelta(days=1), self.lang)))
        else:
            facts.append((self.t("summary.deadline"), self.t("summary.no_notice")))
        blocks: list[Block] = [Facts(tuple(facts)), Heading(self.t("summary.formats"))]
        formats = list(job.options.formats)
        blocks.append(
            Table(
                (self.t("summary.format"), self.t("summary.folder"), self.t("summary.contents")),
                tuple(
                    (f, _folder_of(f), self._format_contents(f)) for f in formats if f"fmt.{f}" in i18n.STRINGS["en"]
                ),
                widths=(12, 18, 70),
            )
        )
        blocks.append(Heading(self.t("summary.tables")))
        rows = []
        for spec in job.tables:
            rows.append((spec.name, spec.category or self.t("none"), n(job.counts.get(spec.name, 0))))
        rows.append((self.t("summary.total"), "", n(sum(job.counts.get(s.name, 0) for s in job.tables))))
        blocks.append(
            Table(
                (self.t("summary.table"), self.t("summary.category"), self.t("summary.rows")),
                tuple(rows),
                (False, False, True),
                widths=(50, 25, 25),
            )
        )
        if "media" in formats:
            size = sum(int(m.get("size") or 0) for m in job.media)
            blocks += [
                Heading(self.t("summary.media")),
                Paragraph(
                    self.t("summary.media_line", files=n(len(job.media)), size=i18n.format_bytes(size, self.lang))
                ),
            ]
        blocks += [Heading(self.t("summary.checksums")), Paragraph(self.t("summary.checksums_text"))]
        blocks.append(Heading(self.t("summary.after")))
        if deadline is not None:
            blocks.append(
                Paragraph(
                    self.t(
                        "summary.after_text",
                        deadline=i18n.format_date(deadline, self.lang),
                        deletion=i18n.format_date(deadline + timedelta(days=1), self.lang),
                    )
                )
            )
            termination = deadline - timedelta(days=job.settings.contract.export_window_days)
            kept = []
            for spec in job.tables:
                rule = job.settings.rule(spec.name)
                if rule.retain and job.counts.get(spec.name):
                    until = retention_until(termination, rule.retain)
                    kept.append(
                        self.t(
                            "summary.retained",
                            table=spec.name,
                            until=i18n.format_date(until, self.lang),
                            basis=rule.legal_basis or "",
                        )
                    )
            blocks += [Paragraph(k) for k in kept]
        else:
            blocks.append(Paragraph(self.t("summary.after_nodeadline")))
        # Other formats' notes, and this run's own without the "pdf: "/"docx: " prefix: the
        # PDF and the Word summary then say the same, whichever of them runs first.
        notes = [note for note in job.notes if not note.startswith(("pdf: ", "docx: "))] + self.own_notes
        if notes:
            blocks += [Heading(self.t("summary.notes"))] + [Paragraph(note_sentence(note), "small") for note in notes]
        self.emit("export-summary", self.report(self.t("summary.title"), self.t("summary.subtitle"), blocks))


_WATCHED = "documents"  # job.shared: the _Build the read pass fed (``ActivityWatcher``)


class ActivityWatcher(TableWriter):
    """Feeds ``_Build.activity_batch`` with the activity table's rows as a read pass reads
    them (every row, in the table's order, in the batches ``activity`` would read), and
    marks the table as counted once it ends."""

    def __init__(self, build: _Build, role: Role, spec: TableSpec) -> None:
        self.build = build
        self.table = role.table
        names = spec.column_names
        self.person = names.index(role.columns["person"]) if "person" in role.columns else None
        self.at = names.index(role.columns["at"]) if "at" in role.columns else None

    def write_columns(self, spec: TableSpec, columns: list[Sequence[Any]], rows: int) -> None:
        if spec.name == self.table and rows:
            persons = columns[self.person] if self.person is not None else [None] * rows
            instants = columns[self.at] if self.at is not None else [None] * rows
            self.build.activity_batch(persons, instants)

    def write_batch(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        if spec.name == self.table and rows:
            self.write_columns(spec, list(zip(*rows, strict=True)), len(rows))

    def end_table(self, spec: TableSpec, rows: int) -> None:
        if spec.name == self.table:
            self.build.activity_watched = True


def _expected_documents(job: ExportJob) -> int:
    """How many documents of one format an export will make, at most, known before they
    are made (the progress bar's total): a certificate per certificates row, a completion
    report per course, three reports and the summary."""
    roles = job.settings.roles
    expected = 4
    for role in ("certificates", "courses"):
        if role in roles:
            expected += job.counts.get(roles[role].table, 0)
    return expected


def _folder_of(fmt: str) -> str:
    exporter = REGISTRY.get(fmt)
    return f"{exporter.folder}/" if exporter is not None else ""


class _DocumentsExporter(Exporter):
    folder: ClassVar[str] = FOLDER
    order: ClassVar[int] = 70  # after media (60): the export summary counts the media files

    def _formats(self, job: ExportJob) -> list[str] | None:
        """The document formats this one makes (None: made with the first of them)."""
        fmts = [f for f in DOCUMENT_FORMATS if f in job.options.formats] or [self.name]
        if self.name not in fmts:
            return [self.name]
        return fmts if self.name == fmts[0] else None

    def prepare(self, job: ExportJob) -> None:
        if self._formats(job) is not None and sum(job.counts.values()) >= WARM_FROM_ROWS:
            warm_pool()  # WeasyPrint loads while the rows are read

    def after(self, job: ExportJob) -> None:
        # PDF and Word of the same export are made together, by the first of them: the
        # data is read and aggregated once, and one pool of workers renders both.
        fmts = self._formats(job)
        if fmts is None:
            return  # made with the first
        label = f"{'/'.join(fmts)} documents"
        expected = _expected_documents(job) * len(fmts)
        with RenderQueue(progress=lambda done, total: job.progress(label, done, total), expected=expected) as queue:
            build = job.shared.pop(_WATCHED, None)  # (fed by the read pass: ``watcher``)
            if build is None or build.job is not job or build.fmts != fmts:
                build = _Build(job, fmts, queue)
            build.queue = queue
            build.run()
            queue.finish()

    def watcher(self, job: ExportJob) -> TableWriter | None:
        """When other formats read the activity table anyway, the documents' activity counts
        are taken from that read instead of reading the table again."""
        fmts = self._formats(job)
        role = job.settings.roles.get("activity")
        if fmts is None or role is None or role.table not in {t.name for t in job.tables}:
            return None
        build = _Build(job, fmts, RenderQueue(workers=1))  # (``after`` gives it the real queue)
        job.shared[_WATCHED] = build
        return ActivityWatcher(build, role, job.spec(role.table))

    def finish(self, job: ExportJob) -> None:
        """The export summary, when the formats ran side by side (once all are done): made
        by the first document format for all of them, as in ``after``, each format by a
        worker of the render pool (its fork server has WeasyPrint loaded already when this
        process rendered the documents), not by importing WeasyPrint here."""
        if not job.parallel:
            return
        fmts = self._formats(job)
        if fmts is None:
            return  # made with the first
        prefix = f"{fmts[0]}: "  # (made together, the formats' notes are the same)
        with RenderQueue(workers=min(len(fmts), default_workers()), parallel_from=1, chunk=1) as queue:
            build = _Build(job, fmts, queue)
            build.own_notes = [n[len(prefix) :] for n in job.notes if n.startswith(prefix)]
            build.export_summary()
            queue.finish()


@register
class PdfExporter(_DocumentsExporter):
    name = "pdf"
    description = "certificates and reports as PDF (data/documents/)"


@register
class DocxExporter(_DocumentsExporter):
    name = "docx"
    description = "certificates and reports as Word documents (data/documents/)"
