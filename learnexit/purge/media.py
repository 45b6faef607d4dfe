"""The purge's media files: find them under the export's path rules, delete them only
when no row that stays names them under any spelling.

* :class:`MediaStore` applies :mod:`learnexit.media_paths` (clean relative path, inside
  the root through every symlink, regular files only) to a file the purge is about to
  delete, and deletes it: the resolved file, and the path itself when it is a symlink
  inside the root; emptied folders go, the root stays.
* :class:`Matcher` answers, for a chunk of files about to go, which of them a recorded
  path names — resolved *leniently* (any text, rules or not: a row that stays may name a
  file by a spelling the rules refuse, and that file must stay too).  Files are compared
  by their resolved real path, local files also by ``(st_dev, st_ino)`` (a hard link),
  S3 objects by their normalised keys.  The purge streams the rows that stay through a
  matcher, one chunk of candidate files at a time: never every media row in memory.

Messages never quote a path (a source value).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..config import MediaSettings
from ..errors import OperationalError
from ..media_paths import (
    FileId,
    LocalRoot,
    MediaProblem,
    check_relative,
    recorded_path,
    s3_client,
    s3_key,
    s3_spellings,
    split_s3_root,
)

__all__ = ["Matcher", "MediaStore", "media_path"]


def media_path(media: MediaSettings, values: dict[str, Any]) -> str | None:
    """The path a media row records, or None when it records none (an empty column)."""
    if media.path_column:
        value = values.get(media.path_column)
        return None if value is None or str(value) == "" else str(value)
    if any(v is None or v == "" for v in values.values()):
        return None
    try:
        return recorded_path(media, values)
    except MediaProblem:
        return None


def _not_found(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class MediaStore:
    """Where media files live: a local folder, or an S3 prefix (with boto3)."""

    def __init__(self, media: MediaSettings) -> None:
        self.root_text = media.root
        self.s3 = media.root.startswith("s3://")
        self.client: Any = None
        if self.s3:
            self.bucket, self.prefix = split_s3_root(media.root)
        else:
            self.local = LocalRoot(media.root)
            self.root = self.local.real_root

    def _client(self) -> Any:
        if self.client is None:
            self.client = s3_client()
        return self.client

    def identify(self, recorded: str, *, check: bool = True) -> FileId:
        """The file ``recorded`` names under the rules (MediaProblem when they refuse it).
        On S3 ``check=False`` does not ask whether the object exists."""
        if not self.s3:
            return self.local.identify(recorded)[1]
        key = s3_key(self.prefix, check_relative(recorded))
        if not check:
            return FileId(key)
        try:
            self._client().head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - botocore's ClientError and friends
            if _not_found(exc):
                return FileId(key, exists=False)
            raise OperationalError(f"cannot check a media file in {self.root_text}: {type(exc).__name__}") from None
        return FileId(key)

    def safe(self, recorded: str) -> bool:
        """Whether the rules allow ``recorded`` (without asking S3 whether it exists)."""
        try:
            self.identify(recorded, check=False)
        except MediaProblem:
            return False
        return True

    def exists(self, recorded: str) -> bool:
        try:
            return self.identify(recorded).exists
        except MediaProblem:
            return False

    def delete(self, recorded: str) -> None:
        """Delete the file ``recorded`` names; MediaProblem("refused") when the rules
        refuse it or it is not a regular file (nothing is touched then)."""
        fid = self.identify(recorded, check=False)
        if self.s3:
            try:
                self._client().delete_object(Bucket=self.bucket, Key=fid.real)
            except Exception as exc:  # noqa: BLE001
                raise OperationalError(
                    f"cannot delete a media file in {self.root_text}: {type(exc).__name__}"
                ) from None
            return
        if fid.exists and not fid.regular:
            raise MediaProblem("refused", "the path is not a regular file")
        real = Path(fid.real)
        self._unlink(real)
        # The spelling itself, when its last part is a symlink inside the root.
        rel = check_relative(recorded)
        head, _, name = rel.rpartition("/")
        parent = Path(os.path.realpath(os.path.join(self.root, head)))
        link = parent / name
        if parent.is_relative_to(self.root) and os.path.islink(link):
            self._unlink(link)
            self._prune(parent)
        self._prune(real.parent)

    def _unlink(self, path: Path) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise OperationalError(f"cannot delete media file under {self.root}: {exc.strerror}") from None

    def _prune(self, folder: Path) -> None:
        """Remove emptied folders from ``folder`` up to (not including) the root."""
        while folder != self.root and folder.is_relative_to(self.root):
            try:
                os.rmdir(folder)
            except OSError:
                break
            folder = folder.parent

    def matcher(self, files: Iterable[FileId]) -> Matcher:
        return Matcher(self, files)


class Matcher:
    """Which of a chunk of files (by :attr:`FileId.real`) a recorded path names, under
    any spelling."""

    def __init__(self, store: MediaStore, files: Iterable[FileId]) -> None:
        files = list(files)
        self.store = store
        self.reals = {f.real for f in files}
        self.inodes: dict[tuple[int, int], set[str]] = {}
        if not store.s3:
            for f in files:
                if f.inode is not None and f.links > 1:
                    self.inodes.setdefault(f.inode, set()).add(f.real)

    def hits(self, recorded: str) -> set[str]:
        """The files of the chunk ``recorded`` names (empty almost always)."""
        if self.store.s3:
            return s3_spellings(self.store.prefix, recorded) & self.reals
        real, inode = self.store.local.spellings(recorded, inode=bool(self.inodes))
        found = {real} & self.reals if real is not None else set()
        if inode is not None and inode in self.inodes:
            found |= self.inodes[inode]
        return found
