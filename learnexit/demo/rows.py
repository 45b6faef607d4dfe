"""The shared example while it is generated: its state (rows, counts, media) and the small
helpers every generating step uses.

Each step draws from its own random stream (``SharedData.rng(part)``), so more activity
rows never change the courses, and so on.  Counts are the truth known by construction:
a row is counted for its customer when it is generated.
"""

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .pools import DATA_END, DATA_START, DEFAULT_ACTIVITY_ROWS, ORGS, OrgSpec
from .schema import OWNED_TABLES, SHARED_METADATA

__all__ = [
    "OrgState",
    "Person",
    "Rows",
    "SharedData",
    "after",
    "ascii_slug",
    "cents",
    "moment",
    "numbered",
    "phone_number",
]

Rows = list[tuple[Any, dict[str, Any]]]
"""Rows keyed by the instant that orders them, before ``numbered`` gives them ids."""


def ascii_slug(text: str) -> str:
    """``text`` folded to ASCII, lower case, words joined with dots (for e-mail names)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    words = ["".join(ch for ch in word if ch.isalnum()) for word in folded.replace("-", " ").split()]
    return ".".join(w for w in words if w)


def phone_number(country: str, rng: random.Random) -> str:
    """A fictional phone number in the style of ``country``."""
    # Numbers from ranges set aside for fiction and documentation.
    if country == "US":
        return f"+1 (555) 01{rng.randrange(10)}-{rng.randrange(1000, 10000)}"
    if country == "GB":
        return f"+44 20 7946 0{rng.randrange(100, 1000)}"
    return f"070-17{rng.randrange(10)} {rng.randrange(10, 100)} {rng.randrange(10, 100)}"


def cents(value: int) -> Decimal:
    """``value`` hundredths as a two-place decimal."""
    return Decimal(value).scaleb(-2)


def moment(rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    """A random whole-second instant in ``start``..``end`` (``start`` when the span is empty)."""
    span = int((end - start).total_seconds())
    return start if span <= 0 else start + dt.timedelta(seconds=rng.randrange(span))


def after(rng: random.Random, start: dt.datetime, low: int, high: int) -> dt.datetime:
    """An instant ``low``..``high`` seconds after ``start``, never past the example's end."""
    return min(start + dt.timedelta(seconds=rng.randrange(low, high)), DATA_END)


def numbered(keyed: Rows) -> list[dict[str, Any]]:
    """Sort by key (stable) and give ids 1..n: ids interleave customers, as in real systems."""
    keyed.sort(key=lambda item: item[0])
    rows = []
    for number, (_key, row) in enumerate(keyed, start=1):
        row["id"] = number
        rows.append(row)
    return rows


@dataclass
class Person:
    """Someone in one organisation: the ``users`` row and how they belong to the customer."""

    user: dict[str, Any]
    role: str
    member: bool
    login: bool
    joined_at: dt.datetime


@dataclass
class OrgState:
    """One customer while its rows are generated."""

    spec: OrgSpec
    id: int
    active_from: dt.datetime
    people: list[Person]
    courses: list[dict[str, Any]]

    @property
    def members(self) -> list[Person]:
        """The people who are members of the organisation."""
        return [p for p in self.people if p.member]

    @property
    def staff(self) -> list[Person]:
        """The members who are admins or teachers."""
        return [p for p in self.people if p.member and p.role in ("admin", "teacher")]


class SharedData:
    """Every row of the shared example in memory, filled in by the generating steps."""

    def __init__(self, seed: int, activity_rows: int | None, users_per_customer: int | None) -> None:
        if users_per_customer is not None and users_per_customer < 1:
            raise ValueError("users_per_customer must be at least 1")
        if activity_rows is not None and activity_rows < 0:
            raise ValueError("activity_rows must not be negative")
        self.seed = seed
        self.users_per_customer = users_per_customer
        self.rows: dict[str, list[dict[str, Any]]] = {t.name: [] for t in SHARED_METADATA.sorted_tables}
        self.counts: dict[str, dict[str, int]] = {o.slug: dict.fromkeys(OWNED_TABLES, 0) for o in ORGS}
        self.media: dict[str, bytes] = {}
        self.orgs = [
            OrgState(spec, number, max(spec.created_at, DATA_START), [], [])
            for number, spec in enumerate(ORGS, start=1)
        ]
        self.course_org: dict[int, OrgState] = {}
        total = DEFAULT_ACTIVITY_ROWS if activity_rows is None else activity_rows
        acme = round(total * 0.60)
        globex = min(round(total * 0.25), total - acme)
        self.activity_split = [acme, globex, total - acme - globex]

    def rng(self, part: str) -> random.Random:
        """The random stream of one generating step."""
        # One stream per part: more activity rows never change the courses, and so on.
        return random.Random(f"learnexit-example:{self.seed}:{part}")

    def count(self, org: OrgState, table: str, n: int = 1) -> None:
        """Count ``n`` rows of ``table`` for ``org``'s customer."""
        self.counts[org.spec.slug][table] += n
