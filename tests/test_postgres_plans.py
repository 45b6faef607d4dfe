"""On PostgreSQL no statement of the purge rescans a subquery for every row it tests
(issue 21, item 3).

PostgreSQL runs ``x NOT IN (SELECT …)`` by hashing the subquery's rows only when they fit
in ``work_mem``; beyond that it keeps them in a list and scans the list again for every
row it tests, so the cost grows with the square of the table: the purge plan of a
customer with a million activity rows ran for hours (``bench/pg_scale.py``).  Here
``work_mem`` is at its minimum (64 kB, far too small for the keys of 18,000 activity
rows) and every statement the purge and its plan run is explained just before it runs,
on its connection, in its transaction: no plan may hold a negated subplan that is not
hashed (``NOT (SubPlan n)``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from typer.testing import CliRunner

from learnexit.cli.app import app
from learnexit.demo import build_shared_schema, populate_shared
from learnexit.demo.config import SHARED_CONFIG

runner = CliRunner()
ACTIVITY_ROWS = 30_000  # acme owns 60 %: 18,000
RESCAN = re.compile(r"NOT \(SubPlan \d+\)")
EXPLAINABLE = re.compile(r"\s*(WITH|SELECT|DELETE|UPDATE)\b", re.IGNORECASE)


def test_no_statement_of_the_purge_rescans_a_subquery_per_row(
    db_factory: Callable[[str], Any], tmp_path: Path, monkeypatch: Any
) -> None:
    url = db_factory("postgresql").new("plans")
    engine = sa.create_engine(url)
    build_shared_schema(engine)
    info = populate_shared(engine, media_root=tmp_path / "media", activity_rows=ACTIVITY_ROWS)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")  # the planner knows how big activity_log is
    engine.dispose()
    config = tmp_path / "learnexit.toml"
    config.write_text(SHARED_CONFIG.replace('url = "sqlite:///lms.db"', f'url = "{url}"', 1), encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    plans: list[tuple[str, str]] = []

    def explain(conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        if conn.dialect.name != "postgresql" or many or not EXPLAINABLE.match(statement):
            return
        with conn.connection.dbapi_connection.cursor() as cursor:
            cursor.execute("SET work_mem = '64kB'")  # (the source's connections set their own options)
            cursor.execute("EXPLAIN " + statement, parameters)
            plans.append((statement, "\n".join(row[0] for row in cursor.fetchall())))

    def cli(*args: str, now: str) -> Any:
        return runner.invoke(app, [*args, "--config", str(config)], env={"LEARNEXIT_NOW": now})

    notice = cli("notice", "acme", "--received", "2026-01-10", "--period-end", "2026-03-31", now="2026-01-15")
    assert notice.exit_code == 0, notice.stderr
    sa.event.listen(sa.engine.Engine, "before_cursor_execute", explain)
    try:
        result = cli("purge", "acme", "--yes", "--json", now="2026-07-01")
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", explain)
    assert result.exit_code == 0, result.stderr
    outcome = json.loads(result.stdout)["customers"][0]
    assert outcome["deleted"]["activity_log"] == info.counts["acme"]["activity_log"] == 18_000
    assert outcome["verified"] is True
    explained_activity = [s for s, _plan in plans if "activity_log" in s]
    assert len(explained_activity) > 10  # the plan's counts, the batches' keys, the verification
    rescans = [(s[:300], plan) for s, plan in plans if RESCAN.search(plan)]
    assert rescans == []
