"""The deletion certificate: one PDF per purge, in English or Swedish, without personal data.

A purge of kind ``reapply`` (deleted data found again, say after a backup was restored)
gets an *addendum*: titled so, naming the case's first certificate and its SHA-256.

It states who the customer is (key and organisation name), when the contract ended,
which export packages were delivered (with their manifest hashes) and destroyed, how
many rows of each table were deleted, what is kept under which legal basis until when,
what was kept because other customers still use it, the verification result, the
backup note and the audit chain's head hash, so that the certificate can be tied to
the tamper-evident log.  Table names, counts, dates and hashes only: no person's name,
e-mail or file name ever appears.
"""

from __future__ import annotations

import hashlib
import html
import os
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .config import Settings
from .errors import OperationalError

if TYPE_CHECKING:
    from .deletion import PurgeResult

__all__ = ["certificate_html", "render_certificate", "write_certificate"]

_MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
    "sv": ("januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september",
           "oktober", "november", "december"),
}  # fmt: skip

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "Certificate of deletion",
        "intro": (
            "{vendor} certifies that the data held for {name} in its learning platform has been "
            "deleted as set out below, and that the deletion was verified afterwards."
        ),
        "intro_retention": (
            "{vendor} certifies that the data it was obliged to keep for {name} after the main "
            "deletion has now been deleted as set out below, and that the deletion was verified."
        ),
        "facts": "Summary",
        "customer": "Customer",
        "customer_key": "Customer key",
        "termination": "Contract ended",
        "kind": "Deletion",
        "kind_full": "All data of the customer",
        "kind_retention": "Data kept under a legal obligation, now due for deletion",
        "purge_id": "Purge number",
        "started": "Started",
        "finished": "Completed",
        "forced": "Performed before it was due",
        "forced_where": "yes, on request; the reason is recorded with purge #{id}",
        "exports": "Exports delivered to the customer",
        "exports_none": "No export was delivered through learnexit.",
        "export_done": "Completed",
        "export_package": "Package",
        "export_hash": "Manifest (SHA-256)",
        "export_status": "Our copy",
        "export_removed": "destroyed",
        "export_kept": "not destroyed",
        "deleted": "Deleted",
        "table": "Table",
        "rows": "Rows",
        "total": "Total",
        "media": "Media files deleted: {n}",
        "media_kept": "Media files kept because other data still uses them: {n}",
        "retained": "Kept under a legal obligation",
        "retained_none": "Nothing is kept.",
        "until": "Kept until",
        "basis": "Legal basis",
        "minimised": "referenced by retained records; kept with {cols} removed",
        "minimised_none": "referenced by retained records",
        "shared": "Kept because other customers still use it",
        "shared_text": (
            "These records also belong to other customers of the platform. Every link between "
            "them and {name} was deleted; the records themselves stay for the other customers."
        ),
        "verification": "Verification",
        "verified": (
            "Passed. After the deletion the platform's database was searched again for the "
            "customer's data: no record remains apart from what is listed as kept above, "
            "and no deleted media file remains."
        ),
        "backups": "Copies outside the platform",
        "backups_none": "No backup policy was stated.",
        "audit": "Audit trail",
        "audit_text": (
            "Every step of this deletion is recorded in a hash-chained audit log. The head of "
            "the chain when the deletion was verified:"
        ),
        "issued": "Issued {date} by {vendor}",
        "title_addendum": "Addendum to the certificate of deletion",
        "intro_addendum": (
            "{vendor} certifies that data of {name} which an earlier certificate of deletion (named "
            "below) had certified as deleted was found in the platform again (for instance after a "
            "backup was restored), and that it has been deleted again as set out below and verified."
        ),
        "exports_addendum": "The export packages are listed on the certificate this addendum extends.",
        "kind_reapply": "Deleted data that was found again, deleted again",
        "addendum_to": "Addendum to",
        "addendum_cert": "the certificate of purge #{id}, {name}",
        "addendum_hash": "That certificate (SHA-256)",
    },
    "sv": {
        "title": "Raderingsintyg",
        "intro": (
            "{vendor} intygar att de uppgifter som lagrats för {name} i lärplattformen har raderats "
            "enligt nedan och att raderingen har kontrollerats i efterhand."
        ),
        "intro_retention": (
            "{vendor} intygar att de uppgifter som enligt lag behölls för {name} efter den första "
            "raderingen nu har raderats enligt nedan och att raderingen har kontrollerats."
        ),
        "facts": "Sammanfattning",
        "customer": "Kund",
        "customer_key": "Kundnyckel",
        "termination": "Avtalet upphörde",
        "kind": "Radering",
        "kind_full": "Alla kundens uppgifter",
        "kind_retention": "Uppgifter som behölls enligt lag och nu ska raderas",
        "purge_id": "Raderingsnummer",
        "started": "Påbörjad",
        "finished": "Slutförd",
        "forced": "Utförd före förfallodagen",
        "forced_where": "ja, på begäran; skälet finns registrerat för radering #{id}",
        "exports": "Exporter som lämnats till kunden",
        "exports_none": "Ingen export lämnades via learnexit.",
        "export_done": "Slutförd",
        "export_package": "Paket",
        "export_hash": "Manifest (SHA-256)",
        "export_status": "Vår kopia",
        "export_removed": "förstörd",
        "export_kept": "inte förstörd",
        "deleted": "Raderat",
        "table": "Tabell",
        "rows": "Rader",
        "total": "Totalt",
        "media": "Raderade mediefiler: {n}",
        "media_kept": "Mediefiler som behölls eftersom andra uppgifter använder dem: {n}",
        "retained": "Behålls enligt lag",
        "retained_none": "Ingenting behålls.",
        "until": "Behålls till och med",
        "basis": "Rättslig grund",
        "minimised": "hänvisas till av bevarade poster; behålls utan {cols}",
        "minimised_none": "hänvisas till av bevarade poster",
        "shared": "Behålls eftersom andra kunder använder dem",
        "shared_text": (
            "Dessa poster hör även till andra kunder på plattformen. Alla kopplingar mellan dem och "
            "{name} har raderats; posterna finns kvar för de andra kunderna."
        ),
        "verification": "Kontroll",
        "verified": (
            "Godkänd. Efter raderingen genomsöktes plattformens databas på nytt efter kundens "
            "uppgifter: inga poster finns kvar utöver det som anges som behållet ovan, och inga "
            "raderade mediefiler finns kvar."
        ),
        "backups": "Kopior utanför plattformen",
        "backups_none": "Ingen rutin för säkerhetskopior angavs.",
        "audit": "Granskningslogg",
        "audit_text": (
            "Varje steg i raderingen finns i en hashkedjad granskningslogg. Kedjans senaste "
            "hashvärde när raderingen kontrollerades:"
        ),
        "issued": "Utfärdat {date} av {vendor}",
        "title_addendum": "Tillägg till raderingsintyget",
        "intro_addendum": (
            "{vendor} intygar att uppgifter om {name} som enligt ett tidigare raderingsintyg (anges "
            "nedan) hade raderats återfanns i plattformen (till exempel efter att en säkerhetskopia "
            "återställts), och att de har raderats på nytt enligt nedan och kontrollerats."
        ),
        "exports_addendum": "Exportpaketen anges i det intyg som detta tillägg kompletterar.",
        "kind_reapply": "Raderade uppgifter som återfanns, raderade på nytt",
        "addendum_to": "Tillägg till",
        "addendum_cert": "intyget för radering #{id}, {name}",
        "addendum_hash": "Det intyget (SHA-256)",
    },
}

_CSS = """
@page { size: A4; margin: 22mm 20mm 20mm 20mm;
  @bottom-center { content: counter(page) " / " counter(pages); font-size: 8pt; color: #666; } }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; font-size: 9.5pt; color: #111; }
h1 { font-size: 20pt; margin: 0 0 4mm 0; }
h2 { font-size: 11.5pt; margin: 7mm 0 2mm 0; border-bottom: 0.6pt solid #999; padding-bottom: 1mm; }
p { margin: 1.5mm 0; line-height: 1.35; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 2mm 0; }
th, td { text-align: left; padding: 1mm 2mm; border-bottom: 0.4pt solid #ccc; vertical-align: top; }
th { background: #f2f2f2; font-weight: bold; }
td.n, th.n { text-align: right; white-space: nowrap; }
td.d, th.d { white-space: nowrap; }
td.sub { border-bottom: 0.4pt solid #ccc; padding-top: 0; color: #444; }
tr.top td { border-bottom: none; }
table.facts th { width: 38%; background: none; font-weight: normal; color: #444; }
.hash { font-family: "DejaVu Sans Mono", monospace; font-size: 7.5pt; word-break: break-all; }
.ok { color: #0a5c2b; font-weight: bold; }
.foot { margin-top: 8mm; color: #444; font-size: 8.5pt; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _day(value: date | datetime | str | None, lang: str, tz: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        text = value
        try:
            value = datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)
        except ValueError:
            return text
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        local = value.astimezone(ZoneInfo(tz))
        return f"{_day(local.date(), lang, tz)} {local:%H:%M}"
    month = _MONTHS[lang][value.month - 1]
    return f"{value.day} {month} {value.year}"


def certificate_html(result: PurgeResult, facts: dict[str, Any], lang: str) -> str:
    """The certificate as HTML (what the PDF is rendered from)."""
    t = TEXT[lang]
    tz = str(facts.get("timezone") or "Europe/Stockholm")
    name = result.name or result.customer
    vendor = facts.get("vendor") or "The vendor"
    kind = result.kind or "full"
    # A reapply purge (deleted data found again, e.g. a restored backup) gets an addendum
    # to the case's first certificate, named with its hash.
    addendum = facts.get("addendum_to") if kind == "reapply" else None
    title = t["title_addendum"] if addendum else t["title"]
    intro = {"retention": "intro_retention", "reapply": "intro_addendum"}.get(kind, "intro")
    out: list[str] = [
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">',
        f"<title>{_e(title)} — {_e(result.customer)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>{_e(t[intro].format(vendor=vendor, name=name))}</p>",
        f"<h2>{_e(t['facts'])}</h2><table class='facts'>",
    ]
    rows = [
        (t["customer"], name),
        (t["customer_key"], result.customer),
        (t["termination"], _day(facts.get("termination_date"), lang, tz)),
        (t["kind"], t.get(f"kind_{kind}", t["kind_full"])),
        (t["purge_id"], f"#{result.purge_id}"),
        (t["started"], _day(facts.get("started_at"), lang, tz)),
        (t["finished"], _day(facts.get("finished_at"), lang, tz)),
    ]
    if addendum:
        cert = t["addendum_cert"].format(id=addendum.get("purge_id"), name=addendum.get("certificate") or "—")
        rows.append((t["addendum_to"], cert))
    if result.forced_reason:
        # The reason is staff free text: it stays in the ledger, not on the certificate.
        rows.append((t["forced"], t["forced_where"].format(id=result.purge_id)))
    out += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows]
    if addendum:
        out.append(
            f"<tr><th>{_e(t['addendum_hash'])}</th><td class='hash'>{_e(addendum.get('sha256') or '—')}</td></tr>"
        )
    out.append("</table>")

    out.append(f"<h2>{_e(t['exports'])}</h2>")
    delivered = [e for e in result.exports if e.get("manifest_sha256") or e.get("status") in ("complete", "removed")]
    if addendum:
        out.append(f"<p>{_e(t['exports_addendum'])}</p>")
    elif delivered:
        out.append(
            f"<table><tr><th class='d'>{_e(t['export_done'])}</th><th>{_e(t['export_package'])}</th>"
            f"<th class='d'>{_e(t['export_status'])}</th></tr>"
        )
        for e in delivered:
            status = t["export_removed"] if e.get("status") == "removed" else t["export_kept"]
            out.append(
                f"<tr class='top'><td class='d'>{_e(_day(e.get('finished_at'), lang, tz))}</td>"
                f"<td>{_e(e.get('package'))}</td><td class='d'>{_e(status)}</td></tr>"
                f"<tr><td class='sub' colspan='3'>{_e(t['export_hash'])}: "
                f"<span class='hash'>{_e(e.get('manifest_sha256') or '—')}</span></td></tr>"
            )
        out.append("</table>")
    else:
        out.append(f"<p>{_e(t['exports_none'])}</p>")

    out.append(f"<h2>{_e(t['deleted'])}</h2>")
    out.append(f"<table><tr><th>{_e(t['table'])}</th><th class='n'>{_e(t['rows'])}</th></tr>")
    for table, n in result.deleted.items():
        out.append(f"<tr><td>{_e(table)}</td><td class='n'>{int(n)}</td></tr>")
    out.append(
        f"<tr><th>{_e(t['total'])}</th><th class='n'>{sum(int(n) for n in result.deleted.values())}</th></tr></table>"
    )
    media = result.media or {}
    if media:
        out.append(f"<p>{_e(t['media'].format(n=int(media.get('deleted', 0))))}</p>")
        if media.get("kept_shared"):
            out.append(f"<p>{_e(t['media_kept'].format(n=int(media['kept_shared'])))}</p>")

    out.append(f"<h2>{_e(t['retained'])}</h2>")
    if result.retention:
        out.append(
            f"<table><tr><th>{_e(t['table'])}</th><th class='n'>{_e(t['rows'])}</th>"
            f"<th class='d'>{_e(t['until'])}</th><th>{_e(t['basis'])}</th></tr>"
        )
        for table, info in result.retention.items():
            note = ""
            if info.get("reason"):
                cols = info.get("minimised") or []
                note = t["minimised"].format(cols=", ".join(cols)) if cols else t["minimised_none"]
            basis = _e(info.get("legal_basis") or "—") + (f"<br><i>{_e(note)}</i>" if note else "")
            out.append(
                f"<tr><td>{_e(table)}</td><td class='n'>{int(info.get('rows') or 0)}</td>"
                f"<td class='d'>{_e(_day(info.get('until'), lang, tz))}</td><td>{basis}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append(f"<p>{_e(t['retained_none'])}</p>")

    if result.kept_shared:
        out.append(f"<h2>{_e(t['shared'])}</h2><p>{_e(t['shared_text'].format(name=name))}</p>")
        out.append(f"<table><tr><th>{_e(t['table'])}</th><th class='n'>{_e(t['rows'])}</th></tr>")
        for table, n in result.kept_shared.items():
            out.append(f"<tr><td>{_e(table)}</td><td class='n'>{int(n)}</td></tr>")
        out.append("</table>")

    out.append(f"<h2>{_e(t['verification'])}</h2><p class='ok'>{_e(t['verified'])}</p>")
    out.append(f"<h2>{_e(t['backups'])}</h2><p>{_e(facts.get('backup_note') or t['backups_none'])}</p>")
    out.append(f"<h2>{_e(t['audit'])}</h2><p>{_e(t['audit_text'])}</p>")
    out.append(f"<p class='hash'>{_e(result.audit_head)}</p>")
    issued = t["issued"].format(date=_day(facts.get("finished_at"), lang, tz), vendor=vendor)
    out.append(f"<p class='foot'>{_e(issued)}</p></body></html>")
    return "".join(out)


def render_certificate(result: PurgeResult, facts: dict[str, Any], lang: str) -> bytes:
    """The certificate as PDF bytes (WeasyPrint)."""
    try:
        from weasyprint import HTML
    except ImportError as exc:  # pragma: no cover - a dependency
        raise OperationalError(f"cannot render the certificate: {exc}") from None
    document = HTML(string=certificate_html(result, facts, lang))
    return bytes(document.write_pdf())


def write_certificate(settings: Settings, result: PurgeResult, facts: dict[str, Any], lang: str) -> tuple[Path, str]:
    """Render and store the certificate under ``[purge] certificates``; (path, sha256)."""
    from .package import safe_file_name

    data = render_certificate(result, facts, lang)
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
