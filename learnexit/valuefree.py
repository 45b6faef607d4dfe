"""Messages built from other libraries' exceptions, without the data values they quote.

A driver's message may quote the value that failed: PostgreSQL's ``invalid input syntax
for type integer: "x"``, MySQL's ``Duplicate entry 'x@y' for key 'users.email'`` and
``Incorrect string value: '\\xC3' for column 'name'``, SQLite's ``Could not decode to
UTF-8 column 'name' with text '…'``.  No source value may enter an error message, a log
line, a ledger row or an audit entry, so :func:`without_values` keeps a quoted text only
where it names a database object (after ``constraint``, ``column``, ``key``, ``table``…)
and replaces every other quoted text, and every ``(…)=(…)`` key detail, with ``…``.
"""

from __future__ import annotations

import re

__all__ = ["first_line", "without_values"]

# Words after which a quoted text is an identifier, not a value.
_NAMES = (
    "constraint|column|columns|key|table|relation|index|database|schema|type|function|sequence|view"
    "|trigger|role|user|field|operator|extension|collation|savepoint|cursor|statement|domain|enum"
)
_QUOTED = re.compile(r"""(?P<q>["'`])(?:\\.|(?!(?P=q)).)*(?P=q)""", re.S)
_NAMED = re.compile(rf"(?i)\b(?:{_NAMES})\s*$")
_KEY_DETAIL = re.compile(r"\)=\((?:[^()]|\([^()]*\))*\)")
_MYSQL = re.compile(r"""\((\d+), (["'])(.*)\2\)""", re.S)  # pymysql: (1062, "the server's message")


def without_values(text: str) -> str:
    """``text`` with the quoted values (not the quoted names) replaced by ``'…'``."""
    mysql = _MYSQL.search(text)
    if mysql is not None:  # the server's message inside the driver's tuple
        head, tail = without_values(text[: mysql.start()]), without_values(text[mysql.end() :])
        return f"{head}({mysql.group(1)}, {mysql.group(2)}{without_values(mysql.group(3))}{mysql.group(2)}){tail}"
    text = _KEY_DETAIL.sub(")=(…)", text)
    out = []
    pos = 0
    for m in _QUOTED.finditer(text):
        out.append(text[pos : m.start()])
        if _NAMED.search(text[max(0, m.start() - 24) : m.start()]) and len(m.group(0)) <= 130:
            out.append(m.group(0))
        else:
            out.append(f"{m.group('q')}…{m.group('q')}")
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` without values (for an unexpected error)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {without_values(lines[0]) if lines else ''}".rstrip(": ")
