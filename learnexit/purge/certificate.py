"""The deletion certificate: one PDF per purge, in English or Swedish, without personal data.

It is a document like the export summary (``documents.model.Report``: the same
masthead, page numbers, number and date formats, style sheet and renderer), with its
strings in the documents' catalogue (``deletion.*`` in ``documents.i18n``).  It states
who the customer is (key and organisation name), when the contract ended,
which export packages were delivered (those ``confirm`` recorded, with their manifest
hashes) and which other copies the vendor held and destroyed, how
many rows of each table were deleted, what is kept under which legal basis until when,
what was kept because other customers still use it, the verification result, the
backup note (only when ``[purge] backup_note`` is set) and the audit chain's head hash, so that the certificate can be tied to
the tamper-evident log.  Table names, counts, dates and hashes only: no person's name,
e-mail or file name ever appears.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ..config import Settings
from ..contract import DEFAULT_TIMEZONE
from ..documents import i18n
from ..documents.layout import report_html
from ..documents.model import Block, Facts, Heading, Paragraph, Report, Table
from ..documents.render import PdfWorker, pdf_bytes
from ..errors import OperationalError
from ..package.build import safe_file_name
from .results import PurgeResult

__all__ = ["certificate_document", "certificate_html", "render_certificate", "write_certificate"]

# A purge of kind ``reapply`` (deleted data found again, say after a backup was restored)
# gets an *addendum*: titled so, naming the case's first certificate and its SHA-256.


def _day(value: date | str | None, lang: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            day = date.fromisoformat(value[:10])
        except ValueError:
            return value
    else:
        day = value.date() if isinstance(value, datetime) else value
    return i18n.format_date(day, lang)


def _instant(value: datetime | str | None, lang: str, tz: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        at = value
    return i18n.format_instant(at if at.tzinfo else at.replace(tzinfo=UTC), tz, lang)


def _exports_blocks(result: PurgeResult, facts: dict[str, Any], lang: str, tz: str) -> list[Block]:
    """Delivered packages (those ``confirm`` recorded), then the vendor's other copies."""
    t = lambda key, **kw: i18n.text(lang, key, **kw)  # noqa: E731
    delivered_ids = set(facts.get("delivered") or ())
    made = [e for e in result.exports if e.get("manifest_sha256") or e.get("status") in ("complete", "removed")]
    columns = (t("deletion.export_done"), t("deletion.export_package"), t("deletion.export_hash"))

    def rows(exports: list[dict[str, Any]]) -> tuple[tuple[str, ...], ...]:
        return tuple(
            (
                _instant(e.get("finished_at"), lang, tz),
                f"{e.get('package') or '—'}\n{t('deletion.export_status')}: "
                + t("deletion.export_removed" if e.get("status") == "removed" else "deletion.export_kept"),
                str(e.get("manifest_sha256") or "—"),
            )
            for e in exports
        )

    delivered = [e for e in made if e.get("id") in delivered_ids]
    vendor = [e for e in made if e.get("id") not in delivered_ids]
    blocks: list[Block] = [
        Heading(t("deletion.exports")),
        Table(columns, rows(delivered), empty=t("deletion.exports_none"), widths=(26, 32, 42)),
    ]
    if vendor:
        blocks += [
            Heading(t("deletion.vendor_copies")),
            Paragraph(t("deletion.vendor_copies_text")),
            Table(columns, rows(vendor), widths=(26, 32, 42)),
        ]
    return blocks


def _facts_rows(
    result: PurgeResult, facts: dict[str, Any], lang: str, tz: str, addendum: dict[str, Any] | None
) -> list[tuple[str, str]]:
    """The certificate's facts: customer, contract end, kind, purge, when, addendum."""
    t = lambda key, **kw: i18n.text(lang, key, **kw)  # noqa: E731
    kind = result.kind or "full"
    rows = [
        (t("deletion.customer"), result.name or result.customer),
        (t("deletion.customer_key"), result.customer),
        (t("deletion.termination"), _day(facts.get("termination_date"), lang)),
        (
            t("deletion.kind"),
            t(
                {"retention": "deletion.kind_retention", "reapply": "deletion.kind_reapply"}.get(
                    kind, "deletion.kind_full"
                )
            ),
        ),
        (t("deletion.purge_id"), f"#{result.purge_id}"),
        (t("deletion.started"), _instant(facts.get("started_at"), lang, tz)),
        (t("deletion.finished"), _instant(facts.get("finished_at"), lang, tz)),
    ]
    if result.forced_reason:
        # The reason is staff free text: it stays in the ledger, not on the certificate.
        rows.append((t("deletion.forced"), t("deletion.forced_where", id=result.purge_id)))
    if addendum:
        certificate = t("deletion.addendum_cert", id=addendum.get("purge_id"), name=addendum.get("certificate") or "—")
        rows += [
            (t("deletion.addendum_to"), certificate),
            (t("deletion.addendum_hash"), str(addendum.get("sha256") or "—")),
        ]
    return rows


def _deleted_blocks(result: PurgeResult, lang: str) -> list[Block]:
    """Rows deleted per table (the tables where none were: named in one paragraph — on a
    site of 480 tables, most of them empty, a row each made 15 pages), and the media files."""
    t = lambda key, **kw: i18n.text(lang, key, **kw)  # noqa: E731
    n = lambda value: i18n.format_int(int(value or 0), lang)  # noqa: E731
    deleted = tuple((table, n(count)) for table, count in result.deleted.items() if int(count or 0))
    total = (t("deletion.total"), n(sum(int(c) for c in result.deleted.values())))
    blocks: list[Block] = [
        Heading(t("deletion.deleted")),
        # (fixed widths: WeasyPrint need not measure every cell first; a long name wraps)
        Table((t("deletion.table"), t("deletion.rows")), (*deleted, total), numeric=(False, True), widths=(78, 22)),
    ]
    untouched = [table for table, count in result.deleted.items() if not int(count or 0)]
    if untouched:
        blocks.append(Paragraph(t("deletion.none_in", n=n(len(untouched)), tables=", ".join(untouched))))
    media = result.media or {}
    if media:
        blocks.append(Paragraph(t("deletion.media", n=n(media.get("deleted")))))
        if media.get("kept_shared"):
            blocks.append(Paragraph(t("deletion.media_kept", n=n(media["kept_shared"]))))
    return blocks


def _kept_blocks(result: PurgeResult, facts: dict[str, Any], lang: str) -> list[Block]:
    """What stays: retained under a legal basis, kept for others, contested."""
    t = lambda key, **kw: i18n.text(lang, key, **kw)  # noqa: E731
    n = lambda value: i18n.format_int(int(value or 0), lang)  # noqa: E731
    name = result.name or result.customer
    blocks: list[Block] = [Heading(t("deletion.retained"))]
    if result.retention:
        retained = []
        for table, info in result.retention.items():
            basis = str(info.get("legal_basis") or "—")
            if info.get("reason"):
                cols = info.get("minimised") or []
                basis += "\n" + (
                    t("deletion.minimised", cols=", ".join(cols)) if cols else t("deletion.minimised_none")
                )
            retained.append((table, n(info.get("rows")), _day(info.get("until"), lang), basis))
        columns = (t("deletion.table"), t("deletion.rows"), t("deletion.until"), t("deletion.basis"))
        blocks.append(Table(columns, tuple(retained), numeric=(False, True, False, False), widths=(25, 10, 21, 44)))
    else:
        blocks.append(Paragraph(t("deletion.retained_none")))

    if result.kept_shared:
        blocks += [
            Heading(t("deletion.shared")),
            Paragraph(t("deletion.shared_text", name=name)),
            Table(
                (t("deletion.table"), t("deletion.rows")),
                tuple((table, n(count)) for table, count in result.kept_shared.items()),
                numeric=(False, True),
            ),
        ]
    contested = facts.get("contested") or {}
    if contested:  # (counts per table only: whose else they are is another customer's business)
        blocks += [
            Heading(t("deletion.contested")),
            Paragraph(t("deletion.contested_text", name=name)),
            Table(
                (t("deletion.table"), t("deletion.rows")),
                tuple((table, n(count)) for table, count in contested.items()),
                numeric=(False, True),
            ),
        ]
    return blocks


def certificate_document(result: PurgeResult, facts: dict[str, Any], lang: str) -> Report:
    """The certificate as a document (the same model, strings and style as every other)."""
    t = lambda key, **kw: i18n.text(lang, key, **kw)  # noqa: E731
    tz = str(facts.get("timezone") or DEFAULT_TIMEZONE)
    name = result.name or result.customer
    vendor = str(facts.get("vendor") or "The vendor")
    kind = result.kind or "full"
    # A reapply purge (deleted data found again, e.g. a restored backup) gets an addendum
    # to the case's first certificate, named with its hash.
    addendum = facts.get("addendum_to") if kind == "reapply" else None
    intro_key = {"retention": "deletion.intro_retention", "reapply": "deletion.intro_addendum"}.get(
        kind, "deletion.intro"
    )
    blocks: list[Block] = [Paragraph(t(intro_key, vendor=vendor, name=name), "lead")]
    blocks += [Heading(t("deletion.facts")), Facts(tuple(_facts_rows(result, facts, lang, tz, addendum)))]
    if addendum:
        blocks += [Heading(t("deletion.exports")), Paragraph(t("deletion.exports_addendum"))]
    else:
        blocks += _exports_blocks(result, facts, lang, tz)
    blocks += _deleted_blocks(result, lang)
    blocks += _kept_blocks(result, facts, lang)
    blocks += [Heading(t("deletion.verification")), Paragraph(t("deletion.verified"))]
    if facts.get("backup_note"):  # (not set: say nothing rather than "no policy"; purge warns)
        blocks += [Heading(t("deletion.backups")), Paragraph(str(facts["backup_note"]))]
    blocks += [
        Heading(t("deletion.audit")),
        Paragraph(t("deletion.audit_text")),
        Paragraph(str(result.audit_head or "—"), "code"),
    ]
    finished = facts.get("finished_at")
    return Report(
        lang=lang,
        title=t("deletion.title_addendum" if addendum else "deletion.title"),
        subtitle=t("deletion.subtitle", name=name, customer=result.customer, purge_id=result.purge_id),
        organisation=name,
        vendor=vendor,
        generated=t("deletion.issued", date=_day(finished, lang), vendor=vendor),
        blocks=tuple(blocks),
    )


def certificate_html(result: PurgeResult, facts: dict[str, Any], lang: str) -> str:
    """The certificate as HTML (what the PDF is rendered from, with the report style sheet)."""
    return report_html(certificate_document(result, facts, lang))


def render_certificate(result: PurgeResult, facts: dict[str, Any], lang: str, worker: PdfWorker | None = None) -> bytes:
    """The certificate as PDF bytes, through the documents' renderer (``worker``: one made
    ready while the purge ran)."""
    doc = certificate_document(result, facts, lang)
    return worker.render(doc) if worker is not None else pdf_bytes(doc)


def write_certificate(
    settings: Settings, result: PurgeResult, facts: dict[str, Any], lang: str, worker: PdfWorker | None = None
) -> tuple[Path, str]:
    """Render and store the certificate under ``[purge] certificates``; (path, sha256)."""
    data = render_certificate(result, facts, lang, worker)
    folder = Path(settings.purge.certificates)
    finished = facts.get("finished_at") or datetime.now(UTC)
    name = (
        f"{safe_file_name(result.customer)}-purge-{result.purge_id}-{result.kind}-"
        f"{finished.astimezone(UTC):%Y%m%dT%H%M%SZ}-{lang}.pdf"
    )
    target = folder / name
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o750)
        fd, tmp = tempfile.mkstemp(prefix=".certificate-", suffix=".partial", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o640)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OperationalError(f"cannot write the certificate to {folder}: {exc.strerror}") from None
    return target, hashlib.sha256(data).hexdigest()
