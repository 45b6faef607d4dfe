"""A table whose rows reference each other (a thread of replies, a page's previous page)
is purged a batch at a time, each batch deepest row first, in one source transaction and
one ledger record: a chain of 25 is three batches of ten, not 25 of one.

On every engine: the customer's chains go, another customer's chain and a row that stays
are untouched, the ledger counts each row once; a purge killed inside a chain's batch
(before the source commits it, or after) resumes to the same end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from test_formats import AWK_CONFIG
from test_purge import DUE_NOW, RECEIVED, RECORDED, snapshot

from learnexit.config import load_settings
from learnexit.ledger import schema as L
from learnexit.ledger.store import Ledger
from learnexit.offboarding.clock import parse_now
from learnexit.offboarding.notice import record_notice
from learnexit.purge.run import execute_purge

CHAINS = sa.MetaData()
sa.Table(
    "orgs", CHAINS,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("slug", sa.String(20), nullable=False, unique=True),
)  # fmt: skip
sa.Table(
    "posts", CHAINS,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("org_id", sa.Integer, sa.ForeignKey("orgs.id"), nullable=True),
    sa.Column("reply_to", sa.Integer, sa.ForeignKey("posts.id"), nullable=True),  # owned through the thread
    sa.Column("body", sa.String(40), nullable=False),
)  # fmt: skip
CONFIG = AWK_CONFIG + "[purge]\nbatch_size = 10\n"
# a's thread: 1 ← 2 ← … ← 25 (each a reply to the one before), and a tree 100 ← 101, 102 ← 103;
# b's thread: 200 ← 201 ← … ← 204.
A_POSTS = set(range(1, 26)) | {100, 101, 102, 103}
B_POSTS = set(range(200, 205))


def build(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            CHAINS.create_all(conn)
            posts = CHAINS.tables["posts"]
            conn.execute(CHAINS.tables["orgs"].insert(), [{"id": 1, "slug": "a"}, {"id": 2, "slug": "b"}])
            rows = [{"id": 1, "org_id": 1, "reply_to": None, "body": "first"}]
            rows += [{"id": i, "org_id": None, "reply_to": i - 1, "body": f"reply {i}"} for i in range(2, 26)]
            rows += [
                {"id": 100, "org_id": 1, "reply_to": None, "body": "root"},
                {"id": 101, "org_id": None, "reply_to": 100, "body": "left"},
                {"id": 102, "org_id": None, "reply_to": 100, "body": "right"},
                {"id": 103, "org_id": None, "reply_to": 102, "body": "deep"},
                {"id": 200, "org_id": 2, "reply_to": None, "body": "b's"},
            ]
            rows += [{"id": i, "org_id": None, "reply_to": i - 1, "body": f"b reply {i}"} for i in range(201, 205)]
            for row in rows:  # (one at a time: parents first on every engine)
                conn.execute(posts.insert(), row)
    finally:
        engine.dispose()


def setup(dbs: Any, tmp_path: Path) -> tuple[Path, str]:
    url = dbs.new("chains")
    build(url)
    cfg = tmp_path / "learnexit.toml"
    cfg.write_text(CONFIG.format(url=url, state=tmp_path / "state.db"), encoding="utf-8")
    settings = load_settings(cfg)
    with Ledger(settings.state_url) as ledger:
        record_notice(settings, ledger, "a", RECEIVED, period_end=date(2026, 12, 31), now=RECORDED)
    return cfg, url


def progress(cfg: Path) -> dict[str, tuple[int, int]]:
    with Ledger(load_settings(cfg).state_url) as ledger, ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(L.purge_progress.c.step, L.purge_progress.c.rows, L.purge_progress.c.batches))
        out: dict[str, tuple[int, int]] = {}
        for step, n, batches in rows:
            rows_before, batches_before = out.get(step, (0, 0))
            out[step] = (rows_before + n, batches_before + batches)
        return out


def assert_only_a_went(url: str, before: dict[str, Any]) -> None:
    after = snapshot(url)
    assert set(after["posts"]) == {(i,) for i in B_POSTS}
    assert after["posts"] == {k: v for k, v in before["posts"].items() if k[0] in B_POSTS}  # b's: byte for byte
    assert after["orgs"] == {(2,): before["orgs"][(2,)]}


def purge_a(dbs: Any, tmp_path: Path) -> tuple[int, int]:
    """Purge customer a in process: a's posts go, b's stay byte for byte; (rows, batches)
    the ledger recorded for the posts."""
    cfg, url = setup(dbs, tmp_path)
    before = snapshot(url)
    settings = load_settings(cfg)
    with Ledger(settings.state_url) as ledger:
        result = execute_purge(settings, ledger, "a", parse_now(DUE_NOW))
    assert result.deleted["posts"] == len(A_POSTS)
    assert_only_a_went(url, before)
    return progress(cfg)["posts"]


def test_a_chain_goes_a_batch_at_a_time_deepest_first(dbs: Any, tmp_path: Path) -> None:
    rows, batches = purge_a(dbs, tmp_path)
    assert rows == len(A_POSTS)
    assert batches == 3  # 29 rows: 10, 10 and 9, each batch level by level (it was one batch a level: 25)


@pytest.mark.parametrize("point", ["pending", "delete"])
def test_a_purge_killed_inside_a_chain_resumes_to_the_same_end(
    dbs: Any, tmp_path: Path, point: str, engine_kind: str
) -> None:
    if engine_kind != "sqlite" and point == "delete":
        pytest.skip("(the servers: one kill point is enough; SQLite has both)")
    cfg, url = setup(dbs, tmp_path)
    before = snapshot(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEARNEXIT_")}
    env.update(LEARNEXIT_NOW=DUE_NOW, LEARNEXIT_ACTOR="tester@example", LEARNEXIT_LOG_LEVEL="warning")
    command = [sys.executable, "-m", "learnexit", "purge", "a", "--yes", "--json", "--config", str(cfg)]
    killed = subprocess.run(
        command,
        env={**env, "LEARNEXIT_TEST_KILL_AFTER_BATCHES": "2", "LEARNEXIT_TEST_KILL_AT": point},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert killed.returncode == -9, killed.stderr
    middle = snapshot(url)["posts"]
    assert {k[0] for k in middle} >= B_POSTS and len(middle) < len(before["posts"])  # (the first batch went)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert_only_a_went(url, before)
    assert progress(cfg)["posts"][0] == len(A_POSTS)  # (each row counted once)


def test_plain_rows_are_the_rows_sqlalchemy_gives(dbs: Any) -> None:
    """The purge fetches its batches' keys as plain tuples (``source.keys.plain_rows``):
    the same values SQLAlchemy's rows hold, converted where it converts them (SQLite's
    dates, decimals and booleans), on every engine."""
    import datetime as dt
    from decimal import Decimal

    from learnexit.source.keys import plain_rows

    meta = sa.MetaData()
    kinds = sa.Table(
        "kinds", meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime), sa.Column("day", sa.Date), sa.Column("amount", sa.Numeric(12, 2)),
        sa.Column("flag", sa.Boolean), sa.Column("label", sa.String(20)),
    )  # fmt: skip
    engine = sa.create_engine(dbs.new("plain"))
    try:
        with engine.begin() as conn:
            meta.create_all(conn)
            conn.execute(
                kinds.insert(),
                [
                    {"id": 1, "at": dt.datetime(2026, 12, 6, 3, 4, 5), "day": dt.date(999, 1, 2),
                     "amount": Decimal("12.50"), "flag": True, "label": "å"},
                    {"id": 2, "at": None, "day": None, "amount": None, "flag": False, "label": None},
                ],
            )  # fmt: skip
        with engine.connect() as conn:
            for stmt in (sa.select(kinds).order_by(kinds.c.id), sa.select(kinds.c.id).where(kinds.c.id > 5)):
                got = plain_rows(conn, stmt)
                assert got == [tuple(r) for r in conn.execute(stmt)]
                assert all(type(r) is tuple for r in got)
            assert plain_rows(conn, sa.select(kinds.c.at, kinds.c.flag).where(kinds.c.id == 1)) == [
                (dt.datetime(2026, 12, 6, 3, 4, 5), True)
            ]
    finally:
        engine.dispose()


def test_a_batch_peels_for_a_bounded_time(dbs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no time to peel, each batch is one level again (the batch's transaction stays
    short on a deep chain without an index): 25 batches for the 29 rows, the same end."""
    from learnexit.purge import delete

    monkeypatch.setattr(delete, "PEEL_SECONDS", 0.0)
    assert purge_a(dbs, tmp_path) == (len(A_POSTS), 25)
