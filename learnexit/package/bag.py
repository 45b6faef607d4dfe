"""The parts of a learnexit bag (BagIt, RFC 8493) that building and verifying share: file
and tag names, tag values, manifest path encoding, and reading a bag's files."""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from ..errors import printable

BAGIT_VERSION = "1.0"
BAGIT_TXT = "bagit.txt"
BAG_INFO = "bag-info.txt"
MANIFEST = "manifest-sha256.txt"
TAGMANIFEST = "tagmanifest-sha256.txt"
DATAPACKAGE = "datapackage.json"
INDEX = "index.html"
ROWS_TAG = "Learnexit-Rows"
FORMATS_TAG = "Learnexit-Formats"
CHUNK = 1 << 20  # files are hashed, copied and counted in pieces this big


def relative_files(root: Path) -> list[str]:
    """Every regular file below ``root`` as a POSIX path relative to it, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            found.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(found)


def hash_file(path: Path, *, sync: bool = False) -> tuple[str, int]:
    """(SHA-256 hex digest, size) of one file; ``sync``: fsync it too (complete means on disk)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
        if sync:
            os.fsync(fh.fileno())
    return digest.hexdigest(), size


def encode_manifest_path(path: str) -> str:
    """RFC 8493 §2.1.3: percent-encode ``%``, CR and LF in manifest file paths."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def decode_manifest_path(path: str) -> str:
    """The file path a manifest line names (``encode_manifest_path`` undone)."""
    return re.sub(r"%(25|0[DdAa])", lambda m: {"25": "%", "0D": "\r", "0A": "\n"}[m.group(1).upper()], path)


def tag_text(value: object) -> str:
    """``value`` as a tag value: control characters escaped (``\\x0a``), spaces folded.
    One line whatever a name holds; ``verify`` compares names through the same function."""
    return " ".join(printable(str(value)).split())


def tag_line(key: str, value: object) -> str:
    """One ``Key: value`` line of a tag file (the value through ``tag_text``)."""
    return f"{key}: {tag_text(value)}\n"


def utc(at: datetime) -> datetime:
    """An aware UTC datetime (naive values mean UTC, as in the ledger)."""
    return at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
