"""The export package (design §4): a BagIt bag (RFC 8493), as a folder or one ``.zip``.

Life of a package:

1. ``plan_package`` names it (``<customer>-<UTC time>``) and refuses when that name is
   taken; nothing is written yet.
2. ``PackageBuild.create`` makes ``<name>.partial/data/``; the exporters fill ``data/``.
3. ``finish_package`` forces the modes (files 0600, folders 0700, whatever the umask and
   whatever an exporter did), writes ``data/datapackage.json`` and ``data/index.html``,
   the manifests and ``bag-info.txt``, and only then renames the bag into place (or zips
   it, or zips and encrypts it, each built under a ``.partial`` name first).  A folder or
   file without ``.partial`` is therefore always complete.
4. ``discard_package`` removes whatever a failed run left.

``verify_package`` re-checks a bag folder or zip: structure, every payload file listed
and no file unlisted, hashes, the tag manifest, Payload-Oxum, and that every CSV holds as
many rows as ``bag-info.txt`` says.  It never extracts a zip: members are read in place,
and unsafe member names (zip-slip) are reported, never followed.

Manifest paths are percent-encoded as RFC 8493 §2.1.3 requires (``%`` → ``%25``, CR →
``%0D``, LF → ``%0A``).  bagit-python decodes only CR/LF, so payload file names should
avoid ``%`` to stay readable by every validator.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import stat
import unicodedata
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import quote

from . import __version__
from .errors import BadInput, OperationalError, printable
from .exporters.base import ExportJob, TableSpec
from .exporters.csv_format import csv_paths
from .exporters.values import unique_stems
from .machine import usable_cores
from .none_values import declare_none, none_wording
from .package_limits import (
    MANIFEST_LIMIT,
    TAG_FILE_LIMIT,
    Guarded,
    TooLarge,
    Unsafe,
    lines,
    read_capped,
    table_paths,
    zip_bomb,
)

BAGIT_VERSION = "1.0"
BAGIT_TXT = "bagit.txt"
BAG_INFO = "bag-info.txt"
MANIFEST = "manifest-sha256.txt"
TAGMANIFEST = "tagmanifest-sha256.txt"
DATAPACKAGE = "datapackage.json"
INDEX = "index.html"
ROWS_TAG = "Learnexit-Rows"
FORMATS_TAG = "Learnexit-Formats"
PARTIAL = ".partial"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H%M%SZ"
FILE_MODE = 0o600
DIR_MODE = 0o700
MAX_PROBLEMS = 50
_CHUNK = 1 << 20
_HASHES = ("md5", "sha1", "sha256", "sha512")  # manifests verify_package understands
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_RESOURCE_NAME = re.compile(r"[^a-z0-9._/-]")


# --------------------------------------------------------------------------- naming


def safe_file_name(text: str) -> str:
    """``text`` as one file-name component: letters, digits, ``.``, ``_``, ``-``."""
    name = _SAFE_NAME.sub("_", text).lstrip(".") or "_"
    return name[:120]


def package_name(customer: str, at: datetime) -> str:
    """``<customer>-<UTC time>``, e.g. ``acme-2026-11-29T101500Z``."""
    return f"{safe_file_name(customer)}-{_utc(at).strftime(TIMESTAMP_FORMAT)}"


@dataclass
class PackageBuild:
    """A package being built: ``<out>/<name>.partial/`` until it is complete."""

    out_dir: Path
    name: str
    zip_output: bool = False
    encrypted: bool = False

    @property
    def partial(self) -> Path:
        return self.out_dir / (self.name + PARTIAL)

    @property
    def data_dir(self) -> Path:
        return self.partial / "data"

    @property
    def final(self) -> Path:
        """Where the finished package will be: a folder, ``.zip`` or ``.zip.age``."""
        if self.encrypted:
            return self.out_dir / f"{self.name}.zip.age"
        if self.zip_output:
            return self.out_dir / f"{self.name}.zip"
        return self.out_dir / self.name

    def _refuse_taken(self) -> None:
        """BadInput (exit 2) when this name is taken, by a package or a build in progress."""
        names = [self.name, f"{self.name}.zip", f"{self.name}.zip.age"]
        for path in [self.out_dir / n for n in names]:
            if os.path.lexists(path):
                raise BadInput(f"{path} exists already; not overwriting an export")
        for path in [self.out_dir / (n + PARTIAL) for n in names]:
            if os.path.lexists(path):
                raise BadInput(
                    f"{path} exists: another export is running, or one was interrupted "
                    "(delete it if no export is running, then try again)"
                )

    def create(self) -> None:
        """Make ``<name>.partial/data/`` (and the output folder), folders 0700."""
        _make_dirs(self.out_dir)
        self._refuse_taken()
        try:
            os.mkdir(self.partial, DIR_MODE)
            os.chmod(self.partial, DIR_MODE)
            os.mkdir(self.data_dir, DIR_MODE)
            os.chmod(self.data_dir, DIR_MODE)
        except FileExistsError:
            raise BadInput(f"{self.partial} exists already; not overwriting an export") from None
        except OSError as exc:
            raise OperationalError(f"cannot create {self.partial}: {exc.strerror}") from None


def plan_package(
    out_dir: Path, customer: str, started_at: datetime, *, zip_output: bool = False, encrypted: bool = False
) -> PackageBuild:
    """Name the package; refuse (exit 2) when that name is taken.  Writes nothing."""
    build = PackageBuild(Path(out_dir), package_name(customer, started_at), zip_output or encrypted, encrypted)
    if build.out_dir.exists() and not build.out_dir.is_dir():
        raise BadInput(f"output folder {build.out_dir} is a file")
    build._refuse_taken()
    return build


def _make_dirs(folder: Path) -> None:
    """Create ``folder`` and missing parents; new levels get mode 0700."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        p = p.parent
    try:
        for level in reversed(missing):
            os.mkdir(level, DIR_MODE)
            os.chmod(level, DIR_MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        raise OperationalError(f"cannot create output folder {folder}: {exc.strerror}") from None


def discard_package(build: PackageBuild) -> None:
    """Remove everything a failed build left behind (it may hold personal data)."""
    for leftover in (
        build.partial,
        build.out_dir / f"{build.name}.zip{PARTIAL}",
        build.out_dir / f"{build.name}.zip.age{PARTIAL}",
    ):
        try:
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            elif os.path.lexists(leftover):
                leftover.unlink()
        except OSError:
            pass  # best effort: the original error matters more


# --------------------------------------------------------------------------- finishing


@dataclass
class PackageResult:
    path: Path
    files: int  # files in the bag, tag files included
    bytes: int  # size of what was delivered (the folder's files, or the one zip/age file)
    payload_files: int
    payload_bytes: int
    manifest_sha256: str


def _write_new(path: Path, data: bytes) -> None:
    """Write a new file with mode 0600 (regardless of the umask) and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
            fh.flush()
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _secure_tree(root: Path) -> None:
    """Files 0600, folders 0700; no links or special files anywhere in the bag."""
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, DIR_MODE)
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                raise OperationalError(f"export produced a symbolic link {path}; refusing to package it")
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise OperationalError(f"export produced a special file {path}; refusing to package it")
            if stat.S_IMODE(st.st_mode) != FILE_MODE:
                os.chmod(path, FILE_MODE)


def _relative_files(root: Path) -> list[str]:
    """Every regular file below ``root`` as a POSIX path relative to it, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            found.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(found)


def _hash_file(path: Path, *, sync: bool = False) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        if sync:
            os.fsync(fh.fileno())
    return digest.hexdigest(), size


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def prehash(root: Path) -> dict[str, tuple[str, int, tuple[int, int, int, int]]]:
    """``_hash_files`` of every file below ``root`` now, each with what identifies its
    content (device, inode, size, modification time, the same before and after hashing):
    ``finish_package`` takes a digest from here for a file that is still the same.  An
    export hashes what the formats wrote while it makes the export summary."""
    files = _relative_files(root)
    before = {rel: _identity(root / rel) for rel in files}
    hashed = _hash_files(root, files)
    out = {}
    for rel, (digest, size) in hashed.items():
        if _identity(root / rel) == before[rel]:
            out[rel] = (digest, size, before[rel])
    return out


def _hash_files(
    root: Path, files: Sequence[str], known: dict[str, tuple[str, int, tuple[int, int, int, int]]] | None = None
) -> dict[str, tuple[str, int]]:
    """``_hash_file(sync=True)`` of many files at once, one thread per core (hashing and
    fsync release the interpreter lock), the largest first; a file ``known`` (``prehash``)
    and unchanged since is not read again."""
    reused: dict[str, tuple[str, int]] = {}
    if known:
        for rel in files:
            entry = known.get(rel)
            if entry is not None and _identity(root / rel) == entry[2]:
                reused[rel] = (entry[0], entry[1])
        files = [rel for rel in files if rel not in reused]
    return reused | _hash_new(root, files)


def _hash_new(root: Path, files: Sequence[str]) -> dict[str, tuple[str, int]]:
    by_size = sorted(files, key=lambda rel: -(root / rel).stat().st_size)
    threads = usable_cores()
    if threads < 2 or len(by_size) < 2:
        return {rel: _hash_file(root / rel, sync=True) for rel in by_size}
    with ThreadPoolExecutor(max_workers=min(threads, 4)) as pool:
        return dict(zip(by_size, pool.map(lambda rel: _hash_file(root / rel, sync=True), by_size), strict=True))


def encode_manifest_path(path: str) -> str:
    """RFC 8493 §2.1.3: percent-encode ``%``, CR and LF in manifest file paths."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def decode_manifest_path(path: str) -> str:
    return re.sub(r"%(25|0[DdAa])", lambda m: {"25": "%", "0D": "\r", "0A": "\n"}[m.group(1).upper()], path)


def tag_text(value: object) -> str:
    """``value`` as a tag value: control characters escaped (``\\x0a``), spaces folded.
    One line whatever a name holds; ``verify`` compares names through the same function."""
    return " ".join(printable(str(value)).split())


def _tag_line(key: str, value: object) -> str:
    return f"{key}: {tag_text(value)}\n"


def finish_package(
    build: PackageBuild,
    job: ExportJob,
    *,
    formats: Sequence[tuple[str, str]],
    recipients: Sequence[Any] = (),
) -> PackageResult:
    """Describe, bag and publish the package whose payload the exporters wrote.

    ``formats`` is ``[(name, description)]`` of the formats that ran; ``recipients`` are
    pyrage recipients (encrypt the zip for them, keep no unencrypted copy).
    """
    bag = build.partial
    data = build.data_dir
    try:
        _secure_tree(bag)
        hashes = _hash_files(data, _relative_files(data), job.prehashed)  # everything the formats wrote
        _write_new(data / DATAPACKAGE, _json_bytes(build_datapackage(job, data, hashes)))
        files = [f for f in _relative_files(data) if f != INDEX]
        sizes = {f: (data / f).stat().st_size for f in files}
        _write_new(data / INDEX, render_index(job, formats, sizes).encode("utf-8"))

        manifest_lines = []
        payload_bytes = 0
        payload = _relative_files(data)
        for rel in payload:
            if rel not in hashes:  # fsync while hashing: complete means on disk
                hashes[rel] = _hash_file(data / rel, sync=True)
            digest, size = hashes[rel]
            payload_bytes += size
            manifest_lines.append(f"{digest}  {encode_manifest_path('data/' + rel)}\n")
        manifest = "".join(manifest_lines).encode("utf-8")
        _write_new(bag / MANIFEST, manifest)
        _write_new(bag / BAGIT_TXT, f"BagIt-Version: {BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n".encode())
        _write_new(bag / BAG_INFO, _bag_info(job, formats, payload_bytes, len(payload)).encode("utf-8"))
        tag_lines = []
        for tag in (BAGIT_TXT, BAG_INFO, MANIFEST):
            digest, _size = _hash_file(bag / tag)
            tag_lines.append(f"{digest}  {tag}\n")
        _write_new(bag / TAGMANIFEST, "".join(tag_lines).encode("utf-8"))
        _fsync_dir(bag)
        manifest_sha256 = hashlib.sha256(manifest).hexdigest()
        all_files = _relative_files(bag)
        bag_bytes = sum((bag / f).stat().st_size for f in all_files)
    except OSError as exc:
        raise OperationalError(f"cannot write the package in {bag}: {exc.strerror or exc}") from None

    if build.encrypted:
        delivered = _publish_encrypted(build, recipients, job.started_at)
    elif build.zip_output:
        delivered = _publish_zip(build, job.started_at)
    else:
        delivered = _publish_folder(build)
    size = bag_bytes if delivered.is_dir() else delivered.stat().st_size
    return PackageResult(delivered, len(all_files), size, len(payload), payload_bytes, manifest_sha256)


def _publish_folder(build: PackageBuild) -> Path:
    final = build.final
    if os.path.lexists(final):
        raise BadInput(f"{final} exists already; not overwriting an export")
    try:
        os.rename(build.partial, final)
    except OSError as exc:
        raise OperationalError(f"cannot move the package into place at {final}: {exc.strerror}") from None
    _fsync_dir(build.out_dir)
    return final


def _publish_file(partial: Path, final: Path) -> None:
    """Move a finished file into place without ever replacing an existing one."""
    try:
        os.link(partial, final)  # fails if ``final`` exists: no silent overwrite
    except FileExistsError:
        raise BadInput(f"{final} exists already; not overwriting an export") from None
    except OSError as exc:
        raise OperationalError(f"cannot move the package into place at {final}: {exc.strerror}") from None
    os.unlink(partial)
    _fsync_dir(final.parent)


def _utc(at: datetime) -> datetime:
    """An aware UTC datetime (naive values mean UTC, as in the ledger)."""
    return at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _zip_time(at: datetime) -> tuple[int, int, int, int, int, int]:
    at = max(_utc(at), datetime(1980, 1, 1, tzinfo=UTC))
    return (at.year, at.month, at.day, at.hour, at.minute, at.second)


def _write_zip(build: PackageBuild, target: Path, at: datetime) -> None:
    """The bag as one zip below a single top folder ``<name>/``; entry modes 0600/0700."""
    stamp = _zip_time(at)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for dirpath, dirnames, filenames in os.walk(build.partial):
            dirnames.sort()
            rel_dir = Path(dirpath).relative_to(build.partial).as_posix()
            prefix = build.name if rel_dir == "." else f"{build.name}/{rel_dir}"
            info = zipfile.ZipInfo(prefix + "/", stamp)
            info.create_system = 3
            info.external_attr = ((stat.S_IFDIR | DIR_MODE) << 16) | 0x10
            zf.writestr(info, b"")
            for name in sorted(filenames):
                path = Path(dirpath, name)
                info = zipfile.ZipInfo(f"{prefix}/{name}", stamp)
                info.create_system = 3
                info.external_attr = (stat.S_IFREG | FILE_MODE) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                info.file_size = path.stat().st_size
                with open(path, "rb") as src, zf.open(info, "w") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
        zf.close()
        raw.flush()
        os.fsync(raw.fileno())


def _publish_zip(build: PackageBuild, at: datetime) -> Path:
    partial = build.out_dir / f"{build.name}.zip{PARTIAL}"
    try:
        _write_zip(build, partial, at)
    except OSError as exc:
        raise OperationalError(f"cannot write {partial}: {exc.strerror or exc}") from None
    _publish_file(partial, build.final)
    shutil.rmtree(build.partial)
    return build.final


def _publish_encrypted(build: PackageBuild, recipients: Sequence[Any], at: datetime) -> Path:
    import pyrage

    zip_partial = build.out_dir / f"{build.name}.zip{PARTIAL}"
    age_partial = build.out_dir / f"{build.name}.zip.age{PARTIAL}"
    try:
        _write_zip(build, zip_partial, at)
        # The bag folder goes as soon as the zip holds it: fewer clear copies on disk.
        shutil.rmtree(build.partial)
        fd = os.open(age_partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.fchmod(fd, FILE_MODE)
        with open(zip_partial, "rb") as src, os.fdopen(fd, "wb") as dst:
            pyrage.encrypt_io(src, dst, list(recipients))
            dst.flush()
            os.fsync(dst.fileno())
    except OSError as exc:
        raise OperationalError(f"cannot write the encrypted package: {exc.strerror or exc}") from None
    except pyrage.EncryptError as exc:
        raise OperationalError(f"encryption failed: {exc}") from None
    finally:
        if zip_partial.exists():
            zip_partial.unlink()  # never leave an unencrypted zip behind
    _publish_file(age_partial, build.final)
    return build.final


def _bag_info(job: ExportJob, formats: Sequence[tuple[str, str]], payload_bytes: int, payload_files: int) -> str:
    started = _utc(job.started_at)
    lines = [
        _tag_line("Source-Organization", job.customer_name),
        _tag_line("External-Identifier", job.customer),
        _tag_line("External-Description", f"Data export of {job.customer_name} ({job.customer}) by learnexit"),
        _tag_line("Bagging-Date", started.date().isoformat()),
        _tag_line("Bag-Software-Agent", f"learnexit {__version__}"),
        _tag_line("Payload-Oxum", f"{payload_bytes}.{payload_files}"),
        _tag_line("Learnexit-Customer", job.customer),
        _tag_line("Learnexit-Export-Time", started.strftime("%Y-%m-%dT%H:%M:%SZ")),
        _tag_line("Learnexit-Export-Deadline", job.export_deadline.isoformat() if job.export_deadline else "none"),
        _tag_line("Learnexit-Tool-Version", __version__),
        _tag_line(FORMATS_TAG, ",".join(name for name, _ in formats)),
        _tag_line("Learnexit-Vendor", job.settings.vendor_name),
    ]
    for spec in job.tables:
        lines.append(_tag_line(ROWS_TAG, f"{spec.name}={job.counts.get(spec.name, 0)}"))
    return "".join(lines)


# --------------------------------------------------------------------------- datapackage.json


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _field(col: Any, dialect: Any) -> dict[str, Any]:
    """A Table Schema field matching the CSV text conventions of the csv format."""
    kinds: dict[str, dict[str, Any]] = {
        "integer": {"type": "integer"},
        "number": {"type": "number"},
        "boolean": {"type": "boolean", "trueValues": ["true"], "falseValues": ["false"]},
        "date": {"type": "date"},
        "datetime": {"type": "datetime"},
        "binary": {"type": "string", "format": "binary"},
        "string": {"type": "string"},
    }
    out: dict[str, Any] = {"name": col.name, **kinds.get(col.kind, {"type": "string"})}
    try:
        out["description"] = f"SQL type {col.sql_type.compile(dialect=dialect)}"
    except Exception:  # noqa: BLE001 - a type the dialect cannot render: leave it out
        pass
    # NULL and "" are both written as an empty cell, so "required" is only safe for
    # kinds where an empty cell cannot be a value.
    if not col.nullable and col.kind not in ("string", "binary") and not col.primary_key:
        out["constraints"] = {"required": True}
    return out


def _resource_name(text: str, used: set[str]) -> str:
    base = _RESOURCE_NAME.sub("-", text.lower()).strip("-/") or "resource"
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}-{n}"
    used.add(name)
    return name


def _file_format(rel: str) -> tuple[str, str]:
    ext = PurePosixPath(rel).suffix.lower().lstrip(".")
    media = {
        "csv": "text/csv",
        "json": "application/json",
        "xml": "application/xml",
        "xsd": "application/xml",
        "sql": "application/sql",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "pdf": "application/pdf",
        "html": "text/html",
        "txt": "text/plain",
    }
    return ext, media.get(ext, "application/octet-stream")


def build_datapackage(job: ExportJob, data_dir: Path, hashes: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """The Frictionless Data Package: every CSV with its schema and keys, then every other
    file as a non-tabular resource.  ``hashes`` caches (sha256, size) per relative path."""
    dialect = job.source.engine.dialect
    used: set[str] = set()
    resources: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    kinds: dict[str, dict[str, str]] = {}
    described: set[str] = {DATAPACKAGE, INDEX}

    def digest(rel: str) -> tuple[str, int]:
        if rel not in hashes:
            hashes[rel] = _hash_file(data_dir / rel, sync=True)
        return hashes[rel]

    paths = csv_paths([s.name for s in job.tables])
    csv_specs: list[TableSpec] = [s for s in job.tables if (data_dir / paths[s.name]).is_file()]
    for spec in csv_specs:
        names[spec.name] = _resource_name(spec.name, used)
        kinds[spec.name] = {c.name: c.kind for c in spec.columns}
    for spec in csv_specs:
        rel = paths[spec.name]
        described.add(rel)
        sha, size = digest(rel)
        with open(data_dir / rel, "rb") as fh:
            bom = fh.read(3) == b"\xef\xbb\xbf"
        schema: dict[str, Any] = {
            "fields": [_field(c, dialect) for c in spec.columns],
            "missingValues": [""],
        }
        if spec.primary_key:
            schema["primaryKey"] = list(spec.primary_key)
        foreign_keys = []
        undeclared: list[str] = []  # "no reference" values a field cannot declare
        for edge in spec.foreign_keys:
            if edge.parent not in names:
                continue
            child_kinds = [kinds[spec.name].get(c) for c in edge.child_cols]
            parent_kinds = [kinds[edge.parent].get(c) for c in edge.parent_cols]
            if child_kinds != parent_kinds:
                job.note(
                    "csv",
                    f"{edge.label}: column types differ, so datapackage.json does not declare this foreign key",
                )
                continue
            if not declare_none(schema["fields"], edge, spec.primary_key):
                undeclared.append(none_wording(edge, spec.name))
                continue
            foreign_keys.append(
                {
                    "fields": list(edge.child_cols),
                    "reference": {
                        "resource": "" if edge.parent == spec.name else names[edge.parent],
                        "fields": list(edge.parent_cols),
                    },
                }
            )
        if foreign_keys:
            schema["foreignKeys"] = foreign_keys
        if undeclared:
            which = "the reference is" if len(undeclared) == 1 else "the references are"
            job.note("csv", f"{'; '.join(undeclared)}; {which} not declared in datapackage.json")
        resources.append(
            {
                "name": names[spec.name],
                "title": spec.name,
                "type": "table",
                "path": rel,
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8-sig" if bom else "utf-8",
                "bytes": size,
                "hash": f"sha256:{sha}",
                "dialect": {"delimiter": ",", "quoteChar": '"', "doubleQuote": True, "header": True},
                "schema": schema,
            }
        )
    for rel in _relative_files(data_dir):
        if rel in described:
            continue
        sha, size = digest(rel)
        fmt, mediatype = _file_format(rel)
        resource: dict[str, Any] = {
            "name": _resource_name(rel, used),
            "type": "file",
            "path": rel,
            "mediatype": mediatype,
            "bytes": size,
            "hash": f"sha256:{sha}",
        }
        if fmt:
            resource["format"] = fmt
        resources.append(resource)
    # index.html is written after this file, so it is listed without size and hash.
    resources.append(
        {"name": _resource_name(INDEX, used), "type": "file", "path": INDEX, "format": "html", "mediatype": "text/html"}
    )
    started = _utc(job.started_at)
    return {
        "name": _resource_name(f"{job.customer}-export", set()),
        "title": f"Data export of {job.customer_name} ({job.customer})",
        "created": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "description": "Every table of the customer's data as CSV (UTF-8, header row, RFC 4180); "
        "an empty cell is NULL; booleans are true/false; dates and times ISO 8601 (UTC); "
        "binary values base64.",
        "resources": resources,
    }


# --------------------------------------------------------------------------- index.html

_TEXT = {
    "en": {
        "title": "Data export: {name}",
        "intro": "This package holds every row of {name}'s data, read from one consistent snapshot. "
        "It is a BagIt bag: manifest-sha256.txt, next to this folder, lists a SHA-256 checksum for every file.",
        "customer": "Customer",
        "exported": "Exported at",
        "deadline": "Export deadline",
        "none": "none recorded",
        "formats": "Formats",
        "tool": "Made by",
        "vendor": "Delivered by",
        "tables": "Tables",
        "table": "Table",
        "category": "Category",
        "rows": "Rows",
        "files_of": "Files",
        "total": "Total",
        "notes": "Notes",
        "no_notes": "No notes: nothing was truncated, changed or left out.",
        "files": "Every file in this package",
        "path": "File",
        "size": "Size",
        "check": "How to check this package",
        "check_text": "Any of these confirms that every file is complete and unchanged:",
        "csv_safe": "Opening the CSV files safely",
        "csv_safe_text": "The CSV files hold every value exactly as it was stored, including text that "
        "begins with =, +, - or @. A spreadsheet program that opens a CSV file directly (by a double-click) "
        "may take such text for a formula and run it. Import the files instead (Excel: Data → From Text/CSV; "
        "LibreOffice: the Text Import dialog) with every column set to Text, or open the Excel workbook "
        "in excel/, where every value is text or a number and never a formula.",
        "media": "Media files copied: {n}.",
    },
    "sv": {
        "title": "Dataexport: {name}",
        "intro": "Paketet innehåller varje rad av {name}s data, läst ur en och samma konsistenta ögonblicksbild. "
        "Det är en BagIt-påse: manifest-sha256.txt, bredvid den här mappen, anger en SHA-256-kontrollsumma "
        "för varje fil.",
        "customer": "Kund",
        "exported": "Exporterat",
        "deadline": "Sista exportdag",
        "none": "ingen registrerad",
        "formats": "Format",
        "tool": "Skapat med",
        "vendor": "Levererat av",
        "tables": "Tabeller",
        "table": "Tabell",
        "category": "Kategori",
        "rows": "Rader",
        "files_of": "Filer",
        "total": "Totalt",
        "notes": "Anmärkningar",
        "no_notes": "Inga anmärkningar: inget har kortats, ändrats eller utelämnats.",
        "files": "Alla filer i paketet",
        "path": "Fil",
        "size": "Storlek",
        "check": "Så kontrollerar du paketet",
        "check_text": "Vilket som helst av följande bekräftar att varje fil är komplett och oförändrad:",
        "csv_safe": "Öppna CSV-filerna säkert",
        "csv_safe_text": "CSV-filerna innehåller varje värde exakt som det lagrades, även text som börjar "
        "med =, +, - eller @. Ett kalkylprogram som öppnar en CSV-fil direkt (med ett dubbelklick) kan ta "
        "sådan text för en formel och köra den. Importera i stället filerna (Excel: Data → Från text/CSV; "
        "LibreOffice: dialogen Textimport) med alla kolumner som Text, eller öppna Excel-arbetsboken i "
        "excel/, där varje värde är text eller ett tal och aldrig en formel.",
        "media": "Kopierade mediefiler: {n}.",
    },
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:60rem;
padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25rem .5rem;
border-bottom:1px solid #eee;vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f4f4f4;padding:0 .2rem}li{margin:.2rem 0}
"""


def _human(size: int, lang: str = "en") -> str:
    """Decimal units (kB, MB), as the export summary and the CLI write them."""
    from .documents.i18n import format_bytes

    return format_bytes(size, lang)


def _link(rel: str, label: str | None = None) -> str:
    return f'<a href="{html.escape(quote(rel))}">{html.escape(printable(label or rel))}</a>'


def render_index(job: ExportJob, formats: Sequence[tuple[str, str]], sizes: dict[str, int]) -> str:
    """``data/index.html``: what is inside, counts, every note, links.  Self-contained."""
    lang = job.options.lang if job.options.lang in _TEXT else "en"
    t = _TEXT[lang]

    def e(text: str) -> str:  # control characters in names and notes shown escaped (\x0a)
        return html.escape(printable(text))

    started = _utc(job.started_at)
    # Per-table files share the table's file stem (csv/<stem>.csv, json/<stem>.json).
    stems = {stem: table for table, stem in unique_stems([s.name for s in job.tables]).items()}
    by_table: dict[str, list[str]] = {}
    for rel in sizes:
        p = PurePosixPath(rel)
        if p.parent.as_posix() in ("csv", "json") and p.stem in stems:
            by_table.setdefault(stems[p.stem], []).append(rel)
    out: list[str] = [
        "<!DOCTYPE html>",
        f'<html lang="{lang}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(t['title'].format(name=job.customer_name))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(t['title'].format(name=job.customer_name))}</h1>",
        f"<p>{e(t['intro'].format(name=job.customer_name))}</p>",
        "<table>",
        f"<tr><th>{e(t['customer'])}</th><td>{e(job.customer_name)} (<code>{e(job.customer)}</code>)</td></tr>",
        f"<tr><th>{e(t['exported'])}</th><td>{started.strftime('%Y-%m-%d %H:%M:%S')} UTC</td></tr>",
        f"<tr><th>{e(t['deadline'])}</th><td>"
        f"{e(job.export_deadline.isoformat() if job.export_deadline else t['none'])}</td></tr>",
        f"<tr><th>{e(t['formats'])}</th><td>"
        + "<br>".join(f"<b>{e(name)}</b>: {e(desc)}" for name, desc in formats)
        + "</td></tr>",
        f"<tr><th>{e(t['vendor'])}</th><td>{e(job.settings.vendor_name)}</td></tr>",
        f"<tr><th>{e(t['tool'])}</th><td>learnexit {e(__version__)}</td></tr>",
        "</table>",
        f"<h2>{e(t['tables'])}</h2>",
        f"<table><tr><th>{e(t['table'])}</th><th>{e(t['category'])}</th>"
        f"<th class=n>{e(t['rows'])}</th><th>{e(t['files_of'])}</th></tr>",
    ]
    for spec in job.tables:
        links = ", ".join(
            _link(rel, PurePosixPath(rel).suffix.lstrip(".")) for rel in sorted(by_table.get(spec.name, []))
        )
        out.append(
            f"<tr><td>{e(spec.name)}</td><td>{e(spec.category or '')}</td>"
            f"<td class=n>{job.counts.get(spec.name, 0):,}</td><td>{links}</td></tr>"
        )
    out.append(
        f"<tr><th>{e(t['total'])}</th><td></td><th class=n>{sum(job.counts.values()):,}</th><td></td></tr></table>"
    )
    out.append(f"<h2>{e(t['notes'])}</h2>")
    if job.notes:
        from .documents.notes import note_sentence

        out.append("<ul>" + "".join(f"<li>{e(note_sentence(n))}</li>" for n in job.notes) + "</ul>")
    else:
        out.append(f"<p>{e(t['no_notes'])}</p>")
    if job.media:
        out.append(f"<p>{e(t['media'].format(n=len(job.media)))}</p>")
    out.append(f"<h2>{e(t['files'])}</h2>")
    out.append(f"<table><tr><th>{e(t['path'])}</th><th class=n>{e(t['size'])}</th><th class=n>bytes</th></tr>")
    for rel in sorted(sizes):
        out.append(
            f"<tr><td>{_link(rel)}</td><td class=n>{_human(sizes[rel], lang)}</td><td class=n>{sizes[rel]}</td></tr>"
        )
    out.append("</table>")
    if any(name == "csv" for name, _desc in formats):  # formula-looking text stays exact in CSV
        out.append(f"<h2 id=csv-safety>{e(t['csv_safe'])}</h2><p>{e(t['csv_safe_text'])}</p>")
    out.append(f"<h2>{e(t['check'])}</h2><p>{e(t['check_text'])}</p><ul>")
    for command in (
        "learnexit verify PACKAGE",
        "bagit.py --validate PACKAGE",
        "frictionless validate data/datapackage.json",
    ):
        out.append(f"<li><code>{e(command)}</code></li>")
    out.append("</ul></body></html>\n")
    return "\n".join(out)


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
    while chunk := stream.read(_CHUNK):
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
    files = tree.files()
    if BAGIT_TXT not in files:
        problems.add("bagit.txt is missing: not a BagIt bag")
        return
    text = _read_tag_file(tree, BAGIT_TXT, problems)
    if text is None:
        return
    try:
        declaration = dict(read_tags(text))
    except (ValueError, UnicodeDecodeError) as exc:
        problems.add(f"bagit.txt is unreadable: {exc}")
        return
    if "BagIt-Version" not in declaration or declaration.get("Tag-File-Character-Encoding", "").upper() != "UTF-8":
        problems.add("bagit.txt must declare BagIt-Version and Tag-File-Character-Encoding: UTF-8")

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

    # Completeness: every payload file in every manifest, every entry present.
    for alg, entries in manifests.items():
        name = f"manifest-{alg}.txt"
        for rel in sorted(set(payload) - set(entries)):
            problems.add(f"extra file not in {name}: {rel}")
        for rel in sorted(set(entries) - set(payload)):
            problems.add(f"missing file listed in {name}: {rel}")
        for rel in sorted(entries):
            if not rel.startswith("data/"):
                problems.add(f"{name} lists {rel}, which is outside data/")

    # Tag files: anything outside data/ must be a known tag file or in a tag manifest.
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

    # Fixity: read each file once, computing every algorithm it is listed under.
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
                while chunk := fh.read(_CHUNK):
                    for h in hashers.values():
                        h.update(chunk)
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
            problems.add(f"cannot read {rel}: {exc}")
            tree.broken.add(rel)
            continue
        for alg, h in hashers.items():
            if h.hexdigest() != wanted[rel][alg]:
                problems.add(f"changed: {rel} ({alg} checksum differs from the manifest)")

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


__all__ = [
    "PackageBuild",
    "PackageResult",
    "VerifyResult",
    "build_datapackage",
    "count_csv_rows",
    "destroy_path",
    "discard_package",
    "finish_package",
    "looks_like_package",
    "package_name",
    "package_paths",
    "plan_package",
    "read_tags",
    "render_index",
    "tag_text",
    "verify_package",
]


# --------------------------------------------------------------------------- removal

OVERWRITE_CHUNK = 1 << 20


def package_paths(recorded: str) -> list[Path]:
    """The package at ``recorded`` and any ``.partial`` leftovers of it."""
    final = Path(recorded)
    stem = final.name
    for suffix in (".zip.age", ".zip"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    names = [final.name] + [f"{stem}{s}.partial" for s in ("", ".zip", ".zip.age")]
    return [final.parent / n for n in dict.fromkeys(names)]


def looks_like_package(path: Path) -> bool:
    """Whether ``path`` is what learnexit builds: a file (zip or encrypted zip), a bag folder or a ``.partial`` build."""
    if path.is_symlink() or path.is_file():
        return True
    if path.is_dir():
        return path.name.endswith(".partial") or (path / "bagit.txt").is_file()
    return False


def _overwrite(path: Path) -> None:
    """Overwrite a regular file with zeros and flush it (best effort on SSD/copy-on-write)."""
    try:
        size = path.stat().st_size
        with open(path, "r+b", buffering=0) as fh:
            zeros = bytes(min(size, OVERWRITE_CHUNK))
            left = size
            while left > 0:
                n = fh.write(zeros[: min(left, len(zeros))]) or 0
                left -= n
            os.fsync(fh.fileno())
    except OSError:
        pass  # unlinking is what counts; overwriting is an extra


def destroy_path(path: Path) -> None:
    """Overwrite and remove a file or a folder tree (symlinks are removed, not followed)."""
    if path.is_symlink() or not path.is_dir():
        if path.is_file() and not path.is_symlink():
            _overwrite(path)
        path.unlink(missing_ok=True)
        return
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames:
            file = Path(dirpath) / name
            if not file.is_symlink() and file.is_file():
                _overwrite(file)
            file.unlink(missing_ok=True)
        for name in dirnames:
            sub = Path(dirpath) / name
            if sub.is_symlink():
                sub.unlink(missing_ok=True)
            else:
                os.rmdir(sub)
    os.rmdir(path)
