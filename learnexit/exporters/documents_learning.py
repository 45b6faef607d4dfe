"""The documents about learning: a certificate per issued certificate, a completion
report per course, and the quiz results counted for the analytics summary."""

from __future__ import annotations

from datetime import date
from typing import Any

from ..documents import i18n
from ..documents.model import Block, Certificate, Facts, Heading, Table
from ..filenames import safe_filename
from .documents_build import CERTIFICATES, REPORTS, CourseStats, DocumentBuild, key_text, score_number
from .role_rules import no_one_note, remote_values

__all__ = ["certificates", "completions", "quiz_results"]


def certificates(b: DocumentBuild) -> None:
    role = b.role("certificates", document="certificates")
    with_course = role is not None and "course" in role.columns
    if role is None or b.people is None or (with_course and b.courses is None):
        if role is not None:
            needs = "[roles.people] and [roles.courses]" if with_course else "[roles.people]"
            b.note(f"certificates skipped: they need {needs} too")
        return
    reproduced = b.t("certificate.reproduced", vendor=b.vendor, date=i18n.format_date(b.exported_on, b.lang))
    pk = list(b.job.source.table(role.table).primary_key.columns)
    b.certificates_read = 0
    no_one = 0
    titles = remote_values(b.job, role, "title")
    for row in b.rows(role, extra=titles[0] if titles else None):
        b.certificates_read += 1
        person = b.who(row, role)
        if person is None:
            no_one += 1
            continue
        course = key_text(b.value(row, role, "course"))
        number = b.value(row, role, "number")
        number_text = b.t("none") if number is None else str(number)
        if number is not None:
            stem = safe_filename(str(number), max_bytes=120)
        else:
            stem = "certificate-" + "-".join(str(row[c.name]) for c in pk)
        stem = b.names.allocate(safe_filename(stem, max_bytes=120))
        b.emit(
            f"{CERTIFICATES}/{stem}",
            Certificate(
                lang=b.lang,
                organisation=b.organisation,
                vendor=b.vendor,
                person=b.person_name(person),
                course=b.course_title(course) if with_course else b.award_title(row, role, titles),
                issued=b.date_text(b.value(row, role, "issued_at")),
                number=number_text,
                reproduced=reproduced,
                completed=None if with_course else b.t("certificate.awarded"),
            ),
        )
        if person is not None and course is not None:
            b.certificate_numbers[(person, course)] = number_text
        if person is not None:
            b.person(person).certificates += 1
            if course is not None:
                b.person(person).courses.add(course)
        if course is not None:
            b.course_stats.setdefault(course, CourseStats()).certificates += 1
    if no_one:
        b.note(no_one_note(no_one, role, "certificate"))


def completions(b: DocumentBuild) -> None:
    role = b.role("completions", document="completion reports")
    if role is None:
        return
    if b.courses is None:
        b.note("completion reports skipped: they need [roles.courses] too")
    current: str | None = None
    entries: list[tuple[date | None, str, Any, float | None]] = []
    reported: set[str] = set()
    no_one = 0
    for row in b.rows(role, order=("course", "completed_at")):
        person = b.who(row, role)
        at = b.value(row, role, "completed_at")
        if person is None or (role.completed_only and at is None):
            if person is None:  # (not completed yet: no completion at all, no note)
                no_one += 1
            continue
        course = key_text(b.value(row, role, "course"))
        if course != current:
            if current is not None and b.courses is not None:
                course_report(b, current, entries)
                reported.add(current)
            current, entries = course, []
        day = i18n.local_date(at, b.tz)
        score = score_number(b.value(row, role, "score"))
        entries.append((day, person, at, score))
        if day is not None:
            b.months[(day.year, day.month)] += 1
        stats = b.person(person)
        stats.completions += 1
        if course is not None:
            stats.courses.add(course)
        if score is not None:
            stats.score_sum += score
            stats.score_n += 1
        if course is not None:
            cs = b.course_stats.setdefault(course, CourseStats())
            cs.completions += 1
            if score is not None:
                cs.score_sum += score
                cs.score_n += 1
    if current is not None and b.courses is not None:
        course_report(b, current, entries)
        reported.add(current)
    for course in b.courses or {}:
        if course not in reported:
            course_report(b, course, [])
    if no_one:
        b.note(no_one_note(no_one, role, "completion"))


def course_report(b: DocumentBuild, course: str, entries: list[tuple[date | None, str, Any, float | None]]) -> None:
    scores = [s for *_, s in entries if s is not None]
    days = [d for d, *_ in entries if d is not None]
    certs = (b.course_stats.get(course) or CourseStats()).certificates
    facts = [
        (b.t("completion.completed"), i18n.format_int(len(entries), b.lang)),
        (b.t("completion.average"), b.average(sum(scores), len(scores))),
        (b.t("completion.certificates"), i18n.format_int(certs, b.lang)),
    ]
    if days:
        span = f"{i18n.format_date(min(days), b.lang)} – {i18n.format_date(max(days), b.lang)}"
        facts.append((b.t("completion.first_last"), span))
    entries.sort(key=lambda e: (e[0] or date.min, i18n.sort_key(b.person_name(e[1] or None), b.lang)))
    rows = tuple(
        (
            b.person_name(person or None),
            b.date_text(at),
            b.score_text(score),
            b.certificate_numbers.get((person, course), b.t("none")),
        )
        for _, person, at, score in entries
    )
    blocks: list[Block] = [
        Heading(b.t("completion.summary")),
        Facts(tuple(facts)),
        Heading(b.t("completion.list")),
        Table(
            (
                b.t("completion.person"),
                b.t("completion.date"),
                b.t("completion.score"),
                b.t("completion.certificate"),
            ),
            rows,
            (False, False, True, False),
            empty=b.t("completion.none"),
            widths=(40, 22, 12, 26),
        ),
    ]
    title = b.course_title(course)
    stem = safe_filename(f"{course}-{title}", max_bytes=100)
    b.emit(
        f"{REPORTS}/completions/{stem}",
        b.report(b.t("completion.title"), b.t("completion.subtitle", course=title), blocks),
    )


def quiz_results(b: DocumentBuild) -> None:
    role = b.quiet_role("quiz_results")
    if role is None:
        return
    maxima = remote_values(b.job, role, "max_score")
    if maxima is None and "max_score" in role.remote:
        other, column = role.remote["max_score"]
        b.note(f"quiz results: {other}.{column} is not part of this customer's export; no maximum scores")
    for row in b.rows(role, extra=maxima[0] if maxima else None):
        b.quiz_total += 1
        person = b.who(row, role)
        score = score_number(b.value(row, role, "score"))
        if maxima is not None:
            maximum = score_number(maxima[1].get(str(row[maxima[0]])))
        else:
            maximum = score_number(b.value(row, role, "max_score"))
        pct = None
        if score is not None and maximum:
            pct = max(0.0, min(100.0, 100.0 * score / maximum))
            b.quiz_pct_sum += pct
            b.quiz_pct_n += 1
            b.quiz_buckets[min(int(pct // 10), 9)] += 1
        if person is not None:
            stats = b.person(person)
            stats.quiz_attempts += 1
            if pct is not None:
                stats.quiz_sum += pct
                stats.quiz_n += 1
