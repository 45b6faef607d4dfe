"""The ledger: created on first use, hash-chained audit that detects tampering."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from learnexit.errors import Busy
from learnexit.ledger.schema import audit
from learnexit.ledger.store import GENESIS, Ledger


@pytest.fixture
def ledger_url(dbs) -> str:
    return dbs.new("ledger")


def fill(ledger: Ledger) -> None:
    ledger.record("notice", "notice_recorded", "acme", {"received": "2026-11-01"})
    ledger.record("export", "export_completed", "acme", {"rows": 10})
    ledger.record("hold", "hold_placed", "globex", {"reason_sha256": "ab"})


def test_chain_is_valid_and_survives_reopening(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        assert ledger.audit_head() == GENESIS
        fill(ledger)
        check = ledger.verify_audit()
        assert check.valid and check.entries == 3 and check.problems == []
    with Ledger(ledger_url) as ledger:  # schema exists: migration is a no-op
        assert ledger.verify_audit().head == check.head
        entries = ledger.audit_entries("acme")
        assert [e["event"] for e in entries] == ["notice_recorded", "export_completed"]
        assert entries[1]["prev_hash"] == entries[0]["hash"]


def test_edited_entry_is_detected(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        fill(ledger)
        with ledger.engine.begin() as conn:
            conn.execute(audit.update().where(audit.c.id == 2).values(details='{"rows":11}'))
        check = ledger.verify_audit()
        assert not check.valid
        assert check.problems == ["entry 2: content does not match its hash (edited)"]


def test_deleted_entry_is_detected(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        fill(ledger)
        with ledger.engine.begin() as conn:
            conn.execute(audit.delete().where(audit.c.id == 2))
        problems = ledger.verify_audit().problems
        assert "entry 2 is missing (next is 3)" in problems
        assert "entry 3: does not follow the previous entry (chain broken)" in problems


def test_deleted_last_entry_is_detected(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        fill(ledger)
        with ledger.engine.begin() as conn:
            conn.execute(audit.delete().where(audit.c.id == 3))
        assert ledger.verify_audit().problems == ["1 entries at the end are missing"]


def test_purge_lock_is_exclusive(ledger_url: str) -> None:
    with Ledger(ledger_url) as first, Ledger(ledger_url) as second:
        with first.lock("purge"):
            with pytest.raises(Busy):
                with second.lock("purge"):
                    pass
        with second.lock("purge"):  # released: free again
            pass
        with second.engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from locks")).scalar() == 0


def test_missing_ledger_folder_is_an_operational_error(tmp_path: Path) -> None:
    from learnexit.errors import OperationalError

    with pytest.raises(OperationalError, match="does not exist"):
        Ledger(f"sqlite:///{tmp_path}/no/such/folder/state.db")


def test_concurrent_appenders_keep_one_chain(ledger_url: str) -> None:
    """Two cron hosts writing at once must not fork the chain."""
    import threading

    Ledger(ledger_url).close()  # create the schema first
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with Ledger(ledger_url) as ledger:
                for i in range(8):
                    ledger.record("test", "tick", f"c{n}", {"i": i})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Ledger(ledger_url) as ledger:
        check = ledger.verify_audit()
    assert check.valid, check.problems
    assert check.entries == 32


def test_brand_new_ledger_opened_by_two_at_once(dbs) -> None:
    import threading

    url = dbs.new("fresh")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            Ledger(url).close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_lock_of_a_dead_process_on_this_host_is_broken(ledger_url: str) -> None:
    import socket

    from learnexit.ledger.schema import locks
    from learnexit.ledger.store import utcnow

    with Ledger(ledger_url) as ledger:
        with ledger.engine.begin() as conn:
            conn.execute(
                locks.insert().values(
                    name="purge",
                    holder=f"cron@x host {socket.gethostname()} pid 999999999",
                    acquired_at=utcnow(),
                    heartbeat_at=utcnow(),
                )
            )
        with ledger.lock("purge"):  # the holder is gone: no need to wait an hour
            pass
        with ledger.engine.begin() as conn:
            conn.execute(
                locks.insert().values(
                    name="purge", holder="cron@y host other-host pid 1", acquired_at=utcnow(), heartbeat_at=utcnow()
                )
            )
        with pytest.raises(Busy):  # another host: cannot tell, so it stays busy until stale
            with ledger.lock("purge"):
                pass


def test_steps_marked_done_together_are_what_one_at_a_time_makes(ledger_url: str) -> None:
    """``mark_steps_done`` (the empty tables of a pass, one ledger statement for all) ends
    where marking each step on its own ends: new steps 0 rows, 0 batches, done; steps
    already there keep their rows and batches and become done; a step named twice once."""
    from datetime import datetime

    from learnexit.ledger.purge_records import add_progress, add_purge, mark_steps_done, step_progress

    at = datetime(2026, 12, 6, 3, 0)
    with Ledger(ledger_url) as ledger, ledger.transaction() as conn:
        purge = add_purge(
            conn, customer="acme", identity_id=1, kind="full", started_at=at, plan="{}", forced_reason=None,
            recorded_by="t",
        )  # fmt: skip
        add_progress(conn, purge_id=purge, step="busy", rows=7, batches=2, done=False, updated_at=at)
        steps = [f"t{i:03d}" for i in range(1200)] + ["busy", "t001"]  # (more than one IN list's worth)
        mark_steps_done(conn, purge, steps, at)
        got = {s: step_progress(conn, purge, s) for s in [*steps, "never"]}
        rows = conn.execute(sa.text("SELECT count(*) FROM purge_progress")).scalar()
    assert got["busy"] == (7, 2, True)
    assert all(got[f"t{i:03d}"] == (0, 0, True) for i in range(1200)) and got["never"] is None
    assert rows == 1201
