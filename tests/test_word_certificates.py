"""Word certificates written from a template (``word.fast_certificate_docx``) are the
packages python-docx lays out for them (``word.certificate_docx``).

Each render process lays a certificate out once per language (and with or without a score
line) with marks where its texts go, and then writes every certificate as that package
with the marks replaced: every part the same bytes as python-docx's own, whatever the
texts (hostile XML, emoji, characters XML cannot hold, long names), or — where python-docx
would write a text otherwise (a tab, a line break, white space at an end, an empty line,
a title too long for the core properties) — nothing, and the full layout writes it.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learnexit.documents import word
from learnexit.documents.model import Certificate

PIECES = ["&", "<", ">", '"', "'", "&amp;", "]]>", "🎓", "åäö", "\x00", "\x0b", "\ufffe", "\ue000", " ", "x", "Ω"]
text = st.lists(st.one_of(st.sampled_from(PIECES), st.characters(exclude_categories=["Cs"])), max_size=8).map("".join)


def parts(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        return {info.filename: zf.read(info) for info in zf.infolist()}


def both(cert: Certificate) -> tuple[dict[str, bytes] | None, dict[str, bytes]]:
    fast = io.BytesIO()
    made = word.fast_certificate_docx(cert, fast)
    full = io.BytesIO()
    word.certificate_docx(cert, full)
    return (parts(fast.getvalue()) if made else None), parts(full.getvalue())


def cert(**changes: Any) -> Certificate:
    base: dict[str, Any] = {
        "lang": "sv",
        "organisation": "Acme Lärande AB",
        "vendor": "Vendor",
        "person": "Anna Andersson",
        "course": "Brandskydd 🔥 grundkurs",
        "issued": "2026-01-05",
        "number": "ACME-2026-0017",
        "score": "92 %",
        "reproduced": "Återgiven från LMS",
        "completed": None,
    }
    base.update(changes)
    return Certificate(**base)


@settings(max_examples=120, deadline=None)
@given(
    lang=st.sampled_from(["en", "sv"]),
    organisation=text,
    person=text,
    course=text,
    score=st.one_of(st.none(), text),
    number=text,
    completed=st.one_of(st.none(), text),
)
def test_a_certificate_from_its_template_is_python_docxs_package(
    lang: str, organisation: str, person: str, course: str, score: str | None, number: str, completed: str | None
) -> None:
    c = cert(lang=lang, organisation=organisation, person=person, course=course, score=score, number=number)
    c = cert(**{**c.__dict__, "completed": completed})
    fast, full = both(c)
    if fast is not None:
        assert fast == full  # every part, byte for byte (the zip's order differs: the varying parts last)


@pytest.mark.parametrize(
    "changes,made",
    [
        ({}, True),
        ({"score": None}, True),
        ({"score": ""}, True),  # (no score line, as with None)
        ({"completed": "hat den Kurs abgeschlossen"}, True),
        ({"person": '<b>&amp;</b> "O\'Brien" 🎓'}, True),
        ({"person": "nul\x00and\x0bvt"}, True),  # (replaced by U+FFFD, as python-docx's path does)
        ({"person": "a" * 240}, True),
        ({"person": "a" * 250}, False),  # (the title, "Kursintyg – " and the name, is cut at 255)
        ({"organisation": "o" * 256}, False),
        ({"person": "tab\there"}, False),
        ({"course": "line\nbreak"}, False),
        ({"course": "cr\rhere"}, False),
        ({"number": " padded"}, False),
        ({"number": "padded\u00a0"}, False),  # (str.strip's white space: python-docx preserves it)
        ({"reproduced": ""}, False),  # (an empty run has no text element)
        ({"person": "mark \ue000"}, False),
    ],
)
def test_what_the_template_writes_and_what_it_leaves_to_python_docx(changes: dict[str, Any], made: bool) -> None:
    fast, full = both(cert(**changes))
    assert (fast is not None) == made
    if fast is not None:
        assert fast == full
    # whichever writes it, the text is there as given
    document = full["word/document.xml"].decode()
    for value in changes.values():
        if value and "\t" not in value and "\n" not in value and "\r" not in value and "\x00" not in value:
            assert word.escape(value.strip()) in document or len(value) > 200


def test_document_docx_writes_certificates_from_templates_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    laid_out: list[str] = []
    real = word.certificate_docx

    def full(c: Certificate, target: Any) -> None:
        laid_out.append(c.person)
        real(c, target)

    monkeypatch.setattr(word, "certificate_docx", full)
    monkeypatch.setattr(word, "_TEMPLATES", {})
    for person in ["Anna", "Bo", "tab\there", "Cecilia"]:
        word.document_docx(cert(person=person), io.BytesIO())
    # one layout for the template (marks), one for the text it cannot take
    assert laid_out == ["\ue0001\ue001", "tab\there"]


def test_a_template_whose_marks_do_not_come_out_plain_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(word, "_TEMPLATES", {})
    monkeypatch.setattr(word, "_MARK", "\t{}")  # (python-docx writes a tab of its own: no mark is found)
    assert word.certificate_template("sv", True) is None
    out = io.BytesIO()
    assert not word.fast_certificate_docx(cert(), out)
    assert out.getvalue() == b""
