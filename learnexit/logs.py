"""Structured events for people and machines.

Library code reports what it does with ``event("purge_batch", customer=..., table=...,
rows=...)``; it never prints.  The CLI decides where events go: stderr as plain text,
or with ``--log-format json`` / ``LEARNEXIT_LOG_FORMAT=json`` one JSON object per line
(time, level, command, customer, event, counts) for cron and CI logs.  Fields are
counts, dates, table names and keys — never personal data.  A field can still hold
control characters (a table named ``"a\\nb"``): they are written escaped (``\\x0a`` in
text, ``\\n`` or ``\\u2028`` in JSON), so one event is always exactly one line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

LOGGER_NAME = "learnexit"
logger = logging.getLogger(LOGGER_NAME)
logger.addHandler(logging.NullHandler())
FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
# What json.dumps leaves raw that a line reader may still take for a line break (or a
# terminal for a command): DEL, the C1 controls (NEL among them), U+2028 and U+2029.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029]")


def event(name: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Report one event with its fields."""
    logger.log(level, name, extra={"le_fields": fields})


class _Context(logging.Filter):
    command: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        record.le_command = self.command
        return True


CONTEXT = _Context()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return dict(getattr(record, "le_fields", {}) or {})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from .config import scrub

        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "command": getattr(record, "le_command", None),
            "event": record.getMessage(),
        }
        payload.update(_fields(record))
        line = json.dumps(payload, ensure_ascii=False, default=str, sort_keys=False)
        return scrub(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", line))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from .config import scrub
        from .errors import printable

        fields = _fields(record)
        detail = " ".join(f"{printable(str(k))}={printable(str(v))}" for k, v in fields.items())
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return scrub(f"learnexit: {level}{printable(record.getMessage())}" + (f" {detail}" if detail else ""))


def configure(fmt: str = "text", level: str | None = None, command: str | None = None) -> None:
    """Send events to stderr in the chosen format (called once by the CLI)."""
    for handler in list(logger.handlers):
        if not isinstance(handler, logging.NullHandler):
            logger.removeHandler(handler)
    if level is None:
        # People at a terminal see results, not chatter; cron and CI get the events.
        level = "warning" if (fmt == "text" and sys.stderr.isatty()) else "info"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(CONTEXT)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    CONTEXT.command = command


def json_mode() -> bool:
    """True when events go out as JSON lines."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers)
