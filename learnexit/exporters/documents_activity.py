"""The documents about activity and opinions: activity counted (read here, or fed by
the read pass through ``activity_batch``), the feedback report and the user statistics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import Any

from ..documents import i18n
from ..documents.model import Block, Heading, Paragraph, Report, Table
from .documents_build import REPORTS, DocumentBuild, PersonStats, instant_kind

__all__ = ["activity", "activity_batch", "feedback", "user_statistics"]


def activity(b: DocumentBuild) -> None:
    """Activity rows per person, their first and last day, and the whole span.

    A batch at a time (``activity_batch``), from the read pass when another format read
    the table anyway (``ActivityWatcher``), else read here: a day is a monotonic
    function of the instant, so only the earliest and latest instant of each person
    need converting to a local day, as long as the instants are datetimes of one kind
    (all naive, or all with an offset) that compare as they are.  Anything else goes
    value by value."""
    role = b.quiet_role("activity")
    if role is None:
        return
    if not b.activity_watched:
        table = b.job.source.table(role.table)
        wanted = [c for c in (role.columns.get("person"), role.columns.get("at")) if c is not None]
        names = list(dict.fromkeys(wanted)) or [next(iter(table.columns)).name]
        person_at = names.index(role.columns["person"]) if "person" in role.columns else None
        instant_at = names.index(role.columns["at"]) if "at" in role.columns else None
        for batch in b.job.tuples(role.table, columns=[table.c[n] for n in names]):
            persons = [r[person_at] for r in batch] if person_at is not None else [None] * len(batch)
            instants = [r[instant_at] for r in batch] if instant_at is not None else [None] * len(batch)
            activity_batch(b, persons, instants)
    days = b.activity_days
    for person, (rows, earliest, latest) in b.activity_spans.items():
        edge_days = [d for d in (i18n.local_date(earliest, b.tz), i18n.local_date(latest, b.tz)) if d]
        days.extend(edge_days)
        key = b.activity_key(person)
        if key is None:
            continue
        stats = b.person(key)
        stats.activity += rows
        for day in edge_days:
            if stats.first_seen is None or day < stats.first_seen:
                stats.first_seen = day
            if stats.last_seen is None or day > stats.last_seen:
                stats.last_seen = day
    if days:
        b.activity_span = (min(days), max(days))


def activity_batch(b: DocumentBuild, persons: Sequence[Any], instants: Sequence[Any]) -> None:
    """One batch of activity rows (their people and instants, in the table's order)."""
    b.activity_total += len(persons)
    present = [v for v in instants if v is not None]
    batch_kind = instant_kind(present) if present else b.activity_kind
    if present and (batch_kind is None or (b.activity_kind is not None and batch_kind != b.activity_kind)):
        b.activity_days.extend(_activity_one_by_one(b, persons, instants))
        return
    b.activity_kind = batch_kind
    spans = b.activity_spans
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


def _activity_one_by_one(b: DocumentBuild, persons: Sequence[Any], instants: Sequence[Any]) -> list[date]:
    """Rows whose instants do not compare as they are: each converted to its day."""
    first: date | None = None
    last: date | None = None
    for raw, at in zip(persons, instants, strict=True):
        day = i18n.local_date(at, b.tz)
        if day is not None:
            first = day if first is None or day < first else first
            last = day if last is None or day > last else last
        person = b.activity_key(raw)
        if person is None:
            continue
        stats = b.person(person)
        stats.activity += 1
        if day is not None:
            if stats.first_seen is None or day < stats.first_seen:
                stats.first_seen = day
            if stats.last_seen is None or day > stats.last_seen:
                stats.last_seen = day
    return [d for d in (first, last) if d is not None]


def feedback(b: DocumentBuild) -> Report | None:
    role = b.role("feedback", needs=("question", "answer"), document="feedback report")
    if role is None:
        return None
    questions: dict[str, Counter[str]] = {}
    blanks: Counter[str] = Counter()
    total = 0
    for row in b.rows(role):
        total += 1
        question = b.value(row, role, "question")
        qtext = b.t("none") if question is None else str(question)
        answers = questions.setdefault(qtext, Counter())
        answer = b.value(row, role, "answer")
        if answer is None or not str(answer).strip():
            blanks[qtext] += 1
        else:
            answers[str(answer)] += 1
    b.feedback_answers = total
    blocks: list[Block] = []
    if not questions:
        blocks.append(Paragraph(b.t("feedback.none"), "muted"))
    for n, (question, answers) in enumerate(questions.items(), start=1):
        answered = sum(answers.values())
        blocks += [
            Heading(b.t("feedback.question", n=n)),
            Paragraph(question, "pre"),
            Paragraph(
                b.t(
                    "feedback.responses",
                    answers=i18n.format_int(answered, b.lang),
                    blank=i18n.format_int(blanks[question], b.lang),
                ),
                "small",
            ),
            Table(
                (b.t("feedback.answer"), b.t("feedback.count")),
                tuple(
                    (a, i18n.format_int(c, b.lang))
                    for a, c in sorted(answers.items(), key=lambda ac: (-ac[1], i18n.sort_key(ac[0], b.lang)))
                ),
                (False, True),
                widths=(85, 15),
            ),
        ]
    return b.report(b.t("feedback.title"), b.t("feedback.subtitle"), blocks)


def user_statistics(b: DocumentBuild) -> None:
    if b.people is None:
        return
    keys = set(b.people) | set(b.stats)
    order = sorted(keys, key=lambda k: (i18n.sort_key(b.person_name(k), b.lang), k))
    n = lambda v: i18n.format_int(v, b.lang)  # noqa: E731
    rows = []
    for key in order:
        s = b.stats.get(key) or PersonStats()
        rows.append(
            (
                "\n".join(filter(None, (b.person_name(key), b.emails.get(key)))),
                n(len(s.courses)),
                n(s.completions),
                n(s.certificates),
                b.average(s.score_sum, s.score_n),
                n(s.quiz_attempts),
                b.average(s.quiz_sum, s.quiz_n, percent=True),
                n(s.activity),
                i18n.format_date_short(s.first_seen, b.lang) if s.first_seen else b.t("none"),
                i18n.format_date_short(s.last_seen, b.lang) if s.last_seen else b.t("none"),
            )
        )
    columns = tuple(
        b.t(f"users.{c}")
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
        Paragraph(b.t("users.intro"), "muted"),
        Table(
            columns,
            tuple(rows),
            (False,) + (True,) * 7 + (False, False),
            empty=b.t("no_rows"),
            widths=(25, 6, 8, 7, 9, 7, 8, 8, 11, 11),
        ),
    ]
    b.emit(
        f"{REPORTS}/user-statistics",
        b.report(b.t("users.title"), b.t("users.subtitle"), blocks, landscape=True),
    )
