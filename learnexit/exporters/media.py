"""Media files in their original form ("media"): every file the customer's ``[media]``
rows point to, copied byte for byte into ``data/media/``.

* **Where a file is.** ``path_column`` holds a path relative to the media root, or
  ``path_template`` builds it from columns, e.g. Moodle's file pool
  ``filedir/{contenthash[0:2]}/{contenthash[2:4]}/{contenthash}``.  Templates allow
  ``{column}``, ``{column[i]}`` and ``{column[a:b]}`` and nothing else (no ``eval``).
* **Never outside the root.** A path that is absolute, contains ``..``, holds control
  characters, or resolves (through symlinks) outside the root is refused before anything
  is opened: reported in the notes and the problems, never read.  Only regular files are
  read (a FIFO or a device is refused too).  The rules are ``learnexit.media_paths``, the
  same the purge applies.  Notes and problems name table, row key and column, never the
  path or a recorded size or checksum (source values); ``index.csv`` (in the package)
  keeps them.
* **Streamed.** Files are copied in 1 MiB chunks; the SHA-256 is computed while copying,
  and the recorded size and checksum (md5/sha1/sha256), where configured, are checked.
  A mismatch is a problem: the file is still delivered as it is, and the index says so.
* **Names.** The original name (``name_column``, else the path's last part) where it is
  safe: separators, control and bidi characters and the characters Windows forbids
  become ``_``, leading dots and trailing dots/spaces go, the name is cut to 200 bytes
  (keeping the extension), and reserved Windows names get a leading ``_``.  Collisions
  (compared without case, as macOS and Windows do) become ``name (2).ext``.
* **Shared content.** When several rows point to one stored file (content-addressed
  pools), one copy is written per distinct output name: every row's original name exists
  as a file.  Rows with the same file *and* the same name share one copy; ``index.csv``
  lists every row with the file it maps to.  A second name is copied from the first copy,
  not fetched again.
* **Missing files** are problems (the export exits 1) unless ``allow_missing_media``, in
  which case they are notes; either way they are listed in ``media/index.csv``.

``data/media/index.csv``: ``row_key, file, original_name, original_path, size, sha256,
status, note`` for every media row (``status``: copied, size_mismatch, checksum_mismatch,
missing, refused, unreadable, invalid).  ``job.media`` gets one dict per written file.
Media roots may be ``s3://bucket/prefix`` (needs boto3; endpoint from
``LEARNEXIT_S3_ENDPOINT`` or ``AWS_ENDPOINT_URL``, credentials from the usual AWS chain).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import stat
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from ..config import MediaSettings, scrub
from ..errors import OperationalError
from ..filenames import MAX_NAME_BYTES, fit_name, safe_filename, split_extension
from ..media_paths import (
    LocalRoot,
    MediaProblem,
    PathTemplate,
    check_relative,
    recorded_path,
    s3_client,
    s3_key,
    split_s3_root,
)
from .base import Exporter, ExportJob, register

FOLDER = "media"
INDEX = "index.csv"
CHUNK = 1 << 20
LISTED = 25  # problems of one kind listed one by one; the rest are counted

# --------------------------------------------------------------------------- safe names


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


class NameAllocator:
    """Hands out names unique without regard to case: ``x.pdf``, ``x (2).pdf``, …"""

    def __init__(self, reserved: tuple[str, ...] = ()) -> None:
        self.used = {_fold(n) for n in reserved}

    def allocate(self, name: str) -> str:
        if _fold(name) not in self.used:
            self.used.add(_fold(name))
            return name
        stem, ext = split_extension(name)
        k = 2
        while True:
            suffix = f" ({k}){ext}"
            candidate = fit_name(stem, MAX_NAME_BYTES - len(suffix.encode("utf-8"))) + suffix
            if _fold(candidate) not in self.used:
                self.used.add(_fold(candidate))
                return candidate
            k += 1

    def release(self, name: str) -> None:
        """Give back a name that was not used after all."""
        self.used.discard(_fold(name))


# --------------------------------------------------------------------------- paths
# The rules live in learnexit.media_paths (the purge applies the same ones).


# --------------------------------------------------------------------------- stores


class LocalStore:
    """Files below a local folder; nothing outside it is ever opened."""

    def __init__(self, root: str) -> None:
        self.paths = LocalRoot(root)
        self.root = self.paths.root
        self.real_root = self.paths.real_root
        self.available = self.paths.available

    def describe(self) -> str:
        return str(self.root)

    def open(self, rel: str) -> io.RawIOBase:
        real = self.paths.resolve(rel)
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise MediaProblem("missing", f"the file does not exist below {self.root}") from None
        except NotADirectoryError:
            raise MediaProblem("missing", f"the file does not exist below {self.root}") from None
        except OSError as exc:
            raise MediaProblem("unreadable", f"cannot open the file: {exc.strerror}") from None
        try:
            mode = os.fstat(fd).st_mode
        except OSError as exc:
            os.close(fd)
            raise MediaProblem("unreadable", f"cannot read the file: {exc.strerror}") from None
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise MediaProblem("refused", "the path is not a regular file")
        os.set_blocking(fd, True)
        return io.FileIO(fd, "rb", closefd=True)


class S3Store:
    """Objects below ``s3://bucket/prefix``, read as streams."""

    def __init__(self, url: str, env: dict[str, str] | None = None) -> None:
        self.bucket, self.prefix = split_s3_root(url)
        self.url = url
        self.client = s3_client(env)
        self.available = True

    def describe(self) -> str:
        return self.url

    def open(self, rel: str) -> io.RawIOBase:
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        key = s3_key(self.prefix, rel)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise MediaProblem("missing", f"the file does not exist in {self.url}") from None
            if code == "NoSuchBucket":
                raise OperationalError(f"media root {self.url}: no such bucket") from None
            raise MediaProblem("unreadable", f"cannot read the file from {self.url}: {code}") from None
        except EndpointConnectionError as exc:
            raise OperationalError(f"media root {self.url}: cannot connect: {scrub(str(exc))}") from None
        except BotoCoreError as exc:
            raise OperationalError(f"media root {self.url}: {type(exc).__name__}") from None
        return _Body(response["Body"])


class _Body(io.RawIOBase):
    """A botocore StreamingBody as a readable file (read in chunks, never whole)."""

    def __init__(self, body: Any) -> None:
        self.body = body

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return bytes(self.body.read(None if size is None or size < 0 else size))

    def close(self) -> None:
        try:
            self.body.close()
        finally:
            super().close()


def open_store(media: MediaSettings) -> LocalStore | S3Store:
    return S3Store(media.root) if media.root.startswith("s3://") else LocalStore(media.root)


# --------------------------------------------------------------------------- the exporter


@dataclass
class _Copied:
    name: str
    sha256: str
    size: int
    checksum: str | None  # in the configured algorithm, when one is
    rows: list[str] = field(default_factory=list)
    entry: dict[str, Any] = field(default_factory=dict)


class _Run:
    def __init__(self, job: ExportJob, media: MediaSettings) -> None:
        self.job = job
        self.media = media
        self.table = media.table
        self.template = PathTemplate.parse(media.path_template) if media.path_template else None
        self.algorithm = media.checksum_algorithm if media.checksum_column else None
        self.names = NameAllocator(reserved=(INDEX,))
        self.by_target: dict[tuple[str, str], _Copied] = {}  # (source path, folded name) → copy
        self.by_source: dict[str, _Copied] = {}  # source path → first copy
        self.problems: dict[str, list[str]] = {}
        self.index: list[list[Any]] = []

    def report(self, kind: str, text: str) -> None:
        self.problems.setdefault(kind, []).append(text)

    def row_key(self, row: dict[str, Any], number: int, pk: list[str]) -> str:
        if pk:
            return ",".join("" if row[c] is None else str(row[c]) for c in pk)
        return f"#{number}"

    def recorded_path(self, row: dict[str, Any]) -> str:
        """The path as the row gives it (not yet checked)."""
        return recorded_path(self.media, row)

    @property
    def where(self) -> str:
        """The column(s) the path comes from, for messages (never the value)."""
        return self.media.path_column or "path_template"

    def run(self, store: LocalStore | S3Store) -> None:
        pk = [c.name for c in self.job.source.table(self.table).primary_key.columns]
        number = 0
        total = self.job.counts.get(self.table)
        for batch in self.job.rows(self.table):
            for record in batch:
                number += 1
                row = dict(record._mapping)
                key = self.row_key(row, number, pk)
                self.one(store, row, key)
                self.job.progress("media", number, total)  # one file a row
        self.write_index()
        self.publish()

    def one(self, store: LocalStore | S3Store, row: dict[str, Any], key: str) -> None:
        name_value = row.get(self.media.name_column) if self.media.name_column else None
        original = "" if name_value is None else str(name_value)
        recorded = ""
        try:
            recorded = self.recorded_path(row)
            path = check_relative(recorded)
            original = original or path.rsplit("/", 1)[-1]
            wanted = safe_filename(original)
            copy = self.by_target.get((path, _fold(wanted)))
            if copy is None:
                name = self.names.allocate(wanted)
                try:
                    copy = self.copy(store, path, name)
                except MediaProblem:
                    self.names.release(name)
                    raise
                self.by_target[(path, _fold(wanted))] = copy
            copy.rows.append(key)
        except MediaProblem as problem:
            self.index.append([key, "", original, recorded, "", "", problem.kind, str(problem)])
            self.report(problem.kind, f"{self.table} row {key} ({self.where}): {problem}")
            return
        status, note = self.check(row, copy, key)
        self.index.append([key, copy.name, original, path, copy.size, copy.sha256, status, note])

    def copy(self, store: LocalStore | S3Store, raw_path: str, name: str) -> _Copied:
        relpath = f"{FOLDER}/{name}"
        first = self.by_source.get(raw_path)
        if first is not None:
            # The same stored file under a second name: copy our own verified copy.
            source: io.RawIOBase = io.FileIO(self.job.path(f"{FOLDER}/{first.name}"), "rb")
        else:
            source = store.open(raw_path)
        sha = hashlib.sha256()
        other = hashlib.new(self.algorithm) if self.algorithm and self.algorithm != "sha256" else None
        size = 0
        try:
            with source, self.job.open_file(relpath, "wb") as out:
                while True:
                    try:
                        chunk = source.read(CHUNK)
                    except OSError as exc:
                        raise MediaProblem("unreadable", f"reading the file failed: {exc.strerror or exc}") from None
                    except Exception as exc:  # botocore stream errors
                        raise MediaProblem("unreadable", f"reading the file failed: {type(exc).__name__}") from None
                    if not chunk:
                        break
                    sha.update(chunk)
                    if other is not None:
                        other.update(chunk)
                    size += len(chunk)
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise OperationalError(f"cannot write media/{name}: {exc.strerror or exc}") from None
        except BaseException:
            self.job.path(relpath).unlink(missing_ok=True)
            raise
        digest = sha.hexdigest()
        copy = _Copied(name, digest, size, other.hexdigest() if other is not None else digest)
        copy.entry = {
            "path": relpath,
            "name": name,
            "original_path": raw_path,
            "size": size,
            "sha256": digest,
            "rows": copy.rows,
            "verified": None,
        }
        self.by_source.setdefault(raw_path, copy)
        return copy

    def check(self, row: dict[str, Any], copy: _Copied, key: str) -> tuple[str, str]:
        """Compare the recorded size and checksum of this row with the copied bytes."""
        checked = False
        if self.media.size_column:
            recorded = row.get(self.media.size_column)
            if recorded is not None:
                checked = True
                try:
                    expected = Decimal(str(recorded).strip())
                except InvalidOperation:
                    expected = Decimal(-1)
                if expected != copy.size:
                    note = f"size {copy.size} bytes differs from the recorded {recorded}"
                    self.report(
                        "size_mismatch",
                        f"{self.table} row {key}: the size of the file ({copy.size} bytes) differs from the "
                        f"recorded {self.media.size_column}",
                    )
                    copy.entry["verified"] = False
                    return "size_mismatch", note
        if self.algorithm and self.media.checksum_column:
            recorded = row.get(self.media.checksum_column)
            if recorded is not None:
                checked = True
                if str(recorded).strip().lower() != copy.checksum:
                    note = f"{self.algorithm} {copy.checksum} differs from the recorded {str(recorded)[:80]}"
                    self.report(
                        "checksum_mismatch",
                        f"{self.table} row {key}: the {self.algorithm} of the file differs from the "
                        f"recorded {self.media.checksum_column}",
                    )
                    copy.entry["verified"] = False
                    return "checksum_mismatch", note
        if checked and copy.entry.get("verified") is None:
            copy.entry["verified"] = True
        return "copied", ""

    def write_index(self) -> None:
        with self.job.open_file(f"{FOLDER}/{INDEX}", "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["row_key", "file", "original_name", "original_path", "size", "sha256", "status", "note"])
            writer.writerows(self.index)

    def publish(self) -> None:
        seen: set[int] = set()
        for copy in self.by_target.values():
            if id(copy) not in seen:
                seen.add(id(copy))
                self.job.media.append(copy.entry)
        fmt = "media"
        allow = self.job.options.allow_missing_media
        labels = {
            "refused": "refused (not read)",
            "missing": "missing file",
            "unreadable": "unreadable file",
            "invalid": "no usable path",
            "size_mismatch": "size differs from the record",
            "checksum_mismatch": "checksum differs from the record",
        }
        for kind, items in self.problems.items():
            lines = [f"{labels[kind]}: {text}" for text in items[:LISTED]]
            if len(items) > LISTED:
                lines.append(f"{labels[kind]}: {len(items) - LISTED} more, listed in media/{INDEX}")
            for line in lines:
                self.job.note(fmt, line)
                if not (kind == "missing" and allow):
                    self.job.problems.append(f"{fmt}: {line}")


@register
class MediaExporter(Exporter):
    name = "media"
    description = "uploaded files in their original form (data/media/, index.csv)"
    folder: ClassVar[str] = FOLDER
    order: ClassVar[int] = 60

    def after(self, job: ExportJob) -> None:
        media = job.settings.media
        if media is None:
            job.note(self.name, "no [media] section is configured: no files exported")
            return
        if media.table not in {t.name for t in job.tables}:
            job.problems.append(
                f"{self.name}: [media] table {media.table} is not part of this customer's export: "
                "the customer's files cannot be found"
            )
            return
        store = open_store(media)
        if not store.available:
            job.problems.append(f"{self.name}: the media root {store.describe()} does not exist or is not a folder")
            return
        _Run(job, media).run(store)
