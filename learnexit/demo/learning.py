"""Generating what people did in the example's courses: enrolments, completions,
certificates, quiz attempts, survey answers and feedback."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .pools import ANSWERS, COMMENTS, DATA_END
from .rows import OrgState, Person, Rows, SharedData, after, cents, moment, numbered
from .schema import SHARED_USER_NAME

__all__ = ["learning"]


@dataclass
class _Learning:
    """Rows collected across all courses, keyed by instant until they are numbered."""

    quizzes_of: dict[int, list[dict[str, Any]]]
    survey_of: dict[int, dict[str, Any]]
    questions_of: dict[int, list[dict[str, Any]]]
    enrolments: Rows = field(default_factory=list)
    completions: Rows = field(default_factory=list)
    certificates: list[tuple[Any, dict[str, Any], str]] = field(default_factory=list)
    attempts: Rows = field(default_factory=list)
    answers: Rows = field(default_factory=list)
    feedback: Rows = field(default_factory=list)
    formula_comment_written: bool = False


def learning(data: SharedData) -> None:
    """Enrol teachers and some students in every course and generate what the students did."""
    rng = data.rng("learning")
    rows = data.rows
    quizzes_of: dict[int, list[dict[str, Any]]] = {}
    for quiz in rows["quizzes"]:
        quizzes_of.setdefault(quiz["course_id"], []).append(quiz)
    survey_of = {s["course_id"]: s for s in rows["surveys"]}
    questions_of: dict[int, list[dict[str, Any]]] = {}
    for q in rows["survey_questions"]:
        questions_of.setdefault(q["survey_id"], []).append(q)
    out = _Learning(quizzes_of, survey_of, questions_of)

    for course in rows["courses"]:
        org = data.course_org[course["id"]]
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
            at = after(rng, max(start, person.joined_at), 60, 7 * 86400)
            out.enrolments.append(
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
            data.count(org, "enrolments")
        for person in chosen:
            _student(data, rng, out, course, org, first, person)
    _store(data, out)


def _student(
    data: SharedData,
    rng: random.Random,
    out: _Learning,
    course: dict[str, Any],
    org: OrgState,
    first: bool,
    person: Person,
) -> None:
    cid = course["id"]
    uid = person.user["id"]
    enrolled = moment(rng, max(course["created_at"], person.joined_at), DATA_END - dt.timedelta(days=30))
    forced = first and person.user["name"] == SHARED_USER_NAME
    roll = rng.random()
    state = (
        "completed"
        if forced or roll < 0.35
        else ("active" if roll < 0.9 else ("invited" if roll < 0.95 else "deleted"))
    )
    out.enrolments.append(
        (enrolled, {"course_id": cid, "user_id": uid, "role": "student", "state": state, "enrolled_at": enrolled})
    )
    data.count(org, "enrolments")
    if state in ("invited", "deleted"):
        return
    if state == "completed":
        _completion(data, rng, out, cid, org, uid, enrolled, forced)
    _attempts(data, rng, out, cid, org, uid, enrolled)
    survey = out.survey_of.get(cid)
    if survey is not None and (rng.random() < 0.5 or forced):
        _answers(data, rng, out, survey, org, uid, enrolled)
    formula_due = first and org.spec.slug == "acme" and not out.formula_comment_written
    if formula_due or rng.random() < 0.25:
        at = after(rng, enrolled, 3600, 100 * 86400)
        if formula_due:
            comment: str | None = '=HYPERLINK("http://x")'
            out.formula_comment_written = True
        else:
            comment = None if rng.random() < 0.3 else rng.choice(COMMENTS)
        out.feedback.append(
            (at, {"course_id": cid, "user_id": uid, "rating": rng.randint(1, 5), "comment": comment, "created_at": at})
        )
        data.count(org, "feedback")


def _completion(
    data: SharedData,
    rng: random.Random,
    out: _Learning,
    cid: int,
    org: OrgState,
    uid: int,
    enrolled: dt.datetime,
    forced: bool,
) -> None:
    done = after(rng, enrolled, 3600, 120 * 86400)
    score = None if rng.random() < 0.15 and not forced else cents(rng.randint(4000, 10000))
    out.completions.append((done, {"course_id": cid, "user_id": uid, "completed_at": done, "score": score}))
    data.count(org, "completions")
    if score is None or score >= 50:
        issued = after(rng, done, 1, 600)
        out.certificates.append(
            (issued, {"course_id": cid, "user_id": uid, "code": "", "issued_at": issued}, org.spec.prefix)
        )
        data.count(org, "certificates")


def _attempts(
    data: SharedData, rng: random.Random, out: _Learning, cid: int, org: OrgState, uid: int, enrolled: dt.datetime
) -> None:
    for quiz in out.quizzes_of.get(cid, []):
        if rng.random() >= 0.6:
            continue
        for _ in range(rng.randint(1, 2)):
            started = after(rng, enrolled, 600, 60 * 86400)
            finished = None if rng.random() < 0.05 else after(rng, started, 180, 3000)
            max_score = quiz["max_score"]
            score = (
                Decimal(0).quantize(Decimal("0.01"))
                if finished is None
                else cents(rng.randint(0, int(max_score * 100)))
            )
            out.attempts.append(
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
            data.count(org, "quiz_attempts")


def _answers(
    data: SharedData,
    rng: random.Random,
    out: _Learning,
    survey: dict[str, Any],
    org: OrgState,
    uid: int,
    enrolled: dt.datetime,
) -> None:
    answered = after(rng, enrolled, 3600, 90 * 86400)
    for q in out.questions_of[survey["id"]]:
        # An early answer keeps the wording the question had when it was asked.
        snapshot = q["question"]
        if q["position"] == 1 and answered < dt.datetime(2024, 6, 1):
            snapshot = "Hur nöjd är du med kursen?"
        out.answers.append(
            (
                answered,
                {
                    "survey_id": survey["id"],
                    "question_id": q["id"],
                    "user_id": uid,
                    "question": snapshot,
                    "answer": None if rng.random() < 0.15 else rng.choice(ANSWERS),
                    "answered_at": answered,
                },
            )
        )
        data.count(org, "survey_answers")


def _store(data: SharedData, out: _Learning) -> None:
    rows = data.rows
    rows["enrolments"] = numbered(out.enrolments)
    rows["completions"] = numbered(out.completions)
    rows["quiz_attempts"] = numbered(out.attempts)
    rows["survey_answers"] = numbered(out.answers)
    rows["feedback"] = numbered(out.feedback)
    out.certificates.sort(key=lambda item: item[0])
    serials: dict[tuple[str, int], int] = {}
    for number, (issued, row, prefix) in enumerate(out.certificates, start=1):
        serial = serials[(prefix, issued.year)] = serials.get((prefix, issued.year), 0) + 1
        row["id"] = number
        row["code"] = f"{prefix}-{issued.year}-{serial:04d}"
        rows["certificates"].append(row)
