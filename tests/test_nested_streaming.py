"""A person's rows of a table nested under people that has nothing nested in it (the
activity log) are written as they are read, a batch at a time (issue 21, item 3).

Before, the nested documents held all of one person's rows at once, for each document:
with 10M activity rows on PostgreSQL a person had 162,000 of them and the export's
process peaked at 318 MB (``bench/pg_scale.py``).  The nested JSON and XML are the same
bytes as those of the batched path (people read in batches, every row under a batch of
people held: the path MySQL takes), with reading batches of 1,000 rows and of 7 (a
person's run crossing many batch ends), and no document is handed more rows at once
than one reading batch holds.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from learnexit.config import load_settings
from learnexit.demo import build_example
from learnexit.export.run import run_export
from learnexit.exporters import nesting
from learnexit.exporters.json_format import NestedJson
from learnexit.exporters.xml_format import XmlDocument

NOW = "2026-11-29T10:15:00Z"
DOCUMENTS = ("json/acme.json", "xml/acme.xml")


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nested-streaming")
    build_example(root, activity_rows=3000)
    return root


def documents(example: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    settings = load_settings(example / "learnexit.toml")
    settings = dataclasses.replace(settings, state_url=f"sqlite:///{out.parent / (out.name + '-state.db')}")
    monkeypatch.setenv("LEARNEXIT_EXPORT_WORKERS", "1")
    monkeypatch.setenv("LEARNEXIT_NOW", NOW)
    result = run_export(settings, "acme", out=out, formats=["json", "xml"])
    return {name: (result.path / "data" / name).read_bytes() for name in DOCUMENTS}


def watch_leaves(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int]]:
    """(document, table, rows) of every run of a person's rows handed to a document."""
    runs: list[tuple[str, str, int]] = []
    for sink in (NestedJson, XmlDocument):

        def leaves(self: Any, nest: Any, values: list[Any], first: bool, _real: Any = sink.leaves) -> bytes:
            runs.append((type(self).__name__, nest.table, len(values)))
            return bytes(_real(self, nest, values, first))

        monkeypatch.setattr(sink, "leaves", leaves)
    return runs


def test_streamed_runs_write_the_bytes_of_the_batched_path(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        m.setattr(nesting.NestedReader, "_streaming", lambda self: False)
        batched = documents(example, tmp_path / "batched", monkeypatch)
    runs = watch_leaves(monkeypatch)
    streamed = documents(example, tmp_path / "streamed", monkeypatch)
    assert streamed == batched
    assert max(n for _doc, _table, n in runs) <= nesting.STREAM_BATCH
    with monkeypatch.context() as m:
        m.setattr(nesting, "STREAM_BATCH", 7)
        runs.clear()
        small = documents(example, tmp_path / "small", monkeypatch)
    assert small == batched

    # Every activity row under a person came through ``leaves``, the same runs into both
    # documents: each person's rows (read in person order, 7 at a time) cut where a
    # reading batch ends.
    people = json.loads(batched["json/acme.json"])["people"]
    want, start = [], 0
    for person in people:
        end = start + len(person["activity_log"])
        cuts = [start, *range((start // 7 + 1) * 7, end, 7), end]
        want += [b - a for a, b in zip(cuts, cuts[1:]) if b > a]
        start = end
    json_runs = [n for doc, table, n in runs if doc == "NestedJson" and table == "activity_log"]
    xml_runs = [n for doc, table, n in runs if doc == "XmlDocument" and table == "activity_log"]
    assert json_runs == xml_runs == want
    assert sum(want) == 1759 and max(want) == 7 and len(want) > 2 * len(people)
