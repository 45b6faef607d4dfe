"""Concurrency: cron on two hosts, and an export meeting a purge of the same customer.

* Several ``purge --due --yes`` started at the same moment against one ledger — SQLite,
  and PostgreSQL as two cron hosts sharing a ledger would — : exactly one purges, every
  other exits 4 at once ("another purge is running"), and the customer is purged once.
* The rule for an export and a purge of the same customer (README, "Threat model"):
  - a purge refuses (exit 3) while an export of that customer is running, and
    ``purge --due`` skips the customer for that run ("export running");
  - an export refuses (exit 3) once a purge of that customer has started;
  - should a purge start anyway while an export reads (its lock looked stale: a very
    long export on another host), the export notices before it records the package as
    complete, removes the package and exits 3 — and a package published a moment
    before the purge started is destroyed by the purge with the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_purge import DUE_NOW, give_notice, make_lms, set_batch_size

from learnexit.ledger import schema as L
from learnexit.ledger.store import Ledger, utcnow


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEARNEXIT_")}
    return {**env, "LEARNEXIT_ACTOR": "tester@example", "LEARNEXIT_LOG_LEVEL": "warning", **extra}


def start(config: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "learnexit", *args, "--config", str(config)],
        env=environ(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def use_ledger(config: Path, url: str) -> None:
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('url = "sqlite:///learnexit-state.db"', f'url = "{url}"'), encoding="utf-8")


# --------------------------------------------------------------------------- two cron hosts


@pytest.mark.parametrize("ledger_kind", ["sqlite", "postgresql"])
def test_purge_due_at_once_one_works_the_others_are_busy(
    ledger_kind: str, db_factory: Any, tmp_path: Path, example_template: Path
) -> None:
    if ledger_kind == "sqlite":
        lms = make_lms("sqlite", tmp_path / "ex", example_template)
    else:  # two cron hosts share the source and the ledger on the database server
        factory = db_factory("postgresql")
        lms = make_lms("postgresql", tmp_path / "ex", example_template, factory.new("conc_src"))
        use_ledger(lms.config, factory.new("conc_state"))
    set_batch_size(lms.config, 30)  # a long purge: every contender arrives while it works
    give_notice(lms)
    contenders = [
        start(lms.config, "purge", "--due", "--yes", "--json", LEARNEXIT_NOW=DUE_NOW, LEARNEXIT_ACTOR=f"cron@host-{n}")
        for n in "abc"
    ]
    results = [finish(p) for p in contenders]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 4, 4], [(c, e[-500:]) for c, _, e in results]
    for code, out, err in results:
        if code == 4:
            assert out == "" and err.strip().splitlines()[-1].startswith("learnexit: error: another purge is running")
        else:
            data = json.loads(out)
            assert [r["customer"] for r in data["customers"]] == ["acme"] and data["customers"][0]["verified"]
    with Ledger(lms.settings.state_url) as ledger:
        assert [(p["status"], p["kind"]) for p in ledger.rows(L.purges, "acme")] == [("done", "full")]
        assert ledger.verify_audit().valid
        with ledger.engine.connect() as conn:
            assert conn.execute(sa.select(L.locks)).all() == []  # the lock went with its holder
    # later cron runs find nothing to do, one after the other
    for _ in range(2):
        code, out, err = finish(start(lms.config, "purge", "--due", "--yes", "--json", LEARNEXIT_NOW=DUE_NOW))
        assert code == 0 and json.loads(out)["customers"] == [], err


# --------------------------------------------------------------------------- export meets purge


def wait_for_export(config: Path, state_url: str, timeout: float = 60) -> int:
    """The id of the running export, once it holds its lock."""
    deadline = time.monotonic() + timeout
    with Ledger(state_url) as ledger:
        while time.monotonic() < deadline:
            with ledger.engine.connect() as conn:
                lock = conn.execute(sa.select(L.locks.c.name).where(L.locks.c.name.like("export:%"))).scalar()
            if lock:
                return int(lock.split(":", 1)[1])
            time.sleep(0.05)
    raise AssertionError("the export never started")


def test_purge_waits_for_a_running_export(tmp_path: Path, example_template: Path) -> None:
    lms = make_lms("sqlite", tmp_path / "ex", example_template)
    give_notice(lms)
    state = lms.settings.state_url
    out = tmp_path / "handover"
    export = start(
        lms.config, "export", "acme", "-f", "csv", "--out", str(out), "--json",
        LEARNEXIT_NOW="2027-04-30", LEARNEXIT_TEST_SLOW_EXPORT="0.3",
    )  # fmt: skip
    export_id = wait_for_export(lms.config, state)
    code, stdout, err = finish(start(lms.config, "purge", "acme", "--yes", LEARNEXIT_NOW=DUE_NOW))
    assert code == 3 and f"an export of acme is running (export #{export_id}" in err, err
    code, stdout, err = finish(start(lms.config, "purge", "--due", "--yes", "--json", LEARNEXIT_NOW=DUE_NOW))
    assert code == 0, err
    due = json.loads(stdout)
    assert due["customers"] == [] and [(s["customer"], s["reason"]) for s in due["skipped"]] == [("acme", "export running")]  # fmt: skip
    assert export.poll() is None, "the export should still be running"
    with Ledger(state) as ledger:
        assert ledger.rows(L.purges, "acme") == []  # nothing started

    code, stdout, err = finish(export)
    assert code == 0, err
    package = Path(json.loads(stdout)["path"])
    assert package.is_dir()
    # the export is done: the next cron run purges, and destroys the package with the data
    code, stdout, err = finish(start(lms.config, "purge", "--due", "--yes", "--json", LEARNEXIT_NOW=DUE_NOW))
    assert code == 0, err
    assert not package.exists() and os.listdir(out) == []
    with Ledger(state) as ledger:
        assert [e["status"] for e in ledger.rows(L.exports, "acme")] == ["removed"]


def test_a_killed_export_does_not_block_the_purge(tmp_path: Path, example_template: Path) -> None:
    lms = make_lms("sqlite", tmp_path / "ex", example_template)
    give_notice(lms)
    out = tmp_path / "handover"
    export = start(lms.config, "export", "acme", "-f", "csv", "--out", str(out), LEARNEXIT_NOW="2027-04-30", LEARNEXIT_TEST_SLOW_EXPORT="0.3")  # fmt: skip
    wait_for_export(lms.config, lms.settings.state_url)
    export.kill()
    export.wait()
    assert any(n.endswith(".partial") for n in os.listdir(out))
    code, stdout, err = finish(start(lms.config, "purge", "acme", "--yes", "--json", LEARNEXIT_NOW=DUE_NOW))
    assert code == 0, err
    assert os.listdir(out) == []  # the killed export's partial build went with the data
    with Ledger(lms.settings.state_url) as ledger:
        assert [e["status"] for e in ledger.rows(L.exports, "acme")] == ["removed"]


def test_export_refused_once_a_purge_started(tmp_path: Path, example_template: Path) -> None:
    lms = make_lms("sqlite", tmp_path / "ex", example_template)
    set_batch_size(lms.config, 100)
    give_notice(lms)
    # a purge killed half-way: it is running, the data half deleted
    code, _, err = finish(
        start(
            lms.config, "purge", "acme", "--yes", LEARNEXIT_NOW=DUE_NOW,
            LEARNEXIT_TEST_KILL_AFTER_BATCHES="5", LEARNEXIT_TEST_KILL_AT="batch",
        )
    )  # fmt: skip
    assert code == -9, err
    out = tmp_path / "handover"
    for now, late in (("2027-04-30", []), (DUE_NOW, ["--late", "--reason", "the auditor asked"])):
        code, stdout, err = finish(start(lms.config, "export", "acme", "-f", "csv", *late, "--out", str(out), "--json", LEARNEXIT_NOW=now))  # fmt: skip
        assert code == 3 and stdout == "", err
        assert "a purge of acme started" in err and "(purge #1, running)" in err
    assert not out.exists()
    with Ledger(lms.settings.state_url) as ledger:
        assert ledger.rows(L.exports, "acme") == []  # refused before anything was recorded


@pytest.mark.postgres
def test_a_purge_that_overtakes_an_export_loses_it_its_package(
    db_factory: Any, tmp_path: Path, example_template: Path
) -> None:
    factory = db_factory("postgresql")
    lms = make_lms("postgresql", tmp_path / "ex", example_template, factory.new("overtake"))
    give_notice(lms)
    state = lms.settings.state_url
    out = tmp_path / "handover"
    export = start(
        lms.config, "export", "acme", "-f", "csv", "--out", str(out), "--json",
        LEARNEXIT_NOW="2027-04-30", LEARNEXIT_TEST_SLOW_EXPORT="0.4",
    )  # fmt: skip
    export_id = wait_for_export(lms.config, state)
    with Ledger(state) as ledger, ledger.engine.begin() as conn:  # its lock now looks like a stale one elsewhere
        conn.execute(
            L.locks.update()
            .where(L.locks.c.name == f"export:{export_id}")
            .values(holder="cron@elsewhere host far-away pid 1", heartbeat_at=utcnow().replace(year=2000))
        )
    purge = start(lms.config, "purge", "acme", "--yes", "--json", LEARNEXIT_NOW=DUE_NOW)
    code, stdout, err = finish(purge)
    # The purge removes the export's partial build; the export may write on into it, and
    # then the purge's verification finds it and fails (exit 1: run again) — never "done".
    if code == 1:
        problems = json.loads(stdout)["customers"][0]["verification"]["problems"]
        assert problems == [f"export #{export_id} is still at acme-2027-04-30T100000Z"], problems
    else:
        assert code == 0, stdout + err
    code, stdout, err = finish(export)
    assert code in (1, 3) and stdout == "", err
    if code == 3:  # it got to the end: the purge overtook it, so it removes its package
        assert "a purge of acme started while exporting (purge #1); the package was removed" in err
    assert not out.exists() or os.listdir(out) == []
    with Ledger(state) as ledger:
        failed = [p["status"] for p in ledger.rows(L.purges, "acme")] == ["failed"]
    if failed:  # the rerun resumes, and now nothing is in its way
        code, stdout, err = finish(start(lms.config, "purge", "acme", "--yes", "--json", LEARNEXIT_NOW=DUE_NOW))
        assert code == 0, stdout + err
    with Ledger(state) as ledger:
        assert [p["status"] for p in ledger.rows(L.purges, "acme")] == ["done"]
        assert [e["status"] for e in ledger.rows(L.exports, "acme")] in (["failed"], ["removed"])
        assert ledger.verify_audit().valid
    assert not out.exists() or os.listdir(out) == []
