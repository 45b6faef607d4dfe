"""The database-tenancy example (Moodle-flavoured): one SQLite file per customer with
Moodle's table names, no foreign keys declared, and a content-addressed file pool."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from .media import media_file
from .pools import FIRST_NAMES, LAST_NAMES
from .rows import ascii_slug
from .schema import id_column

__all__ = ["LEGACY_METADATA", "legacy_rows"]


def _define_legacy_schema(md: sa.MetaData) -> sa.MetaData:
    # Moodle declares no foreign keys at all: only primary keys.
    sa.Table(
        "mdl_user",
        md,
        id_column(),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("firstname", sa.String(100), nullable=False),
        sa.Column("lastname", sa.String(100), nullable=False),
        sa.Column("email", sa.String(100), nullable=False),
        sa.Column("deleted", sa.Integer, nullable=False, default=0, server_default="0"),
    )
    sa.Table(
        "mdl_course",
        md,
        id_column(),
        sa.Column("fullname", sa.String(254), nullable=False),
        sa.Column("shortname", sa.String(255), nullable=False),
    )
    sa.Table(
        "mdl_enrol",
        md,
        id_column(),
        sa.Column("courseid", sa.Integer, nullable=False),
        sa.Column("enrol", sa.String(20), nullable=False),
    )
    sa.Table(
        "mdl_user_enrolments",
        md,
        id_column(),
        sa.Column("enrolid", sa.Integer, nullable=False),
        sa.Column("userid", sa.Integer, nullable=False),
        sa.Column("timecreated", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "mdl_grade_items",
        md,
        id_column(),
        sa.Column("courseid", sa.Integer, nullable=False),
        sa.Column("itemname", sa.String(255), nullable=True),
        sa.Column("grademax", sa.Numeric(10, 5), nullable=False),
    )
    sa.Table(
        "mdl_grade_grades",
        md,
        id_column(),
        sa.Column("itemid", sa.Integer, nullable=False),
        sa.Column("userid", sa.Integer, nullable=False),
        sa.Column("finalgrade", sa.Numeric(10, 5), nullable=True),
    )
    sa.Table(
        "mdl_logstore_standard_log",
        md,
        id_column(),
        sa.Column("userid", sa.Integer, nullable=False),
        sa.Column("courseid", sa.Integer, nullable=False),
        sa.Column("eventname", sa.String(255), nullable=False),
        sa.Column("timecreated", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "mdl_files",
        md,
        id_column(),
        sa.Column("contenthash", sa.String(40), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("filesize", sa.BigInteger, nullable=False),
        sa.Column("userid", sa.Integer, nullable=True),
        sa.Column("component", sa.String(100), nullable=False),
    )
    sa.Table(
        "mdl_config",
        md,
        id_column(),
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


@dataclass
class _Site:
    """One customer's Moodle while its rows are generated."""

    slug: str
    rng: random.Random
    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {t.name: [] for t in LEGACY_METADATA.sorted_tables}
    )
    files: dict[str, bytes] = field(default_factory=dict)

    def add(self, table: str, **values: Any) -> int:
        values["id"] = len(self.rows[table]) + 1
        self.rows[table].append(values)
        return int(values["id"])


def legacy_rows(slug: str, seed: int) -> tuple[dict[str, list[dict[str, Any]]], dict[str, bytes]]:
    """The rows per table of customer ``slug``'s Moodle and its files by content hash."""
    moodle = _Site(slug, random.Random(f"learnexit-legacy:{seed}:{slug}"))
    site = _LEGACY_SITES[slug]
    people = _users(moodle, site)
    course_ids = _courses(moodle, site, people)
    rng = moodle.rng
    for t in sorted(rng.randrange(_EPOCH0, _EPOCH1) for _ in range(site.logs)):
        event = rng.choice(_MOODLE_EVENTS)
        courseid = 1 if event == "\\core\\event\\user_loggedin" else rng.choice(course_ids)
        moodle.add(
            "mdl_logstore_standard_log", userid=rng.choice(people), courseid=courseid, eventname=event, timecreated=t
        )
    _files(moodle, site, people)
    for name, value in (
        ("version", "2022112800"),
        ("release", "4.1 (Build: 20221128)"),
        ("wwwroot", f"https://moodle.{site.domain}"),
        ("siteadmins", "2"),
        ("lang", "sv" if slug == "acme" else "en"),
        ("supportemail", "support@larplattformen.example"),
    ):
        moodle.add("mdl_config", name=name, value=value)
    return moodle.rows, moodle.files


_EPOCH0 = int(dt.datetime(2024, 1, 8, tzinfo=dt.UTC).timestamp())
_EPOCH1 = int(dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp())


def _users(moodle: _Site, site: _LegacySite) -> list[int]:
    rng, add, domain = moodle.rng, moodle.add, site.domain
    add("mdl_user", username="guest", firstname="Guest user", lastname=" ", email="root@localhost", deleted=0)
    add("mdl_user", username="admin", firstname="Admin", lastname="User", email=f"moodle-admin@{domain}", deleted=0)
    people: list[int] = []
    for k in range(site.users):
        if k < len(site.people):
            first, last = site.people[k]
        else:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        username = (ascii_slug(f"{first} {last}") or "user").replace(".", "") + str(k + 1)
        email = f"{username}@{domain}"
        deleted = 0
        if k == site.users - 1:
            # How Moodle leaves a deleted account: renamed, e-mail cleared, row kept.
            username, email, deleted = f"{email}.1712345678", "", 1
        people.append(add("mdl_user", username=username, firstname=first, lastname=last, email=email, deleted=deleted))
    return people


def _courses(moodle: _Site, site: _LegacySite, people: list[int]) -> list[int]:
    rng, add, slug = moodle.rng, moodle.add, moodle.slug
    add("mdl_course", fullname=site.site, shortname=slug)  # id 1: the site itself, as in Moodle
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
            add("mdl_user_enrolments", enrolid=manual, userid=uid, timecreated=rng.randrange(_EPOCH0, _EPOCH1))
            for item, grademax in items:
                grade = None
                if rng.random() >= 0.2:  # Moodle leaves finalgrade NULL until something is graded
                    grade = Decimal(rng.randint(0, grademax * 100)).scaleb(-2).quantize(Decimal("0.00001"))
                add("mdl_grade_grades", itemid=item, userid=uid, finalgrade=grade)
    return course_ids


def _files(moodle: _Site, site: _LegacySite, people: list[int]) -> None:
    rng, add, slug = moodle.rng, moodle.add, moodle.slug
    for k, (filename, content_type, component) in enumerate(site.files):
        content = media_file(content_type, f"learnexit legacy example: {slug} file {k + 1}", rng)
        contenthash = hashlib.sha1(content).hexdigest()
        moodle.files[contenthash] = content
        add(
            "mdl_files",
            contenthash=contenthash,
            filename=filename,
            filesize=len(content),
            userid=rng.choice(people),
            component=component,
        )
        if slug == "acme" and k == 0:
            # Moodle stores one copy of identical content: two rows, one file in the pool.
            add(
                "mdl_files",
                contenthash=contenthash,
                filename="kursplan (kopia).pdf",
                filesize=len(content),
                userid=rng.choice(people),
                component="user",
            )
