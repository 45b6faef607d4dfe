"""Generating the example's courses and their content: sections (nested), materials (one
over 40 000 characters), quizzes, surveys and their questions."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from .pools import CATALOGUE, DESCRIPTIONS, MATERIAL_BODIES, QUESTIONS, QUIZ_TITLES, TOPICS
from .rows import OrgState, Rows, SharedData, moment, numbered

__all__ = ["courses", "structure"]


def courses(data: SharedData) -> None:
    """Each organisation's courses, ids in order of creation across customers."""
    rng = data.rng("courses")
    keyed: Rows = []
    for org in data.orgs:
        for k, title in enumerate(org.spec.courses):
            created = moment(rng, org.active_from, org.active_from + dt.timedelta(days=30 + 60 * k))
            course = {
                "organisation_id": org.id,
                "catalogue_item_id": rng.randrange(1, len(CATALOGUE) + 1) if rng.random() < 0.5 else None,
                "code": f"{org.spec.prefix}-{101 + k}",
                "title": title,
                "description": DESCRIPTIONS[(k + org.id) % len(DESCRIPTIONS)],
                "created_at": created,
            }
            org.courses.append(course)
            keyed.append((created, course))
            data.count(org, "courses")
    data.rows["courses"] = numbered(keyed)
    data.course_org = {c["id"]: data.orgs[c["organisation_id"] - 1] for c in data.rows["courses"]}


def structure(data: SharedData) -> None:
    """Sections, materials, quizzes and surveys of every course."""
    rng = data.rng("structure")
    for course in data.rows["courses"]:
        org = data.course_org[course["id"]]
        first = course is org.courses[0]
        sections = _sections(data, rng, course, org, first)
        _materials(data, rng, course, org, first, sections)
        _quizzes(data, rng, course, org)
        if first or rng.random() < 0.6:
            _survey(data, rng, course, org)


def _sections(data: SharedData, rng: random.Random, course: dict[str, Any], org: OrgState, first: bool) -> list[int]:
    rows = data.rows
    sections: list[int] = []

    def section(parent: int | None, title: str, position: int) -> int:
        sid = len(rows["course_sections"]) + 1
        rows["course_sections"].append(
            {"id": sid, "course_id": course["id"], "parent_id": parent, "title": title, "position": position}
        )
        data.count(org, "course_sections")
        sections.append(sid)
        return sid

    for m in range(1, rng.randint(2, 3) + 1):
        top = section(None, f"Modul {m}: {rng.choice(TOPICS)}", m)
        n_children = rng.randint(1, 2) if m == 1 else rng.randint(0, 2)
        for j in range(1, n_children + 1):
            child = section(top, f"Lektion {m}.{j}", j)
            if (m == 1 and j == 1 and first) or rng.random() < 0.3:
                section(child, f'Övning {m}.{j}.1 – "gör själv"', 1)
    return sections


def _materials(
    data: SharedData, rng: random.Random, course: dict[str, Any], org: OrgState, first: bool, sections: list[int]
) -> None:
    rows = data.rows
    n_materials = rng.randint(3, 5)
    for k in range(n_materials):
        if first and k == 0 and org.spec.slug == "acme":
            title, body, kind = "Personalhandbok (hela)", _handbook(), "page"
        elif first and k == 1:
            title = "Tabell, sökvägar & specialtecken"
            body = "Namn\tAvdelning\tSökväg\nÅsa\tHR\tC:\\Kurser\\Arbetsmiljö\\intro.docx\n"
            kind = "page"
        else:
            title = f"Material {k + 1}: {rng.choice(TOPICS)}"
            body = rng.choice(MATERIAL_BODIES)
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
        data.count(org, "course_materials")


def _quizzes(data: SharedData, rng: random.Random, course: dict[str, Any], org: OrgState) -> None:
    rows = data.rows
    for k in range(rng.randint(1, 2)):
        rows["quizzes"].append(
            {
                "id": len(rows["quizzes"]) + 1,
                "course_id": course["id"],
                "title": QUIZ_TITLES[(k + course["id"]) % len(QUIZ_TITLES)],
                "max_score": Decimal(rng.choice((10, 20, 25, 100))).quantize(Decimal("0.01")),
            }
        )
        data.count(org, "quizzes")


def _survey(data: SharedData, rng: random.Random, course: dict[str, Any], org: OrgState) -> None:
    rows = data.rows
    survey_id = len(rows["surveys"]) + 1
    rows["surveys"].append({"id": survey_id, "course_id": course["id"], "title": f"Kursutvärdering – {course['code']}"})
    data.count(org, "surveys")
    for position, question in enumerate(QUESTIONS[: rng.randint(3, 4)], start=1):
        rows["survey_questions"].append(
            {
                "id": len(rows["survey_questions"]) + 1,
                "survey_id": survey_id,
                "position": position,
                "question": question,
            }
        )
        data.count(org, "survey_questions")


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
