"""Certificates and reports (PDF and Word) and the notice letter, on the example LMS.

Every document kind is rendered for acme in English and Swedish; the PDFs are read back
with pypdf and the .docx files with python-docx, and the expected names, certificate
numbers and dates are looked up with plain SQL, independently of the exporter.  No
other customer's organisation or people may appear in any document.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import shutil
import sqlite3
import subprocess
import time
import unicodedata
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import docx
import pypdf
import pytest
from conftest import needs_tool
from helpers import copy_example

from learnexit.config import Settings, load_settings
from learnexit.contract import compute_timeline
from learnexit.documents import i18n
from learnexit.documents.letter import write_notice_letter
from learnexit.documents.model import Certificate
from learnexit.documents.render import render_file
from learnexit.export.run import run_export
from learnexit.exporters.base import ColumnSpec, ExportJob, ExportOptions, TableSpec, column_kind, load_builtin
from learnexit.ledger.store import Ledger
from learnexit.offboarding.notice import record_notice
from learnexit.package.verify import verify_package
from learnexit.source import Source

STARTED = datetime(2026, 11, 29, 10, 15, tzinfo=UTC)
DEADLINE = date(2027, 4, 30)
TZ = ZoneInfo("Europe/Stockholm")


# --------------------------------------------------------------------------- harness


@contextlib.contextmanager
def export_job(
    settings: Settings,
    customer: str,
    data_dir: Path,
    *,
    formats: tuple[str, ...],
    lang: str = "en",
    allow_missing_media: bool = False,
) -> Iterator[ExportJob]:
    """An ExportJob on a snapshot, as run_export builds it (without the package around it)."""
    with Source(settings, customer) as src, src.snapshot() as conn:
        tables = []
        for name in src.owned_tables():
            table = src.table(name)
            columns = tuple(
                ColumnSpec(c.name, column_kind(c), bool(c.nullable), bool(c.primary_key), c.type) for c in table.columns
            )
            pk = tuple(c.name for c in table.primary_key.columns)
            tables.append(TableSpec(name, columns, pk, (), settings.rule(name).category, table))
        job = ExportJob(
            settings=settings,
            source=src,
            conn=conn,
            customer=customer,
            customer_name=src.customer_name(),
            data_dir=data_dir,
            tables=tables,
            options=ExportOptions(formats=formats, lang=lang, allow_missing_media=allow_missing_media),
            started_at=STARTED,
            export_deadline=DEADLINE,
        )
        job.counts = {t.name: src.count(conn, t.name) for t in tables}
        yield job


def run_after(settings: Settings, customer: str, data_dir: Path, formats: tuple[str, ...], **kw: object) -> ExportJob:
    """Run the ``after`` steps of ``formats`` in registry order; return the finished job."""
    registry = load_builtin()
    with export_job(settings, customer, data_dir, formats=formats, **kw) as job:  # type: ignore[arg-type]
        for fmt in sorted(formats, key=lambda f: registry[f].order):
            registry[fmt].after(job)
        return job


# --------------------------------------------------------------------------- reading back


def squash(text: str) -> str:
    """No whitespace at all: line wrapping in a PDF must not hide a name."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFC", text))


def spaced(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def pdf_text(path: Path) -> str:
    raw = path.read_bytes()
    if b"/WP-Encod" in raw:
        # WeasyPrint re-encodes a font when a glyph is missing (the example's Chinese names
        # without a CJK font on the machine); pypdf cannot read that encoding, poppler can.
        needs_tool("pdftotext", package="poppler-utils", why=f"{path.name} has glyphs without a font")
        return subprocess.run(
            ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
    return "\n".join(page.extract_text() or "" for page in pypdf.PdfReader(path).pages)


def docx_text(path: Path) -> str:
    document = docx.Document(str(path))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts += [cell.text for cell in row.cells]
    for section in document.sections:
        parts += [p.text for p in section.header.paragraphs] + [p.text for p in section.footer.paragraphs]
    return "\n".join(parts)


@functools.cache
def text_of(path: Path) -> str:
    return pdf_text(path) if path.suffix == ".pdf" else docx_text(path)


def contains(haystack: str, needle: str) -> bool:
    return squash(needle) in squash(haystack)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory, example_template: Path) -> Path:
    return copy_example(example_template, tmp_path_factory.mktemp("example") / "ex")


@pytest.fixture(scope="module")
def settings(example: Path) -> Settings:
    return load_settings(example / "learnexit.toml")


@pytest.fixture(scope="module")
def truth(example: Path) -> dict[str, object]:
    """What the documents must show, read with plain SQL."""
    db = sqlite3.connect(example / "lms.db")
    org = {slug: oid for oid, slug in db.execute("SELECT id, slug FROM organisations")}

    def people_rows(oid: int) -> list[tuple[int, str]]:
        return db.execute(
            "SELECT id, name FROM users WHERE id IN (SELECT user_id FROM logins WHERE organisation_id = ? "
            "UNION SELECT user_id FROM memberships WHERE organisation_id = ?)",
            (oid, oid),
        ).fetchall()

    def people(oid: int) -> set[str]:
        return {name for _, name in people_rows(oid)}

    certificates = db.execute(
        "SELECT c.code, u.name, k.title, c.issued_at, k.id FROM certificates c JOIN users u ON u.id = c.user_id "
        "JOIN courses k ON k.id = c.course_id WHERE k.organisation_id = ? ORDER BY c.code",
        (org["acme"],),
    ).fetchall()
    courses = db.execute("SELECT id, title FROM courses WHERE organisation_id = ?", (org["acme"],)).fetchall()
    completions = db.execute(
        "SELECT k.id, u.name, c.completed_at FROM completions c JOIN users u ON u.id = c.user_id "
        "JOIN courses k ON k.id = c.course_id WHERE k.organisation_id = ?",
        (org["acme"],),
    ).fetchall()
    questions = {
        q
        for (q,) in db.execute(
            "SELECT DISTINCT a.question FROM survey_answers a JOIN surveys s ON s.id = a.survey_id "
            "JOIN courses k ON k.id = s.course_id WHERE k.organisation_id = ?",
            (org["acme"],),
        )
    }
    acme_people = people(org["acme"])
    people_count = len(people_rows(org["acme"]))
    others = set()
    for slug in ("globex", "initech"):
        others |= people(org[slug]) - acme_people
    other_orgs = [n for (n,) in db.execute("SELECT name FROM organisations WHERE slug != 'acme'")]
    db.close()
    return {
        "certificates": certificates,
        "courses": courses,
        "completions": completions,
        "people": acme_people,
        "people_count": people_count,
        "other_people": others,
        "other_orgs": other_orgs,
        "questions": questions,
    }


def local_day(stored: str) -> date:
    return datetime.fromisoformat(stored).replace(tzinfo=UTC).astimezone(TZ).date()


SV_CERTIFICATES = 3  # Swedish renders a few certificates; English renders all of them


@dataclasses.dataclass
class Rendered:
    lang: str
    docs: Path  # data/documents
    codes: set[str]  # the certificates acme has in this run's database
    counts: dict[str, int]
    notes: list[str]
    problems: list[str]


@pytest.fixture(scope="module", params=["en", "sv"])
def rendered(request: pytest.FixtureRequest, example: Path, truth, tmp_path_factory: pytest.TempPathFactory):
    """All of acme's documents, PDF and Word, in one language.

    English runs the exporters' ``after`` steps directly; Swedish goes through the real
    ``run_export`` (with a recorded notice, media too) and checks the package verifies.
    """
    lang = request.param
    codes = [code for code, *_ in truth["certificates"]]
    if lang == "en":
        data = tmp_path_factory.mktemp("docs-en")
        job = run_after(load_settings(example / "learnexit.toml"), "acme", data, ("pdf", "docx"), lang=lang)
        return Rendered(lang, data / "documents", set(codes), job.counts, job.notes, job.problems)
    source = tmp_path_factory.mktemp("example-sv")
    for name in ("lms.db", "learnexit.toml", "media"):
        (shutil.copytree if name == "media" else shutil.copy2)(example / name, source / name)
    codes = codes[:SV_CERTIFICATES]
    with contextlib.closing(sqlite3.connect(source / "lms.db")) as db, db:
        db.execute(f"DELETE FROM certificates WHERE code NOT IN ({','.join('?' * len(codes))})", codes)
    settings = load_settings(source / "learnexit.toml")
    with Ledger(settings.state_url) as ledger:
        record_notice(settings, ledger, "acme", date(2026, 11, 20), now=STARTED)
    result = run_export(
        settings, "acme", formats=["media", "pdf", "docx"], out=source / "exports", lang="sv", now=STARTED
    )
    verified = verify_package(result.path)
    assert verified.valid, verified.problems
    info = result.as_dict()
    return Rendered(
        lang, Path(info["path"]) / "data" / "documents", set(codes), info["tables"], info["notes"], info["problems"]
    )


# --------------------------------------------------------------------------- tests


def test_every_document_kind_in_both_formats(rendered, truth) -> None:
    docs, codes = rendered.docs, rendered.codes
    for ext in ("pdf", "docx"):
        assert {p.stem for p in (docs / "certificates").glob(f"*.{ext}")} == codes
        assert len(list((docs / "reports" / "completions").glob(f"*.{ext}"))) == len(truth["courses"])
        for name in ("reports/user-statistics", "reports/analytics-summary", "reports/feedback", "export-summary"):
            assert (docs / f"{name}.{ext}").stat().st_size > 1000, name
    assert rendered.problems == []
    assert not [n for n in rendered.notes if n.startswith(("pdf:", "docx:"))]
    modes = {p.stat().st_mode & 0o777 for p in docs.rglob("*") if p.is_file()}
    assert modes == {0o600}


def test_all_certificates_name_person_course_date_and_number(rendered, truth) -> None:
    lang, docs, codes = rendered.lang, rendered.docs, rendered.codes
    title = i18n.text(lang, "certificate.title")
    if lang == "en":
        assert len(codes) == len(truth["certificates"])  # every certificate acme has
    for code, person, course, issued_at, _ in truth["certificates"]:
        if code not in codes:
            continue
        issued = i18n.format_date(local_day(issued_at), lang)
        for ext in ("pdf", "docx"):
            text = text_of(docs / "certificates" / f"{code}.{ext}")
            for fact in (title, person, course, issued, code, "Acme Lärande AB"):
                assert contains(text, fact), (code, ext, fact)


def test_completion_report_lists_the_course_completions(rendered, truth) -> None:
    lang, docs, codes = rendered.lang, rendered.docs, rendered.codes
    course_id, title = truth["courses"][0]
    rows = [(name, at) for cid, name, at in truth["completions"] if cid == course_id]
    assert rows
    course_codes = [code for code, _, _, _, cid in truth["certificates"] if cid == course_id and code in codes]
    for ext in ("pdf", "docx"):
        [path] = (docs / "reports" / "completions").glob(f"{course_id}-*.{ext}")
        text = text_of(path)
        assert contains(text, title) and contains(text, i18n.text(lang, "completion.title"))
        for name, at in rows:
            assert contains(text, name) and contains(text, i18n.format_date(local_day(at), lang)), (ext, name)
        for code in course_codes:
            assert contains(text, code)
        assert contains(text, f"{i18n.text(lang, 'completion.completed')}{len(rows)}")


def test_user_statistics_and_analytics(rendered, truth) -> None:
    lang, docs, codes = rendered.lang, rendered.docs, rendered.codes
    for ext in ("pdf", "docx"):
        users = text_of(docs / "reports" / f"user-statistics.{ext}")
        for person in truth["people"]:
            assert contains(users, person), (ext, person)
        analytics = text_of(docs / "reports" / f"analytics-summary.{ext}")
        n = i18n.format_int
        for label, value in (
            ("analytics.people", truth["people_count"]),
            ("analytics.courses", len(truth["courses"])),
            ("analytics.completions", len(truth["completions"])),
            ("analytics.certificates", len(codes)),
        ):
            # the number, then its label (a card in the PDF, a cell pair in Word)
            assert contains(analytics, f"{n(value, lang)}{i18n.text(lang, label)}"), (ext, label)
        assert contains(analytics, i18n.text(lang, "analytics.completions_chart"))
        assert contains(analytics, i18n.text(lang, "analytics.quiz_chart"))
        first = min(local_day(at) for _, _, at in truth["completions"])
        assert contains(analytics, i18n.format_month(first.year, first.month, lang))
    assert b"<svg" not in (docs / "reports" / "analytics-summary.pdf").read_bytes()  # drawn, not embedded as text


def test_feedback_report_has_every_question(rendered, truth) -> None:
    docs = rendered.docs
    for ext in ("pdf", "docx"):
        text = text_of(docs / "reports" / f"feedback.{ext}")
        for question in truth["questions"]:
            assert contains(text, question), (ext, question)
        assert contains(text, "Mycket nöjd!")


def test_export_summary_states_deadline_counts_and_retention(rendered) -> None:
    lang, docs = rendered.lang, rendered.docs
    for ext in ("pdf", "docx"):
        text = text_of(docs / f"export-summary.{ext}")
        assert contains(text, i18n.format_date(DEADLINE, lang))
        assert contains(text, i18n.format_date(date(2027, 5, 1), lang))  # deletion: the day after
        rows = i18n.format_int(rendered.counts["certificates"], lang)
        assert contains(text, f"certificates—{rows}")  # table, category, rows
        assert contains(text, "manifest-sha256.txt")
        assert contains(text, "Bokföringslagen (1999:1078) 7 kap. 2 §")


def test_no_other_customer_appears_anywhere(rendered, truth) -> None:
    docs = rendered.docs
    assert truth["other_people"] and truth["other_orgs"]
    for path in sorted(docs.rglob("*")):
        if path.suffix not in (".pdf", ".docx"):
            continue
        text = spaced(text_of(path))
        for name in list(truth["other_orgs"]) + sorted(truth["other_people"]):
            assert spaced(name) not in text, (path.name, name)
        assert "Globex" not in text and "Initech" not in text and "INITECH" not in text, path.name


def test_pdf_and_word_say_the_same(rendered) -> None:
    docs = rendered.docs
    for name in ("reports/feedback", "export-summary", "reports/user-statistics", "reports/analytics-summary"):
        pdf = squash(pdf_text(docs / f"{name}.pdf"))
        word = docx.Document(str(docs / f"{name}.docx"))
        body = [p.text for p in word.paragraphs]
        body += [cell.text for table in word.tables for row in table.rows for cell in row.cells]
        for text in body:
            assert squash(text) in pdf, (name, text)


def test_missing_roles_skip_documents_with_a_note(settings, tmp_path) -> None:
    roles = {k: v for k, v in settings.roles.items() if k not in ("certificates", "feedback", "completions")}
    partial = dataclasses.replace(settings, roles=roles)
    job = run_after(partial, "acme", tmp_path, ("pdf",))
    docs = tmp_path / "documents"
    assert not (docs / "certificates").exists()
    assert not (docs / "reports" / "feedback.pdf").exists()
    assert (docs / "reports" / "analytics-summary.pdf").exists()
    assert "pdf: certificates skipped: [roles.certificates] is not configured" in job.notes
    assert "pdf: feedback report skipped: [roles.feedback] is not configured" in job.notes
    summary = pdf_text(docs / "export-summary.pdf")
    assert contains(summary, "Certificates skipped: [roles.certificates] is not configured.")  # a sentence

    bare = dataclasses.replace(settings, roles={})
    job = run_after(bare, "acme", tmp_path / "bare", ("docx",))
    assert sorted(p.name for p in (tmp_path / "bare" / "documents").rglob("*.docx")) == ["export-summary.docx"]
    assert any("analytics summary skipped" in n for n in job.notes)


def test_customer_data_is_text_never_markup(tmp_path) -> None:
    hostile = '<img src="file:///etc/passwd"><b>Eve</b> & "Mallory"'
    cert = Certificate(
        lang="en",
        organisation="Org <script>",
        vendor="V",
        person=hostile,
        course="C\x01ourse",
        issued="1 May 2026",
        number="N-1",
        reproduced="r",
    )
    render_file(cert, "pdf", tmp_path / "c.pdf")
    render_file(cert, "docx", tmp_path / "c.docx")
    assert contains(pdf_text(tmp_path / "c.pdf"), hostile)
    assert contains(docx_text(tmp_path / "c.docx"), hostile)


def _certificate(lang: str = "en", **values: str | None) -> Certificate:
    fields: dict[str, str | None] = {
        "organisation": "Acme Lärande AB",
        "vendor": "Lärplattformen AB",
        "person": "Åsa Öberg",
        "course": "Första hjälpen",
        "issued": "3 November 2026",
        "number": "CERT-000042",
        "reproduced": "Reproduced by Lärplattformen AB from its records on 29 November 2026.",
    }
    fields.update(values)
    return Certificate(lang=lang, **fields)  # type: ignore[arg-type]


# Every kind of line the reused certificate layout must set exactly as a full layout
# would: (expected to take the reused layout, the certificate).
FAST_PATH_CASES = [
    (True, _certificate()),
    (True, _certificate("sv", score="92 %")),
    (True, _certificate(score="7/10", issued="—", number="—")),
    (True, _certificate("sv", person="Zoë 🚀 Lindqvist")),  # another font, another line height
    (True, _certificate(person="Anna 😀 Berg", course="Excel 🎉")),
    (True, _certificate(person="李小龙 (Bruce Lee)")),  # no CJK font: boxes, as in full
    (True, _certificate(person="שלום עליכם", course="دورة السلامة")),  # right to left
    (True, _certificate(person='Karl "Kalle" Anka <b>Jr.</b> & Co')),
    (True, _certificate(number="W" * 18)),  # nearly fills its cell
    (False, _certificate(course="A course name long enough that it has to wrap onto a second line, surely")),
    (False, _certificate(person="Two  spaces")),  # HTML collapses them
    (False, _certificate(person="Line\nbreak")),
    (False, _certificate(course="soft\u00adhyphen")),
    (False, _certificate(number="W" * 19)),  # wider than its cell
]


def test_reused_certificate_layout_gives_the_same_pdf_as_a_full_layout() -> None:
    from learnexit.documents.render import PdfRenderer

    fast, full = PdfRenderer(), PdfRenderer(fast_certificates=False)
    for reused, cert in FAST_PATH_CASES:
        assert (fast.fast_certificate(cert) is not None) is reused, cert
        assert fast.write(cert) == full.write(cert), cert
    # Lines of the same heights share a layout: another person with an emoji needs none.
    layouts = len(fast._layouts)
    for person in ("Bo 🎉 Ek", "Eva ✈ Ek 😀"):
        cert = _certificate("sv", person=person)
        assert fast.fast_certificate(cert) is not None
        assert fast.write(cert) == full.write(cert)
    assert len(fast._layouts) == layouts


def test_reused_certificate_layout_texts_and_page(tmp_path) -> None:
    first = _certificate(person="Siobhán O'Brien-Müller", course="Data protection for teachers")
    second = _certificate(person="Bo Ek", course="Arbetsmiljö i praktiken", number="CERT-9")
    for name, cert in (("a.pdf", first), ("b.pdf", second), ("c.pdf", first)):
        render_file(cert, "pdf", tmp_path / name)
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "c.pdf").read_bytes()
    for name, cert in (("a.pdf", first), ("b.pdf", second)):
        reader = pypdf.PdfReader(tmp_path / name)
        assert len(reader.pages) == 1
        box = reader.pages[0].mediabox
        assert round(float(box.width)) == 842 and round(float(box.height)) == 595  # A4 landscape
        text = pdf_text(tmp_path / name)
        for value in (cert.organisation, cert.person, cert.course, cert.issued, cert.number):
            assert contains(text, value), (name, value)
        assert (
            reader.metadata is not None
            and reader.metadata.title == f"{i18n.text('en', 'certificate.title')} – {cert.person}"
        )
    assert not contains(pdf_text(tmp_path / "b.pdf"), first.person)


def test_font_subsets_are_reused_unchanged() -> None:
    from learnexit.documents import font_cache, render

    renderer = render.PdfRenderer()
    cert = _certificate(person="Subset Cache-Test", course="Course ÆØÅ")
    font_cache.clear()
    once = renderer.write(cert)
    subsets, cleaned = font_cache.sizes()
    assert subsets and cleaned  # cached
    again = renderer.write(cert)
    assert font_cache.sizes() == (subsets, cleaned)  # (nothing new: all of it reused)
    font_cache.clear()
    fresh = renderer.write(cert)
    assert once == again == fresh


def test_variable_fonts_made_static_are_reused_unchanged() -> None:
    """Emoji and other scripts are drawn with the Noto variable fonts, which each PDF
    embeds as a static instance: reused from one document to the next, the bytes are
    those of instancing the font afresh, document by document."""
    from learnexit.documents import font_cache, render
    from learnexit.documents.model import Paragraph, Report

    def report(name: str) -> Report:
        return Report(
            lang="en", title="Report", subtitle=name, organisation=name, vendor="Vendor",
            generated="Generated 6 December 2026",
            blocks=(Paragraph(f"{name}: Åsa 🎓🚀✅ مرحبا שלום नमस्ते สวัสดี Ωμέγα Жанна → € ☃"),),
        )  # fmt: skip

    renderer = render.PdfRenderer()
    names = ["Acme 🎓", "Beta ✅", "Acme 🎓"]
    font_cache.clear()
    reused = [renderer.write(report(n)) for n in names]
    assert font_cache.sizes()[1] >= 3  # (DejaVu and at least two Noto fonts)
    fresh = []
    for n in names:
        font_cache.clear()
        fresh.append(renderer.write(report(n)))
    assert reused == fresh
    assert reused[0] == reused[2] != reused[1]


def test_notice_letter_in_both_languages(settings, tmp_path) -> None:
    now = datetime(2027, 1, 6, 9, 0, tzinfo=UTC)
    late = compute_timeline(date(2027, 1, 5), start=date(2024, 1, 31), term_months=12)
    timely = compute_timeline(date(2026, 11, 5), start=date(2024, 1, 31), term_months=12)
    for lang in ("en", "sv"):
        for timeline in (late, timely):
            paths = write_notice_letter(
                settings, "acme", "Acme Lärande AB", timeline, tmp_path / "letters", lang, now=now
            )
            assert [p.suffix for p in paths] == [".pdf", ".docx", ".txt"]
            assert {p.stat().st_mode & 0o777 for p in paths} == {0o600}
            for path in paths:
                text = path.read_text("utf-8") if path.suffix == ".txt" else text_of(path)
                d = lambda value: i18n.format_date(value, lang)  # noqa: B023, E731
                for fact in (
                    "Lärplattformen AB",
                    "Acme Lärande AB",
                    d(timeline.received),
                    d(timeline.termination_date),
                    d(timeline.export_deadline),
                    d(timeline.purge_due),
                    i18n.text(lang, "letter.title"),
                    "Bokföringslagen (1999:1078) 7 kap. 2 §",
                ):
                    assert contains(text, fact), (lang, path.name, fact)
                status = "letter.d_timely" if timeline.timely else "letter.d_late"
                assert contains(text, i18n.text(lang, status, notice_days=30)), (lang, path.name)
    assert late.termination_date == date(2028, 1, 30)  # late: the next period's end
    assert len(list((tmp_path / "letters").iterdir())) == 12
    assert not list((tmp_path / "letters").glob(".*"))  # no partial files left


def test_i18n_formats() -> None:
    assert i18n.format_date(date(2026, 3, 4), "en") == "4 March 2026"
    assert i18n.format_date(date(2026, 3, 4), "sv") == "4 mars 2026"
    assert i18n.format_int(1234567, "en") == "1,234,567"
    assert i18n.format_int(1234567, "sv") == "1\u00a0234\u00a0567"
    assert i18n.format_number(1234.56, "sv") == "1\u00a0234,6"
    assert i18n.format_percent(47.25, "en") == "47.2%" or i18n.format_percent(47.25, "en") == "47.3%"
    assert i18n.format_duration("P7Y", "sv") == "7 år"
    assert i18n.format_duration("P1Y6M", "en") == "1 year and 6 months"
    # Instants are UTC; the calendar date is the contract's: 23:30 UTC is the next day in Stockholm.
    assert i18n.local_date(datetime(2026, 6, 30, 23, 30), "Europe/Stockholm") == date(2026, 7, 1)
    assert i18n.local_date(1_700_000_000, "Europe/Stockholm") == date(2023, 11, 14)
    assert i18n.local_date("not a date", "Europe/Stockholm") is None
    names = ["Örjan", "Åsa", "Zoë", "Anna", "Ärla"]
    assert sorted(names, key=lambda n: i18n.sort_key(n, "sv")) == ["Anna", "Zoë", "Åsa", "Ärla", "Örjan"]
    assert sorted(names, key=lambda n: i18n.sort_key(n, "en")) == ["Anna", "Ärla", "Åsa", "Örjan", "Zoë"]


def test_activity_counted_from_a_read_pass_is_what_reading_it_again_gives(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a format in the same read pass that reads through the driver (Excel), the
    documents take the activity counts from that read (``ActivityWatcher``) instead of
    reading the table again: same documents.  A format C reads alone (CSV on SQLite) feeds
    no watcher: the documents read the two columns they need themselves."""
    settings = dataclasses.replace(
        load_settings(example / "learnexit.toml"), state_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    monkeypatch.setenv("LEARNEXIT_EXPORT_WORKERS", "1")
    monkeypatch.setenv("LEARNEXIT_NOW", "2026-11-29T10:15:00Z")
    read_by_documents: list[str] = []
    tuples = ExportJob.tuples

    def record(self: ExportJob, name: str, *args: object, **kwargs: object) -> Iterator[list[tuple[object, ...]]]:
        read_by_documents.append(name)
        return tuples(self, name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ExportJob, "tuples", record)
    alone = run_export(settings, "acme", formats=["pdf"], out=tmp_path / "alone")
    assert "activity_log" in read_by_documents
    read_by_documents.clear()
    shared = run_export(settings, "acme", formats=["xlsx", "pdf"], out=tmp_path / "shared")
    assert "activity_log" not in read_by_documents  # counted from the workbook's read
    run_export(settings, "acme", formats=["csv", "pdf"], out=tmp_path / "beside-c")
    assert "activity_log" in read_by_documents
    for name in ("user-statistics.pdf", "analytics-summary.pdf"):
        a = pdf_text(alone.path / "data" / "documents" / "reports" / name)
        b = pdf_text(shared.path / "data" / "documents" / "reports" / name)
        assert a == b, name


def test_the_heap_is_frozen_only_while_a_certificate_is_laid_out() -> None:
    """``frozen_heap``: the objects alive before the block are out of the collector's
    scans during it (a purge's big heap, walked again by every full collection while
    WeasyPrint makes its objects), and back in afterwards, also after an error."""
    import gc

    from learnexit.documents.render import frozen_heap

    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    try:
        with frozen_heap():
            raise ValueError("layout failed")
    except ValueError:
        pass
    assert gc.get_freeze_count() == 0


def test_the_font_patches_go_on_once_however_many_renderers() -> None:
    """Each renderer installs the steady and the caching ``Font.clean`` (and the caching
    ``Font.subset``): once in all, in that order, however many renderers a process makes
    (wrapped twice, the steady one waited for its own lock for ever)."""
    from weasyprint.pdf.fonts import Font

    from learnexit.documents import render

    for _ in range(3):
        render.PdfRenderer()
    chain = []
    func = Font.clean
    while func is not None:
        chain.append((getattr(func, "learnexit_cached", False), getattr(func, "learnexit_steady", False)))
        func = getattr(func, "__wrapped__", None)
    assert chain == [(True, False), (False, True), (False, False)]
    assert getattr(Font.subset, "learnexit_cached", False)
    assert not getattr(Font.subset.__wrapped__, "learnexit_cached", False)


def test_the_export_summary_is_rendered_by_the_documents_warm_workers(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Formats side by side: the export's own process renders the documents with its pool
    and keeps the workers (warm: renderer, style sheets) for the summary, which it makes
    once every format is done; the pool is shut down after it."""
    from learnexit.documents import render

    settings = dataclasses.replace(
        load_settings(example / "learnexit.toml"), state_url=f"sqlite:///{tmp_path / 'state.db'}"
    )
    monkeypatch.setenv("LEARNEXIT_EXPORT_WORKERS", "2")
    monkeypatch.setenv("LEARNEXIT_RENDER_WORKERS", "2")
    monkeypatch.setenv("LEARNEXIT_NOW", "2026-11-29T10:15:00Z")
    queues: list[tuple[object, object]] = []
    real_init, real_finish = render.RenderQueue.__init__, render.RenderQueue.finish

    def init(self: render.RenderQueue, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        queues.append((kwargs.get("pool"), self))

    pools: list[object] = []

    def finish(self: render.RenderQueue, keep_pool: bool = False) -> int:
        done = real_finish(self, keep_pool)
        if keep_pool:
            pools.append(self.pool)
        return done

    monkeypatch.setattr(render.RenderQueue, "__init__", init)
    monkeypatch.setattr(render.RenderQueue, "finish", finish)
    # (the export's process takes the documents, the costliest task: the worker waits a
    # moment before it takes one)
    from learnexit.export import parallel

    here, real_take = os.getpid(), parallel._take

    def take(counter: object, tasks: list[object]) -> object:
        if os.getpid() != here:
            time.sleep(0.5)
        return real_take(counter, tasks)  # type: ignore[arg-type]

    monkeypatch.setattr(parallel, "_take", take)
    result = run_export(settings, "acme", formats=["csv", "pdf", "docx"], out=tmp_path / "out")
    docs = result.path / "data" / "documents"
    assert (docs / "export-summary.pdf").read_bytes().startswith(b"%PDF")
    assert (docs / "export-summary.docx").stat().st_size > 0
    given = [pool for pool, _queue in queues if pool is not None]
    assert len(pools) == 1 and given == pools  # the documents' pool, handed to the summary's queue
    assert given[0]._shutdown_thread  # type: ignore[attr-defined]  # (and shut down after it)
