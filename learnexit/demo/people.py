"""Generating the example's customers and people: organisations, contracts, developer keys,
the catalogue, users, memberships and logins."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from .pools import CATALOGUE, DATA_END, DATA_START, FIRST_NAMES, LAST_NAMES, LOCALES, PASSWORD_ALPHABET
from .rows import OrgState, Person, Rows, SharedData, after, ascii_slug, moment, numbered, phone_number
from .schema import SHARED_USER_NAME

__all__ = ["organisations", "users"]


def organisations(data: SharedData) -> None:
    """The organisations, one contract and one developer key each, and the shared catalogue."""
    rng = data.rng("organisations")
    for org in data.orgs:
        spec = org.spec
        data.rows["organisations"].append(
            {
                "id": org.id,
                "slug": spec.slug,
                "name": spec.name,
                "country": spec.country,
                "created_at": spec.created_at,
            }
        )
        data.count(org, "organisations")
        data.rows["contracts"].append(
            {"id": org.id, "organisation_id": org.id, "starts_on": spec.starts_on, "term_months": spec.term_months}
        )
        data.count(org, "contracts")
        data.rows["developer_keys"].append(
            {
                "id": org.id,
                "organisation_id": org.id,
                "key_hash": rng.randbytes(32).hex(),
                "created_at": after(rng, spec.created_at, 3600, 30 * 86400),
            }
        )
    for number, (code, title, provider) in enumerate(CATALOGUE, start=1):
        data.rows["catalogue_items"].append({"id": number, "code": code, "title": title, "provider": provider})


def users(data: SharedData) -> None:
    """Every user (one of them in two organisations), then memberships and logins."""
    rng = data.rng("users")
    shared_user: dict[str, Any] = {
        "name": SHARED_USER_NAME,
        "email": "asa.oberg-nystrom@alumni.example",
        "locale": "sv-SE",
        "phone": "+46 70 123 45 67",
        "created_at": dt.datetime(2024, 2, 3, 8, 41, 17),
    }
    taken_emails: set[str] = {shared_user["email"]}
    everyone: list[dict[str, Any]] = [shared_user]
    for org in data.orgs:
        everyone.extend(_people_of(data, org, rng, shared_user, taken_emails))

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
                "created_at": moment(rng, DATA_START, DATA_START + dt.timedelta(days=30)),
            }
        )
    data.rows["users"] = numbered([(u["created_at"], u) for u in everyone])
    _memberships_and_logins(data, rng)


def _unique_email(name: str, domain: str, taken: set[str]) -> str:
    base = ascii_slug(name) or "user"
    candidate = f"{base}@{domain}"
    n = 2
    while candidate in taken:
        candidate = f"{base}{n}@{domain}"
        n += 1
    taken.add(candidate)
    return candidate


def _people_of(
    data: SharedData, org: OrgState, rng: random.Random, shared_user: dict[str, Any], taken_emails: set[str]
) -> list[dict[str, Any]]:
    """Fill ``org.people``; return the new users rows (the shared person is not new)."""
    spec = org.spec
    n = data.users_per_customer or spec.users
    new: list[dict[str, Any]] = []
    staff_seen = 0
    for k in range(n):
        if k < len(spec.special_people):
            name = spec.special_people[k]
        else:
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        if name == SHARED_USER_NAME:
            joined = moment(rng, org.active_from, org.active_from + dt.timedelta(days=60))
            joined = max(joined, shared_user["created_at"])
            org.people.append(Person(shared_user, "student", True, True, joined))
            continue
        created = moment(rng, org.active_from, DATA_END - dt.timedelta(days=90))
        phone = None
        if rng.random() < 0.7:
            phone = phone_number(spec.country, rng)
        email = _unique_email(name, spec.domain, taken_emails)
        if k == 5:
            email = email.replace("@", "+lms@")  # sub-addressing: still one person
        user = {
            "name": name,
            "email": email,
            "locale": spec.locale if rng.random() < 0.6 else rng.choice(LOCALES),
            "phone": phone,
            "created_at": created,
        }
        new.append(user)
        role = "admin" if staff_seen == 0 else ("teacher" if staff_seen % 7 == 1 else "student")
        staff_seen += 1
        member, login = True, True
        if n >= 6 and k == n - 1:
            member = False  # an SSO account that can sign in but was never added as a member
        elif n >= 6 and k == n - 2:
            login = False  # invited, never activated
        org.people.append(Person(user, role, member, login, after(rng, created, 60, 3600)))
    return new


def _memberships_and_logins(data: SharedData, rng: random.Random) -> None:
    memberships: Rows = []
    logins: Rows = []
    for org in data.orgs:
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
                data.count(org, "memberships")
            if person.login:
                logins.append((person.joined_at, _login(org, person, rng)))
                data.count(org, "logins")
        data.count(org, "users", len(owned))
    data.rows["memberships"] = numbered(memberships)
    data.rows["logins"] = numbered(logins)


def _login(org: OrgState, person: Person, rng: random.Random) -> dict[str, Any]:
    if org.spec.slug == "initech":
        unique_id = "INITECH\\" + (ascii_slug(person.user["name"]).replace(".", "_") or "user")
    else:
        unique_id = person.user["email"]
    never = rng.random() < 0.1
    return {
        "organisation_id": org.id,
        "user_id": person.user["id"],
        "unique_id": unique_id,
        "password_hash": "$2b$12$" + "".join(rng.choices(PASSWORD_ALPHABET, k=53)),
        "workflow_state": "suspended" if rng.random() < 0.05 else "active",
        "last_login_at": None if never else moment(rng, person.joined_at, DATA_END),
    }
