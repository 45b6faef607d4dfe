"""Words, dates and numbers for the customer's documents, in English and Swedish.

Every text a document shows comes from ``STRINGS`` through ``text(lang, key, **values)``,
so the PDF, the Word file and the e-mail body say the same thing.  Dates are written
out (``29 November 2026`` / ``29 november 2026``) because a customer in another country
reads ``03/04/2026`` two ways; instants are turned into calendar dates in the
contract's time zone first.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

LANGS = ("en", "sv")
"""The languages of the documents and certificates (``--lang``, ``[export] lang``): the one
definition (this module imports nothing of learnexit, so the render workers stay light)."""

_MONTHS = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "sv": (
        "januari",
        "februari",
        "mars",
        "april",
        "maj",
        "juni",
        "juli",
        "augusti",
        "september",
        "oktober",
        "november",
        "december",
    ),
}
_MONTHS_SHORT = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "sv": ("jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec"),
}

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        # shared
        "page": "Page {page} of {pages}",
        "generated": "Generated {date}",
        "prepared_for": "Prepared for {organisation}",
        "prepared_by": "by {vendor}",
        "none": "—",
        "unknown_person": "person #{id}",
        "unknown_course": "course #{id}",
        "no_rows": "No records.",
        # certificate
        "certificate.title": "Certificate of Completion",
        "certificate.certifies": "This is to certify that",
        "certificate.completed": "has successfully completed the course",
        "certificate.awarded": "has been awarded",
        "certificate.this": "this certificate",
        "certificate.issued": "Date of issue",
        "certificate.number": "Certificate number",
        "certificate.score": "Result",
        "certificate.issuer": "Issued by {organisation}",
        "certificate.reproduced": (
            "Reproduced from the records of the learning platform provided by {vendor}, "
            "as part of the data export of {date}."
        ),
        # completion report
        "completion.title": "Completion report",
        "completion.subtitle": "{course}",
        "completion.summary": "Summary",
        "completion.completed": "Completions",
        "completion.average": "Average score",
        "completion.certificates": "Certificates issued",
        "completion.first_last": "First and last completion",
        "completion.list": "Completions",
        "completion.person": "Person",
        "completion.date": "Completed",
        "completion.score": "Score",
        "completion.certificate": "Certificate",
        "completion.none": "No completions are recorded for this course.",
        # user statistics
        "users.title": "User statistics",
        "users.subtitle": "Learning activity per person",
        "users.person": "Person",
        "users.email": "E-mail",
        "users.courses": "Courses",
        "users.completions": "Completions",
        "users.certificates": "Certificates",
        "users.avg_score": "Avg. completion score",
        "users.quiz_attempts": "Quiz attempts",
        "users.quiz_avg": "Avg. quiz score",
        "users.activity": "Activity events",
        "users.first_seen": "First activity",
        "users.last_seen": "Last activity",
        "users.intro": (
            "One row per person. Courses counts the distinct courses a person completed or holds a "
            "certificate for; quiz scores are percentages of the maximum score."
        ),
        # analytics
        "analytics.title": "Analytics summary",
        "analytics.subtitle": "Key figures for {organisation}",
        "analytics.headline": "Headline numbers",
        "analytics.people": "People",
        "analytics.courses": "Courses",
        "analytics.completions": "Completions",
        "analytics.certificates": "Certificates issued",
        "analytics.avg_completion": "Average completion score",
        "analytics.quiz_attempts": "Quiz attempts",
        "analytics.avg_quiz": "Average quiz score",
        "analytics.activity": "Activity events",
        "analytics.feedback": "Survey answers",
        "analytics.period": "Activity recorded",
        "analytics.completions_chart": "Completions per month",
        "analytics.quiz_chart": "Quiz score distribution",
        "analytics.quiz_axis": "Score (% of maximum)",
        "analytics.count_axis": "Number",
        "analytics.month": "Month",
        "analytics.attempts": "Attempts",
        "analytics.top_courses": "Completions per course",
        "analytics.course": "Course",
        "analytics.no_data": "No data recorded.",
        # feedback
        "feedback.title": "Feedback and survey answers",
        "feedback.subtitle": "Answers per question",
        "feedback.question": "Question {n}",
        "feedback.responses": "{answers} answers, {blank} left blank",
        "feedback.answer": "Answer",
        "feedback.count": "Count",
        "feedback.none": "No survey answers are recorded.",
        # export summary
        "summary.title": "Export summary",
        "summary.subtitle": "What this package holds and what happens next",
        "summary.organisation": "Organisation",
        "summary.customer": "Customer key",
        "summary.exported": "Exported",
        "summary.deadline": "Export window ends",
        "summary.deletion": "Data deleted from the platform",
        "summary.no_notice": "No notice of termination is recorded",
        "summary.formats": "Formats in this package",
        "summary.format": "Format",
        "summary.folder": "Folder",
        "summary.contents": "Contents",
        "summary.tables": "Tables and row counts",
        "summary.table": "Table",
        "summary.category": "Category",
        "summary.rows": "Rows",
        "summary.total": "Total",
        "summary.media": "Media files",
        "summary.media_line": "{files} files, {size} in total, copied byte for byte in their original format.",
        "summary.checksums": "Checksums",
        "summary.checksums_text": (
            "Every file in the package is listed with its SHA-256 checksum in manifest-sha256.txt at the "
            "top of the package (a BagIt bag, RFC 8493). Check the package with `learnexit verify PATH` or "
            "any BagIt tool; media/index.csv lists the checksum of every media file next to its original name."
        ),
        "summary.after": "What happens after the export window",
        "summary.after_text": (
            "You can request new exports until {deadline}. From {deletion} your data is deleted from the "
            "platform, and we send you a deletion certificate."
        ),
        "summary.after_nodeadline": (
            "No notice of termination is recorded, so no deletion is scheduled. Your data stays on the "
            "platform under your agreement."
        ),
        "summary.retained": "{table}: kept until {until} ({basis}), then deleted.",
        "summary.notes": "Notes",
        "fmt.csv": "One CSV file per table (UTF-8, header row)",
        "fmt.xlsx": "One Excel workbook, one sheet per table",
        "fmt.json": "JSON per table, and one nested document per organisation",
        "fmt.xml": "One XML document with its XML Schema",
        "fmt.pdf": "Certificates and reports as PDF",
        "fmt.docx": "Certificates and reports as Word documents",
        "fmt.media": "Uploaded files in their original format",
        "fmt.sql": "SQL script that recreates the tables and rows",
        # notice letter
        "letter.title": "Acknowledgement of your notice of termination",
        "letter.to": "To",
        "letter.date": "Date",
        "letter.reference": "Our reference",
        "letter.greeting": "Dear {organisation},",
        "letter.received": "We confirm that we received your written notice of termination on {received}.",
        "letter.timely": (
            "Your notice arrived {days} days before the end of the current contract period on {period_end}. "
            "The contract requires {notice_days} days' notice, so your notice is on time and the contract ends "
            "at the end of this period."
        ),
        "letter.late": (
            "Your notice arrived {days} days before the end of the current contract period on {period_end}. "
            "The contract requires at least {notice_days} days' notice, so the notice is late: the contract "
            "continues for one more period and ends at the end of the following period."
        ),
        "letter.late_after": (
            "Your notice arrived after the contract period that ended on {period_end}, so it applies to the "
            "current period."
        ),
        "letter.dates": "The dates that follow from your notice",
        "letter.d_received": "Notice received",
        "letter.d_status": "Notice",
        "letter.d_timely": "On time",
        "letter.d_late": "Late (less than {notice_days} days before the period end)",
        "letter.d_termination": "Contract ends (last day of service)",
        "letter.d_deadline": "Last day to request an export",
        "letter.d_deletion": "Your data is deleted on",
        "letter.service": "The service stays available to you until and including {termination}.",
        "letter.deletion": (
            "On {deletion} (from 00:00, {timezone}) we delete all of your data from the platform, "
            "including uploaded files."
        ),
        "letter.retained_intro": "By law we keep some records for longer, and delete them afterwards:",
        "letter.retained": "{table}: kept for {duration} after the contract ends ({basis}).",
        "letter.request": "What you can ask us for",
        "letter.req_export": ("A complete export of your data ({formats}), as often as you need, until {deadline}."),
        "letter.req_lang": "Reports and certificates in English or Swedish.",
        "letter.req_early": (
            "Earlier deletion: once you have checked your export you can confirm the handover and waive the "
            "rest of the export window. Your data is then deleted from the day after the contract ends at "
            "the earliest."
        ),
        "letter.req_withdraw": "To withdraw this notice: contact us before {termination}.",
        "letter.req_certificate": (
            "A deletion certificate after the deletion, stating what was deleted and what is kept by law."
        ),
        "letter.closing": "If anything in this letter is not as you expect, please contact us.",
        "letter.regards": "Kind regards,",
        # deletion certificate
        "deletion.title": "Certificate of deletion",
        "deletion.title_addendum": "Addendum to the certificate of deletion",
        "deletion.intro_addendum": (
            "{vendor} certifies that data of {name} which an earlier certificate of deletion (named "
            "below) had certified as deleted was found in the platform again (for instance after a "
            "backup was restored), and that it has been deleted again as set out below and verified."
        ),
        "deletion.exports_addendum": "The export packages are listed on the certificate this addendum extends.",
        "deletion.kind_reapply": "Deleted data that was found again, deleted again",
        "deletion.addendum_to": "Addendum to",
        "deletion.addendum_cert": "the certificate of deletion #{id}, {name}",
        "deletion.addendum_hash": "That certificate (SHA-256)",
        "deletion.subtitle": "{name} ({customer}), deletion #{purge_id}",
        "deletion.issued": "Issued {date} by {vendor}",
        "deletion.intro": (
            "{vendor} certifies that the data held for {name} in its learning platform has been "
            "deleted as set out below, and that the deletion was verified afterwards."
        ),
        "deletion.intro_retention": (
            "{vendor} certifies that the data it was obliged to keep for {name} after the main "
            "deletion has now been deleted as set out below, and that the deletion was verified."
        ),
        "deletion.facts": "Summary",
        "deletion.customer": "Customer",
        "deletion.customer_key": "Customer key",
        "deletion.termination": "Contract ended",
        "deletion.kind": "Deletion",
        "deletion.kind_full": "All data of the customer",
        "deletion.kind_retention": "Data kept under a legal obligation, now due for deletion",
        "deletion.purge_id": "Deletion number",
        "deletion.started": "Started",
        "deletion.finished": "Completed",
        "deletion.forced": "Performed before it was due",
        "deletion.forced_where": "Yes, on request; the reason is recorded with deletion #{id}.",
        "deletion.exports": "Exports delivered to the customer",
        "deletion.exports_none": "No delivery of an export package was confirmed.",
        "deletion.export_done": "Completed",
        "deletion.export_package": "Package",
        "deletion.export_hash": "Manifest (SHA-256)",
        "deletion.export_status": "Our copy",
        "deletion.export_removed": "destroyed",
        "deletion.export_kept": "not destroyed",
        "deletion.vendor_copies": "Vendor copies destroyed",
        "deletion.vendor_copies_text": (
            "Export packages we made that were not delivered to the customer (earlier or repeated exports) "
            "were kept only by us:"
        ),
        "deletion.deleted": "Deleted",
        "deletion.table": "Table",
        "deletion.rows": "Rows",
        "deletion.total": "Total",
        "deletion.none_in": "Searched as well, and none of the customer's rows found in them ({n} tables): {tables}.",
        "deletion.media": "Media files deleted: {n}.",
        "deletion.media_kept": "Media files kept because other data still uses them: {n}.",
        "deletion.retained": "Kept under a legal obligation",
        "deletion.retained_none": "Nothing is kept.",
        "deletion.until": "Kept until",
        "deletion.basis": "Legal basis",
        "deletion.minimised": "Referenced by retained records; kept with {cols} removed.",
        "deletion.minimised_none": "Referenced by retained records.",
        "deletion.shared": "Kept because other customers still use it",
        "deletion.shared_text": (
            "These records also belong to other customers of the platform. Every link between "
            "them and {name} was deleted; the records themselves stay for the other customers."
        ),
        "deletion.contested": "Kept because their owner is disputed",
        "deletion.contested_text": (
            "These records refer both to {name} and to another customer of the platform. They were "
            "neither exported nor deleted; they stay until the vendor settles whose they are."
        ),
        "deletion.verification": "Verification",
        "deletion.verified": (
            "Passed. After the deletion the platform's database was searched again for the "
            "customer's data: no record remains apart from what is listed as kept above, "
            "and no deleted media file remains."
        ),
        "deletion.backups": "Copies outside the platform",
        "deletion.audit": "Audit trail",
        "deletion.audit_text": (
            "Every step of this deletion is recorded in a hash-chained audit log. The head of "
            "the chain when the deletion was verified:"
        ),
        "duration.Y": "{n} year|{n} years",
        "duration.M": "{n} month|{n} months",
        "duration.W": "{n} week|{n} weeks",
        "duration.D": "{n} day|{n} days",
        "and": "and",
        "fmtname.csv": "CSV",
        "fmtname.xlsx": "Excel",
        "fmtname.json": "JSON",
        "fmtname.xml": "XML",
        "fmtname.pdf": "PDF",
        "fmtname.docx": "Word",
        "fmtname.media": "your media files in their original format",
        "fmtname.sql": "SQL",
    },
    "sv": {
        "page": "Sida {page} av {pages}",
        "generated": "Skapad {date}",
        "prepared_for": "Framtaget för {organisation}",
        "prepared_by": "av {vendor}",
        "none": "—",
        "unknown_person": "person nr {id}",
        "unknown_course": "kurs nr {id}",
        "no_rows": "Inga uppgifter.",
        "certificate.title": "Kursintyg",
        "certificate.certifies": "Härmed intygas att",
        "certificate.completed": "har genomfört kursen",
        "certificate.awarded": "har tilldelats",
        "certificate.this": "detta intyg",
        "certificate.issued": "Utfärdat",
        "certificate.number": "Intygsnummer",
        "certificate.score": "Resultat",
        "certificate.issuer": "Utfärdat av {organisation}",
        "certificate.reproduced": (
            "Återgivet ur registret i lärplattformen som tillhandahålls av {vendor}, "
            "som en del av dataexporten den {date}."
        ),
        "completion.title": "Genomföranderapport",
        "completion.subtitle": "{course}",
        "completion.summary": "Sammanfattning",
        "completion.completed": "Genomförda",
        "completion.average": "Medelresultat",
        "completion.certificates": "Utfärdade intyg",
        "completion.first_last": "Första och senaste genomförande",
        "completion.list": "Genomföranden",
        "completion.person": "Person",
        "completion.date": "Genomförd",
        "completion.score": "Resultat",
        "completion.certificate": "Intyg",
        "completion.none": "Inga genomföranden finns registrerade för kursen.",
        "users.title": "Användarstatistik",
        "users.subtitle": "Lärandeaktivitet per person",
        "users.person": "Person",
        "users.email": "E-post",
        "users.courses": "Kurser",
        "users.completions": "Genomförda",
        "users.certificates": "Intyg",
        "users.avg_score": "Medelresultat, kurser",
        "users.quiz_attempts": "Provförsök",
        "users.quiz_avg": "Medelresultat, prov",
        "users.activity": "Aktiviteter",
        "users.first_seen": "Första aktivitet",
        "users.last_seen": "Senaste aktivitet",
        "users.intro": (
            "En rad per person. Kurser räknar de olika kurser personen har genomfört eller har intyg för; "
            "provresultat anges i procent av maxpoängen."
        ),
        "analytics.title": "Analyssammanfattning",
        "analytics.subtitle": "Nyckeltal för {organisation}",
        "analytics.headline": "Nyckeltal",
        "analytics.people": "Personer",
        "analytics.courses": "Kurser",
        "analytics.completions": "Genomföranden",
        "analytics.certificates": "Utfärdade intyg",
        "analytics.avg_completion": "Medelresultat, kurser",
        "analytics.quiz_attempts": "Provförsök",
        "analytics.avg_quiz": "Medelresultat, prov",
        "analytics.activity": "Aktiviteter",
        "analytics.feedback": "Enkätsvar",
        "analytics.period": "Registrerad aktivitet",
        "analytics.completions_chart": "Genomföranden per månad",
        "analytics.quiz_chart": "Fördelning av provresultat",
        "analytics.quiz_axis": "Resultat (% av maxpoäng)",
        "analytics.count_axis": "Antal",
        "analytics.month": "Månad",
        "analytics.attempts": "Försök",
        "analytics.top_courses": "Genomföranden per kurs",
        "analytics.course": "Kurs",
        "analytics.no_data": "Inga uppgifter registrerade.",
        "feedback.title": "Kursutvärderingar och enkätsvar",
        "feedback.subtitle": "Svar per fråga",
        "feedback.question": "Fråga {n}",
        "feedback.responses": "{answers} svar, {blank} obesvarade",
        "feedback.answer": "Svar",
        "feedback.count": "Antal",
        "feedback.none": "Inga enkätsvar finns registrerade.",
        "summary.title": "Exportsammanfattning",
        "summary.subtitle": "Vad paketet innehåller och vad som händer sedan",
        "summary.organisation": "Organisation",
        "summary.customer": "Kundnyckel",
        "summary.exported": "Exporterad",
        "summary.deadline": "Exportfönstret stänger",
        "summary.deletion": "Uppgifterna raderas från plattformen",
        "summary.no_notice": "Ingen uppsägning är registrerad",
        "summary.formats": "Format i paketet",
        "summary.format": "Format",
        "summary.folder": "Mapp",
        "summary.contents": "Innehåll",
        "summary.tables": "Tabeller och antal rader",
        "summary.table": "Tabell",
        "summary.category": "Kategori",
        "summary.rows": "Rader",
        "summary.total": "Totalt",
        "summary.media": "Mediefiler",
        "summary.media_line": "{files} filer, totalt {size}, kopierade byte för byte i originalformat.",
        "summary.checksums": "Kontrollsummor",
        "summary.checksums_text": (
            "Varje fil i paketet finns med sin SHA-256-kontrollsumma i manifest-sha256.txt överst i paketet "
            "(en BagIt-påse, RFC 8493). Kontrollera paketet med `learnexit verify SÖKVÄG` eller något "
            "BagIt-verktyg; media/index.csv anger kontrollsumman för varje mediefil bredvid originalnamnet."
        ),
        "summary.after": "Vad som händer efter exportfönstret",
        "summary.after_text": (
            "Ni kan begära nya exporter till och med {deadline}. Från och med {deletion} raderas era "
            "uppgifter från plattformen, och ni får ett raderingsintyg."
        ),
        "summary.after_nodeadline": (
            "Ingen uppsägning är registrerad, så ingen radering är planerad. Era uppgifter finns kvar på "
            "plattformen enligt ert avtal."
        ),
        "summary.retained": "{table}: sparas till och med {until} ({basis}) och raderas sedan.",
        "summary.notes": "Anmärkningar",
        "fmt.csv": "En CSV-fil per tabell (UTF-8, rubrikrad)",
        "fmt.xlsx": "En Excel-arbetsbok, ett blad per tabell",
        "fmt.json": "JSON per tabell och ett sammanhängande dokument per organisation",
        "fmt.xml": "Ett XML-dokument med sitt XML-schema",
        "fmt.pdf": "Intyg och rapporter som PDF",
        "fmt.docx": "Intyg och rapporter som Word-dokument",
        "fmt.media": "Uppladdade filer i originalformat",
        "fmt.sql": "SQL-skript som återskapar tabeller och rader",
        "letter.title": "Bekräftelse av er uppsägning",
        "letter.to": "Till",
        "letter.date": "Datum",
        "letter.reference": "Vår referens",
        "letter.greeting": "Hej!",
        "letter.received": "Vi bekräftar att vi tog emot er skriftliga uppsägning den {received}.",
        "letter.timely": (
            "Uppsägningen kom in {days} dagar före slutet av den pågående avtalsperioden den {period_end}. "
            "Avtalet kräver {notice_days} dagars uppsägningstid, så uppsägningen är i tid och avtalet upphör "
            "när perioden tar slut."
        ),
        "letter.late": (
            "Uppsägningen kom in {days} dagar före slutet av den pågående avtalsperioden den {period_end}. "
            "Avtalet kräver minst {notice_days} dagars uppsägningstid, så uppsägningen kom in för sent: "
            "avtalet löper en period till och upphör när nästa period tar slut."
        ),
        "letter.late_after": (
            "Uppsägningen kom in efter avtalsperioden som slutade den {period_end} och gäller därför den "
            "pågående perioden."
        ),
        "letter.dates": "Datum som följer av uppsägningen",
        "letter.d_received": "Uppsägning mottagen",
        "letter.d_status": "Uppsägning",
        "letter.d_timely": "I tid",
        "letter.d_late": "För sent (mindre än {notice_days} dagar före periodens slut)",
        "letter.d_termination": "Avtalet upphör (sista dag med tjänsten)",
        "letter.d_deadline": "Sista dag att begära export",
        "letter.d_deletion": "Era uppgifter raderas den",
        "letter.service": "Tjänsten är tillgänglig för er till och med {termination}.",
        "letter.deletion": (
            "Den {deletion} (från kl. 00.00, {timezone}) raderar vi alla era uppgifter från plattformen, "
            "även uppladdade filer."
        ),
        "letter.retained_intro": "Enligt lag sparar vi vissa uppgifter längre och raderar dem därefter:",
        "letter.retained": "{table}: sparas i {duration} efter att avtalet upphört ({basis}).",
        "letter.request": "Det här kan ni begära",
        "letter.req_export": "En fullständig export av era uppgifter ({formats}), så ofta ni vill, till och med {deadline}.",
        "letter.req_lang": "Rapporter och intyg på svenska eller engelska.",
        "letter.req_early": (
            "Tidigare radering: när ni har kontrollerat exporten kan ni bekräfta överlämningen och avstå från "
            "resten av exportfönstret. Uppgifterna raderas då tidigast dagen efter att avtalet upphört."
        ),
        "letter.req_withdraw": "Vill ni återkalla uppsägningen: kontakta oss före {termination}.",
        "letter.req_certificate": (
            "Ett raderingsintyg efter raderingen, som anger vad som raderades och vad som sparas enligt lag."
        ),
        "letter.closing": "Hör gärna av er om något i brevet inte stämmer med er uppfattning.",
        "letter.regards": "Med vänliga hälsningar",
        "deletion.title": "Raderingsintyg",
        "deletion.title_addendum": "Tillägg till raderingsintyget",
        "deletion.intro_addendum": (
            "{vendor} intygar att uppgifter om {name} som enligt ett tidigare raderingsintyg (anges "
            "nedan) hade raderats återfanns i plattformen (till exempel efter att en säkerhetskopia "
            "återställts), och att de har raderats på nytt enligt nedan och kontrollerats."
        ),
        "deletion.exports_addendum": "Exportpaketen anges i det intyg som detta tillägg kompletterar.",
        "deletion.kind_reapply": "Raderade uppgifter som återfanns, raderade på nytt",
        "deletion.addendum_to": "Tillägg till",
        "deletion.addendum_cert": "intyget för radering #{id}, {name}",
        "deletion.addendum_hash": "Det intyget (SHA-256)",
        "deletion.subtitle": "{name} ({customer}), radering #{purge_id}",
        "deletion.issued": "Utfärdat {date} av {vendor}",
        "deletion.intro": (
            "{vendor} intygar att de uppgifter som lagrats för {name} i lärplattformen har raderats "
            "enligt nedan och att raderingen har kontrollerats i efterhand."
        ),
        "deletion.intro_retention": (
            "{vendor} intygar att de uppgifter som enligt lag behölls för {name} efter den första "
            "raderingen nu har raderats enligt nedan och att raderingen har kontrollerats."
        ),
        "deletion.facts": "Sammanfattning",
        "deletion.customer": "Kund",
        "deletion.customer_key": "Kundnyckel",
        "deletion.termination": "Avtalet upphörde",
        "deletion.kind": "Radering",
        "deletion.kind_full": "Alla kundens uppgifter",
        "deletion.kind_retention": "Uppgifter som behölls enligt lag och nu ska raderas",
        "deletion.purge_id": "Raderingsnummer",
        "deletion.started": "Påbörjad",
        "deletion.finished": "Slutförd",
        "deletion.forced": "Utförd före förfallodagen",
        "deletion.forced_where": "Ja, på begäran; skälet finns registrerat för radering #{id}.",
        "deletion.exports": "Exporter som lämnats till kunden",
        "deletion.exports_none": "Ingen leverans av ett exportpaket bekräftades.",
        "deletion.export_done": "Slutförd",
        "deletion.export_package": "Paket",
        "deletion.export_hash": "Manifest (SHA-256)",
        "deletion.export_status": "Vår kopia",
        "deletion.export_removed": "förstörd",
        "deletion.export_kept": "inte förstörd",
        "deletion.vendor_copies": "Leverantörens kopior förstörda",
        "deletion.vendor_copies_text": (
            "Exportpaket som vi skapade men som inte lämnades till kunden (tidigare eller upprepade "
            "exporter) fanns bara hos oss:"
        ),
        "deletion.deleted": "Raderat",
        "deletion.table": "Tabell",
        "deletion.rows": "Rader",
        "deletion.total": "Totalt",
        "deletion.none_in": "Genomsökta också, utan några av kundens rader ({n} tabeller): {tables}.",
        "deletion.media": "Raderade mediefiler: {n}.",
        "deletion.media_kept": "Mediefiler som behölls eftersom andra uppgifter använder dem: {n}.",
        "deletion.retained": "Behålls enligt lag",
        "deletion.retained_none": "Ingenting behålls.",
        "deletion.until": "Behålls till och med",
        "deletion.basis": "Rättslig grund",
        "deletion.minimised": "Hänvisas till av bevarade poster; behålls utan {cols}.",
        "deletion.minimised_none": "Hänvisas till av bevarade poster.",
        "deletion.shared": "Behålls eftersom andra kunder använder dem",
        "deletion.shared_text": (
            "Dessa poster hör även till andra kunder på plattformen. Alla kopplingar mellan dem och "
            "{name} har raderats; posterna finns kvar för de andra kunderna."
        ),
        "deletion.contested": "Behålls eftersom ägaren är omtvistad",
        "deletion.contested_text": (
            "Dessa poster hänvisar både till {name} och till en annan kund på plattformen. De har "
            "varken exporterats eller raderats; de finns kvar tills leverantören har avgjort vems de är."
        ),
        "deletion.verification": "Kontroll",
        "deletion.verified": (
            "Godkänd. Efter raderingen genomsöktes plattformens databas på nytt efter kundens "
            "uppgifter: inga poster finns kvar utöver det som anges som behållet ovan, och inga "
            "raderade mediefiler finns kvar."
        ),
        "deletion.backups": "Kopior utanför plattformen",
        "deletion.audit": "Granskningslogg",
        "deletion.audit_text": (
            "Varje steg i raderingen finns i en hashkedjad granskningslogg. Kedjans senaste "
            "hashvärde när raderingen kontrollerades:"
        ),
        "duration.Y": "{n} år|{n} år",
        "duration.M": "{n} månad|{n} månader",
        "duration.W": "{n} vecka|{n} veckor",
        "duration.D": "{n} dag|{n} dagar",
        "and": "och",
        "fmtname.csv": "CSV",
        "fmtname.xlsx": "Excel",
        "fmtname.json": "JSON",
        "fmtname.xml": "XML",
        "fmtname.pdf": "PDF",
        "fmtname.docx": "Word",
        "fmtname.media": "era mediefiler i originalformat",
        "fmtname.sql": "SQL",
    },
}


def check_lang(lang: str) -> str:
    if lang not in LANGS:
        raise ValueError(f"unsupported language {lang!r} (known: {', '.join(LANGS)})")
    return lang


def text(lang: str, key: str, **values: object) -> str:
    """The text for ``key`` in ``lang`` with ``{placeholders}`` filled in."""
    template = STRINGS[check_lang(lang)][key]
    return template.format(**values) if values else template


def plural(lang: str, key: str, n: int) -> str:
    """``"{n} year|{n} years"`` style entries: singular for 1, plural otherwise."""
    one, many = STRINGS[check_lang(lang)][key].split("|")
    return (one if n == 1 else many).format(n=format_int(n, lang))


def format_date(value: date, lang: str) -> str:
    """``29 November 2026`` (en) / ``29 november 2026`` (sv)."""
    return f"{value.day} {_MONTHS[check_lang(lang)][value.month - 1]} {value.year}"


def format_date_short(value: date, lang: str) -> str:
    """``3 Mar 2024`` (en) / ``3 mar 2024`` (sv): for narrow table columns."""
    return f"{value.day} {_MONTHS_SHORT[check_lang(lang)][value.month - 1]} {value.year}"


def format_month(year: int, month: int, lang: str) -> str:
    """``Mar 2025`` (en) / ``mar 2025`` (sv): the short form used on chart axes."""
    return f"{_MONTHS_SHORT[check_lang(lang)][month - 1]} {year}"


def zone_label(value: datetime) -> str:
    """The zone of an aware ``value`` as readers know it: ``CET``, ``CEST``, ``UTC``, or
    ``UTC+03:00`` where the zone has no letters of its own."""
    name = value.tzname() or ""
    if name.isalpha():
        return name
    offset = value.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def format_instant(value: datetime, timezone: str, lang: str) -> str:
    """An instant in ``timezone`` with its zone: ``1 May 2027, 00:04 CEST`` / ``1 maj 2027 kl. 00.04 CEST``."""
    local = local_datetime(value, timezone)
    return f"{format_time(local, lang)} {zone_label(local)}"


def format_time(value: datetime, lang: str) -> str:
    """``29 November 2026, 10:15`` (en) / ``29 november 2026 kl. 10.15`` (sv)."""
    if lang == "sv":
        return f"{format_date(value.date(), lang)} kl. {value.hour:02d}.{value.minute:02d}"
    return f"{format_date(value.date(), lang)}, {value.hour:02d}:{value.minute:02d}"


_GROUP = {"en": ",", "sv": "\u00a0"}  # Swedish groups thousands with a (no-break) space
_DECIMAL = {"en": ".", "sv": ","}


def format_int(n: int, lang: str) -> str:
    return f"{n:,}".replace(",", _GROUP[check_lang(lang)])


def format_number(value: float | Decimal, lang: str, decimals: int = 1) -> str:
    """A decimal number with the language's separators: ``1,234.5`` / ``1 234,5``."""
    raw = f"{float(value):,.{decimals}f}"
    return raw.replace(",", "\x00").replace(".", _DECIMAL[check_lang(lang)]).replace("\x00", _GROUP[lang])


def format_percent(value: float, lang: str, decimals: int = 1) -> str:
    """``85.5%`` (en) / ``85,5 %`` (sv)."""
    number = format_number(value, lang, decimals)
    return f"{number}\u00a0%" if lang == "sv" else f"{number}%"


def format_bytes(n: int, lang: str) -> str:
    """``1.5 MB`` / ``1,5 MB`` (decimal units, as file managers show them)."""
    units = ("B", "kB", "MB", "GB", "TB")
    value = float(n)
    for unit in units:
        if value < 1000 or unit == units[-1]:
            if unit == "B":
                return f"{format_int(int(value), lang)} B"
            return f"{format_number(value, lang, 1)} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


_DURATION_PART = re.compile(r"(\d+)([YMWD])")


def join_list(items: list[str], lang: str) -> str:
    """``a, b and c`` / ``a, b och c``."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {text(lang, 'and')} " + items[-1]


def format_duration(iso: str, lang: str) -> str:
    """``P7Y`` → ``7 years`` / ``7 år``; ``P1Y6M`` → ``1 year and 6 months``."""
    parts = [plural(lang, f"duration.{unit}", int(n)) for n, unit in _DURATION_PART.findall(iso)]
    return join_list(parts, lang) if parts else iso


def local_date(value: object, timezone: str) -> date | None:
    """The calendar date of a stored value in the contract's time zone.

    Naive datetimes are UTC (design §1: instants are stored in UTC); dates are taken as
    they are; numbers are Unix seconds (Moodle's ``timecreated``); ISO strings are parsed.
    Anything else gives None: the caller shows the raw value rather than a guess.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(ZoneInfo(timezone)).date()
    if isinstance(value, date):
        return value
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), UTC).astimezone(ZoneInfo(timezone)).date()
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            return local_date(datetime.fromisoformat(value.strip()), timezone)
        except ValueError:
            return None
    return None


def local_datetime(value: datetime, timezone: str) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(timezone))


# Characters after "z" in code-point order stand for the letters Swedish puts after z.
_SV_LAST = {"å": "{", "ä": "|", "æ": "|", "ö": "}", "ø": "}"}


def sort_key(value: str, lang: str) -> str:
    """A key that sorts names as a reader of ``lang`` expects: case and accents ignored,
    and in Swedish å, ä, ö after z."""
    lowered = value.casefold()
    if lang == "sv":
        lowered = "".join(_SV_LAST.get(ch, ch) for ch in lowered)
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))
