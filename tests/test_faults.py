"""Faults: killed processes, dropped database connections, a full disk, a failing ledger
(the purge's: ``test_faults_purge.py``, which takes its helpers from here).

* ``export`` is SIGKILLed at random moments (several seeds, three kinds of package): no
  file or folder without ``.partial`` in its name is ever an incomplete package, the
  ledger never calls a package complete that is not, the audit chain stays intact, and a
  rerun delivers a valid package after destroying the killed export's clear-text build
  and recording it failed.
* PostgreSQL connections are terminated with ``pg_terminate_backend`` from another
  connection while an export reads (the source connection: a clean one-line error, the
  export recorded ``failed``, nothing left, a rerun succeeds) and while it writes (the
  ledger connection: the export still completes and is recorded).
* A file-size limit (``RLIMIT_FSIZE``, with SIGXFSZ ignored so writes fail with EFBIG,
  as on a full disk) stops an export: one-line error, every partial file removed, the
  export recorded ``failed``.
* A ledger that cannot take the record of an account closure leaves the source
  unchanged; once the ledger works again the closure runs and is recorded.

``LEARNEXIT_TEST_SLOW_EXPORT=<seconds>`` (test-only, see ``learnexit.cli.export_cmds``) makes the
export pause after each table so that the tests can act while it runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import PG_ADMIN

from learnexit.demo import build_shared_schema, populate_shared
from learnexit.package.verify import verify_package

pytestmark = pytest.mark.slow

EXPORT_SEEDS = (11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22)


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEARNEXIT_")}
    env.update(LEARNEXIT_ACTOR="tester@example", **extra)
    return env


def start(args: list[str], config: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "learnexit", *args, "--config", str(config)],
        env=environ(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(args: list[str], config: Path, **env: str) -> tuple[int, str, str]:
    proc = start(args, config, **env)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("learnexit: error:")]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def site(example_site: Path) -> Path:
    """A private copy of the example; returns its config."""
    return example_site / "learnexit.toml"


def ledger_rows(config: Path, table: str) -> list[dict]:
    with sqlite3.connect(config.parent / "learnexit-state.db") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(f'SELECT * FROM "{table}" ORDER BY 1')]


def audit_valid(config: Path) -> bool:
    code, out, _ = run(["audit", "--verify", "--json"], config)
    return code == 0 and json.loads(out)["valid"]


# --------------------------------------------------------------------------- kill -9 during export

VARIANTS = {
    "folder": ["-f", "csv,xlsx,json,sql"],
    "zip": ["-f", "csv,xml,media", "--zip"],
    "encrypted": ["-f", "csv,json", "--encrypt-to", "{key}"],
}


def check_package(path: Path, identity) -> bool:
    """Is ``path`` a complete, valid package?  (Encrypted ones are opened first.)"""
    if path.name.endswith(".age"):
        import pyrage

        clear = path.parent.parent / f"{path.name}.check.zip"
        clear.write_bytes(pyrage.decrypt(path.read_bytes(), [identity]))
        try:
            return verify_package(clear).valid
        finally:
            clear.unlink()
    return verify_package(path).valid


@pytest.mark.parametrize("seed", EXPORT_SEEDS)
def test_killed_export_never_looks_complete(site: Path, tmp_path: Path, seed: int) -> None:
    pyrage = pytest.importorskip("pyrage")
    identity = pyrage.x25519.Identity.generate()
    rnd = random.Random(seed)
    variant = list(VARIANTS)[seed % len(VARIANTS)]
    args = [a.replace("{key}", str(identity.to_public())) for a in VARIANTS[variant]]
    out = tmp_path / "out"
    slow = {"LEARNEXIT_TEST_SLOW_EXPORT": "0.03"}

    # how long an uninterrupted run takes (a reference in a folder of its own)
    began = time.monotonic()
    code, _, err = run(["export", "acme", *args, "--out", str(tmp_path / "ref")], site, LEARNEXIT_NOW="2026-11-29T09:00:00", **slow)  # fmt: skip
    assert code == 0, err
    duration = time.monotonic() - began

    proc = start(["export", "acme", *args, "--out", str(out)], site, LEARNEXIT_NOW="2026-11-29T10:00:00", **slow)
    kill_at = rnd.uniform(0.2, duration * 1.05)
    try:
        proc.wait(timeout=kill_at)
        finished = True
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        finished = False

    # no file or folder without .partial is anything but a complete, valid package
    names = sorted(os.listdir(out)) if out.exists() else []
    complete = [n for n in names if not n.endswith(".partial")]
    for name in complete:
        assert check_package(out / name, identity), (seed, variant, kill_at, name)
    rows = [r for r in ledger_rows(site, "exports") if "/out/" in (r["path"] or "")]
    assert all(r["status"] in ("running", "complete") for r in rows)
    for r in rows:
        if r["status"] == "complete":  # the ledger never calls a package complete that is not
            assert Path(r["path"]).name in complete
    assert audit_valid(site)
    if finished:
        assert complete and rows and rows[0]["status"] == "complete"

    # a rerun delivers
    code, stdout, err = run(["export", "acme", *args, "--out", str(out), "--json"], site, LEARNEXIT_NOW="2026-11-29T11:00:00")  # fmt: skip
    assert code == 0, err
    assert check_package(Path(json.loads(stdout)["path"]), identity)
    # ... and first reaps the killed one: its clear-text build destroyed, the export failed
    assert [n for n in os.listdir(out) if n.endswith(".partial")] == []
    before = {r["id"]: r["status"] for r in rows}  # (none when killed before it was recorded)
    rows = [r for r in ledger_rows(site, "exports") if "/out/" in (r["path"] or "")]
    after = {r["id"]: r["status"] for r in rows}
    assert after == {**{i: "failed" if s == "running" else s for i, s in before.items()}, rows[-1]["id"]: "complete"}
    assert all(r["error"].startswith("interrupted: its process (") for r in rows if before.get(r["id"]) == "running")
    assert audit_valid(site)
    print(f"seed {seed}: {variant}, killed at {kill_at:.2f}s of {duration:.2f}s, finished={finished}, left {names}")


# --------------------------------------------------------------------------- a full disk


def _limit_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


@pytest.mark.parametrize("variant", ["folder", "zip", "encrypted"])
def test_disk_full_during_export(site: Path, tmp_path: Path, variant: str) -> None:
    pyrage = pytest.importorskip("pyrage")
    key = str(pyrage.x25519.Identity.generate().to_public())
    formats = {"folder": ["-f", "csv"], "zip": ["-f", "csv,media", "--zip"], "encrypted": ["-f", "csv,media", "--encrypt-to", key]}[variant]  # fmt: skip
    # two incompressible media files, so that the zip is bigger than any file in it
    with sqlite3.connect(site.parent / "lms.db") as conn:
        for row_id in (1, 2):
            body = random.Random(row_id).randbytes(120_000)
            rel = f"acme/noise-{row_id}.bin"
            (site.parent / "media" / rel).write_bytes(body)
            conn.execute(
                "UPDATE attachments SET storage_path = ?, size = ?, md5 = ? WHERE id = ?",
                (rel, len(body), hashlib.md5(body).hexdigest(), row_id),
            )
    if variant == "folder":
        # a CSV well past the ledger's size, so that the file-size limit that stops it
        # still leaves the ledger (~130 KiB with its indexes) room to record the failure
        rnd = random.Random(7)
        text = " ".join(f"{rnd.random():.6f}" for _ in range(40_000))
        with sqlite3.connect(site.parent / "lms.db") as conn:
            conn.execute(
                "UPDATE courses SET description = ? WHERE id = (SELECT min(c.id) FROM courses c "
                "JOIN organisations o ON o.id = c.organisation_id WHERE o.slug = 'acme')",
                (text,),
            )
    # a zipped reference run tells the sizes: the biggest payload file and the whole package
    reference = [a for a in formats if a not in ("--encrypt-to", key, "--zip")] + ["--zip"]
    code, stdout, err = run(["export", "acme", *reference, "--out", str(tmp_path / "ref"), "--json"], site, LEARNEXIT_NOW="2026-11-29T09:00:00")  # fmt: skip
    assert code == 0, err
    zipped = Path(json.loads(stdout)["path"])
    with zipfile.ZipFile(zipped) as zf:
        biggest = max(i.file_size for i in zf.infolist())
    if variant == "folder":
        limit = biggest - 1000  # the biggest file cannot be written
    else:
        limit = zipped.stat().st_size - 1000  # every payload file fits; the zip does not
        assert biggest < limit
    ledger_size = (site.parent / "learnexit-state.db").stat().st_size
    assert limit > ledger_size + 32 * 1024, "the ledger must still be writable"
    source_before = digest(site.parent / "lms.db")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "learnexit", "export", "acme", *formats, "--out", str(out), "--config", str(site)],
        env=environ(LEARNEXIT_NOW="2026-11-29T10:00:00"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_limit_file_size(limit),  # noqa: PLW1509
    )
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 1, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1 and "File too large" in errors[0], stderr
    assert "Traceback" not in stderr and stdout == ""
    assert os.listdir(out) == []  # every partial file removed
    row = ledger_rows(site, "exports")[-1]
    assert row["status"] == "failed" and "File too large" in row["error"]
    assert digest(site.parent / "lms.db") == source_before
    assert audit_valid(site)
    # with room again, the same export succeeds
    code, stdout, err = run(["export", "acme", *formats, "--out", str(out), "--json"], site, LEARNEXIT_NOW="2026-11-29T11:00:00")  # fmt: skip
    assert code == 0, err


# --------------------------------------------------------------------------- a failing ledger


LOGIN_STATES = "SELECT organisation_id, sum(workflow_state = 'deleted') FROM logins GROUP BY organisation_id"


def test_a_ledger_that_refuses_the_closure_record_leaves_the_source_unchanged(
    site: Path, example_template: Path
) -> None:
    ledger = site.parent / "learnexit-state.db"
    assert run(["notice", "acme", "--received", "2026-11-20"], site, LEARNEXIT_NOW="2026-11-20")[0] == 0
    assert run(["export", "acme", "-f", "csv"], site, LEARNEXIT_NOW="2026-11-21")[0] == 0
    with sqlite3.connect(ledger) as conn:  # the ledger now fails every closure record
        conn.execute(
            "CREATE TRIGGER le_test_fail BEFORE INSERT ON closures BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    source_before = digest(site.parent / "lms.db")
    # the termination date (2027-01-30) has passed: confirming runs the closure now
    code, out, err = run(["confirm", "acme", "--by", "Jane Doe", "--json"], site, LEARNEXIT_NOW="2027-02-05")
    assert code == 1, err
    errors = error_lines(err)
    assert len(errors) == 1 and "account closure failed" in errors[0] and "disk I/O error" in errors[0], err
    assert out == ""
    assert digest(site.parent / "lms.db") == source_before  # rolled back: no change without a record
    assert ledger_rows(site, "closures") == []
    events = [e["event"] for e in ledger_rows(site, "audit")]
    assert events[-2:] == ["handover.confirmed", "closure.failed"]
    assert audit_valid(site)

    with sqlite3.connect(ledger) as conn:
        conn.execute("DROP TRIGGER le_test_fail")
    code, out, err = run(["confirm", "acme", "--by", "Jane Doe", "--json"], site, LEARNEXIT_NOW="2027-02-05")
    assert code == 0, err
    assert json.loads(out)["closure"]["ran_now"] is True
    closures = ledger_rows(site, "closures")
    assert len(closures) == 1
    changed = json.loads(closures[0]["rows"])["logins.workflow_state"]
    with sqlite3.connect(site.parent / "lms.db") as conn:
        closed = dict(conn.execute(LOGIN_STATES).fetchall())
    with sqlite3.connect(example_template / "lms.db") as conn:
        pristine = dict(conn.execute(LOGIN_STATES).fetchall())
    assert changed > 0 and closed[1] == pristine[1] + changed  # acme's logins closed ...
    assert {k: v for k, v in closed.items() if k != 1} == {k: v for k, v in pristine.items() if k != 1}  # only
    assert digest(site.parent / "lms.db") != source_before


def test_a_read_only_ledger_changes_nothing(site: Path) -> None:
    ledger = site.parent / "learnexit-state.db"
    assert run(["notice", "acme", "--received", "2026-11-20"], site, LEARNEXIT_NOW="2026-11-20")[0] == 0
    assert run(["export", "acme", "-f", "csv"], site, LEARNEXIT_NOW="2026-11-21")[0] == 0
    before = (digest(site.parent / "lms.db"), digest(ledger))
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(ledger)], capture_output=True).returncode != 0:
            pytest.skip("root without chattr +i")
    else:
        ledger.chmod(0o444)
    try:
        for args in (["confirm", "acme", "--by", "Jane"], ["hold", "acme", "--reason", "x"], ["export", "acme", "-f", "csv"]):  # fmt: skip
            code, out, err = run([*args, "--json"], site, LEARNEXIT_NOW="2027-02-05")
            assert code == 1, (args, err)
            assert len(error_lines(err)) == 1 and "readonly" in error_lines(err)[0], err
            assert (digest(site.parent / "lms.db"), digest(ledger)) == before
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(ledger)], check=True)
        else:
            ledger.chmod(0o644)


# --------------------------------------------------------------------------- PostgreSQL connections dropped


@pytest.fixture
def pg_site(example_template: Path, tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """The example on PostgreSQL, source and ledger each in a database of their own."""
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    names = [f"le_fault_src_{uuid.uuid4().hex[:8]}", f"le_fault_state_{uuid.uuid4().hex[:8]}"]
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    src, state = (f"{base}/{n}" for n in names)
    engine = sa.create_engine(src)
    build_shared_schema(engine)
    populate_shared(engine, media_root=None, activity_rows=300)
    engine.dispose()
    folder = tmp_path / "pg"
    folder.mkdir()
    shutil.copytree(example_template / "media", folder / "media")
    text = (example_template / "learnexit.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///lms.db"', f'url = "{src}"')
    text = text.replace('url = "sqlite:///learnexit-state.db"', f'url = "{state}"')
    config = folder / "learnexit.toml"
    config.write_text(text, encoding="utf-8")
    try:
        yield config, names[0], names[1]
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(
                    f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
                    "AND pid <> pg_backend_pid()"
                )
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


def terminate(database: str, *, wait_for: str | None = None, timeout: float = 60) -> int:
    """Terminate the backends connected to ``database`` (once one shows ``wait_for`` state)."""
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + timeout
    try:
        with admin.connect() as conn:
            while time.monotonic() < deadline:
                rows = conn.exec_driver_sql(
                    f"SELECT pid, state FROM pg_stat_activity WHERE datname = '{database}' AND pid <> pg_backend_pid()"
                ).all()
                if rows and (wait_for is None or any(state == wait_for for _, state in rows)):
                    for pid, _ in rows:
                        conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
                    return len(rows)
                time.sleep(0.05)
    finally:
        admin.dispose()
    raise AssertionError(f"no connection to {database} appeared")


def export_running(state_db: str, timeout: float = 60) -> None:
    """Wait until the ledger records an export as running (its reads under way), instead
    of sleeping for a guess: on a slow machine the export may still be starting up."""
    engine = sa.create_engine(PG_ADMIN.rsplit("/", 1)[0] + "/" + state_db)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                with engine.connect() as conn:
                    if conn.execute(sa.text("SELECT 1 FROM exports WHERE status = 'running'")).first():
                        return
            except sa.exc.ProgrammingError:  # (the ledger's tables are not made yet)
                pass
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError(f"no export running in {state_db}")


def pg_exports(config: Path, state_db: str) -> list[dict]:
    engine = sa.create_engine(PG_ADMIN.rsplit("/", 1)[0] + "/" + state_db)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM exports ORDER BY id"))]
    engine.dispose()
    return rows


@pytest.mark.postgres
def test_source_connection_terminated_mid_export(pg_site: tuple[Path, str, str], tmp_path: Path) -> None:
    config, src_db, state_db = pg_site
    out = tmp_path / "out"
    proc = start(["export", "acme", "-f", "csv,json", "--out", str(out)], config, LEARNEXIT_TEST_SLOW_EXPORT="0.25")
    export_running(state_db)
    assert terminate(src_db, wait_for="idle in transaction") >= 1  # the snapshot, between two tables
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1 and "source read failed" in errors[0], stderr
    assert "Traceback" not in stderr and stdout == ""
    assert not out.exists() or os.listdir(out) == []
    rows = pg_exports(config, state_db)
    assert [r["status"] for r in rows] == ["failed"] and rows[0]["finished_at"] is not None
    code, stdout, err = run(["export", "acme", "-f", "csv,json", "--out", str(out), "--json"], config)
    assert code == 0, err
    assert verify_package(json.loads(stdout)["path"]).valid
    assert [r["status"] for r in pg_exports(config, state_db)] == ["failed", "complete"]
    assert run(["audit", "--verify"], config)[0] == 0


@pytest.mark.postgres
def test_ledger_connection_terminated_mid_export(pg_site: tuple[Path, str, str], tmp_path: Path) -> None:
    config, _src_db, state_db = pg_site
    out = tmp_path / "out"
    proc = start(["export", "acme", "-f", "csv", "--out", str(out), "--json"], config, LEARNEXIT_TEST_SLOW_EXPORT="0.2")
    export_running(state_db)
    assert terminate(state_db, wait_for="idle") >= 1  # the ledger's pooled connection, idle while the export reads
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr  # the ledger reconnects and records the export
    assert verify_package(json.loads(stdout)["path"]).valid
    assert [r["status"] for r in pg_exports(config, state_db)] == ["complete"]
    assert run(["audit", "--verify"], config)[0] == 0
