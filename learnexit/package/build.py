"""Building, publishing and destroying an export package (design §4).

1. ``plan_package`` names it (``<customer>-<UTC time>``) and refuses when that name is
   taken; nothing is written yet.
2. ``PackageBuild.create`` makes ``<name>.partial/data/``; the exporters fill ``data/``.
3. ``finish_package`` forces the modes (files 0600, folders 0700, whatever the umask and
   whatever an exporter did), writes ``data/datapackage.json`` and ``data/index.html``
   (``describe``), the manifests and ``bag-info.txt``, and only then renames the bag into
   place (or zips it, or zips and encrypts it, each built under a ``.partial`` name
   first).  A folder or file without ``.partial`` is therefore always complete.
4. ``discard_package`` removes whatever a failed run left.

The purge and the reaper of interrupted exports remove packages through
``package_paths``, ``looks_like_package`` and ``destroy_path`` (whose bag folder keeps
its ``bagit.txt`` to the end, so a removal killed half-way is recognised and finished by
the next; ``left_by_removal`` the empty folder a kill between the last two steps leaves).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import zipfile
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import BadInput, OperationalError
from ..exporters.base import ExportJob
from ..machine import usable_cores
from .bag import (
    BAG_INFO,
    BAGIT_TXT,
    BAGIT_VERSION,
    CHUNK,
    DATAPACKAGE,
    FORMATS_TAG,
    INDEX,
    MANIFEST,
    ROWS_TAG,
    TAGMANIFEST,
    encode_manifest_path,
    hash_file,
    relative_files,
    tag_line,
    utc,
)
from .describe import build_datapackage, render_index

PARTIAL = ".partial"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H%M%SZ"
FILE_MODE = 0o600
DIR_MODE = 0o700
OVERWRITE_CHUNK = 1 << 20
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


# --------------------------------------------------------------------------- naming


def safe_file_name(text: str) -> str:
    """``text`` as one file-name component: letters, digits, ``.``, ``_``, ``-``."""
    name = _SAFE_NAME.sub("_", text).lstrip(".") or "_"
    return name[:120]


def package_name(customer: str, at: datetime) -> str:
    """``<customer>-<UTC time>``, e.g. ``acme-2026-11-29T101500Z``."""
    return f"{safe_file_name(customer)}-{utc(at).strftime(TIMESTAMP_FORMAT)}"


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

    def prepare(self) -> None:
        """Make the output folder (new levels 0700) and check that the build can go in it:
        the name is free and the folder writable.  Creates no build: an export records
        its start first and then calls :meth:`create`, so a process killed in between
        leaves a record the next run reaps, never an unrecorded ``.partial`` folder."""
        _make_dirs(self.out_dir)
        self._refuse_taken()
        if not os.access(self.out_dir, os.W_OK | os.X_OK):  # (root too: read-only mounts, chattr +i)
            raise OperationalError(f"cannot create {self.partial}: the output folder is not writable")

    def create(self) -> None:
        """Make ``<name>.partial/data/`` (and the output folder), folders 0700."""
        self.prepare()
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


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def prehash(
    root: Path,
    folders: Collection[str] | None = None,
    known: dict[str, tuple[str, int, tuple[int, int, int, int]]] | None = None,
) -> dict[str, tuple[str, int, tuple[int, int, int, int]]]:
    """``hash_files`` of every file below ``root`` (or below its ``folders``) now, each
    with what identifies its content (device, inode, size, modification time, the same
    before and after hashing): ``finish_package`` takes a digest from here for a file
    that is still the same.  A file ``known`` and unchanged since is not read again.  A
    parallel export hashes each group's files when the group is done, and the rest while
    it makes the export summary."""
    files = relative_files(root)
    if folders is not None:
        files = [rel for rel in files if rel.split("/", 1)[0] in folders]
    out = {}
    if known:
        for rel in files:
            entry = known.get(rel)
            if entry is not None and _identity(root / rel) == entry[2]:
                out[rel] = entry
        files = [rel for rel in files if rel not in out]
    before = {rel: _identity(root / rel) for rel in files}
    hashed = _hash_new(root, files)
    for rel, (digest, size) in hashed.items():
        if _identity(root / rel) == before[rel]:
            out[rel] = (digest, size, before[rel])
    return out


def hash_files(
    root: Path, files: Sequence[str], known: dict[str, tuple[str, int, tuple[int, int, int, int]]] | None = None
) -> dict[str, tuple[str, int]]:
    """``hash_file(sync=True)`` of many files at once, one thread per core (hashing and
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
        return {rel: hash_file(root / rel, sync=True) for rel in by_size}
    with ThreadPoolExecutor(max_workers=min(threads, 4)) as pool:
        return dict(zip(by_size, pool.map(lambda rel: hash_file(root / rel, sync=True), by_size), strict=True))


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
        hashes = hash_files(data, relative_files(data), job.prehashed)  # everything the formats wrote
        _write_new(data / DATAPACKAGE, _json_bytes(build_datapackage(job, data, hashes)))
        files = [f for f in relative_files(data) if f != INDEX]
        sizes = {f: (data / f).stat().st_size for f in files}
        _write_new(data / INDEX, render_index(job, formats, sizes).encode("utf-8"))

        manifest_lines = []
        payload_bytes = 0
        payload = relative_files(data)
        for rel in payload:
            if rel not in hashes:  # fsync while hashing: complete means on disk
                hashes[rel] = hash_file(data / rel, sync=True)
            digest, size = hashes[rel]
            payload_bytes += size
            manifest_lines.append(f"{digest}  {encode_manifest_path('data/' + rel)}\n")
        manifest = "".join(manifest_lines).encode("utf-8")
        _write_new(bag / MANIFEST, manifest)
        _write_new(bag / BAGIT_TXT, f"BagIt-Version: {BAGIT_VERSION}\nTag-File-Character-Encoding: UTF-8\n".encode())
        _write_new(bag / BAG_INFO, _bag_info(job, formats, payload_bytes, len(payload)).encode("utf-8"))
        tag_lines = []
        for tag in (BAGIT_TXT, BAG_INFO, MANIFEST):
            digest, _size = hash_file(bag / tag)
            tag_lines.append(f"{digest}  {tag}\n")
        _write_new(bag / TAGMANIFEST, "".join(tag_lines).encode("utf-8"))
        _fsync_dir(bag)
        manifest_sha256 = hashlib.sha256(manifest).hexdigest()
        all_files = relative_files(bag)
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


def _zip_time(at: datetime) -> tuple[int, int, int, int, int, int]:
    at = max(utc(at), datetime(1980, 1, 1, tzinfo=UTC))
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
                    shutil.copyfileobj(src, dst, CHUNK)
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
    started = utc(job.started_at)
    lines = [
        tag_line("Source-Organization", job.customer_name),
        tag_line("External-Identifier", job.customer),
        tag_line("External-Description", f"Data export of {job.customer_name} ({job.customer}) by learnexit"),
        tag_line("Bagging-Date", started.date().isoformat()),
        tag_line("Bag-Software-Agent", f"learnexit {__version__}"),
        tag_line("Payload-Oxum", f"{payload_bytes}.{payload_files}"),
        tag_line("Learnexit-Customer", job.customer),
        tag_line("Learnexit-Export-Time", started.strftime("%Y-%m-%dT%H:%M:%SZ")),
        tag_line("Learnexit-Export-Deadline", job.export_deadline.isoformat() if job.export_deadline else "none"),
        tag_line("Learnexit-Tool-Version", __version__),
        tag_line(FORMATS_TAG, ",".join(name for name, _ in formats)),
        tag_line("Learnexit-Vendor", job.settings.vendor_name),
    ]
    if job.read_point is not None:  # the primary or its read replica, and the replica's position
        lines.append(tag_line("Learnexit-Read-From", job.read_point.tag()))
    for spec in job.tables:
        lines.append(tag_line(ROWS_TAG, f"{spec.name}={job.counts.get(spec.name, 0)}"))
    return "".join(lines)


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- removal


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


def left_by_removal(path: Path) -> bool:
    """Whether ``path`` is an empty folder (not a link): what ``destroy_path`` leaves when
    it is killed after a bag's last file, before the folder itself; removing it again
    loses nothing."""
    if path.is_symlink() or not path.is_dir():
        return False
    with os.scandir(path) as entries:
        return next(entries, None) is None


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
    """Overwrite and remove a file or a folder tree (symlinks are removed, not followed).

    A bag folder's ``bagit.txt`` goes last, the folder right after it: a removal killed
    half-way leaves a folder that still looks like a package (``looks_like_package``) or,
    killed between those two steps, an empty one — either is removed by trying again."""
    if path.is_symlink() or not path.is_dir():
        if path.is_file() and not path.is_symlink():
            _overwrite(path)
        path.unlink(missing_ok=True)
        return
    marker = path / "bagit.txt"
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for name in filenames:
            file = Path(dirpath) / name
            if file == marker:
                continue
            if not file.is_symlink() and file.is_file():
                _overwrite(file)
            file.unlink(missing_ok=True)
        for name in dirnames:
            sub = Path(dirpath) / name
            if sub.is_symlink():
                sub.unlink(missing_ok=True)
            else:
                os.rmdir(sub)
    marker.unlink(missing_ok=True)
    os.rmdir(path)


__all__ = [
    "PackageBuild",
    "PackageResult",
    "destroy_path",
    "discard_package",
    "finish_package",
    "hash_files",
    "left_by_removal",
    "looks_like_package",
    "package_name",
    "package_paths",
    "plan_package",
    "prehash",
    "safe_file_name",
]
