"""Cycles of tables decided in rounds (``learnexit.purge.rounds``): which tables lie on a
cycle, against a plain reachability oracle, and the refusal when rows are held more than
``MAX_ROUNDS`` rounds deep."""

from __future__ import annotations

from pathlib import Path

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


def test_a_chain_deeper_than_the_rounds_allow_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    depth = MAX_ROUNDS // 2 + 2  # two rounds a person: more than MAX_ROUNDS in all
    world = chain_world(depth)
    url = f"sqlite:///{tmp_path / 'src.db'}"
    create_world(world, url)
    schema = world_schema(world)
    before = read_all(url, schema)
    config = write_config(world, tmp_path, url)
    env = {"LEARNEXIT_NOW": EXPORT_NOW}
    args = ["--config", str(config)]
    assert (
        runner.invoke(
            app, ["notice", "1", "--received", "2026-01-10", "--period-end", "2026-03-31", *args], env=env
        ).exit_code
        == 0
    )
    env = {"LEARNEXIT_NOW": PURGE_NOW}
    for how in (["--dry-run", "--json"], ["--yes", "--json"]):
        result = runner.invoke(app, ["purge", "1", *how, *args], env=env)
        assert result.exit_code == 3, (how, result.output)
        text = result.stdout + result.stderr
        assert f"more than {MAX_ROUNDS} levels deep" in text, text
        assert "Traceback" not in text
    assert read_all(url, schema) == before
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM purges WHERE status = 'done'")).scalar() == 0
    finally:
        engine.dispose()
