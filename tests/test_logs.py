"""Logs for machines: ``--log-format json`` / ``LEARNEXIT_LOG_FORMAT=json``.

One JSON object per stderr line with time, level, command and event; an error is such an
event too, with its exit code; nothing secret (database passwords) and nothing personal
(names, e-mail addresses of the example's people) ever reaches the log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from helpers import copy_example
from typer.testing import CliRunner

from learnexit.cli import app

runner = CliRunner()
ROOT_COMMAND = typer.main.get_command(app)
PASSWORD = "Sup3rSecretPw"
REQUIRED = {"time", "level", "command", "event"}


def have(*names: str) -> bool:
    return set(names) <= set(getattr(ROOT_COMMAND, "commands", {}))


def json_lines(stderr: str) -> list[dict[str, Any]]:
    events = []
    for line in stderr.splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"a stderr line is not JSON: {line!r}") from None
        assert isinstance(obj, dict), line
        assert REQUIRED <= obj.keys(), f"missing {REQUIRED - obj.keys()} in {line}"
        assert obj["time"].endswith("Z")
        datetime.fromisoformat(obj["time"].replace("Z", "+00:00"))
        assert obj["level"] in ("debug", "info", "warning", "error", "critical")
        events.append(obj)
    return events


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, example_template: Path) -> Path:
    return copy_example(example_template, tmp_path_factory.mktemp("logs") / "demo")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEARNEXIT_")}
    env["LEARNEXIT_ACTOR"] = "tester@example"
    env.update(extra)
    return env


def _run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "learnexit", *argv], capture_output=True, text=True, timeout=300, env=_env(**env)
    )


@pytest.mark.parametrize("how", ["flag", "env"])
def test_error_is_one_json_event_with_exit_code(demo: Path, how: str) -> None:
    argv = ["inspect", "nobody", "--config", str(demo / "learnexit.toml")]
    if how == "flag":
        result = _run(["--log-format", "json", *argv])
    else:
        result = _run(argv, LEARNEXIT_LOG_FORMAT="json")
    assert result.returncode == 2
    assert result.stdout == ""
    events = json_lines(result.stderr)
    assert events, "the error must be logged"
    last = events[-1]
    assert last["event"] == "error" and last["level"] == "error"
    assert last["exit_code"] == 2 and last["command"] == "inspect"
    assert "unknown customer 'nobody'" in last["message"]


def test_text_format_stays_one_line_for_people(demo: Path) -> None:
    result = _run(["inspect", "nobody", "--config", str(demo / "learnexit.toml")])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("learnexit: error: unknown customer 'nobody'")


def test_bad_log_format_is_exit_2() -> None:
    result = runner.invoke(app, ["--log-format", "xml", "inspect", "acme"])
    assert result.exit_code == 2 and "--log-format" in result.stderr


def test_no_password_in_logs(tmp_path: Path) -> None:
    """Unreachable databases with passwords in their URLs: the log masks them, in every format."""
    cfg = tmp_path / "learnexit.toml"
    cfg.write_text(
        f'[source]\nurl = "postgresql://lms:{PASSWORD}@127.0.0.1:1/lms"\n[customer]\ntable = "o"\n', encoding="utf-8"
    )
    runs = [
        _run(["--log-format", "json", "inspect", "acme", "--config", str(cfg)]),
        _run(["--log-format", "json", "--log-level", "debug", "inspect", "acme", "--config", str(cfg), "--traceback"]),
        _run(["--log-format", "text", "--log-level", "debug", "inspect", "acme", "--config", str(cfg)]),
    ]
    if have("status"):
        # the ledger URL too (LEARNEXIT_STATE_URL overrides the file)
        runs.append(
            _run(
                ["--log-format", "json", "status", "--json", "--config", str(cfg)],
                LEARNEXIT_STATE_URL=f"postgresql+psycopg://learnexit:{PASSWORD}@127.0.0.1:1/learnexit",
            )
        )
    for result in runs:
        assert result.returncode == 1, result.stderr
        assert PASSWORD not in result.stdout + result.stderr, result.stderr
        assert "***" in result.stderr
    for result in (runs[0], runs[-1]):
        events = json_lines(result.stderr)
        assert events[-1]["exit_code"] == 1


def test_success_events_are_json_lines(demo: Path) -> None:
    """Whatever the commands report while they work is one JSON object per line, with its command."""
    config = str(demo / "learnexit.toml")
    argvs = [["inspect", "acme", "--json"]]
    if have("status"):
        argvs.append(["status", "--json"])
    if have("notice"):
        argvs.append(["notice", "acme", "--received", "2026-11-20", "--dry-run", "--json"])
    for argv in argvs:
        result = _run(["--log-format", "json", "--log-level", "debug", *argv, "--config", config])
        assert result.returncode == 0, result.stderr
        json.loads(result.stdout)
        for event in json_lines(result.stderr):
            assert event["command"] == argv[0]


def test_a_whole_offboarding_logs_only_json_and_no_personal_data(demo: Path, tmp_path: Path) -> None:
    """Run the story (as far as the commands exist) with JSON logs and check every line."""
    if not have("notice", "export", "confirm"):
        pytest.skip("notice/export/confirm not all implemented yet")
    import shutil

    import sqlalchemy as sa

    work = tmp_path / "demo"
    shutil.copytree(demo, work, ignore=shutil.ignore_patterns("learnexit-state.db", "exports", "certificates"))
    config = str(work / "learnexit.toml")
    engine = sa.create_engine(f"sqlite:///{work / 'lms.db'}")
    with engine.connect() as conn:
        people = conn.execute(sa.text("SELECT name, email FROM users")).all()
    engine.dispose()
    personal = {v for row in people for v in row if v and len(v) > 5}
    steps = [
        (["notice", "globex", "--received", "2026-11-02", "--reference", "T-1"], "2026-11-02"),
        (["export", "globex", "--format", "csv,json"], "2026-11-03"),
        (["confirm", "globex", "--by", "Support Engineer", "--waive-window"], "2026-11-04"),
    ]
    if have("purge"):
        steps.append((["purge", "--due", "--yes"], "2027-12-31"))
    seen: list[dict[str, Any]] = []
    for argv, now in steps:
        result = _run(["--log-format", "json", *argv, "--json", "--config", config], LEARNEXIT_NOW=now)
        assert result.returncode == 0, (argv, result.stderr)
        json.loads(result.stdout)
        events = json_lines(result.stderr)
        for event in events:
            assert event["command"] == argv[0]
        leaked = {p for p in personal if p in result.stderr}
        assert not leaked, f"personal data in the log of {argv[0]}: {sorted(leaked)[:3]}"
        seen.extend(events)
    # the engines report their work (export and purge report per table), with customer keys
    by_command = {e["command"] for e in seen if e["level"] == "info"}
    assert "export" in by_command, "export reports no events"
    if have("purge"):
        assert "purge" in by_command, "purge reports no events"
    for event in seen:
        if "customer" in event and event["customer"] is not None:
            assert event["customer"] in ("acme", "globex", "initech"), event
