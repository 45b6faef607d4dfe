"""A many-table schema costs in proportion to its rows (issue 21, 2): the fast paths of
``export.specs`` give exactly what the plain ones give."""

from __future__ import annotations

import sqlite3
import tomllib
from pathlib import Path

import pytest
from lms_schemas import build_moodle

from learnexit.config import load_settings
from learnexit.export import specs
from learnexit.source import Source

ROOT = Path(__file__).resolve().parents[1]
MOODLE = ROOT / "examples" / "recipes" / "moodle.toml"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A Moodle-like site (one database per customer) with dangling references, "none"
    values and emptied tables."""
    build_moodle(f"sqlite:///{tmp_path / 'site_a.db'}", site=1, log_rows=300, plugins=3)
    with sqlite3.connect(tmp_path / "site_a.db") as conn:
        conn.execute("UPDATE mdl_assign SET course = 999999 WHERE id IN (1, 2)")  # dangling
        conn.execute("UPDATE mdl_forum_posts SET parent = 0 WHERE id = 3")  # "none"
        conn.execute("UPDATE mdl_forum_posts SET parent = 424242 WHERE id = 4")  # dangling
        conn.execute("UPDATE mdl_assign_submission SET groupid = NULL WHERE id = 5")
        for name in ("mdl_plug2", "mdl_plug2_items", "mdl_plug2_attempts", "mdl_wiki_links"):
            conn.execute(f"DELETE FROM {name}")
    text = MOODLE.read_text(encoding="utf-8")
    recipe = tomllib.loads(text)
    text = text.replace(recipe["source"]["url"], "sqlite:///{customer}.db")
    text = text.replace(recipe["media"]["root"], "moodledata/{customer}")
    config = tmp_path / "learnexit.toml"
    config.write_text(text, encoding="utf-8")
    return config


def test_table_spans_find_exactly_the_tables_with_rows(site: Path, monkeypatch) -> None:
    monkeypatch.setattr(specs, "SPANS_PER_STATEMENT", 7)  # several statements
    settings = load_settings(site).for_customer("site_a")
    with Source(settings, "site_a") as source, source.snapshot() as conn:
        names = source.owned_tables()
        spans = specs.table_spans(source, conn, names)
        for name in names:
            table = source.table(name)
            rows = conn.exec_driver_sql(f'SELECT count(*), min(id), max(id) FROM "{table.name}"').one()
            assert (name in spans) == (rows[0] > 0), name
            if rows[0]:
                assert spans[name] == rows[2] - rows[1], name
    assert "mdl_plug2" not in spans and "mdl_plug1" in spans


def _summary(source: Source, conn: object) -> tuple[dict[str, int], list[str], list[tuple[object, ...]]]:
    totals: dict[str, int] = {}
    notes: list[str] = []
    built = specs.build_specs(source, conn, notes, totals)  # type: ignore[arg-type]
    return totals, notes, [(s.name, s.columns, s.primary_key, s.foreign_keys, s.key_range) for s in built]


def test_stats_as_text_equal_the_expression_scan(site: Path, monkeypatch) -> None:
    settings = load_settings(site).for_customer("site_a")
    with Source(settings, "site_a") as source, source.snapshot() as conn:
        fast = _summary(source, conn)
        with monkeypatch.context() as m:
            m.setattr(specs, "whole_tables", lambda *_: False)  # every table by the expression scan
            plain = _summary(source, conn)
    assert fast == plain
    assert len(fast[1]) >= 2 and any("mdl_assign.course" in n for n in fast[1])  # the dangling references
    assert fast[0]["mdl_plug2"] == 0 and fast[0]["mdl_plug1"] == 24
