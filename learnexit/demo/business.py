"""Generating the example's business and usage rows: reports, invoices, page views,
attachments (with their media files) and the activity log (streamed in batches)."""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import itertools
import random
from collections.abc import Iterator
from typing import Any

from .media import media_file
from .pools import ACTIONS_COURSE, ACTIONS_SYSTEM, ACTIONS_USER, DATA_END, DATA_START, DETAILS
from .rows import OrgState, Rows, SharedData, cents, moment, numbered

__all__ = ["BATCH", "activity_batches", "business"]

BATCH = 5000
"""Rows per INSERT (and per activity_log batch)."""


def business(data: SharedData) -> None:
    """Reports, invoices (one number series for all customers), page views and attachments."""
    rng = data.rng("business")
    rows = data.rows
    reports: Rows = []
    invoices: Rows = []
    views: Rows = []
    materials_of: dict[int, list[int]] = {}
    for m in rows["course_materials"]:
        materials_of.setdefault(m["course_id"], []).append(m["id"])

    for org in data.orgs:
        _reports(data, rng, org, reports)
        _invoices(data, rng, org, invoices)
        _page_views(data, rng, org, materials_of, views)
        _attachments(data, rng, org)

    rows["reports"] = numbered(reports)
    rows["page_views"] = numbered(views)
    rows["invoices"] = numbered(invoices)
    serials: dict[int, int] = {}
    for invoice in rows["invoices"]:
        year = invoice["issued_on"].year
        serials[year] = serials.get(year, 0) + 1
        # The vendor numbers its invoices in one series across all customers.
        invoice["number"] = f"LP-{year}-{serials[year]:04d}"


def _reports(data: SharedData, rng: random.Random, org: OrgState, reports: Rows) -> None:
    for title, kind in (
        (f"Genomförda kurser – {org.spec.slug}", "completions"),
        ("Aktivitet per månad", "activity"),
        ("Fakturaunderlag, Q3", "billing"),
    ):
        at = moment(rng, org.active_from, DATA_END)
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
                {"organisation_id": org.id, "title": title, "kind": kind, "generated_at": at, "content": content},
            )
        )
        data.count(org, "reports")


def _invoices(data: SharedData, rng: random.Random, org: OrgState, invoices: Rows) -> None:
    spec = org.spec
    admins = [p for p in org.people if p.member and p.role == "admin"]
    for k, (year, month) in enumerate(spec.invoice_months):
        issued = dt.date(year, month, spec.invoice_day)
        amount = spec.invoice_amount + rng.randrange(-5000, 5000) * 10
        contact = None
        if admins and not (spec.slug == "initech" and k % 2 == 1):
            contact = admins[0].user["id"]
        invoices.append(
            (
                (issued, org.id),
                {
                    "organisation_id": org.id,
                    "number": "",
                    "issued_on": issued,
                    "amount": cents(amount),
                    "currency": spec.currency,
                    "paid": k < len(spec.invoice_months) - 1,
                    "billing_contact_id": contact,
                },
            )
        )
        data.count(org, "invoices")


def _page_views(
    data: SharedData, rng: random.Random, org: OrgState, materials_of: dict[int, list[int]], views: Rows
) -> None:
    people = [p.user["id"] for p in org.people]
    course_ids = [c["id"] for c in org.courses]
    for _ in range(org.spec.page_views):
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
        at = moment(rng, org.active_from, DATA_END)
        uid = None if rng.random() < 0.15 else rng.choice(people)
        views.append((at, {"organisation_id": org.id, "user_id": uid, "path": path, "viewed_at": at}))
        data.count(org, "page_views")


def _attachments(data: SharedData, rng: random.Random, org: OrgState) -> None:
    rows = data.rows
    slug = org.spec.slug
    uploaders = org.staff or org.members or org.people
    course_ids = [c["id"] for c in org.courses]
    for k, (filename, content_type) in enumerate(org.spec.attachments):
        aid = len(rows["attachments"]) + 1
        digest = rng.randbytes(16).hex()
        storage_path = f"{slug}/{digest[0:2]}/{digest[2:4]}/{digest}"
        content = media_file(content_type, f"learnexit example: {slug} attachment {aid}", rng)
        data.media[storage_path] = content
        uploader = None if k == 2 else rng.choice(uploaders).user["id"]
        rows["attachments"].append(
            {
                "id": aid,
                "course_id": rng.choice(course_ids),
                "uploaded_by": uploader,
                "storage_path": storage_path,
                "filename": filename,
                "content_type": content_type,
                "size": len(content),
                "md5": hashlib.md5(content).hexdigest(),
            }
        )
        data.count(org, "attachments")


def activity_batches(data: SharedData) -> Iterator[list[dict[str, Any]]]:
    """activity_log rows in id order, ``BATCH`` at a time, chronological across customers."""
    rng = data.rng("activity")
    streams = []
    for index, (org, n) in enumerate(zip(data.orgs, data.activity_split, strict=True)):
        span = int((DATA_END - org.active_from).total_seconds())
        base = int((org.active_from - DATA_START).total_seconds())
        offsets = sorted(base + rng.randrange(span) for _ in range(n))
        streams.append(zip(offsets, itertools.repeat(index, n), strict=True))
    users_of = [[p.user["id"] for p in org.people] for org in data.orgs]
    courses_of = [[c["id"] for c in org.courses] for org in data.orgs]
    org_ids = [org.id for org in data.orgs]
    n_details = len(DETAILS)
    random_ = rng.random
    choice = rng.choice
    start = DATA_START
    delta = dt.timedelta
    batch: list[dict[str, Any]] = []
    number = 0
    for t, index in heapq.merge(*streams):
        number += 1
        roll = random_()
        if roll < 0.03:
            user_id = None
            course_id = None
            action = choice(ACTIONS_SYSTEM)
        elif roll < 0.25:
            user_id = choice(users_of[index])
            course_id = None
            action = choice(ACTIONS_USER)
        else:
            user_id = choice(users_of[index])
            course_id = choice(courses_of[index])
            action = choice(ACTIONS_COURSE)
        pick = int(random_() * 2 * n_details)
        batch.append(
            {
                "id": number,
                "organisation_id": org_ids[index],
                "user_id": user_id,
                "course_id": course_id,
                "action": action,
                "detail": DETAILS[pick] if pick < n_details else None,
                "created_at": start + delta(seconds=t),
            }
        )
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
