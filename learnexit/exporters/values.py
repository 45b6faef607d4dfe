"""The one value sanitiser every format uses: canonical text, and what each format can hold.

Every format starts from the same canonical text of a value (``text``):

=================  =================================================================
NULL               ``None`` (CSV writes an empty field)
bool               ``true`` / ``false``
int                decimal digits
Decimal            exact plain notation, never an exponent (``Decimal('1E+3')`` → ``1000``);
                   ``NaN`` / ``Infinity`` / ``-Infinity``
float              ``repr`` (shortest text that reads back as the same float);
                   ``NaN`` / ``Infinity`` / ``-Infinity``
datetime           ISO 8601 ``YYYY-MM-DDTHH:MM:SS[.ffffff][+HH:MM]`` (offset only when the
                   source gave one)
date, time         ISO 8601 ``YYYY-MM-DD``, ``HH:MM:SS[.ffffff][+HH:MM]``
timedelta          ISO 8601 duration ``[-]PnDTnHnMn[.ffffff]S``
bytes              standard base64 (RFC 4648, with padding)
dict / list        compact JSON text (JSON columns)
str                untouched
anything else      ``str(value)`` (UUIDs, network addresses, …)
=================  =================================================================

Formats that cannot hold a value as it is change it — and every change is counted per
table and column and reported once, through ``Sanitiser.report(job)``, as a note with a
count (never the value: the notes land in ``index.html`` and the command's output).

* XML 1.0 cannot hold most control characters, lone surrogates, U+FFFE and U+FFFF: each is
  replaced by U+FFFD.  (Tab, newline and carriage return are kept.)
* Excel: the same characters are replaced; text longer than 32,767 characters (counted in
  UTF-16 units, as Excel does) is truncated; numbers Excel would round (whole numbers of
  16 or more digits, decimals with more than 15 significant digits) and NaN/Infinity are
  written as text; times with a time zone are written as naive UTC; dates before 1900
  (which Excel cannot show) are written as ISO text.  Strings are always text cells —
  the xlsx writer never lets ``=…`` become a formula.
* JSON (``json_value``): numbers JSON cannot hold exactly are written as their canonical
  text (Decimal always, documented; non-finite floats, integers beyond 64 bits noted).
* Any format writing UTF-8: lone surrogates (which cannot be encoded) become U+FFFD.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import operator
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from itertools import repeat
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import ExportJob

REPLACEMENT = "\ufffd"
EXCEL_MAX_CHARS = 32_767
# Excel keeps 15 significant digits; a number with more would silently change.
EXCEL_DIGITS = 15
_INT64 = 2**63

# Characters XML 1.0 does not allow (§2.2 Char), as a character class to replace.
_XML_ILLEGAL = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Types the column-at-a-time fast paths pass through unchanged.
_NONE = type(None)
_PLAIN = frozenset((int, str))  # csv.writer writes these exactly as ``csv_text`` would
_JSON_PLAIN = frozenset((int, str, bool, float))  # JSON-native (ints and floats checked)


def _not_none(value: Any) -> bool:
    return value is not None


# --------------------------------------------------------------------------- canonical text


def text(value: Any) -> str | None:
    """The canonical text of a database value (``None`` for NULL); see the module table."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):  # datetime before date: it is one
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return duration_text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return str(value)


def _json_default(value: Any) -> Any:
    return text(value)


def decimal_text(value: Decimal) -> str:
    """Exact plain notation: no exponent, every digit the database gave kept."""
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "-Infinity" if value < 0 else "Infinity"
    return format(value, "f")


def float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    return repr(value)


def duration_text(value: dt.timedelta) -> str:
    """ISO 8601 duration (xs:duration): ``P1DT2H3M4.5S``; negative as ``-P…``."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    fraction = f".{value.microseconds:06d}".rstrip("0") if value.microseconds else ""
    return f"{sign}P{value.days}DT{hours}H{minutes}M{seconds}{fraction}S"


def csv_text(value: Any) -> str:
    """The CSV field: canonical text, NULL as the empty field."""
    t = text(value)
    return "" if t is None else t


def has_surrogates(value: str) -> bool:
    return _SURROGATE.search(value) is not None


def xml_legal(value: str) -> tuple[str, int]:
    """``value`` with every character XML 1.0 forbids replaced by U+FFFD, and how many."""
    return _XML_ILLEGAL.subn(REPLACEMENT, value)


def utf16_len(value: str) -> int:
    return len(value.encode("utf-16-le", "surrogatepass")) // 2


def truncate_utf16(value: str, limit: int) -> str:
    """The longest prefix of ``value`` of at most ``limit`` UTF-16 units (pairs kept whole)."""
    if len(value) <= limit // 2:
        return value
    units = 0
    for i, ch in enumerate(value):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return value[:i]
    return value


def significant_digits(value: Decimal) -> int:
    digits = value.as_tuple().digits
    stripped = "".join(map(str, digits)).lstrip("0")
    return len(stripped.rstrip("0")) if stripped else 0


# --------------------------------------------------------------------------- names


# Also "%": BagIt manifests encode it as %25, which bagit-python does not decode.
_FILE_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|%]')
_RESERVED_FILE = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(1, 10)} | {f"lpt{i}" for i in range(1, 10)}


def file_stem(name: str) -> str:
    """A file name stem for a table or customer name, safe on every file system.

    Names that are already safe are kept as they are (``page_views`` → ``page_views``);
    anything else is NFC-normalised and unsafe characters become ``_``.
    """
    stem = _FILE_UNSAFE.sub("_", unicodedata.normalize("NFC", name)).strip(" .")
    if not stem:
        stem = "_"
    if stem.lower().split(".")[0] in _RESERVED_FILE:
        stem = "_" + stem
    if len(stem.encode("utf-8")) > 200:
        stem = stem.encode("utf-8")[:200].decode("utf-8", "ignore")
    return stem


def unique_stems(names: list[str], reserved: tuple[str, ...] = ()) -> dict[str, str]:
    """``file_stem`` for each name, made unique (case-insensitively, as file systems may
    compare) by a ``_2``, ``_3`` … suffix; ``reserved`` stems are never handed out."""
    used = {r.casefold() for r in reserved}
    out: dict[str, str] = {}
    for name in names:
        stem = file_stem(name)
        candidate, n = stem, 2
        while candidate.casefold() in used:
            candidate, n = f"{stem}_{n}", n + 1
        used.add(candidate.casefold())
        out[name] = candidate
    return out


# --------------------------------------------------------------------------- the sanitiser


class Sanitiser:
    """One format's value conversions, counting every change per table and column.

    ``report(job)`` turns the counts into notes (one per table, column and kind of
    change) and starts counting afresh.
    """

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.changes: Counter[tuple[str, str, str]] = Counter()

    def changed(self, table: str, column: str, what: str, n: int = 1) -> None:
        self.changes[(table, column, what)] += n

    def report(self, job: ExportJob) -> None:
        for (table, column, what), n in self.changes.items():
            where = f"{table}.{column}" if column else table
            job.note(self.fmt, f"{where}: {n} value{'s' if n != 1 else ''} {what}")
        self.changes.clear()

    # -- text for files written as UTF-8 ----------------------------------------

    def encodable(self, value: str, table: str, column: str) -> str:
        """``value`` without lone surrogates (which UTF-8 cannot hold)."""
        if has_surrogates(value):
            fixed, n = _SURROGATE.subn(REPLACEMENT, value)
            self.changed(
                table,
                column,
                f"held {'an' if n == 1 else n} unencodable lone surrogate{'s' if n != 1 else ''}: replaced by U+FFFD",
            )
            return fixed
        return value

    def csv(self, value: Any, table: str, column: str) -> str:
        out = csv_text(value)
        if not isinstance(value, str) or not has_surrogates(out):
            return out
        return self.encodable(out, table, column)

    def csv_column(self, values: Sequence[Any], table: str, column: str) -> Sequence[Any]:
        """One column of a batch for ``csv.writer``: exactly the fields ``csv`` gives, but
        a whole column at a time.  ``None``, ints and strings are left for the writer (it
        writes them as ``csv`` would); lone surrogates are the caller's to catch (encoding
        the batch fails, and it is redone value by value)."""
        kinds = set(map(type, values))
        kinds.discard(_NONE)
        if kinds <= _PLAIN:
            return values
        if len(kinds) == 1:
            kind = kinds.pop()
            if kind is dt.datetime or kind is dt.date:
                return [None if v is None else v.isoformat() for v in values]
            if kind is float and all(map(math.isfinite, filter(_not_none, values))):
                return values  # csv writes repr(), the canonical text of a finite float
            if kind is bool:
                return [None if v is None else ("true" if v else "false") for v in values]
            if kind is Decimal:
                return [None if v is None else decimal_text(v) for v in values]
        return [self.csv(v, table, column) for v in values]

    def json_column(self, values: Sequence[Any], table: str, column: str) -> Sequence[Any]:
        """One column of a batch as ``json`` gives it, a whole column at a time (strings
        with lone surrogates are left for the caller: orjson refuses them, and the batch
        is redone value by value)."""
        kinds = set(map(type, values))
        kinds.discard(_NONE)
        if kinds <= _JSON_PLAIN:
            fits = True
            if int in kinds:
                ints = [v for v in values if type(v) is int] if len(kinds) > 1 else list(filter(_not_none, values))
                fits = -_INT64 <= min(ints) and max(ints) < _INT64
            if fits and float in kinds:
                fits = all(map(math.isfinite, [v for v in values if type(v) is float]))
            if fits:
                return values
        elif len(kinds) == 1:
            kind = kinds.pop()
            if kind is dt.datetime or kind is dt.date:
                return [None if v is None else v.isoformat() for v in values]
            if kind is Decimal:
                return [None if v is None else decimal_text(v) for v in values]
        return [self.json(v, table, column) for v in values]

    # -- XML -----------------------------------------------------------------------

    def xml(self, value: Any, table: str, column: str) -> str | None:
        """Text for an XML element, ``None`` for NULL (written as ``xsi:nil``).

        Non-finite numbers use XML Schema's spelling (``NaN``, ``INF``, ``-INF``) so the
        text is a valid ``xs:double``; everything else is the canonical text.
        """
        if value is None:
            return None
        if isinstance(value, Decimal) and not value.is_finite():
            return "NaN" if value.is_nan() else ("-INF" if value.is_signed() else "INF")
        if isinstance(value, float) and not math.isfinite(value):
            return "NaN" if math.isnan(value) else ("-INF" if value < 0 else "INF")
        out = text(value)
        assert out is not None
        return self.xml_string(out, table, column)

    def xml_column(self, values: Sequence[Any], table: str, column: str) -> Sequence[str | None]:
        """One column of a batch as ``xml`` gives it; integers, text XML can hold, dates and
        datetimes a whole column at a time."""
        kinds = set(map(type, values))
        kinds.discard(_NONE)
        if len(kinds) == 1:
            kind = next(iter(kinds))
            if kind is int:
                return [None if v is None else str(v) for v in values]
            if kind is str:
                if not _XML_ILLEGAL.search("".join(filter(None, values))):
                    return values
            elif kind is dt.datetime or kind is dt.date:
                return [None if v is None else v.isoformat() for v in values]
        return [self.xml(v, table, column) for v in values]

    def xml_string(self, value: str, table: str, column: str) -> str:
        fixed, n = xml_legal(value)
        if n:
            self.changed(table, column, "contained characters XML cannot hold: replaced by U+FFFD")
        return fixed

    # -- JSON ----------------------------------------------------------------------

    def json(self, value: Any, table: str, column: str) -> Any:
        """A JSON-native value: null, true/false, integers, finite floats and strings.

        Decimal is written as its exact text (a string: a JSON number would be read as a
        binary float by most parsers and lose digits).  Dates, times, bytes (base64) and
        other values are written as their canonical text.
        """
        if value is None or isinstance(value, (bool, str)):
            if isinstance(value, str) and has_surrogates(value):
                return self.encodable(value, table, column)
            return value
        if isinstance(value, int):
            if -_INT64 <= value < _INT64:
                return value
            self.changed(table, column, "beyond 64 bits written as a string")
            return str(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            self.changed(table, column, "not finite (NaN/Infinity) written as a string")
            return float_text(value)
        out = text(value)
        if out is not None and has_surrogates(out):
            return self.encodable(out, table, column)
        return out

    # -- Excel ---------------------------------------------------------------------

    def excel(self, value: Any, table: str, column: str) -> Any:
        """A value openpyxl writes exactly: str (always a text cell), bool, int, float,
        Decimal, date, naive datetime or time.  ``None`` for NULL (an empty cell)."""
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return self.excel_string(value, table, column)
        if isinstance(value, int):
            if abs(value) < 10**EXCEL_DIGITS:
                return value
            self.changed(
                table, column, f"with more than {EXCEL_DIGITS} digits written as text (Excel would round them)"
            )
            return str(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                self.changed(table, column, "not finite (NaN/Infinity) written as text")
                return float_text(value)
            if float(f"{value:.16g}") != value:  # what openpyxl writes
                self.changed(table, column, "rounded to Excel's precision (the exact value is in CSV/JSON)")
            return value
        if isinstance(value, Decimal):
            if not value.is_finite():
                self.changed(table, column, "not finite (NaN/Infinity) written as text")
                return decimal_text(value)
            if significant_digits(value) > EXCEL_DIGITS:
                self.changed(
                    table,
                    column,
                    f"with more than {EXCEL_DIGITS} significant digits written as text (Excel would round them)",
                )
                return decimal_text(value)
            return value
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None and value.utcoffset() is not None:
                self.changed(table, column, "with a time zone written as UTC without zone (Excel has no time zones)")
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            elif value.tzinfo is not None:
                value = value.replace(tzinfo=None)
            if value.year < 1900:
                self.changed(table, column, "before 1900 written as ISO text (Excel cannot hold them)")
                return value.isoformat()
            return value
        if isinstance(value, dt.date):
            if value.year < 1900:
                self.changed(table, column, "before 1900 written as ISO text (Excel cannot hold them)")
                return value.isoformat()
            return value
        if isinstance(value, dt.time):
            if value.tzinfo is not None:
                self.changed(table, column, "times of day with a time zone written as ISO text")
                return value.isoformat()
            return value
        out = text(value)
        assert out is not None
        return self.excel_string(out, table, column)

    def excel_column(self, values: Sequence[Any], table: str, column: str) -> Sequence[Any]:
        """One column of a batch as ``excel`` gives it, the common cases (integers, text
        Excel can hold, naive datetimes and dates since 1900) a whole column at a time."""
        kinds = set(map(type, values))
        kinds.discard(_NONE)
        if len(kinds) == 1:
            kind = next(iter(kinds))
            present = [v for v in values if v is not None]
            if kind is bool:
                return values
            if kind is int:
                if all(-(10**EXCEL_DIGITS) < v < 10**EXCEL_DIGITS for v in present):
                    return values
            elif kind is str:
                if max(map(len, present), default=0) <= EXCEL_MAX_CHARS // 2 and not _XML_ILLEGAL.search(
                    "".join(present)
                ):
                    return values
            elif kind is dt.datetime:
                if all(v.tzinfo is None and v.year >= 1900 for v in present):
                    return values
            elif kind is dt.date:
                if all(v.year >= 1900 for v in present):
                    return values
        return [self.excel(v, table, column) for v in values]

    def excel_string(self, value: str, table: str, column: str) -> str:
        fixed, n = xml_legal(value)
        if n:
            self.changed(table, column, "contained characters Excel cannot hold: replaced by U+FFFD")
        if len(fixed) > EXCEL_MAX_CHARS // 2 and utf16_len(fixed) > EXCEL_MAX_CHARS:
            fixed = truncate_utf16(fixed, EXCEL_MAX_CHARS)
            self.changed(
                table,
                column,
                f"longer than {EXCEL_MAX_CHARS:,} characters truncated (the full value is in CSV and JSON)",
            )
        return fixed


# --------------------------------------------------------------------------- whole columns in C
#
# The writers' fast paths turn a whole column into text with a few calls into C (orjson,
# str.join / replace / split / translate) instead of a Python call per value.  They never
# change what a value becomes: where they cannot be sure, the callers take the path above.

SEP = "\ue000"  # private-use characters that mark value boundaries in a column's joined text
NUL = "\ue001"  # (a column holding either is done value by value)
_TZINFO = operator.attrgetter("tzinfo")


def iso_by_orjson(values: Sequence[Any], kinds: set[type]) -> bool:
    """True when orjson writes every value of the column (of the types ``kinds``, NULLs
    aside) as its ``isoformat()``: naive datetimes, or dates."""
    if len(kinds) != 1:
        return False
    kind = next(iter(kinds))
    if kind is dt.date:
        return True
    if kind is not dt.datetime:
        return False
    # (datetimes are always true: filter(None, …) drops exactly the NULLs)
    return not any(map(operator.is_not, map(_TZINFO, filter(None, values)), repeat(None)))


def marked(values: Sequence[str | None], nulls: bool) -> str | None:
    """The column's strings joined by ``SEP`` (NULL as ``NUL``), or ``None`` when a value
    holds ``SEP`` or ``NUL`` itself."""
    joined = SEP.join([NUL if v is None else v for v in values] if nulls else values)  # type: ignore[arg-type]
    if joined.count(SEP) != len(values) - 1:
        return None
    if joined.count(NUL) != (values.count(None) if nulls else 0):
        return None
    return joined


def xml_clean(value: str) -> bool:
    """True when ``value`` holds only characters XML 1.0 (and so Excel) can hold."""
    return _XML_ILLEGAL.search(value) is None
