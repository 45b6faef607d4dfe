"""The example's fixed data: its three customers, the period it covers, and the pools of
names, titles and texts the generator draws from (generated data tables)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .schema import SHARED_USER_NAME

__all__ = [
    "ACTIONS_COURSE",
    "ACTIONS_SYSTEM",
    "ACTIONS_USER",
    "ANSWERS",
    "CATALOGUE",
    "COMMENTS",
    "DATA_END",
    "DATA_START",
    "DEFAULT_ACTIVITY_ROWS",
    "DESCRIPTIONS",
    "DETAILS",
    "FIRST_NAMES",
    "LAST_NAMES",
    "LOCALES",
    "MATERIAL_BODIES",
    "ORGS",
    "PASSWORD_ALPHABET",
    "QUESTIONS",
    "QUIZ_TITLES",
    "TOPICS",
    "OrgSpec",
]

DEFAULT_ACTIVITY_ROWS = 4000
# No data after this instant: the example's "now" is the end of November 2026.
DATA_END = dt.datetime(2026, 11, 20, 17, 0, 0)
DATA_START = dt.datetime(2024, 1, 8, 7, 0, 0)


@dataclass(frozen=True)
class OrgSpec:
    """One example customer: who it is, what it bought and how much data it has."""

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


ORGS = (
    OrgSpec(
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
    OrgSpec(
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
    OrgSpec(
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

FIRST_NAMES = (
    "Åsa", "Björn", "Märta", "Göran", "Sven", "Ingrid", "Lars", "Karin", "Jürgen", "Zoë",
    "José", "François", "Siobhán", "Łukasz", "Ngozi", "Wei", "Aiko", "Håkan", "Anneli",
    "Pekka", "Ömer", "Chloé", "Dmitrij", "Nils", "Eva", "Mohammed", "Fatima", "Linnéa",
    "Ola", "Per", "Sofía", "Maja", "Elif", "Jonas", "Örjan", "Signe", "Noah", "Leila",
)  # fmt: skip
LAST_NAMES = (
    "Öberg", "Åkesson", "Lindqvist", "Bäckström", "Müller", "O'Brien", "Nyström", "García",
    "Søgaard", "Kowalski", "Nguyen", "Smith-Jones", "van der Berg", "D'Angelo", "Eriksson",
    "Svensson", "Ahmed", "Ljungberg", "Törnqvist", "Virtanen", "Yılmaz", "Håkansson",
    "Andersson", "Petrović", "Ólafsdóttir", "de la Cruz", "Ek", "Dubois",
)  # fmt: skip
LOCALES = ("sv-SE", "sv-SE", "en-GB", "en-US", "de-DE", "fi-FI", "nb-NO")
PASSWORD_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

CATALOGUE = (
    ("CAT-GDPR-01", "GDPR – grunderna", "Lärplattformen AB"),
    ("CAT-HLR-02", "HLR & första hjälpen", "Röda Korset Utbildning"),
    ("CAT-XL-03", 'Excel: formler, "pivot" och diagram', "O'Reilly Media"),
    ("CAT-SEC-04", "Informationssäkerhet 🔐", "Lärplattformen AB"),
    ("CAT-LEAD-05", "Leading remote teams", "Globex Press"),
    ("CAT-FIRE-06", "Brandskydd, grundkurs", "Brandskyddsföreningen"),
)

DESCRIPTIONS = (
    "En introduktion för nyanställda.\nKursen tar ca 45 minuter, och avslutas med ett kort test.",
    'Kursen bygger på "Arbetsmiljölagen (1977:1160)", kapitel 3.\nLäs materialet i förväg!',
    'Course outline:\n- part 1, basics\n- part 2, "advanced"\n\nQuestions? Mail training@globex.example',
    "",
    "Ingen beskrivning ännu 🙈",
    "Obligatorisk för alla chefer; se även intranätet → HR → Utbildning.",
)
TOPICS = ("Grunderna", "Fördjupning", "Praktik & övningar", 'Repetition, "quiz"', "Case: Globex vs. Acme")
MATERIAL_BODIES = (
    "Läs det här först.\n\nKursen består av tre delar: teori, övningar och ett avslutande test.",
    'Citat från VD: "Säkerhet först, alltid."\nFrågor? Kontakta din chef, eller HR.',
    "Checklista:\n1. Logga in\n2. Titta på filmen (12 min)\n3. Svara på frågorna, minst 80 % rätt",
    "Se bilaga: diagram (1).png\r\nWindows-radbrytningar finns också i riktiga data.",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s",
)
QUIZ_TITLES = ("Kunskapstest 1", 'Slutprov "Modul 2"', "Quiz: säkerhet, del 1", "Self-check ✅")
QUESTIONS = (
    "Hur nöjd är du med kursen? (1–5)",
    'Vad var bäst, och vad kan bli "ännu bättre"?',
    "Skulle du rekommendera kursen till en kollega?",
    "Övriga kommentarer\n(valfritt)",
)
ANSWERS = (
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
COMMENTS = (
    "Toppen! 🎉",
    "Bra kurs, men quizet hade fel svar på fråga 3.",
    'Saknade "verkliga" exempel.\nAnnars bra.',
    "Too long; didn't watch.",
    "-",
    "Betyg: 4/5, skulle gärna se en del 2",
)
ACTIONS_COURSE = (
    "course.viewed",
    "material.viewed",
    "quiz.started",
    "quiz.submitted",
    "video.played",
    "certificate.downloaded",
)
ACTIONS_USER = ("user.login", "user.logout", "profile.updated", "password.reset_requested", "search")
ACTIONS_SYSTEM = ("system.sync_completed", "system.backup_verified", "report.generated")
DETAILS = (
    '{"ip": "192.0.2.17", "agent": "Mozilla/5.0 (X11; Linux x86_64)"}',
    "score=8.5; attempt=2",
    "C:\\Users\\asa\\Downloads\\kursplan.pdf",
    "q=brandskydd\tfilter=alla",
    'sök: "GDPR, del 2"',
    "rad 1\nrad 2",
    "🎉 badge earned",
)
