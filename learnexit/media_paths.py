"""The media path rules, one copy for the export and the purge.

A media row names its file by a path relative to the media root (``path_column``) or by
a template over columns (``path_template``).  The rules both the export (which reads a
file) and the purge (which deletes one) apply before anything is opened:

* **Clean and relative.**  Not empty, no control characters, not absolute, no ``..``
  part; ``//`` and ``./`` parts collapse (:func:`check_relative` returns the normalised
  text; for S3 that is the object key below the root's prefix).
* **Inside the root.**  The path, resolved through every symlink, stays below the
  (resolved) media root and is not the root itself (:meth:`LocalRoot.resolve`).
* **Regular files only.**  A folder, FIFO, socket or device is not a media file.
* **One file, many spellings.**  Two rows name the same file when their paths resolve
  to the same real path, or (local files) to the same ``(st_dev, st_ino)`` — a hard
  link.  :class:`FileId` is that identity; :meth:`LocalRoot.spellings` and
  :func:`s3_spellings` resolve a path *leniently* (any text, rules or not), which is
  what the purge uses to ask whether a row that stays could name a file.

Messages never quote the path (a source value): the caller names table, column and
row key.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .config import MediaSettings
from .errors import ConfigError

__all__ = [
    "FileId",
    "LocalRoot",
    "MediaProblem",
    "PathTemplate",
    "check_relative",
    "media_columns",
    "recorded_path",
    "s3_client",
    "s3_spellings",
    "split_s3_root",
]

S3_ENDPOINT_ENV = "LEARNEXIT_S3_ENDPOINT"


class MediaProblem(Exception):
    """A media row that cannot be delivered (or deleted); ``kind`` says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # refused | missing | unreadable | invalid


# --------------------------------------------------------------------------- templates

_FIELD = re.compile(r"\{(\w+)(?:\[(-?\d*)(?:(:)(-?\d*))?\])?\}")


@dataclass(frozen=True)
class PathTemplate:
    """``filedir/{contenthash[0:2]}/{contenthash}`` parsed once, applied to each row.

    ``{column}``, ``{column[i]}`` and ``{column[a:b]}``, nothing else (no ``eval``)."""

    text: str
    parts: tuple[str | tuple[str, slice | int | None], ...]

    @classmethod
    def parse(cls, text: str) -> PathTemplate:
        parts: list[str | tuple[str, slice | int | None]] = []
        pos = 0
        for m in _FIELD.finditer(text):
            literal = text[pos : m.start()]
            if "{" in literal or "}" in literal:
                raise ConfigError(f"[media] path_template: cannot read {text!r} near {literal!r}")
            if literal:
                parts.append(literal)
            name, start, colon, stop = m.groups()
            index: slice | int | None = None
            if colon:
                index = slice(int(start) if start else None, int(stop) if stop else None)
            elif start is not None:
                if not start:
                    raise ConfigError(f"[media] path_template: empty index in {m.group(0)!r}")
                index = int(start)
            parts.append((name, index))
            pos = m.end()
        tail = text[pos:]
        if "{" in tail or "}" in tail:
            raise ConfigError(f"[media] path_template: cannot read {text!r} near {tail!r}")
        if tail:
            parts.append(tail)
        if not any(isinstance(p, tuple) for p in parts):
            raise ConfigError(f"[media] path_template: {text!r} names no column")
        return cls(text, tuple(parts))

    @property
    def columns(self) -> list[str]:
        return [p[0] for p in self.parts if isinstance(p, tuple)]

    def apply(self, row: dict[str, Any]) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            name, index = part
            value = row.get(name)
            if value is None:
                raise MediaProblem("invalid", f"{name} is empty")
            text = str(value)
            if isinstance(index, int):
                if not -len(text) <= index < len(text):
                    raise MediaProblem("invalid", f"{name} has no character {index}")
                text = text[index]
            elif isinstance(index, slice):
                text = text[index]
            out.append(text)
        return "".join(out)


@lru_cache(maxsize=8)
def _template(text: str) -> PathTemplate:
    return PathTemplate.parse(text)


def media_columns(media: MediaSettings) -> list[str]:
    """The columns a media row's path is made of (distinct, in template order)."""
    if media.path_column:
        return [media.path_column]
    return list(dict.fromkeys(_template(media.path_template or "").columns))


def recorded_path(media: MediaSettings, row: dict[str, Any]) -> str:
    """The path as the row gives it (not yet checked); MediaProblem("invalid") when none."""
    if media.path_template:
        return _template(media.path_template).apply(row)
    value = row.get(media.path_column or "")
    if value is None:
        raise MediaProblem("invalid", "no path recorded")
    return str(value)


# --------------------------------------------------------------------------- the rules

_ABSOLUTE = re.compile(r"^([/\\]|[A-Za-z]:[/\\])")


def check_relative(path: str) -> str:
    """``path`` as a clean relative path below the root (``//`` and ``./`` collapsed), or
    MediaProblem: "refused" (absolute, ``..``, control characters) or "invalid" (empty)."""
    if not path.strip():
        raise MediaProblem("invalid", "the recorded path is empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise MediaProblem("refused", "the path contains control characters")
    if _ABSOLUTE.match(path):
        raise MediaProblem("refused", "the path is absolute")
    if ".." in re.split(r"[/\\]", path):
        raise MediaProblem("refused", "the path leaves the media root (..)")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        raise MediaProblem("invalid", "the path names no file")
    return "/".join(parts)


@dataclass(frozen=True)
class FileId:
    """One stored file: its resolved real path (or normalised S3 key), and for an
    existing local file its ``(st_dev, st_ino)`` and link count."""

    real: str
    inode: tuple[int, int] | None = None
    links: int = 1
    exists: bool = True
    regular: bool = True


class LocalRoot:
    """A local media root: resolves paths, and never lets one out of the root."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.real_root = Path(os.path.realpath(root))
        self.available = self.real_root.is_dir()

    def resolve(self, rel: str) -> Path:
        """The real path of the clean relative path ``rel`` (through every symlink), or
        MediaProblem("refused") when it is the root or outside it."""
        real = Path(os.path.realpath(os.path.join(self.real_root, rel)))
        if real == self.real_root or not real.is_relative_to(self.real_root):
            raise MediaProblem("refused", "the path resolves outside the media root (symlink)")
        return real

    def identify(self, recorded: str) -> tuple[str, FileId]:
        """(the clean relative path, the file it names) under the rules; MediaProblem when
        the rules refuse it.  A missing file is ``exists=False``; a folder, FIFO or device
        ``regular=False``."""
        rel = check_relative(recorded)
        real = self.resolve(rel)
        try:
            st = os.lstat(real)
        except FileNotFoundError:
            return rel, FileId(str(real), exists=False)
        except NotADirectoryError:
            return rel, FileId(str(real), exists=False)
        except OSError as exc:
            raise MediaProblem("unreadable", f"cannot read the file's status: {exc.strerror}") from None
        return rel, FileId(str(real), (st.st_dev, st.st_ino), st.st_nlink, True, stat.S_ISREG(st.st_mode))

    def spellings(self, recorded: str, *, inode: bool) -> tuple[str | None, tuple[int, int] | None]:
        """Leniently (any text, rules or not): (the real path ``recorded`` would name,
        its ``(st_dev, st_ino)`` when ``inode`` and it exists)."""
        if not recorded or "\x00" in recorded:
            return None, None
        try:
            real = os.path.realpath(os.path.join(self.real_root, recorded))
        except (OSError, ValueError):
            return None, None
        if not inode:
            return real, None
        try:
            st = os.stat(real)
        except (OSError, ValueError):
            return real, None
        return real, (st.st_dev, st.st_ino)


# --------------------------------------------------------------------------- S3


def split_s3_root(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ("bucket", "some/prefix")."""
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigError(f"[media] root: {url!r} names no bucket")
    return bucket, prefix.strip("/")


def s3_key(prefix: str, rel: str) -> str:
    return f"{prefix}/{rel}" if prefix else rel


def s3_spellings(prefix: str, recorded: str) -> set[str]:
    """Leniently: every key ``recorded`` could name below ``prefix`` — as written, and
    with ``//``, ``.`` and ``..`` collapsed (some S3 servers and proxies collapse them)."""
    if not recorded:
        return set()
    out = {s3_key(prefix, recorded)}
    text = recorded.replace("\\", "/")
    collapsed = posixpath.normpath("/" + text).lstrip("/")
    if collapsed and collapsed != ".":
        out.add(s3_key(prefix, collapsed))
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if parts:
        out.add(s3_key(prefix, "/".join(parts)))
    return out


def s3_client(env: dict[str, str] | None = None) -> Any:
    """A boto3 S3 client (endpoint from ``LEARNEXIT_S3_ENDPOINT`` or ``AWS_ENDPOINT_URL``)."""
    env = dict(os.environ) if env is None else env
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ConfigError("[media] root is on S3: install boto3 (pip install 'learnexit[s3]')") from None
    endpoint = env.get(S3_ENDPOINT_ENV) or env.get("AWS_ENDPOINT_URL") or None
    return boto3.client("s3", endpoint_url=endpoint, config=Config(retries={"max_attempts": 3, "mode": "standard"}))
