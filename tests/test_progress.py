"""Progress: every long step of an export reports a true total, and stderr stays short.

The media bar counts media files against the media rows (not against every row of the
export), the documents bar counts documents against the documents expected (not ``?``),
and the read pass counts rows against the rows counted in the snapshot.  One line per
table on stderr only with ``--log-level debug``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from learnexit.config import load_settings
from learnexit.demo import build_example
from learnexit.export.run import run_export


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("progress")
    build_example(root / "ex", activity_rows=100)
    return root / "ex"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_every_step_reports_its_true_total(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    monkeypatch.setenv("LEARNEXIT_EXPORT_WORKERS", workers)
    settings = load_settings(example / "learnexit.toml")
    calls: list[tuple[str, int, int | None]] = []
    result = run_export(
        settings,
        "acme",
        formats=["csv", "media", "pdf"],
        out=tmp_path,
        progress=lambda label, done, total: calls.append((label, done, total)),
    )
    labels = {label for label, _, _ in calls}
    # one bar for the rows (read in one pass here), or one per format (side by side)
    reading = "rows" if "rows" in labels else "csv"
    assert {reading, "media", "pdf documents"} <= labels, labels
    assert not labels & set(result.tables), "a bar per table"
    assert all(total is not None for _, _, total in calls), [c for c in calls if c[2] is None][:3]
    last = {label: (done, total) for label, done, total in calls}
    assert last[reading] == (result.rows, result.rows)
    media_rows = result.tables[settings.media.table]
    assert last["media"] == (media_rows, media_rows)
    assert all(total == media_rows for label, _, total in calls if label == "media")
    documents = [p for p in (result.path / "data" / "documents").rglob("*.pdf")]
    if reading == "csv":  # side by side, the export summary is made last, once all are done
        documents = [p for p in documents if p.name != "export-summary.pdf"]
    assert last["pdf documents"] == (len(documents), len(documents))
    for label in labels:
        assert all(done <= total for lab, done, total in calls if lab == label and total is not None), label


def test_a_piped_export_does_not_print_a_line_per_table(example: Path, tmp_path: Path) -> None:
    def export(*extra: str) -> list[str]:
        run = subprocess.run(
            [sys.executable, "-m", "learnexit", "--config", str(example / "learnexit.toml"), *extra]
            + ["export", "globex", "--format", "csv", "--out", str(tmp_path / extra[-1] if extra else tmp_path)],
            capture_output=True,
            text=True,
            env={**os.environ, "LEARNEXIT_NOW": "2026-12-01"},
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
        return run.stderr.splitlines()

    quiet = export()
    assert not [line for line in quiet if "export_table" in line]
    assert len(quiet) < 10, quiet
    (tmp_path / "debug").mkdir()
    loud = export("--log-level", "debug")
    assert len([line for line in loud if "export_table" in line]) >= 20
