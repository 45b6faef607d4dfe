"""The overview documents: the analytics summary and the export summary."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from ..contract import retention_until
from ..documents import i18n
from ..documents.model import BarChart, Block, Facts, Figures, Heading, Paragraph, Table
from ..documents.notes import note_sentence
from .base import REGISTRY
from .documents_build import REPORTS, CourseStats, DocumentBuild
from .sql_dialect import DIALECT_NAMES

__all__ = ["analytics", "export_summary"]


def analytics(b: DocumentBuild) -> None:
    """``reports/analytics-summary``: the headline figures, two charts and the top courses."""
    n: Callable[[int], str] = lambda v: i18n.format_int(v, b.lang)  # noqa: E731
    has_completions = b.quiet_role("completions") is not None
    quiz = b.quiet_role("quiz_results") is not None
    figures = _figures(b, n, has_completions, quiz)
    if not figures:
        b.note("analytics summary skipped: no [roles.*] it could use are configured")
        return
    blocks: list[Block] = [Heading(b.t("analytics.headline")), Figures(tuple(figures))]
    if b.activity_span is not None:
        first, last = b.activity_span
        span = f"{i18n.format_date(first, b.lang)} – {i18n.format_date(last, b.lang)}"
        blocks.append(Facts(((b.t("analytics.period"), span),)))
    if has_completions:
        blocks.append(_completions_chart(b))
    if quiz:
        labels = [f"{10 * k}–{10 * k + 9}" for k in range(9)] + ["90–100"]
        blocks.append(
            BarChart(
                b.t("analytics.quiz_chart"),
                tuple(labels),
                tuple(b.quiz_buckets),
                b.t("analytics.quiz_axis"),
                b.t("analytics.attempts"),
                x_axis=b.t("analytics.quiz_axis"),
                empty=b.t("analytics.no_data"),
            )
        )
    if has_completions and b.courses is not None:
        blocks += _top_courses(b, n, b.courses)
    b.emit(
        f"{REPORTS}/analytics-summary",
        b.report(b.t("analytics.title"), b.t("analytics.subtitle", organisation=b.organisation), blocks),
    )


def _figures(b: DocumentBuild, n: Callable[[int], str], has_completions: bool, quiz: bool) -> list[tuple[str, str]]:
    figures: list[tuple[str, str]] = []
    if b.people is not None:
        figures.append((b.t("analytics.people"), n(len(b.people))))
    if b.courses is not None:
        figures.append((b.t("analytics.courses"), n(len(b.courses))))
    if has_completions:
        completions = sum(c.completions for c in b.course_stats.values())
        score_sum = sum(c.score_sum for c in b.course_stats.values())
        score_n = sum(c.score_n for c in b.course_stats.values())
        figures.append((b.t("analytics.completions"), n(completions)))
        figures.append((b.t("analytics.avg_completion"), b.average(score_sum, score_n)))
    if b.certificates_read is not None:
        figures.append((b.t("analytics.certificates"), n(b.certificates_read)))
    if quiz:
        figures.append((b.t("analytics.quiz_attempts"), n(b.quiz_total)))
        figures.append((b.t("analytics.avg_quiz"), b.average(b.quiz_pct_sum, b.quiz_pct_n, percent=True)))
    if b.quiet_role("activity") is not None:
        figures.append((b.t("analytics.activity"), n(b.activity_total)))
    if b.feedback_answers is not None:
        figures.append((b.t("analytics.feedback"), n(b.feedback_answers)))
    return figures


def _completions_chart(b: DocumentBuild) -> BarChart:
    labels, values = [], []
    if b.months:
        year, month = min(b.months)
        end = max(b.months)
        while (year, month) <= end:
            labels.append(i18n.format_month(year, month, b.lang))
            values.append(b.months[(year, month)])
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return BarChart(
        b.t("analytics.completions_chart"),
        tuple(labels),
        tuple(values),
        b.t("analytics.month"),
        b.t("analytics.completions"),
        x_axis=b.t("analytics.month"),
        empty=b.t("analytics.no_data"),
    )


def _top_courses(b: DocumentBuild, n: Callable[[int], str], titles: dict[str, str]) -> list[Block]:
    ranked = sorted(
        titles,
        key=lambda c: (
            -(b.course_stats.get(c) or CourseStats()).completions,
            i18n.sort_key(titles[c], b.lang),
        ),
    )
    rows = []
    for course in ranked:
        cs = b.course_stats.get(course) or CourseStats()
        rows.append(
            (
                b.course_title(course),
                n(cs.completions),
                n(cs.certificates),
                b.average(cs.score_sum, cs.score_n),
            )
        )
    return [
        Heading(b.t("analytics.top_courses")),
        Table(
            (
                b.t("analytics.course"),
                b.t("analytics.completions"),
                b.t("analytics.certificates"),
                b.t("analytics.avg_completion"),
            ),
            tuple(rows),
            (False, True, True, True),
            empty=b.t("no_rows"),
            widths=(52, 14, 16, 18),
        ),
    ]


def _folder_of(fmt: str) -> str:
    exporter = REGISTRY.get(fmt)
    return f"{exporter.folder}/" if exporter is not None else ""


def _format_contents(b: DocumentBuild, fmt: str) -> str:
    """What a format holds; the SQL dump with its dialect (SQLite, PostgreSQL, MySQL and MariaDB)."""
    text = b.t(f"fmt.{fmt}")
    if fmt == "sql":
        dialect = DIALECT_NAMES.get(b.job.options.sql_dialect)
        text += f" ({dialect})" if dialect else ""
    return text


def export_summary(b: DocumentBuild) -> None:
    """``export-summary``: what was exported where, the tables, media, checksums, what
    happens after the export window, and every note of the export."""
    job = b.job
    n: Callable[[int], str] = lambda v: i18n.format_int(v, b.lang)  # noqa: E731
    deadline = job.export_deadline
    facts = [
        (b.t("summary.organisation"), b.organisation),
        (b.t("summary.customer"), job.customer),
        (b.t("summary.exported"), i18n.format_instant(job.started_at, b.tz, b.lang)),
    ]
    if deadline is not None:
        facts.append((b.t("summary.deadline"), i18n.format_date(deadline, b.lang)))
        facts.append((b.t("summary.deletion"), i18n.format_date(deadline + timedelta(days=1), b.lang)))
    else:
        facts.append((b.t("summary.deadline"), b.t("summary.no_notice")))
    blocks: list[Block] = [Facts(tuple(facts)), Heading(b.t("summary.formats"))]
    formats = list(job.options.formats)
    blocks.append(
        Table(
            (b.t("summary.format"), b.t("summary.folder"), b.t("summary.contents")),
            tuple((f, _folder_of(f), _format_contents(b, f)) for f in formats if f"fmt.{f}" in i18n.STRINGS["en"]),
            widths=(12, 18, 70),
        )
    )
    blocks.append(Heading(b.t("summary.tables")))
    rows = []
    for spec in job.tables:
        rows.append((spec.name, spec.category or b.t("none"), n(job.counts.get(spec.name, 0))))
    rows.append((b.t("summary.total"), "", n(sum(job.counts.get(s.name, 0) for s in job.tables))))
    blocks.append(
        Table(
            (b.t("summary.table"), b.t("summary.category"), b.t("summary.rows")),
            tuple(rows),
            (False, False, True),
            widths=(50, 25, 25),
        )
    )
    if "media" in formats:
        size = sum(int(m.get("size") or 0) for m in job.media)
        blocks += [
            Heading(b.t("summary.media")),
            Paragraph(b.t("summary.media_line", files=n(len(job.media)), size=i18n.format_bytes(size, b.lang))),
        ]
    blocks += [Heading(b.t("summary.checksums")), Paragraph(b.t("summary.checksums_text"))]
    blocks.append(Heading(b.t("summary.after")))
    blocks += _after_export(b, deadline)
    # Other formats' notes, and this run's own without the "pdf: "/"docx: " prefix: the
    # PDF and the Word summary then say the same, whichever of them runs first.
    notes = [note for note in job.notes if not note.startswith(("pdf: ", "docx: "))] + b.own_notes
    if notes:
        blocks += [Heading(b.t("summary.notes"))] + [Paragraph(note_sentence(note), "small") for note in notes]
    b.emit("export-summary", b.report(b.t("summary.title"), b.t("summary.subtitle"), blocks))


def _after_export(b: DocumentBuild, deadline: date | None) -> list[Block]:
    """When the data is deleted, and what is retained until when (and why)."""
    job = b.job
    if deadline is None:
        return [Paragraph(b.t("summary.after_nodeadline"))]
    blocks: list[Block] = [
        Paragraph(
            b.t(
                "summary.after_text",
                deadline=i18n.format_date(deadline, b.lang),
                deletion=i18n.format_date(deadline + timedelta(days=1), b.lang),
            )
        )
    ]
    termination = deadline - timedelta(days=job.settings.contract.export_window_days)
    for spec in job.tables:
        rule = job.settings.rule(spec.name)
        if rule.retain and job.counts.get(spec.name):
            until = retention_until(termination, rule.retain)
            blocks.append(
                Paragraph(
                    b.t(
                        "summary.retained",
                        table=spec.name,
                        until=i18n.format_date(until, b.lang),
                        basis=rule.legal_basis or "",
                    )
                )
            )
    return blocks
