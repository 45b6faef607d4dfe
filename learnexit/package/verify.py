"""``learnexit verify``: re-check a bag folder or zip, offline, without trusting it.

Structure, every payload file listed and no file unlisted, hashes, the tag manifest,
Payload-Oxum, and that every CSV holds as many rows as ``bag-info.txt`` says.  It never
extracts a zip: members are read in place, and unsafe member names (zip-slip) are
reported, never followed; memory and work stay bounded (``limits``).

Manifest paths are percent-encoded as RFC 8493 §2.1.3 requires (``%`` → ``%25``, CR →
``%0D``, LF → ``%0A``).  bagit-python decodes only CR/LF, so payload file names should
avoid ``%`` to stay readable by every validator.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from ..errors import BadInput
from ..exporters.csv_format import csv_paths
from .bag import BAG_INFO, BAGIT_TXT, CHUNK, DATAPACKAGE, FORMATS_TAG, ROWS_TAG, decode_manifest_path, tag_text
from .limits import MANIFEST_LIMIT, TAG_FILE_LIMIT, Guarded, TooLarge, Unsafe, lines, read_capped, table_paths, zip_bomb

MAX_PROBLEMS = 50
_HASHES = ("md5", "sha1", "sha256", "sha512")  # manifests verify_package understands

# --------------------------------------------------------------------------- verify


@dataclass
class VerifyResult:
    path: Path
    valid: bool
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "valid": self.valid, "problems": list(self.problems)}


class _Problems(list[str]):
    """Problems found, the first MAX_PROBLEMS kept, the rest counted."""

    def __init__(self) -> None:
        super().__init__()
        self.more = 0

    def add(self, text: str) -> None:
        if len(self) < MAX_PROBLEMS:
            self.append(text)
        else:
            self.more += 1

    def final(self) -> list[str]:
        return list(self) + ([f"... and {self.more} more problems"] if self.more else [])


def _nfc(name: str) -> str:
    # Some file systems (and unzip tools) re-normalise names: compare them in NFC.
    return unicodedata.normalize("NFC", name)


class _Tree:
    """The files of a bag, wherever they are stored; paths in NFC.  ``broken``: files
    that could not be read (reported once)."""

    broken: set[str]

    def files(self) -> dict[str, int]:  # relative path → size
        raise NotImplementedError

    def open(self, rel: str) -> IO[bytes]:
        raise NotImplementedError


class _DirTree(_Tree):
    def __init__(self, root: Path, problems: _Problems) -> None:
        self.root = root
        self.broken = set()
        self._files: dict[str, int] = {}
        self._names: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            for name in list(dirnames):
                if os.path.islink(os.path.join(dirpath, name)):
                    problems.add(f"symbolic link in the package: {Path(dirpath, name).relative_to(root).as_posix()}")
                    dirnames.remove(name)
            for name in filenames:
                path = Path(dirpath, name)
                rel = path.relative_to(root).as_posix()
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode):
                    problems.add(f"not a regular file: {rel}")
                    continue
                self._files[_nfc(rel)] = st.st_size
                self._names[_nfc(rel)] = rel

    def files(self) -> dict[str, int]:
        return self._files

    def open(self, rel: str) -> IO[bytes]:
        return open(self.root / self._names[rel], "rb")


def _unsafe_member(name: str) -> str | None:
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "climbs out with '..'"
    if "\x00" in name:
        return "contains a NUL character"
    return None


class _ZipTree(_Tree):
    def __init__(self, zf: zipfile.ZipFile, problems: _Problems) -> None:
        self.zf = zf
        self.prefix = ""
        self.broken = set()
        self._files: dict[str, int] = {}
        self._names: dict[str, str] = {}
        entries: list[zipfile.ZipInfo] = []
        seen: set[str] = set()
        for info in zf.infolist():
            why = _unsafe_member(info.filename)
            if why:
                problems.add(f"unsafe zip entry {info.filename!r}: {why} (zip-slip); refusing to use it")
                continue
            if info.filename in seen:
                problems.add(f"duplicate zip entry {info.filename!r}")
                continue
            seen.add(info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                problems.add(f"symbolic link in the zip: {info.filename!r}")
                continue
            entries.append(info)
        names = [i.filename for i in entries]
        if "bagit.txt" not in names:
            tops = {n.split("/", 1)[0] for n in names}
            if len(tops) == 1:
                top = tops.pop()
                self.prefix = top + "/"
            elif tops:
                problems.add("the zip holds more than one top-level folder: " + ", ".join(sorted(tops)[:5]))
        for info in entries:
            if info.is_dir():
                continue
            if not info.filename.startswith(self.prefix):
                problems.add(f"zip entry outside the bag folder: {info.filename!r}")
                continue
            rel = _nfc(info.filename[len(self.prefix) :])
            self._files[rel] = info.file_size
            self._names[rel] = info.filename

    def files(self) -> dict[str, int]:
        return self._files

    def open(self, rel: str) -> IO[bytes]:
        name = self._names[rel]
        info = self.zf.getinfo(name)
        return Guarded(self.zf.open(info), name, info.file_size)  # type: ignore[return-value]


def read_tags(data: bytes) -> list[tuple[str, str]]:
    """Parse a BagIt tag file: ``Name: value`` lines; indented lines continue a value."""
    tags: list[tuple[str, str]] = []
    for line in data.decode("utf-8").splitlines():
        if not line.strip():
            continue
        if line[0] in " \t" and tags:
            key, value = tags[-1]
            tags[-1] = (key, f"{value} {line.strip()}")
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"not a tag line: {line[:60]!r}")
        tags.append((key.strip(), value.strip()))
    return tags


def count_csv_rows(stream: IO[bytes]) -> int:
    """Records in an RFC 4180 CSV, the header excluded (quoted line breaks handled)."""
    in_quotes = False
    newlines = 0
    last = b""
    empty = True
    while chunk := stream.read(CHUNK):
        empty = False
        parts = chunk.split(b'"')
        for i, part in enumerate(parts):
            if i:
                in_quotes = not in_quotes
            if not in_quotes:
                newlines += part.count(b"\n")
        last = chunk[-1:]
    if empty:
        return -1
    records = newlines + (0 if last == b"\n" else 1)
    return records - 1


def _read_tag_file(tree: _Tree, rel: str, problems: _Problems) -> bytes | None:
    """A tag file's bytes (at most TAG_FILE_LIMIT), or None with the problem reported."""
    if rel in tree.broken:
        return None  # (its problem is reported already)
    try:
        with tree.open(rel) as fh:
            return read_capped(fh, TAG_FILE_LIMIT, rel)
    except TooLarge as exc:
        problems.add(str(exc))
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        problems.add(f"cannot read {rel}: {getattr(exc, 'strerror', None) or exc}")
    tree.broken.add(rel)
    return None


def _parse_manifest(tree: _Tree, name: str, problems: _Problems) -> dict[str, str] | None:
    """A manifest read a line at a time (at most MANIFEST_LIMIT): ``{path: checksum}``;
    None when it cannot be read to its end (the problem is reported)."""
    entries: dict[str, str] = {}
    try:
        with tree.open(name) as fh:
            for number, raw in enumerate(lines(fh, MANIFEST_LIMIT, name), 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    problems.add(f"{name} is not UTF-8 (line {number})")
                    return None
                _manifest_line(line, number, name, entries, problems)
    except TooLarge as exc:
        problems.add(str(exc))
        return None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        problems.add(f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}")
        return None
    return entries


def _manifest_line(line: str, number: int, name: str, entries: dict[str, str], problems: _Problems) -> None:
    """One ``checksum path`` line into ``entries``."""
    if not line.strip():
        return
    parts = line.split(None, 1)
    if len(parts) != 2:
        problems.add(f"{name} line {number}: not 'checksum path'")
        return
    digest, rel = parts[0].lower(), _nfc(decode_manifest_path(parts[1].strip()))
    why = _unsafe_member(rel)
    if why:
        problems.add(f"{name} line {number}: path {rel!r} {why}")
        return
    if rel in entries:
        problems.add(f"{name}: {rel} is listed twice")
    entries[rel] = digest


def _check_bag(tree: _Tree, problems: _Problems) -> None:
    """Every check of one bag, in order: declaration, manifests, completeness, tag files,
    fixity, Payload-Oxum, rows per CSV."""
    files = tree.files()
    if BAGIT_TXT not in files:
        problems.add("bagit.txt is missing: not a BagIt bag")
        return
    if not _check_declaration(tree, problems):
        return
    payload = {rel: size for rel, size in files.items() if rel.startswith("data/")}
    manifests: dict[str, dict[str, str]] = {}
    tagmanifests: dict[str, dict[str, str]] = {}
    for alg in _HASHES:
        for kind, target in (("manifest", manifests), ("tagmanifest", tagmanifests)):
            name = f"{kind}-{alg}.txt"
            if name in files:
                entries = _parse_manifest(tree, name, problems)
                if entries is None:
                    return  # (reported: a manifest read in part would only add noise)
                target[alg] = entries
    if not manifests:
        problems.add("no payload manifest (manifest-sha256.txt) found")
        return
    _check_listing(files, payload, manifests, tagmanifests, problems)
    _check_fixity(tree, files, manifests, tagmanifests, problems)
    info: list[tuple[str, str]] = []
    text = _read_tag_file(tree, BAG_INFO, problems) if BAG_INFO in files else None
    if text is not None:
        try:
            info = read_tags(text)
        except (ValueError, UnicodeDecodeError) as exc:
            problems.add(f"bag-info.txt is unreadable: {exc}")
    oxum = [v for k, v in info if k == "Payload-Oxum"]
    if oxum:
        expected = f"{sum(payload.values())}.{len(payload)}"
        if oxum[0] != expected:
            problems.add(f"Payload-Oxum is {oxum[0]} but the payload is {expected} (bytes.files)")
    _check_rows(tree, files, info, problems)


def _check_declaration(tree: _Tree, problems: _Problems) -> bool:
    """bagit.txt declares the version and UTF-8; False when it cannot be read at all."""
    text = _read_tag_file(tree, BAGIT_TXT, problems)
    if text is None:
        return False
    try:
        declaration = dict(read_tags(text))
    except (ValueError, UnicodeDecodeError) as exc:
        problems.add(f"bagit.txt is unreadable: {exc}")
        return False
    if "BagIt-Version" not in declaration or declaration.get("Tag-File-Character-Encoding", "").upper() != "UTF-8":
        problems.add("bagit.txt must declare BagIt-Version and Tag-File-Character-Encoding: UTF-8")
    return True


def _check_listing(
    files: dict[str, int],
    payload: dict[str, int],
    manifests: dict[str, dict[str, str]],
    tagmanifests: dict[str, dict[str, str]],
    problems: _Problems,
) -> None:
    """Every payload file in every manifest, every entry present; anything outside data/
    a known tag file or in a tag manifest."""
    for alg, entries in manifests.items():
        name = f"manifest-{alg}.txt"
        for rel in sorted(set(payload) - set(entries)):
            problems.add(f"extra file not in {name}: {rel}")
        for rel in sorted(set(entries) - set(payload)):
            problems.add(f"missing file listed in {name}: {rel}")
        for rel in sorted(entries):
            if not rel.startswith("data/"):
                problems.add(f"{name} lists {rel}, which is outside data/")
    tag_listed = set().union(*[set(e) for e in tagmanifests.values()]) if tagmanifests else set()
    known = {BAGIT_TXT} | {f"tagmanifest-{a}.txt" for a in tagmanifests}
    for rel in sorted(set(files) - set(payload)):
        if rel not in known and rel not in tag_listed:
            problems.add(f"extra file not in any tag manifest: {rel}")
    for alg, entries in tagmanifests.items():
        for rel in sorted(entries):
            if rel.startswith("data/"):
                problems.add(f"tagmanifest-{alg}.txt lists the payload file {rel}")
            elif rel not in files:
                problems.add(f"missing tag file listed in tagmanifest-{alg}.txt: {rel}")


def _check_fixity(
    tree: _Tree,
    files: dict[str, int],
    manifests: dict[str, dict[str, str]],
    tagmanifests: dict[str, dict[str, str]],
    problems: _Problems,
) -> None:
    """Read each listed file once, computing every algorithm it is listed under."""
    wanted: dict[str, dict[str, str]] = {}
    for table in (manifests, tagmanifests):
        for alg, entries in table.items():
            for rel, digest in entries.items():
                if rel in files:
                    wanted.setdefault(rel, {})[alg] = digest
    for rel in sorted(wanted):
        hashers = {alg: hashlib.new(alg) for alg in wanted[rel]}
        try:
            with tree.open(rel) as fh:
                while chunk := fh.read(CHUNK):
                    for h in hashers.values():
                        h.update(chunk)
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
            problems.add(f"cannot read {rel}: {exc}")
            tree.broken.add(rel)
            continue
        for alg, h in hashers.items():
            if h.hexdigest() != wanted[rel][alg]:
                problems.add(f"changed: {rel} ({alg} checksum differs from the manifest)")


def _check_rows(tree: _Tree, files: dict[str, int], info: list[tuple[str, str]], problems: _Problems) -> None:
    """Each CSV holds exactly as many rows as bag-info.txt records for its table."""
    formats = {f.strip() for k, v in info if k == FORMATS_TAG for f in v.split(",")}
    counted = {value.rpartition("=")[0] for key, value in info if key == ROWS_TAG}
    paths: dict[str, str] = {}
    dp = f"data/{DATAPACKAGE}"
    if dp in files and dp not in tree.broken and counted:
        try:  # (a stream of values: only the tables bag-info counts are kept)
            with tree.open(dp) as fh:
                titles = table_paths(fh, lambda title: tag_text(title) in counted, dp)
            paths = {tag_text(title): "data/" + path for title, path in titles.items()}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            problems.add(f"{dp} is unreadable: {exc}")
    for key, value in info:
        if key != ROWS_TAG:
            continue
        table, sep, count = value.rpartition("=")
        if not sep or not count.isdigit():
            problems.add(f"bag-info.txt: malformed {ROWS_TAG} value {value!r}")
            continue
        rel = paths.get(table) or "data/" + csv_paths([table])[table]
        if rel not in files:
            if "csv" in formats:
                problems.add(f"missing CSV for table {table}: {rel}")
            continue
        try:
            with tree.open(rel) as fh:
                rows = count_csv_rows(fh)
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
            problems.add(f"cannot read {rel}: {exc}")
            continue
        if rows < 0:
            problems.add(f"{rel} is empty (not even a header row)")
        elif rows != int(count):
            problems.add(f"{rel} holds {rows} rows but bag-info.txt records {count} for {table}")


def verify_package(path: str | os.PathLike[str]) -> VerifyResult:
    """Check an export package (bag folder or .zip); never raises for a bad package."""
    target = Path(path)
    problems = _Problems()
    if not os.path.lexists(target):
        raise BadInput(f"{target} does not exist")
    if target.is_dir():
        try:
            _check_bag(_DirTree(target, problems), problems)
        except OSError as exc:
            problems.add(f"cannot read the package: {exc.strerror or exc}")
        return VerifyResult(target, not problems, problems.final())
    if target.name.endswith(".age"):
        raise BadInput(f"{target} is encrypted: decrypt it first (age -d -i KEY -o PACKAGE.zip {target.name})")
    if not target.is_file():  # a FIFO or a device would block or never end
        raise BadInput(f"{target} is not a regular file or a folder: not an export package")
    try:
        with open(target, "rb") as raw:
            head = raw.read(4)
        with zipfile.ZipFile(target) as zf:
            bomb = zip_bomb(zf.infolist(), target.stat().st_size)
            if bomb:
                problems.add(bomb)
            else:
                _check_bag(_ZipTree(zf, problems), problems)
    except Unsafe as exc:  # (the zip told one size and inflated more)
        problems.add(str(exc))
    except zipfile.BadZipFile as exc:
        what = "truncated or damaged zip" if head.startswith(b"PK") else "neither a bag folder nor a zip file"
        problems.add(f"{target.name}: {what} ({exc})")
    except (OSError, EOFError) as exc:
        problems.add(f"cannot read {target.name}: {getattr(exc, 'strerror', None) or exc}")
    return VerifyResult(target, not problems, problems.final())


__all__ = ["VerifyResult", "count_csv_rows", "read_tags", "verify_package"]
