"""Limits that keep ``verify`` safe on a hostile package: bounded memory, bounded work.

A package handed to ``learnexit verify`` is not trusted (README, threat model).  A zip of
a few megabytes can declare, or really hold, gigabytes (a zip bomb); a tag file can be
one endless line.  So:

* **Compression ratios** are judged from the zip's central directory before any member
  is read: a member that would inflate more than ``MAX_RATIO`` times its compressed size
  (past ``RATIO_GRACE``), members that together would inflate more than ``MAX_RATIO``
  times the zip file (past ``TOTAL_GRACE``), or members whose compressed data add up to
  more than the zip itself (overlapping entries) make the zip refused, with one problem,
  and nothing is read.
* **Declared sizes can lie**, so every member is read through ``Guarded``, which counts
  the bytes really inflated and stops (``Unsafe``) when they pass the declared size.
* **Sizes are capped** where a whole file is parsed: ``bagit.txt`` and ``bag-info.txt``
  (``TAG_FILE_LIMIT``), each manifest (``MANIFEST_LIMIT``, parsed a line at a time), and
  ``datapackage.json``, read as a stream of values (``table_paths``) of which none may be
  larger than ``JSON_VALUE_LIMIT``; only the table resources bag-info names are kept.
* Payload files are hashed and counted in chunks (``CHUNK``), never held whole.

Real export packages stay far inside these limits: CSV, JSON and SQL compress about
3 to 20 times; a manifest line is about 100 bytes (over half a million files fit).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any
from zipfile import ZipInfo

CHUNK = 1 << 20
MiB = 1 << 20
TAG_FILE_LIMIT = 16 * MiB
MANIFEST_LIMIT = 64 * MiB
LINE_LIMIT = 1 * MiB
JSON_VALUE_LIMIT = 16 * MiB
MAX_RATIO = 200
RATIO_GRACE = 4 * MiB
TOTAL_GRACE = 64 * MiB


# (a real file can compress that well, e.g. a blank uncompressed scan among the media)
_UNREAD = "; nothing was read (if you made this zip yourself, unzip it and verify the folder)"


class Unsafe(Exception):
    """The package cannot be read safely; ``verify`` reports this one line and stops."""


class TooLarge(ValueError):
    """A file (or one value in it) passes its size limit; it is not read further."""


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def zip_bomb(infos: Sequence[ZipInfo], archive_size: int) -> str | None:
    """Why this zip must not be read (one line), judged from its directory; ``None``: it may."""
    total = packed = 0
    for info in infos:
        total += info.file_size
        packed += info.compress_size
        if info.file_size > RATIO_GRACE and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            ratio = info.file_size // max(info.compress_size, 1)
            return (
                f"zip bomb: {info.filename!r} would inflate {ratio:,} times ({human(info.file_size)} from "
                f"{human(info.compress_size)}; at most {MAX_RATIO} is accepted)" + _UNREAD
            )
    if total > TOTAL_GRACE and total > MAX_RATIO * max(archive_size, 1):
        return (
            f"zip bomb: its {len(infos):,} entries would inflate to {human(total)} from a "
            f"{human(archive_size)} file (at most {MAX_RATIO} times is accepted)" + _UNREAD
        )
    if packed > archive_size:
        return (
            f"zip bomb: its entries claim {human(packed)} of compressed data in a {human(archive_size)} file "
            "(overlapping entries); nothing was read"
        )
    return None


class Guarded:
    """A zip member's stream that counts the bytes really inflated: more than the member
    declared raises ``Unsafe`` (a lying header), whatever the zip library would allow."""

    def __init__(self, raw: IO[bytes], name: str, declared: int) -> None:
        self.raw = raw
        self.name = name
        self.declared = declared
        self.seen = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(CHUNK), b""))
        data = self.raw.read(n)
        self.seen += len(data)
        if self.seen > self.declared:
            raise Unsafe(
                f"zip bomb: {self.name!r} inflates past the {human(self.declared)} its header declares; stopped reading"
            )
        return data

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> Guarded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_capped(fh: IO[bytes], limit: int, name: str) -> bytes:
    """All of ``fh``, or ``TooLarge`` as soon as it passes ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    while chunk := fh.read(min(CHUNK, limit + 1 - size)):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"{name} is larger than {human(limit)}; not read")
    return b"".join(parts)


def lines(fh: IO[bytes], limit: int, name: str) -> Iterator[bytes]:
    """The lines of ``fh`` (LF, CRLF or CR), a chunk at a time; ``TooLarge`` past ``limit``
    bytes in all or past ``LINE_LIMIT`` in one line."""
    size = 0
    pending: list[bytes] = []  # the line not ended yet
    waiting = 0
    while chunk := fh.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"{name} is larger than {human(limit)}; not read further")
        cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if cut < 0 or cut == len(chunk) - 1 and chunk.endswith(b"\r"):  # (a CR may be half a CRLF)
            pending.append(chunk)
            waiting += len(chunk)
            if waiting > LINE_LIMIT:
                raise TooLarge(f"{name} has a line longer than {human(LINE_LIMIT)}; not read further")
            continue
        pending.append(chunk[: cut + 1])
        yield from b"".join(pending).splitlines()
        pending, waiting = [chunk[cut + 1 :]], len(chunk) - cut - 1
    if pending:
        yield from b"".join(pending).splitlines()


class _JsonStream:
    """A JSON text read a value at a time (``json``'s own decoder on a sliding buffer)."""

    def __init__(self, fh: IO[bytes], limit: int, name: str) -> None:
        self.fh = fh
        self.limit = limit
        self.name = name
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.buf = ""
        self.pos = 0
        self.eof = False

    def _more(self, at_least: int) -> None:
        self.buf = self.buf[self.pos :]
        self.pos = 0
        data = self.fh.read(max(at_least, CHUNK))
        self.buf += self.decoder.decode(data, final=not data)
        self.eof = not data

    def peek(self) -> str:
        """The next character that is not white space ('' at the end)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos : self.pos + 1]
            self._more(0)

    def take(self, expected: str) -> str:
        found = self.peek()
        if found not in expected or not found:
            raise ValueError(f"{self.name}: expected one of {expected!r}, found {found!r}")
        self.pos += 1
        return found

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = json.JSONDecoder().raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:  # (a number at the buffer's end may go on)
                    self.pos = end
                    return value
            except json.JSONDecodeError:
                if self.eof:
                    raise
            if len(self.buf) - self.pos > self.limit:
                raise TooLarge(f"{self.name} holds a value larger than {human(self.limit)}; not read")
            self._more(len(self.buf) - self.pos)  # doubling: linear work for a long value

    def items(self, on_item: Callable[[Any], None]) -> None:
        """Each element of the array that starts here, handed to ``on_item``, then dropped."""
        self.take("[")
        if self.peek() == "]":
            self.pos += 1
            return
        while True:
            on_item(self.value())
            if self.take(",]") == "]":
                return


def table_paths(fh: IO[bytes], wanted: Callable[[str], bool], name: str) -> dict[str, str]:
    """``title → path`` of the table resources of a ``datapackage.json`` whose title
    ``wanted`` accepts, the file read as a stream (memory: the largest single value)."""
    stream = _JsonStream(fh, JSON_VALUE_LIMIT, name)
    found: dict[str, str] = {}

    def keep(resource: Any) -> None:
        if isinstance(resource, dict) and resource.get("type") == "table":
            title = resource.get("title")
            if isinstance(title, str) and wanted(title):
                found[title] = str(resource.get("path"))

    stream.take("{")
    if stream.peek() == "}":
        stream.pos += 1
    else:
        while True:
            key = stream.value()
            if not isinstance(key, str):
                raise ValueError(f"{name}: not a JSON object")
            stream.take(":")
            if key == "resources" and stream.peek() == "[":
                stream.items(keep)
            else:
                stream.value()  # (read and dropped: at most JSON_VALUE_LIMIT)
            if stream.take(",}") == "}":
                break
    if stream.peek():
        raise ValueError(f"{name}: text after the JSON object")
    return found
