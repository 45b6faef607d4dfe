"""The purge survives SIGKILL at any batch boundary and never runs twice at once.

Each scenario runs the real CLI in a subprocess with a small batch size.  The test-only
hook ``LEARNEXIT_TEST_KILL_AFTER_BATCHES=N`` (with ``LEARNEXIT_TEST_KILL_AT`` = pending:
the ledger knows the batch, the source not yet deleted it; delete: the source committed,
the ledger does not know yet; batch: after the batch — its progress is recorded lazily,
with the next batch's pending entry, so the ledger may still hold it as pending) makes
the process SIGKILL itself.
The killed purge's lock is aged as an hour would, the purge is run again, and the final
state — every table of the source, the media folder, the reported counts — must equal
that of an uninterrupted purge of a fresh copy.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_purge import DUE_NOW, give_notice, make_lms, purge_outcome, set_batch_size

from learnexit.ledger import schema as L
from learnexit.ledger.store import Ledger
from learnexit.offboarding.clock import parse_now
from learnexit.purge.run import execute_purge

pytestmark = pytest.mark.slow

BATCH = 100
SEEDS = (1, 2, 3, 4)


def small_batches(lms: Any, size: int = BATCH) -> None:
    set_batch_size(lms.config, size)


def cli(lms: Any, *args: str, **env: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LEARNEXIT_")}
    environ.update(LEARNEXIT_NOW=DUE_NOW, LEARNEXIT_ACTOR="tester@example", LEARNEXIT_LOG_LEVEL="warning", **env)
    return subprocess.Popen(
        [sys.executable, "-m", "learnexit", "purge", *args, "--config", str(lms.config)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out, err


def age_lock(lms: Any) -> None:
    """What an hour without a heartbeat does to a dead purge's lock."""
    with Ledger(lms.settings.state_url) as ledger, ledger.engine.begin() as conn:
        conn.execute(L.locks.update().values(heartbeat_at=datetime(2000, 1, 1)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, example_template: Path) -> dict[str, Any]:
    """An uninterrupted purge of a fresh copy (in-process: the same code, no kill hook)."""
    lms = make_lms("sqlite", tmp_path_factory.mktemp("reference") / "ex", example_template)
    small_batches(lms)
    give_notice(lms)
    settings = lms.settings
    with Ledger(settings.state_url) as ledger:
        result = execute_purge(settings, ledger, "acme", parse_now(DUE_NOW))
        with ledger.engine.connect() as conn:
            batches = conn.execute(
                sa.select(sa.func.sum(L.purge_progress.c.batches)).where(L.purge_progress.c.purge_id == result.purge_id)
            ).scalar()
    out = json.dumps({"customers": [result.as_dict()]}, default=str)
    return {"outcome": purge_outcome(lms, out), "batches": int(batches)}


@pytest.mark.parametrize("seed", SEEDS)
def test_killed_purge_resumes_to_the_same_end(
    seed: int, reference: dict[str, Any], tmp_path: Path, example_template: Path
) -> None:
    rng = random.Random(seed)
    lms = make_lms("sqlite", tmp_path / "ex", example_template)
    small_batches(lms)
    give_notice(lms)
    assert reference["batches"] > 30
    kills = 2 if seed % 2 == 0 else 1  # even seeds kill the resumed run too
    for _ in range(kills):
        point = rng.choice(("pending", "delete", "batch"))
        after = rng.randint(1, reference["batches"] // (2 * kills))
        code, _out, err = finish(
            cli(
                lms,
                "acme",
                "--yes",
                "--json",
                LEARNEXIT_TEST_KILL_AFTER_BATCHES=str(after),
                LEARNEXIT_TEST_KILL_AT=point,
            )
        )
        assert code == -9, f"not killed at {point} #{after}: {err}"
        with Ledger(lms.settings.state_url) as ledger:
            assert [p["status"] for p in ledger.rows(L.purges, "acme")] == ["running"]
        if seed != SEEDS[0]:
            age_lock(lms)
        # else: the dead run's lock stays as it was left; the next run on this host
        # sees that its process is gone and breaks it at once (no hour-long exit 4)
    code, out, err = finish(cli(lms, "acme", "--yes", "--json"))
    assert code == 0, err
    assert json.loads(out)["customers"][0]["resumed"] is True
    assert purge_outcome(lms, out) == reference["outcome"]
    with Ledger(lms.settings.state_url) as ledger:
        assert [p["status"] for p in ledger.rows(L.purges, "acme")] == ["done"]
        assert ledger.verify_audit().valid


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_killed_purge_resumes_on_servers(
    kind: str, db_factory: Any, reference: dict[str, Any], tmp_path: Path, example_template: Path
) -> None:
    lms = make_lms(kind, tmp_path / "ex", example_template, db_factory(kind).new("kill"))
    small_batches(lms)
    give_notice(lms)
    code, _out, err = finish(
        cli(lms, "acme", "--yes", LEARNEXIT_TEST_KILL_AFTER_BATCHES="37", LEARNEXIT_TEST_KILL_AT="delete")
    )
    assert code == -9, err
    age_lock(lms)
    code, out, err = finish(cli(lms, "acme", "--yes", "--json"))
    assert code == 0, err
    got = purge_outcome(lms, out)
    want = reference["outcome"]
    assert {k: got[k] for k in ("deleted", "retained", "kept_shared", "media_deleted", "verified")} == {
        k: want[k] for k in ("deleted", "retained", "kept_shared", "media_deleted", "verified")
    }
    assert {t: len(rows) for t, rows in got["db"].items()} == {t: len(rows) for t, rows in want["db"].items()}


def test_two_cron_runs_at_once_one_works_one_is_busy(tmp_path: Path, example_template: Path) -> None:
    lms = make_lms("sqlite", tmp_path / "ex", example_template)
    small_batches(lms, 20)  # long enough for the second run to arrive while the first works
    give_notice(lms)
    first = cli(lms, "--due", "--yes", "--json")
    deadline = time.monotonic() + 60
    with Ledger(lms.settings.state_url) as ledger:
        while True:
            with ledger.engine.connect() as conn:
                if conn.execute(sa.select(L.locks)).first() is not None:
                    break
            assert time.monotonic() < deadline and first.poll() is None, "the first run never took the lock"
            time.sleep(0.05)
    started = time.monotonic()
    code_b, out_b, err_b = finish(cli(lms, "--due", "--yes", "--json"))
    assert code_b == 4 and "another purge is running" in err_b and out_b == ""
    assert time.monotonic() - started < 15  # at once, not after waiting
    assert first.poll() is None  # the first was still at work
    code_a, out_a, err_a = finish(first)
    assert code_a == 0, err_a
    (result,) = json.loads(out_a)["customers"]
    assert result["status"] == "done" and result["verified"] is True
    with Ledger(lms.settings.state_url) as ledger:
        assert [p["status"] for p in ledger.rows(L.purges, "acme")] == ["done"]
        events = [e["event"] for e in ledger.audit_entries("acme")]
        assert events.count("purge.started") == 1 and "purge.resumed" not in events
    # and a third run afterwards finds nothing due
    code, out, _ = finish(cli(lms, "--due", "--yes", "--json"))
    assert code == 0 and json.loads(out)["customers"] == []
