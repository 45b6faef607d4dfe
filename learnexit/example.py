"""The example LMS: a realistic, awkward, deterministic source to demo and test against.

``build_example(dest)`` writes a shared-tenancy LMS (``lms.db``, Canvas-flavoured: a
global ``users`` table tied to customers through ``logins`` and ``memberships``), its
media files, its ``learnexit.toml``, and a database-tenancy Moodle-flavoured example
under ``legacy/``.  Everything is derived from the seed: two builds with one seed hold
identical rows and byte-identical media files.

The data is deliberately unkind: å/ä/ö and emoji, quotes, commas, newlines, tabs,
backslashes, values starting with ``=``, NULLs, a 40 000-character text, one person in
two organisations, self-referencing sections, a shared catalogue and a key store with a
tenant column that is nevertheless shared.

``ExampleInfo.counts`` is the truth known by construction: each row is counted for its
customer at the moment it is generated, never by querying with ownership logic, so it
can be used to check the ownership discovery.

Instants are naive ``datetime`` values meaning UTC, in whole seconds (MariaDB's
``DATETIME`` keeps no fractions by default).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import itertools
import os
import random
import struct
import unicodedata
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

__all__ = [
    "CUSTOMERS",
    "DEFAULT_SEED",
    "LEGACY_CUSTOMERS",
    "LEGACY_METADATA",
    "OWNED_TABLES",
    "SHARED_METADATA",
    "SHARED_TABLES",
    "SHARED_USER_NAME",
    "ExampleInfo",
    "build_example",
    "build_legacy_example",
    "build_shared_schema",
    "populate_shared",
]

DEFAULT_SEED = 20261129
CUSTOMERS = ("acme", "globex", "initech")
LEGACY_CUSTOMERS = ("acme", "globex")
SHARED_USER_NAME = "Åsa Öberg-Nyström 🎓"
# Shared by all customers: never counted for one.
SHARED_TABLES = ("catalogue_items", "developer_keys")

_T = TypeVar("_T")
_BATCH = 5000
_DEFAULT_ACTIVITY_ROWS = 4000
# No data after this instant: the example's "now" is the end of November 2026.
_DATA_END = dt.datetime(2026, 11, 20, 17, 0, 0)
_DATA_START = dt.datetime(2024, 1, 8, 7, 0, 0)


@dataclass
class ExampleInfo:
    """What was generated: the customers and, per customer, the rows it owns per table."""

    customers: list[str]
    counts: dict[str, dict[str, int]]


# --------------------------------------------------------------------------- schema

# Long texts: MySQL's TEXT stops at 64 KiB, which a real course page easily exceeds.
_LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.Integer, primary_key=True)


def _org_fk(nullable: bool = False) -> sa.Column[Any]:
    return sa.Column("organisation_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=nullable)


def _user_fk(name: str = "user_id", nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.Integer, sa.ForeignKey("users.id"), nullable=nullable)


def _course_fk(nullable: bool = False) -> sa.Column[Any]:
    return sa.Column("course_id", sa.Integer, sa.ForeignKey("courses.id"), nullable=nullable)


def _define_shared_schema(md: sa.MetaData) -> sa.MetaData:
    sa.Table(
        "organisations",
        md,
        _id(),
        sa.Column("slug", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "contracts",
        md,
        _id(),
        _org_fk(),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("term_months", sa.Integer, nullable=False),
    )
    sa.Table(
        "users",
        md,
        _id(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("phone", sa.String(40), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "memberships",
        md,
        _id(),
        _org_fk(),
        _user_fk(),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("joined_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "logins",
        md,
        _id(),
        _org_fk(),
        _user_fk(),
        sa.Column("unique_id", sa.String(255), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("workflow_state", sa.String(32), nullable=False, default="active", server_default="active"),
        sa.Column("last_login_at", sa.DateTime, nullable=True),
    )
    sa.Table(
        "catalogue_items",
        md,
        _id(),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(255), nullable=False),
    )
    sa.Table(
        "developer_keys",
        md,
        _id(),
        _org_fk(),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "courses",
        md,
        _id(),
        _org_fk(),
        sa.Column("catalogue_item_id", sa.Integer, sa.ForeignKey("catalogue_items.id"), nullable=True),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("description", _LongText, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "course_sections",
        md,
        _id(),
        _course_fk(),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("course_sections.id"), nullable=True),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
    )
    sa.Table(
        "course_materials",
        md,
        _id(),
        _course_fk(),
        sa.Column("section_id", sa.Integer, sa.ForeignKey("course_sections.id"), nullable=True),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("body", _LongText, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
    )
    sa.Table(
        "enrolments",
        md,
        _id(),
        _course_fk(),
        _user_fk(),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("enrolled_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "completions",
        md,
        _id(),
        _course_fk(),
        _user_fk(),
        sa.Column("completed_at", sa.DateTime, nullable=False),
        sa.Column("score", sa.Numeric(5, 2), nullable=True),
    )
    sa.Table(
        "quizzes",
        md,
        _id(),
        _course_fk(),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("max_score", sa.Numeric(6, 2), nullable=False),
    )
    sa.Table(
        "quiz_attempts",
        md,
        _id(),
        sa.Column("quiz_id", sa.Integer, sa.ForeignKey("quizzes.id"), nullable=False),
        _user_fk(),
        sa.Column("score", sa.Numeric(6, 2), nullable=False),
        sa.Column("max_score", sa.Numeric(6, 2), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
    )
    sa.Table(
        "surveys",
        md,
        _id(),
        _course_fk(),
        sa.Column("title", sa.String(255), nullable=False),
    )
    sa.Table(
        "survey_questions",
        md,
        _id(),
        sa.Column("survey_id", sa.Integer, sa.ForeignKey("surveys.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
    )
    sa.Table(
        "survey_answers",
        md,
        _id(),
        sa.Column("survey_id", sa.Integer, sa.ForeignKey("surveys.id"), nullable=False),
        sa.Column("question_id", sa.Integer, sa.ForeignKey("survey_questions.id"), nullable=False),
        _user_fk(),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", _LongText, nullable=True),
        sa.Column("answered_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "feedback",
        md,
        _id(),
        _course_fk(),
        _user_fk(),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("comment", _LongText, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "certificates",
        md,
        _id(),
        _course_fk(),
        _user_fk(),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("issued_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "reports",
        md,
        _id(),
        _org_fk(),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("generated_at", sa.DateTime, nullable=False),
        sa.Column("content", _LongText, nullable=False),
    )
    sa.Table(
        "activity_log",
        md,
        _id(),
        _org_fk(),
        _user_fk(nullable=True),
        _course_fk(nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    sa.Table(
        "attachments",
        md,
        _id(),
        _course_fk(),
        _user_fk("uploaded_by", nullable=True),
        sa.Column("storage_path", sa.String(512), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("md5", sa.String(32), nullable=False),
    )
    sa.Table(
        "invoices",
        md,
        _id(),
        _org_fk(),
        sa.Column("number", sa.String(32), nullable=False, unique=True),
        sa.Column("issued_on", sa.Date, nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("paid", sa.Boolean, nullable=False),
        _user_fk("billing_contact_id", nullable=True),
    )
    sa.Table(
        "page_views",
        md,
        _id(),
        _org_fk(),
        _user_fk(nullable=True),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("viewed_at", sa.DateTime, nullable=False),
    )
    return md


SHARED_METADATA = _define_shared_schema(sa.MetaData())
OWNED_TABLES = tuple(t.name for t in SHARED_METADATA.sorted_tables if t.name not in SHARED_TABLES)


def build_shared_schema(engine: sa.Engine) -> None:
    """Create the shared-tenancy schema (all tables, foreign keys declared) on ``engine``."""
    SHARED_METADATA.create_all(engine)


# --------------------------------------------------------------------------- media


def _png(label: str, colour_seed: bytes, width: int = 24, height: int = 16) -> bytes:
    """A real RGB PNG: a two-colour gradient, ``label`` in a tEXt chunk."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    r0, g0, b0, r1, g1, b1 = colour_seed[:6]
    scanlines = bytearray()
    for y in range(height):
        scanlines.append(0)  # filter type: none
        for x in range(width):
            t = (x + y) / (width + height - 2)
            scanlines += bytes((round(r0 + (r1 - r0) * t), round(g0 + (g1 - g0) * t), round(b0 + (b1 - b0) * t)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    text = b"Comment\x00" + label.encode("latin-1", "replace")
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"tEXt", text)
        + chunk(b"IDAT", zlib.compress(bytes(scanlines), 9))
        + chunk(b"IEND", b"")
    )


# Annex K's luminance DC table: code lengths 1..16, then the categories in code order.
_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_VALS = tuple(range(12))
# Every block is flat, so the only AC symbol ever written is end-of-block (0x00).
_AC_BITS = (1,) + (0,) * 15
_AC_VALS = (0x00,)
_QUANT = 8


def _huffman_codes(bits: tuple[int, ...], vals: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """Canonical Huffman codes (JPEG Annex C): symbol -> (code, length)."""
    codes: dict[int, tuple[int, int]] = {}
    code = 0
    k = 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


def _jpeg(label: str, shades: bytes, blocks_x: int = 4, blocks_y: int = 2) -> bytes:
    """A real baseline grayscale JPEG of flat 8x8 blocks (one shade each), ``label`` as COM."""

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload

    dc_codes = _huffman_codes(_DC_BITS, _DC_VALS)
    eob_code, eob_len = _huffman_codes(_AC_BITS, _AC_VALS)[0x00]

    acc = 0
    nbits = 0
    previous = 0
    for i in range(blocks_x * blocks_y):
        # A flat block of level p has DCT DC coefficient 8*(p-128); quantised by 8: p-128.
        dc = shades[i % len(shades)] - 128
        diff = dc - previous
        previous = dc
        category = abs(diff).bit_length()
        code, length = dc_codes[category]
        extra = diff if diff >= 0 else diff + (1 << category) - 1
        acc = (acc << length) | code
        nbits += length
        acc = (acc << category) | extra
        nbits += category
        acc = (acc << eob_len) | eob_code
        nbits += eob_len
    pad = (-nbits) % 8
    acc = (acc << pad) | ((1 << pad) - 1)  # pad with one-bits
    raw = acc.to_bytes((nbits + pad) // 8, "big")
    scan = raw.replace(b"\xff", b"\xff\x00")  # byte stuffing

    height, width = blocks_y * 8, blocks_x * 8
    return (
        b"\xff\xd8"
        + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + segment(0xFE, label.encode("utf-8"))
        + segment(0xDB, b"\x00" + bytes([_QUANT]) * 64)
        + segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
        + segment(0xC4, b"\x00" + bytes(_DC_BITS) + bytes(_DC_VALS))
        + segment(0xC4, b"\x10" + bytes(_AC_BITS) + bytes(_AC_VALS))
        + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + scan
        + b"\xff\xd9"
    )


def _mp4(label: str, payload: bytes) -> bytes:
    """A minimal ISO base media file: ftyp, free (the label), mdat, moov/mvhd."""

    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body

    created = 3_800_000_000  # seconds since 1904-01-01: in 2024
    matrix = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
    mvhd = (
        struct.pack(">B3xIIII", 0, created, created, 1000, 2000)
        + struct.pack(">IH", 0x00010000, 0x0100)
        + b"\x00" * 10
        + matrix
        + b"\x00" * 24
        + struct.pack(">I", 1)
    )
    return (
        box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
        + box(b"free", label.encode("utf-8"))
        + box(b"mdat", payload)
        + box(b"moov", box(b"mvhd", mvhd))
    )


_WIN_ANSI_EXTRA = {"–": 0x96, "—": 0x97, "’": 0x92, "“": 0x93, "”": 0x94, "€": 0x80}


def _pdf_text(text: str) -> bytes:
    out = bytearray()
    for ch in text:
        code = _WIN_ANSI_EXTRA.get(ch, ord(ch))
        if ch in "()\\":
            out += b"\\" + ch.encode("ascii")
        elif 32 <= code < 127:
            out.append(code)
        elif code < 256:
            out += b"\\%03o" % code  # WinAnsi: Latin-1 for å, ä, ö; the table above for dashes
        else:
            out.append(ord("?"))
    return bytes(out)


def _pdf(title: str, lines: list[str]) -> bytes:
    """A minimal valid one-page PDF 1.4 with correct cross-reference offsets."""
    content = bytearray(b"BT\n/F1 18 Tf\n72 770 Td\n(" + _pdf_text(title) + b") Tj\n/F1 11 Tf\n")
    for line in lines:
        content += b"0 -20 Td\n(" + _pdf_text(line) + b") Tj\n"
    content += b"ET\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + bytes(content) + b"endstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(out)


def _media_file(content_type: str, label: str, rng: random.Random) -> bytes:
    if content_type == "image/png":
        return _png(label, rng.randbytes(6))
    if content_type == "image/jpeg":
        return _jpeg(label, rng.randbytes(8))
    if content_type == "video/mp4":
        return _mp4(label, rng.randbytes(rng.randrange(512, 2048)))
    if content_type == "application/pdf":
        return _pdf(label, [f"Sida 1 av 1 – {label}", "Läs igenom kursplanen före första träffen."])
    raise ValueError(f"no generator for {content_type}")


# --------------------------------------------------------------------------- data pools


@dataclass(frozen=True)
class _OrgSpec:
    slug: str
    name: str
    country: str
    created_at: dt.datetime
    starts_on: dt.date
    term_months: int
    domain: str
    prefix: str
    currency: str
    locale: str
    users: int
    courses: tuple[str, ...]
    activity_share: float
    page_views: int
    special_people: tuple[str, ...]
    attachments: tuple[tuple[str, str], ...]
    invoice_months: tuple[tuple[int, int], ...]  # (year, month) of each invoice
    invoice_day: int
    invoice_amount: int  # in the currency's minor unit


def _months(first: tuple[int, int], last: tuple[int, int], step: int) -> tuple[tuple[int, int], ...]:
    out = []
    year, month = first
    while (year, month) <= last:
        out.append((year, month))
        month += step
        while month > 12:
            month -= 12
            year += 1
    return tuple(out)


_ORGS = (
    _OrgSpec(
        slug="acme",
        name="Acme Lärande AB",
        country="SE",
        created_at=dt.datetime(2024, 1, 15, 9, 12, 5),
        starts_on=dt.date(2024, 1, 31),
        term_months=12,
        domain="acme.example",
        prefix="ACME",
        currency="SEK",
        locale="sv-SE",
        users=60,
        courses=(
            "Välkommen till Acme – introduktion",
            "Arbetsmiljö & säkerhet, del 1",
            'Kundservice: "Det svåra samtalet"',
            "GDPR för chefer",
            "Excel-formler (=SUMMA och vänner)",
            "Brandskydd 🔥 grundkurs",
            "Ledarskap i förändring",
            "Säker hantering av kemikalier",
        ),
        activity_share=0.60,
        page_views=300,
        special_people=(SHARED_USER_NAME, "=1+2", 'Karl "Kalle" Anka, Jr.', "Zoë 🚀 Lindqvist"),
        attachments=(
            ("Välkommen – intro.mp4", "video/mp4"),
            ("diagram (1).png", "image/png"),
            ("kursplan.pdf", "application/pdf"),
            ("foto.jpg", "image/jpeg"),
            ('Säkerhetsrutiner, v2 "final".pdf', "application/pdf"),
            ("skärmbild 2025-03-04 kl. 09.15.png", "image/png"),
        ),
        invoice_months=_months((2024, 2), (2026, 11), 1),
        invoice_day=1,
        invoice_amount=1_250_000,
    ),
    _OrgSpec(
        slug="globex",
        name="Globex Ütbildning, Inc.",
        country="US",
        created_at=dt.datetime(2025, 2, 10, 15, 30, 44),
        starts_on=dt.date(2025, 3, 1),
        term_months=12,
        domain="globex.example",
        prefix="GLOBEX",
        currency="EUR",
        locale="en-US",
        users=40,
        courses=(
            "Onboarding: Welcome to Globex",
            "Führungskräfte-Training, Teil 2",
            'Sales 101 — "closing" techniques',
            "Ütbildning i datasäkerhet 🔐",
            "Hammocks, Nuclear Power & You",
        ),
        activity_share=0.25,
        page_views=150,
        special_people=(SHARED_USER_NAME, "Siobhán O'Brien-Müller", "李小龙 (Bruce Lee)"),
        attachments=(
            ("Welcome – intro.mp4", "video/mp4"),
            ("org chart (final) (2).png", "image/png"),
            ("syllabus.pdf", "application/pdf"),
            ("IMG_4711.JPG", "image/jpeg"),
        ),
        invoice_months=_months((2025, 3), (2026, 9), 3),
        invoice_day=1,
        invoice_amount=480_000,
    ),
    _OrgSpec(
        slug="initech",
        name='Initech "Learning" Ltd',
        country="GB",
        created_at=dt.datetime(2023, 6, 1, 10, 0, 0),
        starts_on=dt.date(2023, 6, 15),
        term_months=6,
        domain="initech.example",
        prefix="INITECH",
        currency="GBP",
        locale="en-GB",
        users=25,
        courses=(
            "TPS Reports: Cover Sheets",
            "Office Space Etiquette",
            "Y2K Remediation (legacy)",
            "Printer troubleshooting – PC LOAD LETTER",
        ),
        activity_share=0.15,
        page_views=90,
        special_people=("Peter Gibbons", "Milton Waddams 📎", "Bill O'Lumbergh"),
        attachments=(
            ("TPS report cover sheet.pdf", "application/pdf"),
            ("diagram (1).png", "image/png"),
            ("foto.jpg", "image/jpeg"),
        ),
        invoice_months=_months((2024, 6), (2026, 6), 6),
        invoice_day=15,
        invoice_amount=215_000,
    ),
)

_FIRST_NAMES = (
    "Åsa", "Björn", "Märta", "Göran", "Sven", "Ingrid", "Lars", "Karin", "Jürgen", "Zoë",
    "José", "François", "Siobhán", "Łukasz", "Ngozi", "Wei", "Aiko", "Håkan", "Anneli",
    "Pekka", "Ömer", "Chloé", "Dmitrij", "Nils", "Eva", "Mohammed", "Fatima", "Linnéa",
    "Ola", "Per", "Sofía", "Maja", "Elif", "Jonas", "Örjan", "Signe", "Noah", "Leila",
)  # fmt: skip
_LAST_NAMES = (
    "Öberg", "Åkesson", "Lindqvist", "Bäckström", "Müller", "O'Brien", "Nyström", "García",
    "Søgaard", "Kowalski", "Nguyen", "Smith-Jones", "van der Berg", "D'Angelo", "Eriksson",
    "Svensson", "Ahmed", "Ljungberg", "Törnqvist", "Virtanen", "Yılmaz", "Håkansson",
    "Andersson", "Petrović", "Ólafsdóttir", "de la Cruz", "Ek", "Dubois",
)  # fmt: skip
_LOCALES = ("sv-SE", "sv-SE", "en-GB", "en-US", "de-DE", "fi-FI", "nb-NO")
_PASSWORD_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

_CATALOGUE = (
    ("CAT-GDPR-01", "GDPR – grunderna", "Lärplattformen AB"),
    ("CAT-HLR-02", "HLR & första hjälpen", "Röda Korset Utbildning"),
    ("CAT-XL-03", 'Excel: formler, "pivot" och diagram', "O'Reilly Media"),
    ("CAT-SEC-04", "Informationssäkerhet 🔐", "Lärplattformen AB"),
    ("CAT-LEAD-05", "Leading remote teams", "Globex Press"),
    ("CAT-FIRE-06", "Brandskydd, grundkurs", "Brandskyddsföreningen"),
)

_DESCRIPTIONS = (
    "En introduktion för nyanställda.\nKursen tar ca 45 minuter, och avslutas med ett kort test.",
    'Kursen bygger på "Arbetsmiljölagen (1977:1160)", kapitel 3.\nLäs materialet i förväg!',
    'Course outline:\n- part 1, basics\n- part 2, "advanced"\n\nQuestions? Mail training@globex.example',
    "",
    "Ingen beskrivning ännu 🙈",
    "Obligatorisk för alla chefer; se även intranätet → HR → Utbildning.",
)
_TOPICS = ("Grunderna", "Fördjupning", "Praktik & övningar", 'Repetition, "quiz"', "Case: Globex vs. Acme")
_MATERIAL_BODIES = (
    "Läs det här först.\n\nKursen består av tre delar: teori, övningar och ett avslutande test.",
    'Citat från VD: "Säkerhet först, alltid."\nFrågor? Kontakta din chef, eller HR.',
    "Checklista:\n1. Logga in\n2. Titta på filmen (12 min)\n3. Svara på frågorna, minst 80 % rätt",
    "Se bilaga: diagram (1).png\r\nWindows-radbrytningar finns också i riktiga data.",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s",
)
_QUIZ_TITLES = ("Kunskapstest 1", 'Slutprov "Modul 2"', "Quiz: säkerhet, del 1", "Self-check ✅")
_QUESTIONS = (
    "Hur nöjd är du med kursen? (1–5)",
    'Vad var bäst, och vad kan bli "ännu bättre"?',
    "Skulle du rekommendera kursen till en kollega?",
    "Övriga kommentarer\n(valfritt)",
)
_ANSWERS = (
    "5",
    "Mycket nöjd!",
    "Bra, men för långa videor,\noch ljudet var dåligt.",
    'Läraren sa "det här kommer på provet" – det gjorde det inte.',
    "👍👍",
    "Ja",
    "Nej, tyvärr.",
    "Kolumn1\tKolumn2",
    "=1+1",
    "N/A",
    "För snabbt tempo\\för lite tid",
)
_COMMENTS = (
    "Toppen! 🎉",
    "Bra kurs, men quizet hade fel svar på fråga 3.",
    'Saknade "verkliga" exempel.\nAnnars bra.',
    "Too long; didn't watch.",
    "-",
    "Betyg: 4/5, skulle gärna se en del 2",
)
_ACTIONS_COURSE = (
    "course.viewed",
    "material.viewed",
    "quiz.started",
    "quiz.submitted",
    "video.played",
    "certificate.downloaded",
)
_ACTIONS_USER = ("user.login", "user.logout", "profile.updated", "password.reset_requested", "search")
_ACTIONS_SYSTEM = ("system.sync_completed", "system.backup_verified", "report.generated")
_DETAILS = (
    '{"ip": "192.0.2.17", "agent": "Mozilla/5.0 (X11; Linux x86_64)"}',
    "score=8.5; attempt=2",
    "C:\\Users\\asa\\Downloads\\kursplan.pdf",
    "q=brandskydd\tfilter=alla",
    'sök: "GDPR, del 2"',
    "rad 1\nrad 2",
    "🎉 badge earned",
)


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    words = ["".join(ch for ch in word if ch.isalnum()) for word in folded.replace("-", " ").split()]
    return ".".join(w for w in words if w)


def _phone(country: str, rng: random.Random) -> str:
    # Numbers from ranges set aside for fiction and documentation.
    if country == "US":
        return f"+1 (555) 01{rng.randrange(10)}-{rng.randrange(1000, 10000)}"
    if country == "GB":
        return f"+44 20 7946 0{rng.randrange(100, 1000)}"
    return f"070-17{rng.randrange(10)} {rng.randrange(10, 100)} {rng.randrange(10, 100)}"


def _cents(value: int) -> Decimal:
    return Decimal(value).scaleb(-2)


def _moment(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    span = int((end - start).total_seconds())
    return start if span <= 0 else start + dt.timedelta(seconds=rng.randrange(span))


def _after(rng: random.Random, start: dt.datetime, low: int, high: int) -> dt.datetime:
    """An instant ``low``..``high`` seconds after ``start``, never past the example's end."""
    return min(start + dt.timedelta(seconds=rng.randrange(low, high)), _DATA_END)


def _numbered(keyed: list[tuple[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Sort by key (stable) and give ids 1..n: ids interleave customers, as in real systems."""
    keyed.sort(key=lambda item: item[0])
    rows = []
    for number, (_key, row) in enumerate(keyed, start=1):
        row["id"] = number
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- shared data


@dataclass
class _Person:
    user: dict[str, Any]
    role: str
    member: bool
    login: bool
    joined_at: dt.datetime


@dataclass
class _OrgState:
    spec: _OrgSpec
    id: int
    active_from: dt.datetime
    people: list[_Person]
    courses: list[dict[str, Any]]

    @property
    def members(self) -> list[_Person]:
        return [p for p in self.people if p.member]

    @property
    def staff(self) -> list[_Person]:
        return [p for p in self.people if p.member and p.role in ("admin", "teacher")]


class _SharedData:
    """Generates every row of the shared example in memory (activity_log streamed)."""

    def __init__(self, seed: int, activity_rows: int | None, users_per_customer: int | None) -> None:
        if users_per_customer is not None and users_per_customer < 1:
            raise ValueError("users_per_customer must be at least 1")
        if activity_rows is not None and activity_rows < 0:
            raise ValueError("activity_rows must not be negative")
        self.seed = seed
        self.users_per_customer = users_per_customer
        self.rows: dict[str, list[dict[str, Any]]] = {t.name: [] for t in SHARED_METADATA.sorted_tables}
        self.counts: dict[str, dict[str, int]] = {o.slug: dict.fromkeys(OWNED_TABLES, 0) for o in _ORGS}
        self.media: dict[str, bytes] = {}
        self.orgs = [
            _OrgState(spec, number, max(spec.created_at, _DATA_START), [], [])
            for number, spec in enumerate(_ORGS, start=1)
        ]
        total = _DEFAULT_ACTIVITY_ROWS if activity_rows is None else activity_rows
        acme = round(total * 0.60)
        globex = min(round(total * 0.25), total - acme)
        self.activity_split = [acme, globex, total - acme - globex]

        self._organisations()
        self._users()
        self._courses()
        self._structure()
        self._learning()
        self._business()
        for org, n in zip(self.orgs, self.activity_split, strict=True):
            self.counts[org.spec.slug]["activity_log"] = n

    def rng(self, part: str) -> random.Random:
        # One stream per part: more activity rows never change the courses, and so on.
        return random.Random(f"learnexit-example:{self.seed}:{part}")

    def count(self, org: _OrgState, table: str, n: int = 1) -> None:
        self.counts[org.spec.slug][table] += n

    # -- phases ------------------------------------------------------------------

    def _organisations(self) -> None:
        rng = self.rng("organisations")
        for org in self.orgs:
            spec = org.spec
            self.rows["organisations"].append(
                {
                    "id": org.id,
                    "slug": spec.slug,
                    "name": spec.name,
                    "country": spec.country,
                    "created_at": spec.created_at,
                }
            )
            self.count(org, "organisations")
            self.rows["contracts"].append(
                {"id": org.id, "organisation_id": org.id, "starts_on": spec.starts_on, "term_months": spec.term_months}
            )
            self.count(org, "contracts")
            self.rows["developer_keys"].append(
                {
                    "id": org.id,
                    "organisation_id": org.id,
                    "key_hash": rng.randbytes(32).hex(),
                    "created_at": _after(rng, spec.created_at, 3600, 30 * 86400),
                }
            )
        for number, (code, title, provider) in enumerate(_CATALOGUE, start=1):
            self.rows["catalogue_items"].append({"id": number, "code": code, "title": title, "provider": provider})

    def _users(self) -> None:
        rng = self.rng("users")
        taken_emails: set[str] = set()
        shared_user: dict[str, Any] = {
            "name": SHARED_USER_NAME,
            "email": "asa.oberg-nystrom@alumni.example",
            "locale": "sv-SE",
            "phone": "+46 70 123 45 67",
            "created_at": dt.datetime(2024, 2, 3, 8, 41, 17),
        }
        taken_emails.add(shared_user["email"])
        everyone: list[dict[str, Any]] = [shared_user]

        def email_for(name: str, domain: str) -> str:
            base = _ascii_slug(name) or "user"
            candidate = f"{base}@{domain}"
            n = 2
            while candidate in taken_emails:
                candidate = f"{base}{n}@{domain}"
                n += 1
            taken_emails.add(candidate)
            return candidate

        for org in self.orgs:
            spec = org.spec
            n = self.users_per_customer or spec.users
            staff_seen = 0
            for k in range(n):
                if k < len(spec.special_people):
                    name = spec.special_people[k]
                else:
                    name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
                if name == SHARED_USER_NAME:
                    joined = _moment(rng, org.active_from, org.active_from + dt.timedelta(days=60))
                    joined = max(joined, shared_user["created_at"])
                    org.people.append(_Person(shared_user, "student", True, True, joined))
                    continue
                created = _moment(rng, org.active_from, _DATA_END - dt.timedelta(days=90))
                phone = None
                if rng.random() < 0.7:
                    phone = _phone(spec.country, rng)
                email = email_for(name, spec.domain)
                if k == 5:
                    email = email.replace("@", "+lms@")  # sub-addressing: still one person
                user = {
                    "name": name,
                    "email": email,
                    "locale": spec.locale if rng.random() < 0.6 else rng.choice(_LOCALES),
                    "phone": phone,
                    "created_at": created,
                }
                everyone.append(user)
                role = "admin" if staff_seen == 0 else ("teacher" if staff_seen % 7 == 1 else "student")
                staff_seen += 1
                member, login = True, True
                if n >= 6 and k == n - 1:
                    member = False  # an SSO account that can sign in but was never added as a member
                elif n >= 6 and k == n - 2:
                    login = False  # invited, never activated
                org.people.append(_Person(user, role, member, login, _after(rng, created, 60, 3600)))

        for name, email in (
            ("Lärplattformen Support", "support@larplattformen.example"),
            ("Test Testsson (borttagen)", "test@larplattformen.example"),
        ):
            everyone.append(
                {
                    "name": name,
                    "email": email,
                    "locale": "sv-SE",
                    "phone": None,
                    "created_at": _moment(rng, _DATA_START, _DATA_START + dt.timedelta(days=30)),
                }
            )
        self.rows["users"] = _numbered([(u["created_at"], u) for u in everyone])

        memberships: list[tuple[Any, dict[str, Any]]] = []
        logins: list[tuple[Any, dict[str, Any]]] = []
        for org in self.orgs:
            owned: set[int] = set()
            for person in org.people:
                uid = person.user["id"]
                owned.add(uid)
                if person.member:
                    memberships.append(
                        (
                            person.joined_at,
                            {
                                "organisation_id": org.id,
                                "user_id": uid,
                                "role": person.role,
                                "joined_at": person.joined_at,
                            },
                        )
                    )
                    self.count(org, "memberships")
                if person.login:
                    if org.spec.slug == "initech":
                        unique_id = "INITECH\\" + (_ascii_slug(person.user["name"]).replace(".", "_") or "user")
                    else:
                        unique_id = person.user["email"]
                    never = rng.random() < 0.1
                    logins.append(
                        (
                            person.joined_at,
                            {
                                "organisation_id": org.id,
                                "user_id": uid,
                                "unique_id": unique_id,
                                "password_hash": "$2b$12$" + "".join(rng.choices(_PASSWORD_ALPHABET, k=53)),
                                "workflow_state": "suspended" if rng.random() < 0.05 else "active",
                                "last_login_at": None if never else _moment(rng, person.joined_at, _DATA_END),
                            },
                        )
                    )
                    self.count(org, "logins")
            self.count(org, "users", len(owned))
        self.rows["memberships"] = _numbered(memberships)
        self.rows["logins"] = _numbered(logins)

    def _courses(self) -> None:
        rng = self.rng("courses")
        keyed: list[tuple[Any, dict[str, Any]]] = []
        for org in self.orgs:
            for k, title in enumerate(org.spec.courses):
                created = _moment(rng, org.active_from, org.active_from + dt.timedelta(days=30 + 60 * k))
                course = {
                    "organisation_id": org.id,
                    "catalogue_item_id": rng.randrange(1, len(_CATALOGUE) + 1) if rng.random() < 0.5 else None,
                    "code": f"{org.spec.prefix}-{101 + k}",
                    "title": title,
                    "description": _DESCRIPTIONS[(k + org.id) % len(_DESCRIPTIONS)],
                    "created_at": created,
                }
                org.courses.append(course)
                keyed.append((created, course))
                self.count(org, "courses")
        self.rows["courses"] = _numbered(keyed)
        self.course_org = {c["id"]: self.orgs[c["organisation_id"] - 1] for c in self.rows["courses"]}

    def _structure(self) -> None:
        rng = self.rng("structure")
        rows = self.rows
        for course in rows["courses"]:
            org = self.course_org[course["id"]]
            first = course is org.courses[0]
            sections: list[int] = []

            def section(
                parent: int | None,
                title: str,
                position: int,
                course: dict[str, Any] = course,
                org: _OrgState = org,
                sections: list[int] = sections,
            ) -> int:
                sid = len(rows["course_sections"]) + 1
                rows["course_sections"].append(
                    {"id": sid, "course_id": course["id"], "parent_id": parent, "title": title, "position": position}
                )
                self.count(org, "course_sections")
                sections.append(sid)
                return sid

            for m in range(1, rng.randint(2, 3) + 1):
                top = section(None, f"Modul {m}: {rng.choice(_TOPICS)}", m)
                n_children = rng.randint(1, 2) if m == 1 else rng.randint(0, 2)
                for j in range(1, n_children + 1):
                    child = section(top, f"Lektion {m}.{j}", j)
                    if (m == 1 and j == 1 and first) or rng.random() < 0.3:
                        section(child, f'Övning {m}.{j}.1 – "gör själv"', 1)

            n_materials = rng.randint(3, 5)
            for k in range(n_materials):
                if first and k == 0 and org.spec.slug == "acme":
                    title, body, kind = "Personalhandbok (hela)", _handbook(), "page"
                elif first and k == 1:
                    title = "Tabell, sökvägar & specialtecken"
                    body = "Namn\tAvdelning\tSökväg\nÅsa\tHR\tC:\\Kurser\\Arbetsmiljö\\intro.docx\n"
                    kind = "page"
                else:
                    title = f"Material {k + 1}: {rng.choice(_TOPICS)}"
                    body = rng.choice(_MATERIAL_BODIES)
                    kind = "link" if body.startswith("https://") else rng.choice(("page", "page", "file", "video"))
                rows["course_materials"].append(
                    {
                        "id": len(rows["course_materials"]) + 1,
                        "course_id": course["id"],
                        "section_id": rng.choice(sections) if rng.random() < 0.8 else None,
                        "title": title,
                        "body": body,
                        "kind": kind,
                    }
                )
                self.count(org, "course_materials")

            for k in range(rng.randint(1, 2)):
                rows["quizzes"].append(
                    {
                        "id": len(rows["quizzes"]) + 1,
                        "course_id": course["id"],
                        "title": _QUIZ_TITLES[(k + course["id"]) % len(_QUIZ_TITLES)],
                        "max_score": Decimal(rng.choice((10, 20, 25, 100))).quantize(Decimal("0.01")),
                    }
                )
                self.count(org, "quizzes")

            if first or rng.random() < 0.6:
                survey_id = len(rows["surveys"]) + 1
                rows["surveys"].append(
                    {"id": survey_id, "course_id": course["id"], "title": f"Kursutvärdering – {course['code']}"}
                )
                self.count(org, "surveys")
                for position, question in enumerate(_QUESTIONS[: rng.randint(3, 4)], start=1):
                    rows["survey_questions"].append(
                        {
                            "id": len(rows["survey_questions"]) + 1,
                            "survey_id": survey_id,
                            "position": position,
                            "question": question,
                        }
                    )
                    self.count(org, "survey_questions")

    def _learning(self) -> None:
        rng = self.rng("learning")
        rows = self.rows
        quizzes_of: dict[int, list[dict[str, Any]]] = {}
        for quiz in rows["quizzes"]:
            quizzes_of.setdefault(quiz["course_id"], []).append(quiz)
        survey_of = {s["course_id"]: s for s in rows["surveys"]}
        questions_of: dict[int, list[dict[str, Any]]] = {}
        for q in rows["survey_questions"]:
            questions_of.setdefault(q["survey_id"], []).append(q)

        enrolments: list[tuple[Any, dict[str, Any]]] = []
        completions: list[tuple[Any, dict[str, Any]]] = []
        certificates: list[tuple[Any, dict[str, Any], str]] = []
        attempts: list[tuple[Any, dict[str, Any]]] = []
        answers: list[tuple[Any, dict[str, Any]]] = []
        feedback: list[tuple[Any, dict[str, Any]]] = []
        formula_comment_written = False

        for course in rows["courses"]:
            org = self.course_org[course["id"]]
            first = course is org.courses[0]
            cid = course["id"]
            start = course["created_at"]
            staff = org.staff
            teachers = rng.sample(staff, min(len(staff), rng.randint(1, 2)))
            students = [p for p in org.members if p.role == "student"]
            chosen = rng.sample(students, round(len(students) * rng.uniform(0.35, 0.7)))
            shared = [p for p in students if p.user["name"] == SHARED_USER_NAME]
            if first and shared and shared[0] not in chosen:
                chosen.insert(0, shared[0])
            if first and students and not chosen:
                chosen.append(students[0])

            for person in teachers:
                at = _after(rng, max(start, person.joined_at), 60, 7 * 86400)
                enrolments.append(
                    (
                        at,
                        {
                            "course_id": cid,
                            "user_id": person.user["id"],
                            "role": "teacher",
                            "state": "active",
                            "enrolled_at": at,
                        },
                    )
                )
                self.count(org, "enrolments")

            for person in chosen:
                uid = person.user["id"]
                enrolled = _moment(rng, max(start, person.joined_at), _DATA_END - dt.timedelta(days=30))
                forced = first and person.user["name"] == SHARED_USER_NAME
                roll = rng.random()
                state = (
                    "completed"
                    if forced or roll < 0.35
                    else ("active" if roll < 0.9 else ("invited" if roll < 0.95 else "deleted"))
                )
                enrolments.append(
                    (
                        enrolled,
                        {"course_id": cid, "user_id": uid, "role": "student", "state": state, "enrolled_at": enrolled},
                    )
                )
                self.count(org, "enrolments")
                if state in ("invited", "deleted"):
                    continue

                if state == "completed":
                    done = _after(rng, enrolled, 3600, 120 * 86400)
                    score = None if rng.random() < 0.15 and not forced else _cents(rng.randint(4000, 10000))
                    completions.append((done, {"course_id": cid, "user_id": uid, "completed_at": done, "score": score}))
                    self.count(org, "completions")
                    if score is None or score >= 50:
                        issued = _after(rng, done, 1, 600)
                        certificates.append(
                            (
                                issued,
                                {"course_id": cid, "user_id": uid, "code": "", "issued_at": issued},
                                org.spec.prefix,
                            )
                        )
                        self.count(org, "certificates")

                for quiz in quizzes_of.get(cid, []):
                    if rng.random() >= 0.6:
                        continue
                    for _ in range(rng.randint(1, 2)):
                        started = _after(rng, enrolled, 600, 60 * 86400)
                        finished = None if rng.random() < 0.05 else _after(rng, started, 180, 3000)
                        max_score = quiz["max_score"]
                        score = (
                            Decimal(0).quantize(Decimal("0.01"))
                            if finished is None
                            else _cents(rng.randint(0, int(max_score * 100)))
                        )
                        attempts.append(
                            (
                                started,
                                {
                                    "quiz_id": quiz["id"],
                                    "user_id": uid,
                                    "score": score,
                                    "max_score": max_score,
                                    "started_at": started,
                                    "finished_at": finished,
                                },
                            )
                        )
                        self.count(org, "quiz_attempts")

                survey = survey_of.get(cid)
                if survey is not None and (rng.random() < 0.5 or forced):
                    answered = _after(rng, enrolled, 3600, 90 * 86400)
                    for q in questions_of[survey["id"]]:
                        # An early answer keeps the wording the question had when it was asked.
                        snapshot = q["question"]
                        if q["position"] == 1 and answered < dt.datetime(2024, 6, 1):
                            snapshot = "Hur nöjd är du med kursen?"
                        answers.append(
                            (
                                answered,
                                {
                                    "survey_id": survey["id"],
                                    "question_id": q["id"],
                                    "user_id": uid,
                                    "question": snapshot,
                                    "answer": None if rng.random() < 0.15 else rng.choice(_ANSWERS),
                                    "answered_at": answered,
                                },
                            )
                        )
                        self.count(org, "survey_answers")

                formula_due = first and org.spec.slug == "acme" and not formula_comment_written
                if formula_due or rng.random() < 0.25:
                    at = _after(rng, enrolled, 3600, 100 * 86400)
                    if formula_due:
                        comment: str | None = '=HYPERLINK("http://x")'
                        formula_comment_written = True
                    else:
                        comment = None if rng.random() < 0.3 else rng.choice(_COMMENTS)
                    feedback.append(
                        (
                            at,
                            {
                                "course_id": cid,
                                "user_id": uid,
                                "rating": rng.randint(1, 5),
                                "comment": comment,
                                "created_at": at,
                            },
                        )
                    )
                    self.count(org, "feedback")

        rows["enrolments"] = _numbered(enrolments)
        rows["completions"] = _numbered(completions)
        rows["quiz_attempts"] = _numbered(attempts)
        rows["survey_answers"] = _numbered(answers)
        rows["feedback"] = _numbered(feedback)
        certificates.sort(key=lambda item: item[0])
        serials: dict[tuple[str, int], int] = {}
        for number, (issued, row, prefix) in enumerate(certificates, start=1):
            serial = serials[(prefix, issued.year)] = serials.get((prefix, issued.year), 0) + 1
            row["id"] = number
            row["code"] = f"{prefix}-{issued.year}-{serial:04d}"
            rows["certificates"].append(row)

    def _business(self) -> None:
        rng = self.rng("business")
        rows = self.rows
        reports: list[tuple[Any, dict[str, Any]]] = []
        invoices: list[tuple[Any, dict[str, Any]]] = []
        views: list[tuple[Any, dict[str, Any]]] = []
        materials_of: dict[int, list[int]] = {}
        for m in rows["course_materials"]:
            materials_of.setdefault(m["course_id"], []).append(m["id"])

        for org in self.orgs:
            spec = org.spec
            slug = spec.slug
            admins = [p for p in org.people if p.member and p.role == "admin"]
            uploaders = org.staff or org.members or org.people

            for title, kind in (
                (f"Genomförda kurser – {slug}", "completions"),
                ("Aktivitet per månad", "activity"),
                ("Fakturaunderlag, Q3", "billing"),
            ):
                at = _moment(rng, org.active_from, _DATA_END)
                # A CSV someone saved into the LMS: quoted fields, doubled quotes, the org's own people.
                lines = ["Namn,Kurs,Status"]
                for person in org.people[:4]:
                    quoted = person.user["name"].replace('"', '""')
                    status = rng.choice(("Klar", '"Pågår, 50 %"', "Ej påbörjad"))
                    lines.append(f'"{quoted}",{rng.choice(org.courses)["code"]},{status}')
                content = "\n".join(lines) + "\n"
                reports.append(
                    (
                        at,
                        {
                            "organisation_id": org.id,
                            "title": title,
                            "kind": kind,
                            "generated_at": at,
                            "content": content,
                        },
                    )
                )
                self.count(org, "reports")

            for k, (year, month) in enumerate(spec.invoice_months):
                issued = dt.date(year, month, spec.invoice_day)
                amount = spec.invoice_amount + rng.randrange(-5000, 5000) * 10
                contact = None
                if admins and not (slug == "initech" and k % 2 == 1):
                    contact = admins[0].user["id"]
                invoices.append(
                    (
                        (issued, org.id),
                        {
                            "organisation_id": org.id,
                            "number": "",
                            "issued_on": issued,
                            "amount": _cents(amount),
                            "currency": spec.currency,
                            "paid": k < len(spec.invoice_months) - 1,
                            "billing_contact_id": contact,
                        },
                    )
                )
                self.count(org, "invoices")

            people = [p.user["id"] for p in org.people]
            course_ids = [c["id"] for c in org.courses]
            for _ in range(spec.page_views):
                cid = rng.choice(course_ids)
                template = rng.randrange(6)
                if template == 0:
                    path = f"/courses/{cid}"
                elif template == 1 and materials_of.get(cid):
                    path = f"/courses/{cid}/materials/{rng.choice(materials_of[cid])}"
                elif template == 2:
                    path = "/search?q=brandskydd+%F0%9F%94%A5&sort=relevans"
                elif template == 3:
                    path = f'/courses/{cid}/grades?filter="all"'
                elif template == 4:
                    path = "/dashboard"
                else:
                    path = "/profile/settings#notiser"
                at = _moment(rng, org.active_from, _DATA_END)
                uid = None if rng.random() < 0.15 else rng.choice(people)
                views.append((at, {"organisation_id": org.id, "user_id": uid, "path": path, "viewed_at": at}))
                self.count(org, "page_views")

            for k, (filename, content_type) in enumerate(spec.attachments):
                aid = len(rows["attachments"]) + 1
                digest = rng.randbytes(16).hex()
                storage_path = f"{slug}/{digest[0:2]}/{digest[2:4]}/{digest}"
                data = _media_file(content_type, f"learnexit example: {slug} attachment {aid}", rng)
                self.media[storage_path] = data
                uploader = None if k == 2 else rng.choice(uploaders).user["id"]
                rows["attachments"].append(
                    {
                        "id": aid,
                        "course_id": rng.choice(course_ids),
                        "uploaded_by": uploader,
                        "storage_path": storage_path,
                        "filename": filename,
                        "content_type": content_type,
                        "size": len(data),
                        "md5": hashlib.md5(data).hexdigest(),
                    }
                )
                self.count(org, "attachments")

        rows["reports"] = _numbered(reports)
        rows["page_views"] = _numbered(views)
        rows["invoices"] = _numbered(invoices)
        serials: dict[int, int] = {}
        for invoice in rows["invoices"]:
            year = invoice["issued_on"].year
            serials[year] = serials.get(year, 0) + 1
            # The vendor numbers its invoices in one series across all customers.
            invoice["number"] = f"LP-{year}-{serials[year]:04d}"

    def activity_batches(self) -> Iterator[list[dict[str, Any]]]:
        """activity_log rows in id order, ``_BATCH`` at a time, chronological across customers."""
        rng = self.rng("activity")
        streams = []
        for index, (org, n) in enumerate(zip(self.orgs, self.activity_split, strict=True)):
            span = int((_DATA_END - org.active_from).total_seconds())
            base = int((org.active_from - _DATA_START).total_seconds())
            offsets = sorted(base + rng.randrange(span) for _ in range(n))
            streams.append(zip(offsets, itertools.repeat(index, n), strict=True))
        users_of = [[p.user["id"] for p in org.people] for org in self.orgs]
        courses_of = [[c["id"] for c in org.courses] for org in self.orgs]
        org_ids = [org.id for org in self.orgs]
        n_details = len(_DETAILS)
        random_ = rng.random
        choice = rng.choice
        start = _DATA_START
        delta = dt.timedelta
        batch: list[dict[str, Any]] = []
        number = 0
        for t, index in heapq.merge(*streams):
            number += 1
            roll = random_()
            if roll < 0.03:
                user_id = None
                course_id = None
                action = choice(_ACTIONS_SYSTEM)
            elif roll < 0.25:
                user_id = choice(users_of[index])
                course_id = None
                action = choice(_ACTIONS_USER)
            else:
                user_id = choice(users_of[index])
                course_id = choice(courses_of[index])
                action = choice(_ACTIONS_COURSE)
            pick = int(random_() * 2 * n_details)
            batch.append(
                {
                    "id": number,
                    "organisation_id": org_ids[index],
                    "user_id": user_id,
                    "course_id": course_id,
                    "action": action,
                    "detail": _DETAILS[pick] if pick < n_details else None,
                    "created_at": start + delta(seconds=t),
                }
            )
            if len(batch) >= _BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


def _handbook() -> str:
    """A long page (over 40 000 characters), as real LMS pages are."""
    paragraphs = []
    n = 0
    size = 0
    while size < 42_000:
        n += 1
        paragraph = (
            f"§ {n}. Alla medarbetare ska känna till rutinerna för arbetsmiljö, säkerhet och "
            f'"god sed". Frågor ställs till närmaste chef, HR eller skyddsombud; svar ges inom {n % 5 + 1} '
            "arbetsdagar.\nSe även bilaga A, B och C."
        )
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    return "Personalhandbok för Acme Lärande AB\n\n" + "\n\n".join(paragraphs)


def _write_media(root: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _insert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), _BATCH):
        conn.execute(table.insert(), rows[start : start + _BATCH])


def populate_shared(
    engine: sa.Engine,
    *,
    media_root: Path | None,
    activity_rows: int | None = None,
    users_per_customer: int | None = None,
    seed: int = DEFAULT_SEED,
) -> ExampleInfo:
    """Insert the example data into the schema made by ``build_shared_schema``.

    One transaction.  Media files are written under ``media_root`` when it is given; the
    attachments rows record their size and md5 either way.
    """
    data = _SharedData(seed, activity_rows, users_per_customer)
    if media_root is not None:
        _write_media(Path(media_root), data.media)
    with engine.begin() as conn:
        for table in SHARED_METADATA.sorted_tables:
            if table.name == "activity_log":
                for batch in data.activity_batches():
                    conn.execute(table.insert(), batch)
            else:
                _insert(conn, table, data.rows[table.name])
        if conn.dialect.name == "postgresql":
            _advance_sequences(conn, SHARED_METADATA)
    return ExampleInfo(customers=list(CUSTOMERS), counts=data.counts)


def _advance_sequences(conn: sa.Connection, metadata: sa.MetaData) -> None:
    """Explicit ids leave PostgreSQL's serial sequences at 1: move them past the data."""
    preparer = conn.dialect.identifier_preparer
    for table in metadata.sorted_tables:
        name = preparer.format_table(table)
        conn.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence(:name, 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
            ),
            {"name": name},
        )


def _sqlite_engine(path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _fast(dbapi_connection: Any, _record: Any) -> None:
        # A file being built from scratch needs no crash safety: it is rebuilt instead.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=OFF")
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    return engine


def _build_sqlite(final: Path, build: Callable[[sa.Engine], _T]) -> _T:
    """Build into a temporary file and move it into place: no half-built database survives."""
    partial = final.with_name(final.name + ".partial")
    if partial.exists():
        partial.unlink()
    engine = _sqlite_engine(partial)
    try:
        result = build(engine)
    except BaseException:
        engine.dispose()
        partial.unlink(missing_ok=True)
        raise
    engine.dispose()
    os.replace(partial, final)
    return result


# --------------------------------------------------------------------------- configs

_SHARED_CONFIG = """\
[source]
url = "sqlite:///lms.db"
[state]
url = "sqlite:///learnexit-state.db"
[vendor]
name = "Lärplattformen AB"
[contract]
notice_days = 30
export_window_days = 90
timezone = "Europe/Stockholm"
term_months = 12
table = "contracts"
customer_column = "organisation_id"
start_column = "starts_on"
term_column = "term_months"
[customer]
table = "organisations"
key = "slug"
name_column = "name"
tenancy = "shared"
[tables.catalogue_items]
shared = true
[tables.developer_keys]
shared = true
[tables.users]
owned_via = ["logins.user_id", "memberships.user_id"]
personal_columns = ["name", "email", "phone"]
category = "users"
[tables.invoices]
retain = "P7Y"
legal_basis = "Bokföringslagen (1999:1078) 7 kap. 2 §"
category = "other"
[tables.page_views]
category = "reports"
[tables.activity_log]
category = "reports"
[tables.reports]
category = "reports"
[media]
root = "media"
table = "attachments"
path_column = "storage_path"
name_column = "filename"
size_column = "size"
checksum_column = "md5"
checksum_algorithm = "md5"
[roles.people]
table = "users"
id = "id"
name = "name"
email = "email"
[roles.courses]
table = "courses"
id = "id"
title = "title"
[roles.completions]
table = "completions"
person = "user_id"
course = "course_id"
completed_at = "completed_at"
score = "score"
[roles.certificates]
table = "certificates"
person = "user_id"
course = "course_id"
issued_at = "issued_at"
number = "code"
[roles.quiz_results]
table = "quiz_attempts"
person = "user_id"
quiz = "quiz_id"
score = "score"
max_score = "max_score"
[roles.feedback]
table = "survey_answers"
person = "user_id"
question = "question"
answer = "answer"
[roles.activity]
table = "activity_log"
person = "user_id"
at = "created_at"
[closure]
set = { "logins.workflow_state" = "deleted" }
[export]
out = "exports"
formats = ["csv", "xlsx", "json", "xml", "pdf", "docx", "media", "sql"]
sql_dialect = "sqlite"
lang = "en"
[purge]
batch_size = 20000
backup_note = "Database backups are kept for 35 days and expire on their own."
"""

_LEGACY_CONFIG = """\
[source]
url = "sqlite:///{customer}.db"
[state]
url = "sqlite:///learnexit-state.db"
[vendor]
name = "Lärplattformen AB"
[contract]
timezone = "Europe/Stockholm"
term_months = 12
[customer]
tenancy = "database"
[[relations]]
from = "mdl_user_enrolments.userid"
to = "mdl_user.id"
[[relations]]
from = "mdl_user_enrolments.enrolid"
to = "mdl_enrol.id"
[[relations]]
from = "mdl_enrol.courseid"
to = "mdl_course.id"
[[relations]]
from = "mdl_grade_items.courseid"
to = "mdl_course.id"
[[relations]]
from = "mdl_grade_grades.itemid"
to = "mdl_grade_items.id"
[[relations]]
from = "mdl_grade_grades.userid"
to = "mdl_user.id"
[[relations]]
from = "mdl_logstore_standard_log.userid"
to = "mdl_user.id"
[[relations]]
from = "mdl_files.userid"
to = "mdl_user.id"
[tables.mdl_config]
shared = true
[media]
root = "."
table = "mdl_files"
path_template = "filedir/{contenthash[0:2]}/{contenthash[2:4]}/{contenthash}"
name_column = "filename"
size_column = "filesize"
checksum_column = "contenthash"
checksum_algorithm = "sha1"
[roles.people]
table = "mdl_user"
id = "id"
name = "username"
email = "email"
[roles.courses]
table = "mdl_course"
id = "id"
title = "fullname"
[closure]
set = { "mdl_user.deleted" = 1 }
[export]
out = "exports"
formats = ["csv", "xlsx", "json", "xml", "sql"]
sql_dialect = "sqlite"
"""


# --------------------------------------------------------------------------- legacy (Moodle)


def _define_legacy_schema(md: sa.MetaData) -> sa.MetaData:
    # Moodle declares no foreign keys at all: only primary keys.
    sa.Table(
        "mdl_user",
        md,
        _id(),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("firstname", sa.String(100), nullable=False),
        sa.Column("lastname", sa.String(100), nullable=False),
        sa.Column("email", sa.String(100), nullable=False),
        sa.Column("deleted", sa.Integer, nullable=False, default=0, server_default="0"),
    )
    sa.Table(
        "mdl_course",
        md,
        _id(),
        sa.Column("fullname", sa.String(254), nullable=False),
        sa.Column("shortname", sa.String(255), nullable=False),
    )
    sa.Table(
        "mdl_enrol",
        md,
        _id(),
        sa.Column("courseid", sa.Integer, nullable=False),
        sa.Column("enrol", sa.String(20), nullable=False),
    )
    sa.Table(
        "mdl_user_enrolments",
        md,
        _id(),
        sa.Column("enrolid", sa.Integer, nullable=False),
        sa.Column("userid", sa.Integer, nullable=False),
        sa.Column("timecreated", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "mdl_grade_items",
        md,
        _id(),
        sa.Column("courseid", sa.Integer, nullable=False),
        sa.Column("itemname", sa.String(255), nullable=True),
        sa.Column("grademax", sa.Numeric(10, 5), nullable=False),
    )
    sa.Table(
        "mdl_grade_grades",
        md,
        _id(),
        sa.Column("itemid", sa.Integer, nullable=False),
        sa.Column("userid", sa.Integer, nullable=False),
        sa.Column("finalgrade", sa.Numeric(10, 5), nullable=True),
    )
    sa.Table(
        "mdl_logstore_standard_log",
        md,
        _id(),
        sa.Column("userid", sa.Integer, nullable=False),
        sa.Column("courseid", sa.Integer, nullable=False),
        sa.Column("eventname", sa.String(255), nullable=False),
        sa.Column("timecreated", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "mdl_files",
        md,
        _id(),
        sa.Column("contenthash", sa.String(40), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("filesize", sa.BigInteger, nullable=False),
        sa.Column("userid", sa.Integer, nullable=True),
        sa.Column("component", sa.String(100), nullable=False),
    )
    sa.Table(
        "mdl_config",
        md,
        _id(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
    )
    return md


LEGACY_METADATA = _define_legacy_schema(sa.MetaData())


@dataclass(frozen=True)
class _LegacySite:
    site: str
    domain: str
    users: int
    courses: tuple[str, ...]
    logs: int
    people: tuple[tuple[str, str], ...]  # (firstname, lastname) of the first users
    files: tuple[tuple[str, str, str], ...]  # (filename, content type, component)


_LEGACY_SITES = {
    "acme": _LegacySite(
        site="Acme Lärande – Moodle",
        domain="acme.example",
        users=18,
        courses=("Arbetsmiljö, grundkurs", 'Truckkort "A+B"', "Svenska för nyanlända 🇸🇪", "Brandskydd\\HLR"),
        logs=240,
        people=(("=1+2", "Formel"), ("Åsa", "Öberg 🎓"), ("Ollie", 'O\'Connor, "Ollie"'), ("Märta", "Bäck\tström")),
        files=(
            ("kursplan.pdf", "application/pdf", "mod_resource"),
            ("foto.jpg", "image/jpeg", "user"),
            ("diagram (1).png", "image/png", "mod_resource"),
        ),
    ),
    "globex": _LegacySite(
        site="Globex Moodle",
        domain="globex.example",
        users=12,
        courses=("Safety first", "Führung, Teil 1", 'Sales "101"'),
        logs=120,
        people=(("Siobhán", "O'Brien"), ("Zoë", "Müller 🚀")),
        files=(
            ("syllabus.pdf", "application/pdf", "mod_resource"),
            ("IMG_4711.JPG", "image/jpeg", "user"),
            ("org chart (2).png", "image/png", "course"),
        ),
    ),
}
_MOODLE_EVENTS = (
    "\\core\\event\\course_viewed",
    "\\core\\event\\user_loggedin",
    "\\mod_quiz\\event\\attempt_submitted",
    "\\mod_resource\\event\\course_module_viewed",
)


def _legacy_rows(slug: str, seed: int) -> tuple[dict[str, list[dict[str, Any]]], dict[str, bytes]]:
    rng = random.Random(f"learnexit-legacy:{seed}:{slug}")
    site = _LEGACY_SITES[slug]
    domain = site.domain
    rows: dict[str, list[dict[str, Any]]] = {t.name: [] for t in LEGACY_METADATA.sorted_tables}
    files: dict[str, bytes] = {}

    def add(table: str, **values: Any) -> int:
        values["id"] = len(rows[table]) + 1
        rows[table].append(values)
        return int(values["id"])

    add("mdl_user", username="guest", firstname="Guest user", lastname=" ", email="root@localhost", deleted=0)
    add("mdl_user", username="admin", firstname="Admin", lastname="User", email=f"moodle-admin@{domain}", deleted=0)
    people: list[int] = []
    for k in range(site.users):
        if k < len(site.people):
            first, last = site.people[k]
        else:
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        username = (_ascii_slug(f"{first} {last}") or "user").replace(".", "") + str(k + 1)
        email = f"{username}@{domain}"
        deleted = 0
        if k == site.users - 1:
            # How Moodle leaves a deleted account: renamed, e-mail cleared, row kept.
            username, email, deleted = f"{email}.1712345678", "", 1
        people.append(add("mdl_user", username=username, firstname=first, lastname=last, email=email, deleted=deleted))

    add("mdl_course", fullname=site.site, shortname=slug)  # id 1: the site itself, as in Moodle
    epoch0 = int(dt.datetime(2024, 1, 8, tzinfo=dt.UTC).timestamp())
    epoch1 = int(dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp())
    course_ids = []
    for k, fullname in enumerate(site.courses):
        cid = add("mdl_course", fullname=fullname, shortname=f"{slug.upper()}-{k + 1:02d}")
        course_ids.append(cid)
        manual = add("mdl_enrol", courseid=cid, enrol="manual")
        add("mdl_enrol", courseid=cid, enrol="self")
        items = [(add("mdl_grade_items", courseid=cid, itemname=None, grademax=Decimal("100.00000")), 100)]
        for q in range(rng.randint(1, 2)):
            name = f'Quiz {q + 1}: "{fullname}"'
            items.append((add("mdl_grade_items", courseid=cid, itemname=name, grademax=Decimal("10.00000")), 10))
        for uid in rng.sample(people, max(1, len(people) // 2)):
            add("mdl_user_enrolments", enrolid=manual, userid=uid, timecreated=rng.randrange(epoch0, epoch1))
            for item, grademax in items:
                grade = None
                if rng.random() >= 0.2:  # Moodle leaves finalgrade NULL until something is graded
                    grade = Decimal(rng.randint(0, grademax * 100)).scaleb(-2).quantize(Decimal("0.00001"))
                add("mdl_grade_grades", itemid=item, userid=uid, finalgrade=grade)

    for t in sorted(rng.randrange(epoch0, epoch1) for _ in range(site.logs)):
        event = rng.choice(_MOODLE_EVENTS)
        courseid = 1 if event == "\\core\\event\\user_loggedin" else rng.choice(course_ids)
        add("mdl_logstore_standard_log", userid=rng.choice(people), courseid=courseid, eventname=event, timecreated=t)

    for k, (filename, content_type, component) in enumerate(site.files):
        data = _media_file(content_type, f"learnexit legacy example: {slug} file {k + 1}", rng)
        contenthash = hashlib.sha1(data).hexdigest()
        files[contenthash] = data
        add(
            "mdl_files",
            contenthash=contenthash,
            filename=filename,
            filesize=len(data),
            userid=rng.choice(people),
            component=component,
        )
        if slug == "acme" and k == 0:
            # Moodle stores one copy of identical content: two rows, one file in the pool.
            add(
                "mdl_files",
                contenthash=contenthash,
                filename="kursplan (kopia).pdf",
                filesize=len(data),
                userid=rng.choice(people),
                component="user",
            )

    for name, value in (
        ("version", "2022112800"),
        ("release", "4.1 (Build: 20221128)"),
        ("wwwroot", f"https://moodle.{domain}"),
        ("siteadmins", "2"),
        ("lang", "sv" if slug == "acme" else "en"),
        ("supportemail", "support@larplattformen.example"),
    ):
        add("mdl_config", name=name, value=value)
    return rows, files


def build_legacy_example(dest: Path, *, seed: int = DEFAULT_SEED) -> None:
    """Write the database-tenancy (Moodle-flavoured) example: one SQLite file per customer.

    ``dest/{acme,globex}.db`` (no foreign keys declared), the shared content-addressed file
    pool ``dest/filedir/`` and ``dest/learnexit.toml``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for slug in LEGACY_CUSTOMERS:
        if (dest / f"{slug}.db").exists():
            raise FileExistsError(f"{dest / f'{slug}.db'} already exists")
    for slug in LEGACY_CUSTOMERS:
        rows, files = _legacy_rows(slug, seed)
        _write_media(dest, {f"filedir/{h[0:2]}/{h[2:4]}/{h}": data for h, data in files.items()})

        def build(engine: sa.Engine, rows: dict[str, list[dict[str, Any]]] = rows) -> None:
            LEGACY_METADATA.create_all(engine)
            with engine.begin() as conn:
                for table in LEGACY_METADATA.sorted_tables:
                    _insert(conn, table, rows[table.name])

        _build_sqlite(dest / f"{slug}.db", build)
    (dest / "learnexit.toml").write_text(_LEGACY_CONFIG, encoding="utf-8")
    (dest / "learnexit.toml").chmod(0o600)  # a config may hold a password: private, as init writes it


def build_example(
    dest: Path,
    *,
    activity_rows: int | None = None,
    users_per_customer: int | None = None,
    seed: int = DEFAULT_SEED,
) -> ExampleInfo:
    """Write the example LMS into ``dest``: ``lms.db``, ``media/``, ``learnexit.toml``, ``legacy/``.

    ``dest`` may exist but must not hold an ``lms.db`` already (FileExistsError).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    database = dest / "lms.db"
    if database.exists():
        raise FileExistsError(f"{database} already exists")
    for slug in LEGACY_CUSTOMERS:
        if (dest / "legacy" / f"{slug}.db").exists():
            raise FileExistsError(f"{dest / 'legacy' / f'{slug}.db'} already exists")

    def build(engine: sa.Engine) -> ExampleInfo:
        build_shared_schema(engine)
        return populate_shared(
            engine,
            media_root=dest / "media",
            activity_rows=activity_rows,
            users_per_customer=users_per_customer,
            seed=seed,
        )

    info = _build_sqlite(database, build)
    (dest / "learnexit.toml").write_text(_SHARED_CONFIG, encoding="utf-8")
    (dest / "learnexit.toml").chmod(0o600)
    build_legacy_example(dest / "legacy", seed=seed)
    return info
