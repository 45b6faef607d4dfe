"""Exports killed on this host are reaped: their clear-text builds destroyed, the ledger told.

A SIGKILLed export (or a crash, or a reboot) leaves its ``<name>.partial`` build — the
customer's data in clear — and a ledger row that says ``running`` for ever.  The next
``learnexit export`` of that customer, and every ``purge --due`` (cron, nightly), destroy
such builds and record the export ``failed`` with the reason and an ``export_interrupted``
audit entry.  An export whose process is alive (even stopped), or that runs on another
host, is never touched; a package that had already been published is left in place; two
reapers at once record the export once; other customers' packages stay byte for byte.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import test_faults
from test_faults import audit_valid, digest, ledger_rows, run, start

from learnexit.export.records import reap_interrupted_exports
from learnexit.ledger import schema as L
from learnexit.ledger.export_records import export_lock_name
from learnexit.ledger.store import Ledger, utcnow
from learnexit.package.verify import verify_package

pytestmark = pytest.mark.slow

SLOW = {"LEARNEXIT_TEST_SLOW_EXPORT": "0.2"}  # (seconds after each table: time to act)


# test_faults' fixture: a private copy of the example per test
site = test_faults.site


def exports_running(site: Path) -> bool:
    try:
        return any(r["status"] == "running" for r in ledger_rows(site, "exports"))
    except sqlite3.OperationalError:  # (the ledger's tables are not made yet)
        return False


def wait_for(what: str, check, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def partial_builds(out: Path) -> list[str]:
    return sorted(n for n in os.listdir(out) if n.endswith(".partial")) if out.exists() else []


def running_export(site: Path, out: Path, now: str) -> subprocess.Popen[str]:
    """An export of acme under way: recorded as running, its .partial build holding data."""
    proc = start(["export", "acme", "-f", "csv,json", "--out", str(out)], site, LEARNEXIT_NOW=now, **SLOW)
    wait_for(
        "the export to be under way",
        lambda: exports_running(site) and any(any((out / p / "data").rglob("*.csv")) for p in partial_builds(out)),
    )
    return proc


def killed_export(site: Path, out: Path, now: str = "2026-11-29T09:00:00") -> tuple[dict, list[str]]:
    """Kill an export of acme mid-run; returns its ledger row and what it left behind."""
    proc = running_export(site, out, now)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    left = partial_builds(out)
    (row,) = [r for r in ledger_rows(site, "exports") if r["status"] == "running"]
    assert left == [Path(row["path"]).name + ".partial"]
    return row, left


def audit_of(site: Path, event: str) -> list[dict]:
    rows = ledger_rows(site, "audit")
    return [dict(r, details=json.loads(r["details"])) for r in rows if r["event"] == event]


def test_the_next_export_of_the_customer_reaps_a_killed_one(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    row, left = killed_export(site, out)

    code, stdout, err = run(["export", "acme", "-f", "csv", "--out", str(out), "--json"], site, LEARNEXIT_NOW="2026-11-29T10:00:00")  # fmt: skip
    assert code == 0, err
    assert f"export_interrupted customer=acme export_id={row['id']} removed={left[0]}" in err
    assert partial_builds(out) == []  # the clear-text build is gone
    new = Path(json.loads(stdout)["path"])
    assert sorted(os.listdir(out)) == [new.name] and verify_package(new).valid

    reaped = next(r for r in ledger_rows(site, "exports") if r["id"] == row["id"])
    assert reaped["status"] == "failed" and reaped["finished_at"]
    assert reaped["error"].startswith(f"interrupted: its process (tester@example host {socket.gethostname()} pid ")
    assert reaped["error"].endswith(f"ended without finishing (killed, or the machine stopped); removed its partial build {left[0]}")  # fmt: skip
    assert not [r for r in ledger_rows(site, "locks") if r["name"] == export_lock_name(row["id"])]
    (entry,) = audit_of(site, "export_interrupted")
    assert entry["customer"] == "acme"
    assert entry["details"]["export_id"] == row["id"] and entry["details"]["removed"] == left
    assert entry["details"]["left"] == [] and entry["details"]["published"] is False
    assert audit_valid(site)


def test_purge_due_reaps_killed_exports_and_leaves_other_customers_packages_alone(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, err = run(["export", "globex", "-f", "csv,json", "--out", str(out), "--json"], site, LEARNEXIT_NOW="2026-11-29T08:00:00")  # fmt: skip
    assert code == 0, err
    other = Path(json.loads(stdout)["path"])
    before = {p.relative_to(other): digest(p) for p in other.rglob("*") if p.is_file()}
    row, left = killed_export(site, out)

    code, stdout, err = run(["purge", "--due", "--yes", "--json"], site)
    assert code == 0, err
    report = json.loads(stdout)
    assert report["interrupted_exports"] == [
        {
            "export_id": row["id"],
            "customer": "acme",
            "package": Path(row["path"]).name,
            "holder": report["interrupted_exports"][0]["holder"],
            "removed": left,
            "left": [],
            "published": False,
        }
    ]
    assert f" host {socket.gethostname()} pid " in report["interrupted_exports"][0]["holder"]
    assert partial_builds(out) == []
    assert {p.relative_to(other): digest(p) for p in other.rglob("*") if p.is_file()} == before
    assert verify_package(other).valid

    # the terminal says it too; a second run finds nothing to do
    row2, left2 = killed_export(site, out, now="2026-11-29T11:00:00")
    code, stdout, err = run(["purge", "--due", "--yes"], site)
    assert code == 0, err
    assert f"acme: export #{row2['id']} was interrupted: recorded as failed ({left2[0]} removed)" in stdout
    code, stdout, _ = run(["purge", "--due", "--yes", "--json"], site)
    assert code == 0 and json.loads(stdout)["interrupted_exports"] == []
    assert len(audit_of(site, "export_interrupted")) == 2 and audit_valid(site)


def test_a_live_export_is_never_reaped_even_when_stopped(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = running_export(site, out, "2026-11-29T09:00:00")
    try:
        proc.send_signal(signal.SIGSTOP)  # alive, doing nothing
        code, stdout, err = run(["purge", "--due", "--yes", "--json"], site)
        assert code == 0, err
        assert json.loads(stdout)["interrupted_exports"] == []
        building = partial_builds(out)
        assert len(building) == 1
        # nor does another export of the same customer touch it
        code, _, err = run(["export", "acme", "-f", "csv", "--out", str(tmp_path / "out2")], site, LEARNEXIT_NOW="2026-11-29T09:30:00")  # fmt: skip
        assert code == 0, err
        assert partial_builds(out) == building
    finally:
        proc.send_signal(signal.SIGCONT)
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert partial_builds(out) == [] and audit_of(site, "export_interrupted") == []
    (done,) = [r for r in ledger_rows(site, "exports") if "/out/" in r["path"]]
    assert done["status"] == "complete" and verify_package(Path(done["path"])).valid


# --------------------------------------------------------------------------- the reaper in process


def fake_export(ledger: Ledger, out: Path, n: int, holder: str | None, customer: str = "acme") -> tuple[int, Path]:
    """A ledger row ``running`` with the lock ``holder`` (None: no lock) and its build."""
    final = out / f"{customer}-2026-11-29T0{n}0000Z"
    build = final.with_name(final.name + ".partial")
    (build / "data" / "csv").mkdir(parents=True)
    (build / "data" / "csv" / "users.csv").write_text("id,name\n1,Anna\n", encoding="utf-8")
    with ledger.engine.begin() as conn:
        export_id = conn.execute(
            L.exports.insert().values(
                customer=customer,
                identity_id=ledger.case_id(conn, customer),
                started_at=utcnow(),
                status="running",
                path=str(final),
                formats="csv",
                recorded_by="ops",
            )
        ).inserted_primary_key[0]
        if holder is not None:
            now = utcnow()
            conn.execute(
                L.locks.insert().values(
                    name=export_lock_name(export_id), holder=holder, acquired_at=now, heartbeat_at=now
                )
            )
    return int(export_id), build


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.fixture
def ledger(tmp_path: Path):
    led = Ledger(f"sqlite:///{tmp_path / 'state.db'}")
    yield led
    led.engine.dispose()


def test_which_running_exports_are_interrupted(ledger: Ledger, tmp_path: Path) -> None:
    here = socket.gethostname()
    out = tmp_path / "out"
    dead, _ = fake_export(ledger, out, 1, f"ops host {here} pid {dead_pid()}")
    live, live_build = fake_export(ledger, out, 2, f"ops host {here} pid {os.getpid()}")
    elsewhere, far_build = fake_export(ledger, out, 3, f"ops host not-{here}.example pid {dead_pid()}")
    lockless, _ = fake_export(ledger, out, 4, None)
    other, other_build = fake_export(ledger, out, 5, f"ops host {here} pid {dead_pid()}", customer="globex")

    reaped = reap_interrupted_exports(ledger, "acme")
    assert [r["export_id"] for r in reaped] == [dead, lockless]
    assert reaped[1]["holder"] is None and reaped[1]["removed"] == ["acme-2026-11-29T040000Z.partial"]
    assert live_build.is_dir() and far_build.is_dir() and other_build.is_dir()  # alive, elsewhere, not asked for
    status = {r["id"]: r["status"] for r in ledger.rows(L.exports)}
    assert status == {dead: "failed", live: "running", elsewhere: "running", lockless: "failed", other: "running"}
    assert reap_interrupted_exports(ledger, "acme") == []  # (done once)
    assert [r["export_id"] for r in reap_interrupted_exports(ledger)] == [other]  # every customer
    assert not other_build.exists()
    assert ledger.verify_audit().valid


def test_a_package_published_before_the_kill_is_left_and_said(ledger: Ledger, tmp_path: Path) -> None:
    """Killed between publishing its package and recording it complete: the package is
    complete (nothing is published before it is), so it stays; the record says so."""
    out = tmp_path / "out"
    export_id, build = fake_export(ledger, out, 1, f"ops host {socket.gethostname()} pid {dead_pid()}")
    final = build.with_name(build.name.removesuffix(".partial"))
    build.rename(final)
    (final / "bagit.txt").write_text("BagIt-Version: 1.0\n", encoding="utf-8")
    (reaped,) = reap_interrupted_exports(ledger)
    assert reaped["published"] is True and reaped["removed"] == [] and final.is_dir()
    (row,) = ledger.rows(L.exports)
    assert row["status"] == "failed"
    assert row["error"].endswith(f"; its package {final.name} had been published and is complete")
    assert export_id == row["id"]


def test_two_reapers_at_once_record_the_export_once(ledger: Ledger, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for n in range(1, 7):
        fake_export(ledger, out, n, f"ops host {socket.gethostname()} pid {dead_pid()}")
    results: list[list[dict]] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(2)

    def reap() -> None:
        led = Ledger(ledger.url)
        try:
            gate.wait()
            results.append(reap_interrupted_exports(led))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            led.engine.dispose()

    threads = [threading.Thread(target=reap) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = sorted(r["export_id"] for batch in results for r in batch)
    assert ids == list(range(1, 7))  # each once, by one reaper or the other
    assert os.listdir(out) == []
    with ledger.engine.connect() as conn:
        entries = conn.execute(
            sa.select(sa.func.count()).select_from(L.audit).where(L.audit.c.event == "export_interrupted")
        ).scalar_one()
    assert entries == 6 and ledger.verify_audit().valid


def test_a_build_that_cannot_be_removed_is_said_and_left_to_the_purge(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from learnexit.export import records

    def refuse(path: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(records, "destroy_path", refuse)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    _, build = fake_export(ledger, tmp_path / "out", 1, None)
    (reaped,) = reap_interrupted_exports(ledger)
    assert reaped["removed"] == [] and reaped["left"] == [f"{build.name}: Permission denied"]
    assert build.is_dir()
    (row,) = ledger.rows(L.exports)
    assert row["status"] == "failed"  # (the purge removes what a failed export left, as any export's)
    assert row["error"].endswith(
        f"; could not remove {build.name}: Permission denied (the customer's purge tries again)"
    )
