"""Media in original form: byte-identical copies, safe names, refused traversal, missing
and damaged files reported, Moodle's content-addressed pool, and S3 (moto's server)."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import sqlite3
import sys
from pathlib import Path

import pytest
from test_documents import run_after  # the ExportJob harness (tests/ is on sys.path)

from learnexit.config import load_settings
from learnexit.errors import ConfigError
from learnexit.exporters.media import (
    MediaProblem,
    NameAllocator,
    PathTemplate,
    check_relative,
)
from learnexit.filenames import safe_filename


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def index_rows(data: Path) -> list[dict[str, str]]:
    with open(data / "media" / "index.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def example(example_site: Path) -> Path:
    """A private copy of the example: tests change its database and files."""
    return example_site


def attachments(example: Path) -> list[tuple[int, str, str, int, str]]:
    with contextlib.closing(sqlite3.connect(example / "lms.db")) as db:
        return db.execute(
            "SELECT a.id, a.storage_path, a.filename, a.size, a.md5 FROM attachments a JOIN courses c "
            "ON c.id = a.course_id JOIN organisations o ON o.id = c.organisation_id WHERE o.slug = 'acme' "
            "ORDER BY a.id"
        ).fetchall()


def update(example: Path, sql: str, *args: object) -> None:
    with contextlib.closing(sqlite3.connect(example / "lms.db")) as db, db:
        db.execute(sql, args)


def export_media(example: Path, out: Path, **kw: object):
    return run_after(load_settings(example / "learnexit.toml"), "acme", out, ("media",), **kw)


# --------------------------------------------------------------------------- the example


def test_copies_are_byte_identical_under_safe_original_names(example: Path, tmp_path: Path) -> None:
    job = export_media(example, tmp_path / "data")
    assert job.problems == [] and job.notes == []
    rows = attachments(example)
    index = {r["row_key"]: r for r in index_rows(tmp_path / "data")}
    assert len(index) == len(rows) == 6
    for aid, storage_path, filename, size, _ in rows:
        entry = index[str(aid)]
        copied = tmp_path / "data" / "media" / entry["file"]
        assert sha256(copied) == sha256(example / "media" / storage_path) == entry["sha256"]
        assert copied.stat().st_size == size and entry["status"] == "copied"
        assert entry["original_name"] == filename and entry["original_path"] == storage_path
        assert copied.stat().st_mode & 0o777 == 0o600
    names = sorted(p.name for p in (tmp_path / "data" / "media").iterdir())
    assert names == sorted(
        [
            "Välkommen – intro.mp4",
            "diagram (1).png",
            "kursplan.pdf",
            "foto.jpg",
            "Säkerhetsrutiner, v2 _final_.pdf",  # '"' is not allowed in Windows file names
            "skärmbild 2025-03-04 kl. 09.15.png",
            "index.csv",
        ]
    )
    assert {e["path"] for e in job.media} == {f"media/{r['file']}" for r in index.values()}
    assert all(e["verified"] is True for e in job.media)


def test_content_addressed_pool_one_copy_per_name(example_template: Path, tmp_path: Path) -> None:
    legacy = example_template / "legacy"
    job = run_after(load_settings(legacy / "learnexit.toml"), "acme", tmp_path, ("media",))
    assert job.problems == []
    rows = index_rows(tmp_path)
    assert [r["status"] for r in rows] == ["copied"] * 4
    by_name = {r["file"]: r for r in rows}
    assert set(by_name) == {"kursplan.pdf", "kursplan (kopia).pdf", "foto.jpg", "diagram (1).png"}
    # Two rows, one file in the pool: both names exist, with the same bytes.
    a, b = by_name["kursplan.pdf"], by_name["kursplan (kopia).pdf"]
    assert a["original_path"] == b["original_path"]
    pool = legacy / a["original_path"]
    assert a["original_path"].startswith("filedir/") and pool.name == hashlib.sha1(pool.read_bytes()).hexdigest()
    assert sha256(tmp_path / "media" / "kursplan.pdf") == sha256(tmp_path / "media" / "kursplan (kopia).pdf")
    assert sha256(tmp_path / "media" / "kursplan.pdf") == sha256(pool)
    assert all(e["verified"] is True for e in job.media)  # sha1 = contenthash checked


# --------------------------------------------------------------------------- refusals


class OpenRecorder:
    """Records every path opened through Python while active (audit hooks stay forever)."""

    active: OpenRecorder | None = None
    installed = False

    def __init__(self) -> None:
        self.paths: list[str] = []

    @classmethod
    def hook(cls, event: str, args: tuple[object, ...]) -> None:
        if cls.active is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            cls.active.paths.append(os.fsdecode(args[0]))

    def __enter__(self) -> OpenRecorder:
        if not OpenRecorder.installed:
            sys.addaudithook(OpenRecorder.hook)
            OpenRecorder.installed = True
        OpenRecorder.active = self
        return self

    def __exit__(self, *_: object) -> None:
        OpenRecorder.active = None


def test_paths_leaving_the_root_are_refused_and_never_read(example: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_bytes(b"not the customer's")
    media = example / "media"
    (media / "acme" / "link-out").symlink_to(secret)
    (media / "acme" / "dir-out").symlink_to(outside, target_is_directory=True)
    rows = attachments(example)
    attacks = {
        rows[0][0]: "../../etc/passwd",
        rows[1][0]: str(secret),  # absolute
        rows[2][0]: "acme/link-out",  # a symlink out of the root
        rows[3][0]: "acme/dir-out/secret.txt",  # through a symlinked folder
        rows[4][0]: "acme/../../outside/secret.txt",
    }
    for aid, path in attacks.items():
        update(example, "UPDATE attachments SET storage_path = ? WHERE id = ?", path, aid)
    with OpenRecorder() as seen:
        job = export_media(example, tmp_path / "data", allow_missing_media=True)
    assert any(p.endswith(rows[5][1]) for p in seen.paths)  # the recorder sees the files read
    touched = [p for p in seen.paths if "passwd" in p or "secret" in p or p.startswith(str(outside))]
    assert touched == []
    refused = [n for n in job.notes if "refused" in n]
    assert len(refused) == 5 and len([p for p in job.problems if "refused" in p]) == 5  # even when allowed
    assert any("leaves the media root (..)" in n for n in refused)
    assert any("is absolute" in n for n in refused)
    assert sum("resolves outside the media root (symlink)" in n for n in refused) == 2
    index = {r["row_key"]: r for r in index_rows(tmp_path / "data")}
    assert {index[str(aid)]["status"] for aid in attacks} == {"refused"}
    assert index[str(rows[5][0])]["status"] == "copied"
    for copied in (tmp_path / "data" / "media").iterdir():
        assert b"not the customer's" not in copied.read_bytes()


def test_a_fifo_is_refused_without_blocking(example: Path, tmp_path: Path) -> None:
    rows = attachments(example)
    os.mkfifo(example / "media" / "acme" / "pipe")
    update(example, "UPDATE attachments SET storage_path = 'acme/pipe' WHERE id = ?", rows[0][0])
    job = export_media(example, tmp_path / "data")
    assert any("is not a regular file" in p for p in job.problems)


# --------------------------------------------------------------------------- missing and damaged


def test_missing_file_is_a_problem_unless_allowed(example: Path, tmp_path: Path) -> None:
    rows = attachments(example)
    (example / "media" / rows[2][1]).unlink()
    job = export_media(example, tmp_path / "strict")
    assert len(job.problems) == 1 and "missing file" in job.problems[0]
    # named by table, row key and column: never by the path (a source value)
    assert f"attachments row {rows[2][0]} (storage_path)" in job.problems[0] and rows[2][1] not in job.problems[0]
    assert any("missing file" in n for n in job.notes)  # listed for index.html either way
    assert index_rows(tmp_path / "strict")[2]["status"] == "missing"
    assert len(job.media) == 5

    job = export_media(example, tmp_path / "allowed", allow_missing_media=True)
    assert job.problems == []
    assert [n for n in job.notes if "missing file" in n] and len(job.media) == 5


def test_size_and_checksum_mismatches_are_problems(example: Path, tmp_path: Path) -> None:
    rows = attachments(example)
    update(example, "UPDATE attachments SET size = size + 1 WHERE id = ?", rows[0][0])
    update(example, "UPDATE attachments SET md5 = '00000000000000000000000000000000' WHERE id = ?", rows[1][0])
    job = export_media(example, tmp_path / "data", allow_missing_media=True)
    assert len(job.problems) == 2  # allow_missing_media does not excuse damage
    assert any("size" in p and "differs from the recorded" in p for p in job.problems)
    assert any("md5" in p and "differs from the recorded" in p for p in job.problems)
    statuses = [r["status"] for r in index_rows(tmp_path / "data")]
    assert statuses[:3] == ["size_mismatch", "checksum_mismatch", "copied"]
    # The bytes are still delivered as they are, and marked unverified.
    assert sum(1 for e in job.media if e["verified"] is False) == 2 and len(job.media) == 6


def test_name_collisions_and_unsafe_names(example: Path, tmp_path: Path) -> None:
    rows = attachments(example)
    names = ["Foto.JPG", "foto.jpg", "../../.bashrc", "index.csv", "a\u202etxt.exe", "CON.txt"]
    for (aid, *_), name in zip(rows, names, strict=True):
        update(example, "UPDATE attachments SET filename = ? WHERE id = ?", name, aid)
    export_media(example, tmp_path / "data")
    files = [r["file"] for r in index_rows(tmp_path / "data")]
    assert files == ["Foto.JPG", "foto (2).jpg", "_.._.bashrc", "index (2).csv", "a_txt.exe", "_CON.txt"]


# --------------------------------------------------------------------------- S3


def test_s3_root(example: Path, tmp_path: Path, s3: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3, region_name="eu-north-1")
    client.create_bucket(Bucket="lms-media", CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
    rows = attachments(example)
    for _, storage_path, *_ in rows[1:]:  # the first one is left out: missing
        client.upload_file(str(example / "media" / storage_path), "lms-media", f"prod/files/{storage_path}")
    config = example / "learnexit.toml"
    config.write_text(
        config.read_text("utf-8").replace('root = "media"', 'root = "s3://lms-media/prod/files"'), "utf-8"
    )
    job = export_media(example, tmp_path / "data")
    assert len(job.problems) == 1 and "missing file" in job.problems[0]
    assert "s3://lms-media/prod/files" in job.problems[0]
    index = index_rows(tmp_path / "data")
    for (aid, storage_path, *_), entry in zip(rows[1:], index[1:], strict=True):
        assert entry["row_key"] == str(aid) and entry["status"] == "copied"
        assert sha256(tmp_path / "data" / "media" / entry["file"]) == sha256(example / "media" / storage_path)
    assert all(e["verified"] is True for e in job.media) and len(job.media) == 5


# --------------------------------------------------------------------------- the pieces


def test_safe_filename() -> None:
    assert safe_filename("Välkommen – intro.mp4") == "Välkommen – intro.mp4"
    assert safe_filename("../x/y.pdf") == "_x_y.pdf"
    assert safe_filename(".hidden") == "hidden"
    assert safe_filename("...") == "file"
    assert safe_filename("a\x00b\nc.txt") == "a_b_c.txt"
    assert safe_filename("trailing. ") == "trailing"
    assert safe_filename("aux") == "_aux" and safe_filename("LPT1.log") == "_LPT1.log"
    assert safe_filename("A\u0308") == "Ä"  # NFC
    long = safe_filename("å" * 300 + ".pdf")
    assert long.endswith(".pdf") and len(long.encode("utf-8")) <= 200
    names = NameAllocator(reserved=("index.csv",))
    assert [names.allocate(n) for n in ("a.pdf", "A.PDF", "a.pdf", "index.csv")] == [
        "a.pdf",
        "A (2).PDF",
        "a (3).pdf",
        "index (2).csv",
    ]


def test_path_template() -> None:
    template = PathTemplate.parse("filedir/{contenthash[0:2]}/{contenthash[2:4]}/{contenthash}")
    assert template.columns == ["contenthash"] * 3
    assert template.apply({"contenthash": "abcdef"}) == "filedir/ab/cd/abcdef"
    assert PathTemplate.parse("{a[-1]}/{b}").apply({"a": "xyz", "b": 7}) == "z/7"
    for bad in ("filedir/{contenthash", "{x.__class__}", "no fields", "{a[1:2:3]}", "{a[]}"):
        with pytest.raises(ConfigError):
            PathTemplate.parse(bad)
    with pytest.raises(MediaProblem):
        PathTemplate.parse("{a}").apply({"a": None})
    # A value cannot smuggle in a traversal: the result is checked like any path.
    traversal = PathTemplate.parse("pool/{h}").apply({"h": "../../etc/passwd"})
    with pytest.raises(MediaProblem) as refused:
        check_relative(traversal)
    assert refused.value.kind == "refused"
    assert check_relative("./a//b/./c.pdf") == "a/b/c.pdf"
    for bad in ("/etc/passwd", "C:\\x", "a\\..\\..\\b", "a/\x1b[2Jb"):
        with pytest.raises(MediaProblem):
            check_relative(bad)
