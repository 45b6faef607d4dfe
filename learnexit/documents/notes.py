"""Export notes as sentences, for the people who read them (the summary, index.html, the CLI).

The exporters record terse notes, ``"xlsx: course_materials.body: 1 value longer than
32,767 characters truncated (the full value is in CSV and JSON)"``; a reader gets
``"Excel: 1 value in course_materials.body longer than 32,767 characters was truncated
(the full value is in CSV and JSON)."``: the format by its name, the verb the short
form leaves out, a capital letter where a note without a format starts with a word
(not a table name), and a full stop.
Only the wording changes: every name, number and value of the note stays as it is.
"""

from __future__ import annotations

import re

__all__ = ["FORMAT_NAMES", "note_sentence"]

FORMAT_NAMES = {
    "csv": "CSV",
    "xlsx": "Excel",
    "json": "JSON",
    "xml": "XML",
    "pdf": "PDF",
    "docx": "Word",
    "media": "Media files",
    "sql": "SQL",
}

# "<table.column>: <n> value(s) <what happened>" (values.Sanitiser.report)
_VALUES = re.compile(r"(?P<where>[^\s:]+): (?P<n>[\d,]+) (?P<noun>values?) (?P<rest>.+)", re.S)
_PARTICIPLE = re.compile(r"\b(written|truncated|rounded|replaced|removed|dropped|left out)\b")


def _values_sentence(match: re.Match[str]) -> str:
    one = match["noun"] == "value"
    rest = match["rest"]
    if rest.startswith("contained ") and ": " in rest:  # "contained X: replaced by Y"
        what, _, done = rest.partition(": ")
        rest = f"{what}; {'it was' if one else 'they were'} {done}"
    else:
        verb = _PARTICIPLE.search(rest)
        if verb is not None:
            rest = f"{rest[: verb.start()]}{'was' if one else 'were'} {rest[verb.start() :]}"
    return f"{match['n']} {match['noun']} in {match['where']} {rest}"


def note_sentence(note: str) -> str:
    """``note`` (``"<format>: <text>"`` or plain text) written as a sentence."""
    fmt, sep, text = note.partition(": ")
    label = FORMAT_NAMES.get(fmt) if sep else None
    if label is None:
        text = note
    text = text.strip()
    if not text:
        return note
    values = _VALUES.fullmatch(text)
    if values is not None:
        text = _values_sentence(values)
    elif label is None:  # (after "Excel: " the note goes on in lower case)
        first = re.match(r"[A-Za-z]+", text)
        if first is not None and text[first.end() : first.end() + 1] in ("", " ", ","):  # a word, not a name
            text = text[0].upper() + text[1:]
    if not text.endswith((".", "!", "?")):
        text += "."
    return f"{label}: {text}" if label else text
