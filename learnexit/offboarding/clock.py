""" "Now": the clock, or ``$LEARNEXIT_NOW`` for tests and runbook rehearsals."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from .. import contract
from ..config import Settings
from ..contract import DEFAULT_TIMEZONE
from ..errors import BadInput, InvalidDate

__all__ = ["NOW_ENV", "now", "parse_now", "resolve_now"]

NOW_ENV = "LEARNEXIT_NOW"

_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_now(text: str, timezone: str = DEFAULT_TIMEZONE) -> datetime:
    """Parse a ``$LEARNEXIT_NOW`` value into an aware UTC instant (whole seconds).

    ``YYYY-MM-DD`` means 12:00 local time that day (in ``timezone``): noon keeps the
    local date and the UTC date the same.  A datetime with ``Z`` or an offset is taken as
    given; one without is local time in ``timezone``.
    """
    hint = "use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS with an optional Z or ±HH:MM"
    if not isinstance(text, str) or not text.strip():
        raise InvalidDate(f"invalid {NOW_ENV}: empty; {hint}")
    text = text.strip()
    zone = ZoneInfo(timezone)
    if _DATE_ONLY.fullmatch(text):
        day = contract.parse_date(text, what=NOW_ENV)
        return datetime.combine(day, time(12, 0), tzinfo=zone).astimezone(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidDate(f"invalid {NOW_ENV}: {text[:40]!r}; {hint}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC).replace(microsecond=0)


def now(timezone: str = DEFAULT_TIMEZONE) -> datetime:
    """The current instant (aware UTC, whole seconds), or ``$LEARNEXIT_NOW`` when set.

    ``$LEARNEXIT_NOW`` is for tests and runbook rehearsals only; see :func:`parse_now`.
    """
    text = os.environ.get(NOW_ENV)
    if text:
        return parse_now(text, timezone)
    return datetime.now(UTC).replace(microsecond=0)


def resolve_now(settings: Settings, value: datetime | None) -> datetime:
    """``value`` (aware, as UTC), or :func:`now` in the contract's zone when None."""
    if value is None:
        return now(settings.contract.timezone)
    if value.tzinfo is None:
        raise BadInput("now must be timezone-aware")
    return value.astimezone(UTC)
