"""Text a SQLite source stores as bytes that are not valid UTF-8 (a Latin-1 name written
by an old client): read with U+FFFD replacement characters instead of failing the read.

SQLite does not check what a TEXT column holds, and the sqlite3 module fails the whole
query on the first undecodable value — with the value in its message.  Source
connections decode text with an error handler that replaces each invalid sequence by
U+FFFD (exactly as Python's ``"replace"`` does) and counts the replacements per thread,
so the export can note which table, column and row held such text (never the value).
The lenient decoder is a Python callable, which the driver calls for every text value;
bulk reads (``exporters.base.stream_columns``) switch the connection to the driver's own
C decoder (``strict``) and start again leniently only when a batch holds text that is not
UTF-8 (``undecodable``).
"""

from __future__ import annotations

import codecs
import functools
import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

__all__ = ["REPLACEMENT", "install", "replaced", "strict", "undecodable"]

REPLACEMENT = "\ufffd"
_HANDLER = "learnexit-replace"
_state = threading.local()


def _replace(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _state.count = getattr(_state, "count", 0) + 1
    return REPLACEMENT, exc.end


codecs.register_error(_HANDLER, _replace)
_decode = functools.partial(str, encoding="utf-8", errors=_HANDLER)


def replaced() -> int:
    """How many invalid sequences this thread's source reads have replaced so far."""
    return int(getattr(_state, "count", 0))


def install(engine: Engine) -> None:
    """Every connection of the SQLite ``engine`` decodes text leniently (see module doc)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.text_factory = _decode


def strict(dbapi_connection: Any) -> Any:
    """Make a lenient SQLite connection decode text with the driver's own C code (fast;
    it fails a read on text that is not UTF-8).  Returns the factory to put back, or None
    when the connection was not lenient (nothing changed)."""
    factory = getattr(dbapi_connection, "text_factory", None)
    if factory is not _decode:
        return None
    dbapi_connection.text_factory = str
    return factory


def undecodable(exc: BaseException) -> bool:
    """``exc`` is the driver's failure on text that is not UTF-8 (under ``strict``)."""
    orig = getattr(exc, "orig", exc)
    return type(orig).__name__ == "OperationalError" and "Could not decode to UTF-8" in str(orig)
