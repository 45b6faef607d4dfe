"""Typed errors: each knows its exit code; its message is one line for the user.

Library code raises these; only the CLI turns them into a message and an exit code
(design §3).  The class docstring is the generic message, the instance text the
specific one.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3
EXIT_BUSY = 4
EXIT_ATTENTION = 5


class LearnexitError(Exception):
    """Something went wrong."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "error").strip())

    @property
    def message(self) -> str:
        # One line, always: a multi-line message would break log parsing.
        return printable(" ".join(str(self).split()))


def printable(text: str) -> str:
    """``text`` with control characters (NUL, ESC, DEL, ...) shown as ``\\xNN``: a message
    quoting hostile input must not drive the terminal or cut a log line."""
    return "".join(
        ch if ch.isprintable() or ch == " " else (f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        for ch in text
    )


class OperationalError(LearnexitError):
    """Operational failure (database unreachable, disk full, I/O error)."""

    exit_code = EXIT_FAILURE


class VerificationFailed(LearnexitError):
    """Verification failed."""

    exit_code = EXIT_FAILURE


class BadInput(LearnexitError):
    """Bad input."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(BadInput):
    """Invalid configuration."""


class UnknownCustomer(BadInput):
    """Unknown customer."""


class InvalidDate(BadInput):
    """Invalid date: use ISO 8601 (YYYY-MM-DD)."""


class Refused(LearnexitError):
    """Refused by policy."""

    exit_code = EXIT_REFUSED


class Busy(LearnexitError):
    """Busy: another purge holds the lock."""

    exit_code = EXIT_BUSY


class NeedsAttention(LearnexitError):
    """Something needs attention."""

    exit_code = EXIT_ATTENTION
