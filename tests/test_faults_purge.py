"""Faults during the purge: the process killed at random moments, the ledger failing,
PostgreSQL connections terminated (the export's faults: ``test_faults.py``; split so
that the slow tests' two workers share the work).

* ``purge`` is SIGKILLed at random moments (several seeds) and run again: it resumes to
  the same end state as an uninterrupted purge, the ledger's records and the audit chain
  intact.
* A ledger that fails in the middle of the purge loses no record.
* PostgreSQL connections (the source's, the ledger's) are terminated from another
  connection while the purge runs: a clean error, and a rerun finishes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_faults import error_lines, run, start, terminate
from test_purge import DUE_NOW, files, give_notice, make_lms, purge_outcome, set_batch_size, snapshot

from learnexit.ledger import schema as L
from learnexit.ledger.store import Ledger

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- kill -9 during purge

PURGE_SEEDS = (31, 32, 33, 34, 35, 36, 37, 38)


def purge_cli(lms, *args: str, **env: str) -> subprocess.Popen[str]:
    return start(["purge", *args], lms.config, LEARNEXIT_NOW=DUE_NOW, LEARNEXIT_LOG_LEVEL="warning", **env)


def smaller_batches(lms, size: int = 100) -> None:
    set_batch_size(lms.config, size)


@pytest.fixture(scope="module")
def purge_reference(tmp_path_factory: pytest.TempPathFactory, example_template: Path) -> dict:
    """An uninterrupted purge of a fresh copy, as a process: its end state and how long it took."""
    lms = make_lms("sqlite", tmp_path_factory.mktemp("purge-reference") / "ex", example_template)
    smaller_batches(lms)
    give_notice(lms)
    began = time.monotonic()
    code, out, err = run(["purge", "acme", "--yes", "--json"], lms.config, LEARNEXIT_NOW=DUE_NOW)
    assert code == 0, err
    return {"outcome": purge_outcome(lms, out), "seconds": time.monotonic() - began}


@pytest.mark.parametrize("seed", PURGE_SEEDS)
def test_killed_purge_resumes_to_the_same_end(
    seed: int, purge_reference: dict, tmp_path: Path, example_template: Path
) -> None:
    """SIGKILL at random moments — not only at batch boundaries: inside a batch's
    transaction, while media files or export packages go, while the certificate renders."""
    rnd = random.Random(seed)
    lms = make_lms("sqlite", tmp_path / "ex", example_template)
    smaller_batches(lms)
    give_notice(lms)
    assert run(["export", "acme", "-f", "csv", "--out", str(tmp_path / "handover")], lms.config, LEARNEXIT_NOW="2027-04-30")[0] == 0  # fmt: skip
    kills = []
    statuses: list[str] = []
    for _ in range(1 + seed % 2):  # odd seeds kill the resumed run too
        proc = purge_cli(lms, "acme", "--yes", "--json")
        at = rnd.uniform(0.9, purge_reference["seconds"] + 0.2)  # past the start-up, into the work
        try:
            proc.wait(timeout=at)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            kills.append(round(at, 2))
        proc.communicate()
        with Ledger(lms.settings.state_url) as ledger:
            statuses = [p["status"] for p in ledger.rows(L.purges, "acme")]
            assert statuses in ([], ["running"], ["done"]), statuses  # never "done" and something left
            assert ledger.verify_audit().valid
        if statuses == ["done"]:
            break  # it had finished (or was killed while it printed)
    if statuses != ["done"]:
        code, out, err = finish_proc(purge_cli(lms, "acme", "--yes", "--json"))
        assert code == 0, err
        assert purge_outcome(lms, out) == purge_reference["outcome"], (seed, kills)
    want = purge_reference["outcome"]
    assert snapshot(lms.url) == want["db"] and files(lms.media) == want["media"], (seed, kills)
    with Ledger(lms.settings.state_url) as ledger:
        row = ledger.rows(L.purges, "acme")[-1]
        assert json.loads(row["deleted"]) == want["deleted"] and row["verified"]
    assert os.listdir(tmp_path / "handover") == []  # the package went too
    with Ledger(lms.settings.state_url) as ledger:
        assert [p["status"] for p in ledger.rows(L.purges, "acme")] == ["done"]
        assert ledger.verify_audit().valid
    print(f"seed {seed}: killed at {kills} s of {purge_reference['seconds']:.1f} s")


def finish_proc(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


# --------------------------------------------------------------------------- a ledger failing during the purge


def test_a_ledger_failing_mid_purge_loses_no_record(
    purge_reference: dict, tmp_path: Path, example_template: Path
) -> None:
    """The ledger stops taking progress records half-way: the purge stops with a clean
    error, and what it deleted is still accounted for — the rerun ends with exactly the
    counts of an uninterrupted purge."""
    lms = make_lms("sqlite", tmp_path / "ex", example_template)
    smaller_batches(lms)
    give_notice(lms)
    ledger_db = lms.root / "learnexit-state.db"
    with sqlite3.connect(ledger_db) as conn:  # after ten batches, every progress update fails
        conn.execute(
            "CREATE TRIGGER le_test_fail BEFORE UPDATE ON purge_progress "
            "WHEN (SELECT sum(batches) FROM purge_progress) >= 10 "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
    code, out, err = finish_proc(purge_cli(lms, "acme", "--yes", "--json"))
    assert code == 1, err
    errors = error_lines(err)
    assert len(errors) == 1 and "disk I/O error" in errors[0], err
    assert "Traceback" not in err
    with Ledger(lms.settings.state_url) as ledger:
        assert [p["status"] for p in ledger.rows(L.purges, "acme")] in (["failed"], ["running"])
        assert ledger.verify_audit().valid
    with sqlite3.connect(ledger_db) as conn:
        conn.execute("DROP TRIGGER le_test_fail")
    code, out, err = finish_proc(purge_cli(lms, "acme", "--yes", "--json"))
    assert code == 0, err
    assert purge_outcome(lms, out) == purge_reference["outcome"]


# --------------------------------------------------------------------------- PostgreSQL connections dropped during the purge


@pytest.mark.postgres
@pytest.mark.parametrize("which", ["source", "ledger"])
def test_connection_terminated_mid_purge(which: str, db_factory, purge_reference: dict, tmp_path: Path, example_template: Path) -> None:  # fmt: skip
    factory = db_factory("postgresql")
    src_url, state_url = factory.new("purge_src"), factory.new("purge_state")
    lms = make_lms("postgresql", tmp_path / "ex", example_template, src_url)
    text = lms.config.read_text(encoding="utf-8")
    lms.config.write_text(
        text.replace('url = "sqlite:///learnexit-state.db"', f'url = "{state_url}"'), encoding="utf-8"
    )
    smaller_batches(lms, 50)
    give_notice(lms)
    proc = purge_cli(lms, "acme", "--yes", "--json")
    with Ledger(state_url) as ledger:  # wait until batches are being deleted
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with ledger.engine.connect() as conn:
                done = conn.execute(sa.select(sa.func.sum(L.purge_progress.c.batches))).scalar() or 0
            if done >= 5:
                break
            time.sleep(0.05)
    database = (src_url if which == "source" else state_url).rsplit("/", 1)[1]
    assert terminate(database) >= 1
    code, out, err = finish_proc(proc)
    # A dropped source connection stops the purge; so does a ledger connection dropped in
    # the middle of a write.  One dropped while idle in the pool comes back by itself.
    if which == "source" or code != 0:
        assert code == 1, err
        errors = error_lines(err)
        assert len(errors) == 1 and ("terminating connection" in errors[0] or "closed the connection" in errors[0]), err
        assert "Traceback" not in err and out == ""
        with Ledger(state_url) as ledger:
            assert [p["status"] for p in ledger.rows(L.purges, "acme")] == ["failed"]
            assert ledger.verify_audit().valid
        code, out, err = finish_proc(purge_cli(lms, "acme", "--yes", "--json"))
    assert code == 0, err
    got, want = purge_outcome(lms, out), purge_reference["outcome"]
    for key in ("deleted", "retained", "kept_shared", "media_deleted", "verified"):
        assert got[key] == want[key], key
    assert {t: len(rows) for t, rows in got["db"].items()} == {t: len(rows) for t, rows in want["db"].items()}
    with Ledger(state_url) as ledger:
        assert [p["status"] for p in ledger.rows(L.purges, "acme")] == ["done"]
