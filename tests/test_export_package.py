"""The export machinery and the package: layout, modes, BagIt, Frictionless, verify,
the export window, interruption, encryption and tenant isolation.

Runs on the example LMS (SQLite) and on a small custom schema with awkward shapes on
all three engines.  Expected values are written out by hand or taken from the example's
own counts (known by construction), never from the code under test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import bagit
import frictionless
import pytest
import sqlalchemy as sa
from helpers import invoke

from learnexit.config import Settings, load_settings
from learnexit.demo import build_example
from learnexit.documents.notes import note_sentence
from learnexit.errors import BadInput, OperationalError, Refused
from learnexit.export.run import ExportResult, run_export
from learnexit.exporters.base import REGISTRY, Exporter, ExportJob, load_builtin
from learnexit.ledger.schema import audit, exports, notices
from learnexit.ledger.store import Ledger
from learnexit.package.verify import count_csv_rows, verify_package
from learnexit.source import Source

NAME_RE = re.compile(r"^acme-\d{4}-\d{2}-\d{2}T\d{6}Z$")
TAG_FILES = {"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt"}


def with_state(settings: Settings, path: Path) -> Settings:
    """The same settings with their own ledger (tests must not see each other's notices)."""
    return dataclasses.replace(settings, state_url=f"sqlite:///{path}")


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def expanded_bytes(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    """A file's bytes, and those of every member if it is a zip container (xlsx, docx, zip)."""
    yield name, data
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield from expanded_bytes(f"{name}!{info.filename}", zf.read(info))


@dataclasses.dataclass
class World:
    root: Path
    settings: Settings
    counts: dict[str, dict[str, int]]
    folder: Path  # the acme package as a folder (made under umask 000)
    zipped: Path  # the same as .zip
    result: ExportResult


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("export")
    info = build_example(root / "ex")
    settings = with_state(load_settings(root / "ex" / "learnexit.toml"), root / "state.db")
    old = os.umask(0)
    try:
        result = run_export(settings, "acme", formats=["csv"], out=root / "out")
        zipped = run_export(settings, "acme", formats=["csv"], out=root / "out-zip", zip_output=True)
    finally:
        os.umask(old)
    return World(root, settings, info.counts, result.path, zipped.path, result)


# --------------------------------------------------------------------------- the package


def test_layout_is_exact_and_modes_are_private(world: World) -> None:
    pkg = world.folder
    assert NAME_RE.match(pkg.name) and pkg.parent == world.root / "out"
    assert sorted(os.listdir(world.root / "out")) == [pkg.name]  # no .partial left over
    assert {p.name for p in pkg.iterdir()} == TAG_FILES | {"data"}
    tables = world.counts["acme"]
    expected = {"data/index.html", "data/datapackage.json"} | {f"data/csv/{t}.csv" for t in tables}
    assert {p.relative_to(pkg).as_posix() for p in all_files(pkg)} == expected | TAG_FILES
    # umask was 000 while exporting: still 0600 / 0700 everywhere
    assert (pkg.stat().st_mode & 0o777) == 0o700
    for p in pkg.rglob("*"):
        assert (p.stat().st_mode & 0o777) == (0o700 if p.is_dir() else 0o600), p


def test_every_owned_row_and_counts_recorded(world: World) -> None:
    result = world.result
    assert result.tables == world.counts["acme"]  # the example's truth, by construction
    info = (world.folder / "bag-info.txt").read_text(encoding="utf-8")
    rows = dict(line.split(": ", 1)[1].split("=") for line in info.splitlines() if line.startswith("Learnexit-Rows:"))
    assert {t: int(n) for t, n in rows.items()} == world.counts["acme"]
    for line in ("External-Identifier: acme", "Source-Organization: Acme Lärande AB", "Learnexit-Formats: csv"):
        assert line in info.splitlines()
    assert re.search(r"^Payload-Oxum: \d+\.24$", info, re.M)
    assert "Learnexit-Export-Deadline: none" in info
    # every CSV's primary keys are exactly the customer's keys
    with Source(world.settings, "acme") as src, src.snapshot() as conn:
        for table in ("users", "enrolments", "course_sections", "invoices"):
            keys = {str(r[0]) for r in conn.execute(sa.select(src.table(table).c.id).where(src.predicate(table)))}
            text = (world.folder / "data" / "csv" / f"{table}.csv").read_text(encoding="utf-8")
            assert {line.split(",", 1)[0] for line in text.splitlines()[1:] if line[:1].isdigit()} >= keys
            with open(world.folder / "data" / "csv" / f"{table}.csv", "rb") as fh:
                assert count_csv_rows(fh) == len(keys) == world.counts["acme"][table]


def test_bagit_and_frictionless_validate(world: World) -> None:
    bagit.Bag(str(world.folder)).validate()
    report = frictionless.validate(str(world.folder / "data" / "datapackage.json"))
    assert report.valid, report.flatten(["taskNumber", "rowNumber", "type", "note"])[:5]
    descriptor = json.loads((world.folder / "data" / "datapackage.json").read_text(encoding="utf-8"))
    by = {r["name"]: r for r in descriptor["resources"]}
    fks = {(fk["fields"][0], fk["reference"]["resource"]) for fk in by["enrolments"]["schema"]["foreignKeys"]}
    assert fks == {("user_id", "users"), ("course_id", "courses")}
    sections = by["course_sections"]["schema"]["foreignKeys"]
    assert {"fields": ["parent_id"], "reference": {"resource": "", "fields": ["id"]}} in sections
    # the shared catalogue is not exported, so courses declares no key to it
    assert [fk["fields"] for fk in by["courses"]["schema"]["foreignKeys"]] == [["organisation_id"]]
    fields = {f["name"]: f for f in by["invoices"]["schema"]["fields"]}
    assert fields["paid"]["type"] == "boolean" and fields["paid"]["trueValues"] == ["true"]
    assert fields["amount"]["type"] == "number" and fields["issued_on"]["type"] == "date"
    assert by["invoices"]["schema"]["primaryKey"] == ["id"]
    assert by["index.html"]["type"] == "file"
    assert verify_package(world.folder).valid


def test_ledger_records_the_export(world: World) -> None:
    with Ledger(world.settings.state_url) as ledger:
        rows = ledger.rows(exports, "acme")
        events = [e["event"] for e in ledger.audit_entries("acme")]
        assert ledger.verify_audit().valid
    first = rows[0]
    manifest = (world.folder / "manifest-sha256.txt").read_bytes()
    assert first["status"] == "complete" and first["path"] == str(world.folder)
    assert first["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert json.loads(first["rows"]) == world.counts["acme"]
    assert first["files"] == len(all_files(world.folder))
    assert first["bytes"] == sum(p.stat().st_size for p in all_files(world.folder))
    assert [r["status"] for r in rows] == ["complete", "complete"]
    assert events == ["export_started", "export_completed"] * 2


def test_index_html_lists_contents_and_notes(world: World) -> None:
    page = (world.folder / "data" / "index.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<html lang="en">' in page
    assert "No termination notice recorded: exported without an export window." in page  # a sentence
    assert '<a href="csv/quiz_attempts.csv">' in page and "datapackage.json" in page
    assert f"{world.counts['acme']['activity_log']:,}" in page
    assert "http://" not in page and "https://" not in page  # works offline
    assert "Acme Lärande AB" in page


@pytest.fixture(scope="module")
def foreign_values(world: World) -> list[bytes]:
    """Slugs and distinctive values (≥ 8 characters, nowhere in acme's rows) of the other customers."""
    acme_values: list[str] = []
    others: set[str] = set()
    for customer in ("acme", "globex", "initech"):
        with Source(world.settings, customer) as src, src.snapshot() as conn:
            for table in src.owned_tables():
                for row in conn.execute(src.owned_select(table)):
                    strings = [v for v in row if isinstance(v, str)]
                    if customer == "acme":
                        acme_values.extend(strings)
                    else:
                        others.update(strings)
    acme_blob = "\n".join(acme_values)
    distinctive = {v for v in others if len(v) >= 8 and v not in acme_blob}
    distinctive |= {s for s in ("globex", "initech", "Globex", "Initech") if s not in acme_blob}
    assert len(distinctive) > 200  # the check has teeth
    return [v.encode("utf-8") for v in distinctive]


def assert_isolated(pkg: Path, needles: list[bytes]) -> None:
    for path in all_files(pkg) if pkg.is_dir() else [pkg]:
        for name, data in expanded_bytes(path.name, path.read_bytes()):
            found = [n for n in needles if n in data]
            assert not found, f"{name} holds another customer's value {found[0][:40]!r}"


def test_no_other_customer_anywhere(world: World, foreign_values: list[bytes]) -> None:
    """No row, slug or distinctive value of globex/initech in any file (zips expanded)."""
    assert_isolated(world.folder, foreign_values)
    assert_isolated(world.zipped, foreign_values)


@pytest.mark.slow
def test_every_registered_format_packages_cleanly(world: World, tmp_path: Path, foreign_values: list[bytes]) -> None:
    """All formats together: one package that verify, bagit and frictionless accept."""
    names = [n for n, e in load_builtin().items() if e.__class__.__module__.startswith("learnexit.")]
    settings = with_state(world.settings, tmp_path / "state.db")
    result = run_export(settings, "acme", formats=names, out=tmp_path / "out", zip_output=True)
    assert result.tables == world.counts["acme"] and result.problems == []
    assert verify_package(result.path).valid
    with zipfile.ZipFile(result.path) as zf:
        zf.extractall(tmp_path / "x")
    bag = tmp_path / "x" / result.path.name[: -len(".zip")]
    bagit.Bag(str(bag)).validate()
    report = frictionless.validate(str(bag / "data" / "datapackage.json"))
    assert report.valid, report.flatten(["taskNumber", "rowNumber", "type", "note"])[:5]
    assert_isolated(result.path, foreign_values)


# --------------------------------------------------------------------------- verify


def rewrite_manifests(bag: Path) -> None:
    """What a careful forger would do: recompute every checksum and the Payload-Oxum."""
    payload = sorted(p for p in (bag / "data").rglob("*") if p.is_file())
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(bag).as_posix()}\n" for p in payload]
    (bag / "manifest-sha256.txt").write_text("".join(lines), encoding="utf-8")
    info = (bag / "bag-info.txt").read_text(encoding="utf-8")
    oxum = f"Payload-Oxum: {sum(p.stat().st_size for p in payload)}.{len(payload)}"
    (bag / "bag-info.txt").write_text(re.sub(r"Payload-Oxum: \S+", oxum, info), encoding="utf-8")
    tags = [
        f"{hashlib.sha256((bag / t).read_bytes()).hexdigest()}  {t}\n"
        for t in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt")
    ]
    (bag / "tagmanifest-sha256.txt").write_text("".join(tags), encoding="utf-8")


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("tamper", "changed: data/csv/users.csv (sha256 checksum differs from the manifest)"),
        ("remove", "missing file listed in manifest-sha256.txt: data/csv/logins.csv"),
        ("extra", "extra file not in manifest-sha256.txt: data/csv/extra.csv"),
        ("extra-tag", "extra file not in any tag manifest: notes.txt"),
        ("bag-info", "changed: bag-info.txt (sha256 checksum differs from the manifest)"),
        ("rows", "data/csv/logins.csv holds 58 rows but bag-info.txt records 59 for logins"),
    ],
)
def test_verify_catches_damage(world: World, tmp_path: Path, damage: str, expected: str) -> None:
    bag = tmp_path / world.folder.name
    shutil.copytree(world.folder, bag)
    csv = bag / "data" / "csv"
    if damage == "tamper":
        data = bytearray((csv / "users.csv").read_bytes())
        data[-5] ^= 1
        (csv / "users.csv").write_bytes(bytes(data))
    elif damage == "remove":
        (csv / "logins.csv").unlink()
    elif damage == "extra":
        (csv / "extra.csv").write_text("id\r\n1\r\n", encoding="utf-8")
    elif damage == "extra-tag":
        (bag / "notes.txt").write_text("hello", encoding="utf-8")
    elif damage == "bag-info":
        info = bag / "bag-info.txt"
        info.write_text(info.read_text(encoding="utf-8").replace("logins=59", "logins=60"), encoding="utf-8")
    elif damage == "rows":
        lines = (csv / "logins.csv").read_bytes().split(b"\r\n")
        (csv / "logins.csv").write_bytes(b"\r\n".join(lines[:1] + lines[2:]))
        rewrite_manifests(bag)  # checksums all agree now: only the row count can tell
    result = verify_package(bag)
    assert not result.valid and result.problems[0] == expected, result.problems
    cli = invoke("verify", str(bag))
    assert cli.exit_code == 1 and expected in cli.stdout
    assert "verification failed" in cli.stderr
    as_json = invoke("verify", str(bag), "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout) == {"path": str(bag), "valid": False, "problems": result.problems}


def test_zip_package(world: World, tmp_path: Path) -> None:
    z = world.zipped
    assert z.name.endswith(".zip") and NAME_RE.match(z.name[:-4])
    assert sorted(os.listdir(z.parent)) == [z.name]  # neither the folder nor a .partial remains
    assert (z.stat().st_mode & 0o777) == 0o600
    with zipfile.ZipFile(z) as zf:
        names = zf.namelist()
        assert all(n.startswith(z.name[:-4] + "/") for n in names)
        for info in zf.infolist():
            assert (info.external_attr >> 16) & 0o777 == (0o700 if info.is_dir() else 0o600), info.filename
        zf.extractall(tmp_path / "x")
    assert verify_package(z).valid
    bagit.Bag(str(tmp_path / "x" / z.name[:-4])).validate()
    assert invoke("verify", str(z), "--json").exit_code == 0


def test_verify_rejects_truncated_and_zip_slip(world: World, tmp_path: Path) -> None:
    data = world.zipped.read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    result = verify_package(truncated)
    assert not result.valid and "truncated or damaged zip" in result.problems[0]
    assert invoke("verify", str(truncated)).exit_code == 1

    top = world.zipped.name[:-4]
    for evil in ("../evil.txt", f"{top}/../../evil.txt", "/etc/evil.txt", f"{top}\\..\\evil.txt"):
        slip = tmp_path / "slip.zip"
        shutil.copy(world.zipped, slip)
        with zipfile.ZipFile(slip, "a") as zf:
            zf.writestr(evil, b"owned")
        result = verify_package(slip)
        assert not result.valid and "zip-slip" in result.problems[0], (evil, result.problems)
        assert invoke("verify", str(slip)).exit_code == 1
        assert not (tmp_path.parent / "evil.txt").exists()

    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(world.zipped) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith("csv/reports.csv"):
                body = body[:-3] + bytes([body[-3] ^ 1]) + body[-2:]
            dst.writestr(info, body)
    result = verify_package(tampered)
    assert result.problems[0] == "changed: data/csv/reports.csv (sha256 checksum differs from the manifest)"

    assert invoke("verify", str(tmp_path / "nope")).exit_code == 2
    (tmp_path / "not-a-zip").write_text("hello", encoding="utf-8")
    assert "neither a bag folder nor a zip" in verify_package(tmp_path / "not-a-zip").problems[0]


# --------------------------------------------------------------------------- the window


def add_notice(settings: Settings, received: date, deadline: date) -> None:
    """A notice with this export deadline, as ``learnexit notice`` records it (the row and
    its audit entry: the export window is checked against the entry)."""
    with Ledger(settings.state_url) as ledger, ledger.transaction() as conn:
        notice_id = conn.execute(
            notices.insert().values(
                customer="acme",
                identity_id=ledger.case_id(conn, "acme"),
                received=received,
                channel="email",
                recorded_by="tester@example",
                recorded_at=datetime(received.year, received.month, received.day, 9),
                period_end=date(2026, 12, 31),
                timely=True,
                termination_date=date(2026, 12, 31),
                export_deadline=deadline,
                purge_due_at=datetime(2027, 3, 31, 23),
                terms="{}",
            )
        ).inserted_primary_key[0]
        ledger.append_audit(
            conn, "notice", "notice.recorded", "acme", {"notice_id": notice_id, "export_deadline": deadline}
        )


def test_export_refused_after_deadline_unless_late_with_reason(world: World, tmp_path: Path, monkeypatch) -> None:
    state = tmp_path / "state.db"
    settings = with_state(world.settings, state)
    add_notice(settings, date(2025, 9, 1), date(2025, 12, 31))  # the window closed before today
    out = tmp_path / "out"
    monkeypatch.setenv("LEARNEXIT_STATE_URL", f"sqlite:///{state}")
    monkeypatch.setenv("LEARNEXIT_NOW", "2026-01-05")  # what the CLI takes as "now"
    cfg = str(world.root / "ex" / "learnexit.toml")

    # inside the window: the deadline goes into bag-info.txt
    inside = run_export(settings, "acme", formats=["csv"], out=out, now=datetime(2025, 12, 31, 22, 30, tzinfo=UTC))
    assert "Learnexit-Export-Deadline: 2025-12-31" in (inside.path / "bag-info.txt").read_text(encoding="utf-8")
    shutil.rmtree(out)

    # 2025-12-31 23:30 UTC is already 1 January in Stockholm: the window has closed
    with pytest.raises(Refused):
        run_export(settings, "acme", formats=["csv"], out=out, now=datetime(2025, 12, 31, 23, 30, tzinfo=UTC))
    cli = invoke("export", "acme", "--format", "csv", "--out", str(out), "--config", cfg)
    assert cli.exit_code == 3 and cli.stdout == ""
    assert "export window for acme closed on 2025-12-31" in cli.stderr and "--late --reason" in cli.stderr
    assert not out.exists()
    with Ledger(settings.state_url) as ledger:
        assert len(ledger.rows(exports, "acme")) == 1  # only the export inside the window

    assert invoke("export", "acme", "--late", "--out", str(out), "--config", cfg).exit_code == 2
    assert invoke("export", "acme", "--reason", "x", "--out", str(out), "--config", cfg).exit_code == 2
    reason = "customer's auditor asked, ticket 4411"
    late = invoke(
        "export", "acme", "-f", "csv", "--late", "--reason", reason, "--out", str(out), "--config", cfg, "--json"
    )
    assert late.exit_code == 0, late.stderr
    data = json.loads(late.stdout)
    late_note = [n for n in data["notes"] if "late export, 5 days after the export deadline 2025-12-31" in n]
    assert data["late"] is True and len(late_note) == 1
    page = (Path(data["path"]) / "data" / "index.html").read_text(encoding="utf-8")
    assert html.escape(note_sentence(late_note[0])) in page
    assert "auditor" not in page  # the reason is staff's record, not part of the package
    with Ledger(settings.state_url) as ledger:
        row = ledger.rows(exports, "acme")[-1]
        assert row["status"] == "complete" and row["late_reason"] == reason
        started = [e for e in ledger.audit_entries("acme") if e["event"] == "export_started"][-1]
        assert json.loads(started["details"])["late_reason"] == reason


# --------------------------------------------------------------------------- failures


class _Trouble(Exporter):
    """A format that reports a missing media file and an HTML-looking note."""

    name = "trouble"
    description = "test only"
    folder = "trouble"

    def after(self, job: ExportJob) -> None:
        with job.open_file("trouble/readme.txt") as fh:
            fh.write("x")
        job.note("trouble", "<b>not bold</b>")
        job.problems.append("media: attachments 7: file courses/7/a.pdf is missing")


def test_problems_fail_the_export_unless_allowed(world: World, tmp_path: Path, monkeypatch) -> None:
    load_builtin()
    monkeypatch.setitem(REGISTRY, "trouble", _Trouble())
    settings = with_state(world.settings, tmp_path / "state.db")
    out = tmp_path / "out"
    with pytest.raises(OperationalError, match="export incomplete: 1 problem"):
        run_export(settings, "acme", formats=["csv", "trouble"], out=out)
    assert os.listdir(out) == []  # the partial build is gone
    with Ledger(settings.state_url) as ledger:
        row = ledger.rows(exports, "acme")[-1]
        assert row["status"] == "failed" and "file courses/7/a.pdf is missing" in row["error"]
        assert [e["event"] for e in ledger.audit_entries("acme")] == ["export_started", "export_failed"]

    result = run_export(settings, "acme", formats=["csv", "trouble"], out=out, allow_missing_media=True, lang="sv")
    assert result.problems == ["media: attachments 7: file courses/7/a.pdf is missing"]
    page = (result.path / "data" / "index.html").read_text(encoding="utf-8")
    assert "&lt;b&gt;not bold&lt;/b&gt;" in page and "<b>not bold</b>" not in page
    assert "file courses/7/a.pdf is missing" in page and '<html lang="sv">' in page and "Dataexport" in page
    assert verify_package(result.path).valid
    assert frictionless.validate(str(result.path / "data" / "datapackage.json")).valid


def test_bad_input_changes_nothing(world: World, tmp_path: Path, monkeypatch) -> None:
    state = tmp_path / "state.db"
    monkeypatch.setenv("LEARNEXIT_STATE_URL", f"sqlite:///{state}")
    cfg = str(world.root / "ex" / "learnexit.toml")
    out = tmp_path / "out"
    for args in (
        ["export", "acme", "--format", "csv,nope"],
        ["export", "acme", "--sql-dialect", "oracle"],
        ["export", "acme", "--lang", "de"],
        ["export", "acme", "--encrypt-to", "age1notakey"],
        ["export", "nobody", "-f", "csv"],
        ["export"],
    ):
        result = invoke(*args, "--out", str(out), "--config", cfg)
        assert result.exit_code == 2, (args, result.stderr)
        assert result.stderr.startswith("learnexit: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
    settings = with_state(world.settings, state)
    at = datetime(2026, 11, 29, 10, 15, tzinfo=UTC)
    first = run_export(settings, "acme", formats=["csv"], out=out, now=at)
    assert first.path.name == "acme-2026-11-29T101500Z"
    with pytest.raises(BadInput, match="exists already"):
        run_export(settings, "acme", formats=["csv"], out=out, now=at)
    assert os.listdir(out) == [first.path.name]


def test_list_formats_needs_no_customer_or_config(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("export", "--list-formats", "--json")
    assert result.exit_code == 0
    names = [f["name"] for f in json.loads(result.stdout)["formats"]]
    assert "csv" in names and names == sorted(names)
    text = invoke("export", "--list-formats")
    assert text.exit_code == 0 and "csv" in text.stdout
    help_text = invoke("export", "--help").stdout
    assert "Examples:" in help_text and "Exit codes:" in help_text
    assert "Exit codes:" in invoke("verify", "--help").stdout


def test_encrypted_export_leaves_no_clear_copy(world: World, tmp_path: Path) -> None:
    pyrage = pytest.importorskip("pyrage")
    identity = pyrage.x25519.Identity.generate()
    settings = with_state(world.settings, tmp_path / "state.db")
    out = tmp_path / "out"
    result = run_export(settings, "acme", formats=["csv"], out=out, encrypt_to=[str(identity.to_public())])
    assert result.path.name.endswith(".zip.age") and result.encrypted
    assert os.listdir(out) == [result.path.name]
    assert (result.path.stat().st_mode & 0o777) == 0o600
    with pytest.raises(BadInput, match="encrypted"):
        verify_package(result.path)
    clear = tmp_path / "clear.zip"
    clear.write_bytes(pyrage.decrypt(result.path.read_bytes(), [identity]))
    assert verify_package(clear).valid
    assert b"acme" not in result.path.read_bytes()


@pytest.mark.slow
def test_killed_export_leaves_only_a_partial(world: World, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    out = tmp_path / "out"
    env = dict(os.environ, LEARNEXIT_STATE_URL=f"sqlite:///{state}", LEARNEXIT_TEST_SLOW_EXPORT="0.4")
    cfg = str(world.root / "ex" / "learnexit.toml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "learnexit", "export", "acme", "-f", "csv", "--out", str(out), "--config", cfg],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            written = list(out.glob("*.partial/data/csv/*.csv")) if out.exists() else []
            if len(written) >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the export never got going")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    leftovers = os.listdir(out)
    assert len(leftovers) == 1 and leftovers[0].endswith(".partial")
    assert not verify_package(out / leftovers[0]).valid
    settings = with_state(world.settings, state)
    with Ledger(settings.state_url) as ledger:
        assert [r["status"] for r in ledger.rows(exports, "acme")] == ["running"]
    # the rerun first reaps the killed export (its process is gone): the clear-text
    # build destroyed, the export recorded failed (see test_interrupted_exports.py)
    again = run_export(settings, "acme", formats=["csv"], out=out, now=datetime.now(UTC) + timedelta(seconds=2))
    assert verify_package(again.path).valid
    assert os.listdir(out) == [again.path.name]
    with Ledger(settings.state_url) as ledger:
        assert [r["status"] for r in ledger.rows(exports, "acme")] == ["failed", "complete"]
        assert ledger.verify_audit().valid
        assert [r["event"] for r in ledger.rows(audit)] == [
            "export_started",
            "export_interrupted",
            "export_started",
            "export_completed",
        ]


# --------------------------------------------------------------------------- a custom schema, every engine

md = sa.MetaData()
sa.Table("orgs", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("slug", sa.String(20), unique=True))
sa.Table(
    "people",
    md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50)),
)
sa.Table(
    "members",
    md,
    sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), primary_key=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("people.id"), primary_key=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("joined", sa.Date),
)
sa.Table(
    "folders",
    md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("folders.id")),
    sa.Column("title", sa.String(50), nullable=False),
)
sa.Table(
    "files",
    md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("folder_id", sa.Integer, sa.ForeignKey("folders.id"), nullable=False),
    sa.Column("author_id", sa.Integer, sa.ForeignKey("people.id")),
    sa.Column("blob", sa.LargeBinary),
    sa.Column("size", sa.Numeric(10, 2)),
    sa.Column("created", sa.DateTime),
)
sa.Table(
    "grants",
    md,
    sa.Column("org_id", sa.Integer, primary_key=True),
    sa.Column("person_id", sa.Integer, primary_key=True),
    sa.Column("folder_id", sa.Integer, sa.ForeignKey("folders.id"), primary_key=True),
    sa.ForeignKeyConstraint(["org_id", "person_id"], ["members.org_id", "members.person_id"]),
)
sa.Table(
    "Report Items",
    md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id")),
    sa.Column("note", sa.Text),
)
sa.Table("loose", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("text", sa.String(20)))

CUSTOM_DATA = {
    "orgs": [{"id": 1, "slug": "a"}, {"id": 2, "slug": "b"}],
    "people": [{"id": i, "name": f"person-{i}-zq"} for i in (1, 2, 3)],
    "members": [
        {"org_id": 1, "person_id": 1, "active": True, "joined": date(2024, 2, 29)},
        {"org_id": 1, "person_id": 2, "active": False, "joined": None},
        {"org_id": 2, "person_id": 3, "active": True, "joined": date(2025, 1, 1)},
    ],
    "folders": [
        {"id": 10, "org_id": 1, "parent_id": None, "title": 'root, "quoted"'},
        {"id": 11, "org_id": 1, "parent_id": 10, "title": "line\nbreak"},
        {"id": 12, "org_id": 1, "parent_id": 11, "title": "=SUM(A1)"},
        {"id": 20, "org_id": 2, "parent_id": None, "title": "b-secret-folder"},
    ],
    "files": [
        {
            "id": 1,
            "folder_id": 12,
            "author_id": 1,
            "blob": b"\x00\xff\n,",
            "size": Decimal("12.50"),
            "created": datetime(2026, 1, 2, 3, 4, 5),
        },
        {"id": 2, "folder_id": 10, "author_id": 3, "blob": None, "size": None, "created": None},  # author not in a
        {"id": 3, "folder_id": 20, "author_id": 3, "blob": b"b-only", "size": Decimal("1"), "created": None},
    ],
    "grants": [
        {"org_id": 1, "person_id": 1, "folder_id": 10},
        {"org_id": 1, "person_id": 2, "folder_id": 11},
        {"org_id": 2, "person_id": 3, "folder_id": 20},
    ],
    "Report Items": [{"id": 1, "org_id": 1, "note": "ä ö 🎓"}, {"id": 2, "org_id": 2, "note": "b-secret-note"}],
    "loose": [{"id": 1, "text": "t"}],
}
CUSTOM_CONFIG = """
[source]
url = "{url}"
[state]
url = "sqlite:///{state}"
[customer]
table = "orgs"
key = "slug"
[tables.people]
owned_via = ["members.person_id"]
"""


def test_custom_schema_on_every_engine(dbs, tmp_path: Path) -> None:
    url = dbs.new("custom")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        md.create_all(conn)
        for table in md.sorted_tables:
            conn.execute(table.insert(), CUSTOM_DATA[table.name])
    engine.dispose()
    cfg = tmp_path / "learnexit.toml"
    cfg.write_text(CUSTOM_CONFIG.format(url=url, state=tmp_path / "state.db"), encoding="utf-8")
    result = run_export(load_settings(cfg), "a", formats=["csv"], out=tmp_path / "out")
    assert result.tables == {
        "orgs": 1,
        "people": 2,
        "folders": 3,
        "members": 2,
        "files": 2,
        "grants": 2,
        "Report Items": 1,
    }
    assert any(
        n.startswith("files.author_id → people.id: 1 exported row references a row not part") for n in result.notes
    )
    assert any("1 tables are unclassified and were not exported: loose" in n for n in result.notes)

    pkg = result.path
    assert verify_package(pkg).valid
    bagit.Bag(str(pkg)).validate()
    report = frictionless.validate(str(pkg / "data" / "datapackage.json"))
    assert report.valid, report.flatten(["taskNumber", "rowNumber", "type", "note"])[:5]
    descriptor = json.loads((pkg / "data" / "datapackage.json").read_text(encoding="utf-8"))
    by = {r["title"]: r for r in descriptor["resources"] if r["type"] == "table"}
    assert by["Report Items"]["name"] == "report-items" and by["Report Items"]["path"].startswith("csv/")
    composite = {
        "fields": ["org_id", "person_id"],
        "reference": {"resource": "members", "fields": ["org_id", "person_id"]},
    }
    assert composite in by["grants"]["schema"]["foreignKeys"]
    file_fks = [fk["fields"] for fk in by["files"]["schema"]["foreignKeys"]]
    assert file_fks == [["folder_id"]]  # author_id reaches outside the export: not declared
    fields = {f["name"]: f for f in by["files"]["schema"]["fields"]}
    assert fields["blob"] == {**fields["blob"], "type": "string", "format": "binary"}
    assert fields["created"]["type"] == "datetime" and fields["size"]["type"] == "number"
    assert by["members"]["schema"]["primaryKey"] == ["org_id", "person_id"]
    everything = b"".join(p.read_bytes() for p in all_files(pkg))
    for secret in (b"b-secret-folder", b"b-secret-note", b"b-only", b"person-3-zq", base64_of(b"b-only")):
        assert secret not in everything


def base64_of(data: bytes) -> bytes:
    import base64

    return base64.b64encode(data)


def test_digests_taken_ahead_are_used_only_for_files_unchanged_since(tmp_path: Path) -> None:
    from learnexit.package.build import hash_files, prehash

    data = tmp_path / "data"
    (data / "csv").mkdir(parents=True)
    (data / "csv" / "a.csv").write_bytes(b"id\r\n1\r\n")
    (data / "csv" / "b.csv").write_bytes(b"id\r\n2\r\n")
    ahead = prehash(data)
    assert set(ahead) == {"csv/a.csv", "csv/b.csv"}
    with open(data / "csv" / "b.csv", "ab") as fh:  # changed after it was hashed
        fh.write(b"3\r\n")
    (data / "index.html").write_bytes(b"<html></html>")  # new
    poisoned = dict(ahead)
    poisoned["csv/a.csv"] = ("0" * 64, ahead["csv/a.csv"][1], ahead["csv/a.csv"][2])  # proves reuse
    hashes = hash_files(data, ["csv/a.csv", "csv/b.csv", "index.html"], poisoned)
    assert hashes["csv/a.csv"] == ("0" * 64, 7)  # unchanged: not read again
    assert hashes["csv/b.csv"] == (hashlib.sha256(b"id\r\n2\r\n3\r\n").hexdigest(), 10)
    assert hashes["index.html"] == (hashlib.sha256(b"<html></html>").hexdigest(), 13)


def test_a_groups_folders_are_hashed_ahead_and_known_digests_not_again(tmp_path: Path) -> None:
    """A parallel export hashes each group's folders when the group is done (``prehash``
    with ``folders``) and, at the end, only what is new or changed (``known``)."""
    from learnexit.export.parallel import _folders
    from learnexit.exporters.base import load_builtin
    from learnexit.package.build import prehash

    data = tmp_path / "data"
    for folder, name in (("csv", "a.csv"), ("json", "acme.json"), ("xml", "acme.xml"), ("documents", "x.pdf")):
        (data / folder).mkdir(parents=True)
        (data / folder / name).write_bytes(name.encode())
    ahead = prehash(data, {"json", "xml"})
    assert set(ahead) == {"json/acme.json", "xml/acme.xml"}
    poisoned = {rel: ("0" * 64, size, identity) for rel, (_digest, size, identity) in ahead.items()}
    later = prehash(data, known=poisoned)
    assert later["json/acme.json"][0] == "0" * 64  # known and unchanged: not read again
    assert later["csv/a.csv"][0] == hashlib.sha256(b"a.csv").hexdigest()
    formats = load_builtin()
    chosen = ["csv", "json", "xml", "pdf", "docx", "sql"]
    # JSON makes the XML document, PDF the Word files: the makers' groups hash those folders
    assert _folders([formats["json"], formats["sql"]], chosen) == {"json", "xml", "sql"}
    assert _folders([formats["xml"]], chosen) == set()
    assert _folders([formats["docx"]], chosen) == set()
    assert _folders([formats["xml"]], ["xml"]) == {"xml"}
    assert _folders([formats["pdf"], formats["xlsx"]], chosen) == {"documents", "excel"}
