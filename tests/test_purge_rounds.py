"""Cycles of tables decided in rounds (``learnexit.purge.rounds``): which tables lie on a
cycle, against a plain reachability oracle, and the refusal when rows are held more than
``MAX_ROUNDS`` rounds deep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ownership_oracle import EXPORT_NOW, PURGE_NOW, chain_world, create_world, read_all, world_schema, write_config
from typer.testing import CliRunner

from learnexit.cli.app import app
from learnexit.purge.rounds import MAX_ROUNDS, cyclic_groups

runner = CliRunner()


def reach(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Every node each node reaches in one step or more (repeat until nothing changes)."""
    out = {n: set(graph[n]) for n in graph}
    changed = True
    while changed:
        changed = False
        for n in out:
            more = set().union(*(out[m] for m in out[n])) - out[n]
            if more:
                out[n] |= more
                changed = True
    return out


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 9).flatmap(lambda n: st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)))))
def test_cyclic_groups_are_the_mutually_reachable_tables(edges: set[tuple[int, int]]) -> None:
    nodes = {f"t{i}" for pair in edges for i in pair} | {"t0"}
    graph = {n: set() for n in nodes}
    for a, b in edges:
        if a != b:  # (a table's references to itself are followed by other means)
            graph[f"t{a}"].add(f"t{b}")
    groups = cyclic_groups(graph)
    reached = reach(graph)
    on_cycle = {n for n in nodes if n in reached[n]}
    assert set(groups) == on_cycle
    for a in on_cycle:
        for b in on_cycle:
            same = b in reached[a] and a in reached[b]
            assert (groups[a] == groups[b]) == same, (a, b)


def test_a_chain_deeper_than_the_rounds_allow_is_refused_and_changes_nothing(dbs: Any, tmp_path: Path) -> None:
    """Past MAX_ROUNDS (SQLite, MariaDB: the key sets keep each statement one level deep),
    or past what one statement can nest (PostgreSQL keeps the conditions inline: about 28
    rounds), the plan and the purge refuse with one line, exit 3, and change nothing."""
    depth = 15 if dbs.kind == "postgresql" else MAX_ROUNDS // 2 + 2  # two rounds a person
    world = chain_world(depth)
    url = str(dbs.new("deep"))
    create_world(world, url)
    schema = world_schema(world)
    before = read_all(url, schema)
    config = write_config(world, tmp_path, url)
    env = {"LEARNEXIT_NOW": EXPORT_NOW}
    args = ["--config", str(config)]
    notice = ["notice", "1", "--received", "2026-01-10", "--period-end", "2026-03-31", *args]
    assert runner.invoke(app, notice, env=env).exit_code == 0
    env = {"LEARNEXIT_NOW": PURGE_NOW}
    for how in (["--dry-run", "--json"], ["--yes", "--json"]):
        result = runner.invoke(app, ["purge", "1", *how, *args], env=env)
        assert result.exit_code == 3, (how, result.output)
        text = result.stdout + result.stderr
        assert "levels deep through a cycle of tables" in text, text
        assert "the purge cannot decide which of them stay" in text, text
        assert "Traceback" not in text
    assert read_all(url, schema) == before
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM purges WHERE status = 'done'")).scalar() == 0
    finally:
        engine.dispose()


RETAIN_SCHEMA = """
CREATE TABLE orgs (id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE);
CREATE TABLE invoices (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id),
                       t2_id INTEGER REFERENCES t2(id), amount TEXT);
CREATE TABLE t2 (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id),
                 back_t3 INTEGER REFERENCES t3(id), note TEXT);
CREATE TABLE t3 (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id),
                 t2_ref INTEGER REFERENCES t2(id), note TEXT);
INSERT INTO orgs VALUES (1, 'acme'), (2, 'globex');
INSERT INTO t2 VALUES (10, 1, NULL, 'A'), (12, 1, NULL, 'C'), (14, 1, NULL, 'E'), (20, 2, NULL, 'globex t2');
INSERT INTO t3 VALUES (11, 1, 12, 'B'), (13, 1, NULL, 'D'), (15, 1, NULL, 'F'), (21, 2, 20, 'globex t3');
UPDATE t2 SET back_t3 = 11 WHERE id = 10;
UPDATE t2 SET back_t3 = 13 WHERE id = 12;
UPDATE t2 SET back_t3 = 21 WHERE id = 20;
INSERT INTO invoices VALUES (100, 1, 10, '120.00'), (200, 2, 20, '80.00');
"""


def test_retention_follows_references_round_a_cycle_of_tables(tmp_path: Path) -> None:
    """A retained invoice keeps t2 A; A keeps t3 B (t2.back_t3), B keeps t2 C (t3.t2_ref),
    C keeps t3 D: all four stay with the invoice, whole.  E and F, which nothing retained
    reaches, go; globex's rows are untouched.  (Retention once stopped at the cycle with
    a note, and the purge deleted C and D under the retained B.)"""
    db = tmp_path / "src.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            for statement in RETAIN_SCHEMA.split(";"):
                if statement.strip():
                    conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
    config = tmp_path / "learnexit.toml"
    config.write_text(
        "\n".join(
            [
                "[source]",
                f'url = "sqlite:///{db}"',
                "[state]",
                f'url = "sqlite:///{tmp_path / "state.db"}"',
                "[customer]",
                'table = "orgs"',
                'key = "slug"',
                "[tables.invoices]",
                'retain = "P7Y"',
                'legal_basis = "Bokföringslagen (1999:1078) 7 kap. 2 §"',
            ]
        )
        + "\n",
        encoding="utf-8",
    )

    def rows() -> dict[str, set[tuple[Any, ...]]]:
        engine = sa.create_engine(f"sqlite:///{db}")
        try:
            with engine.connect() as conn:
                return {
                    t: set(map(tuple, conn.exec_driver_sql(f"SELECT * FROM {t}")))
                    for t in ("orgs", "invoices", "t2", "t3")
                }
        finally:
            engine.dispose()

    before = rows()
    args = ["--config", str(config)]
    notice = runner.invoke(
        app,
        ["notice", "acme", "--received", "2026-01-10", "--period-end", "2026-03-31", *args],
        env={"LEARNEXIT_NOW": EXPORT_NOW},
    )
    assert notice.exit_code == 0, notice.output
    plan = runner.invoke(app, ["purge", "acme", "--dry-run", "--json", *args], env={"LEARNEXIT_NOW": PURGE_NOW})
    assert plan.exit_code == 0, plan.output
    (planned,) = json.loads(plan.stdout)["customers"]
    assert {t: n for t, n in planned["deleted"].items() if n} == {"t2": 1, "t3": 1}
    assert {t: n for t, n in planned["retained"].items() if n} == {"invoices": 1, "orgs": 1, "t2": 2, "t3": 2}
    assert not any("does not follow" in note for note in planned.get("notes", []))
    done = runner.invoke(app, ["purge", "acme", "--yes", "--json", *args], env={"LEARNEXIT_NOW": PURGE_NOW})
    assert done.exit_code == 0, done.output
    after = rows()
    assert after["t2"] == before["t2"] - {(14, 1, None, "E")}
    assert after["t3"] == before["t3"] - {(15, 1, None, "F")}
    assert after["invoices"] == before["invoices"]
    assert after["orgs"] == before["orgs"]
