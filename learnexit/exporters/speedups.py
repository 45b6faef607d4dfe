"""The CSV, SQL and Excel writers' optional inner loop in C (``learnexit/_speedups.c``).

``native`` is the compiled module, or ``None`` where it was not built (no C compiler at
install time) or ``LEARNEXIT_NO_SPEEDUPS=1`` turns it off; the writers then take their
Python path, which writes the same bytes.  The C functions handle the values whose text
is unambiguous and hand every other column back (see ``_speedups.c``); the writers
convert such a column in Python and pass it in as finished text (``verbatim``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .values import Sanitiser

SPEEDUPS_ENV = "LEARNEXIT_NO_SPEEDUPS"


def load() -> ModuleType | None:
    if os.environ.get(SPEEDUPS_ENV, "").strip() not in ("", "0"):
        return None
    try:
        from .. import _speedups
    except ImportError:
        return None
    return _speedups


native: ModuleType | None = load()


def status() -> str:
    """Whether the writers use the C speedups, in words (``learnexit --version``)."""
    if native is not None:
        return "on"
    if os.environ.get(SPEEDUPS_ENV, "").strip() not in ("", "0"):
        return f"off ({SPEEDUPS_ENV} is set)"
    return "not built (no C compiler at install time?): the writers take their Python path"


def native_batch(
    values: Sanitiser,
    columns: Sequence[Sequence[Any]],
    python: set[int],
    handed_back: set[int],
    convert: Callable[[Sequence[Any], int], Sequence[Any]],
    write: Callable[[list[Sequence[Any]], list[bool]], bytes | int],
) -> bytes | None:
    """One batch through a C function (``write``: ``csv_records`` or ``sql_inserts`` with
    its other arguments bound), which returns the batch's bytes or the index of a column
    it leaves to Python.  Such a column is converted by ``convert`` (its finished text) and
    passed in again as verbatim; so are the columns in ``python`` and in ``handed_back``
    (the columns handed back by earlier batches of the table, which this adds to).

    The changes ``convert`` notes are kept per column and added to ``values.changes`` in
    column order once the batch is written — as the Python path notes them.  Returns
    ``None``, noting nothing, when text in the batch cannot be encoded: the caller then
    takes its Python path, which replaces and notes lone surrogates.
    """
    columns = list(columns)
    verbatim = [False] * len(columns)
    notes: dict[int, Counter[tuple[str, str, str]]] = {}

    def in_python(i: int) -> None:
        outer, values.changes = values.changes, Counter()
        try:
            columns[i] = convert(columns[i], i)
            notes[i] = values.changes
        finally:
            values.changes = outer
        verbatim[i] = True

    for i in sorted(python | handed_back):
        in_python(i)
    while True:
        try:
            out = write(columns, verbatim)
        except UnicodeEncodeError:
            return None
        if type(out) is bytes:
            for i in sorted(notes):
                values.changes.update(notes[i])
            return out
        assert type(out) is int
        in_python(out)
        handed_back.add(out)
