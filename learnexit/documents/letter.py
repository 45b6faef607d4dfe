"""The notice acknowledgement letter: the first thing support sends back.

``write_notice_letter`` writes the same letter three ways into one folder — a PDF, a
Word file and a plain-text e-mail body — confirming the received date, whether the
notice was on time (and if not, why), the termination date, the export deadline, the
deletion date, what is kept by law, and what the customer can ask for.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from ..config import Settings
from ..contract import Timeline, today
from ..errors import BadInput, OperationalError
from ..filenames import safe_filename
from . import i18n
from .layout import document_text
from .model import Block, Bullets, Facts, Heading, Paragraph, Report
from .render import open_private, render_file


def notice_letter(
    settings: Settings,
    customer: str,
    customer_name: str,
    timeline: Timeline,
    lang: str,
    *,
    now: datetime | None = None,
) -> Report:
    """The letter's content (see ``write_notice_letter``)."""
    t = lambda key, **kw: i18n.text(lang, key, **kw)  # noqa: E731
    d = lambda value: i18n.format_date(value, lang)  # noqa: E731
    written = today(timeline.timezone, now)
    vendor = settings.vendor_name
    days = timeline.days_before_period_end
    if timeline.timely:
        why = t("letter.timely", days=days, period_end=d(timeline.period_end), notice_days=timeline.notice_days)
    elif days >= 0:
        why = t("letter.late", days=days, period_end=d(timeline.period_end), notice_days=timeline.notice_days)
    else:
        why = t("letter.late_after", period_end=d(timeline.period_end))
    status = t("letter.d_timely") if timeline.timely else t("letter.d_late", notice_days=timeline.notice_days)
    formats = [t(f"fmtname.{f}") for f in settings.export.formats if f"fmtname.{f}" in i18n.STRINGS[lang]]
    blocks: list[Block] = [
        Facts(
            (
                (t("letter.to"), customer_name),
                (t("letter.date"), d(written)),
                (t("letter.reference"), f"{customer} / {timeline.received.isoformat()}"),
            )
        ),
        Paragraph(t("letter.greeting", organisation=customer_name)),
        Paragraph(t("letter.received", received=d(timeline.received))),
        Paragraph(why),
        Heading(t("letter.dates")),
        Facts(
            (
                (t("letter.d_received"), d(timeline.received)),
                (t("letter.d_status"), status),
                (t("letter.d_termination"), d(timeline.termination_date)),
                (t("letter.d_deadline"), d(timeline.export_deadline)),
                (t("letter.d_deletion"), d(timeline.purge_due)),
            )
        ),
        Paragraph(t("letter.service", termination=d(timeline.termination_date))),
        Paragraph(t("letter.deletion", deletion=d(timeline.purge_due), timezone=timeline.timezone)),
    ]
    blocks += _retained(settings, lang)
    requests = [
        t("letter.req_export", formats=i18n.join_list(formats, lang), deadline=d(timeline.export_deadline)),
        t("letter.req_lang"),
        t("letter.req_early"),
        t("letter.req_withdraw", termination=d(timeline.termination_date)),
        t("letter.req_certificate"),
    ]
    blocks += [
        Heading(t("letter.request")),
        Bullets(tuple(requests)),
        Paragraph(t("letter.closing")),
        Paragraph(f"{t('letter.regards')}\n{vendor}", "pre"),
    ]
    return Report(
        lang=lang,
        title=t("letter.title"),
        subtitle="",
        organisation=customer_name,
        vendor=vendor,
        generated=d(written),
        blocks=tuple(blocks),
        letter=True,
    )


def _retained(settings: Settings, lang: str) -> list[Block]:
    """What the vendor keeps after the deletion, table by table, with the law and how long."""
    retained = [
        i18n.text(
            lang,
            "letter.retained",
            table=name,
            duration=i18n.format_duration(rule.retain, lang),
            basis=rule.legal_basis or "",
        )
        for name, rule in sorted(settings.tables.items())
        if rule.retain
    ]
    if not retained:
        return []
    return [Paragraph(i18n.text(lang, "letter.retained_intro")), Bullets(tuple(retained))]


def write_notice_letter(
    settings: Settings,
    customer: str,
    customer_name: str,
    timeline: Timeline,
    out_dir: str | os.PathLike[str],
    lang: str,
    *,
    now: datetime | None = None,
) -> list[Path]:
    """Write the acknowledgement as PDF, .docx and .txt into ``out_dir``; return the paths.

    Files are named ``notice-<customer>-<received>-<lang>.{pdf,docx,txt}`` (mode 0600; an
    earlier letter for the same notice and language is replaced) and appear whole or not
    at all.
    """
    if lang not in i18n.LANGS:
        raise BadInput(f"unsupported language {lang!r} (known: {', '.join(i18n.LANGS)})")
    letter = notice_letter(settings, customer, customer_name, timeline, lang, now=now)
    folder = Path(out_dir)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise OperationalError(f"cannot create {folder}: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise BadInput(f"{folder} is not a folder")
    stem = safe_filename(f"notice-{customer}-{timeline.received.isoformat()}-{lang}")
    written: list[Path] = []
    for fmt in ("pdf", "docx", "txt"):
        target = folder / f"{stem}.{fmt}"
        partial = folder / f".{stem}.{fmt}.partial"
        try:
            if fmt == "txt":
                with open_private(partial) as out:
                    out.write(document_text(letter).encode("utf-8"))
            else:
                render_file(letter, fmt, partial)
            os.replace(partial, target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise OperationalError(f"cannot write {target}: {exc.strerror or exc}") from None
        written.append(target)
    return written
